"""The HTML report: one self-contained file (inline CSS, JS and SVG; no network).

Generation streams, so memory stays bounded as for `analyze`: `PageBuilder.add` turns each
record, as its connection ends, into one table row of plain values (strings interned in a
shared table) and spools the rows to a temporary file in chunks; the charts come from
running aggregates (the summary of `report.summary`, whose handshake times are packed
doubles; TIME_WAIT enter/leave times per holder); `picks.TracePicker` chooses the
connections whose segment traces are embedded.
`write` assembles the page at the end: the template, the JSON document (`D` in
`report.js`), the spooled rows copied through, the script.

Traces: each embedded trace is its rows (ten values per segment) as JSON, deflated (zlib)
and base64-encoded; the page inflates one when it is opened (DecompressionStream). The
other connections' panels give the `tcptrace ladder` command that draws them.
"""

from __future__ import annotations

import base64
import bisect
import html
import json
import math
import re
import shutil
import zlib
from array import array
from collections import defaultdict
from importlib import resources
from typing import IO, Any

from tcptrace import __version__
from tcptrace.report.picks import TracePicker
from tcptrace.report.summary import Summary
from tcptrace.report.trace import Record, Trace

MAX_SEGMENTS = 2000
TIME_WAIT_SERIES = 8
"""The TIME_WAIT timeline draws the endpoints with the highest peaks, plus the total."""
TIME_WAIT_POINTS = 1200
"""A series with more steps is drawn as the most at once per 1/TIME_WAIT_POINTS of the
time axis (the peaks stay; a 60 s TIME_WAIT in a capture of years stays visible)."""
CHUNK_ROWS = 4096
HISTOGRAM_BINS = 24
ROW_FIELDS = ("id", "client_ip", "client_port", "server_ip", "server_port", "first_ts",
              "duration", "outcome", "rtt", "setup", "tw", "rst", "rst_sender", "ka", "reqs",
              "proto", "pkts_c", "pkts_s", "bytes_c", "bytes_s", "retx_c", "retx_s",
              "final_c", "final_s", "half_close")
"""The values of a table row, in order (`report.js` names the same indices). Strings
(addresses, outcomes, states, kinds) are indices into the document's `strings`."""


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def trace_rows(trace: Trace) -> list[list[Any]]:
    """The page's form of a trace: one row of ten values per segment, time in ms since the
    connection's first segment (from the exact nanoseconds: never -0.000)."""
    base = trace["first_ns"]
    return [[round((s["ts_ns"] - base) / 1e6, 6), 0 if s["role"] == "client" else 1,
             s["flags"], s["seq"], s["ack"], s["length"], s["window"],
             ">".join(s["entered"][0]), ">".join(s["entered"][1]), ",".join(s["marks"])]
            for s in trace["segments"]]


def pack_trace(trace: Trace, why: list[str]) -> dict[str, Any]:
    """An embedded trace: counts, why it was picked, its rows deflated and base64-encoded."""
    text = json.dumps(trace_rows(trace), separators=(",", ":")).encode()
    # level 1: a quarter of level 6's time on the 1M-packet benchmark for 20% more bytes
    return {"total": trace["total"], "truncated": trace["truncated"], "why": why,
            "z": base64.b64encode(zlib.compress(text, 1)).decode("ascii")}


def unpack_trace(packed: dict[str, Any]) -> list[list[Any]]:
    """The rows of an embedded trace (what the page inflates; for tests and tools)."""
    rows: list[list[Any]] = json.loads(zlib.decompress(base64.b64decode(packed["z"])))
    return rows


