"""Connection health (issue 16) where users see it and gate on it: the `check` rules
`retransmit_rate` and `zero_window_stall`, the table's health column and the ladder's marks.
The captures are those of tests/test_health_retransmissions.py (crafted with scapy there):
one with every cause of retransmission, one whose client's window shuts twice and stays
shut, and the same opening again."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from scapy.layers.inet import TCP
from test_health import conversation, span, write
from test_health_retransmissions import (
    c2s,
    causes_capture,
    closing,
    opening,
    s2c,
    zero_window_capture,
)

from tcptrace import native
from tcptrace.cli import main
from tcptrace.commands import cli
from tcptrace.report import html
from tcptrace.report.marks import marks_of

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
from browser import Browser
from test_html_report import READY, embedded

AT = "at 2023-11-14T22:13:20.000000Z (1700000000.000000)"
CONN = f"#1 10.0.0.1:40000 -> 10.0.0.2:80 {AT}"


def elsewhere(frames: list[Any], port: int = 40001) -> list[Any]:
    """The same frames from another client port: another connection when files merge."""
    for frame in frames:
        tcp = frame[TCP]
        if tcp.sport == 40000:
            tcp.sport = port
        if tcp.dport == 40000:
            tcp.dport = port
        del tcp.chksum
    return frames


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("health")
    reopened = [*zero_window_capture()[:-2], c2s(1500, "A", 1019, 5202, window=502),
                s2c(1501, "A", 5202, 1019, 10), c2s(1502, "A", 1019, 5212)]
    clean = elsewhere([*opening(), s2c(30, "A", 5001, 1019, 100), c2s(40, "A", 1019, 5101),
                       *closing(50, 1019, 5101)])
    return {name: str(write(folder / f"{name}.pcap", frames)) for name, frames in (
        ("causes", causes_capture()), ("zero", zero_window_capture()),
        ("reopened", reopened), ("clean", clean))}


def run(*args: str, status: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == status, result.output
    return result.stdout


# check: retransmit_rate


def test_the_retransmit_rate_over_the_run_names_the_connections_over_it(
        captures: dict[str, str]) -> None:
    assert run("check", captures["causes"], "--max-retransmit-rate", "30", status=1) == (
        "FAIL  retransmitted bytes <= 30 % of payload over all connections: 400 of 1318 "
        "payload bytes retransmitted (30.349 %) in 1 connection > 30 %\n"
        f"      {CONN}: 400 of 1318 payload bytes retransmitted (30.349 %)\n"
        "\nFAILED: 1 of 1 rules failed; 1 connection analyzed\n")
    # the comparison is exact, not of the rounded per cent
    assert run("check", captures["causes"], "--max-retransmit-rate", "30.349",
               status=1).startswith("FAIL")
    assert run("check", captures["causes"], "--max-retransmit-rate", "30.35").startswith("PASS")
    # probes are no retransmissions: the four window probes (2 bytes) count nothing
    assert run("check", captures["zero"], "--max-retransmit-rate", "0") == (
        "PASS  retransmitted bytes <= 0 % of payload over all connections: 0 of 220 payload "
        "bytes retransmitted (0 %) in 1 connection\n"
        "\nPASSED: 1 rule held; 1 connection analyzed\n")


def test_the_retransmit_rate_per_connection_and_sender_from_a_rules_file(
        captures: dict[str, str], tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\ncheck = "retransmit_rate"\nmax_pct = 30\nper = "connection"\n'
                     'sender = "server"\n\n[[rule]]\ncheck = "retransmit_rate"\nmax_pct = 31\n'
                     'per = "connection"\n')
    junit = tmp_path / "check.xml"
    out = run("check", captures["causes"], captures["clean"], "-r", str(rules),
              "--junit", str(junit), status=1)
    assert out == (
        "FAIL  retransmitted bytes <= 30 % of payload sent by the server per connection: "
        "1 of 2 connections with payload over 30 %\n"
        f"      {CONN}: 400 of 1300 payload bytes retransmitted (30.769 %)\n"
        "PASS  retransmitted bytes <= 31 % of payload per connection: 2 connections with "
        "payload checked\n"
        "\nFAILED: 1 of 2 rules failed; 2 connections analyzed\n")
    xml = junit.read_text()
    assert ('<testcase classname="tcptrace.check.retransmit_rate" name="retransmitted bytes '
            '&lt;= 30 % of payload sent by the server per connection" file="' + str(rules)
            + '" line="2">\n      <failure message="1 of 2 connections with payload over 30 %" '
            'type="retransmit_rate">#1 10.0.0.1:40000 -&gt; 10.0.0.2:80 ' + AT
            + ": 400 of 1300 payload bytes retransmitted (30.769 %)</failure>") in xml


def test_the_retransmit_rate_in_json(captures: dict[str, str]) -> None:
    document = json.loads(run("check", captures["causes"], "--max-retransmit-rate", "5",
                              "-f", "json", status=1))
    (rule,) = document["rules"]
    assert {k: rule[k] for k in ("check", "origin", "params", "passed", "checked",
                                 "detail")} == {
        "check": "retransmit_rate", "origin": "--max-retransmit-rate",
        "params": {"per": "run", "sender": None, "max_pct": 5.0}, "passed": False,
        "checked": 1,
        "detail": "400 of 1318 payload bytes retransmitted (30.349 %) in 1 connection > 5 %"}
    assert [(o["id"], o["reason"]) for o in rule["offenders"]] == [
        (1, "400 of 1318 payload bytes retransmitted (30.349 %)")]


def test_a_rate_over_100_is_an_unusable_flag(captures: dict[str, str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["check", captures["causes"], "--max-retransmit-rate", "120"])
    assert exit_info.value.code == 2
    assert capsys.readouterr() == ("", "tcptrace: error: Invalid value for "
                                   "'--max-retransmit-rate': 120.0 is not in the range "
                                   "0<=x<=100. (try 'tcptrace check --help')\n")


# check: zero_window_stall


def test_a_connection_that_ended_stalled_fails(captures: dict[str, str]) -> None:
    assert run("check", captures["zero"], captures["clean"], "--no-zero-window-stall",
               status=1) == (
        "FAIL  no connection stalled on a zero window: 1 of 2 connections\n"
        f"      {CONN}: ended STALLED; the client's window shut 2 times, 1360 ms in all, "
        "longest 700 ms\n"
        "\nFAILED: 1 of 1 rules failed; 2 connections analyzed\n")
    assert run("check", captures["reopened"], "--no-zero-window-stall") == (
        "PASS  no connection stalled on a zero window: 1 connection checked\n"
        "\nPASSED: 1 rule held; 1 connection analyzed\n")


def test_a_window_shut_too_long_fails_with_max_ms(captures: dict[str, str],
                                                  tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\ncheck = "zero_window_stall"\nmax_ms = 500\n')
    out = run("check", captures["reopened"], "-r", str(rules), "-f", "github", status=1)
    assert out == (
        f"::error file={rules},line=2,title=tcptrace check failed%3A no connection stalled "
        "on a zero window nor shut over 500 ms::1 of 1 connection%0A"
        f"{CONN}: the client's window shut 2 times, 1360 ms in all, longest 700 ms\n"
        "FAILED: 1 of 1 rules failed; 1 connection analyzed\n")
    rules.write_text('[[rule]]\ncheck = "zero_window_stall"\nmax_ms = 700\n')
    assert run("check", captures["reopened"], "-r", str(rules)).startswith("PASS")


# the table's health column


HEADER = ("id start      dur client         server      outcome rtt ms TW     RST ka reqs  "
          "pkts health")
LEGEND_TAIL = (
    "reqs: HTTP requests (n*: request/response turns of another protocol)\n"
    "health, both sides: retransmitted segments by cause (rto, fast, tlp), spurious ones "
    "(spur);\nzero-window periods (zw); frames captured twice (dup)\n")


def table(*args: str) -> str:
    return run("analyze", "-q", *args).split("\nPackets:")[0]


def test_the_health_column_says_what_went_wrong(captures: dict[str, str]) -> None:
    text = table(captures["causes"])
    assert text.splitlines()[:3] == [
        HEADER,
        "-- -------- ----- -------------- ----------- ------- ------ ------ --- -- ---- ----- "
        "-------------------------",
        " 1 22:13:20 506ms 10.0.0.1:40000 10.0.0.2:80 CLOSED      15 client -    -   1* 12/15 "
        "rto:2 fast:1 tlp:1 spur:1"]
    assert text.endswith(LEGEND_TAIL)
    assert table(captures["zero"]).splitlines()[2] == (
        " 1 22:13:20 1.50s 10.0.0.1:40000 10.0.0.2:80 STALLED     15 -  -    -   1* 10/7 zw:2")


def test_a_healthy_run_has_no_health_column_and_a_mixed_one_dashes(
        captures: dict[str, str]) -> None:
    clean = table(captures["clean"])
    assert "health" not in clean
    assert clean.splitlines()[0].endswith(" pkts")
    mixed = table("--per-file", captures["clean"], captures["zero"])
    lines = mixed.splitlines()
    assert [line for line in lines if line.startswith(" ")] == [
        " 1 22:13:20 56.0ms 10.0.0.1:40001 10.0.0.2:80 CLOSED      15 client -    -   1*  6/3 -",
        " 2 22:13:20 1.50s 10.0.0.1:40000 10.0.0.2:80 STALLED     15 -  -    -   1* 10/7 zw:2"]
    assert all(line == line.rstrip() for line in lines)
    assert mixed.endswith(LEGEND_TAIL)


def test_the_health_column_with_jobs_and_dask_is_the_same(captures: dict[str, str],
                                                          tmp_path: Path) -> None:
    """--jobs merges the rows of threads, dask ships them (src/parallel/scaleout.rs)."""
    paths = [captures["causes"], captures["clean"]]
    single = run("analyze", "-q", *paths)
    assert "rto:2 fast:1 tlp:1 spur:1" in single
    assert run("analyze", "-q", "--jobs", "2", *paths) == single
    run("analyze", "-q", "--executor", "dask", "-o", str(tmp_path / "dask.txt"), *paths)
    assert (tmp_path / "dask.txt").read_text() == single


# the ladder's marks


def test_the_ladder_marks_each_retransmission_with_its_cause(captures: dict[str, str]) -> None:
    lines = run("ladder", captures["causes"], "--conn", "1", "--ascii").splitlines()
    arrows = [line.split("|")[1].strip("-<> ") for line in lines if "[" in line and "|" in line]
    assert arrows == ["ACK seq=19 ack=1 [dup-ack]"] * 3 + [
        "ACK seq=1 ack=19 len=100 [retransmission:fast]",
        "ACK seq=501 ack=19 len=100 [retransmission:rto]",
        "ACK seq=701 ack=19 len=100 [retransmission:tlp]",
        "ACK seq=801 ack=19 len=100 [retransmission:rto] [spurious]"]
    assert lines[-6:] == [
        "",
        "[retransmission:rto] sent again when the retransmission timer fired",
        "[retransmission:fast] sent again on the receiver's duplicate or partial ACKs",
        "[retransmission:tlp] the last segment sent again as a tail-loss probe",
        "[spurious] a retransmission already acknowledged when sent",
        "[dup-ack] duplicate ACK"]


def test_the_ladder_of_a_stalled_connection(captures: dict[str, str]) -> None:
    assert run("ladder", captures["zero"], "--conn", "1", "--ascii") == """\
