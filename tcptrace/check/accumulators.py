"""One accumulator per check, fed the records its rule's `where` selects one at a time, in
the order connections end; `verdict` is asked once, after the last record.

Each keeps only what its verdict needs: counters, the measured values of a percentile as
packed doubles, offenders in a spool (tcptrace.check.spool). Offenders come out in id
order whatever order the records came in.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from tcptrace.check.health import RetransmitRate, zero_window_stall
from tcptrace.check.offenders import Chosen, Offender, Offenders, OffenderSpool, named, plural
from tcptrace.check.rules import RST_KINDS, fmt_ms
from tcptrace.check.spool import Item, SortedSpool
from tcptrace.check.time_wait import TimeWaitConcurrency
from tcptrace.report.summary import percentile

Record = Mapping[str, Any]
Verdict = tuple[bool, str, Offenders]
"""Whether the rule holds, a one-line detail, the offending connections in id order."""


class Accumulator(Protocol):
    def feed(self, record: Record) -> None: ...

    def verdict(self) -> Verdict: ...


def _each(offenders: Offenders, checked: int, what: str = "") -> Verdict:
    """Verdict of a per-connection rule: it holds when no connection offends."""
    text = plural(checked, f"{what}connection")
    if offenders:
        return False, f"{len(offenders)} of {text}", offenders
    return True, f"{text} checked", offenders


class PerConnection:
    """A rule every connection must keep on its own: `reason` says why a record breaks it,
    None when it does not."""

    def __init__(self, reason: Callable[[Record], str | None]) -> None:
        self._reason = reason
        self._checked = 0
        self._offenders = OffenderSpool()

    def feed(self, record: Record) -> None:
        self._checked += 1
        reason = self._reason(record)
        if reason is not None:
            self._offenders.add(record, reason)

    def verdict(self) -> Verdict:
        return _each(self._offenders, self._checked)


def syn_retransmits(p: Mapping[str, Any]) -> Accumulator:
    def reason(r: Record) -> str | None:
        n = r["handshake"]["syn_retransmits"]
        return plural(n, "SYN retransmission") if n > p["max"] else None
    return PerConnection(reason)


def rst(p: Mapping[str, Any]) -> Accumulator:
    kinds = set(p["kinds"] or RST_KINDS) - set(p["except_kinds"])

    def reason(r: Record) -> str | None:
        sent = r["rst"]
        if sent is None or sent["kind"] not in kinds or p["sender"] not in (None, sent["sender"]):
            return None
        return f"{sent['kind']} RST sent by the {sent['sender']}"
    return PerConnection(reason)


def time_wait(p: Mapping[str, Any]) -> Accumulator:
    def reason(r: Record) -> str | None:
        tw = r["close"]["time_wait"]
        if tw in (None, p["on"]):
            return None
        return "TIME_WAIT held by both sides" if tw == "both" else f"TIME_WAIT held by the {tw}"
    return PerConnection(reason)


def half_close(p: Mapping[str, Any]) -> Accumulator:
    def reason(r: Record) -> str | None:
        half = r["half_close"]
        if half is None or p["side"] not in (None, half["side"]):
            return None
        return f"half-close by the {half['side']}: {half['bytes_after_fin']} bytes after its FIN"
    return PerConnection(reason)


def zero_window(p: Mapping[str, Any]) -> Accumulator:
    return PerConnection(lambda r: zero_window_stall(r, p["max_ms"]))


def completed(p: Mapping[str, Any]) -> Accumulator:
    return PerConnection(lambda r: f"outcome {r['outcome']}" if r["outcome"] in p["outcomes"]
                         else None)


class Handshake:
    """Every measured handshake within a bound, or its percentile: the values are kept
    (8 bytes each) only when a percentile is asked; offenders are those over the bound."""

    def __init__(self, p: Mapping[str, Any]) -> None:
        self._metric, self._bound, self._rank = p["metric"], p["max_ms"], p["percentile"]
        self._measured = 0
        self._values = array("d")
        self._over = OffenderSpool()

    def feed(self, record: Record) -> None:
        value = record["handshake"][self._metric]
        if value is None:
            return
        self._measured += 1
        if self._rank is not None:
            self._values.append(value)
        if value > self._bound:
            self._over.add(record, f"{self._metric} {fmt_ms(value)}")

    def verdict(self) -> Verdict:
        if self._rank is None:
            return _each(self._over, self._measured, "measured ")
        if not self._measured:
            return True, "no measured handshake", ()
        value = percentile(self._values, self._rank)
        assert value is not None
        text = f"p{self._rank:g} {fmt_ms(value)} ms (n={self._measured})"
        if value > self._bound:
            return False, f"{text} > {fmt_ms(self._bound)} ms", self._over
        return True, text, ()


class Reuse:
    """Requests per connection: each at least `min_requests`, and/or a mean of at least
    `min_mean`. When the mean is too low the connections below it offend too, which is known
    only at the end: the connections below either bound are spooled with their count."""

    def __init__(self, p: Mapping[str, Any]) -> None:
        self._http = p["protocol"] == "http"
        self._min_requests, self._min_mean = p["min_requests"], p["min_mean"]
        bounds = [b for b in (self._min_requests, self._min_mean) if b is not None]
        self._below_any = max(bounds)
        self._used = self._requests = 0
        self._few = self._below_any_count = 0
        self._below = SortedSpool()
        """(id, client, server, first_ts, requests) of every connection below a bound."""

    def feed(self, record: Record) -> None:
        reuse = record["reuse"]
        requests = reuse["requests"]
        if not (reuse["protocol"] is not None if self._http else requests):
            return
        self._used += 1
        self._requests += requests
        if requests < self._below_any:
            self._below_any_count += 1
            if self._min_requests is not None and requests < self._min_requests:
                self._few += 1
            self._below.add((*named(record), requests))

    def verdict(self) -> Verdict:
        what = ("HTTP connection", "HTTP connections") if self._http else \
            ("connection with requests", "connections with requests")
        if not self._used:
            return True, f"no {what[0]}", ()
        mean = round(self._requests / self._used, 3)
        text = f"{plural(self._used, *what)}, mean {fmt_ms(mean)} requests"
        mean_low = self._min_mean is not None and mean < self._min_mean
        if not self._few and not mean_low:
            return True, text, ()
        bound = self._below_any if mean_low else self._min_requests
        count = self._below_any_count if mean_low else self._few

        def choose(item: Item) -> Offender | None:
            *name, requests = item
            if requests >= bound:
                return None
            return Offender._make((*name, plural(requests, "request")))

        detail = f"{text} < {fmt_ms(self._min_mean)}" if mean_low else f"{self._few} of {text}"
        return False, detail, Chosen(self._below, count, choose)


class Connections:
    """The number of connections selected, within bounds."""

    def __init__(self, p: Mapping[str, Any]) -> None:
        self._min, self._max = p["min"], p["max"]
        self._count = 0

    def feed(self, record: Record) -> None:
        self._count += 1

    def verdict(self) -> Verdict:
        n = self._count
        ok = (self._min is None or n >= self._min) and (self._max is None or n <= self._max)
        return ok, plural(n, "connection"), ()


ACCUMULATORS: dict[str, Callable[[Mapping[str, Any]], Accumulator]] = {
    "handshake": Handshake,
    "syn_retransmits": syn_retransmits,
    "rst": rst,
    "time_wait": time_wait,
    "time_wait_concurrency": TimeWaitConcurrency,
    "half_close": half_close,
    "reuse": Reuse,
    "completed": completed,
    "connections": Connections,
    "retransmit_rate": RetransmitRate,
    "zero_window_stall": zero_window,
}
"""The accumulator of each check (tcptrace.check.rules.CHECKS), built from a rule's params."""
