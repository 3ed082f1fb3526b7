"""The local executor of tcptrace/plan.py: `--jobs N` on one machine.

The parent reads the captures and maps every chunk once (decode, filter, split by flow
hash), and streams partition k of each chunk to worker k (a forked process) through a pipe.
Worker k runs the partition's flow table and streams each record (orjson bytes for JSON
output, otherwise a pickled record) to a temporary file, plus a few integers per record.
The parent then renumbers from those integers alone, merges the summaries and replays the
records in the single-process emission order through the normal writer: it never holds all
records at once unless the format does (json, table).

Mapping in the parent, not in every worker, is what lets N workers share the work: reading
and decoding the whole file again in each worker cost a second per worker per million
packets, most of what separated 2 workers from twice the speed.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import pickle
import queue
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from tcptrace.decode import SegmentBatch
from tcptrace.engine import ChunkStats, Options
from tcptrace.errors import TcptraceError
from tcptrace.flows import FlowTableStats
from tcptrace.model import ConnectionRecord, to_dict
from tcptrace.plan import (
    MappedChunk,
    PartitionIndex,
    PartitionSummary,
    map_chunk,
    merge_summaries,
    reduce_partition,
    renumber,
    renumbered,
    source_report,
)
from tcptrace.report.formats import JsonLinesWriter, JsonWriter, Writer
from tcptrace.sources import SourceStats
from tcptrace.sources.files import ReadMeter, read_captures

NO_BYTES = np.zeros(0, dtype=np.uint8)
AHEAD = 4  # chunks queued per worker (each up to 8 MiB of frames plus its columns)
POLL_S = 0.25  # how often the parent looks at its workers (and refreshes the progress bar)
Progress = Callable[[int, int], None]
"""Called with (bytes read, packets read) as the parent reads the captures."""


@dataclass(slots=True)
class _Result:
    """What a worker leaves beside its record file (pickled)."""

    index: PartitionIndex | None = None
    lengths: Any = None
    summary: PartitionSummary = field(default_factory=PartitionSummary)
    table: FlowTableStats = field(default_factory=FlowTableStats)
    error: BaseException | None = None
    cpu_s: float = 0.0
    """The worker's CPU time (user + system), for docs/performance.md."""


def _worker(k: int, inbox: Queue[MappedChunk | None], options: Options,
            json_option: int | None, folder: str) -> None:
    result = _Result()

    reader = _Bytes()

    def chunks() -> Iterator[MappedChunk]:
        while (chunk := inbox.get()) is not None:
            yield reader.restore(chunk)

    try:
        columns: list[list[int]] = [[], [], [], [], [], [], []]
        fo, epoch, opened, lid, plid, lengths = columns[:6]
        with open(os.path.join(folder, f"{k}.records"), "wb") as out:
            run = reduce_partition(chunks(), k, options)
            while True:
                try:
                    emitted = next(run)
                except StopIteration as stop:
                    result.table = stop.value
                    break
                record = emitted.record
                data = (orjson.dumps(to_dict(record), option=json_option)
                        if json_option is not None
                        else pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL))
                out.write(data)
                fo.append(emitted.first_ordinal)
                epoch.append(emitted.epoch)
                opened.append(emitted.open_epoch)
                lid.append(record.id)
                plid.append(record.previous_id or 0)
                lengths.append(len(data))
                result.summary.add(record)
        result.index = PartitionIndex(*(np.array(c, dtype=np.int64) for c in columns[:5]))
        result.lengths = np.array(lengths, dtype=np.int64)
    except BaseException as exc:  # reported by the parent as a single-process run would
        result.error = exc
        try:  # keep reading so the parent is never stuck on a full queue
            for _ in chunks():
                pass
        except (EOFError, OSError, ValueError):
            pass
    result.cpu_s = time.process_time()
    with open(os.path.join(folder, f"{k}.result"), "wb") as f:
        try:
            pickle.dump(result, f)
        except Exception:  # an exception that does not pickle: keep its message
            result.error = TcptraceError(str(result.error))
            pickle.dump(result, f)


