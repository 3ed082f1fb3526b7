"""HTTP/1.x framing and request counting, fed byte streams the way reassembly does."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcptrace.analyzers.reuse import AppTracker, Phase, head_end

MS = 1_000_000


def feed(tracker: AppTracker, exchanges: list[tuple[bool, int, bytes]]) -> AppTracker:
    for client, ts_ms, data in exchanges:
        tracker.data(client, ts_ms * MS, len(data), data)
    return tracker


def test_chunked_and_content_length_bodies() -> None:
    t = feed(AppTracker(), [
        (True, 0, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"),
        (False, 1, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
        (False, 2, b"0\r\n\r\n"),
        (True, 10, b"POST /b HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody"),
        (False, 11, b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"),
    ])
    assert t.result().protocol == "http/1.1"
    assert (t.result().requests, t.result().responses) == (2, 2)
    assert t.result().idle_gaps_ms == [8.0]


def test_head_and_304_have_no_body_and_100_continue_is_interim() -> None:
    t = feed(AppTracker(), [
        (True, 0, b"HEAD / HTTP/1.1\r\n\r\n"),
        (False, 1, b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"),
        (True, 2, b"GET / HTTP/1.1\r\nIf-None-Match: x\r\n\r\n"),
        (False, 3, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"),
        (True, 4, b"PUT /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"),
        (False, 5, b"HTTP/1.1 100 Continue\r\n\r\n"),
        (True, 6, b"abc"),
        (False, 7, b"HTTP/1.1 204 No Content\r\n\r\n"),
    ])
    r = t.result()
    assert (r.requests, r.responses) == (3, 3)


def test_pipelined_requests_in_one_segment() -> None:
    t = feed(AppTracker(), [
        (True, 0, b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n"),
        (False, 1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" * 3),
    ])
    assert (t.result().requests, t.result().responses) == (3, 3)


def test_request_split_byte_by_byte_counts_once() -> None:
    request = b"GET /split HTTP/1.0\r\nHost: x\r\n\r\n"
    t = feed(AppTracker(), [(True, i, request[i:i + 1]) for i in range(len(request))])
    assert t.result().requests == 1 and t.result().protocol == "http/1.0"


def test_response_without_length_runs_until_close() -> None:
    t = feed(AppTracker(), [
        (True, 0, b"GET / HTTP/1.0\r\n\r\n"),
        (False, 1, b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 5000),
        (False, 2, b"GET / HTTP/1.1\r\n\r\n"),  # body bytes, not a new message
    ])
    assert (t.result().requests, t.result().responses) == (1, 1)


def test_body_skipped_without_bytes() -> None:
    t = AppTracker()
    t.data(True, 0, 18, b"GET / HTTP/1.1\r\n\r\n")
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    t.data(False, 1 * MS, len(head), head)
    assert not t.wants(False)  # the body is skipped by length: no bytes needed
    t.data(False, 2 * MS, 100000, None)
    assert t.wants(False)
    t.data(True, 3 * MS, 18, b"GET / HTTP/1.1\r\n\r\n")
    assert t.result().requests == 2 and t.result().idle_gaps_ms == [1.0]


def test_other_protocols_count_turns() -> None:
    t = feed(AppTracker(), [
        (True, 0, b"\x16\x03\x01 hello"), (False, 5, b"\x16\x03\x03 server"),
        (True, 10, b"a"), (True, 11, b"b"), (False, 20, b"c"), (True, 50, b"d"),
    ])
    r = t.result()
    assert (r.protocol, r.requests, r.responses) == (None, 3, 2)
    assert r.idle_gaps_ms == [5.0, 30.0]


def test_server_speaking_first_is_not_http() -> None:
    t = feed(AppTracker(), [(False, 0, b"220 smtp ready\r\n"),
                            (True, 1, b"GET / HTTP/1.1\r\n\r\n")])
    assert t.result().protocol is None


def test_word_that_is_not_a_request_line_is_not_http() -> None:
    t = feed(AppTracker(), [(True, 0, b"PING\n"), (False, 1, b"PONG\n")])
    assert t.result().protocol is None and t.result().requests == 1


def test_framing_headers_take_the_last_exact_name_in_any_case() -> None:
    from tcptrace.analyzers.reuse import framing_headers

    head = (b"HTTP/1.1 200 OK\r\nContent-Length-Hint: 9\r\ncontent-length: 5\r\n"
            b"X-Note: content-length: 7\r\nCONTENT-LENGTH : 6\r\nTransfer-Encoding: gzip, chunked")
    assert framing_headers(head) == {b"content-length": b"6",
                                     b"transfer-encoding": b"gzip, chunked"}
    assert framing_headers(b"GET / HTTP/1.1") == {}
    assert framing_headers(b"Content-Length: 3\r\nHost: x") == {}  # the start line is no header


@given(st.binary(max_size=40).map(lambda b: bytes(b"\r\nab "[x % 5] for x in b)),
       st.integers(0, 40))
def test_head_end_finds_what_the_regular_expression_would(data: bytes, pos: int) -> None:
    match = re.compile(rb"\r?\n\r?\n").search(data, pos)
    expected = (match.start(), match.end()) if match else None
    assert head_end(data, pos) == expected
    assert head_end(bytearray(data), pos) == expected


# ---- negative chunk sizes: invalid framing (RFC 9112 section 7.1: chunk-size = 1*HEXDIG)

CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
NEGATIVE_SIZES = [b"-2", b"-5", b"-6", b"-10", b"-0x5", b" -1 "]
AFTER_SIZE = [b"", b"x", b"0\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n"]


def chunked_response(segments: list[bytes]) -> AppTracker:
    """A GET answered by a chunked response whose body arrives as `segments`."""
    t = feed(AppTracker(), [(True, 0, b"GET / HTTP/1.1\r\n\r\n"), (False, 1, CHUNKED_HEAD)])
    return feed(t, [(False, 2 + i, segment) for i, segment in enumerate(segments)])


@pytest.mark.parametrize("size", NEGATIVE_SIZES)
@pytest.mark.parametrize("line_end", [b"\r\n", b"\n"])
@pytest.mark.parametrize("after", AFTER_SIZE)
def test_negative_chunk_size_loses_the_framing(size: bytes, line_end: bytes,
                                               after: bytes) -> None:
    # Python's int(x, 16) takes the sign; the size is then treated as an unparsable one.
    t = chunked_response([size + line_end + after])  # more bytes in the same segment
    assert t.response_parser.phase is Phase.LOST and t.response_parser.remaining == 0
    r = t.result()
    assert (r.protocol, r.requests, r.responses, r.idle_gaps_ms) == ("http/1.1", 1, 1, [])
    assert (t.turns, t.answered_turns) == (1, 1)
    t = chunked_response([size + line_end, after])  # the bytes after it in the next segment
    starts_message = after.startswith(b"HTTP/1.")
    assert t.response_parser.phase is (Phase.UNTIL_CLOSE if starts_message else Phase.LOST)
    assert (t.result().requests, t.result().responses) == (1, 2 if starts_message else 1)


def test_other_chunk_sizes_int_accepts_are_unchanged() -> None:
    assert chunked_response([b"-0\r\n\r\n"]).response_parser.phase is Phase.HEAD  # zero
    t = chunked_response([b"+5\r\nhel"])
    assert (t.response_parser.phase, t.response_parser.remaining) == (Phase.CHUNK_DATA, 4)
    t = chunked_response([b" 0x_5 ;ext\r\nhello\r\n0\r\n\r\n"])
    assert t.response_parser.phase is Phase.HEAD
    # Missing bytes after a lost size are not skipped: the framing stays lost.
    t = chunked_response([b"-10\r\n"])
    t.data(False, 9 * MS, 100, None)
    assert t.response_parser.phase is Phase.LOST and t.wants(False)


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


def analyze_in_thread(path: Path, out: Path, engine: str) -> bytes:
    """`tcptrace analyze` in-process, given 30 s: a parser that never returns fails the test
    instead of hanging the run (the thread is a daemon and dies with the process)."""
    from tcptrace.cli import main

    status: list[int] = []

    def run() -> None:
        try:
            main(["analyze", str(path), "-f", "jsonl", "-o", str(out), "--engine", engine])
            status.append(0)
        except SystemExit as exc:
            status.append(int(exc.code or 0))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), f"--engine {engine} did not finish"
    assert status == [0]
    return out.read_bytes()


def test_negative_chunk_size_in_a_capture_does_not_hang_either_engine(tmp_path: Path) -> None:
    from tcptrace import native

    path = tmp_path / "negative-chunk.pcap"
    path.write_bytes(negative_chunk_capture())
    engines = ["python", "native"] if native.available() else ["python"]
    outputs = [analyze_in_thread(path, tmp_path / f"{e}.jsonl", e) for e in engines]
    assert outputs[0] == outputs[-1]
    (line,) = outputs[0].decode().splitlines()
    reuse = json.loads(line)["reuse"]
    assert (reuse["protocol"], reuse["requests"], reuse["responses"]) == ("http/1.1", 1, 1)
