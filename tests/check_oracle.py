"""The batch evaluator `check` used before it streamed (tcptrace/check/evaluate.py until
the streaming accumulators), kept as the test oracle: every record in memory, sorted by
id, each rule a function over the list its `where` selects. The streaming evaluator must
give the same results on the same records, in whatever order they come."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tcptrace.check.offenders import endpoint
from tcptrace.check.rules import RST_KINDS, Rule, fmt_ms
from tcptrace.report.summary import percentile

Record = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Offender:
    record: Record
    reason: str
    """Why this connection breaks the rule, e.g. "setup_ms 1029.814"."""


@dataclass(frozen=True, slots=True)
class Result:
    rule: Rule
    passed: bool
    checked: int
    """Connections the rule looked at (those its `where` selects)."""
    detail: str
    offenders: list[Offender]


Verdict = tuple[bool, str, list[Offender]]
Evaluator = Callable[[Mapping[str, Any], list[Record]], Verdict]


def evaluate(rules: Iterable[Rule], records: Iterable[Record]) -> list[Result]:
    """The result of every rule, in the order given; `records` as docs/output.md has them."""
    ordered = sorted(records, key=lambda r: r["id"])
    results = []
    for rule in rules:
        selected = [r for r in ordered if rule.where.matches(r)]
        passed, detail, offenders = EVALUATORS[rule.check](rule.params, selected)
        results.append(Result(rule, passed, len(selected), detail, offenders))
    return results


def _plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {words or word + 's'}"


def _each(offenders: list[Offender], records: list[Record], what: str = "") -> Verdict:
    """Verdict of a per-connection rule: it holds when no connection offends."""
    checked = _plural(len(records), f"{what}connection")
    if offenders:
        return False, f"{len(offenders)} of {checked}", offenders
    return True, f"{checked} checked", offenders


def _handshake(p: Mapping[str, Any], records: list[Record]) -> Verdict:
    metric, bound = p["metric"], p["max_ms"]
    measured = [(r, r["handshake"][metric]) for r in records
                if r["handshake"][metric] is not None]
    over = [Offender(r, f"{metric} {fmt_ms(v)}") for r, v in measured if v > bound]
    if p["percentile"] is None:
        return _each(over, [r for r, _ in measured], "measured ")
    if not measured:
        return True, "no measured handshake", []
    name = f"p{p['percentile']:g}"
    value = percentile([v for _, v in measured], p["percentile"])
    assert value is not None
    text = f"{name} {fmt_ms(value)} ms (n={len(measured)})"
    if value > bound:
        return False, f"{text} > {fmt_ms(bound)} ms", over
    return True, text, []


def _syn_retransmits(p: Mapping[str, Any], records: list[Record]) -> Verdict:
    return _each([Offender(r, _plural(r["handshake"]["syn_retransmits"], "SYN retransmission"))
                  for r in records if r["handshake"]["syn_retransmits"] > p["max"]], records)


def _rst(p: Mapping[str, Any], records: list[Record]) -> Verdict:
    kinds = set(p["kinds"] or RST_KINDS) - set(p["except_kinds"])
    return _each([Offender(r, f"{rst['kind']} RST sent by the {rst['sender']}")
                  for r in records if (rst := r["rst"]) is not None and rst["kind"] in kinds
                  and p["sender"] in (None, rst["sender"])], records)


def _time_wait(p: Mapping[str, Any], records: list[Record]) -> Verdict:
    def held(tw: str) -> str:
        return "TIME_WAIT held by both sides" if tw == "both" else f"TIME_WAIT held by the {tw}"
    return _each([Offender(r, held(r["close"]["time_wait"])) for r in records
                  if r["close"]["time_wait"] not in (None, p["on"])], records)


def _time_wait_concurrency(p: Mapping[str, Any], records: list[Record]) -> Verdict:
    """Sweep each holder's TIME_WAIT intervals for the most held at one instant.

    A TIME_WAIT lasts from close.time_wait_ts to close.time_wait_until, or until a new
    connection takes over its 4-tuple (previous_id): the old one has then ended
    (RFC 1122 section 4.2.2.13 lets a SYN reopen a connection in TIME_WAIT).
    """
    taken_over = {r["previous_id"]: r["first_ts"] for r in records
                  if r["previous_id"] is not None}
    events: dict[str, list[tuple[float, int, Record]]] = {}
    for r in records:
        close = r["close"]
        tw, start, until = close["time_wait"], close["time_wait_ts"], close["time_wait_until"]
        if tw is None or start is None or until is None:
            continue
        end = min(until, taken_over.get(r["id"], until))
        if end <= start:
            continue
        for side in ("client", "server"):
            if tw in (side, "both"):
                end_point = r[side]
                key = endpoint(end_point["ip"],
                               end_point["port"] if p["per"] == "endpoint" else None)
                events.setdefault(key, []).extend([(start, 1, r), (end, -1, r)])
    peaks: list[tuple[str, float, list[Record]]] = []
    for key, sweep in events.items():
        active: dict[int, Record] = {}
        best: tuple[float, list[Record]] = (0.0, [])
        for ts, delta, r in sorted(sweep, key=lambda e: (e[0], e[1], e[2]["id"])):
            if delta < 0:  # intervals are half-open: an ending one is gone before a start
                active.pop(r["id"], None)
                continue
            active[r["id"]] = r
            if len(active) > len(best[1]):
                best = (ts, sorted(active.values(), key=lambda c: c["id"]))
        peaks.append((key, *best))
    if not peaks:
        return True, "no TIME_WAIT", []
    peaks.sort(key=lambda k: (-len(k[2]), k[0]))
    over = [(key, ts, held) for key, ts, held in peaks if len(held) > p["max"]]
    if not over:
        key, _, held = peaks[0]
        return True, f"at most {len(held)} at once (on {key})", []
    offenders = {r["id"]: Offender(r, f"one of {len(held)} TIME_WAITs held at once by {key} "
                                   f"at {ts:.6f}")
                 for key, ts, held in reversed(over) for r in held}
    worst = ", ".join(f"{key} held {len(held)} at once" for key, _, held in over)
    return False, f"{worst} (max {p['max']})", [offenders[i] for i in sorted(offenders)]


def _half_close(p: Mapping[str, Any], records: list[Record]) -> Verdict:
    return _each([Offender(r, f"half-close by the {half['side']}: "
                              f"{half['bytes_after_fin']} bytes after its FIN")
                  for r in records if (half := r["half_close"]) is not None
                  and p["side"] in (None, half["side"])], records)


def _reuse(p: Mapping[str, Any], records: list[Record]) -> Verdict:
    http = p["protocol"] == "http"
    used = [r for r in records
            if (r["reuse"]["protocol"] is not None if http else r["reuse"]["requests"])]
    what = ("HTTP connection", "HTTP connections") if http else \
        ("connection with requests", "connections with requests")
    if not used:
        return True, f"no {what[0]}", []
    counts = [r["reuse"]["requests"] for r in used]
    mean = round(sum(counts) / len(counts), 3)
    text = f"{_plural(len(used), *what)}, mean {fmt_ms(mean)} requests"

    def below(bound: float | None) -> list[Record]:
        return [r for r in used if bound is not None and r["reuse"]["requests"] < bound]

    few = below(p["min_requests"])
    mean_low = p["min_mean"] is not None and mean < p["min_mean"]
    if not few and not mean_low:
        return True, text, []
    offending = {r["id"]: r for r in few + (below(p["min_mean"]) if mean_low else [])}
    detail = f"{text} < {fmt_ms(p['min_mean'])}" if mean_low else f"{len(few)} of {text}"
    return False, detail, [Offender(r, _plural(r["reuse"]["requests"], "request"))
                           for _, r in sorted(offending.items())]


def _completed(p: Mapping[str, Any], records: list[Record]) -> Verdict:
    return _each([Offender(r, f"outcome {r['outcome']}") for r in records
                  if r["outcome"] in p["outcomes"]], records)


def _connections(p: Mapping[str, Any], records: list[Record]) -> Verdict:
    n = len(records)
    ok = (p["min"] is None or n >= p["min"]) and (p["max"] is None or n <= p["max"])
    return ok, _plural(n, "connection"), []


def _rate(p: Mapping[str, Any], records: list[Record]) -> Verdict:
    sides = ("client", "server") if p["sender"] is None else (p["sender"],)
    sums = [(r, sum(r["retransmissions"][s][c]["bytes"] for s in sides
                    for c in ("rto", "fast", "tlp")), sum(r["bytes"][s] for s in sides))
            for r in records]
    measured = [(r, again, payload) for r, again, payload in sums if payload]
    if not measured:
        return True, "no connection with payload", []

    def text(again: int, payload: int) -> str:
        return (f"{again} of {_plural(payload, 'payload byte')} retransmitted "
                f"({fmt_ms(round(100 * again / payload, 3))} %)")

    over = [Offender(r, text(a, n)) for r, a, n in measured if a / n * 100 > p["max_pct"]]
    bound = f"{fmt_ms(p['max_pct'])} %"
    if p["per"] == "connection":
        what = _plural(len(measured), "connection with payload", "connections with payload")
        if over:
            return False, f"{len(over)} of {what} over {bound}", over
        return True, f"{what} checked", []
    again, payload = sum(m[1] for m in measured), sum(m[2] for m in measured)
    detail = f"{text(again, payload)} in {_plural(len(measured), 'connection')}"
    if again / payload * 100 > p["max_pct"]:
        return False, f"{detail} > {bound}", over
    return True, detail, []


def _zero_window_stall(p: Mapping[str, Any], records: list[Record]) -> Verdict:
    def shut(r: Record, side: str) -> str:
        z = r["zero_window"][side]
        return (f"the {side}'s window shut {_plural(z['periods'], 'time')}, "
                f"{fmt_ms(z['stall_ms'])} ms in all, longest {fmt_ms(z['longest_ms'])} ms")
    offenders = []
    for r in records:
        sides = ("client", "server")
        if r["outcome"] == "STALLED":
            reason = ["ended STALLED", *(shut(r, s) for s in sides
                                         if r["zero_window"][s]["periods"])]
        elif p["max_ms"] is not None:
            reason = [shut(r, s) for s in sides if r["zero_window"][s]["longest_ms"] > p["max_ms"]]
        else:
            reason = []
        if reason:
            offenders.append(Offender(r, "; ".join(reason)))
    return _each(offenders, records)


EVALUATORS: dict[str, Evaluator] = {
    "handshake": _handshake,
    "syn_retransmits": _syn_retransmits,
    "rst": _rst,
    "time_wait": _time_wait,
    "time_wait_concurrency": _time_wait_concurrency,
    "half_close": _half_close,
    "reuse": _reuse,
    "completed": _completed,
    "connections": _connections,
    "retransmit_rate": _rate,
    "zero_window_stall": _zero_window_stall,
}


def named(results: list[Result]) -> list[tuple[bool, int, str, list[tuple[Any, ...]]]]:
    """Results as the outputs show them, offenders named as tcptrace.check.offenders does."""
    return [(r.passed, r.checked, r.detail,
             [(o.record["id"], endpoint(o.record["client"]["ip"], o.record["client"]["port"]),
               endpoint(o.record["server"]["ip"], o.record["server"]["port"]),
               o.record["first_ts"], o.reason) for o in r.offenders]) for r in results]
