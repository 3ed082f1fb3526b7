"""The native engine against the Python one: the same bytes on every capture we have.

Until "Native engine, part 2" retires it, the Python per-segment engine is the reference.
Every capture in pcaps/ and in ../shared/corpus/ (all of it: real traces, Suricata's and
Zeek's test captures, tcpdump's malformed and fuzzed ones, and the files there that are not
captures at all) is analyzed by both, through the command line; the json document (source
report with its warnings, summary, every record in id order), the exit status and stderr
must be identical. The bundled captures are also compared in jsonl, csv and table form, and
a 200k-packet slice of the benchmark capture when benchmarks/data/bench.pcap exists.

With Zeek's view (`--zeek`, `-f zeek`) and `--verify-checksums`, the bundled captures are
compared in every format and the corpus in json and the Zeek log (tests/test_zeek_corpus.py
compares the native engine's view with Zeek's own conn.log).

The one deliberate difference (a cut gzip stream: the native engine keeps every complete
record decompressed before the cut) has its own test, and no capture here shows it.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
from conftest import PCAPS, ROOT, SHARED, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcptrace import native

pytestmark = pytest.mark.skipif(not native.available(), reason="no native engine built")

BENCH = ROOT / "benchmarks" / "data" / "bench.pcap"
SLICE_PACKETS = 200_000


def _captures(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(
        (".md", ".py", ".json", ".log", ".txt", ".yaml", ".rules", ".out", ".zeek", ".sh")))


BUNDLED = _captures(PCAPS)
CORPUS = _captures(SHARED / "corpus") if (SHARED / "corpus").is_dir() else []


def _run(capsys: pytest.CaptureFixture[str], tmp_path: Path, engine: str, fmt: str,
         *paths: Path | str, extra: tuple[str, ...] = ()) -> tuple[int, bytes, str]:
    out = tmp_path / f"{engine}.{fmt}"
    status, stdout, stderr = run_cli(capsys, "analyze", *map(str, paths), "-f", fmt,
                                     "-o", str(out), "--engine", engine, *extra)
    return status, out.read_bytes() if out.exists() else b"", stdout + stderr


STAMP = re.compile(rb"^#(open|close)\t.*$", re.MULTILINE)
"""The Zeek log's wall-clock lines: the time of the run, not of the capture."""


def _same(capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str, *paths: Path | str,
          extra: tuple[str, ...] = ()) -> None:
    python = _run(capsys, tmp_path, "python", fmt, *paths, extra=extra)
    rust = _run(capsys, tmp_path, "native", fmt, *paths, extra=extra)
    if fmt == "zeek":
        assert len(STAMP.findall(rust[1])) == len(STAMP.findall(python[1]))
        python = (python[0], STAMP.sub(rb"#\1", python[1]), python[2])
        rust = (rust[0], STAMP.sub(rb"#\1", rust[1]), rust[2])
    assert rust[0] == python[0], (rust[2], python[2])
    assert rust[2] == python[2]
    if rust[1] != python[1]:
        rust_lines, python_lines = rust[1].splitlines(), python[1].splitlines()
        first = next((i for i, (a, b) in enumerate(zip(rust_lines, python_lines, strict=False))
                      if a != b), min(len(rust_lines), len(python_lines)))
        pytest.fail(f"{fmt} output differs from line {first + 1}:\n"
                    f"native: {rust_lines[first:first + 3]!r}\n"
                    f"python: {python_lines[first:first + 3]!r}")


@pytest.mark.parametrize("capture", BUNDLED, ids=lambda p: str(p.relative_to(PCAPS)))
@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "table"])
def test_bundled_captures(capsys: pytest.CaptureFixture[str], tmp_path: Path, capture: Path,
                          fmt: str) -> None:
    _same(capsys, tmp_path, fmt, capture)


@pytest.mark.parametrize("capture", BUNDLED, ids=lambda p: str(p.relative_to(PCAPS)))
@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "table"])
def test_bundled_captures_zeek(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                               capture: Path, fmt: str) -> None:
    _same(capsys, tmp_path, fmt, capture, extra=("--zeek",))
    _same(capsys, tmp_path, fmt, capture, extra=("--zeek", "--verify-checksums"))