def _only(mapped: MappedChunk, k: int) -> MappedChunk:
    """Partition k's share of a mapped chunk (what worker k is sent). Segments whose bytes
    are a stretch of a capture file travel without them: the worker reads them back from
    the file (`_with_bytes`), a page-cache copy instead of a pipe for every worker."""
    def light(parts: dict[int, SegmentBatch]) -> dict[int, SegmentBatch]:
        if k not in parts:
            return {}
        seg = parts[k]
        return {k: replace(seg, data=NO_BYTES) if seg.origin is not None else seg}

    return MappedChunk(light(mapped.parts), light(mapped.bad), mapped.slice_end,
                       mapped.slice_now_ns, ChunkStats(), mapped.tick_ns)


class _Bytes:
    """Reads back the bytes of the chunks the parent sent without them (the last one only:
    a chunk's parts and bad segments share one buffer, chunks come in read order)."""

    def __init__(self) -> None:
        self.origin: tuple[str, int, int] | None = None
        self.data = NO_BYTES

    def restore(self, chunk: MappedChunk) -> MappedChunk:
        for parts in (chunk.parts, chunk.bad):
            for k, seg in parts.items():
                if seg.origin is not None and len(seg.data) == 0:
                    parts[k] = replace(seg, data=self._read(seg.origin))
        return chunk

    def _read(self, origin: tuple[str, int, int]) -> npt.NDArray[np.uint8]:
        """The stretch as `bytes`, which the flow table reads payloads from without a copy
        (nothing after decode gathers past a frame's end, so no slack is needed)."""
        if origin != self.origin:
            path, offset, length = origin
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(length)
            if len(data) != length:
                raise TcptraceError(f"{path}: changed while it was being read")
            self.data = np.frombuffer(data, dtype=np.uint8)
            self.origin = origin
        return self.data


def _map_and_send(paths: list[str], options: Options, outboxes: list[Queue[MappedChunk | None]],
                  workers: list[Any], source: SourceStats, chunks: ChunkStats,
                  progress: Progress | None) -> None:
    """Read and map every chunk, queue each worker its partition, then the end (None)."""
    meter = ReadMeter()
    ordinal = 0
    shown = time.monotonic()

    def send(k: int, item: MappedChunk | None) -> None:
        while True:  # a full queue waits for its worker, unless that worker died
            try:
                outboxes[k].put(item, timeout=POLL_S)
                return
            except queue.Full:
                if not workers[k].is_alive():
                    raise _died(workers, k) from None

    for frames in read_captures(paths, source, meter):
        mapped = map_chunk(frames, options, len(outboxes), ordinal)
        ordinal += mapped.stats.segments
        chunks.add(mapped.stats)
        for k in range(len(outboxes)):
            send(k, _only(mapped, k))
        if progress is not None and time.monotonic() - shown >= POLL_S:
            shown = time.monotonic()
            progress(meter.bytes, source.frames)
    for k in range(len(outboxes)):
        send(k, None)
    if progress is not None:
        progress(meter.bytes, source.frames)


# How the two renumbered fields look in orjson's compact and indented (OPT_INDENT_2) output:
# the record's first key, and the key that follows it.
COMPACT = (b'{"id":', b',"previous_id":', b",")
INDENTED = (b'{\n  "id": ', b',\n  "previous_id": ', b",\n")


def _encoding(writer: Writer) -> tuple[int, tuple[bytes, bytes, bytes]] | None:
    """How workers encode records for `writer`: JSON in the writer's own layout (the orjson
    option, and the layout the parent splices ids into), or None: pickled records."""
    if isinstance(writer, JsonWriter):
        return orjson.OPT_INDENT_2, INDENTED
    if isinstance(writer, JsonLinesWriter):
        return 0, COMPACT
    return None


def _with_ids(data: bytes, new_id: int, previous: int,
              layout: tuple[bytes, bytes, bytes]) -> bytes:
    """A worker's encoded record under its global ids (`previous` 0: null). Only these two
    numbers change, so they are spliced into the bytes: decoding and re-encoding 50k
    records was a serial second at the end of every run."""
    head, previous_key, comma = layout
    if not data.startswith(head):
        raise AssertionError("a record's first key must be its id")
    id_end = data.index(comma, len(head))
    at = data.index(previous_key, id_end) + len(previous_key)
    end = data.index(comma, at)
    return b"".join((head, b"%d" % new_id, data[id_end:at],
                     b"%d" % previous if previous else b"null", data[end:]))


