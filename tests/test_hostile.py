"""Hostile input at the command line (issue 17): absurd header values, a failure inside one
connection's analysis, hostile names and rules files, thread faults. Each test asserts what a
user sees: the exit status, the exact lines on stderr, the records kept."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import test_schema
from conftest import PCAPS, run_cli
from test_robustness import ACK, FIN, PSH, SYN, frame, handshake, pcap

PANIC_IN_CONNECTION = "TCPTRACE_PANIC_IN_CONNECTION"
SERVER = ("10.0.0.2", "10.0.0.1", 80, 40000)


def http_exchange(request: bytes, response: bytes) -> list[bytes]:
    """A whole connection: handshake, one request and its response, both FINs."""
    req, resp = len(request), len(response)
    return [frame(seq=1000, flags=SYN),
            frame(*SERVER, seq=5000, ack=1001, flags=SYN | ACK),
            frame(seq=1001, ack=5001, flags=ACK),
            frame(seq=1001, ack=5001, flags=ACK | PSH, payload=request),
            frame(*SERVER, seq=5001, ack=1001 + req, flags=ACK | PSH, payload=response),
            frame(seq=1001 + req, ack=5001 + resp, flags=FIN | ACK),
            frame(*SERVER, seq=5001 + resp, ack=1002 + req, flags=FIN | ACK),
            frame(seq=1002 + req, ack=5002 + resp, flags=ACK)]


@pytest.mark.parametrize("value", [
    b"9" * 5000,                    # past Python's 4,300-digit int limit
    b"18446744073709551616",        # 2**64
    b"-1", b"1e9", b"0x10", b"\xff\xfe", b"",
])
def test_absurd_content_length_on_either_side_keeps_the_record(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, value: bytes) -> None:
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + value + b"\r\n\r\nabc"
    response = b"HTTP/1.1 200 OK\r\nContent-Length: " + value + b"\r\n\r\nok"
    path = tmp_path / "cl.pcap"
    path.write_bytes(pcap(http_exchange(request, response)))
    status, stdout, stderr = run_cli(capsys, "analyze", str(path), "-f", "jsonl")
    assert (status, stderr) == (0, "")
    [record] = [json.loads(line) for line in stdout.splitlines()]
    assert record["outcome"] == "CLOSED"
    assert record["reuse"] == {"protocol": "http/1.1", "requests": 1, "responses": 1,
                               "idle_gaps_ms": []}
    assert record["bytes"] == {"client": len(request), "server": len(response)}


def test_absurd_chunk_size_and_header_count_keep_the_record(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    request = b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 5000 + b"\r\n"
    response = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"f" * 5000
                + b"\r\nab")
    path = tmp_path / "chunk.pcap"
    path.write_bytes(pcap(http_exchange(request, response)))
    status, stdout, stderr = run_cli(capsys, "analyze", str(path), "-f", "jsonl")
    assert (status, stderr) == (0, "")
    [record] = [json.loads(line) for line in stdout.splitlines()]
    assert record["reuse"] == {"protocol": "http/1.1", "requests": 1, "responses": 1,
                               "idle_gaps_ms": []}


FAILED_WARNING = ("tcptrace: warning: internal_error: 1 connection left out after an "
                  "internal error in their analysis (a tcptrace bug: please report it with "
                  "the capture); the other connections are complete\n")


def test_a_failure_in_one_connection_costs_only_that_connection(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A panic while one connection is analysed (forced through the test hook, which fails
    connection 2 as it opens) leaves that connection out, counted and warned about once;
    every other record is the same as without the failure, and the exit status is 0."""
    capture = PCAPS / "crafted" / "refused_then_ok.pcap"
    status, stdout, _ = run_cli(capsys, "analyze", str(capture), "-f", "jsonl")
    whole = [json.loads(line) for line in stdout.splitlines()]
    assert status == 0 and [r["id"] for r in whole] == [1, 2]
    monkeypatch.setenv(PANIC_IN_CONNECTION, "1")
    status, stdout, stderr = run_cli(capsys, "analyze", str(capture), "-f", "jsonl")
    assert (status, stderr) == (0, FAILED_WARNING)
    assert [json.loads(line) for line in stdout.splitlines()] == whole[1:]
    status, stdout, stderr = run_cli(capsys, "analyze", str(capture), "-f", "json")
    assert (status, stderr) == (0, FAILED_WARNING)
    report = json.loads(stdout)
    assert test_schema.errors(test_schema.validator(), report) == []
    source = report["source"]
    assert source["failed_connections"] == 1
    assert source["warnings"] == [FAILED_WARNING.removeprefix("tcptrace: warning: ").strip()]


