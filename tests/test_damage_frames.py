"""Damage warnings name where the damage is: the first frame of each kind, numbered as
Wireshark and tshark number frames (`frame.number`, 1-based, per file), with its file when
several are read; reader damage (a file cut short, a damaged record or block) says after
which frame. The same text from one thread, `--jobs`, `--per-file` and the Dask executor.

Captures are built byte by byte (tests/test_robustness.py's builders), so every damaged
frame's number is known; real malformed captures of the tcpdump corpus are checked against
tshark where it is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SHARED, needs_dask, run_cli
from test_robustness import block, epb, frame, handshake, pcap, pcapng, record

CORPUS = SHARED / "corpus" / "tcpdump" / "pcaps"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(),
                                  reason="../shared/corpus is not beside this checkout")

BAD_IP = frame()[:14] + b"\x43" + frame()[15:]  # IHL 3
SHORT_IP = frame()[:24]
UDP = frame(proto=17)


def capture(frames: list[tuple[int, bytes]]) -> bytes:
    """A pcap of (second, frame) records, in that order."""
    return pcap([])[:24] + b"".join(record(f, ts=t) for t, f in frames)


def warnings(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> list[str]:
    """`analyze ARGS`'s warnings (exit 0), without the prefix."""
    status, _, err = run_cli(capsys, "analyze", "-f", "jsonl", "-o", str(tmp_path / "out"),
                             *args)
    assert status == 0, err
    prefix = "tcptrace: warning: "
    lines = [line for line in err.splitlines() if not line.startswith("tcptrace: dask:")]
    assert all(line.startswith(prefix) for line in lines), err
    return [line.removeprefix(prefix) for line in lines]


@pytest.fixture
def merged(tmp_path: Path) -> tuple[Path, Path]:
    """a.pcap: a handshake, then at 100 s a bad IP header (frame 4), at 101 s a short one
    (frame 5); b.pcap, earlier: a bad IP header at 1 s (frame 2, its first) and at 3 s
    (frame 4)."""
    a = tmp_path / "a.pcap"
    a.write_bytes(capture([*((i, f) for i, f in enumerate(handshake())),
                           (100, BAD_IP), (101, SHORT_IP)]))
    b = tmp_path / "b.pcap"
    b.write_bytes(capture([(0, UDP), (1, BAD_IP), (2, UDP), (3, BAD_IP)]))
    return a, b


def test_one_file_names_the_frame(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                  merged: tuple[Path, Path]) -> None:
    a, b = merged
    assert warnings(capsys, tmp_path, str(b)) == [
        f"bad_ip_header: {b}: 2 packet(s) with an invalid IP header skipped (first: frame 2)"]
    assert warnings(capsys, tmp_path, str(a), "--jobs", "2") == [
        f"truncated_ip_header: {a}: 1 frame(s) too short for their IP header skipped "
        "(first: frame 5)",
        f"bad_ip_header: {a}: 1 packet(s) with an invalid IP header skipped (first: frame 4)"]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_merge_names_the_file(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                merged: tuple[Path, Path], jobs: str) -> None:
    # the first is the first file's (in the order read) first: a.pcap frame 4, though
    # b.pcap's bad header came earlier in time; a kind only b.pcap has is named in it
    a, b = merged
    assert warnings(capsys, tmp_path, str(a), str(b), "--jobs", jobs) == [
        f"truncated_ip_header: 1 frame(s) too short for their IP header skipped (first: {a} "
        "frame 5)",
        f"bad_ip_header: 3 packet(s) with an invalid IP header skipped (first: {a} frame 4)"]
    assert warnings(capsys, tmp_path, str(b), str(a), "--jobs", jobs) == [
        f"truncated_ip_header: 1 frame(s) too short for their IP header skipped (first: {a} "
        "frame 5)",
        f"bad_ip_header: 3 packet(s) with an invalid IP header skipped (first: {b} frame 2)"]


def test_per_file_names_the_file(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                 merged: tuple[Path, Path]) -> None:
    # each file read alone, one after the other: numbered in its own file all the same
    a, b = merged
    ok = tmp_path / "ok.pcap"
    ok.write_bytes(pcap(handshake()))
    assert warnings(capsys, tmp_path, "--per-file", str(ok), str(b), str(a)) == [
        f"truncated_ip_header: 1 frame(s) too short for their IP header skipped (first: {a} "
        "frame 5)",
        f"bad_ip_header: 3 packet(s) with an invalid IP header skipped (first: {b} frame 2)"]


