"""The HTML report: self-contained, traces under a budget, and in headless Chromium the
interactions a person does (sort, filter, open) work without script errors.

The browser tests need Chromium (Debian: `apt-get install -y chromium`); without it they
are skipped. They drive it over the DevTools protocol on a pipe (benchmarks/browser.py: no
selenium, no chromedriver), calling the page's `window.tcptraceReport` hooks.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tempfile
from array import array
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import CRAFTED, LINUX, PCAPS, ROOT

from tcptrace import native
from tcptrace.commands import cli
from tcptrace.report import html

sys.path.insert(0, str(ROOT / "benchmarks"))
from browser import Browser, chromium

CHROMIUM = chromium()
READY = "window.tcptraceReport && window.tcptraceReport.load_ms !== undefined"


def make_report(out: Path, *args: str) -> Path:
    captures = sorted(str(p) for p in LINUX.glob("*.pcap"))
    result = CliRunner().invoke(cli, ["report", *captures, str(CRAFTED / "port_reuse.pcap"),
                                      "-o", str(out), *args])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_report(tmp_path_factory.mktemp("report") / "report.html")


def embedded(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert match
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def test_report_is_self_contained(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "{{" not in page
    data = embedded(page)
    assert len(data["rows"]) == 15 and len(data["rows"][0]) == len(data["fields"])
    tw = data["time_wait"]
    assert tw[0]["key"] == "all" and tw[0]["peak"] == 11  # linux captures
    assert data["summary"]["connections"] == 15
    assert data["summary"]["outcomes"] == {"CLOSED": 13, "REFUSED": 1, "RESET": 1}
    assert sum(data["rtt_histogram"]["counts"]) == data["summary"]["handshake"]["rtt_ms"]["count"]
    # a small capture: every connection's trace fits in the budget
    assert sorted(map(int, data["traces"])) == sorted(r[0] for r in data["rows"])


def test_segment_cap(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["report", str(LINUX / "half_close.pcap"), "-o", str(out),
                                      "--max-segments", "10"])
    assert result.exit_code == 0
    (packed,) = embedded(out.read_text(encoding="utf-8"))["traces"].values()
    assert (packed["total"], packed["truncated"]) == (40, True)
    rows = html.unpack_trace(packed)
    assert len(rows) == 10 and rows[0][:3] == [0, 0, 2]  # time 0 exactly (never -0.0), SYN
    assert packed["why"] == ["slow handshake", "longest", "largest"]


def test_trace_budget_zero_embeds_none(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["report", str(LINUX / "half_close.pcap"), "-o", str(out),
                                      "--trace-budget", "0"])
    assert result.exit_code == 0
    assert embedded(out.read_text(encoding="utf-8"))["traces"] == {}


def test_histogram_bins_round_and_centred() -> None:
    near_40 = html.histogram(array("d", [39.8, 40.0, 40.1, 40.3, 40.2]))
    assert not near_40["log"] and near_40["edges"][0] <= 39.8 <= 40.3 <= near_40["edges"][-1]
    assert near_40["edges"][:3] == [39.8, 39.85, 39.9] and sum(near_40["counts"]) == 5
    one = html.histogram(array("d", [40.0, 40.0]))
    middle = one["counts"].index(2)
    assert 0 < middle < len(one["counts"]) - 1  # not a bar at an edge
    wide = html.histogram(array("d", [0.05, 1.0, 200.0]))
    assert wide["log"] and wide["edges"][0] <= 0.05 and wide["edges"][-1] > 200.0
    assert html.nice_step(1002 / 5) == 500 and html.nice_step(0.013) == 0.02


# ---- in the browser ------------------------------------------------------------------

def test_sort_filter_open_without_script_errors(report: Path, browser: Browser) -> None:
    rows = embedded(report.read_text(encoding="utf-8"))["rows"]
    (abort,) = [r[0] for r in rows if r[2] == 39740]
    browser.open(f"{report.as_uri()}#conn={abort}", READY)
    check = json.loads(browser.evaluate("document.getElementById('selfcheck').textContent"))
    assert check["errors"] == []
    assert check["connections"] == check["table_rows"] == 15
    assert check["selected"] | {"tsg": None} == {"id": abort, "rows": 8, "arrows": 8,
                                                 "tsg": None, "embedded": True}
    text = check["ladder_text"]
    assert "10.77.0.1:39740" in text and "RST/ACK seq=6 ack=6" in text
    assert text[-2:] == ["CLOSED", "CLOSED"] and "-0.000" not in text and text[4] == "0"
    # sorting by RTT: ascending, nulls last; again: descending, nulls still last
    browser.evaluate("tcptraceReport.sort('rtt')")
    rtts = [r[4] for r in browser.evaluate("tcptraceReport.visible()")]
    numbers = [float(v) for v in rtts if v != "-"]
    assert numbers == sorted(numbers) and rtts[len(numbers):] == ["-"] * (15 - len(numbers))
    assert "-" in rtts  # the captures have a connection without a handshake
    browser.evaluate("tcptraceReport.sort('rtt')")
    rtts = [r[4] for r in browser.evaluate("tcptraceReport.visible()")]
    numbers = [float(v) for v in rtts if v != "-"]
    assert numbers == sorted(numbers, reverse=True) and rtts[-1] == "-"
    # the filter: the count follows what was typed; every word must match
    browser.evaluate("tcptraceReport.filter('39740')")
    assert browser.evaluate("tcptraceReport.count()") == "1 of 15 connections"
    browser.evaluate("tcptraceReport.filter('closed server')")
    shown = browser.evaluate("tcptraceReport.visible()")
    assert shown and all(r[3] == "CLOSED" for r in shown)
    assert browser.evaluate("tcptraceReport.count()") == f"{len(shown)} of 15 connections"
    browser.evaluate("tcptraceReport.filter('')")
    assert browser.evaluate("tcptraceReport.count()") == "15 of 15 connections"
    opened = browser.evaluate("tcptraceReport.open(4)")
    assert opened["embedded"] and opened["arrows"] > 0
    assert browser.evaluate("tcptraceReport.errors") == []


def test_a_connection_not_embedded_gives_the_ladder_command(tmp_path: Path,
                                                            browser: Browser) -> None:
    page = make_report(tmp_path / "r.html", "--trace-budget", "0", "--filter", "port 8080")
    browser.open(page.as_uri() + "#conn=3", READY)
    assert browser.evaluate("tcptraceReport.open(3)") == {"id": 3, "arrows": 0,
                                                          "embedded": False}
    command = browser.evaluate("document.querySelector('#detail code.cmd').textContent")
    assert command.startswith("tcptrace ladder pcaps/linux/") or "ladder" in command
    assert command.endswith("--conn 3 --filter 'port 8080'")
    assert browser.evaluate("tcptraceReport.errors") == []


def test_the_outcomes_card_names_the_scan_source(tmp_path: Path, browser: Browser) -> None:
    page = tmp_path / "scan.html"
    result = CliRunner().invoke(cli, ["report", str(PCAPS / "scan" / "nmap_scan.pcap"),
                                      "-o", str(page)])
    assert result.exit_code == 0, result.output
    browser.open(page.as_uri(), READY)
    notes = browser.evaluate(
        "Array.from(document.querySelectorAll('#outcomes .note')).map(n => n.textContent)")
    assert notes == ["probes: syn 12, null 12, fin 12, xmas 12, ack 12, maimon 12; "
                     "scan sources: 10.78.0.1 (12 targets)"]
    assert browser.evaluate("tcptraceReport.errors") == []


def test_the_table_keeps_only_the_rows_in_view(tmp_path: Path, browser: Browser) -> None:
    """3,900 rows: the DOM holds a screenful; sorting and filtering still see them all."""
    run = native.record_run([str(p) for p in sorted(LINUX.glob("*.pcap"))], msl_s=30.0,
                            format="page")
    run.report_page(50, 0)
    native.read_page(run, str(tmp_path / "rows.json"))
    rows = json.loads("[" + (tmp_path / "rows.json").read_text() + "]")
    data = run.page_data()
    data["rows"] = 300 * len(rows)
    many = [[copy * 100 + r[0], *r[1:]] for copy in range(300) for r in rows]
    page = tmp_path / "many.html"
    with page.open("w", encoding="utf-8") as out:
        html.write_page(out, io.StringIO(json.dumps(many)[1:-1]), data,
                        summary=run.summary(), source=run.source_report(),
                        paths=["many.pcap"], msl_s=30.0, max_segments=50, trace_budget=0,
                        filter_text=None)
    browser.open(page.as_uri(), READY)
    assert browser.evaluate("tcptraceReport.count()") == "3,900 of 3,900 connections"
    in_dom = len(browser.evaluate("tcptraceReport.visible()"))
    assert 10 < in_dom < 80
    browser.evaluate("tcptraceReport.sort('id')")  # descending
    assert browser.evaluate("tcptraceReport.ids()")[:2] == [29913, 29912]
    browser.evaluate("document.querySelector('.tablewrap').scrollTop = 23 * 2000")
    browser.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    ids = [int(r[0]) for r in browser.evaluate("tcptraceReport.visible()")]
    assert len(ids) < 80 and min(ids) < 29913 - 2000 * 100 // 13 + 100
    browser.evaluate("tcptraceReport.filter('reset')")
    assert browser.evaluate("tcptraceReport.count()").endswith(" of 3,900 connections")
    assert browser.evaluate("tcptraceReport.errors") == []


def test_report_screenshot(report: Path, tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    shot = tmp_path / "report.png"
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={profile}", "--virtual-time-budget=5000",
             f"--screenshot={shot}", "--window-size=1400,2400", f"{report.as_uri()}#conn=4"],
            capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000