connection 1: 10.0.0.1:40000 -> 10.0.0.2:80, STALLED, 17 segments, 1500 ms
seq/ack: relative to each side's ISN; time: ms since the first segment; states: when they change

            client 10.0.0.1:40000                                         server 10.0.0.2:80
                        |                                               |
     0.000  SYN_SENT    |----------------- SYN seq=0 ------------------>|
    10.000              |<------------- SYN/ACK seq=0 ack=1 ------------| SYN_RCVD
    15.000  ESTABLISHED |-------------- ACK seq=1 ack=1 --------------->| ESTABLISHED
    20.000              |--------- PSH/ACK seq=1 ack=1 len=18 --------->|
    30.000              |<---------- ACK seq=1 ack=19 len=100 ----------|
    40.000              |------ ACK seq=19 ack=101 [zero-window] ------>|
   240.000              |<------ ACK seq=100 ack=19 [window-probe] -----|
   241.000              |------ ACK seq=19 ack=101 [zero-window] ------>|
   640.000              |<------ ACK seq=100 ack=19 [window-probe] -----|
   641.000              |------ ACK seq=19 ack=101 [zero-window] ------>|
   700.000              |------------- ACK seq=19 ack=101 ------------->|
   701.000              |<--------- ACK seq=101 ack=19 len=100 ---------|
   800.000              |------ ACK seq=19 ack=201 [zero-window] ------>|
  1000.000              |<--- ACK seq=201 ack=19 len=1 [window-probe] --|
  1001.000              |------ ACK seq=19 ack=201 [zero-window] ------>|
  1400.000              |<--- ACK seq=201 ack=19 len=1 [window-probe] --|
  1500.000              |------ ACK seq=19 ack=201 [zero-window] ------>|
                        |                                               |
            ESTABLISHED                                                   ESTABLISHED

