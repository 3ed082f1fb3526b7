"""A run split by flow: map chunks to partitions, reduce each partition, finalize the ids.

Theory of operation. A connection only ever sees the segments of its own 4-tuple, and port
reuse stays within a 4-tuple, so the segments can be split by a hash of the canonical
4-tuple (both directions hash alike) and each share run through its own flow table. Three
steps, each a pure function of picklable values, so that any engine can run them (the local
one is tcptrace/parallel.py; a distributed one can run the same functions unchanged):

- map_chunk: one FrameBatch -> its TCP segments (decoded, filtered, checksum-checked exactly
  as the single-process engine does), split into partitions, each segment keeping its global
  ordinal, plus where the engine's feed slices end and the latest timestamp of each.
- reduce_partition: the chunks of one partition, in read order -> its records, each with the
  ordinal of its connection's first segment and the drain ("epoch") it was emitted in. The
  flow table is fed the partition's part of every feed slice of the single-process run and is
  given that run's clock (`now_ns`) before each, so it sweeps at the same moments with the same
  horizon: records, and the order they leave in, are those of the single-process run.
- finalize (renumber + merge_summaries): global id = rank of the first ordinal (ids of a
  single-process run follow the first segments); previous_id maps through the same partition;
  the emission order of the single-process run is rebuilt from (epoch, phase, rank), so the
  summary (whose ties keep first-seen order) and jsonl/csv come out byte-identical.

Identity holds while no flow table reaches --max-flows (each partition has the whole cap).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import Counter
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from tcptrace.connection import Connection
from tcptrace.decode import SegmentBatch
from tcptrace.engine import FEED_SLICE, Analysis, ChunkStats, Options, prepare
from tcptrace.flows import FlowTableStats, canonical_first
from tcptrace.model import ConnectionRecord
from tcptrace.report.summary import Summary
from tcptrace.sources import FrameBatch, SourceStats

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

# splitmix64 finaliser constants (Steele, Lea, Flood 2014): a cheap, well-mixed 64-bit hash
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(h: U64) -> U64:
    h = h ^ (h >> np.uint64(30))
    h = h * _MIX1
    h = h ^ (h >> np.uint64(27))
    h = h * _MIX2
    out: U64 = h ^ (h >> np.uint64(31))
    return out


def flow_hash(seg: SegmentBatch) -> U64:
    """A 64-bit hash of each segment's canonical 4-tuple (the lower (address, port) first,
    as the flow table orders it), so both directions of a flow hash alike."""
    src_first = canonical_first(seg)
    ports = np.where(src_first, seg.sport << 16 | seg.dport, seg.dport << 16 | seg.sport)
    h = np.zeros(len(seg), dtype=np.uint64)
    for word in (np.where(src_first, seg.src_hi, seg.dst_hi),
                 np.where(src_first, seg.src_lo, seg.dst_lo),
                 np.where(src_first, seg.dst_hi, seg.src_hi),
                 np.where(src_first, seg.dst_lo, seg.src_lo),
                 ports.astype(np.uint64)):
        h = _mix(h ^ (word + _GOLDEN))
    return h


def partition_of(seg: SegmentBatch, partitions: int) -> I64:
    """The partition (0 .. partitions-1) of each segment's flow."""
    part: I64 = (flow_hash(seg) % np.uint64(partitions)).astype(np.int64)
    return part


@dataclass(slots=True)
class MappedChunk:
    """One chunk's segments, split by partition. `slice_end` and `slice_now_ns` describe the
    single-process run's feed slices of this chunk (end ordinal, exclusive; latest timestamp);
    a chunk with no slices and a `tick_ns` is a clock tick (live capture)."""

    parts: dict[int, SegmentBatch]
    bad: dict[int, SegmentBatch]
    """Segments with a bad checksum, by partition (--verify-checksums: the Zeek ledger)."""
    slice_end: I64
    slice_now_ns: I64
    stats: ChunkStats
    tick_ns: int | None = None


def map_chunk(frames: FrameBatch, options: Options, partitions: int, first_ordinal: int,
              keep: Iterable[int] | None = None) -> MappedChunk:
    """Decode, filter and partition one chunk; ordinals start at `first_ordinal`.

    `first_ordinal` is the number of segments (after filter and checksum check) in all
    earlier chunks; ordinals only need to increase in read order, so an engine without that
    prefix count may pass chunk_index << 32. `keep` limits the partitions returned (a worker
    that reads everything itself keeps only its own)."""
    stats = ChunkStats()
    empty = np.zeros(0, dtype=np.int64)
    if len(frames) == 0:
        tick = int(frames.ts_ns.max()) if len(frames.ts_ns) else 0
        return MappedChunk({}, {}, empty, empty, stats, tick)
    segments, bad = prepare(frames, options, stats)
    wanted = set(range(partitions)) if keep is None else set(keep)
    bad_parts = _split(bad, partitions, wanted) if bad is not None else {}
    n = len(segments)
    segments.ordinal = np.arange(first_ordinal, first_ordinal + n, dtype=np.int64)
    starts = range(0, n, FEED_SLICE)
    slice_end = np.array([min(s + FEED_SLICE, n) for s in starts], dtype=np.int64)
    slice_now = np.array([int(segments.ts_ns[s:s + FEED_SLICE].max()) for s in starts],
                         dtype=np.int64)
    return MappedChunk(_split(segments, partitions, wanted), bad_parts,
                       slice_end + first_ordinal, slice_now, stats)