@pytest.mark.parametrize("capture", BUNDLED, ids=lambda p: str(p.relative_to(PCAPS)))
def test_bundled_captures_zeek_log(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                   capture: Path) -> None:
    _same(capsys, tmp_path, "zeek", capture)
    _same(capsys, tmp_path, "zeek", capture, extra=("--verify-checksums",))
    _same(capsys, tmp_path, "jsonl", capture, extra=("--verify-checksums",))


@pytest.mark.parametrize("capture", CORPUS,
                         ids=lambda p: str(p.relative_to(SHARED / "corpus")))
def test_corpus(capsys: pytest.CaptureFixture[str], tmp_path: Path, capture: Path) -> None:
    _same(capsys, tmp_path, "json", capture)


@pytest.mark.parametrize("capture", CORPUS,
                         ids=lambda p: str(p.relative_to(SHARED / "corpus")))
def test_corpus_zeek(capsys: pytest.CaptureFixture[str], tmp_path: Path, capture: Path) -> None:
    """The Zeek view with checksums verified (the json document: skipped counts, records)
    and the Zeek log without (the form the zeek traces' conn.log baselines have)."""
    _same(capsys, tmp_path, "json", capture, extra=("--zeek", "--verify-checksums"))
    _same(capsys, tmp_path, "zeek", capture)


