"""The ladder diagram: golden files for the core scenarios, selection and errors.

Regenerate the golden files after an intended change with
`TCPTRACE_REGEN_GOLDEN=1 pytest tests/test_ladder.py` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CRAFTED, LINUX, run_cli

from tcptrace import native
from tcptrace.commands import cli
from tcptrace.defaults import DEFAULT_MSL_S
from tcptrace.report.ladder import render
from tcptrace.report.trace import (
    KEEPALIVE,
    OUT_OF_ORDER,
    RESET,
    RETRANSMISSION,
    Record,
    Trace,
    trace_of,
)

GOLDEN = Path(__file__).parent / "golden" / "ladder"
REGEN = bool(os.environ.get("TCPTRACE_REGEN_GOLDEN"))
SCENARIOS = {
    name: LINUX / f"{name}.pcap"
    for name in ("client_close", "server_close", "simultaneous_close", "half_close", "refused",
                 "abort_linger0", "keepalive", "http_reuse", "syn_retransmit", "midstream")
} | {
    name: CRAFTED / f"{name}.pcap"
    for name in ("simultaneous_open", "rst_in_time_wait", "fin_out_of_order")
}


def traced(path: Path, limit: int | None = None) -> list[tuple[Record, Trace]]:
    """Every connection of `path` with its trace (at most `limit` segments each)."""
    run = native.record_run([str(path)], msl_s=DEFAULT_MSL_S)
    native.trace(run, limit=limit)
    records: list[Record] = []
    native.read_records(run, records.append)
    out = []
    for record in sorted(records, key=lambda r: r["id"]):
        trace = trace_of(record)
        assert trace is not None
        out.append((record, trace))
    return out


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if REGEN or not path.exists():
        if not REGEN:
            pytest.fail(f"missing golden file {path} (set TCPTRACE_REGEN_GOLDEN=1)")
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_ladder_golden(scenario: str) -> None:
    (record, trace), = traced(SCENARIOS[scenario])
    check_golden(f"{scenario}.ascii.txt", render(record, trace, ascii=True))
    check_golden(f"{scenario}.txt", render(record, trace))


def test_ascii_is_plain_ascii_and_unicode_has_no_colour_by_default() -> None:
    (record, trace), = traced(SCENARIOS["half_close"])
    assert render(record, trace, ascii=True).isascii()
    assert "\x1b[" not in render(record, trace)
    assert "\x1b[" in render(record, trace, colour=True)


def test_marks() -> None:
    marks = {name: {m for _, t in traced(path) for s in t["segments"] for m in s["marks"]}
             for name, path in SCENARIOS.items()}
    assert KEEPALIVE in marks["keepalive"]
    assert RESET in marks["abort_linger0"] and RESET in marks["refused"]
    assert RESET in marks["rst_in_time_wait"]
    assert RETRANSMISSION in marks["syn_retransmit"]
    assert marks["fin_out_of_order"] == {OUT_OF_ORDER}  # not a retransmission
    assert marks["simultaneous_open"] == set()  # the SYN/ACKs re-send no data
    assert marks["client_close"] == set()


def test_long_runs_fold() -> None:
    (record, trace), = traced(SCENARIOS["half_close"])
    text = render(record, trace, ascii=True)
    assert "... 26 segments, 17.0 kB," in text
    assert len(text.splitlines()) < len(trace["segments"])


def test_segment_cap_keeps_the_first_and_counts_all() -> None:
    (record, trace), = traced(SCENARIOS["half_close"], limit=5)
    assert len(trace["segments"]) == 5 and trace["total"] == 40 and trace["truncated"]
    assert "35 more segments not kept" in render(record, trace)


def test_cli_select_by_id_and_by_client() -> None:
    runner = CliRunner()
    by_id = runner.invoke(cli, ["ladder", str(LINUX / "ipv6.pcap"), "--conn", "1", "--ascii"])
    by_client = runner.invoke(cli, ["ladder", str(LINUX / "ipv6.pcap"),
                                    "--client", "[fd77::1]:40008", "--ascii"])
    assert by_id.exit_code == by_client.exit_code == 0
    assert by_id.output == by_client.output
    assert by_id.output.startswith("connection 1: [fd77::1]:40008 -> [fd77::2]:8080, CLOSED")
    # not a terminal: no colour even without --ascii
    plain = runner.invoke(cli, ["ladder", str(LINUX / "ipv6.pcap"), "--conn", "1"])
    assert "\x1b[" not in plain.output and "│" in plain.output


def test_unknown_connection_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(LINUX / "refused.pcap")
    code, out, err = run_cli(capsys, "ladder", path, "--conn", "9")
    assert (code, out, err) == (2, "", f"tcptrace: error: no connection 9 in {path}\n")
    code, out, err = run_cli(capsys, "ladder", path, "--client", "10.0.0.9:1")
    assert code == 2 and err.count("\n") == 1 and "no connection with client 10.0.0.9:1" in err
    code, _, err = run_cli(capsys, "ladder", path)
    assert code == 2 and "exactly one of --conn ID, --client HOST:PORT or --server HOST:PORT" in err
    code, _, err = run_cli(capsys, "ladder", path, "--conn", "1", "--server", "10.0.0.2:80")
    assert code == 2 and "exactly one of" in err
    code, _, err = run_cli(capsys, "ladder", path, "--server", "10.0.0.2")
    assert code == 2 and "--server" in err and "expected HOST:PORT" in err
    # a port beyond 16 bits, or in another script's digits: a usage error, not a traceback
    # (and 5000 digits, which int() refuses with a ValueError)
    for bad in ("10.0.0.2:65536", "10.0.0.2:99999999999999999999", "10.0.0.2:\u0668\u0660",
                "10.0.0.2:" + "9" * 5000):
        code, out, err = run_cli(capsys, "ladder", path, "--client", bad)
        assert (code, out) == (2, "")
        assert err == ("tcptrace: error: Invalid value for --client: expected HOST:PORT "
                       f"(PORT 0-65535), got {bad!r} (try 'tcptrace ladder --help')\n")
    code, _, err = run_cli(capsys, "ladder", path, "--client", "10.0.0.1:65535")
    assert code == 2 and "no connection with client 10.0.0.1:65535" in err


def test_cli_select_by_server_draws_every_connection_to_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    """--server picks by the other end: every connection to one service."""
    runner = CliRunner()
    by_server = runner.invoke(cli, ["ladder", str(LINUX / "ipv6.pcap"),
                                    "--server", "[fd77::2]:8080", "--ascii"])
    by_id = runner.invoke(cli, ["ladder", str(LINUX / "ipv6.pcap"), "--conn", "1", "--ascii"])
    assert by_server.exit_code == 0 and by_server.output == by_id.output
    # the client's end is not a server's: nothing matches
    code, _, err = run_cli(capsys, "ladder", str(LINUX / "ipv6.pcap"),
                           "--server", "[fd77::1]:40008")
    assert code == 2 and "no connection with server [fd77::1]:40008" in err
    # several connections to one server: each is drawn, in id order
    both = runner.invoke(cli, ["ladder", str(LINUX / "http_reuse.pcap"),
                               str(LINUX / "client_close.pcap"), "--server", "10.77.0.2:8080",
                               "--ascii"])
    assert both.exit_code == 0
    assert [line.split(",")[0] for line in both.output.splitlines()
            if line.startswith("connection ")] == [
        "connection 1: 10.77.0.1:42150 -> 10.77.0.2:8080",
        "connection 2: 10.77.0.1:39758 -> 10.77.0.2:8080"]