def _split(seg: SegmentBatch, partitions: int, wanted: set[int]) -> dict[int, SegmentBatch]:
    if partitions == 1:
        return {0: seg} if 0 in wanted else {}
    part = partition_of(seg, partitions)
    return {k: seg.select(part == k) for k in sorted(wanted)}


class Emitted(NamedTuple):
    first_ordinal: int
    """Ordinal of the connection's first segment: its rank over all partitions is its id."""
    record: ConnectionRecord
    """With the partition's local id and previous_id (renumbered by finalize)."""
    epoch: int
    """The drain (feed slice) after which the single-process run emits it."""
    open_epoch: int
    """The drain that follows its first segment."""


def reduce_partition(chunks: Iterable[MappedChunk], partition: int,
                     options: Options) -> Generator[Emitted, None, FlowTableStats]:
    """The records of one partition in the order the single-process run emits them; returns
    the partition's flow-table counters."""
    engine = Analysis([], options)  # the flow table and ledger exactly as the engine makes them
    table, ledger = engine.table, engine.ledger
    msl = options.msl_s
    epoch = 0
    slice_ends: list[int] = []  # ordinal ending each slice fed so far; epoch = index + 1

    def emitted(conn: Connection) -> Emitted:
        opened = bisect.bisect_right(slice_ends, conn.first_ordinal) + 1
        return Emitted(conn.first_ordinal, conn.record(msl), epoch, min(opened, epoch))

    for chunk in chunks:
        if chunk.tick_ns is not None:
            table.tick(chunk.tick_ns)
            epoch += 1
            slice_ends.append(slice_ends[-1] if slice_ends else 0)
            for conn in table.drain():
                yield emitted(conn)
            continue
        if ledger is not None and partition in chunk.bad:
            ledger.add(chunk.bad[partition])
        seg = chunk.parts.get(partition)
        ordinals = seg.ordinal if seg is not None and seg.ordinal is not None else None
        stops = (np.searchsorted(ordinals, chunk.slice_end) if ordinals is not None
                 else np.zeros(len(chunk.slice_end), dtype=np.int64))
        start = 0
        for stop, end, now_ns in zip(stops.tolist(), chunk.slice_end.tolist(),
                                     chunk.slice_now_ns.tolist(), strict=True):
            # the single-process table would sweep now, with the clock of the whole slice
            table.now_ns = max(table.now_ns, now_ns)
            if seg is not None and stop > start:
                table.feed(seg.slice(start, stop))
            else:
                table.tick(now_ns)
            start = stop
            epoch += 1
            slice_ends.append(end)
            for conn in table.drain():
                yield emitted(conn)
    epoch += 1
    for conn in table.close():
        yield emitted(conn)
    return table.stats


# ---- finalize


@dataclass(slots=True)
class PartitionIndex:
    """One partition's records in its emission order, as small integers."""

    first_ordinal: I64
    epoch: I64
    open_epoch: I64
    local_id: I64
    previous_local_id: I64
    """0 when the record has no previous connection."""


@dataclass(slots=True)
class Renumbering:
    ids: list[I64]
    """Global id of each record, per partition (in the partition's emission order)."""
    previous_ids: list[I64]
    """Global previous_id, 0 for none."""
    order: npt.NDArray[np.intp]
    """The single-process emission order, as positions in the concatenated partitions."""
    position: list[I64]
    """Inverse of `order`: the global emission position of each record, per partition."""


def _chain_roots(parent: I64) -> I64:
    """Follow `parent` to a fixed point (pointer jumping: log2(chain length) passes)."""
    while True:
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            return parent
        parent = nxt


def _emission_key(p: PartitionIndex) -> tuple[I64, I64]:
    """(phase, rank) of each record within its epoch, as the flow table orders a drain:
    first connections ended by port reuse, in the order of the segments that reused the
    4-tuple (the successor's first ordinal); then swept ones, in the order their 4-tuple
    joined the table (the first ordinal of the oldest connection of its reuse chain)."""
    n = len(p.local_id)
    size = int(p.local_id.max()) + 1 if n else 1
    index_of = np.zeros(size, dtype=np.int64)
    index_of[p.local_id] = np.arange(n)
    # A predecessor left by port reuse leaves in the drain of its successor's first segment;
    # one that left earlier (swept, remembered by the table) is not part of that drain.
    successor = np.flatnonzero(p.previous_local_id > 0)
    before = index_of[p.previous_local_id[successor]]
    same = p.epoch[before] == p.open_epoch[successor]
    successor, before = successor[same], before[same]
    phase = np.ones(n, dtype=np.int64)
    phase[before] = 0
    successor_ordinal = np.zeros(n, dtype=np.int64)
    successor_ordinal[before] = p.first_ordinal[successor]
    parent = np.arange(size, dtype=np.int64)
    parent[p.local_id[successor]] = p.previous_local_id[successor]
    fo_by_id = np.zeros(size, dtype=np.int64)
    fo_by_id[p.local_id] = p.first_ordinal
    joined = fo_by_id[_chain_roots(parent)[p.local_id]]
    return phase, np.where(phase == 0, successor_ordinal, joined)


