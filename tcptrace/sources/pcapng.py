"""pcapng files: sections, several interfaces with their own link types and clocks.

Spec: draft-ietf-opsawg-pcapng. Only the blocks that carry packets or describe
interfaces matter here (SHB, IDB, EPB, SPB and the obsolete PB); every other
block (name resolution, statistics, custom, unknown) is skipped by its length,
as the spec requires of readers.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from tcptrace.errors import CaptureError
from tcptrace.sources.batch import FrameBatch, SourceStats
from tcptrace.sources.chunks import ChunkReader

SHB = 0x0A0D0D0A
IDB = 0x00000001
PB = 0x00000002  # obsolete Packet Block
SPB = 0x00000003
EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
MAX_BLOCK = 16 << 20
# Smallest total length of each block type that has fixed fields (12 = type, length, trailer):
# a shorter block cannot be unpacked and is skipped as a bad block.
MIN_BLOCK = {EPB: 32, PB: 32, SPB: 16, IDB: 20}
INT64_MAX = (1 << 63) - 1


@dataclass(slots=True)
class Interface:
    linktype: int
    snaplen: int
    units_per_second: int = 1_000_000
    offset_seconds: int = 0

    def to_ns(self, raw: int) -> int:
        ns = raw * 1_000_000_000 // self.units_per_second + self.offset_seconds * 1_000_000_000
        # a 64-bit timestamp in µs (or an if_tsoffset) can exceed int64 nanoseconds
        return max(-INT64_MAX - 1, min(ns, INT64_MAX))


class _Section:
    """Byte order and interfaces of the current section."""

    def __init__(self, endian: str) -> None:
        self.endian = endian
        self.interfaces: list[Interface] = []
        self.u32 = struct.Struct(endian + "I")
        self.head = struct.Struct(endian + "II")
        self.epb = struct.Struct(endian + "IIIII")
        self.pb = struct.Struct(endian + "HHIIII")


def read_pcapng(f: BinaryIO, name: str, stats: SourceStats,
                seekable: bool = False) -> Iterator[FrameBatch]:
    """Frame batches of a pcapng file; `seekable` as for read_pcap."""
    section: _Section | None = None
    chunks = ChunkReader(f, 0, seekable, name, stats, "block")
    last_ts = 0
    while True:
        position = chunks.position
        buf = chunks.read()
        if not buf:
            return
        pos = 0
        n = len(buf)
        ts: list[int] = []
        off: list[int] = []
        cap: list[int] = []
        wire: list[int] = []
        link: list[int] = []
        damage = ""
        while pos + 12 <= n:
            if section is None or buf[pos : pos + 4] == b"\x0a\x0d\x0d\x0a":
                if buf[pos : pos + 4] != b"\x0a\x0d\x0d\x0a":
                    raise CaptureError(f"{name}: not a pcapng file (no section header)")
                magic = buf[pos + 8 : pos + 12]
                if magic == b"\x4d\x3c\x2b\x1a":
                    section = _Section("<")
                elif magic == b"\x1a\x2b\x3c\x4d":
                    section = _Section(">")
                else:
                    damage = f"section header at byte {position + pos} has a bad byte-order magic"
                    break
            btype, blen = section.head.unpack_from(buf, pos)
            if blen < 12 or blen % 4 or blen > MAX_BLOCK:
                damage = f"block at byte {position + pos} has an impossible length {blen}"
                break
            if pos + blen > n:
                break
            body = pos + 8
            if blen < MIN_BLOCK.get(btype, 12):
                stats.skipped["bad_block"] += 1
                stats.warn_once("bad_block", f"{name}: block at byte {position + pos} is too "
                                f"short ({blen} bytes) for its type {btype:#x}")
            elif btype == EPB:
                iface_id, hi, lo, incl, orig = section.epb.unpack_from(buf, body)
                iface = _interface(section, iface_id)
                if iface is None or 20 + incl > blen - 12:
                    stats.skipped["bad_block"] += 1
                    stats.warn_once("bad_block", f"{name}: packet block at byte "
                                    f"{position + pos} names an unknown interface or overruns")
                else:
                    last_ts = iface.to_ns((hi << 32) | lo)
                    ts.append(last_ts)
                    off.append(body + 20)
                    cap.append(incl)
                    wire.append(orig)
                    link.append(iface.linktype)
            elif btype == SPB:
                iface = _interface(section, 0)
                (orig,) = section.u32.unpack_from(buf, body)
                incl = min(orig, blen - 16, iface.snaplen or orig) if iface else 0
                if iface is None:
                    stats.skipped["bad_block"] += 1
                    stats.warn_once("bad_block", f"{name}: packet block at byte "
                                    f"{position + pos} names an unknown interface or overruns")
                else:
                    ts.append(last_ts)  # SPB carries no timestamp: keep capture order
                    off.append(body + 4)
                    cap.append(incl)
                    wire.append(orig)
                    link.append(iface.linktype)
            elif btype == PB:
                iface_id, _drops, hi, lo, incl, orig = section.pb.unpack_from(buf, body)
                iface = _interface(section, iface_id)
                if iface is None or 20 + incl > blen - 12:
                    stats.skipped["bad_block"] += 1
                    stats.warn_once("bad_block", f"{name}: packet block at byte "
                                    f"{position + pos} names an unknown interface or overruns")
                else:
                    last_ts = iface.to_ns((hi << 32) | lo)
                    ts.append(last_ts)
                    off.append(body + 20)
                    cap.append(incl)
                    wire.append(orig)
                    link.append(iface.linktype)
            elif btype == IDB:
                section.interfaces.append(_parse_idb(buf, body, blen, section))
            # any other block (NRB, ISB, DSB, custom, unknown) carries no packet: skip it
            pos += blen
        if off:
            stats.frames += len(off)
            yield FrameBatch(
                data=np.frombuffer(buf, dtype=np.uint8),
                ts_ns=np.array(ts, dtype=np.int64),
                offset=np.array(off, dtype=np.int64),
                caplen=np.array(cap, dtype=np.int64),
                wirelen=np.array(wire, dtype=np.int64),
                linktype=np.array(link, dtype=np.int64),
                origin=(name, position) if seekable else None,
            )
        if damage:
            stats.skipped["corrupt_block"] += 1
            stats.warn_once("corrupt_block", f"{name}: {damage}; the rest of the file was not read")
            return
        if chunks.consumed(buf, pos):
            return


def _interface(section: _Section, index: int) -> Interface | None:
    return section.interfaces[index] if index < len(section.interfaces) else None


def _parse_idb(buf: bytes, body: int, blen: int, section: _Section) -> Interface:
    linktype, _reserved, snaplen = struct.unpack_from(section.endian + "HHI", buf, body)
    iface = Interface(linktype=linktype, snaplen=snaplen)
    pos = body + 8
    end = body + blen - 12
    while pos + 4 <= end:
        code, length = struct.unpack_from(section.endian + "HH", buf, pos)
        value = pos + 4
        if code == 0 or value + length > end:  # end of options, or an option overrunning
            break
        if code == 9 and length >= 1:  # if_tsresol
            resol = buf[value]
            exponent = resol & 0x7F
            iface.units_per_second = 2**exponent if resol & 0x80 else 10**exponent
        elif code == 14 and length >= 8:  # if_tsoffset
            (iface.offset_seconds,) = struct.unpack_from(section.endian + "q", buf, value)
        pos = value + (length + 3) // 4 * 4
    return iface
