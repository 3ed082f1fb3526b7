"""The HTML report: one self-contained file (inline CSS, JS and SVG; no network).

One pass over the captures makes the page's data (src/page.rs, the engine's `page`
format): the table rows as JSON text, written to a temporary file as connections end (their
strings interned in one table); the handshake times and TIME_WAIT enter/leave times per
holder as packed doubles; the summary (the engine's, as for `analyze -f json`); the picked
connections' traces (src/page/picks.rs), already in the page's row form; the times of
the traced retransmissions and zero-window periods (src/page/health.rs). Memory stays
bounded as for `analyze`. `write_page` assembles the page at the end: the template, the
JSON document (`D` in `report.js`), the spooled rows copied through, the script.

Traces: each embedded trace is its rows (ten values per segment) as JSON, deflated (zlib)
and base64-encoded; the page inflates one when it is opened (DecompressionStream). The
other connections' panels give the `tcptrace ladder` command that draws them.
"""

from __future__ import annotations

import base64
import bisect
import html
import itertools
import json
import math
import re
import shutil
import zlib
from array import array
from importlib import resources
from typing import IO, Any

from tcptrace import __version__

MAX_SEGMENTS = 2000
TIME_WAIT_SERIES = 8
"""The TIME_WAIT timeline draws the endpoints with the highest peaks, plus the total."""
HISTOGRAM_BINS = 24
HEALTH_BUCKETS = 100
"""The retransmissions chart counts per 1/100 of the capture's time."""
CAUSES = ("rto", "fast", "tlp")
ROW_FIELDS = ("id", "client_ip", "client_port", "server_ip", "server_port", "first_ts",
              "duration", "outcome", "rtt", "setup", "tw", "rst", "rst_sender", "ka", "reqs",
              "proto", "pkts_c", "pkts_s", "bytes_c", "bytes_s", "retx_c", "retx_s",
              "final_c", "final_s", "half_close", "health", "stall_ms", "rtt_c", "rtt_s",
              "tput_c", "tput_s", "probe")
"""The values of a table row, in order (src/page.rs `write_row` writes them, `report.js` names
the same indices). Strings (addresses, outcomes, states, kinds) are indices into the
document's `strings`. `rtt_c`/`rtt_s`: a side's RTT `[samples, p50_us, p90_us, max_us]`
(microseconds), `tput_c`/`tput_s`: its throughput `[bits_per_s, duration_us]`; null without
samples (a rate). `probe`: "kind answer sender" (`xmas rst client`), null for a connection that
was no probe."""


def pack_trace(total: int, truncated: bool, why: list[str], rows: bytes) -> dict[str, Any]:
    """An embedded trace: counts, why it was picked, its rows (JSON text) deflated and
    base64-encoded."""
    # level 1: a quarter of level 6's time on the 1M-packet benchmark for 20% more bytes
    return {"total": total, "truncated": truncated, "why": why,
            "z": base64.b64encode(zlib.compress(rows, 1)).decode("ascii")}


def unpack_trace(packed: dict[str, Any]) -> list[list[Any]]:
    """The rows of an embedded trace (what the page inflates; for tests and tools)."""
    rows: list[list[Any]] = json.loads(zlib.decompress(base64.b64decode(packed["z"])))
    return rows


TimeWaitSeries = list[tuple[str, int, bytes]]
"""Each TIME_WAIT holder's series as the engine sweeps them (src/page.rs `swept`): key
(a server as host:port, clients as host:*, their ephemeral ports being what runs out;
"all" the total), the most at once, and the steps as packed doubles t, level, t, level..."""


def time_wait_series(swept: TimeWaitSeries) -> list[dict[str, Any]]:
    """The step series [[t_s since t0, count], ...] of the total and the endpoints with the
    highest peaks (long series reduced by the engine to the most at once per slice)."""
    best = sorted(swept, key=lambda s: (s[0] != "all", -s[1], s[0]))[: TIME_WAIT_SERIES + 1]
    series = []
    for key, peak, packed in best:
        steps = array("d", packed)
        series.append({"key": key, "peak": peak,
                       "steps": [[round(steps[k], 6), int(steps[k + 1])]
                                 for k in range(0, len(steps), 2)]})
    return series


