"""The health checks (issue 16, docs/health.md): the share of payload retransmitted, and
connections stalled on a zero window.

A retransmitted byte is one the record files under a cause (`retransmissions.<side>.rto`,
`.fast`, `.tlp`): keep-alives and zero-window probes are not retransmissions, and a capture
duplicate was never counted. The rate is over payload bytes, not segments: the record
counts the payload seen per side (`bytes`, retransmissions included) but not the segments
that carried it (`packets` includes bare ACKs, which would dilute the rate).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tcptrace.check.offenders import Offenders, OffenderSpool, plural
from tcptrace.check.rules import SIDES, fmt_ms

Record = Mapping[str, Any]
CAUSES = ("rto", "fast", "tlp")
"""Every retransmission has exactly one of these causes (docs/health.md)."""


def retransmitted(record: Record, sides: tuple[str, ...]) -> tuple[int, int]:
    """(retransmitted payload bytes, payload bytes seen) sent by `sides`."""
    again = sum(record["retransmissions"][side][cause]["bytes"]
                for side in sides for cause in CAUSES)
    return again, sum(record["bytes"][side] for side in sides)


def rate_text(again: int, payload: int) -> str:
    """E.g. "400 of 918 payload bytes retransmitted (43.573 %)"."""
    pct = round(100 * again / payload, 3)
    return f"{again} of {plural(payload, 'payload byte')} retransmitted ({fmt_ms(pct)} %)"


class RetransmitRate:
    """Retransmitted payload within `max_pct` per cent of the payload seen: over all the
    connections selected (`per = "run"`) or in each (`per = "connection"`). Connections that
    carried no payload are not measured. Either way the offenders are the connections over
    the bound, spooled as they come: when the run's rate is over it, so is at least one
    connection's (the run's rate is their payload-weighted mean)."""

    def __init__(self, p: Mapping[str, Any]) -> None:
        self._bound, self._per_run = p["max_pct"], p["per"] == "run"
        self._sides = SIDES if p["sender"] is None else (p["sender"],)
        self._measured = self._again = self._payload = 0
        self._over = OffenderSpool()

    def feed(self, record: Record) -> None:
        again, payload = retransmitted(record, self._sides)
        if not payload:
            return
        self._measured += 1
        self._again += again
        self._payload += payload
        if again * 100 > self._bound * payload:  # no rounding decides
            self._over.add(record, rate_text(again, payload))

    def verdict(self) -> tuple[bool, str, Offenders]:
        bound = f"{fmt_ms(self._bound)} %"
        if not self._measured:
            return True, "no connection with payload", ()
        if not self._per_run:
            text = plural(self._measured, "connection with payload",
                          "connections with payload")
            if self._over:
                return False, f"{len(self._over)} of {text} over {bound}", self._over
            return True, f"{text} checked", self._over
        text = f"{rate_text(self._again, self._payload)} in {plural(self._measured, 'connection')}"
        if self._again * 100 > self._bound * self._payload:
            return False, f"{text} > {bound}", self._over
        return True, text, ()


def _shut(zero_window: Mapping[str, Any], side: str) -> str:
    z = zero_window[side]
    return (f"the {side}'s window shut {plural(z['periods'], 'time')}, "
            f"{fmt_ms(z['stall_ms'])} ms in all, longest {fmt_ms(z['longest_ms'])} ms")


def zero_window_stall(record: Record, max_ms: float | None) -> str | None:
    """Why `record` breaks `zero_window_stall`: it ended STALLED (a window still shut when
    the capture ended, so the peer could not send), or, with `max_ms`, a side kept its window
    shut longer than that at once."""
    zero_window = record["zero_window"]
    if record["outcome"] == "STALLED":
        shut = [_shut(zero_window, side) for side in SIDES if zero_window[side]["periods"]]
        return "; ".join(["ended STALLED", *shut])
    if max_ms is None:
        return None
    over = [_shut(zero_window, side) for side in SIDES
            if zero_window[side]["longest_ms"] > max_ms]
    return "; ".join(over) if over else None
