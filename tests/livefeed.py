"""Feeding a capture file to the live engine (tcptrace._native.Session) as the live capture
does: libpcap records (`struct pcap_pkthdr` in this host's layout, then the frame), joined
into one bytes object per batch. Plain Python: no numpy, no Python engine."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from tcptrace.sources.live import LONG_BYTES

PKTHDR = struct.Struct("@llII")  # struct timeval {long, long}; caplen, len
assert PKTHDR.size == 2 * LONG_BYTES + 8


@dataclass
class Frame:
    ts_ns: int
    data: bytes
    wirelen: int


def read_pcap(path: Path) -> tuple[int, int, list[Frame]]:
    """(link type, nanoseconds per timestamp unit, frames) of a classic little-endian pcap."""
    raw = path.read_bytes()
    magic, _, _, _, _, _, linktype = struct.unpack_from("<IHHiIII", raw)
    unit = {0xA1B2C3D4: 1000, 0xA1B23C4D: 1}[magic]
    frames, at = [], 24
    while at + 16 <= len(raw):
        sec, frac, caplen, wirelen = struct.unpack_from("<IIII", raw, at)
        frames.append(Frame(sec * 1_000_000_000 + frac * unit, raw[at + 16:at + 16 + caplen],
                            wirelen))
        at += 16 + caplen
    return linktype, unit, frames


def records(frames: list[Frame], unit: int) -> bytes:
    """The frames as the capture loop copies them out of libpcap."""
    return b"".join(PKTHDR.pack(f.ts_ns // 1_000_000_000, f.ts_ns % 1_000_000_000 // unit,
                                len(f.data), f.wirelen) + f.data for f in frames)