def health_over_time(health: dict[str, Any]) -> dict[str, Any]:
    """Retransmissions per bucket of the capture's time (first to last packet), by cause
    (sparse: [[bucket, count], ...] of the buckets with any), and the connections
    stalled on a zero window at once (steps [[t_s since t0, count], ...]), from the engine's
    times (src/page/health.rs; seconds since t0). `unplaced`: retransmissions beyond the
    traces, counted by the records, with no time."""
    span = health["span"]
    buckets = HEALTH_BUCKETS if span > 0 else 1
    width = span / buckets if span > 0 else 1.0
    counts = {}
    for cause in CAUSES:
        bins = [0] * buckets
        for t in array("d", health[cause]):
            bins[min(buckets - 1, max(0, int(t / width)))] += 1
        counts[cause] = [[i, n] for i, n in enumerate(bins) if n]
    peak, packed = health["stalled"]
    steps = array("d", packed)
    return {"span": span, "buckets": buckets, "bucket_s": width, "counts": counts,
            "unplaced": health["unplaced"], "periods": health["periods"], "stalled_peak": peak,
            "stalled": [[round(steps[k], 6), int(steps[k + 1])] for k in range(0, len(steps), 2)]}


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
    # bin i holds edges[i] <= v < edges[i + 1]; the first and the last bin also what falls
    # outside: counted on the sorted values, a bisection per edge (not per value)
    ordered = sorted(values)
    below = [0, *(bisect.bisect_left(ordered, e) for e in edges[1:-1]), len(ordered)]
    counts = [hi - lo for lo, hi in itertools.pairwise(below)]
    return {"log": lo > 0 and hi / lo > 50, "edges": [float(f"{e:.12g}") for e in edges],
            "counts": counts}


def write_page(out: IO[str], rows: IO[str], page: dict[str, Any], *,
               summary: dict[str, Any], source: dict[str, Any], paths: list[str],
               msl_s: float, max_segments: int, trace_budget: int,
               filter_text: str | None) -> None:
    """The page, to `out`: `page` is the engine's page data (`Run.page_data()`), `rows`
    the table rows it wrote (JSON text, copied through, not held)."""
    empty = not page["rows"]
    t0 = 0.0 if empty else page["t0"]
    traces = {str(conn): pack_trace(total, truncated, why, text)
              for conn, total, truncated, why, text in sorted(page["traces"])}
    data = {
        "version": __version__,
        "captures": paths,
        "filter": filter_text,
        "msl": msl_s,
        "max_segments": max_segments,
        "trace_budget": trace_budget,
        "source": source,
        "summary": summary,
        "t0": t0,
        "t_end": 0.0 if empty else page["t_end"],
        "rtt_histogram": histogram(array("d", page["rtt_ms"])),
        "time_wait": time_wait_series(page["time_wait"]),
        "health": health_over_time(page["health"]),
        "fields": ROW_FIELDS,
        "strings": page["strings"],
        "traces": traces,
    }
    head = json.dumps(data, separators=(",", ":"))
    files = resources.files("tcptrace.report")
    template = (files / "report.html").read_text(encoding="utf-8")
    script = (files / "report.js").read_text(encoding="utf-8")
    title = "tcptrace report: " + ", ".join(paths)
    before, after = template.split("{{DATA}}")
    parts = {"TITLE": html.escape(title), "SCRIPT": script.replace("</", "<\\/")}

    def fill(text: str) -> str:  # one pass, so that nothing substituted is searched again
        return re.sub(r"\{\{(TITLE|SCRIPT)\}\}", lambda m: parts[m.group(1)], text)

    out.write(fill(before))
    out.write(_safe(head[:-1]) + ',"rows":[')
    shutil.copyfileobj(rows, out)  # addresses and numbers: nothing to escape
    out.write("]}")
    out.write(fill(after))


def _safe(json_text: str) -> str:
    """JSON that cannot end the <script> element it sits in."""
    return json_text.replace("</", "<\\/")
