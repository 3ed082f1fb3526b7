"""`tcptrace check` on the bundled captures: every rule passing and failing, exit codes,
exact text, JSON, GitHub annotations and JUnit XML."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import CRAFTED, LINUX

from tcptrace.cli import main

ALL_LINUX = [str(p) for p in sorted(LINUX.glob("*.pcap"))]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["check", *args])
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def verdicts(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, object]]]:
    """Exit status and, per rule, whether it passed and the offending connection ids."""
    code, out, err = run(capsys, "--format", "json", *args)
    assert err == ""
    doc = json.loads(out)
    assert doc["passed"] is (code == 0)
    return code, [{"passed": r["passed"], "ids": [o["id"] for o in r["offenders"]],
                   "detail": r["detail"]} for r in doc["rules"]]


def rules_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("capture", "flags", "passed", "ids", "detail"), [
    # handshake.setup_ms of every connection: syn_retransmit waited 1029.814 ms
    ("syn_retransmit.pcap", ["--max-handshake-ms", "1000"], False, [1],
     "1 of 1 measured connection"),
    ("syn_retransmit.pcap", ["--max-handshake-ms", "1029.814"], True, [],
     "1 measured connection checked"),
    # p99 of handshake.rtt_ms: synack_lost's round trip is 40.492 ms
    ("synack_lost.pcap", ["--max-handshake-p99-ms", "40"], False, [1],
     "p99 40.492 ms (n=1) > 40 ms"),
    ("synack_lost.pcap", ["--max-handshake-p99-ms", "41"], True, [], "p99 40.492 ms (n=1)"),
    ("refused.pcap", ["--max-handshake-p99-ms", "1"], True, [], "no measured handshake"),
    ("syn_retransmit.pcap", ["--max-syn-retransmits", "0"], False, [1], "1 of 1 connection"),
    ("syn_retransmit.pcap", ["--max-syn-retransmits", "1"], True, [], "1 connection checked"),
    ("refused.pcap", ["--no-rst"], False, [1], "1 of 1 connection"),
    ("abort_linger0.pcap", ["--no-rst"], False, [1], "1 of 1 connection"),
    ("client_close.pcap", ["--no-rst"], True, [], "1 connection checked"),
    ("server_close.pcap", ["--time-wait-on", "client"], False, [1], "1 of 1 connection"),
    ("server_close.pcap", ["--time-wait-on", "server"], True, [], "1 connection checked"),
    ("client_close.pcap", ["--time-wait-on", "server"], False, [1], "1 of 1 connection"),
    ("simultaneous_close.pcap", ["--time-wait-on", "client"], False, [1], "1 of 1 connection"),
    ("half_close.pcap", ["--no-half-close"], False, [1], "1 of 1 connection"),
    ("client_close.pcap", ["--no-half-close"], True, [], "1 connection checked"),
    ("http_reuse.pcap", ["--min-requests", "3"], True, [], "1 HTTP connection, mean 3 requests"),
    ("http_reuse.pcap", ["--min-requests", "4"], False, [1],
     "1 of 1 HTTP connection, mean 3 requests"),
    ("server_close.pcap", ["--min-requests", "2"], False, [1],
     "1 of 1 HTTP connection, mean 1 requests"),
    ("client_close.pcap", ["--min-requests", "2"], True, [], "no HTTP connection"),
    ("refused.pcap", ["--no-incomplete"], False, [1], "1 of 1 connection"),
    ("midstream.pcap", ["--no-incomplete"], True, [], "1 connection checked"),
    ("client_close.pcap", ["--min-connections", "2"], False, [], "1 connection"),
    ("client_close.pcap", ["--min-connections", "1"], True, [], "1 connection"),
])
def test_each_flag_rule_passes_and_fails(capsys: pytest.CaptureFixture[str], capture: str,
                                         flags: list[str], passed: bool, ids: list[int],
                                         detail: str) -> None:
    code, results = verdicts(capsys, str(LINUX / capture), *flags)
    assert code == (0 if passed else 1)
    assert results == [{"passed": passed, "ids": ids, "detail": detail}]


def test_time_wait_concurrency_per_holder_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    # 10.77.0.2:8080 holds TIME_WAIT in 4 captures recorded within one 60 s (2 * MSL) window
    code, results = verdicts(capsys, *ALL_LINUX, "--max-time-wait", "3")
    assert code == 1 and results == [{
        "passed": False, "ids": [2, 3, 8, 12],
        "detail": "10.77.0.2:8080 held 4 at once (max 3)"}]
    code, results = verdicts(capsys, *ALL_LINUX, "--max-time-wait", "4")
    assert code == 0 and results[0]["detail"] == "at most 4 at once (on 10.77.0.2:8080)"
    # --msl reaches the analysis: with 2 s TIME_WAITs they no longer overlap
    code, results = verdicts(capsys, *ALL_LINUX, "--max-time-wait", "1", "--msl", "1")
    assert code == 0


def test_time_wait_concurrency_per_host(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    rules = rules_file(tmp_path, '[[rule]]\ncheck = "time_wait_concurrency"\nmax = 6\n'
                                 'per = "host"\n')
    code, results = verdicts(capsys, *ALL_LINUX, "--rules", rules)
    assert code == 1 and results == [{  # every client TIME_WAIT of 10.77.0.1, crossed FINs too
        "passed": False, "ids": [1, 3, 4, 7, 9, 10, 13],
        "detail": "10.77.0.1 held 7 at once (max 6)"}]


def test_port_reuse_ends_the_earlier_time_wait(capsys: pytest.CaptureFixture[str]) -> None:
    # two connections on one 4-tuple, both client TIME_WAIT: the second SYN took the 4-tuple
    # over 100 ms after the first TIME_WAIT began, so they are never held together
    code, results = verdicts(capsys, str(CRAFTED / "port_reuse.pcap"), "--max-time-wait", "1")
    assert code == 0 and results[0]["detail"] == "at most 1 at once (on 10.0.0.1:40008)"
    code, results = verdicts(capsys, str(CRAFTED / "port_reuse.pcap"),
                             "--time-wait-on", "client", "--max-time-wait", "0")
    assert code == 1 and results == [  # flag rules come in --help order
        {"passed": True, "ids": [], "detail": "2 connections checked"},
        {"passed": False, "ids": [1], "detail": "10.0.0.1:40008 held 1 at once (max 0)"}]


@pytest.mark.parametrize(("rule", "capture", "passed"), [
    ('kinds = ["ABORT"]', "refused.pcap", True),
    ('kinds = ["ABORT"]', "abort_linger0.pcap", False),
    ('except_kinds = ["REFUSED"]', "refused.pcap", True),
    ('sender = "server"', "abort_linger0.pcap", True),   # the client sent it
    ('sender = "client"', "abort_linger0.pcap", False),
    ('sender = "server"', "refused.pcap", False),
])
def test_rst_by_kind_and_sender(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                rule: str, capture: str, passed: bool) -> None:
    rules = rules_file(tmp_path, f'[[rule]]\ncheck = "rst"\n{rule}\n')
    code, results = verdicts(capsys, str(LINUX / capture), "--rules", rules)
    assert code == (0 if passed else 1) and results[0]["passed"] is passed


def test_rules_file_parameters_on_real_captures(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    rules = rules_file(tmp_path, (
        '[[rule]]\ncheck = "half_close"\nside = "server"\n'          # half_close: by the client
        '[[rule]]\ncheck = "reuse"\nmin_mean = 2.5\nprotocol = "any"\n'
        '[[rule]]\ncheck = "reuse"\nmin_mean = 2\n'                  # HTTP: 1 and 3 requests
        '[[rule]]\ncheck = "completed"\noutcomes = ["RESET"]\n'
        '[[rule]]\ncheck = "handshake"\nmetric = "setup_ms"\npercentile = 50\nmax_ms = 0.045\n'
        '[[rule]]\ncheck = "connections"\nmax = 12\n'))
    code, results = verdicts(capsys, *ALL_LINUX, "--rules", rules)
    assert code == 1 and results == [
        {"passed": True, "ids": [], "detail": "13 connections checked"},
        {"passed": False, "ids": [1, 2, 3, 4, 6, 7, 9, 10, 11, 13],
         "detail": "12 connections with requests, mean 2.083 requests < 2.5"},
        {"passed": True, "ids": [], "detail": "2 HTTP connections, mean 2 requests"},
        {"passed": False, "ids": [6], "detail": "1 of 13 connections"},
        {"passed": True, "ids": [], "detail": "p50 0.045 ms (n=11)"},
        {"passed": False, "ids": [], "detail": "13 connections"},
    ]


def test_where_selects_the_connections_a_rule_judges(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    rules = rules_file(tmp_path, (
        '[[rule]]\ncheck = "rst"\nwhere = { side = "server", port = 8081 }\n'
        '[[rule]]\ncheck = "rst"\nwhere = { port = 9999 }\n'
        '[[rule]]\ncheck = "time_wait"\non = "client"\nwhere = { host = "fd77::2" }\n'
        '[[rule]]\ncheck = "time_wait"\non = "client"\n'
        'where = { side = "client", cidr = "10.77.0.0/24" }\n'))
    code, results = verdicts(capsys, *ALL_LINUX, "--rules", rules)
    assert code == 1 and results == [
        {"passed": False, "ids": [5], "detail": "1 of 1 connection"},
        {"passed": True, "ids": [], "detail": "0 connections checked"},
        {"passed": True, "ids": [], "detail": "1 connection checked"},
        {"passed": False, "ids": [2, 3, 8, 12], "detail": "4 of 12 connections"},
    ]


def test_text_output_is_exact(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(LINUX / "refused.pcap"), str(LINUX / "client_close.pcap"),
                         "--no-rst", "--time-wait-on", "client")
    assert code == 1 and err == ""
    assert out == (
        "FAIL  no RST: 1 of 2 connections\n"
        "      #2 10.77.0.1:42810 -> 10.77.0.2:8081 at 2026-11-22T03:24:55.561361Z "
        "(1795317895.561361): REFUSED RST sent by the server\n"
        "PASS  TIME_WAIT held only by the client: 2 connections checked\n"
        "\n"
        "FAILED: 1 of 2 rules failed; 2 connections analyzed\n"
    )


def test_all_passing_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(LINUX / "ipv6.pcap"), "--no-rst", "--time-wait-on",
                       "client", "--max-handshake-ms", "1", "--no-incomplete")
    assert code == 0
    assert out.endswith("\nPASSED: 4 rules held; 1 connection analyzed\n")


def test_offender_list_is_cut_in_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *ALL_LINUX, "--time-wait-on", "client", "--list", "1")
    assert code == 1 and out.splitlines()[1:3] == [
        "      #2 10.77.0.1:42166 -> 10.77.0.2:8080 at 2026-11-22T03:24:49.774415Z "
        "(1795317889.774415): TIME_WAIT held by the server",
        "      ... and 3 more (--format json lists all)"]


def test_json_names_offenders_for_wireshark(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(LINUX / "ipv6.pcap"), "--time-wait-on", "server",
                       "--format", "json")
    doc = json.loads(out)
    assert code == 1 and doc["passed"] is False and doc["source"]["connections"] == 1
    assert doc["rules"] == [{
        "name": "TIME_WAIT held only by the server", "check": "time_wait",
        "origin": "--time-wait-on", "params": {"on": "server"}, "where": None,
        "passed": False, "checked": 1, "detail": "1 of 1 connection",
        "offenders": [{"id": 1, "client": "[fd77::1]:40008", "server": "[fd77::2]:8080",
                       "first_ts": 1795317907.65552,
                       "first_time": "2026-11-22T03:25:07.655520Z",
                       "reason": "TIME_WAIT held by the client"}]}]


def test_github_annotations(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rules = rules_file(tmp_path, '[[rule]]\ncheck = "rst"\n\n[[rule]]\n'
                                 'name = "server: TIME_WAIT, always, 100%"\n'
                                 'check = "time_wait"\non = "server"\n')
    code, out, _ = run(capsys, str(LINUX / "refused.pcap"), str(LINUX / "client_close.pcap"),
                       "--rules", rules, "--format", "github")
    path = rules.replace(":", "%3A").replace(",", "%2C")
    assert code == 1 and out == (
        f"::error file={path},line=2,title=tcptrace check failed%3A no RST::1 of 2 connections"
        "%0A#2 10.77.0.1:42810 -> 10.77.0.2:8081 at 2026-11-22T03:24:55.561361Z "
        "(1795317895.561361): REFUSED RST sent by the server\n"
        f"::error file={path},line=6,title=tcptrace check failed%3A server%3A TIME_WAIT%2C "
        "always%2C 100%25::1 of 2 connections%0A#1 10.77.0.1:42150 -> 10.77.0.2:8080 at "
        "2026-11-22T03:24:48.747063Z (1795317888.747063): TIME_WAIT held by the client\n"
        "FAILED: 2 of 2 rules failed; 2 connections analyzed\n")
    code, out, _ = run(capsys, str(LINUX / "syn_retransmit.pcap"), "--max-handshake-ms",
                       "100", "--no-rst", "--format", "github")
    assert code == 1 and out == (  # a flag rule has no file to point at
        "::error title=tcptrace check failed%3A handshake setup_ms every connection <= 100 ms::"
        "1 of 1 measured connection%0A#1 10.77.0.1:55178 -> 10.77.0.2:8080 at "
        "2026-11-22T03:25:03.230314Z (1795317903.230314): setup_ms 1029.814\n"
        "PASS  no RST: 1 connection checked\n"
        "FAILED: 1 of 2 rules failed; 1 connection analyzed\n")


def test_junit_xml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rules = rules_file(tmp_path, '[[rule]]\nname = "no refused connects"\ncheck = "rst"\n'
                                 'kinds = ["REFUSED"]\n')
    report = tmp_path / "check.xml"
    code, out, _ = run(capsys, *ALL_LINUX, "--rules", rules, "--max-handshake-p99-ms", "200",
                       "--no-half-close", "--junit", str(report))
    assert code == 1 and out.startswith("FAIL  no refused connects: 1 of 13 connections\n")
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "2", "0")
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "tcptrace check"
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name"), c.get("file"), c.get("line")) for c in cases] == [
        ("tcptrace.check.rst", "no refused connects", rules, "3"),
        ("tcptrace.check.handshake", "handshake rtt_ms p99 <= 200 ms", None, None),
        ("tcptrace.check.half_close", "no half-close", None, None)]
    failure = cases[0].find("failure")
    assert failure is not None and failure.get("message") == "1 of 13 connections"
    assert failure.get("type") == "rst"
    assert failure.text == ("#5 10.77.0.1:42810 -> 10.77.0.2:8081 at 2026-11-22T03:24:55.561361Z"
                            " (1795317895.561361): REFUSED RST sent by the server")
    half = cases[2].find("failure")
    assert half is not None and half.text is not None and half.text.startswith("#4 ")
    assert cases[1].find("failure") is None
    out_text = cases[1].find("system-out")
    assert out_text is not None and out_text.text == "p99 100.66 ms (n=11)"


def test_format_junit_writes_the_junit_document_to_stdout_in_utf8(tmp_path: Path) -> None:
    """`-f junit` puts on stdout the bytes --junit FILE writes, as UTF-8 (the document says
    so) even where the locale's stdout is ASCII (where the text report escapes what it
    cannot encode, no UnicodeEncodeError); `--junit -` names that format instead of writing
    a file called "-"."""
    rules = rules_file(tmp_path, '[[rule]]\nname = "pas de RST \u2014 jamais"\ncheck = "rst"\n')
    report = tmp_path / "check.xml"
    env = {**os.environ, "LC_ALL": "C", "PYTHONIOENCODING": "ascii"}
    command = [sys.executable, "-m", "tcptrace.cli", "check", *ALL_LINUX, "--rules", rules]
    to_file = subprocess.run([*command, "--junit", str(report)], capture_output=True, env=env,
                             check=False, cwd=tmp_path)
    to_stdout = subprocess.run([*command, "-f", "junit"], capture_output=True, env=env,
                               check=False, cwd=tmp_path)
    assert (to_file.returncode, to_stdout.returncode, to_stdout.stderr) == (1, 1, b"")
    assert to_file.stdout.startswith(b"FAIL  pas de RST \\u2014 jamais: 2 of 13 connections\n")
    assert to_stdout.stdout == report.read_bytes()
    assert 'name="pas de RST \u2014 jamais"'.encode() in to_stdout.stdout
    dash = subprocess.run([*command, "--junit", "-"], capture_output=True, text=True,
                          check=False, cwd=tmp_path)
    assert (dash.returncode, dash.stdout) == (2, "")
    assert dash.stderr == (
        "tcptrace: error: Invalid value for '--junit': standard output carries the -f report; "
        "use -f junit to write the JUnit XML there (try 'tcptrace check --help')\n")
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize(("args", "message"), [
    ([str(LINUX / "refused.pcap")],
     "no rules: give --rules FILE or a rule flag such as --no-rst"),
    ([str(LINUX / "refused.pcap"), "--rules", "missing.toml"],
     "missing.toml: cannot read rules: No such file or directory"),
    (["missing.pcap", "--no-rst"], "missing.pcap: cannot open: No such file or directory"),
    ([str(LINUX / "refused.pcap"), "--time-wait-on", "nobody"], "'nobody' is not one of"),
    ([str(LINUX / "refused.pcap"), "--max-retransmit-rate", "inf"],
     "Invalid value for '--max-retransmit-rate': inf is not in the range 0<=x<=100."),
    ([str(LINUX / "refused.pcap"), "--max-handshake-ms", "-1"], "--max-handshake-ms"),
    ([str(LINUX / "refused.pcap"), "--no-rst", "--filter", "port"],
     "--filter 'port': syntax error at 'port' (column 1)"),
    (["--no-rst"], "Missing argument 'CAPTURES...'"),
])
def test_unusable_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str],
                                               args: list[str], message: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("tcptrace: error: ") and message in err


@pytest.mark.parametrize(("text", "message"), [
    ('[[rule]]\ncheck = "rst"\nkinds = ["ABORT"\n', ":3: invalid TOML: Unclosed array"),
    ('[[rule]]\ncheck = "no_such_rule"\n', ':2: rule 1: unknown check "no_such_rule"'),
    ('[[rule]]\ncheck = "syn_retransmits"\n\nmax = "1"\n',
     ":4: rule 1 (syn_retransmits): 'max' must be an integer >= 0, not \"1\""),
])
def test_malformed_rules_file_exits_2_before_reading_captures(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, message: str) -> None:
    rules = rules_file(tmp_path, text)
    code, out, err = run(capsys, "missing.pcap", "--rules", rules)
    assert code == 2 and out == ""
    assert err.startswith(f"tcptrace: error: {rules}{message}") and err.count("\n") == 1


def test_damaged_capture_warns_but_is_judged(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(CRAFTED / "ref_truncated.pcap"), "--no-rst")
    assert code == 0 and out.startswith("PASS  no RST: 1 connection checked\n")
    assert err.startswith("tcptrace: warning: truncated_record: ") and err.count("\n") == 1
    code, _, err = run(capsys, str(CRAFTED / "ref_truncated.pcap"), "--no-rst", "-q")
    assert code == 0 and err == ""


def test_offender_lines_are_escaped_as_elementtree_escapes_text() -> None:
    from tcptrace.check.output import _xml_text

    element = ET.Element("failure")
    element.text = text = "#1 a&b <c> -> \"d\" 'e' &amp;"
    written = ET.tostring(element, encoding="unicode")
    assert written == f"<failure>{_xml_text(text)}</failure>"