[window-probe] probe into the peer's zero window (not a retransmission)
[zero-window] advertises a zero window: the peer must stop sending
"""


def test_frames_captured_twice_in_the_table_and_under_the_ladder(tmp_path: Path) -> None:
    path = str(write(tmp_path / "span.pcap", span(conversation())))
    assert table(path).splitlines()[2].endswith(" 5/3 dup:8")
    assert run("ladder", path, "--conn", "1", "--ascii").splitlines()[-2:] == [
        "", "8 frames captured twice, left out (duplicates: client 5, server 3)"]


# the HTML report: retransmissions and stalls over time, a connection's health


def health_report(captures: dict[str, str], out: Path, *args: str) -> dict[str, Any]:
    """The report of the causes capture and the stalled one (from port 40001), and its
    embedded data."""
    stalled = str(write(out.parent / "stalled.pcap", elsewhere(zero_window_capture())))
    run("report", captures["causes"], stalled, "-o", str(out), *args)
    return embedded(out.read_text(encoding="utf-8"))


def test_the_report_places_retransmissions_and_stalls_in_time(captures: dict[str, str],
                                                               tmp_path: Path) -> None:
    data = health_report(captures, tmp_path / "report.html")
    health = data["health"]
    placed = {cause: dict(bins) for cause, bins in health.pop("counts").items()}
    # 100 buckets of 15 ms over the 1.5 s from the first packet to the last: the fast
    # retransmission at 50 ms, the RTOs at 400 and 480 ms, the probe at 440 ms
    assert placed == {"rto": {26: 1, 32: 1}, "fast": {3: 1}, "tlp": {29: 1}}
    assert health == {"span": 1.5, "buckets": 100, "bucket_s": 0.015, "unplaced": 0,
                      "periods": 2,
                      "stalled_peak": 1,
                      "stalled": [[0.0, 0], [0.04, 1], [0.7, 0], [0.8, 1], [1.5, 0]]}
    fields = data["fields"]
    shown = [(row[0], data["strings"][row[fields.index("health")]],
              row[fields.index("stall_ms")]) for row in data["rows"]]
    assert sorted(shown) == [(1, "rto:2 fast:1 tlp:1 spur:1", 0.0), (2, "zw:2", 1360.0)]


def test_retransmissions_beyond_the_traces_are_counted_apart(captures: dict[str, str],
                                                             tmp_path: Path) -> None:
    # 8 segments traced of each: none of the four retransmissions (the first is the 13th
    # segment): all counted apart; the stalled connection's window shuts at its 6th
    health = health_report(captures, tmp_path / "short.html", "--max-segments", "8")["health"]
    assert health["counts"] == {"rto": [], "fast": [], "tlp": []}
    assert health["unplaced"] == 4
    assert health["stalled"] == [[0.0, 0], [0.04, 1], [1.5, 0]]  # open when the trace ends


def test_the_report_draws_health_in_the_browser(captures: dict[str, str], tmp_path: Path,
                                                browser: Browser) -> None:
    page = tmp_path / "report.html"
    health_report(captures, page)
    browser.open(f"{page.as_uri()}#conn=2", READY)
    bars = browser.evaluate("Array.from(document.querySelectorAll('svg.retx rect'))"
                            ".map(r => r.getAttribute('class'))")
    assert sorted(bars) == ["bar-fast", "bar-rto", "bar-rto", "bar-tlp"]
    assert browser.evaluate("document.querySelectorAll('svg.stalls path').length") == 1
    assert browser.evaluate("document.querySelector('#health .note').textContent") == (
        "4 retransmissions placed, per 0.015 s; 2 zero-window periods; time since the first "
        "packet; causes and stalls as docs/health.md tells them")
    assert browser.evaluate("document.querySelector('#detail .health').textContent") == (
        "health: zw:2; zero window shut 1360 ms in all (rto, fast, tlp: retransmissions by "
        "cause; spur: spurious; zw: zero-window periods; dup: frames captured twice)")
    browser.evaluate("tcptraceReport.filter('spur')")
    assert browser.evaluate("tcptraceReport.count()") == "1 of 2 connections"
    assert browser.evaluate("tcptraceReport.errors") == []


def test_the_report_marks_segments_as_the_ladder_does(captures: dict[str, str],
                                                      tmp_path: Path) -> None:
    """The page's marks come from the engine (src/page/health.rs mark_words), the terminal
    ladder's from tcptrace/report/marks.py: the same words for every segment."""
    data = health_report(captures, tmp_path / "report.html")
    stalled = str(tmp_path / "stalled.pcap")
    run_ = native.record_run([captures["causes"], stalled], msl_s=60.0)
    native.trace(run_, None)
    records: list[dict[str, Any]] = []
    native.read_records(run_, records.append)
    drawn = set()
    for record in records:
        rows = html.unpack_trace(data["traces"][str(record["id"])])
        page = [[m for m in row[9].split(",") if m and m != "rst"] for row in rows]
        ladder = [marks_of(seg) for seg in record["trace"]["segments"]]
        assert page == ladder
        drawn |= {m for marks in ladder for m in marks}
    assert drawn == {"retransmission:rto", "retransmission:fast", "retransmission:tlp",
                     "spurious", "dup-ack", "window-probe", "zero-window"}


def test_the_health_example_in_the_docs_is_the_output(shared: Path) -> None:
    """docs/output.md's health example is what `analyze` writes for that connection."""
    doc = (Path(__file__).parent.parent / "docs" / "output.md").read_text()
    section = doc.split("## Example: a connection's health")[1]
    shown = json.loads(section.split("```json\n")[1].split("```")[0])
    capture = shared / "corpus" / "zeek" / "traces" / "pppoe-over-qinq.pcap"
    record = json.loads(run("analyze", "-q", str(capture), "-f", "jsonl").splitlines()[0])
    assert shown == {key: record[key] for key in shown}
    assert list(shown) == ["id", "client", "server", "outcome", "options", "packets", "bytes",
                           "retransmitted_bytes", "gap_bytes", "duplicates",
                           "retransmissions", "zero_window"]
    assert table(str(capture)).splitlines()[2].endswith(" rto:20 fast:4 tlp:1 spur:15 dup:6")
