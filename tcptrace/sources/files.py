"""Open capture files by content (not by name) and merge several in time order."""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from typing import BinaryIO

import numpy as np

from tcptrace.errors import CaptureError
from tcptrace.sources.batch import FrameBatch, SourceStats
from tcptrace.sources.pcap import MAGICS, read_pcap
from tcptrace.sources.pcapng import read_pcapng

GZIP_MAGIC = b"\x1f\x8b"
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


class ReadMeter:
    """Bytes read so far from the capture files (compressed bytes for gzip), for a progress
    bar. Readers pull megabytes per call, so counting costs nothing measurable."""

    __slots__ = ("bytes",)

    def __init__(self) -> None:
        self.bytes = 0


class _Metered:
    """A file object that adds to a ReadMeter each byte read for the first time (the magic
    number is read twice)."""

    def __init__(self, raw: BinaryIO, meter: ReadMeter) -> None:
        self._raw, self._meter = raw, meter
        self._at = self._seen = 0

    def _advance(self, n: int) -> None:
        self._at += n
        if self._at > self._seen:
            self._meter.bytes += self._at - self._seen
            self._seen = self._at

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._advance(len(data))
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        n = int(self._raw.readinto(buffer) or 0)  # type: ignore[attr-defined]
        self._advance(n)
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        self._at = self._raw.seek(offset, whence)
        return self._at

    def __getattr__(self, name: str) -> object:
        return getattr(self._raw, name)

    def __enter__(self) -> _Metered:
        return self

    def __exit__(self, *exc: object) -> None:
        self._raw.close()


def open_capture(path: str, stats: SourceStats,
                 meter: ReadMeter | None = None) -> Iterator[FrameBatch]:
    """Frame batches of one capture file (pcap, pcapng, either gzip-compressed); `meter`,
    if given, counts the bytes read from the file."""
    if os.path.isdir(path):
        raise CaptureError(f"{path}: is a directory, not a capture file")
    try:
        raw: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by the generator below
    except OSError as exc:
        raise CaptureError(f"{path}: cannot open: {exc.strerror}") from None
    if meter is not None:
        raw = _Metered(raw, meter)  # type: ignore[assignment]
    return _frames(raw, path, stats)


def _frames(raw: BinaryIO, path: str, stats: SourceStats) -> Iterator[FrameBatch]:
    with ExitStack() as stack:
        stack.enter_context(raw)
        f: BinaryIO = raw
        magic = raw.read(4)
        raw.seek(0)
        if magic[:2] == GZIP_MAGIC:
            f = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))  # type: ignore[assignment]
            try:
                magic = f.peek(4)[:4]  # type: ignore[attr-defined]
            except (OSError, EOFError, zlib.error) as exc:
                raise CaptureError(f"{path}: damaged gzip stream: {exc}") from None
        stats.files.append(path)
        if not magic:
            raise CaptureError(f"{path}: empty file")
        if magic in MAGICS:
            reader = read_pcap(f, path, stats, seekable=f is raw)
        elif magic == PCAPNG_MAGIC:
            reader = read_pcapng(f, path, stats, seekable=f is raw)
        else:
            raise CaptureError(f"{path}: not a pcap or pcapng capture (starts with {magic.hex()})")
        try:
            yield from reader
        except (OSError, EOFError, zlib.error) as exc:  # gzip stream cut short or damaged
            stats.skipped["truncated_record"] += 1
            stats.warn_once(
                "truncated_record", f"{path}: stopped reading: {exc}; earlier packets are kept"
            )


def read_captures(paths: list[str], stats: SourceStats,
                  meter: ReadMeter | None = None) -> Iterator[FrameBatch]:
    """Frames of every file, merged by timestamp when there are several files.

    A single file keeps its own order even where its timestamps step backwards:
    that order is what the capture point saw. Several files are merged by a
    streaming k-way merge: everything up to the smallest "last timestamp read"
    among the files is safe to emit, sorted stably by time.
    """
    readers = [open_capture(p, stats, meter) for p in paths]
    if len(readers) == 1:
        yield from readers[0]
        return
    pending: list[FrameBatch | None] = [None] * len(readers)
    live = list(range(len(readers)))
    while live:
        for i in list(live):
            if pending[i] is None or len(pending[i]) == 0:  # type: ignore[arg-type]
                nxt = next(readers[i], None)
                if nxt is None:
                    live.remove(i)
                    pending[i] = None
                else:
                    pending[i] = nxt
        held = [(i, b) for i, b in enumerate(pending) if b is not None and len(b)]
        if not held:
            return
        # frames up to the watermark cannot be preceded by anything still unread
        watermark = min(int(b.ts_ns.max()) for i, b in held if i in live) if live else None
        parts: list[FrameBatch] = []
        for i, b in held:
            take = np.ones(len(b), dtype=bool) if watermark is None else b.ts_ns <= watermark
            parts.append(b.take(np.flatnonzero(take)))
            pending[i] = b.take(np.flatnonzero(~take))
        merged = FrameBatch.concat([p for p in parts if len(p)])
        order = np.argsort(merged.ts_ns, kind="stable")
        yield merged.take(order)
