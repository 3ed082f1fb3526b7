"""HTTP/1.x framing in a capture, through the command line.

The framing itself (bodies by Content-Length and chunks, HEAD/304/1xx, pipelining, byte-by-
byte heads, negative chunk sizes, ...) is unit-tested beside the code, in
src/analyzers/http/tests.rs; here a capture proves the whole path never hangs on it.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def negative_chunk_capture() -> bytes:
    """A classic pcap: handshake, a GET, a chunked response whose first chunk-size line is
    "-6" with more bytes after it in the same segment, then FINs."""
    from test_robustness import ACK, FIN, PSH, frame, handshake, pcap

    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    response = CHUNKED_HEAD + b"-6\r\nhello, world\r\n0\r\n\r\n"
    client_seq, server_seq = 1001 + len(request), 5001 + len(response)
    server = {"src": "10.0.0.2", "dst": "10.0.0.1", "sport": 80, "dport": 40000}
    return pcap([
        *handshake(),
        frame(seq=1001, ack=5001, flags=PSH | ACK, payload=request),
        frame(**server, seq=5001, ack=client_seq, flags=PSH | ACK, payload=response),
        frame(seq=client_seq, ack=server_seq, flags=ACK),
        frame(**server, seq=server_seq, ack=client_seq, flags=FIN | ACK),
        frame(seq=client_seq, ack=server_seq + 1, flags=FIN | ACK),
        frame(**server, seq=server_seq + 1, ack=client_seq + 1, flags=ACK),
    ])


def analyze_in_thread(path: Path, out: Path) -> bytes:
    """`tcptrace analyze` in-process, given 30 s: a parser that never returns fails the test
    instead of hanging the run (the thread is a daemon and dies with the process)."""
    from tcptrace.cli import main

    status: list[int] = []

    def run() -> None:
        try:
            main(["analyze", str(path), "-f", "jsonl", "-o", str(out)])
            status.append(0)
        except SystemExit as exc:
            status.append(int(exc.code or 0))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "analyze did not finish"
    assert status == [0]
    return out.read_bytes()


def test_negative_chunk_size_in_a_capture_does_not_hang(tmp_path: Path) -> None:
    path = tmp_path / "negative-chunk.pcap"
    path.write_bytes(negative_chunk_capture())
    (line,) = analyze_in_thread(path, tmp_path / "out.jsonl").decode().splitlines()
    reuse = json.loads(line)["reuse"]
    assert (reuse["protocol"], reuse["requests"], reuse["responses"]) == ("http/1.1", 1, 1)
