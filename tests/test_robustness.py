"""Damaged and hostile input: one-line errors, counted damage, warnings once per kind.

Captures are built byte by byte here (`pcap`, `pcapng`, `frame`) so every test says exactly
what is wrong with its input. Inputs the fuzzers found (the Python reader's atheris target,
before the engine moved to Rust; now fuzz/, cargo-fuzz) are inlined
as bytes at the end, one regression test each.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import pytest
from conftest import analyze

from tcptrace.cli import main

MAX_SNAPLEN = 16 << 20  # the largest record a pcap reader accepts (the readers' bound)

SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08
ETHERTYPE_IPV4, ETHERTYPE_ARP = 0x0800, 0x0806


def frame(src: str = "10.0.0.1", dst: str = "10.0.0.2", sport: int = 40000, dport: int = 80,
          seq: int = 1000, ack: int = 0, flags: int = SYN, payload: bytes = b"",
          proto: int = 6, ethertype: int = ETHERTYPE_IPV4) -> bytes:
    """An Ethernet frame carrying IPv4/TCP (or IPv4 with another protocol number)."""
    if proto == 6:
        l4 = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                         5 << 4, flags, 65535, 0, 0) + payload
    else:
        l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0x4000, 64, proto, 0,
                     bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    return b"\x02" * 6 + b"\x04" * 6 + struct.pack("!H", ethertype) + ip + l4


def handshake(sport: int = 40000) -> list[bytes]:
    return [frame(sport=sport, seq=1000, flags=SYN),
            frame("10.0.0.2", "10.0.0.1", 80, sport, seq=5000, ack=1001, flags=SYN | ACK),
            frame(sport=sport, seq=1001, ack=5001, flags=ACK)]


def record(data: bytes, ts: int = 0, orig: int | None = None, incl: int | None = None) -> bytes:
    """One pcap record (microsecond timestamps, little-endian)."""
    return struct.pack("<IIII", 1_700_000_000 + ts, 0, len(data) if incl is None else incl,
                       len(data) if orig is None else orig) + data


def pcap(frames: list[bytes], linktype: int = 1, snaplen: int = 65535) -> bytes:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)
    return header + b"".join(record(f, ts=i) for i, f in enumerate(frames))


def block(btype: int, body: bytes, length: int | None = None) -> bytes:
    """A pcapng block; `length` overrides the (padded) total length fields."""
    body += b"\0" * (-len(body) % 4)
    total = 12 + len(body) if length is None else length
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


SHB = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
IDB = block(1, struct.pack("<HHI", 1, 0, 65535))


def epb(data: bytes, ts_us: int = 1_700_000_000_000_000, iface: int = 0) -> bytes:
    return block(6, struct.pack("<IIIII", iface, ts_us >> 32, ts_us & 0xFFFFFFFF, len(data),
                                len(data)) + data)


def pcapng(*blocks: bytes) -> bytes:
    return SHB + IDB + b"".join(blocks)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit status, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def report(path: Path, **options: Any) -> tuple[int, dict[str, Any]]:
    """(connections, source report) of one capture, from the engine `analyze` runs."""
    records, source = analyze(path, **options)
    return len(records), source


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---- files that cannot be read at all: one line, exit status 2


@pytest.mark.parametrize(("name", "data", "message"), [
    ("notes.txt", b"hello, world\n", "not a pcap or pcapng capture (starts with 68656c6c)"),
    ("empty.pcap", b"", "empty file"),
    ("short.pcap", b"\xd4\xc3\xb2\xa1\x02\x00", "file ends inside the pcap header"),
    ("text.pcap.gz", b"not gzip at all", "not a pcap or pcapng capture (starts with 6e6f7420)"),
    ("empty.gz", gzip.compress(b""), "empty file"),
    ("bad.gz", b"\x1f\x8b\x08\x00" + b"\xff" * 40,
     "damaged gzip stream: Error -3 while decompressing data: invalid block type"),
    ("header-only.gz", b"\x1f\x8b\x08\x00\x00\x00\x00\x00",
     "damaged gzip stream: Compressed file ended before the end-of-stream marker was reached"),
])
def test_unreadable_file_is_one_line_and_exit_2(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, data: bytes,
        message: str) -> None:
    path = write(tmp_path, name, data)
    code, out, err = run(capsys, "analyze", str(path))
    assert (code, out, err) == (2, "", f"tcptrace: error: {path}: {message}\n")


def test_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "analyze", str(tmp_path))
    assert (code, out, err) == (2, "", f"tcptrace: error: {tmp_path}: is a directory, "
                                       "not a capture file\n")


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "nope.pcap"
    code, out, err = run(capsys, "analyze", str(path))
    assert (code, out, err) == (2, "", f"tcptrace: error: {path}: cannot open: "
                                       "No such file or directory\n")


# ---- damaged files: what was read before the damage is kept, the damage counted and
# ---- warned about once


def test_file_cut_inside_a_record(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = pcap(handshake())
    path = write(tmp_path, "cut.pcap", data[:-10])
    code, out, err = run(capsys, "analyze", "-f", "jsonl", str(path))
    assert code == 0 and out.count("\n") == 1  # the connection, from the first two packets
    assert '"packets":{"client":1,"server":1}' in out
    # tshark -r cut.pcap lists frames 1 and 2, then "cut short in the middle of a packet"
    assert err == (f"tcptrace: warning: truncated_record: {path}: file ends inside a record at "
                   "byte 164 (after frame 2; 60 bytes dropped); the capture was probably cut "
                   "short\n")
    _, source = report(path)
    assert source["packets"] == 2 and source["skipped"] == {"truncated_record": 1}


@pytest.mark.parametrize("cut", range(24, 250, 7))
def test_cut_anywhere_keeps_every_complete_record(tmp_path: Path, cut: int) -> None:
    data = pcap(handshake() + handshake(40001))
    path = write(tmp_path, "cut.pcap", data[:cut])
    _, source = report(path)
    boundaries = [24]
    while boundaries[-1] < len(data):
        boundaries.append(boundaries[-1] + 16 + struct.unpack_from("<I", data,
                                                                   boundaries[-1] + 8)[0])
    assert source["packets"] == sum(1 for b in boundaries[1:] if b <= cut)
    assert source["skipped"] == ({} if cut in boundaries else {"truncated_record": 1})


def test_gzip_cut_short_keeps_earlier_packets(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = gzip.compress(pcap(handshake() * 50), mtime=0)
    path = write(tmp_path, "cut.pcap.gz", data[: len(data) - 30])
    code, _, err = run(capsys, "analyze", "-f", "jsonl", "-o", str(tmp_path / "o"), str(path))
    assert code == 0
    assert err == (f"tcptrace: warning: truncated_record: {path}: stopped reading after frame "
                   "142: Compressed file ended before the end-of-stream marker was reached; "
                   "earlier packets are kept\n")
    _, source = report(path)
    # every complete record before the cut is kept, as zcat and tshark read them: 142 of 150
    assert source["packets"] == 142
    assert source["skipped"] == {"truncated_record": 1}


def test_gzip_name_on_a_plain_pcap_is_read_by_content(tmp_path: Path) -> None:
    path = write(tmp_path, "plain.pcap.gz", pcap(handshake()))
    assert report(path)[0] == 1


def test_pcapng_unknown_block_is_skipped(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    hs = handshake()
    data = pcapng(epb(hs[0]), block(0x0BADBEEF, b"whatever this is"), block(0x80000001, b""),
                  epb(hs[1]), epb(hs[2]))
    path = write(tmp_path, "unknown.pcapng", data)
    code, _, err = run(capsys, "analyze", "-f", "jsonl", "-o", str(tmp_path / "o"), str(path))
    assert (code, err) == (0, "")
    _, source = report(path)
    assert source["packets"] == 3 and source["tcp_segments"] == 3 and source["skipped"] == {}


def test_pcapng_block_length_not_multiple_of_4(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    hs = handshake()
    data = pcapng(epb(hs[0]), epb(hs[1]), block(6, b"\0" * 22, length=34), epb(hs[2]))
    path = write(tmp_path, "odd.pcapng", data)
    code, _, err = run(capsys, "analyze", "-f", "jsonl", "-o", str(tmp_path / "o"), str(path))
    assert code == 0
    assert err == (f"tcptrace: warning: corrupt_block: {path}: block at byte 224 (after frame "
                   "2) has an impossible length 34; the rest of the file was not read\n")
    _, source = report(path)
    assert source["packets"] == 2 and source["skipped"] == {"corrupt_block": 1}


def test_pcap_absurd_snaplen_still_catches_a_corrupt_record(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = pcap(handshake(), snaplen=0xFFFFFFFF) + record(b"x" * 64, incl=0x7FFFFFF0)
    path = write(tmp_path, "snaplen.pcap", data + b"\0" * 4096)
    code, _, err = run(capsys, "analyze", "-f", "jsonl", "-o", str(tmp_path / "o"), str(path))
    assert code == 0
    assert err == (f"tcptrace: warning: corrupt_record: {path}: record header at byte 234 "
                   f"(after frame 3) is damaged (length > {MAX_SNAPLEN}); the rest of the file "
                   "was not read\n")
    connections, source = report(path)
    assert connections == 1 and source["tcp_segments"] == 3


def test_record_longer_than_on_the_wire(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    """incl_len > orig_len is nonsense, but the bytes are there: read them, no snaplen_cut."""
    hs = handshake()
    data = pcap([]) + b"".join(record(f, ts=i, orig=20) for i, f in enumerate(hs))
    path = write(tmp_path, "incl.pcap", data)
    code, _, err = run(capsys, "analyze", "-f", "jsonl", "-o", str(tmp_path / "o"), str(path))
    assert (code, err) == (0, "")
    connections, source = report(path)
    assert connections == 1 and source["tcp_segments"] == 3 and source["skipped"] == {}


def test_zero_length_records_warned_once_with_count(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    hs = handshake()
    path = write(tmp_path, "zero.pcap", pcap([hs[0], b"", b"", hs[1], b"", hs[2]]))
    code, _, err = run(capsys, "analyze", "-f", "jsonl", "-o", str(tmp_path / "o"), str(path))
    assert code == 0
    assert err == (f"tcptrace: warning: truncated_link_header: {path}: 3 frame(s) too short "
                   "for their link-layer header skipped (first: frame 2)\n")
    connections, source = report(path)
    assert connections == 1 and source["skipped"] == {"truncated_link_header": 3}


def test_unsupported_linktype_exit_0_with_warning(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    """A capture we cannot decode at all is still a valid capture: exit 0, a warning, counts."""
    path = write(tmp_path, "token-ring.pcap", pcap([b"\0" * 60] * 5, linktype=6))
    code, out, err = run(capsys, "analyze", "-f", "jsonl", str(path))
    assert (code, out) == (0, "")
    assert err == (f"tcptrace: warning: unsupported_linktype: {path}: 5 frame(s) of unsupported "
                   "link type 6 (Token Ring) not decoded (first: frame 1)\n")
    assert report(path)[1]["skipped"] == {"unsupported_linktype": 5}


def test_unsupported_linktypes_named_across_files(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    a = write(tmp_path, "a.pcap", pcap([b"\0" * 60] * 2, linktype=6))
    b = write(tmp_path, "b.pcap", pcap([b"\0" * 60] * 3, linktype=147))
    c = write(tmp_path, "c.pcap", pcap(handshake()))
    code, _, err = run(capsys, "analyze", "-f", "jsonl", "-o", str(tmp_path / "o"),
                       str(a), str(b), str(c))
    assert code == 0
    # several files: the first frame is named with its file (the first file that has one)
    assert err == ("tcptrace: warning: unsupported_linktype: 5 frame(s) of unsupported link type "
                   f"6 (Token Ring), 147 (user-defined) not decoded (first: {a} frame 1)\n")


def test_linktype_fcs_bits_are_ignored(tmp_path: Path) -> None:
    """libpcap keeps only the low 16 bits (LT_LINKTYPE); 0x04000000 flags an FCS length."""
    path = write(tmp_path, "fcs.pcap", pcap(handshake(), linktype=0x04000001))
    connections, source = report(path)
    assert connections == 1 and source["tcp_segments"] == 3 and source["skipped"] == {}


def test_decode_damage_warned_once_per_kind(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    hs = handshake()
    bad_ip = hs[0][:14] + b"\x43" + hs[0][15:]  # IHL 3
    short_ip = hs[0][:24]
    short_tcp = hs[0][:40]
    bad_tcp = hs[0][:46] + b"\x20" + hs[0][47:]  # data offset 2
    cut = hs[0]
    frames = [bad_ip, short_ip, short_tcp, bad_tcp, bad_ip, short_tcp, *hs]
    data = pcap(frames) + record(cut, ts=9, orig=len(cut) + 100)
    path = write(tmp_path, "damage.pcap", data)
    code, _, err = run(capsys, "analyze", "-f", "jsonl", "-o", str(tmp_path / "o"), str(path))
    assert code == 0
    w = f"tcptrace: warning: {{}}: {path}: {{}}\n"
    # each names its first frame as tshark numbers them (frames 1-10 in the list above)
    assert err == "".join(w.format(*kv) for kv in [
        ("truncated_ip_header", "1 frame(s) too short for their IP header skipped "
                                "(first: frame 2)"),
        ("bad_ip_header", "2 packet(s) with an invalid IP header skipped (first: frame 1)"),
        ("truncated_tcp_header", "2 frame(s) too short for the 20-byte TCP header skipped "
                                 "(first: frame 3)"),
        ("bad_tcp_header", "1 segment(s) with an invalid TCP data offset skipped "
                           "(first: frame 4)"),
        ("snaplen_cut", "1 segment(s) cut by the snap length (first: frame 10); analyzed "
                        "without the bytes beyond the cut"),
    ])


def test_ordinary_non_tcp_traffic_is_counted_silently(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    frames = [*handshake(), frame(proto=17), frame(ethertype=ETHERTYPE_ARP),
              frame(proto=1), frame(dport=443)]
    path = write(tmp_path, "mixed.pcap", pcap(frames))
    code, _, err = run(capsys, "analyze", "-f", "jsonl", "-o", str(tmp_path / "o"),
                       "--filter", "port 80", str(path))
    assert (code, err) == (0, "")
    connections, source = report(path, filter="port 80")
    assert connections == 1
    # --filter runs on frames before decode: what it rejects is not decoded (nor counted
    # as not_ip/not_tcp; the UDP datagram to port 80 passes `port 80`, as in tcpdump);
    # without it the non-TCP frames are counted by kind
    assert source["skipped"] == {"filtered_out": 3, "not_tcp": 1}
    _, source = report(path)
    assert source["skipped"] == {"not_ip": 1, "not_tcp": 2}


def test_quiet_suppresses_warnings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, "token-ring.pcap", pcap([b"\0" * 60], linktype=6))
    assert run(capsys, "analyze", "-q", "-f", "jsonl", str(path)) == (0, "", "")


# ---- pcapng blocks too short for their fixed fields (found by reading the reader; the
# ---- fuzzer reaches them too): struct.error before the fix


@pytest.mark.parametrize("short", [
    block(6, b"\0" * 8),  # EPB of 20 bytes: its 20-byte fixed part does not fit
    block(2, b""),  # obsolete PB of 12 bytes
    block(3, b""),  # SPB of 12 bytes: caplen came out negative
    block(1, b""),  # IDB of 12 bytes
])
def test_pcapng_block_too_short_for_its_type(tmp_path: Path, short: bytes) -> None:
    hs = handshake()
    path = write(tmp_path, "short.pcapng", pcapng(epb(hs[0]), epb(hs[1]), epb(hs[2]), short))
    connections, source = report(path)
    assert connections == 1 and source["tcp_segments"] == 3
    assert source["skipped"] == {"bad_block": 1}
    assert [w.split(":")[0] for w in source["warnings"]] == ["bad_block"]  # type: ignore[union-attr]


def test_pcapng_idb_option_overrunning_its_block(tmp_path: Path) -> None:
    # if_tsoffset (code 14) claiming 8 bytes with only 4 left, at the very end of the file
    idb = struct.pack("<II", 1, 28) + struct.pack("<HHI", 1, 0, 65535) + struct.pack(
        "<HHI", 14, 8, 0) + struct.pack("<I", 28)
    path = write(tmp_path, "opt.pcapng", SHB + idb)
    connections, source = report(path)
    assert connections == 0 and source["packets"] == 0


def test_pcapng_timestamp_beyond_int64_nanoseconds(tmp_path: Path) -> None:
    """A 64-bit microsecond timestamp overflows int64 ns: clamped, not OverflowError."""
    hs = handshake()
    path = write(tmp_path, "ts.pcapng",
                 pcapng(epb(hs[0]), epb(hs[1], ts_us=(1 << 64) - 1), epb(hs[2])))
    connections, source = report(path)
    assert connections == 1 and source["tcp_segments"] == 3


# ---- hostile input: the flow table cap holds


def test_max_flows_caps_the_table_during_a_syn_flood(tmp_path: Path) -> None:
    frames = [frame(src=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", sport=1024 + i % 60000)
              for i in range(3000)]
    path = write(tmp_path, "flood.pcap", pcap(frames))
    emitted, source = report(path, max_flows=100)
    assert emitted == 3000 and source["connections"] == 3000
    assert source["evicted_for_capacity"] == 2900


# ---- regressions the fuzzers found (first the Python reader's), inputs inlined

# gzip header + a deflate stream with a back-reference before its start: zlib.error, which is
# not an OSError, escaped the reader as a traceback. Now: a one-line "damaged gzip" error.
FUZZ_GZIP_ZLIB_ERROR = bytes.fromhex(
    "1f8b080000000000020395d1bf4bc3501007f07b2fa92d81627410b766131c6c944e6a4b118aa2a0a176adb8"
    "b83bd8550256ff0227e9d04ac9204ea58b8255e9529c441c14dc5cdcac4b912ef5dea509ed6b0918b8fc7821"
    "9ff7bdcb6bb356e1a08277f47a004cdcfcec1e88cb66bfb878e0746611c800acea9086f4c4ccad862b58bc54"
    "056be5e2899432efb6273f70510dd5dc1a110f6deac039192b6207cbd7be9812a297d558324d63672baafd63"
    "41a4392f04fe2185e6792fcd33868992d49fe2cfb34189504c97024595c4c658718a758abfbed8f244ab19f8"
    "0f28a3d390269644d520f1d39f58965414ebcdc08c21ca78276534504d89ae8bef7ec617a1fe016613ecefb6"
    "030000"
)


def test_fuzz_gzip_stream_with_bad_distance(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    path = write(tmp_path, "fuzz.gz", FUZZ_GZIP_ZLIB_ERROR)
    code, out, err = run(capsys, "analyze", str(path))
    assert (code, out) == (2, "")
    assert err.startswith(f"tcptrace: error: {path}: damaged gzip stream: Error -3 while "
                          "decompressing data") and err.count("\n") == 1
