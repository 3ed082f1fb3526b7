"""`analyze --jobs N` on the native engine's threads: the same bytes as `--jobs 1`.

Flows are split between shard threads by a hash of their 4-tuple; ids, previous_id, the
record order, the summary (and its key order), the source report and the warnings must come
out as the single-thread run writes them, in every format, on every capture we have.
Identity is promised while no shard's flow table reaches --max-flows (docs/performance.md);
the --max-flows case here stays under it.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from conftest import BENCH, PCAPS, SHARED, captures, pcap_slice, run_cli
from random_traffic import random_capture, tcp_frame

from tcptrace import _native, native
from tcptrace.defaults import MAX_JOBS

BUNDLED = captures(PCAPS)
CORPUS = captures(SHARED / "corpus") if (SHARED / "corpus").is_dir() else []
SLICE_PACKETS = 200_000
FORMATS = ["json", "jsonl", "csv", "table"]
# the Zeek view and the checksum check ride along in the shards (the ledger per shard)
ZEEK_AND_CHECKSUMS = [("--zeek",), ("--verify-checksums",), ("--zeek", "--verify-checksums")]


def _without_clock(data: bytes) -> bytes:
    """A conn.log without its #open/#close lines (the wall clock when it was written)."""
    return b"".join(line for line in data.splitlines(keepends=True)
                    if not line.startswith((b"#open\t", b"#close\t")))


def _run(capsys: pytest.CaptureFixture[str], tmp_path: Path, jobs: int, fmt: str,
         *paths: Path | str, extra: tuple[str, ...] = ()) -> tuple[int, bytes, str]:
    out = tmp_path / f"jobs{jobs}.{fmt}"
    status, stdout, stderr = run_cli(capsys, "analyze", *map(str, paths), "-f", fmt,
                                     "-o", str(out), "--jobs", str(jobs), *extra)
    written = out.read_bytes() if out.exists() else b""
    if fmt == "zeek":
        assert written.count(b"#open\t") == written.count(b"#close\t") == (status == 0)
        written = _without_clock(written)
    return status, written, stdout + stderr


def _same(capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str, *paths: Path | str,
          extra: tuple[str, ...] = (), jobs: tuple[int, ...] = (2, 3, 4)) -> bytes:
    """Every `jobs` count against --jobs 1; the single run's output."""
    single = _run(capsys, tmp_path, 1, fmt, *paths, extra=extra)
    for n in jobs:
        sharded = _run(capsys, tmp_path, n, fmt, *paths, extra=extra)
        assert sharded[0] == single[0], (n, sharded[2], single[2])
        assert sharded[2] == single[2], n
        if sharded[1] != single[1]:
            a, b = sharded[1].splitlines(), single[1].splitlines()
            first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                         min(len(a), len(b)))
            pytest.fail(f"--jobs {n} {fmt} differs from line {first + 1}:\n"
                        f"jobs {n}: {a[first:first + 3]!r}\njobs 1: {b[first:first + 3]!r}")
    return single[1]


@pytest.mark.parametrize("capture", BUNDLED, ids=lambda p: str(p.relative_to(PCAPS)))
@pytest.mark.parametrize("fmt", FORMATS)
def test_bundled_captures(capsys: pytest.CaptureFixture[str], tmp_path: Path, capture: Path,
                          fmt: str) -> None:
    _same(capsys, tmp_path, fmt, capture)


