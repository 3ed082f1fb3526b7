"""A capture file read a chunk at a time, each chunk starting at the first byte the
previous one left unconsumed (the start of a record it did not hold whole).

A seekable file reads that tail again, from the page cache, as the start of the next
chunk: one new buffer per chunk. A stream (gzip) cannot go back, so the tail is copied in
front of the next read. Chunks are `bytes`, which the flow table then reads payloads and
options from without copying them (`FlowTable.feed`).
"""

from __future__ import annotations

from typing import BinaryIO

from tcptrace.sources.batch import SourceStats

CHUNK = 8 << 20


class ChunkReader:
    """Chunks of `f` from byte `position` on; call `consumed` after each `read`. `unit` names
    the file's records ("record", "block") in the warning about a truncated last one."""

    def __init__(self, f: BinaryIO, position: int, seekable: bool, name: str,
                 stats: SourceStats, unit: str) -> None:
        self._f, self._seekable = f, seekable
        self._name, self._stats, self._unit = name, stats, unit
        self.position = position
        """File offset of the first byte of the next chunk."""
        self._at_end = False  # the last chunk read reached the end of the file
        self._tail = b""  # a stream's unconsumed bytes
        self._tail_len = 0

    def read(self) -> bytes:
        """The unconsumed bytes and about CHUNK more; nothing once the file is done."""
        if self._seekable:
            size = max(CHUNK, 2 * self._tail_len)  # a record longer than a chunk still fits
            if self._tail_len:
                self._f.seek(self.position)
            buf = self._f.read(size)
            self._at_end = len(buf) < size  # a regular file reads short only at its end
            return buf
        chunk = self._f.read(CHUNK)
        self._at_end = not chunk
        return self._tail + chunk if self._tail else chunk

    def consumed(self, buf: bytes, n: int) -> bool:
        """`n` bytes of `buf` (the last chunk read) are done with. True at the end of the
        file, after warning about the bytes left over there (a record cut short)."""
        self.position += n
        self._tail_len = len(buf) - n
        if not self._seekable:
            self._tail = buf[n:]
        if not self._at_end:
            return False
        if self._tail_len:
            self._stats.skipped["truncated_record"] += 1
            self._stats.warn_once(
                "truncated_record",
                f"{self._name}: file ends inside a {self._unit} at byte {self.position} "
                f"({self._tail_len} bytes dropped); the capture was probably cut short",
            )
        return True
