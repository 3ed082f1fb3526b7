"""The local executor of tcptrace/plan.py: `--jobs N` on one machine.

Worker k (a forked process) reads and decodes every chunk itself (decoding is a small share
of the run) and keeps only partition k, so no segment bytes cross a process boundary. It
runs the partition's flow table and streams each record (orjson bytes for JSON output,
otherwise a pickled record) to a temporary file, plus a few integers per record. The
parent then renumbers from those integers alone, merges the summaries and replays the
records in the single-process emission order through the normal writer: it never holds all
records at once unless the format does (json, table).
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from tcptrace.engine import Options
from tcptrace.errors import TcptraceError
from tcptrace.flows import FlowTableStats
from tcptrace.model import ConnectionRecord, to_dict
from tcptrace.plan import (
    ChunkStats,
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

POLL_S = 0.25  # how often the parent looks at its workers (and refreshes the progress bar)
Progress = Callable[[int, int], None]
"""Called with (bytes read, packets read) of the first worker."""


@dataclass(slots=True)
class _Result:
    """What a worker leaves beside its record file (pickled)."""

    index: PartitionIndex | None = None
    lengths: Any = None
    summary: PartitionSummary = field(default_factory=PartitionSummary)
    table: FlowTableStats = field(default_factory=FlowTableStats)
    source: SourceStats = field(default_factory=SourceStats)
    chunks: ChunkStats = field(default_factory=ChunkStats)
    error: BaseException | None = None
    cpu_s: float = 0.0
    """The worker's CPU time (user + system), for docs/performance.md."""


def _worker(k: int, jobs: int, paths: list[str], options: Options, as_json: bool,
            folder: str, shared: Any) -> None:
    result = _Result()
    try:
        meter = ReadMeter()

        def chunks() -> Iterator[MappedChunk]:
            ordinal = 0
            for frames in read_captures(paths, result.source, meter):
                mapped = map_chunk(frames, options, jobs, ordinal, keep=(k,))
                ordinal += mapped.stats.segments
                result.chunks.add(mapped.stats)
                if shared is not None:
                    shared[0], shared[1] = meter.bytes, result.source.frames
                yield mapped

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
                data = (orjson.dumps(to_dict(record)) if as_json
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
    result.cpu_s = time.process_time()
    with open(os.path.join(folder, f"{k}.result"), "wb") as f:
        try:
            pickle.dump(result, f)
        except Exception:  # an exception that does not pickle: keep its message
            result.error = TcptraceError(str(result.error))
            pickle.dump(result, f)


def _wait(workers: list[Any], progress: Progress | None, shared: Any) -> None:
    try:
        while alive := [w for w in workers if w.is_alive()]:
            alive[0].join(POLL_S)
            if progress is not None:
                progress(int(shared[0]), int(shared[1]))
        if progress is not None:
            progress(int(shared[0]), int(shared[1]))
    finally:
        for w in workers:
            if w.is_alive():
                w.terminate()
            w.join()


def analyze(paths: list[str], options: Options, jobs: int, writer: Writer,
            progress: Progress | None = None) -> dict[str, Any]:
    """Run the analysis on `jobs` processes, write every record and the summary through
    `writer`, and return the source report (its warnings included)."""
    folder = tempfile.mkdtemp(prefix="tcptrace-jobs-")
    context = multiprocessing.get_context("fork")
    shared = context.Array("q", 2, lock=False)
    as_json = isinstance(writer, JsonLinesWriter | JsonWriter)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        workers = [context.Process(target=_worker, daemon=True,
                                   args=(k, jobs, paths, options, as_json, folder,
                                         shared if k == 0 else None))
                   for k in range(jobs)]
        for w in workers:
            w.start()
        _wait(workers, progress, shared)
        results = []
        for k, w in enumerate(workers):
            path = Path(folder) / f"{k}.result"
            if not path.exists():
                raise TcptraceError(f"worker {k} of --jobs {jobs} died (exit status {w.exitcode})")
            with open(path, "rb") as f:
                results.append(pickle.load(f))
        for result in results:
            if result.error is not None:
                raise result.error
        return _write(results, folder, options, writer, as_json)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _write(results: list[_Result], folder: str, options: Options, writer: Writer,
           as_json: bool) -> dict[str, Any]:
    indexes = [r.index for r in results if r.index is not None]
    numbers = renumber(indexes)
    summary = merge_summaries([r.summary for r in results], numbers.position)
    chunks = results[0].chunks
    source = source_report(results[0].source, chunks, [r.table for r in results], options)
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
            if as_json:
                row = orjson.loads(data)
                row["id"], row["previous_id"] = new_id, previous or None
                if isinstance(writer, JsonWriter):
                    writer.add_row(row)
                else:  # exactly what JsonLinesWriter writes
                    out.write(orjson.dumps(row).decode() + "\n")
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
