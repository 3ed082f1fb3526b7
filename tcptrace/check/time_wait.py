"""time_wait_concurrency: the most TIME_WAITs one holder (ip:port, or host) keeps at once.

A TIME_WAIT lasts from close.time_wait_ts to close.time_wait_until, or until a new
connection takes over its 4-tuple (previous_id): the old one has then ended (RFC 1122
section 4.2.2.13 lets a SYN reopen a connection in TIME_WAIT). The take-over may be seen
before or after the connection it ends, so the intervals are kept as they come (packed
arrays, 32 bytes each, chained per holder) and swept once the last record is in.

The peak of a holder is the earliest instant the most of its intervals (half-open: one
ending at an instant is gone before one starting then) are held; the connections held then
are the offenders of a holder over the bound, named from a spool of the holders' records.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping
from typing import Any

from tcptrace.check.offenders import Chosen, Offender, Offenders, endpoint, named
from tcptrace.check.spool import Item, SortedSpool

NO_LINK = -1


class TimeWaitConcurrency:
    """The accumulator of a time_wait_concurrency rule (tcptrace.check.accumulators)."""

    def __init__(self, p: Mapping[str, Any]) -> None:
        self._max, self._per_port = p["max"], p["per"] == "endpoint"
        self._holders: dict[str, int] = {}
        """holder key -> its index in `_first`/`_last`."""
        self._first, self._last = array("q"), array("q")
        """per holder: its first and last interval (indices into the arrays below)."""
        self._next = array("q")
        """per interval: the holder's next interval, NO_LINK after its last."""
        self._ids, self._starts, self._untils = array("q"), array("d"), array("d")
        self._taken_over: dict[int, tuple[int, float]] = {}
        """previous_id -> (id, first_ts) of the connection that took its 4-tuple over."""
        self._named = SortedSpool()
        """(id, client, server, first_ts) of every record holding a TIME_WAIT."""

    def feed(self, record: Mapping[str, Any]) -> None:
        previous = record["previous_id"]
        if previous is not None:
            # should two connections name one previous connection, the later (highest id)
            # ends it, as when the records were judged sorted by id
            taker = self._taken_over.get(previous)
            if taker is None or record["id"] >= taker[0]:
                self._taken_over[previous] = (record["id"], record["first_ts"])
        close = record["close"]
        held, start, until = close["time_wait"], close["time_wait_ts"], close["time_wait_until"]
        if held is None or start is None or until is None:
            return
        keys = []
        for side in ("client", "server"):
            if held in (side, "both"):
                end = record[side]
                key = endpoint(end["ip"], end["port"] if self._per_port else None)
                if key not in keys:  # one holder for both sides: held once, not twice
                    keys.append(key)
        for key in keys:
            self._interval(key, record["id"], start, until)
        self._named.add(named(record))

    def _interval(self, key: str, conn_id: int, start: float, until: float) -> None:
        at = len(self._ids)
        self._ids.append(conn_id)
        self._starts.append(start)
        self._untils.append(until)
        self._next.append(NO_LINK)
        holder = self._holders.setdefault(key, len(self._holders))
        if holder == len(self._first):
            self._first.append(at)
            self._last.append(at)
        else:
            self._next[self._last[holder]] = at
            self._last[holder] = at

    def _intervals(self, holder: int) -> Iterator[tuple[int, float, float]]:
        """(id, start, end) of a holder's intervals that last, a take-over ending them."""
        at = self._first[holder]
        while at != NO_LINK:
            conn_id, start, end = self._ids[at], self._starts[at], self._untils[at]
            taker = self._taken_over.get(conn_id)
            if taker is not None:
                end = min(end, taker[1])
            if end > start:
                yield conn_id, start, end
            at = self._next[at]

    def _peak(self, holder: int) -> tuple[int, float]:
        """The most intervals held at once and the earliest instant they are (0 if none)."""
        intervals = list(self._intervals(holder))
        starts = sorted(start for _, start, _ in intervals)
        ends = sorted(end for _, _, end in intervals)
        best, when, gone = 0, 0.0, 0
        for started, start in enumerate(starts, 1):
            while gone < len(ends) and ends[gone] <= start:
                gone += 1
            if started - gone > best:
                best, when = started - gone, start
        return best, when

    def _held_at(self, holder: int, when: float) -> list[int]:
        return [conn_id for conn_id, start, end in self._intervals(holder) if start <= when < end]

    def verdict(self) -> tuple[bool, str, Offenders]:
        # the peaks are looked at one holder at a time: only the worst, as (-count, key) for
        # the line of a rule that holds, and those over the bound, (key, count, instant), kept
        top: tuple[int, str] | None = None
        over: list[tuple[str, int, float]] = []
        for key, holder in self._holders.items():
            count, when = self._peak(holder)
            if count == 0:  # every interval ended by a take-over before it began
                continue
            if top is None or (-count, key) < top:
                top = (-count, key)
            if count > self._max:
                over.append((key, count, when))
        if top is None:
            return True, "no TIME_WAIT", ()
        if not over:
            return True, f"at most {-top[0]} at once (on {top[1]})", ()
        over.sort(key=lambda peak: (-peak[1], peak[0]))
        # id -> its index in `over`: a connection held by two holders is named by the worse
        worse: dict[int, int] = {}
        for index, (key, _, when) in enumerate(over):
            for conn_id in self._held_at(self._holders[key], when):
                worse.setdefault(conn_id, index)

        def choose(item: Item) -> Offender | None:
            index = worse.get(item[0])
            if index is None:
                return None
            key, count, when = over[index]
            reason = f"one of {count} TIME_WAITs held at once by {key} at {when:.6f}"
            return Offender._make((*item, reason))

        worst = ", ".join(f"{key} held {count} at once" for key, count, _ in over)
        return False, f"{worst} (max {self._max})", Chosen(self._named, len(worse), choose)