@pytest.mark.parametrize("capture", BUNDLED, ids=lambda p: str(p.relative_to(PCAPS)))
@pytest.mark.parametrize("fmt,extra", [
    *(("jsonl", extra) for extra in ZEEK_AND_CHECKSUMS),
    ("csv", ("--zeek", "--verify-checksums")),
    ("zeek", ()),
    ("zeek", ("--verify-checksums",)),
], ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
def test_bundled_captures_zeek_and_checksums(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path, capture: Path, fmt: str,
                                             extra: tuple[str, ...]) -> None:
    _same(capsys, tmp_path, fmt, capture, extra=extra, jobs=(2, 3))


@pytest.mark.parametrize("capture", CORPUS,
                         ids=lambda p: str(p.relative_to(SHARED / "corpus")))
def test_corpus(capsys: pytest.CaptureFixture[str], tmp_path: Path, capture: Path) -> None:
    _same(capsys, tmp_path, "json", capture, jobs=(2, 3))


@pytest.mark.parametrize("capture", CORPUS,
                         ids=lambda p: str(p.relative_to(SHARED / "corpus")))
def test_corpus_zeek_and_checksums(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                   capture: Path) -> None:
    _same(capsys, tmp_path, "json", capture, extra=("--zeek", "--verify-checksums"),
          jobs=(2, 3))
    _same(capsys, tmp_path, "zeek", capture, jobs=(2,))


@pytest.mark.parametrize("seed", range(100))
def test_random_traffic_zeek_and_checksums(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           seed: int) -> None:
    """Random traffic (wrong checksums, port reuse, every gap): the ledger per shard."""
    capture = tmp_path / f"random{seed}.pcap"
    capture.write_bytes(random_capture(seed))
    for extra in ZEEK_AND_CHECKSUMS:
        _same(capsys, tmp_path, "jsonl", capture, extra=extra, jobs=(2, 3))
    _same(capsys, tmp_path, "zeek", capture, extra=("--verify-checksums",), jobs=(2, 3))


def _late_bad_checksum_capture() -> bytes:
    """Connection A on a 4-tuple ends early; 16,000 segments of another flow follow (the first
    feed slice ends within the first MiB, the capture goes on past it: a later read piece of
    the same batch); then a bad-checksum SYN and connection B on A's 4-tuple."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

    def add(t_us: int, frame: bytes) -> None:
        out.extend(struct.pack("<IIII", 1_700_000_000 + t_us // 1_000_000, t_us % 1_000_000,
                               len(frame), len(frame)) + frame)

    c, s, f, g = (1, 2, 40000, 80), (2, 1, 80, 40000), (3, 4, 50000, 8080), (4, 3, 8080, 50000)
    add(0, tcp_frame(*c, 1000, 0, 0x02, b"", None, checksums=True))
    add(1000, tcp_frame(*s, 5000, 1001, 0x12, b"", None, checksums=True))
    add(2000, tcp_frame(*c, 1001, 5001, 0x10, b"", None, checksums=True))
    add(3000, tcp_frame(*c, 1001, 5001, 0x04, b"", None, checksums=True))
    add(100_000, tcp_frame(*f, 1, 0, 0x02, b"", None, checksums=True))
    add(100_100, tcp_frame(*g, 1, 2, 0x12, b"", None, checksums=True))
    for i in range(16000):  # 80 bytes each: the first slice ends in the first MiB
        add(100_200 + i * 300, tcp_frame(*f, 2 + 10 * i, 2, 0x10, b"x" * 10, None,
                                         checksums=True))
    add(6_000_000, tcp_frame(*c, 90000, 0, 0x02, b"", None, checksums=False))
    add(6_001_000, tcp_frame(*c, 90000, 0, 0x02, b"", None, checksums=True))
    add(6_002_000, tcp_frame(*s, 7000, 90001, 0x12, b"", None, checksums=True))
    add(6_003_000, tcp_frame(*c, 90001, 7001, 0x10, b"", None, checksums=True))
    return bytes(out)


def test_ledger_takes_a_whole_batch_before_its_good_segments(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The single run adds a batch's bad segments to the ledger before it feeds any good one
    of it, so A, swept at the end of the first slice, takes the bad SYN read a piece later
    (Python's ledger did the same; the lead decides whether that stays): --jobs must too."""
    capture = tmp_path / "late_bad.pcap"
    capture.write_bytes(_late_bad_checksum_capture())
    assert capture.stat().st_size > 1 << 20
    out = _same(capsys, tmp_path, "jsonl", capture, extra=("--zeek", "--verify-checksums"),
                jobs=(2, 3))
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["id"], r["client"]["port"], r["previous_id"], r["zeek"]["history"])
            for r in records] == [(1, 40000, None, "ShARC"), (2, 50000, None, "ShD"),
                                  (3, 40000, 1, "ShA")]


