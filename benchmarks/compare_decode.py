"""Compare the native decoder (src/decode.rs) with tcptrace.decode, capture by capture.

For each capture, print every TCP segment and the decoder's skip counters from Python
(`tcptrace.decode.decode` over `tcptrace.sources.read_captures` batches) and from the Rust
example `dump_segments`, and report any difference. Classic pcap files are read by the
example itself; other captures (pcapng, gzip) are first written out as a frames file from
Python's reader, so every format Python reads is compared.

Usage (from the repository root, with the reference venv):
    cargo build --release --example dump_segments
    /work/refvenv/bin/python benchmarks/compare_decode.py [--show N] PATH...

PATH is a capture or a directory searched recursively; files that are not captures are
passed over. Exit status 1 if any capture differs.

With --mutants N, compare instead on N frames made by damaging the captures' frames and
packets built to reach decode's corners (the corpora hold few IPv6 extension headers,
bad data offsets or lying length fields); the corpora alone miss bugs there.
"""

from __future__ import annotations

import argparse
import difflib
import os
import struct
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from tcptrace.decode import SUPPORTED_LINKTYPES, decode, unsupported_linktypes
from tcptrace.errors import CaptureError
from tcptrace.sources import FrameBatch, SourceStats, read_captures
from tcptrace.sources.pcap import MAGICS

EXAMPLE = Path(__file__).resolve().parent.parent / "target/release/examples/dump_segments"
FRAMES_MAGIC = b"TTFRAMES"
# Byte values that mean something in the headers decode reads: next headers and protocols,
# version/length nibbles, flag and fragment bits, tag protocol identifiers
INTERESTING = (0, 1, 2, 4, 6, 8, 10, 17, 24, 28, 30, 43, 44, 51, 60, 0x20, 0x40, 0x45, 0x4F,
               0x50, 0x60, 0x81, 0x86, 0x88, 0x91, 0xA8, 0xDD, 0xF0, 0xFF)


def captures(paths: list[str]) -> Iterator[str]:
    """Every file of `paths`, directories searched recursively."""
    for path in paths:
        if os.path.isdir(path):
            for root, _, names in sorted(os.walk(path)):
                yield from (os.path.join(root, n) for n in sorted(names))
        else:
            yield path


def python_dump(path: str, frames_out: str | None) -> str:
    """The segments and counters of `path` in dump_segments' format; with `frames_out`,
    also write every frame read there as a frames file."""
    return dump_batches(read_captures([path], SourceStats()), frames_out)


def dump_batches(batches: Iterable[FrameBatch], frames_out: str | None) -> str:
    lines: list[str] = []
    skipped: Counter[str] = Counter()
    unsupported: set[int] = set()
    done = 0
    out = open(frames_out, "wb") if frames_out else None  # noqa: SIM115
    try:
        if out:
            out.write(FRAMES_MAGIC)
        for batch in batches:
            seg = decode(batch, skipped)
            d = batch.data
            if out:
                for i in range(len(batch)):
                    start, cap = int(batch.offset[i]), int(batch.caplen[i])
                    out.write(struct.pack("<qIII", int(batch.ts_ns[i]), cap,
                                          int(batch.wirelen[i]), int(batch.linktype[i])))
                    out.write(d[start:start + cap].tobytes())
            for j in range(len(seg)):
                i = int(seg.frame_index[j])
                start = int(batch.offset[i])
                src = int(seg.src_hi[j]) << 64 | int(seg.src_lo[j])
                dst = int(seg.dst_hi[j]) << 64 | int(seg.dst_lo[j])
                lines.append(
                    f"seg {done + i} {seg.ts_ns[j]} {src:032x} {dst:032x} {seg.sport[j]} "
                    f"{seg.dport[j]} {seg.seq[j]} {seg.ack[j]} {seg.flags[j]} {seg.window[j]} "
                    f"{seg.tcp_off[j] - start} {seg.tcp_hlen[j]} {seg.opt_cap[j]} "
                    f"{seg.payload_off[j] - start} {seg.payload_len[j]} {seg.payload_cap[j]} "
                    f"{seg.ip_len[j]}")
            unsupported |= unsupported_linktypes(batch.linktype)
            done += len(batch)
    except CaptureError:
        if not done:
            raise
        # compare the frames read before the damage (always so for a frames file; a
        # classic pcap fails only in its file header, before any frame)
    finally:
        if out:
            out.close()
    lines.insert(0, f"frames {done}")
    lines += [f"skipped {k} {v}" for k, v in sorted(skipped.items()) if v]
    lines.append("unsupported " + ",".join(map(str, sorted(unsupported))))
    return "\n".join(lines) + "\n"


