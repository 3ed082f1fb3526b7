"""Tuples keyed by connection id, given in any order and read back in id order, in bounded
memory: `check` lists every offender of a rule (`--format json` lists all), and a failing
rule over a flood of a million connections has a million of them.

Up to `threshold` tuples are held in a list; past it they are sorted and written as a run
to an unnamed temporary file, gone with the spool (marshal chunks: exact floats, no
per-item framing), and reading merges the runs (an external merge sort). Records come in
the order connections end, not by id, so a run is sorted on its own and the merge orders
them across runs.
"""

from __future__ import annotations

import heapq
import marshal
from collections.abc import Iterator
from operator import itemgetter
from typing import IO, Any

Item = tuple[Any, ...]
"""A tuple of ints, floats and strs (what marshal writes) whose first item is the id."""

SPILL_AT = 20_000
"""Tuples held in memory before they go to disk as one sorted run (a few MB of offenders)."""
CHUNK = 1_000
"""Tuples per marshal chunk: the merge reads one chunk of each run at a time."""

_BY_ID = itemgetter(0)


class SortedSpool:
    """A growing collection of tuples read back in id order, ties in the order added (a
    stable sort, as sorting the records by id was). Iterable any number of times."""

    def __init__(self, threshold: int | None = None) -> None:
        self._threshold = max(1, SPILL_AT if threshold is None else threshold)
        self._held: list[Item] = []
        self._runs: list[tuple[int, int]] = []
        """(file offset, chunks) of each sorted run, in the order written."""
        self._file: IO[bytes] | None = None
        self._count = 0

    def add(self, item: Item) -> None:
        self._held.append(item)
        self._count += 1
        if len(self._held) >= self._threshold:
            self._spill()

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __iter__(self) -> Iterator[Item]:
        self._held.sort(key=_BY_ID)  # stable: ties stay in the order added
        if not self._runs:
            return iter(list(self._held))
        # runs first, in the order written, then the held tail: heapq.merge keeps the
        # order of its inputs on ties, so the whole stays a stable sort
        return heapq.merge(*(self._read(run) for run in self._runs), list(self._held),
                           key=_BY_ID)

    def _spill(self) -> None:
        if self._file is None:
            # open as long as the spool lives (unnamed: closing it frees the space)
            import tempfile  # (only when a spool outgrows memory: ~4 ms of a check's start)

            self._file = tempfile.TemporaryFile(prefix="tcptrace-check-")  # noqa: SIM115
        self._held.sort(key=_BY_ID)
        out = self._file
        out.seek(0, 2)
        start = out.tell()
        chunks = 0
        for at in range(0, len(self._held), CHUNK):
            marshal.dump(self._held[at:at + CHUNK], out)
            chunks += 1
        self._runs.append((start, chunks))
        self._held = []

    def _read(self, run: tuple[int, int]) -> Iterator[Item]:
        """The tuples of one run; the runs share one file, so each read seeks first."""
        assert self._file is not None
        at, chunks = run
        for _ in range(chunks):
            self._file.seek(at)
            chunk: list[Item] = marshal.load(self._file)
            at = self._file.tell()
            yield from chunk
