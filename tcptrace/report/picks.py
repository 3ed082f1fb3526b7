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
from typing import Any

Record = dict[str, Any]

PER_KIND = 200
"""Candidates kept per kind (more than a person opens; the budget decides the rest)."""
TRACE_BUDGET = 100_000
"""Segments embedded in all (about 1.2 MB of compressed, base64 page text)."""
SYN_AS_BYTES = 1460
"""A retransmitted SYN or SYN/ACK weighs as a full-size segment in the `stall` ranking."""


KINDS = ("rst", "slow handshake", "stall", "longest", "largest")


def scores(r: Record) -> tuple[float | None, ...]:
    """The record's score for each kind (higher: picked first), None where it is no
    candidate. One function, not one per kind: it runs for every connection."""
    hs, retx, unique = r["handshake"], r["retransmitted_bytes"], r["unique_bytes"]
    setup = hs["setup_ms"]
    return (
        -r["id"] if r["rst"] is not None else None,  # the earliest RSTs
        setup if setup is not None else hs["rtt_ms"],
        retx["client"] + retx["server"]
        + SYN_AS_BYTES * (hs["syn_retransmits"] + hs["synack_retransmits"]) or None,
        r["duration_ms"],
        unique["client"] + unique["server"] or None,
    )


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
        packets = r["packets"]
        segments = min(packets["client"] + packets["server"], self.max_segments)
        if not segments:
            return
        conn = r["id"]
        for heap, score in zip(self._heaps, scores(r), strict=True):
            if score is None:
                continue
            if len(heap) < self.per_kind:
                heapq.heappush(heap, (score, -conn, conn, segments))
            elif score >= heap[0][0]:  # (a cheap test first: most records are not candidates)
                item = (score, -conn, conn, segments)
                if item > heap[0]:
                    heapq.heapreplace(heap, item)

    def picked(self) -> dict[int, list[str]]:
        """Id -> the kinds that picked it, within the budget, in the order of the turns."""
        ranked = [sorted(heap, reverse=True) for heap in self._heaps]
        chosen: dict[int, list[str]] = {}
        spent = 0
        for rank in range(max((len(r) for r in ranked), default=0)):
            for kind, candidates in zip(KINDS, ranked, strict=True):
                if rank >= len(candidates):
                    continue
                _, _, conn, segments = candidates[rank]
                if conn in chosen:
                    chosen[conn].append(kind)
                elif spent + segments <= self.budget:
                    chosen[conn] = [kind]
                    spent += segments
        return chosen