def _pick(rng: np.random.Generator, values: tuple[int, ...] | list[int]) -> int:
    return int(values[int(rng.integers(len(values)))])


def synthetic(rng: np.random.Generator) -> tuple[int, bytes]:
    """A TCP/IP packet built from parts that matter to decode (IPv4 options, lengths and
    fragment bits; IPv6 extension header chains; TCP data offsets) under a random
    supported link header."""
    hlen = _pick(rng, (0, 4, 5, 5, 5, 6, 8, 15))
    payload = bytes(int(rng.integers(0, 40)))
    tcp = (struct.pack(">HHIIBBHHH", 1234, 80, 1, 2, hlen << 4 | _pick(rng, (0, 1)),
                       int(rng.integers(256)), 100, 0, 0) + bytes(max(0, hlen * 4 - 20))
           + payload)
    if rng.random() < 0.5:
        ihl = _pick(rng, (4, 5, 5, 6, 15))
        body = bytes(max(0, ihl * 4 - 20)) + tcp
        total = _pick(rng, (20 + len(body), 20 + len(body), 0, ihl * 4 + 10,
                            int(rng.integers(0, 100))))
        packet = struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, total, 0,
                             _pick(rng, (0, 0, 0x4000, 0x2000, 1, 0x8000, 0x1FFF)), 64,
                             _pick(rng, (6, 6, 6, 17)), 0, b"\x0a\0\0\x01", b"\x0a\0\0\x02")
        packet += body
    else:
        chain = [_pick(rng, (0, 43, 60, 51, 44, 17, 6)) for _ in range(int(rng.integers(0, 10)))]
        nh = _pick(rng, (6, 6, 6, 17, 59))
        rest = tcp
        for kind in reversed(chain):
            if kind == 44:
                head = struct.pack(">BBHI", nh, 0, _pick(rng, (0, 1, 6, 8, 9, 0xFFF8)), 7)
            else:
                n = _pick(rng, (0, 1, 2))
                size = (n + 2) * 4 if kind == 51 else (n + 1) * 8
                head = bytes([nh, n]) + bytes(max(0, size - 2))
            rest, nh = head + rest, kind
        plen = _pick(rng, (len(rest), len(rest), 0, int(rng.integers(0, 200))))
        packet = struct.pack(">IHBB16s16s", 0x60000000, plen, nh, 64, bytes(15) + b"\x01",
                             bytes(15) + b"\x02") + rest
    v6 = packet[0] >> 4 == 6
    link = _pick(rng, SUPPORTED_LINKTYPES)
    head = {0: struct.pack("<I", _pick(rng, (24, 28, 30)) if v6 else 2),
            108: struct.pack(">I", 10 if v6 else 2),
            113: bytes(14) + (b"\x86\xdd" if v6 else b"\x08\0"),
            276: (b"\x86\xdd" if v6 else b"\x08\0") + bytes(18),
            1: bytes(12) + b"\x81\0\0\x05" * int(rng.integers(0, 4))
            + (b"\x86\xdd" if v6 else b"\x08\0")}.get(link, b"")
    return link, head + packet