class TimeWaitEvents:
    """When each holder entered and left TIME_WAIT, as packed doubles per holder key.

    Grouped as the summary groups holders: a server by host:port, clients by host:*
    (their ephemeral ports are what runs out); key "all" is the total."""

    def __init__(self) -> None:
        self._enter: dict[str, array[float]] = defaultdict(lambda: array("d"))
        self._leave: dict[str, array[float]] = defaultdict(lambda: array("d"))

    def add(self, r: Record) -> None:
        c = r["close"]
        tw, tw_ts, tw_until = c["time_wait"], c["time_wait_ts"], c["time_wait_until"]
        if tw is None or tw_ts is None or tw_until is None:
            return
        self._enter["all"].append(tw_ts)
        self._leave["all"].append(tw_until)
        if tw != "server":  # client or both
            key = f"{_host(r['client']['ip'])}:*"
            self._enter[key].append(tw_ts)
            self._leave[key].append(tw_until)
        if tw != "client":  # server or both
            key = f"{_host(r['server']['ip'])}:{r['server']['port']}"
            self._enter[key].append(tw_ts)
            self._leave[key].append(tw_until)

    def series(self, t0: float) -> list[dict[str, Any]]:
        """Step series [[t_s since t0, count], ...] of the total and the endpoints with the
        highest peaks; long series reduced to the most at once per slice of the axis."""
        swept = []
        for key, enter in self._enter.items():
            steps, peak = _sweep(sorted(enter), sorted(self._leave[key]), t0)
            swept.append((key != "all", -peak, key, steps))
        swept.sort(key=lambda s: s[:3])
        return [{"key": key, "peak": -peak, "steps": steps}
                for _, peak, key, steps in swept[: TIME_WAIT_SERIES + 1]]


def _sweep(enter: list[float], leave: list[float], t0: float) -> tuple[list[list[Any]], int]:
    """The level after each event, from sorted enter and leave times (a leave first when
    both fall on the same instant), and the peak."""
    times: array[float] = array("d", [0.0])
    levels: array[int] = array("q", [0])
    level = peak = 0
    i = j = 0
    n_enter, n_leave = len(enter), len(leave)
    while i < n_enter or j < n_leave:
        if j < n_leave and (i == n_enter or leave[j] <= enter[i]):
            times.append(leave[j] - t0)
            j += 1
            level -= 1
        else:
            times.append(enter[i] - t0)
            i += 1
            level += 1
            if level > peak:
                peak = level
        levels.append(level)
    return _envelope(times, levels), peak


def _envelope(times: array[float], levels: array[int]) -> list[list[Any]]:
    """Steps [[t, level], ...]; beyond 2 * TIME_WAIT_POINTS of them, per slice of the time
    axis the level it started with and the most at once within it."""
    if len(times) <= 2 * TIME_WAIT_POINTS:
        return [[round(t, 6), n] for t, n in zip(times, levels, strict=True)]
    span = max(times[-1], 1e-9)
    width = span / TIME_WAIT_POINTS
    out: list[list[Any]] = []
    level, i, n = 0, 0, len(times)
    for b in range(TIME_WAIT_POINTS + 1):
        start, end = b * width, (b + 1) * width
        most = level
        while i < n and times[i] < end:
            level = levels[i]
            if level > most:
                most = level
            i += 1
        if not out or out[-1][1] != most:
            out.append([round(start, 6), most])
        if most != level:
            out.append([round(min(end, span), 6), level])
    return out


def nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least `raw`."""
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * power * (1 + 1e-9):
            return m * power
    return 10 * power


def histogram(values: array[float]) -> dict[str, Any]:
    """Bins of the handshake times: linear bins on round edges around the values, or, when
    the values span more than 50x, five logarithmic bins per decade."""
    if not values:
        return {"log": False, "edges": [], "counts": []}
    lo, hi = min(values), max(values)
    if lo > 0 and hi / lo > 50:
        per_decade = 5
        k0, k1 = math.floor(math.log10(lo) * per_decade), math.floor(math.log10(hi) * per_decade)
        edges = [10 ** (k / per_decade) for k in range(k0, k1 + 2)]
    else:
        span = hi - lo
        step = nice_step(span / HISTOGRAM_BINS if span > 0 else max(abs(lo), 1e-3) / 10)
        first = math.floor(lo / step + 1e-9) * step
        n = math.floor((hi - first) / step + 1e-9) + 1
        if span == 0:  # one value: a bar in the middle, not at an edge
            first -= 2 * step
            n += 4
        edges = [first + i * step for i in range(n + 1)]
    counts = [0] * (len(edges) - 1)
    for v in values:
        i = bisect.bisect_right(edges, v) - 1
        counts[min(max(i, 0), len(counts) - 1)] += 1
    return {"log": lo > 0 and hi / lo > 50, "edges": [float(f"{e:.12g}") for e in edges],
            "counts": counts}


class PageBuilder:
    """Collects the page's data record by record (see the module doc)."""

    def __init__(self, spool: IO[str], max_segments: int, trace_budget: int) -> None:
        self.spool = spool
        self.strings: dict[str, int] = {}
        self.summary = Summary()
        self.time_wait = TimeWaitEvents()
        self.picker = TracePicker(max_segments, trace_budget)
        self.t0 = math.inf
        self.t_end = -math.inf
        self.rows = 0
        self._chunk: list[list[Any]] = []

    def _s(self, text: str | None) -> int | None:
        if text is None:
            return None
        index = self.strings.get(text)
        if index is None:
            index = self.strings[text] = len(self.strings)
        return index

    def add(self, r: Record) -> None:
        s = self._s
        hs, rst, half = r["handshake"], r["rst"], r["half_close"]
        probes, reuse = r["keepalive"]["probes"], r["reuse"]
        pk, ub, rb, fs = r["packets"], r["unique_bytes"], r["retransmitted_bytes"], r["final_state"]
        client, server = r["client"], r["server"]
        self._chunk.append([
            r["id"], s(client["ip"]), client["port"], s(server["ip"]), server["port"],
            r["first_ts"], r["duration_ms"], s(r["outcome"]), hs["rtt_ms"], hs["setup_ms"],
            s(r["close"]["time_wait"]), s(rst["kind"]) if rst else None,
            s(rst["sender"]) if rst else None, probes["client"] + probes["server"],
            reuse["requests"], s(reuse["protocol"]), pk["client"], pk["server"],
            ub["client"], ub["server"], rb["client"], rb["server"], s(fs["client"]),
            s(fs["server"]), s(half["side"]) if half else None])
        self.summary.add_record(r)
        self.t0 = min(self.t0, r["first_ts"])
        self.t_end = max(self.t_end, r["last_ts"], r["close"]["time_wait_until"] or 0.0)
        self.time_wait.add(r)
        self.picker.offer(r)
        self.rows += 1
        if len(self._chunk) >= CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._chunk:
            text = json.dumps(self._chunk, separators=(",", ":"))[1:-1]
            self.spool.write(("," if self.rows > len(self._chunk) else "") + text)
            self._chunk = []

    def write(self, out: IO[str], *, source: dict[str, Any],
              paths: list[str], msl_s: float, max_segments: int,
              traces: dict[int, dict[str, Any]], trace_budget: int,
              filter_text: str | None) -> None:
        """The page, to `out`: the rows are copied from the spool, not held."""
        self._flush()
        t0 = self.t0 if self.rows else 0.0
        data = {
            "version": __version__,
            "captures": paths,
            "filter": filter_text,
            "msl": msl_s,
            "max_segments": max_segments,
            "trace_budget": trace_budget,
            "source": source,
            "summary": self.summary.as_dict(),
            "t0": t0,
            "t_end": self.t_end if self.rows else 0.0,
            "rtt_histogram": histogram(self.summary.rtt_ms),
            "time_wait": self.time_wait.series(t0),
            "fields": ROW_FIELDS,
            "strings": list(self.strings),
            "traces": {str(k): traces[k] for k in sorted(traces)},
        }
        head = json.dumps(data, separators=(",", ":"))
        files = resources.files("tcptrace.report")
        page = (files / "report.html").read_text(encoding="utf-8")
        script = (files / "report.js").read_text(encoding="utf-8")
        title = "tcptrace report: " + ", ".join(paths)
        before, after = page.split("{{DATA}}")
        parts = {"TITLE": html.escape(title), "SCRIPT": script.replace("</", "<\\/")}

        def fill(text: str) -> str:  # one pass, so that nothing substituted is searched again
            return re.sub(r"\{\{(TITLE|SCRIPT)\}\}", lambda m: parts[m.group(1)], text)

        out.write(fill(before))
        out.write(_safe(head[:-1]) + ',"rows":[')
        self.spool.seek(0)
        shutil.copyfileobj(self.spool, out)  # addresses and numbers: nothing to escape
        out.write("]}")
        out.write(fill(after))


def _safe(json_text: str) -> str:
    """JSON that cannot end the <script> element it sits in."""
    return json_text.replace("</", "<\\/")