def _died(workers: list[Any], k: int) -> TcptraceError:
    return TcptraceError(f"worker {k} of --jobs {len(workers)} died "
                         f"(exit status {workers[k].exitcode})")


def analyze(paths: list[str], options: Options, jobs: int, writer: Writer,
            progress: Progress | None = None) -> dict[str, Any]:
    """Run the analysis on `jobs` processes, write every record and the summary through
    `writer`, and return the source report (its warnings included)."""
    folder = tempfile.mkdtemp(prefix="tcptrace-jobs-")
    context = multiprocessing.get_context("fork")
    encoding = _encoding(writer)
    json_option = encoding[0] if encoding is not None else None
    source, chunks = SourceStats(), ChunkStats()
    sys.stdout.flush()
    sys.stderr.flush()
    # a few chunks queued ahead per worker: each works at its own pace, memory stays bounded
    outboxes: list[Queue[MappedChunk | None]] = [context.Queue(AHEAD) for _ in range(jobs)]
    workers: list[Any] = []
    try:
        for k, outbox in enumerate(outboxes):
            workers.append(context.Process(target=_worker, daemon=True,
                                           args=(k, outbox, options, json_option, folder)))
            workers[-1].start()
        _map_and_send(paths, options, outboxes, workers, source, chunks, progress)
        for w in workers:  # the finally below stops them if anything goes wrong
            w.join()
        results = []
        for k in range(jobs):
            path = Path(folder) / f"{k}.result"
            if not path.exists():
                raise _died(workers, k)
            with open(path, "rb") as f:
                results.append(pickle.load(f))
        for result in results:
            if result.error is not None:
                raise result.error
        return _write(results, folder, options, writer, source, chunks)
    finally:
        for outbox in outboxes:
            outbox.cancel_join_thread()  # never wait to flush a queue a worker left
            outbox.close()
        for w in workers:
            if w.is_alive():
                w.terminate()
            w.join()
        shutil.rmtree(folder, ignore_errors=True)


def _write(results: list[_Result], folder: str, options: Options, writer: Writer,
           source_stats: SourceStats, chunks: ChunkStats) -> dict[str, Any]:
    encoding = _encoding(writer)
    indexes = [r.index for r in results if r.index is not None]
    numbers = renumber(indexes)
    summary = merge_summaries([r.summary for r in results], numbers.position)
    source = source_report(source_stats, chunks, [r.table for r in results], options)
    bounds = np.cumsum([0] + [len(i.first_ordinal) for i in indexes])
    partition = np.searchsorted(bounds, numbers.order, side="right") - 1
    within = numbers.order - bounds[partition]
    starts = [np.concatenate([[0], np.cumsum(r.lengths)]) for r in results]
    files = []
    views: list[mmap.mmap | bytes] = []
    try:
        for k in range(len(results)):
            f = open(os.path.join(folder, f"{k}.records"), "rb")  # noqa: SIM115
            files.append(f)
            size = os.fstat(f.fileno()).st_size
            views.append(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b"")
        out = writer.out
        for p, i in zip(partition.tolist(), within.tolist(), strict=True):
            data = views[p][starts[p][i]:starts[p][i + 1]]
            new_id, previous = int(numbers.ids[p][i]), int(numbers.previous_ids[p][i])
            if encoding is not None:
                data = _with_ids(data, new_id, previous, encoding[1])
                if isinstance(writer, JsonWriter):
                    writer.add_encoded(new_id, data)
                else:  # exactly what JsonLinesWriter writes
                    out.write(data.decode() + "\n")
            else:
                record: ConnectionRecord = pickle.loads(data)
                writer.write(renumbered(record, new_id, previous))
        writer.finish(summary, source)
    finally:
        for view in views:
            if isinstance(view, mmap.mmap):
                view.close()
        for f in files:
            f.close()
    return source