def test_zeek_and_checksums_are_native(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    """--zeek, -f zeek and --verify-checksums no longer fall back to the Python engine: the
    native engine takes them when asked for explicitly."""
    capture = PCAPS / "linux" / "half_close.pcap"
    for extra in (("-f", "zeek"), ("--zeek", "--verify-checksums", "-f", "jsonl")):
        status, stdout, stderr = run_cli(capsys, "analyze", str(capture), "--engine", "native",
                                         *extra)
        assert (status, stderr) == (0, "")
        assert stdout


def test_several_files_merged(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    crafted = PCAPS / "crafted"
    _same(capsys, tmp_path, "json", crafted / "ref_split_b.pcap", crafted / "ref_split_a.pcap")
    _same(capsys, tmp_path, "json", *sorted((PCAPS / "linux").glob("*.pcap")))


@pytest.mark.parametrize("extra", [
    ("--filter", "port 8080 and not host 10.77.0.9"),
    ("--filter", "src net 10.77.0.0/24 or ip6"),
    ("--linger", "0", "--msl", "0.001"),
    ("--max-flows", "2"),
])
def test_options(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                 extra: tuple[str, ...]) -> None:
    _same(capsys, tmp_path, "json", *sorted((PCAPS / "linux").glob("*.pcap")),
          PCAPS / "transfer" / "download.pcap", extra=extra)


@pytest.mark.skipif(not BENCH.exists(), reason="benchmarks/data/bench.pcap not recorded")
@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_benchmark_slice(capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str) -> None:
    _same(capsys, tmp_path, fmt, _pcap_slice(BENCH, SLICE_PACKETS, tmp_path / "slice.pcap"))


def _pcap_slice(source: Path, packets: int, target: Path) -> Path:
    """The first `packets` records of a classic pcap file."""
    with source.open("rb") as f, target.open("wb") as out:
        header = f.read(24)
        endian = "<" if header[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        out.write(header)
        for _ in range(packets):
            record = f.read(16)
            if len(record) < 16:
                break
            (incl,) = struct.unpack(endian + "I", record[8:12])
            out.write(record + f.read(incl))
    return target


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


# ---- random traffic: the same bytes from both engines on what no capture holds

HTTP_PIECES = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HEAD /x HTTP/1.0\r\n\r\n",
    b"POST /p HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.0 200 OK\r\n\r\nuntil close",
    b"1a;x\r\n", b"\r\n", b"GET /split", b" HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x05hello",
]


def _ones_complement(data: bytes) -> int:
    """RFC 1071: the 16-bit ones' complement of the ones' complement sum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _tcp_frame(src: int, dst: int, sport: int, dport: int, seq: int, ack: int, flags: int,
               payload: bytes, stamps: tuple[int, int] | None, checksums: bool = False) -> bytes:
    """An Ethernet frame; its TCP and IPv4 header checksums are right with `checksums`, else
    zero (wrong, for --verify-checksums)."""
    options = b"" if stamps is None else b"\x01\x01\x08\x0a" + struct.pack("!II", *stamps)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      (5 + len(options) // 4) << 4, flags, 512, 0, 0) + options + payload
    addresses = bytes([10, 0, 0, src]) + bytes([10, 0, 0, dst])
    if checksums:
        pseudo = addresses + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", _ones_complement(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0) + addresses
    if checksums:
        ip = ip[:10] + struct.pack("!H", _ones_complement(ip)) + ip[12:]
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp


def _random_capture(draw: st.DrawFn) -> bytes:
    """Segments of up to three connections (two share a 4-tuple: port reuse), with flags,
    seq/ack near the ISNs or anywhere, HTTP pieces or other bytes, TCP timestamps or not, and
    gaps from microseconds to minutes (linger, sweeps, tombstones)."""
    conns = draw(st.integers(1, 3))
    isn = [(draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)))
           for _ in range(conns)]
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    t_us = 0
    for _ in range(draw(st.integers(1, 40))):
        c = draw(st.integers(0, conns - 1))
        client = draw(st.booleans())
        flags = sum(draw(st.sets(st.sampled_from([0x01, 0x02, 0x04, 0x08, 0x10]))))
        seq = draw(st.one_of(st.integers(-2, 400), st.integers(0, 2**32 - 1)))
        ack = draw(st.one_of(st.integers(-2, 400), st.integers(0, 2**32 - 1)))
        payload = draw(st.one_of(st.sampled_from(HTTP_PIECES), st.binary(max_size=30)))
        stamps = draw(st.one_of(st.none(), st.tuples(st.integers(0, 50), st.integers(0, 50))))
        mine, theirs = isn[c] if client else isn[c][::-1]
        sport = 40000 + min(c, 1)  # connections 1 and 2 share a 4-tuple
        ends = (1, 2, sport, 80) if client else (2, 1, 80, sport)
        data = _tcp_frame(*ends, mine + seq, theirs + ack, flags, payload, stamps,
                          checksums=draw(st.integers(0, 3)) > 0)
        t_us += draw(st.sampled_from([0, 1, 40, 1000, 300_000, 700_000, 5_000_000, 70_000_000]))
        out += struct.pack("<IIII", 1_700_000_000 + t_us // 1_000_000, t_us % 1_000_000,
                           len(data), len(data)) + data
    return bytes(out)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(capture=st.composite(_random_capture)())
def test_random_traffic(capsys: pytest.CaptureFixture[str],
                        tmp_path_factory: pytest.TempPathFactory, capture: bytes) -> None:
    tmp = tmp_path_factory.mktemp("random")
    path = tmp / "random.pcap"
    path.write_bytes(capture)
    for fmt in ("jsonl", "csv"):
        _same(capsys, tmp, fmt, path)
    _same(capsys, tmp, "json", path, extra=("--linger", "0.2", "--msl", "0.5"))
    _same(capsys, tmp, "jsonl", path, extra=("--zeek",))
    _same(capsys, tmp, "csv", path, extra=("--zeek", "--verify-checksums", "--linger", "0.2"))


def test_cut_gzip_keeps_every_complete_record_decompressed(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The one deliberate difference: where a gzip stream is cut short, the native engine keeps
    every record decompressed before the cut (the Python engine loses its last 8 MiB chunk,
    here the whole file), with the same warning."""
    import gzip
    import zlib

    from test_robustness import handshake, pcap

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

    documents = {}
    for engine in ("native", "python"):
        status, _, stderr = run_cli(capsys, "analyze", str(path), "-f", "json", "-o",
                                    str(tmp_path / engine), "--engine", engine)
        assert status == 0
        assert stderr == (f"tcptrace: warning: truncated_record: {path}: stopped reading: "
                          "Compressed file ended before the end-of-stream marker was reached; "
                          "earlier packets are kept\n")
        documents[engine] = json.loads((tmp_path / engine).read_text())
    assert documents["python"]["source"]["packets"] == 0
    assert documents["native"]["source"]["packets"] == complete
    assert documents["native"]["source"]["skipped"] == {"truncated_record": 1}
    assert len(documents["native"]["connections"]) == 1  # one 4-tuple: the first SYN opens it
