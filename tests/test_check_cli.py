"""`tcptrace check` at the command line: nothing checked fails, flags named for what they
measure (old names still accepted), rules in command-line order, the analysis options of
`analyze`."""

from __future__ import annotations

import json

import pytest
from conftest import LINUX, run_cli

CLOSE = str(LINUX / "client_close.pcap")


@pytest.mark.parametrize("args", [
    ["--no-rst", "--filter", "port 1", CLOSE],
    ["--no-rst", "--max-flows", "1", "--linger", "0", "--filter", "port 1", CLOSE],
])
def test_nothing_checked_fails(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, out, _ = run_cli(capsys, "check", *args)
    assert code == 1
    assert out == ("PASS  no RST: 0 connections checked\n"
                   "FAIL  at least one connection checked (--allow-empty passes on none): "
                   "0 connections\n"
                   "\n"
                   "FAILED: 1 of 2 rules failed; 0 connections analyzed\n")


def test_allow_empty_passes_on_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "check", "--no-rst", "--allow-empty", "--filter", "port 1",
                           CLOSE)
    assert code == 0
    assert out == ("PASS  no RST: 0 connections checked\n"
                   "\n"
                   "PASSED: 1 rule held; 0 connections analyzed\n")


def test_rules_follow_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "check", "-f", "json", "--min-connections", "1",
                           "--max-rtt-p99-ms", "5", "--no-rst", "--max-setup-ms", "1",
                           "--max-handshake-ms", "2", CLOSE)
    assert code == 0
    assert [(r["origin"], r["name"]) for r in json.loads(out)["rules"]] == [
        ("--min-connections", "connections >= 1"),
        ("--max-rtt-p99-ms", "handshake rtt_ms p99 <= 5 ms"),
        ("--no-rst", "no RST"),
        ("--max-setup-ms", "handshake setup_ms every connection <= 1 ms"),
        ("--max-handshake-ms", "handshake setup_ms every connection <= 2 ms"),
    ]


def test_old_flag_names_are_hidden(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "check", "--help")
    assert code == 0 and "--max-setup-ms" in out and "--max-rtt-p99-ms" in out
    assert "--max-handshake" not in out and "--allow-empty" in out


def test_analysis_options_reach_the_engine(capsys: pytest.CaptureFixture[str]) -> None:
    # with --linger 0 the late segments of client_close count as after_close
    code, out, _ = run_cli(capsys, "check", "-f", "json", "--no-rst", "--linger", "0",
                           "--verify-checksums", "--max-flows", "5", CLOSE)
    code2, out2, _ = run_cli(capsys, "analyze", "-f", "json", "--linger", "0",
                             "--verify-checksums", "--max-flows", "5", CLOSE)
    assert code == code2 == 0
    assert json.loads(out)["source"] == json.loads(out2)["source"]


def test_report_takes_the_analysis_options_and_quiet(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: object) -> None:
    from pathlib import Path

    page = Path(str(tmp_path)) / "r.html"
    code, _, err = run_cli(capsys, "report", "-q", "--linger", "0", "--max-flows", "5",
                           "--verify-checksums", str(LINUX.parent / "crafted" /
                                                     "ref_truncated.pcap"), "-o", str(page))
    assert code == 0 and err == "" and page.exists()
