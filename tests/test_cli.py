"""The command line: exact output, formats, exit codes, one-line errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from conftest import CRAFTED, LINUX, run_cli

from tcptrace.defaults import MAX_COUNT, MAX_JOBS, MAX_PARTITIONS


def test_table_output_is_exact(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "analyze", str(CRAFTED / "port_reuse.pcap"))
    assert code == 0 and err == ""
    assert out == (
        "id start       dur client         server      outcome rtt ms TW     RST ka reqs pkts\n"
        "-- -------- ------ -------------- ----------- ------- ------ ------ --- -- ---- ----\n"
        " 1 22:13:20 50.1ms 10.0.0.1:40008 10.0.0.2:80 CLOSED    10.1 client -    -   1*  6/3\n"
        " 2 22:13:20 50.1ms 10.0.0.1:40008 10.0.0.2:80 CLOSED    10.1 client -    -   1*  6/3\n"
        "start: UTC time of day on 2023-11-14; dur: first to last packet\n"
        "TW: side holding TIME_WAIT; ka: keep-alive probes; pkts: client/server\n"
        "reqs: HTTP requests (n*: request/response turns of another protocol)\n"
        "\n"
        "Packets: 18 read, 18 TCP segments analyzed\n"
        "Connections: 2 (CLOSED 2)\n"
        "Handshake RTT ms: p50 10.1  p90 10.1  p99 10.1  max 10.1  (n=2)\n"
        "Set-up time ms: p50 10.1  p90 10.1  p99 10.1  max 10.1  (n=2)\n"
        "Data RTT ms, median of each connection's p50: client 10 (n=2), server 0.1 (n=2)\n"
        "TIME_WAIT held by: client 2; top holders: 10.0.0.1:* 2\n"
        "Half-closes: 0; keep-alive probing connections: 0; port reuse: 1\n"
        "Requests per connection: mean 1.0  p50 1  max 1; connections reused (>1 request): 0; "
        "protocols:\n"
        "    other 2\n"
    )


def test_table_fits_100_columns(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "analyze", *map(str, sorted(LINUX.glob("*.pcap"))))
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 100


def test_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "analyze", "--format", "json",
                         *map(str, sorted(LINUX.glob("*.pcap"))))
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"source", "summary", "connections"}
    assert [c["id"] for c in doc["connections"]] == list(range(1, 14))
    summary = doc["summary"]
    assert summary["connections"] == 13
    assert summary["outcomes"] == {"CLOSED": 11, "REFUSED": 1, "RESET": 1}
    assert summary["time_wait"]["by_side"] == {"client": 7, "server": 3, "both": 1}
    assert summary["rst"]["by_kind"] == {"REFUSED": 1, "ABORT": 1}
    assert summary["half_closes"] == 1
    assert summary["handshake"]["rtt_ms"] == {"count": 11, "p50": 0.045, "p90": 40.492,
                                              "p99": 100.66, "max": 100.66}
    assert summary["reuse"]["protocols"] == {"other": 11, "http/1.0": 1, "http/1.1": 1}
    assert doc["source"]["packets"] == 210 and doc["source"]["skipped"] == {}


def test_jsonl_one_connection_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "analyze", "-f", "jsonl", str(CRAFTED / "refused_then_ok.pcap"))
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and sorted(r["id"] for r in lines) == [1, 2]
    assert {r["outcome"] for r in lines} == {"REFUSED", "CLOSED"}


def test_csv_has_dotted_columns(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "analyze", "-f", "csv", str(LINUX / "half_close.pcap"))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 1
    row = rows[0]
    assert row["client.ip"] == "10.77.0.1" and row["close.time_wait"] == "client"
    assert row["half_close.bytes_after_fin"] == "20800" and row["rst.kind"] == ""
    assert row["handshake.rtt_ms"] == "0.046"


def test_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out.json"
    code, out, _ = run_cli(capsys, "analyze", "-f", "json", "-o", str(target),
                       str(LINUX / "client_close.pcap"))
    assert code == 0 and out == ""
    assert json.loads(target.read_text())["connections"][0]["close"]["time_wait"] == "client"


def test_filter_selects_connections(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(p) for p in sorted(LINUX.glob("*.pcap"))]
    code, out, _ = run_cli(capsys, "analyze", "-f", "json", "--filter", "port 8081 or host fd77::2",
                       *files)
    doc = json.loads(out)
    assert code == 0
    assert [(c["server"]["ip"], c["server"]["port"]) for c in doc["connections"]] == [
        ("10.77.0.2", 8081), ("fd77::2", 8080)]
    assert doc["source"]["skipped"] == {"filtered_out": 198}


def test_truncated_capture_warns_once_and_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "analyze", "-f", "jsonl", str(CRAFTED / "ref_truncated.pcap"))
    assert code == 0 and len(out.splitlines()) == 1
    assert err.count("\n") == 1 and err.startswith("tcptrace: warning: truncated_record: ")


def test_quiet_silences_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "analyze", "-q", str(CRAFTED / "ref_truncated.pcap"))
    assert code == 0 and err == ""


@pytest.mark.parametrize(("args", "message"), [
    (["analyze"], "Missing argument 'CAPTURES...'"),
    (["analyze", "missing.pcap"], "missing.pcap: cannot open: No such file or directory"),
    (["analyze", str(LINUX)], "is a directory, not a capture file"),
    (["analyze", str(LINUX / "README.md")], "not a pcap or pcapng capture"),
    (["analyze", "--format", "xml", str(LINUX / "refused.pcap")], "'xml' is not one of"),
    (["analyze", "--filter", "port", str(LINUX / "refused.pcap")],
     "--filter 'port': syntax error at 'port' (column 1)"),
    (["analyze", "--filter", "host nowhere.invalid", str(LINUX / "refused.pcap")],
     "--filter 'host nowhere.invalid': unknown host 'nowhere.invalid'"),
    (["analyze", "--max-flows", "0", str(LINUX / "refused.pcap")], "--max-flows"),
    (["bogus"], "No such command 'bogus'"),
])
def test_unusable_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str],
                                               args: list[str], message: str) -> None:
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("tcptrace: error: ") and message in err


def test_empty_file_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    code, _, err = run_cli(capsys, "analyze", str(empty))
    assert code == 2 and err == f"tcptrace: error: {empty}: empty file\n"


@pytest.mark.parametrize("args", [
    ("--linger", "inf"), ("--linger", "nan"), ("--msl", "1e300"), ("--msl", "-inf"),
    ("--msl", "NaN"),
])
def test_durations_must_be_finite_and_sane(capsys: pytest.CaptureFixture[str],
                                           args: tuple[str, str]) -> None:
    """inf, nan or 1e300 seconds: a one-line usage error and exit 2."""
    code, out, err = run_cli(capsys, "analyze", str(LINUX / "client_close.pcap"), *args)
    assert code == 2 and out == ""
    assert err.startswith(f"tcptrace: error: Invalid value for '{args[0]}': ")
    assert err.count("\n") == 1


HUGE = str(2**64 + 1)


@pytest.mark.parametrize(("command", "option", "value", "top"), [
    ("analyze", "--max-flows", HUGE, MAX_COUNT), ("check", "--max-flows", HUGE, MAX_COUNT),
    ("report", "--max-flows", HUGE, MAX_COUNT), ("report", "--max-segments", HUGE, MAX_COUNT),
    ("report", "--trace-budget", HUGE, MAX_COUNT), ("ladder", "--conn", HUGE, MAX_COUNT),
    ("analyze", "--jobs", "100000", MAX_JOBS), ("analyze", "--workers", "100000", MAX_JOBS),
    ("analyze", "--partitions", "100000", MAX_PARTITIONS),
])
def test_counts_beyond_what_the_engine_holds_are_usage_errors(
        capsys: pytest.CaptureFixture[str], command: str, option: str, value: str,
        top: int) -> None:
    """A count the engine takes as a 64-bit integer (or a thread, a process, an open file
    per unit) beyond its top: one line and exit 2. --max-flows 2**64+1 was an
    OverflowError's traceback, --jobs 100000 an allocation abort, --workers 100000 a
    hundred thousand Dask processes starting."""
    code, out, err = run_cli(capsys, command, str(LINUX / "client_close.pcap"), option, value)
    assert code == 2 and out == ""
    lowest = 0 if option in ("--max-segments", "--trace-budget") else 1
    named = "'-j' / '--jobs'" if option == "--jobs" else f"'{option}'"
    assert err == (f"tcptrace: error: Invalid value for {named}: {value} is not in the "
                   f"range {lowest}<=x<={top}. (try 'tcptrace {command} --help')\n")


LONG = "9" * 5000  # more digits than int() reads from a string (a ValueError past 4300)


@pytest.mark.parametrize(("command", "option", "value"), [
    ("analyze", "--jobs", LONG), ("analyze", "--max-flows", LONG),
    ("analyze", "--max-flows", "0" * 5000 + "1"), ("check", "--max-flows", LONG),
    ("analyze", "--tunnel-port", f"vxlan={LONG}"), ("report", "--trace-budget", LONG),
    ("analyze", "--resume-max-bytes", LONG), ("analyze", "--resume-max-bytes", LONG + "K"),
])
def test_numbers_of_thousands_of_digits_are_usage_errors(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str, option: str,
        value: str) -> None:
    """A count, a port or a size of 5000 digits is out of range, one line and exit 2 (the
    command line read without click, --tunnel-port and --resume-max-bytes were a
    ValueError's traceback), but leading zeros do not make a number long."""
    resume = ["--resume", str(tmp_path / "state")] if "resume" in option else []
    rest = ["--no-rst"] if command == "check" else ["-o", str(tmp_path / "out")]
    code, out, err = run_cli(capsys, command, str(LINUX / "client_close.pcap"), *resume,
                             *rest, option, value)
    if value.startswith("0"):  # 1, as "0001" would be
        assert (code, err) == (0, "")
        return
    assert (code, out) == (2, "")
    assert err.startswith("tcptrace: error: Invalid value for ") and err.count("\n") == 1


def test_the_top_count_is_taken(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    code, _, err = run_cli(capsys, "analyze", str(LINUX / "client_close.pcap"), "-q",
                           "--max-flows", str(MAX_COUNT), "-f", "jsonl", "-o", str(out))
    assert code == 0 and err == ""
    assert out.read_text().count("\n") == 1


def test_the_commands_that_read_captures_take_the_same_analysis_options() -> None:
    """--linger, --max-flows, --verify-checksums and --tunnel-port mean the same in analyze,
    check, report and ladder (one declaration, tcptrace.options.analysis_options), so a
    capture `check` judges is analyzed as `analyze` reports it."""
    import click

    from tcptrace.commands import cli

    def described(command: str) -> list[tuple[object, ...]]:
        found = cli.get_command(click.Context(cli), command)
        assert found is not None
        return [(p.opts, p.help, p.default, p.type.to_info_dict(), p.multiple) for p in found.params
                if isinstance(p, click.Option) and p.name in (
                    "linger", "max_flows", "verify_checksums", "tunnel_ports")]

    analyze = described("analyze")
    assert [opts for opts, *_ in analyze] == [["--linger"], ["--max-flows"],
                                              ["--verify-checksums"], ["--tunnel-port"]]
    for command in ("check", "report", "ladder"):
        assert described(command) == analyze, command
