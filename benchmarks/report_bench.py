"""The HTML report at scale: generation time and memory against `analyze -f jsonl`, the
page's size, and in headless Chromium the time to load, sort, filter and open.

    .venv/bin/python benchmarks/report_bench.py [CAPTURE] [--runs N]

CAPTURE defaults to benchmarks/data/bench.pcap (1M packets, 50,120 connections). Generation
runs alternate with `analyze` runs (the machine is shared: medians of alternated runs).
Browser times come from the page itself (performance.now()), each interaction awaited until
two animation frames have passed, i.e. until it is drawn; a filter keystroke includes the
filter's debounce. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser import Browser, chromium

ROOT = Path(__file__).resolve().parent.parent
TCPTRACE = str(Path(sys.executable).parent / "tcptrace")


def timed(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of one command."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if status:
        raise SystemExit(f"{argv} failed: {status}")
    return wall, usage.ru_maxrss // 1024


def interactions(page: Path) -> dict[str, object]:
    binary = chromium()
    if binary is None:
        return {"browser": "chromium not found"}
    with Browser(binary) as browser:
        wall = browser.open(page.as_uri(), "window.tcptraceReport && "
                                           "window.tcptraceReport.load_ms !== undefined")
        load_ms = browser.evaluate("tcptraceReport.load_ms")

        def ms(action: str) -> float:
            value: float = browser.evaluate(
                f"(async () => {{ const t = performance.now(); await tcptraceReport.{action};"
                f" return performance.now() - t; }})()")
            return round(value, 1)

        sorts = {key: ms(f"sort('{key}')") for key in
                 ("rtt", "client", "duration", "outcome", "bytes", "start", "id")}
        word = "10.77.0.2:5"
        keystrokes = [ms(f"filter({json.dumps(word[:i])})") for i in range(1, len(word) + 1)]
        matched = browser.evaluate("tcptraceReport.count()")
        clear = ms("filter('')")
        embedded = browser.evaluate("tcptraceReport.embedded()")
        ids = browser.evaluate("tcptraceReport.ids()")
        opened = {str(i): ms(f"open({i})") for i in [*embedded[:8], *ids[:2]]}
        errors = browser.evaluate("tcptraceReport.errors")
    return {"load_wall_s": round(wall, 2), "load_ms": round(load_ms),
            "sort_ms": sorts, "sort_max_ms": max(sorts.values()),
            "keystroke_ms": keystrokes, "keystroke_max_ms": max(keystrokes),
            "filter_matched": matched, "filter_clear_ms": clear,
            "open_ms": opened, "open_max_ms": max(opened.values()),
            "embedded_traces": len(embedded), "script_errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("capture", nargs="?",
                        default=str(ROOT / "benchmarks" / "data" / "bench.pcap"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true",
                        help="Generation only: skip the headless Chromium part.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        analyze, report = [], []
        for _ in range(args.runs):
            analyze.append(timed([TCPTRACE, "analyze", args.capture, "-f", "jsonl", "-o",
                                  os.devnull, "-q"]))
            report.append(timed([TCPTRACE, "report", args.capture, "-o", str(page), "-q"]))
        a = statistics.median(w for w, _ in analyze)
        r = statistics.median(w for w, _ in report)
        result: dict[str, object] = {
            "capture": args.capture,
            "load_average": os.getloadavg(),
            "analyze_jsonl_s": round(a, 2),
            "report_s": round(r, 2),
            "report_over_analyze": round(r / a, 2),
            "report_runs_s": [round(w, 2) for w, _ in report],
            "analyze_runs_s": [round(w, 2) for w, _ in analyze],
            "report_peak_rss_mb": max(m for _, m in report),
            "analyze_peak_rss_mb": max(m for _, m in analyze),
            "html_mb": round(page.stat().st_size / 1e6, 2),
        }
        if not args.no_browser:
            result.update(interactions(page))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