def test_frames_are_numbered_across_read_batches_in_a_merge(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # 40,000 frames: a reader hands them on in batches of at most 32,768; the merge with
    # b.pcap takes each batch a part at a time
    big = tmp_path / "big.pcap"
    frames = [(i // 1000, UDP) for i in range(40_000)]
    frames[34_999] = (34, SHORT_IP)
    big.write_bytes(capture(frames))
    b = tmp_path / "b.pcap"
    b.write_bytes(capture([(t, frame(flags=0x10, seq=t)) for t in range(0, 40, 3)]))
    expected = [f"truncated_ip_header: 1 frame(s) too short for their IP header skipped "
                f"(first: {big} frame 35000)"]
    assert warnings(capsys, tmp_path, str(b), str(big)) == expected
    assert warnings(capsys, tmp_path, str(b), str(big), "--jobs", "2") == expected
    assert warnings(capsys, tmp_path, str(big)) == [
        f"truncated_ip_header: {big}: 1 frame(s) too short for their IP header skipped "
        "(first: frame 35000)"]


def test_snap_length_cut_and_short_frames_name_their_first(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # counted on the good path: found among the segments, the first batch's that has one
    hs = handshake()
    short = frame(flags=0x18, seq=1001, payload=b"x" * 100)
    short = short[:16] + (20 + 20 + 200).to_bytes(2, "big") + short[18:]  # IP says 200 more
    data = (pcap(hs)[:24] + record(hs[0], ts=0) + record(hs[1], ts=1, orig=len(hs[1]) + 9)
            + record(hs[2], ts=2) + record(short, ts=3) + record(hs[2], ts=4, orig=99))
    path = tmp_path / "cut.pcap"
    path.write_bytes(data)
    assert warnings(capsys, tmp_path, str(path)) == [
        f"snaplen_cut: {path}: 2 segment(s) cut by the snap length (first: frame 2); analyzed "
        "without the bytes beyond the cut",
        f"short_frame: {path}: 1 frame(s) shorter than their IP length says (not cut by the "
        "snap length) (first: frame 4): only the payload present counted; short_frames in "
        "the records names their connections"]


def test_a_bad_pcapng_block_says_after_which_frame(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    # an EPB naming interface 7 (there is one): skipped, the reading goes on (Wireshark
    # stops there: frames 1 and 2 are what it shows); the frames after it are numbered as
    # tcptrace reads them
    hs = handshake()
    data = pcapng(epb(hs[0]), epb(hs[1]), epb(hs[2], iface=7), epb(BAD_IP), epb(hs[2]))
    path = tmp_path / "iface.pcapng"
    path.write_bytes(data)
    assert warnings(capsys, tmp_path, str(path)) == [
        f"bad_block: {path}: packet block at byte 224 (after frame 2) names an unknown "
        "interface or overruns",
        f"bad_ip_header: {path}: 1 packet(s) with an invalid IP header skipped (first: frame 3)"]
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(pcapng(epb(hs[0]), block(6, b"\0" * 40, length=30)))
    assert warnings(capsys, tmp_path, str(cut)) == [
        f"corrupt_block: {cut}: block at byte 136 (after frame 1) has an impossible length "
        "30; the rest of the file was not read"]


def tshark_frames(path: Path, display_filter: str) -> list[int] | None:
    """The frame numbers tshark's `display_filter` picks in `path` (None without tshark)."""
    tshark = shutil.which("tshark")
    if tshark is None:
        return None
    done = subprocess.run([tshark, "-r", str(path), "-Y", display_filter, "-T", "fields",
                           "-e", "frame.number"], capture_output=True, text=True, check=False)
    return [int(n) for n in done.stdout.split()]


@needs_corpus
def test_real_malformed_captures_name_the_frame_tshark_flags(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # kday4.pcap: tshark flags frame 10 "IPv4 total length exceeds packet length"
    # (ip.bogus_ip_length), the one short frame
    kday4 = CORPUS / "kday4.pcap"
    assert tshark_frames(kday4, "ip.bogus_ip_length") in (None, [10])
    assert f"short_frame: {kday4}: 1 frame(s) shorter than their IP length says (not cut by " \
           "the snap length) (first: frame 10): only the payload present counted; " \
           "short_frames in the records names their connections" in warnings(
               capsys, tmp_path, str(kday4))
    # ipv6-bad-version.pcap: frames 2 and 4 carry the IPv6 ethertype and a bad version
    # (tshark: "Bogus IP version", ipv6.bogus_ipv6_version)
    bad = CORPUS / "ipv6-bad-version.pcap"
    assert tshark_frames(bad, "ipv6.bogus_ipv6_version") in (None, [2, 4])
    assert warnings(capsys, tmp_path, str(bad)) == [
        f"bad_ip_header: {bad}: 2 packet(s) with an invalid IP header skipped (first: "
        "frame 2)"]



@needs_dask
def test_dask_names_the_same_frames(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch, merged: tuple[Path, Path],
                                    scheduler: str) -> None:
    a, b = merged
    big = tmp_path / "big.pcap"
    frames = [(i // 1000, UDP) for i in range(40_000)]
    frames[34_999] = (34, SHORT_IP)
    frames[39_000] = (39, BAD_IP)
    big.write_bytes(capture(frames))
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(big.read_bytes()[:-10])  # its last part ends inside a record
    dask = ("--executor", "dask", "--scheduler", scheduler)
    for paths in ([str(b), str(a)], [str(big)], [str(b), str(big), str(a)], [str(cut)]):
        single = warnings(capsys, tmp_path, *paths)
        assert any("(first: " in w for w in single)
        assert warnings(capsys, tmp_path, *paths, *dask) == single
        # a large file mapped in parts of 200 kB: the first is the smallest over its parts
        monkeypatch.setenv("TCPTRACE_DASK_PART_BYTES", "200000")
        assert warnings(capsys, tmp_path, *paths, *dask) == single
        monkeypatch.delenv("TCPTRACE_DASK_PART_BYTES")