def test_a_failure_in_one_connection_with_jobs(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Under --jobs the hook's id is a shard's own; the run still ends with status 0, the
    failures counted and warned once, and the other records kept."""
    linux = sorted(map(str, (PCAPS / "linux").glob("*.pcap")))
    status, stdout, _ = run_cli(capsys, "analyze", *linux, "-f", "jsonl", "--jobs", "2")
    whole = {r["id"]: r for r in map(json.loads, stdout.splitlines())}
    monkeypatch.setenv(PANIC_IN_CONNECTION, "1")
    status, stdout, stderr = run_cli(capsys, "analyze", *linux, "-f", "json", "--jobs", "2")
    report = json.loads(stdout)
    failed = report["source"]["failed_connections"]
    assert status == 0 and failed >= 1
    assert stderr.count("internal_error") == 1
    kept = report["connections"]
    assert len(kept) == len(whole) - failed
    assert all(whole[c["id"]]["packets"] == c["packets"] for c in kept)


def non_utf8_capture(tmp_path: Path) -> tuple[str, str]:
    """A capture whose name is not UTF-8 (byte 0xE9, latin-1 'é'): the name as Python's
    argv holds it (os.fsdecode, a surrogate), and as tcptrace shows it (\\xNN escapes)."""
    raw = os.fsencode(tmp_path) + b"/caf\xe9.pcap"
    Path(os.fsdecode(raw)).write_bytes((PCAPS / "crafted" / "refused_then_ok.pcap").read_bytes())
    return os.fsdecode(raw), f"{tmp_path}/caf\\xe9.pcap"


def test_non_utf8_file_name_through_every_command(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A file name that is not UTF-8 is read, and shown with \\xNN escapes (as `ls -b` shows
    it) in the json, the HTML page and the error lines: these are UTF-8 text, which cannot
    carry the raw byte (Python's surrogateescape would fail to encode there)."""
    name, shown = non_utf8_capture(tmp_path)
    status, stdout, stderr = run_cli(capsys, "analyze", name, "-f", "json")
    assert (status, stderr) == (0, "")
    report = json.loads(stdout)
    assert report["source"]["files"] == [shown]
    assert [c["id"] for c in report["connections"]] == [1, 2]
    for args in (["-f", "jsonl"], ["-f", "csv"], ["-f", "zeek"], []):
        status, stdout, stderr = run_cli(capsys, "analyze", name, *args)
        assert (status, stderr) == (0, "") and stdout
    status, stdout, _ = run_cli(capsys, "check", "--no-rst", name)
    assert status == 1 and stdout.startswith("FAIL  no RST: 1 of 2 connections\n")
    status, stdout, stderr = run_cli(capsys, "ladder", "--conn", "2", name)
    assert (status, stderr) == (0, "")
    assert stdout.startswith("connection 2: 10.0.0.1:")
    page = tmp_path / "page.html"
    status, _, stderr = run_cli(capsys, "report", "-q", "-o", str(page), name)
    assert (status, stderr) == (0, "")
    assert f"<title>tcptrace report: {shown}</title>" in page.read_text(encoding="utf-8")
    missing = os.fsdecode(os.fsencode(tmp_path) + b"/gone\xff.pcap")
    status, _, stderr = run_cli(capsys, "analyze", missing)
    assert (status, stderr) == (
        2, f"tcptrace: error: {tmp_path}/gone\\xff.pcap: cannot open: No such file or directory\n")


@pytest.mark.parametrize(("text", "message"), [
    ("a = " + "[" * 5000 + "]" * 5000, "invalid TOML: values nested too deeply"),
    ("a = " + "{b = " * 5000 + "1" + "}" * 5000, "invalid TOML: values nested too deeply"),
])
def test_rules_nested_5000_deep_is_one_line(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, message: str) -> None:
    rules = tmp_path / "deep.toml"
    rules.write_text(text)
    status, stdout, stderr = run_cli(capsys, "check", "--rules", str(rules),
                                     str(PCAPS / "linux" / "refused.pcap"))
    assert (status, stdout, stderr) == (2, "", f"tcptrace: error: {rules}: {message}\n")


def test_rules_from_an_endless_file_is_a_bounded_read(
        capsys: pytest.CaptureFixture[str]) -> None:
    status, stdout, stderr = run_cli(capsys, "check", "--rules", "/dev/zero",
                                     str(PCAPS / "linux" / "refused.pcap"))
    assert (status, stdout, stderr) == (
        2, "", "tcptrace: error: /dev/zero: not a rules file: larger than 1 MiB\n")


def test_jobs_when_no_thread_can_start_is_one_line(tmp_path: Path) -> None:
    """A thread the engine cannot start under --jobs (here: a 1 TiB stack through
    RUST_MIN_STACK makes pthread_create fail with EAGAIN, as a process or memory limit
    would) is one line and exit 2, not a panic."""
    capture = PCAPS / "linux" / "half_close.pcap"
    env = {**os.environ, "RUST_MIN_STACK": str(1 << 40)}
    done = subprocess.run([sys.executable, "-m", "tcptrace.cli", "analyze", "--jobs", "2",
                           str(capture), "-f", "jsonl"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == ("tcptrace: error: --jobs 2: cannot start a thread: Resource "
                           "temporarily unavailable (os error 11)\n")


HANDSHAKE_RECORD = 16 + 54  # a pcap record header and an Ethernet/IPv4/TCP frame


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_file_truncated_while_read_keeps_records(tmp_path: Path, jobs: str) -> None:
    """A capture cut short while it is being read (rewritten by the capturing process):
    the truncation warning of a cut file, exit 0, and every connection read before the
    cut written, with one thread or two."""
    path = tmp_path / "growing.pcap"
    frames = [f for i in range(60_000) for f in handshake(sport=1024 + i)]
    path.write_bytes(pcap(frames))
    child = subprocess.Popen([sys.executable, "-m", "tcptrace.cli", "analyze", "--jobs", jobs,
                              str(path), "-f", "jsonl"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    fds = Path(f"/proc/{child.pid}/fd")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and child.poll() is None:
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) == str(path) for fd in fds.iterdir()):
                break
    os.truncate(path, 1_000_000)  # the file is open: the reader meets the cut as it reads
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 0
    records = [json.loads(line) for line in stdout.splitlines()]
    if not stderr:  # the whole file was read before the cut
        assert len(records) == 60_000
        return
    match = re.fullmatch(
        rf"tcptrace: warning: truncated_record: {re.escape(str(path))}: file ends inside a "
        r"record at byte (\d+) \(after frame (\d+); (\d+) bytes dropped\); the capture was "
        r"probably cut short\n", stderr)
    assert match, stderr
    frames_read = (int(match[1]) - 24) // HANDSHAKE_RECORD
    assert int(match[2]) == frames_read
    assert len(records) == -(-frames_read // 3)
    assert [r["id"] for r in records] == list(range(1, len(records) + 1))


CLOCK_JUMP_WARNING = (
    "tcptrace: warning: clock_jump: timestamps went back more than an hour behind the latest "
    "seen 1 time (a damaged timestamp, or captures of different times): connections were "
    "released on the later clock; a duration across the jump is meaningless\n")


def whole_connection(sport: int) -> list[bytes]:
    return [*handshake(sport),
            frame(sport=sport, seq=1001, ack=5001, flags=FIN | ACK),
            frame("10.0.0.2", "10.0.0.1", 80, sport, seq=5001, ack=1002, flags=FIN | ACK),
            frame(sport=sport, seq=1002, ack=5002, flags=ACK)]


def test_a_timestamp_30_years_ahead_is_warned_and_every_record_kept(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """One frame 30 years ahead (a flipped bit in the seconds field) among 1,500 whole
    connections: the clock that releases ended connections comes back (so memory stays
    bounded by live connections, benchmarks/hostile_memory.py `jump`), one warning, and
    every connection written once."""
    frames = [f for i in range(1500) for f in whole_connection(1024 + i)]
    data = bytearray(pcap(frames))
    at = 24 + 4000 * (16 + 54)  # frame 4001, in the first slice of 8,192 segments
    seconds = int.from_bytes(data[at:at + 4], "little")
    data[at:at + 4] = (seconds + 30 * 365 * 86_400).to_bytes(4, "little")
    path = tmp_path / "jump.pcap"
    path.write_bytes(bytes(data))
    status, stdout, stderr = run_cli(capsys, "analyze", str(path), "-f", "jsonl")
    steps = [("time_backwards", 4002, "946079999 s earlier than", "more than a second"),
             ("time_jump", 4001, "946080001 s later than", "more than a day")]
    time_warnings = "".join(
        f"tcptrace: warning: {kind}: {path}, frame {frame}: timestamp {step} the frame before "
        f"({threshold}; 1 time in all): a damaged timestamp, a clock set while capturing, or "
        "captures of different times; each connection's clock never goes back, and a "
        "handshake time across such a step is left null\n"
        for kind, frame, step, threshold in steps)
    assert (status, stderr) == (0, time_warnings + CLOCK_JUMP_WARNING)
    records = [json.loads(line) for line in stdout.splitlines()]
    assert sorted(r["id"] for r in records) == list(range(1, 1501))
    assert sum(r["outcome"] == "CLOSED" for r in records) == 1500


def test_many_files_merge_to_the_records_of_one(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """150 files of a rotation (past 16 files their read chunks share a budget, so memory
    stays bounded: benchmarks/hostile_memory.py `files`) give the records of one file."""
    frames = [f for i in range(1500) for f in whole_connection(1024 + i)]
    one = tmp_path / "one.pcap"
    one.write_bytes(pcap(frames))
    data = one.read_bytes()
    size = 16 + 54
    parts = []
    for k in range(150):
        part = tmp_path / f"part{k:03}.pcap"
        part.write_bytes(data[:24] + data[24 + k * 60 * size: 24 + (k + 1) * 60 * size])
        parts.append(str(part))
    status, whole, _ = run_cli(capsys, "analyze", str(one), "-f", "jsonl")
    assert status == 0
    status, merged, stderr = run_cli(capsys, "analyze", *parts, "-f", "jsonl")
    assert (status, stderr) == (0, "")
    assert len(merged.splitlines()) == 1500
    assert merged == whole


def test_ladder_honours_the_flow_table_cap(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`ladder` takes --max-flows (and --linger, --verify-checksums) as every command that
    reads captures does: a SYN flood cannot make it hold more connections than that."""
    flood = [frame(sport=1024 + i, seq=i, flags=SYN) for i in range(3000)]
    path = tmp_path / "flood.pcap"
    path.write_bytes(pcap(flood))
    status, stdout, stderr = run_cli(capsys, "ladder", "--conn", "5", "--max-flows", "10",
                                     "--no-progress", str(path))
    assert status == 0
    assert stdout.startswith("connection 5: 10.0.0.1:1028 -> 10.0.0.2:80, UNANSWERED, 1 segment,")
    assert stderr == ""  # (ladder prints no warnings)


def test_a_decompression_bomb_is_read_through_in_bounded_memory(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A pcap header and 64 MiB of zeros in 65 KB of gzip (a ratio of 1,000; the 10 GiB
    bomb of benchmarks/hostile_memory.py reads in 14 s and 29 MB): read to the end as zcat
    and tshark would, every 16 zero bytes an empty record, counted and warned once. No
    ratio limit: memory stays bounded by the read chunk, and Ctrl-C ends the run with a
    whole report."""
    import gzip

    path = tmp_path / "bomb.pcap.gz"
    with gzip.open(path, "wb") as out:
        out.write(pcap([]))
        for _ in range(64):
            out.write(bytes(1 << 20))
    assert path.stat().st_size < 70_000
    status, stdout, stderr = run_cli(capsys, "analyze", str(path), "-f", "json")
    records = 64 * (1 << 20) // 16
    assert (status, stderr) == (
        0, f"tcptrace: warning: truncated_link_header: {path}: {records} frame(s) too short "
           "for their link-layer header skipped (first: frame 1)\n")
    source = json.loads(stdout)["source"]
    assert (source["packets"], source["skipped"]) == (records, {"truncated_link_header": records})
