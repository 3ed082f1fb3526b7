"""What a failure inside the engine, or a damaged stream, leaves a user: one line, and
every record read before it."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from pathlib import Path

import pytest
from conftest import PCAPS, run_cli
from test_robustness import handshake, pcap

from tcptrace import native


def test_engine_panic_is_one_line_and_keeps_what_was_read(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the native engine (forced through its test hook) costs the run, not what was
    read: one line naming the file and the frame, exit status 2, the records so far written,
    the json document still complete."""
    capture = PCAPS / "linux" / "half_close.pcap"
    monkeypatch.setenv(native.PANIC_HOOK, "30")
    status, stdout, stderr = run_cli(capsys, "analyze", str(capture), "-f", "jsonl")
    assert status == 2
    assert stderr == (f"tcptrace: error: internal error in the native engine at {capture}, "
                      "frame 30: forced panic at frame 30 (TCPTRACE_PANIC_AT_FRAME)\n")
    records = [json.loads(line) for line in stdout.splitlines()]
    assert [r["id"] for r in records] == [1]
    assert records[0]["packets"] == {"client": 15, "server": 14}  # frames 1-29 of 40
    status, stdout, _ = run_cli(capsys, "analyze", str(capture), "-f", "json")
    assert status == 2
    assert [c["id"] for c in json.loads(stdout)["connections"]] == [1]

    monkeypatch.setenv(native.PANIC_HOOK, "3")
    linux = sorted((PCAPS / "linux").glob("*.pcap"))
    status, stdout, stderr = run_cli(capsys, "analyze", *map(str, linux), "-f", "csv")
    assert status == 2
    assert stderr.endswith(f"at frame 3 of {len(linux)} files merged by time: forced panic at "
                           "frame 3 (TCPTRACE_PANIC_AT_FRAME)\n")
    assert len(stdout.splitlines()) == 2  # the header and the one connection begun


def test_cut_gzip_keeps_every_complete_record_decompressed(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Where a gzip stream is cut short, every record decompressed before the cut is kept
    (as zcat and tshark read them), with one warning."""
    plain = pcap(handshake() * 50)
    data = gzip.compress(plain, mtime=0)
    cut = data[: len(data) - 30]
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(cut)
    readable = zlib.decompressobj(wbits=31).decompress(cut)  # what any reader can get
    complete, at = 0, 24
    while at + 16 <= len(readable):
        at += 16 + struct.unpack_from("<I", readable, at + 8)[0]
        complete += at <= len(readable)
    assert 0 < complete < 150

    status, _, stderr = run_cli(capsys, "analyze", str(path), "-f", "json", "-o",
                                str(tmp_path / "out.json"))
    assert status == 0
    assert stderr == (f"tcptrace: warning: truncated_record: {path}: stopped reading after "
                      f"frame {complete}: Compressed file ended before the end-of-stream marker "
                      "was reached; earlier packets are kept\n")
    document = json.loads((tmp_path / "out.json").read_text())
    assert document["source"]["packets"] == complete
    assert document["source"]["skipped"] == {"truncated_record": 1}
    assert len(document["connections"]) == 1  # one 4-tuple: the first SYN opens it