def test_random_traffic_merged(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Many random captures merged by time: connections on every shard, ledgers on each."""
    paths = []
    for seed in range(100):
        paths.append(tmp_path / f"random{seed}.pcap")
        paths[-1].write_bytes(random_capture(seed))
    for extra in ZEEK_AND_CHECKSUMS:
        out = _same(capsys, tmp_path, "jsonl", *paths, extra=extra, jobs=(2, 3, 4))
        assert out.count(b"\n") > 100
    _same(capsys, tmp_path, "zeek", *paths, extra=("--verify-checksums",), jobs=(2, 3))


@pytest.mark.parametrize("fmt", FORMATS)
def test_several_files_merged(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                              fmt: str) -> None:
    crafted = PCAPS / "crafted"
    _same(capsys, tmp_path, fmt, crafted / "ref_split_b.pcap", crafted / "ref_split_a.pcap")
    _same(capsys, tmp_path, fmt, *sorted((PCAPS / "linux").glob("*.pcap")))


@pytest.mark.parametrize("extra", [
    ("--filter", "port 8080 and not host 10.77.0.9"),
    ("--filter", "port 8080", "--zeek", "--verify-checksums"),
    ("--filter", "src net 10.77.0.0/24 or ip6"),
    ("--linger", "0", "--msl", "0.001"),
    ("--max-flows", "5"),
])
@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_options(capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: tuple[str, ...],
                 fmt: str) -> None:
    _same(capsys, tmp_path, fmt, *sorted((PCAPS / "linux").glob("*.pcap")),
          PCAPS / "transfer" / "download.pcap", extra=extra)


def test_port_reuse_keeps_previous_ids(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    """previous_id points at the global id of the connection the 4-tuple held before."""
    out = _same(capsys, tmp_path, "jsonl", PCAPS / "crafted" / "port_reuse.pcap",
                PCAPS / "crafted" / "refused_then_ok.pcap")
    records = [json.loads(line) for line in out.splitlines()]
    by_id = {r["id"]: r for r in records}
    reused = [r for r in records if r["previous_id"] is not None]
    assert reused, "the captures reuse ports"
    for r in reused:
        before = by_id[r["previous_id"]]
        assert before["id"] < r["id"]
        assert (before["client"], before["server"]) in (
            (r["client"], r["server"]), (r["server"], r["client"]))
    assert sorted(by_id) == list(range(1, len(records) + 1))


@pytest.mark.skipif(not BENCH.exists(), reason="benchmarks/data/bench.pcap not recorded")
@pytest.mark.parametrize("fmt", FORMATS)
def test_benchmark_slice(capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str) -> None:
    capture = pcap_slice(BENCH, SLICE_PACKETS, tmp_path / "slice.pcap")
    _same(capsys, tmp_path, fmt, capture, jobs=(2, 3))


@pytest.mark.skipif(not BENCH.exists(), reason="benchmarks/data/bench.pcap not recorded")
@pytest.mark.parametrize("fmt,extra", [("jsonl", ("--zeek", "--verify-checksums")),
                                       ("zeek", ("--verify-checksums",))])
def test_benchmark_slice_zeek_and_checksums(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path, fmt: str,
                                            extra: tuple[str, ...]) -> None:
    """Many read batches (whole batches for the ledger), every shard busy."""
    capture = pcap_slice(BENCH, SLICE_PACKETS, tmp_path / "slice.pcap")
    _same(capsys, tmp_path, fmt, capture, extra=extra, jobs=(2, 3))


def test_engine_panic_in_a_shard_is_one_line_and_keeps_what_was_read(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A panic in a shard thread: one line naming the file and frame, exit status 2, the
    connections read so far written (the json document complete), as the single run."""
    capture = PCAPS / "linux" / "half_close.pcap"
    monkeypatch.setenv(native.PANIC_HOOK, "30")
    status, stdout, stderr = run_cli(capsys, "analyze", str(capture), "-f", "jsonl",
                                     "--jobs", "2")
    assert status == 2
    assert stderr == (f"tcptrace: error: internal error in the native engine at {capture}, "
                      "frame 30: forced panic at frame 30 (TCPTRACE_PANIC_AT_FRAME)\n")
    records = [json.loads(line) for line in stdout.splitlines()]
    assert [r["id"] for r in records] == [1]
    assert records[0]["packets"] == {"client": 15, "server": 14}  # frames 1-29 of 40
    status, stdout, _ = run_cli(capsys, "analyze", str(capture), "-f", "json", "--jobs", "3")
    assert status == 2
    assert [c["id"] for c in json.loads(stdout)["connections"]] == [1]

    monkeypatch.setenv(native.PANIC_HOOK, "3")
    linux = sorted((PCAPS / "linux").glob("*.pcap"))
    status, stdout, stderr = run_cli(capsys, "analyze", *map(str, linux), "-f", "csv",
                                     "--jobs", "2")
    assert status == 2
    assert stderr.endswith(f"at frame 3 of {len(linux)} files merged by time: forced panic at "
                           "frame 3 (TCPTRACE_PANIC_AT_FRAME)\n")
    assert stdout.splitlines()[0].startswith("id,client.ip,")


def test_unreadable_capture_fails_alike(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    missing = tmp_path / "missing.pcap"
    single = run_cli(capsys, "analyze", str(missing), "-f", "jsonl")
    assert single[0] == 2
    assert run_cli(capsys, "analyze", str(missing), "-f", "jsonl", "--jobs", "2") == single


def test_too_many_jobs_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    # each shard holds a flow table and its buffers: --jobs 100000 asked for tens of GB
    # and ended in an allocation abort (exit 134, no message of ours)
    capture = PCAPS / "transfer" / "download.pcap"
    for spelling in ("--jobs", "-j"):
        code, out, err = run_cli(capsys, "analyze", str(capture), spelling, "100000")
        assert code == 2 and out == ""
        assert err.splitlines() == [
            "tcptrace: error: Invalid value for '-j' / '--jobs': 100000 is not in the range "
            f"1<=x<={MAX_JOBS}. (try 'tcptrace analyze --help')"]


def test_the_most_jobs_still_write_the_single_run(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    _same(capsys, tmp_path, "jsonl", PCAPS / "transfer" / "download.pcap", jobs=(MAX_JOBS,))


def test_the_engine_refuses_more_jobs_than_the_cli(tmp_path: Path) -> None:
    assert MAX_JOBS == _native.MAX_JOBS
    with pytest.raises(ValueError, match=f"jobs={MAX_JOBS + 1}: at most {MAX_JOBS}"):
        _native.Run([str(PCAPS / "transfer" / "download.pcap")], "jsonl", jobs=MAX_JOBS + 1)
