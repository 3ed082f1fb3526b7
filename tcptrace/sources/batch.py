"""Columnar frame batches: many link-layer frames sharing one byte buffer.

A batch is what every source yields and what decode consumes. Keeping frames as
offsets into one buffer (instead of one bytes object per packet) lets decode
gather header fields for the whole batch with numpy indexing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]


@dataclass(slots=True)
class FrameBatch:
    """Frames in capture order. All arrays have one entry per frame."""

    data: U8
    """The bytes of every frame, back to back (plus slack)."""
    ts_ns: I64
    """Capture timestamp, nanoseconds since the epoch."""
    offset: I64
    """Start of each frame in `data`."""
    caplen: I64
    """Bytes of the frame present in the capture."""
    wirelen: I64
    """Length of the frame on the wire (larger than caplen when snaplen cut it)."""
    linktype: I64
    """Link-layer header type (LINKTYPE_* number) of each frame."""
    origin: tuple[str, int] | None = None
    """(file, byte offset) when `data` is exactly that stretch of an uncompressed file: a
    parallel run ships the offset instead of the bytes."""

    def __len__(self) -> int:
        """Frames in the batch. A batch with no frames but a timestamp is a clock tick."""
        return len(self.offset)

    @staticmethod
    def concat(batches: list[FrameBatch]) -> FrameBatch:
        """Join batches into one, shifting offsets into the joined buffer."""
        if len(batches) == 1:
            return batches[0]
        shifts = np.cumsum([0] + [len(b.data) for b in batches[:-1]])
        return FrameBatch(
            data=np.concatenate([b.data for b in batches]),
            ts_ns=np.concatenate([b.ts_ns for b in batches]),
            offset=np.concatenate([b.offset + s for b, s in zip(batches, shifts, strict=True)]),
            caplen=np.concatenate([b.caplen for b in batches]),
            wirelen=np.concatenate([b.wirelen for b in batches]),
            linktype=np.concatenate([b.linktype for b in batches]),
        )

    def take(self, index: npt.NDArray[np.intp]) -> FrameBatch:
        """The frames at `index`, sharing this batch's buffer."""
        return FrameBatch(
            self.data,
            self.ts_ns[index],
            self.offset[index],
            self.caplen[index],
            self.wirelen[index],
            self.linktype[index],
            self.origin,
        )


@dataclass(slots=True)
class SourceStats:
    """What the sources read and what they had to skip, for the `source` report."""

    files: list[str] = field(default_factory=list)
    frames: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)

    def warn_once(self, kind: str, message: str) -> None:
        """Record a warning; each kind of damage is warned about once, not once per packet."""
        if not any(w.startswith(f"{kind}:") for w in self.warnings):
            self.warnings.append(f"{kind}: {message}")
