"""The pipeline, end to end: files -> frames -> segments -> flow table -> records.

`Analysis.records()` is a generator: records come out as connections end, so
memory holds the open connections and one batch of frames, never the capture.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from tcptrace.checksum import ChecksumLedger, bad_checksums
from tcptrace.connection import ObserverFactory
from tcptrace.decode import DAMAGE_WARNINGS, SegmentBatch, decode, unsupported_linktypes
from tcptrace.defaults import DEFAULT_MSL_S
from tcptrace.filter import compile_filter
from tcptrace.filter_masks import Predicate
from tcptrace.flows import FlowTable
from tcptrace.model import ConnectionRecord
from tcptrace.sources import FrameBatch, SourceStats, read_captures

FEED_SLICE = 8192  # segments per flow-table step


@dataclass(slots=True)
class Options:
    filter: str | None = None
    msl_s: float = DEFAULT_MSL_S
    linger_s: float = 0.5
    """Capture time a finished connection keeps receiving late segments before it is emitted."""
    max_flows: int = 1_000_000
    idle_timeout_s: float | None = None
    observers: list[ObserverFactory] = field(default_factory=list)
    """Optional per-connection analyses (see connection.SegmentObserver), e.g.
    `tcptrace.analyzers.zeek.ZeekObserver`."""
    steady_runs: bool = True
    """Account steady runs of plain segments in bulk (tcptrace.steady). False sends every
    segment through the per-segment path: the reference the fast path is tested against."""
    verify_checksums: bool = False
    """Leave segments with a bad TCP or IPv4 header checksum out (counted in
    skipped["bad_checksum"]; the Zeek observer still writes their `C`/`c` letter)."""


@dataclass(slots=True)
class ChunkStats:
    """What `prepare` counted: for one chunk (the map of a parallel run), or summed over a
    run, it is the run's source accounting."""

    skipped: Counter[str] = field(default_factory=Counter)
    filtered_out: int = 0
    segments: int = 0
    """Segments left for the flow table (after --filter and the checksum check)."""
    linktypes: set[int] = field(default_factory=set)
    """Unsupported link types seen, for the warning."""

    def add(self, other: ChunkStats) -> None:
        self.skipped.update(other.skipped)
        self.filtered_out += other.filtered_out
        self.segments += other.segments
        self.linktypes |= other.linktypes


@lru_cache(maxsize=8)
def _predicate(expression: str) -> Predicate:
    return compile_filter(expression)


def prepare(frames: FrameBatch, options: Options,
            stats: ChunkStats) -> tuple[SegmentBatch, SegmentBatch | None]:
    """Decode a chunk of frames, leave out what --filter rejects and, with
    --verify-checksums, the segments with a bad checksum: (segments for the flow table, bad
    ones or None). Counted in `stats`. The single-process run and the map of a parallel run
    (plan.map_chunk) both take their segments from here."""
    unsupported = stats.skipped["unsupported_linktype"]
    segments = decode(frames, stats.skipped)
    if stats.skipped["unsupported_linktype"] != unsupported:
        stats.linktypes |= unsupported_linktypes(frames.linktype)
    if options.filter and len(segments):
        keep = _predicate(options.filter)(segments)
        stats.filtered_out += int((~keep).sum())
        segments = segments.select(keep)
    bad = None
    if options.verify_checksums and len(segments):
        wrong = bad_checksums(segments)
        if wrong.any():
            stats.skipped["bad_checksum"] += int(wrong.sum())
            bad = segments.select(wrong)
            segments = segments.select(~wrong)
    stats.segments += len(segments)
    return segments, bad


@dataclass
class Analysis:
    paths: list[str]
    options: Options = field(default_factory=Options)
    source: SourceStats = field(default_factory=SourceStats)
    frames: Iterable[FrameBatch] | None = None
    """Where frames come from; None reads `paths` (a live capture passes its own)."""

    def __post_init__(self) -> None:
        if self.options.filter:
            _predicate(self.options.filter)  # a bad expression fails here, before any reading
        self.counts = ChunkStats(skipped=self.source.skipped)
        """What `prepare` counted over the run (its damage lands in the source's counts)."""
        self.table = FlowTable(linger_s=self.options.linger_s, max_flows=self.options.max_flows,
                               tombstone_s=2 * self.options.msl_s,
                               idle_timeout_s=self.options.idle_timeout_s,
                               observers=self._observers(), bulk=self.options.steady_runs)

    def _observers(self) -> list[ObserverFactory]:
        self.ledger = ChecksumLedger() if self.options.verify_checksums else None
        if self.ledger is None:
            return list(self.options.observers)
        ledger = self.ledger
        return [make.with_ledger(ledger) if hasattr(make, "with_ledger") else make
                for make in self.options.observers]

    def records(self) -> Iterator[ConnectionRecord]:
        """Every connection's record, emitted as the connection ends.

        An empty FrameBatch from the source is a clock tick (live capture): it lets idle
        connections be emitted without waiting for the next packet.
        """
        msl = self.options.msl_s
        source = self.frames if self.frames is not None else read_captures(self.paths, self.source)
        for frames in source:
            if len(frames) == 0:
                self.table.tick(int(frames.ts_ns.max()) if len(frames.ts_ns) else 0)
                for conn in self.table.drain():
                    yield conn.record(msl)
                continue
            segments, bad = prepare(frames, self.options, self.counts)
            if bad is not None and self.ledger is not None:
                self.ledger.add(bad)
            if segments.ordinal is None:
                done = self.counts.segments - len(segments)
                segments.ordinal = np.arange(done, done + len(segments), dtype=np.int64)
            # Feed in slices and emit in between: one read chunk can hold 100k new flows
            # (a SYN flood), and memory must stay bounded by --max-flows, not by the chunk.
            for start in range(0, len(segments), FEED_SLICE):
                self.table.feed(segments.slice(start, start + FEED_SLICE))
                for conn in self.table.drain():
                    yield conn.record(msl)
        for conn in self.table.close():
            yield conn.record(msl)
        self.warn_damage()

    def warn_damage(self) -> None:
        """One warning per kind of decode damage, with its count (after the whole run)."""
        where = f"{self.source.files[0]}: " if len(self.source.files) == 1 else ""
        linktypes = ", ".join(map(str, sorted(self.counts.linktypes)))
        for kind, text in DAMAGE_WARNINGS.items():
            if count := self.source.skipped[kind]:
                self.source.warn_once(kind, f"{where}{count} {text.format(linktypes=linktypes)}")

    def source_report(self) -> dict[str, Any]:
        skipped = Counter({k: v for k, v in self.source.skipped.items() if v})
        if self.counts.filtered_out:
            skipped["filtered_out"] = self.counts.filtered_out
        return {
            "files": self.source.files,
            "packets": self.source.frames,
            "tcp_segments": self.counts.segments,
            "skipped": dict(sorted(skipped.items())),
            "warnings": self.source.warnings,
            "connections": self.table.stats.connections,
            "port_reuse": self.table.stats.port_reuse,
            "evicted_for_capacity": self.table.stats.evicted_for_capacity,
            "idle_evicted": self.table.stats.idle_evicted,
            "after_close": self.table.stats.after_close,
        }

