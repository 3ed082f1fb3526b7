"""RTT, throughput and probes where users see them (issue 16): the table's summary line, the
ladder's heading of a probe, and the HTML report (the rows' values, a connection's detail
view, the overview's RTT spread per side and its scan sources) in headless Chromium.

The browser tests need Chromium (skipped without it), as tests/test_html_report.py does.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import CRAFTED, LINUX, PCAPS, ROOT, run_cli

from tcptrace.commands import cli
from tcptrace.report.probes import port_meaning, probe_line

sys.path.insert(0, str(ROOT / "benchmarks"))
from browser import Browser
from test_html_report import READY

PROBES = str(CRAFTED / "probes.pcap")
LINUX_CAPTURES = [str(p) for p in sorted(LINUX.glob("*.pcap"))]


# ---- the table's summary -----------------------------------------------------------

def summary_lines(capsys: pytest.CaptureFixture[str], *captures: str) -> list[str]:
    code, out, _ = run_cli(capsys, "analyze", *captures)
    assert code == 0
    return [line for line in out.splitlines() if line.startswith("Data RTT")]


def test_the_summary_gives_each_sides_median_rtt(capsys: pytest.CaptureFixture[str]) -> None:
    assert summary_lines(capsys, *LINUX_CAPTURES) == [
        "Data RTT ms, median of each connection's p50: client 0.013 (n=12), "
        "server 0.012 (n=12)"]
    # a side without samples is left out; a run without any has no line
    assert summary_lines(capsys, str(CRAFTED / "fin_out_of_order.pcap")) == [
        "Data RTT ms, median of each connection's p50: client 10 (n=1)"]
    assert summary_lines(capsys, PROBES) == []


def test_the_summary_line_is_the_summarys_median(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "analyze", "-f", "json", *LINUX_CAPTURES)
    assert code == 0
    spread = json.loads(out)["summary"]["rtt_p50_ms"]
    assert (spread["client"]["p50"], spread["client"]["count"]) == (0.013, 12)
    assert (spread["server"]["p50"], spread["server"]["count"]) == (0.012, 12)


# ---- the ladder ----------------------------------------------------------------------

def ladder(capsys: pytest.CaptureFixture[str], conn: int) -> str:
    code, out, err = run_cli(capsys, "ladder", PROBES, "--conn", str(conn))
    assert code == 0 and err == ""
    return out


def test_a_probes_ladder_says_what_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    assert ladder(capsys, 8) == (
        "connection 8: 10.0.0.1:50007 -> 10.0.0.2:1008, PROBE_RESET, 2 segments, 0.2 ms\n"
        "probe: xmas, answered by rst (closed port)\n"
        "seq/ack: relative to each side's ISN; time: ms since the first segment; states: "
        "when they change\n"
        "\n"
        "            client 10.0.0.1:50007                                                   "
        "server 10.0.0.2:1008\n"
        "                                   │                                              │\n"
        "     0.000  ESTABLISHED>FIN_WAIT_1 │───────────── FIN/PSH/URG seq=0 ─────────────▶│"
        " ESTABLISHED\n"
        "     0.200  CLOSED                 │X──────────── RST/ACK seq=0 ack=1 ────────────│"
        " CLOSED\n"
        "                                   │                                              │\n"
        "            CLOSED                                                                  "
        "CLOSED\n")


def test_every_probe_kind_and_answer_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    heading = {conn: ladder(capsys, conn).splitlines()[1] for conn in range(1, 15)}
    assert heading == {
        1: "probe: syn, answered by rst (closed port)",
        2: "probe: syn, unanswered (filtered port)",
        3: "probe: syn, answered by syn_ack (open port)",
        4: "probe: null, answered by rst (closed port)",
        5: "probe: null, unanswered (open or filtered port)",
        6: "probe: fin, answered by rst (closed port)",
        7: "probe: fin, unanswered (open or filtered port)",
        8: "probe: xmas, answered by rst (closed port)",
        9: "probe: xmas, unanswered (open or filtered port)",
        10: "probe: ack, answered by rst (unfiltered port)",
        # an unanswered lone ACK or FIN/ACK is no probe (docs/health.md): no heading line
        11: "seq/ack: relative to each side's ISN; time: ms since the first segment; "
            "states: when they change",
        12: "probe: maimon, answered by rst (closed port, or open on Linux)",
        13: "seq/ack: relative to each side's ISN; time: ms since the first segment; "
            "states: when they change",
        # the prober got the lower port, so the port rule made it the server
        14: "probe: fin, answered by rst (closed port), sent by the server",
    }


def test_other_flags_say_what_the_answer_can_mean() -> None:
    assert port_meaning("other", "rst") == "closed port, or unfiltered if the probe had ACK"
    assert probe_line({"kind": "other", "answer": "none", "sender": "client"}) == (
        "probe: other, unanswered (open or filtered port)")


# ---- the HTML report -----------------------------------------------------------------

def make_report(out: Path, *captures: str) -> dict[str, Any]:
    """`tcptrace report CAPTURES -o OUT`, and the JSON document the page embeds."""
    result = CliRunner().invoke(cli, ["report", *captures, "-o", str(out)])
    assert result.exit_code == 0, result.output
    match = re.search(r'<script type="application/json" id="data">(.*?)</script>',
                      out.read_text(encoding="utf-8"), re.S)
    assert match
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def row_of(data: dict[str, Any], client_port: int) -> dict[str, Any]:
    fields = data["fields"]
    (row,) = [r for r in data["rows"] if r[fields.index("client_port")] == client_port]
    return dict(zip(fields, row, strict=True))


def test_the_rows_carry_rtt_throughput_and_probe(tmp_path: Path) -> None:
    data = make_report(tmp_path / "linux.html", *LINUX_CAPTURES)
    row = row_of(data, 39758)  # pcaps/linux/http_reuse.pcap
    assert (row["rtt_c"], row["rtt_s"]) == ([4, 30, 42150, 42150], [6, 12, 21, 21])
    assert (row["tput_c"], row["tput_s"]) == ([1966, 451620], [8375, 451797])
    assert row["probe"] is None
    refused = row_of(data, 42810)  # pcaps/linux/refused.pcap: no data, a SYN's probe
    assert (refused["rtt_c"], refused["rtt_s"], refused["tput_c"]) == (None, None, None)
    assert data["strings"][refused["probe"]] == "syn rst client"


def detail(browser: Browser, selector: str) -> str:
    text: str = browser.evaluate(f"document.querySelector('#detail {selector}').textContent")
    return text


def test_the_detail_view_shows_rtt_and_throughput(tmp_path: Path, browser: Browser) -> None:
    page = tmp_path / "linux.html"
    data = make_report(page, *LINUX_CAPTURES)
    conn = row_of(data, 39758)["id"]
    browser.open(f"{page.as_uri()}#conn={conn}", READY)
    assert detail(browser, ".rtt") == (
        "RTT of each side's data to the peer's ACK: client p50 0.030, p90 42.150, max 42.150 ms "
        "(4 samples); server p50 0.012, p90 0.021, max 0.021 ms (6 samples)")
    assert detail(browser, ".throughput") == (
        "throughput (unique bytes, first to last data segment): client 1.97 kbit/s over "
        "451.620 ms; server 8.38 kbit/s over 451.797 ms")
    assert browser.evaluate("document.querySelector('#detail .probe')") is None
    # bits per second in each unit, and a side without a rate or samples
    for port, rtt, throughput in [
        (42166, "client p50 0.013, p90 0.013, max 0.013 ms (1 sample); server p50 0.004, "
                "p90 0.015, max 0.015 ms (3 samples)",
         "client -; server 1.02 Gbit/s over 0.024 ms"),
        (39738, "client p50 0.009, p90 0.009, max 0.009 ms (1 sample); server p50 0.004, "
                "p90 0.031, max 0.031 ms (16 samples)",
         "client -; server 1.1 Mbit/s over 150.796 ms"),
        (39750, "client p50 0.014, p90 0.127, max 0.127 ms (2 samples); server p50 0.012, "
                "p90 0.012, max 0.012 ms (2 samples)",
         "client 37 bit/s over 3500.242 ms; server 23 bit/s over 3500.310 ms"),
        (42810, "client no samples; server no samples", "client -; server -"),
    ]:
        browser.evaluate(f"tcptraceReport.open({row_of(data, port)['id']})")
        assert detail(browser, ".rtt").split(": ", 1)[1] == rtt
        assert detail(browser, ".throughput").split(": ", 1)[1] == throughput
    assert detail(browser, ".probe") == "probe: syn, answered by rst (closed port)"
    # the overview: each connection's median per side, as the summary spreads them
    stats = browser.evaluate(
        "Array.from(document.querySelectorAll('#rtt_sides .stats')).map(s => [s.dataset.side,"
        " Array.from(s.querySelectorAll('.stat')).map(d => d.textContent)])")
    assert stats == [
        ["client", ["12connections", "0.013p50", "0.123p90", "100.448p99", "100.448max"]],
        ["server", ["12connections", "0.012p50", "0.020p90", "43.573p99", "43.573max"]]]
    assert browser.evaluate("document.getElementById('scans_card').hidden") is True
    assert browser.evaluate("tcptraceReport.errors") == []


def test_the_report_says_what_each_probe_is(tmp_path: Path, browser: Browser,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Each probe's line in the detail view is the ladder's heading (report.js and
    tcptrace/report/probes.py word them alike); the scan source in a table."""
    page = tmp_path / "probes.html"
    make_report(page, PROBES)
    code, out, _ = run_cli(capsys, "analyze", "-f", "jsonl", PROBES)
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    browser.open(page.as_uri(), READY)
    for record in records:
        browser.evaluate(f"tcptraceReport.open({record['id']})")
        shown = browser.evaluate("(document.querySelector('#detail .probe') || {}).textContent")
        assert shown == (probe_line(record["probe"]) if record["probe"] else None)
    assert browser.evaluate("document.getElementById('scans_card').hidden") is False
    table = browser.evaluate(
        "Array.from(document.querySelectorAll('#scans tr')).map(tr => "
        "Array.from(tr.children).map(c => c.textContent))")
    assert table == [["source", "targets", "probes by kind", "answers"],
                     ["10.0.0.1", "11", "syn 3, null 2, fin 2, xmas 2, ack 1, maimon 1",
                      "rst 6, none 4, syn_ack 1"]]
    assert browser.evaluate("document.querySelector('#rtt_sides .note').textContent") == (
        "no data segment was timed (no RTT sample)")
    assert browser.evaluate("tcptraceReport.errors") == []


def test_the_scan_table_of_an_nmap_scan(tmp_path: Path, browser: Browser) -> None:
    page = tmp_path / "scan.html"
    make_report(page, str(PCAPS / "scan" / "nmap_scan.pcap"))
    browser.open(page.as_uri(), READY)
    rows = browser.evaluate(
        "Array.from(document.querySelectorAll('#scans tbody tr')).map(tr => "
        "Array.from(tr.children).map(c => c.textContent))")
    assert [r[:2] for r in rows] == [["10.78.0.1", "12"]]
    assert rows[0][2] == "syn 12, null 12, fin 12, xmas 12, ack 12, maimon 12"
    assert browser.evaluate("tcptraceReport.errors") == []
