"""Classic libpcap savefiles: micro- and nanosecond, either byte order.

Format: https://www.tcpdump.org/manpages/pcap-savefile.5.html. A 24-byte file
header, then records of a 16-byte header (ts_sec, ts_frac, incl_len, orig_len)
and incl_len bytes of frame. The record walk is a tight loop that reads only each
incl_len (where the next record starts); the header fields are then gathered with
numpy, and the frames themselves are never copied out of the chunk.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from tcptrace.errors import CaptureError
from tcptrace.sources.batch import FrameBatch, SourceStats
from tcptrace.sources.chunks import ChunkReader

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
# Frames per batch: an 8 MiB chunk of 60-byte packets (a SYN flood) would be 140k frames,
# and per-frame lists and numpy temporaries would then dominate memory.
MAX_FRAMES = 32768


def read_pcap(f: BinaryIO, name: str, stats: SourceStats,
              seekable: bool = False) -> Iterator[FrameBatch]:
    """Frame batches of a pcap file; `seekable`: `f` is the file itself (not a gzip
    stream), so each batch can name where its bytes are in the file."""
    header = f.read(24)
    if len(header) < 24:
        raise CaptureError(f"{name}: file ends inside the pcap header")
    endian, ns_per_unit = MAGICS[header[:4]]
    snaplen, linktype = struct.unpack(endian + "II", header[16:24])
    linktype &= 0xFFFF  # upper bits: FCS length and flag (libpcap LT_LINKTYPE)
    length_at = struct.Struct(endian + "I")
    limit = max(MAX_RECORD, min(snaplen, MAX_SNAPLEN))
    chunks = ChunkReader(f, 24, seekable, name, stats, "record")
    while True:
        buf = chunks.read()
        if not buf:
            return
        data = np.frombuffer(buf, dtype=np.uint8)
        end, full, damaged = 0, True, False
        while full and not damaged:  # at most MAX_FRAMES per batch: small packets stay cheap
            starts, end, damaged, full = _walk(buf, end, length_at, limit)
            if starts:
                stats.frames += len(starts)
                at = np.array(starts, dtype=np.int64)
                fields = _headers(data, at, endian)
                yield FrameBatch(
                    data=data,
                    ts_ns=fields[:, 0] * 1_000_000_000 + fields[:, 1] * ns_per_unit,
                    offset=at + 16,
                    caplen=fields[:, 2],
                    wirelen=fields[:, 3],
                    linktype=np.full(len(at), linktype, dtype=np.int64),
                    origin=(name, chunks.position) if seekable else None,
                )
        if damaged:
            stats.skipped["corrupt_record"] += 1
            stats.warn_once(
                "corrupt_record",
                f"{name}: record header at byte {chunks.position + end} is damaged "
                f"(length > {limit}); the rest of the file was not read",
            )
            return
        if chunks.consumed(buf, end):
            return


def _walk(buf: bytes, pos: int, length_at: struct.Struct,
          limit: int) -> tuple[list[int], int, bool, bool]:
    """Start offsets of the complete records in `buf` from `pos`, at most MAX_FRAMES of them:
    (starts, end, damaged, full) where `full` means the cap stopped the walk and more
    complete records may follow. Only incl_len is read here, the one field the walk needs;
    the other header fields are gathered with numpy afterwards (`_headers`)."""
    unpack = length_at.unpack_from
    n = len(buf)
    starts: list[int] = []
    append = starts.append
    for _ in range(MAX_FRAMES):
        if pos + 16 > n:
            return starts, pos, False, False
        (incl,) = unpack(buf, pos + 8)
        if incl > limit:
            return starts, pos, True, False
        after = pos + 16 + incl
        if after > n:
            return starts, pos, False, False
        append(pos)
        pos = after
    return starts, pos, False, pos + 16 <= n


def _headers(data: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64],
             endian: str) -> npt.NDArray[np.int64]:
    """The four header fields (ts_sec, ts_frac, incl_len, orig_len) of each record, as an
    (n, 4) array."""
    raw = data[starts[:, None] + np.arange(16)]
    return np.ascontiguousarray(raw).view(np.dtype(endian + "u4")).astype(np.int64)
