"""Which connections' segment traces the HTML report embeds: a budget, spent on the
connections a person opens first.

Every connection's trace would make the page as large as the capture (the 1M-packet
benchmark: 65 MB of HTML, 44 s to load). The first pass over the capture (records only)
offers each record here; five bounded heaps keep the best candidates of each kind:

- `rst`: connections ended or refused by a RST (the earliest ids);
- `slow handshake`: the longest set-up (first SYN to the ACK of the SYN/ACK);
- `stall`: retransmissions, ranked by bytes sent again (a SYN or SYN/ACK sent again
  counts as a full segment): where a transfer waited for a timeout;
- `longest`: the longest duration;
- `largest`: the most unique payload bytes, both directions.

At the end the kinds take turns (the best of each, then the second best, ...) until the
segment budget is spent; a connection picked by several kinds counts once. A second pass
traces exactly the picked ids. A trace's size is known before it is drawn: a connection's
trace holds min(packets, --max-segments) segments.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

Record = dict[str, Any]

PER_KIND = 200
"""Candidates kept per kind (more than a person opens; the budget decides the rest)."""
TRACE_BUDGET = 100_000
"""Segments embedded in all (about 1.2 MB of compressed, base64 page text)."""
SYN_AS_BYTES = 1460
"""A retransmitted SYN or SYN/ACK weighs as a full-size segment in the `stall` ranking."""


def _rst(r: Record) -> float | None:
    return -r["id"] if r["rst"] is not None else None


def _slow_handshake(r: Record) -> float | None:
    hs = r["handshake"]
    value: float | None = hs["setup_ms"] if hs["setup_ms"] is not None else hs["rtt_ms"]
    return value


def _stall(r: Record) -> float | None:
    hs, retx = r["handshake"], r["retransmitted_bytes"]
    score = retx["client"] + retx["server"] + SYN_AS_BYTES * (
        hs["syn_retransmits"] + hs["synack_retransmits"])
    return score or None


def _longest(r: Record) -> float | None:
    value: float = r["duration_ms"]
    return value


def _largest(r: Record) -> float | None:
    unique = r["unique_bytes"]
    return unique["client"] + unique["server"] or None


KINDS: tuple[tuple[str, Callable[[Record], float | None]], ...] = (
    ("rst", _rst), ("slow handshake", _slow_handshake), ("stall", _stall),
    ("longest", _longest), ("largest", _largest))


class TracePicker:
    """Bounded heaps of candidates per kind, fed record by record (O(PER_KIND) memory)."""

    def __init__(self, max_segments: int, budget: int = TRACE_BUDGET,
                 per_kind: int = PER_KIND) -> None:
        self.max_segments = max_segments
        self.budget = budget
        self.per_kind = per_kind
        # min-heaps of (score, -id, id, segments): the root is the weakest candidate;
        # on equal scores the smaller id wins
        self._heaps: list[list[tuple[float, int, int, int]]] = [[] for _ in KINDS]

    def offer(self, r: Record) -> None:
        segments = min(r["packets"]["client"] + r["packets"]["server"], self.max_segments)
        if not segments:
            return
        for heap, (_, score_of) in zip(self._heaps, KINDS, strict=True):
            score = score_of(r)
            if score is None:
                continue
            item = (score, -r["id"], r["id"], segments)
            if len(heap) < self.per_kind:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)

    def picked(self) -> dict[int, list[str]]:
        """Id -> the kinds that picked it, within the budget, in the order of the turns."""
        ranked = [sorted(heap, reverse=True) for heap in self._heaps]
        chosen: dict[int, list[str]] = {}
        spent = 0
        for rank in range(max((len(r) for r in ranked), default=0)):
            for (kind, _), candidates in zip(KINDS, ranked, strict=True):
                if rank >= len(candidates):
                    continue
                _, _, conn, segments = candidates[rank]
                if conn in chosen:
                    chosen[conn].append(kind)
                elif spent + segments <= self.budget:
                    chosen[conn] = [kind]
                    spent += segments
        return chosen