def renumber(parts: list[PartitionIndex]) -> Renumbering:
    """Global ids, previous ids and the single-process emission order of every record."""
    sizes = [len(p.first_ordinal) for p in parts]
    bounds = np.cumsum([0, *sizes])
    first = np.concatenate([p.first_ordinal for p in parts]) if parts else np.zeros(0, np.int64)
    ids_all = np.empty(len(first), dtype=np.int64)
    ids_all[np.argsort(first, kind="stable")] = np.arange(1, len(first) + 1)
    ids = [ids_all[bounds[k]:bounds[k + 1]] for k in range(len(parts))]
    previous_ids = []
    for p, gid in zip(parts, ids, strict=True):
        by_local = np.zeros(int(p.local_id.max()) + 1 if len(p.local_id) else 1, dtype=np.int64)
        by_local[p.local_id] = gid
        previous_ids.append(np.where(p.previous_local_id > 0, by_local[p.previous_local_id], 0))
    keys = [_emission_key(p) for p in parts]
    epoch = np.concatenate([p.epoch for p in parts]) if parts else np.zeros(0, np.int64)
    phase = np.concatenate([k[0] for k in keys]) if parts else np.zeros(0, np.int64)
    rank = np.concatenate([k[1] for k in keys]) if parts else np.zeros(0, np.int64)
    order = np.lexsort((rank, phase, epoch))
    position_all = np.empty(len(order), dtype=np.int64)
    position_all[order] = np.arange(len(order))
    position = [position_all[bounds[k]:bounds[k + 1]] for k in range(len(parts))]
    return Renumbering(ids, previous_ids, order, position)


def renumbered(record: ConnectionRecord, new_id: int, previous_id: int) -> ConnectionRecord:
    """The record under its global id (previous_id 0 means none)."""
    return dataclasses.replace(record, id=new_id,
                               previous_id=previous_id if previous_id else None)


# ---- summaries: merged so that ties keep the single-process first-seen order

_COUNTERS = tuple(f.name for f in dataclasses.fields(Summary)
                  if f.default_factory is Counter)


@dataclass(slots=True)
class PartitionSummary:
    """A partition's summary, and the emission index at which each counter key first
    appeared (Counter ties are reported in first-seen order)."""

    summary: Summary = field(default_factory=Summary)
    first_seen: dict[str, dict[str, int]] = field(
        default_factory=lambda: {name: {} for name in _COUNTERS})
    added: int = 0

    def add(self, record: ConnectionRecord) -> None:
        counters = [getattr(self.summary, name) for name in _COUNTERS]
        before = [len(c) for c in counters]
        self.summary.add(record)
        for name, counter, size in zip(_COUNTERS, counters, before, strict=True):
            if len(counter) != size:  # new keys are the last ones inserted
                for key in list(counter)[size:]:
                    self.first_seen[name][key] = self.added
        self.added += 1


def merge_summaries(parts: list[PartitionSummary], position: list[I64]) -> Summary:
    """One summary equal to the single-process one: counts added, lists joined (they are
    only sorted or summed), counter keys inserted in global first-seen order."""
    merged = Summary()
    for part in parts:
        s = part.summary
        for f in dataclasses.fields(Summary):
            if f.name in _COUNTERS:
                continue
            value: Any = getattr(s, f.name)
            setattr(merged, f.name, getattr(merged, f.name) + value)
    for name in _COUNTERS:
        seen: list[tuple[int, str, int]] = []
        for part, pos in zip(parts, position, strict=True):
            counter: Counter[str] = getattr(part.summary, name)
            seen += [(int(pos[i]), key, counter[key])
                     for key, i in part.first_seen[name].items()]
        total: Counter[str] = Counter()
        for _, key, count in sorted(seen):
            total[key] += count
        setattr(merged, name, total)
    return merged


def source_report(source: SourceStats, chunks: ChunkStats, tables: list[FlowTableStats],
                  options: Options) -> dict[str, Any]:
    """The `source` section, as engine.Analysis.source_report gives it (same warnings too).

    `source` is one reader's stats (every worker reads the same files); `chunks` the summed
    map counters; `tables` every partition's flow-table counters (summed field by field)."""
    source.skipped.update(chunks.skipped)
    engine = Analysis(list(source.files), options, source=source)
    engine.counts = dataclasses.replace(chunks, skipped=source.skipped)
    engine.warn_damage()
    for f in dataclasses.fields(FlowTableStats):
        setattr(engine.table.stats, f.name, sum(getattr(t, f.name) for t in tables))
    return engine.source_report()