def mutants(paths: list[str], count: int, seed: int) -> FrameBatch:
    """`count` frames, half the frames of `paths` and half `synthetic` packets, damaged:
    random link types and link headers, inserted blocks, byte changes in the first 100
    bytes, cuts, short wire lengths. One batch whose last frame ends the buffer (Python then
    pads it)."""
    rng = np.random.default_rng(seed)
    seeds: list[tuple[int, bytes]] = []
    for path in captures(paths):
        try:
            for batch in read_captures([path], SourceStats()):
                for i in range(len(batch)):
                    start = int(batch.offset[i])
                    frame = batch.data[start:start + int(batch.caplen[i])].tobytes()
                    seeds.append((int(batch.linktype[i]), frame))
        except CaptureError:
            continue
    links = [*SUPPORTED_LINKTYPES, 105, 127]
    heads = {0: b"\x02\0\0\0", 108: b"\0\0\0\x1e", 113: bytes(14) + b"\x86\xdd",
             276: b"\x08\0" + bytes(18), 1: bytes(12) + b"\x81\0\0\x05\x08\0"}
    chunks: list[bytes] = []
    ts: list[int] = []
    offset: list[int] = []
    caplen: list[int] = []
    wirelen: list[int] = []
    linktype: list[int] = []
    at = 0
    for _ in range(count):
        link, frame = (seeds[int(rng.integers(len(seeds)))] if rng.random() < 0.5
                       else synthetic(rng))
        b = bytearray(frame)
        if rng.random() < 0.3:  # another link type, with or without its header
            link = links[int(rng.integers(len(links)))]
            if rng.random() < 0.5 and link in heads:
                b = bytearray(heads[link]) + b[14:]
        if rng.random() < 0.2:  # an extension-header-like block (IPv6 next headers)
            pos = int(rng.integers(min(len(b), 100) + 1))
            block = [INTERESTING[int(i)] for i in rng.integers(len(INTERESTING), size=8)]
            b[pos:pos] = bytes(block)
        for _ in range(int(rng.integers(0, 4))):
            if b:
                pos = int(rng.integers(min(len(b), 100)))
                pick = rng.random()
                b[pos] = (INTERESTING[int(rng.integers(len(INTERESTING)))] if pick < 0.4
                          else int(rng.integers(256)) if pick < 0.7
                          else b[pos] ^ (1 << int(rng.integers(8))))
        if rng.random() < 0.3:
            b = b[:int(rng.integers(len(b) + 1))]
        wire = len(frame) if rng.random() < 0.8 else int(rng.integers(len(b) + 2))
        chunks.append(bytes(b))
        ts.append(len(ts))
        offset.append(at)
        caplen.append(len(b))
        wirelen.append(wire)
        linktype.append(link)
        at += len(b)
    i64 = np.int64
    return FrameBatch(np.frombuffer(b"".join(chunks), dtype=np.uint8), np.array(ts, i64),
                      np.array(offset, i64), np.array(caplen, i64), np.array(wirelen, i64),
                      np.array(linktype, i64))


def compare(expected: str, frames_file: str, name: str, show: int) -> bool:
    run = subprocess.run([str(EXAMPLE), frames_file], capture_output=True, text=True,
                         check=True)
    if run.stdout == expected:
        return True
    print(f"DIFFERS: {name}")
    diff = difflib.unified_diff(expected.splitlines(), run.stdout.splitlines(),
                                "python", "rust", lineterm="", n=0)
    for line in list(diff)[:show]:
        print("   ", line)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--show", type=int, default=20, help="diff lines shown per capture")
    parser.add_argument("--mutants", type=int, default=0, metavar="N",
                        help="instead: compare on N frames made by damaging the captures' frames")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.mutants:
        with tempfile.TemporaryDirectory() as tmp:
            frames_file = os.path.join(tmp, "frames")
            expected = dump_batches([mutants(args.paths, args.mutants, args.seed)], frames_file)
            ok = compare(expected, frames_file, "mutants", args.show)
            print(("identical: " if ok else "differ: ") + ", ".join(
                line for line in expected.splitlines() if not line.startswith("seg ")))
            return 0 if ok else 1
    same = differ = passed = segments = 0
    reasons: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        frames_file = os.path.join(tmp, "frames")
        for path in captures(args.paths):
            with open(path, "rb") as f:
                magic = f.read(4)
            classic = magic in MAGICS
            try:
                expected = python_dump(path, None if classic else frames_file)
            except CaptureError:
                passed += 1
                continue
            if compare(expected, path if classic else frames_file, path, args.show):
                same += 1
                segments += expected.count("\nseg ")
                for line in expected.splitlines():
                    if line.startswith("skipped "):
                        _, reason, n = line.split()
                        reasons[reason] += int(n)
                continue
            differ += 1
    print(f"{same} captures identical ({segments} segments), {differ} differ, "
          f"{passed} not captures")
    print("skipped in identical captures:", dict(sorted(reasons.items())))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
