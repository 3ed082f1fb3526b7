"""Classic libpcap savefiles: micro- and nanosecond, either byte order.

Format: https://www.tcpdump.org/manpages/pcap-savefile.5.html. A 24-byte file
header, then records of a 16-byte header (ts_sec, ts_frac, incl_len, orig_len)
and incl_len bytes of frame. The record walk is a tight loop over headers only;
the frames themselves are never copied out of the chunk.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from tcptrace.errors import CaptureError
from tcptrace.sources.batch import FrameBatch, SourceStats

MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),  # microseconds, little-endian
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),  # nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
# A record longer than this is not a packet but a damaged header (pcap's own limit
# for DLT_USBPCAP-sized frames is 256 KiB; jumbo/TSO captures stay below 1 MiB).
MAX_RECORD = 1 << 20
# A header may claim any snaplen (0xFFFFFFFF is common in fuzzed files): trusting it
# beyond this would let one damaged record header make the reader buffer the whole file.
MAX_SNAPLEN = 16 << 20
CHUNK = 8 << 20
# Frames per batch: an 8 MiB chunk of 60-byte packets (a SYN flood) would be 140k frames,
# and per-frame lists and numpy temporaries would then dominate memory.
MAX_FRAMES = 32768


def read_pcap(f: BinaryIO, name: str, stats: SourceStats) -> Iterator[FrameBatch]:
    header = f.read(24)
    if len(header) < 24:
        raise CaptureError(f"{name}: file ends inside the pcap header")
    endian, ns_per_unit = MAGICS[header[:4]]
    snaplen, linktype = struct.unpack(endian + "II", header[16:24])
    linktype &= 0xFFFF  # upper bits: FCS length and flag (libpcap LT_LINKTYPE)
    record = struct.Struct(endian + "IIII")
    limit = max(MAX_RECORD, min(snaplen, MAX_SNAPLEN))
    pending = b""
    position = 24
    while True:
        chunk = f.read(CHUNK)
        buf = pending + chunk if pending else chunk
        if not buf:
            return
        data = np.frombuffer(buf, dtype=np.uint8)
        end, full, damaged = 0, True, False
        while full and not damaged:  # at most MAX_FRAMES per batch: small packets stay cheap
            ts, off, cap, wire, end, damaged, full = _walk(buf, end, record, limit,
                                                           ns_per_unit)
            if off:
                stats.frames += len(off)
                yield FrameBatch(
                    data=data,
                    ts_ns=np.array(ts, dtype=np.int64),
                    offset=np.array(off, dtype=np.int64),
                    caplen=np.array(cap, dtype=np.int64),
                    wirelen=np.array(wire, dtype=np.int64),
                    linktype=np.full(len(off), linktype, dtype=np.int64),
                )
        if damaged:
            stats.skipped["corrupt_record"] += 1
            stats.warn_once(
                "corrupt_record",
                f"{name}: record header at byte {position + end} is damaged "
                f"(length > {limit}); the rest of the file was not read",
            )
            return
        position += end
        pending = buf[end:]
        if not chunk:
            if pending:
                stats.skipped["truncated_record"] += 1
                stats.warn_once(
                    "truncated_record",
                    f"{name}: file ends inside a record at byte {position} "
                    f"({len(pending)} bytes dropped); the capture was probably cut short",
                )
            return


def _walk(
    buf: bytes, pos: int, record: struct.Struct, limit: int, ns_per_unit: int
) -> tuple[list[int], list[int], list[int], list[int], int, bool, bool]:
    """Complete records in `buf` from `pos`, at most MAX_FRAMES of them:
    (ts, offset, caplen, wirelen, end, damaged, full) where `full` means the cap stopped
    the walk and more complete records may follow."""
    unpack = record.unpack_from
    n = len(buf)
    ts: list[int] = []
    off: list[int] = []
    cap: list[int] = []
    wire: list[int] = []
    while pos + 16 <= n:
        if len(off) >= MAX_FRAMES:
            return ts, off, cap, wire, pos, False, True
        sec, frac, incl, orig = unpack(buf, pos)
        if incl > limit:
            return ts, off, cap, wire, pos, True, False
        if pos + 16 + incl > n:
            break
        ts.append(sec * 1_000_000_000 + frac * ns_per_unit)
        off.append(pos + 16)
        cap.append(incl)
        wire.append(orig)
        pos += 16 + incl
    return ts, off, cap, wire, pos, False, False
