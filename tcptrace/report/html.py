"""The HTML report: one self-contained file (inline CSS, JS and SVG; no network).

Python gathers the data (records, their traces, the TIME_WAIT timeline) into one JSON
document embedded in the page; `report.js` (shipped beside this module, inlined into
the page) draws the charts, the table and, for the selected connection, the ladder and
the time-sequence graph. `#conn=ID` in the URL selects a connection.

Memory and size: each connection keeps at most `MAX_SEGMENTS` traced segments (the
first ones); the page says when a connection's diagrams are cut.
"""

from __future__ import annotations

import html
import json
import re
from collections import defaultdict
from importlib import resources
from typing import Any

from tcptrace import __version__
from tcptrace.report.summary import Summary
from tcptrace.report.trace import Record, Trace, trace_of

MAX_SEGMENTS = 2000
TIME_WAIT_SERIES = 8
"""The TIME_WAIT timeline draws the endpoints with the highest peaks, plus the total."""


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def _trace(trace: Trace | None, first_ts: float) -> dict[str, Any] | None:
    if trace is None:
        return None
    base = round(first_ts * 1e9)
    rows = [[round((s["ts_ns"] - base) / 1e6, 6), 0 if s["role"] == "client" else 1,
             s["flags"], s["seq"], s["ack"], s["length"], s["window"],
             ">".join(s["entered"][0]), ">".join(s["entered"][1]), ",".join(s["marks"])]
            for s in trace["segments"]]
    return {"total": trace["total"], "truncated": trace["truncated"], "segs": rows}


PAGE_TRACE = "page_trace"


def slim(record: Record) -> Record:
    """`record` with its trace in the page's form (a row of ten values per segment instead
    of a dict): what `render` draws, in a fraction of the memory. `report` slims each
    record as it arrives, so a run holds rows, not every segment's dict."""
    record[PAGE_TRACE] = _trace(record.pop("trace", None), record["first_ts"])
    return record


def _both(part: dict[str, Any]) -> list[Any]:
    return [part["client"], part["server"]]


def _connection(r: Record, t0: float) -> dict[str, Any]:
    rst, probes, half_close = r["rst"], r["keepalive"]["probes"], r["half_close"]
    return {
        "id": r["id"],
        "client": f"{_host(r['client']['ip'])}:{r['client']['port']}",
        "server": f"{_host(r['server']['ip'])}:{r['server']['port']}",
        "start": round(r["first_ts"] - t0, 6),
        "duration": r["duration_ms"],
        "outcome": r["outcome"],
        "rtt": r["handshake"]["rtt_ms"],
        "setup": r["handshake"]["setup_ms"],
        "tw": r["close"]["time_wait"],
        "rst": rst["kind"] if rst else None,
        "rst_sender": rst["sender"] if rst else None,
        "ka": probes["client"] + probes["server"],
        "reqs": r["reuse"]["requests"],
        "proto": r["reuse"]["protocol"],
        "pkts": _both(r["packets"]),
        "bytes": _both(r["unique_bytes"]),
        "retx": _both(r["retransmitted_bytes"]),
        "final": _both(r["final_state"]),
        "half_close": half_close["side"] if half_close else None,
        "trace": r[PAGE_TRACE] if PAGE_TRACE in r else _trace(trace_of(r), r["first_ts"]),
    }


def time_wait_timeline(records: list[Record], t0: float) -> list[dict[str, Any]]:
    """Concurrent TIME_WAIT per holder endpoint as step series [[t_s, count], ...].

    Grouped as the summary groups holders: a server by host:port, clients by host:*
    (their ephemeral ports are what runs out). The first series is the total.
    """
    events: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for r in records:
        c = r["close"]
        tw, tw_ts, tw_until = c["time_wait"], c["time_wait_ts"], c["time_wait_until"]
        if tw is None or tw_ts is None or tw_until is None:
            continue
        keys = []
        if tw in ("client", "both"):
            keys.append(f"{_host(r['client']['ip'])}:*")
        if tw in ("server", "both"):
            keys.append(f"{_host(r['server']['ip'])}:{r['server']['port']}")
        for key in [*keys, "all"]:
            events[key].append((tw_ts - t0, 1))
            events[key].append((tw_until - t0, -1))
    series: list[dict[str, Any]] = []
    for key, evs in events.items():
        evs.sort(key=lambda e: (e[0], e[1]))  # leave before enter at the same instant
        level, peak, steps = 0, 0, [[0.0, 0]]
        for ts, delta in evs:
            level += delta
            peak = max(peak, level)
            steps.append([round(ts, 6), level])
        series.append({"key": key, "peak": peak, "steps": steps})
    series.sort(key=lambda s: (s["key"] != "all", -int(s["peak"]), str(s["key"])))
    return series[: TIME_WAIT_SERIES + 1]


def render(records: list[Record], source: dict[str, Any], paths: list[str],
           msl_s: float) -> str:
    """The page; `records` in id order."""
    summary = Summary()
    for r in records:
        summary.add_record(r)
    t0 = min((r["first_ts"] for r in records), default=0.0)
    data = {
        "version": __version__,
        "captures": paths,
        "msl": msl_s,
        "max_segments": MAX_SEGMENTS,
        "source": source,
        "summary": summary.as_dict(),
        "rtt": summary.rtt_ms.tolist(),
        "setup": summary.setup_ms.tolist(),
        "time_wait": time_wait_timeline(records, t0),
        "connections": [_connection(r, t0) for r in records],
    }
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    files = resources.files("tcptrace.report")
    page = (files / "report.html").read_text(encoding="utf-8")
    script = (files / "report.js").read_text(encoding="utf-8")
    title = "tcptrace report: " + ", ".join(paths)
    parts = {"TITLE": html.escape(title), "DATA": payload, "SCRIPT": script.replace("</", "<\\/")}
    # one pass, so that nothing substituted is searched again
    return re.sub(r"\{\{(TITLE|DATA|SCRIPT)\}\}", lambda m: parts[m.group(1)], page)
