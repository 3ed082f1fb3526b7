"""The common `analyze` lines read without click (tcptrace/quickargs.py): the same
parameters click would give, click's own reading (and messages) for everything else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from conftest import LINUX, modules_loaded, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from tcptrace.commands import analyze
from tcptrace.defaults import FORMATS, MAX_COUNT, MAX_JOBS
from tcptrace.quickargs import COUNT, DEFAULTS, FLAG, FORMAT, JOBS, OPTIONS, OUTPUT, SECONDS, TEXT
from tcptrace.quickargs import analyze_params as quick

CAPTURE = LINUX / "abort_linger0.pcap"
EXISTING = str(CAPTURE)


def by_click(args: list[str]) -> dict[str, Any] | None:
    """The parameters click gives `analyze` for `args` (after the command name), or None
    when it refuses them."""
    try:
        with analyze.make_context("analyze", list(args)) as ctx:
            return dict(ctx.params)
    except click.exceptions.Exit:  # --help
        return None
    except click.ClickException:
        return None


VALUES = ["jsonl", "json", "csv", "table", "zeek", "parquet", "JSONL", "0", "1", "2", "007",
          "256", "257", "100000", "9223372036854775807", "9223372036854775808",
          "-1", "1.5", ".5", "5.", "1e3", "inf", "nan", "", "-", " 3", "1_0", "\u00b3", "+4",
          "315360000", "315360001", "1.2.3", "/dev/null", "out.jsonl", EXISTING,
          "tcp port 80", "-q"]
SPELLINGS = [*OPTIONS, "-x", "--fromat", "-qf", "-fjsonl", "--", "-h", "--help",
             "--tunnel-port", "--executor", "--resume", "--no-quiet", "-"]


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    """`analyze` lines: mostly well formed, with every kind of flaw now and then."""
    args: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        choice = draw(st.integers(0, 9))
        if choice < 2:
            args.append(draw(st.sampled_from([EXISTING, "-", "missing.pcap", str(LINUX)])))
        elif choice < 8:
            spelling = draw(st.sampled_from(SPELLINGS))
            value = draw(st.sampled_from(VALUES))
            if spelling.startswith("--") and draw(st.booleans()):
                args.append(f"{spelling}={value}")
            elif spelling in OPTIONS and OPTIONS[spelling][1] == FLAG:
                args.append(spelling)
            else:
                args += [spelling, value]
        else:
            args.append(draw(st.sampled_from(SPELLINGS + VALUES)))
    if draw(st.integers(0, 4)):
        args.insert(draw(st.integers(0, len(args))), EXISTING)
    return args


@settings(max_examples=1500, deadline=None)
@given(command_lines())
def test_what_is_read_without_click_is_what_click_reads(args: list[str]) -> None:
    read = quick(["analyze", *args])
    if read is not None:
        assert read == by_click(args)


@pytest.mark.parametrize("args", [
    [EXISTING],
    ["-q", "-f", "jsonl", "-o", "/dev/null", EXISTING],
    ["--format=csv", "--output=-", EXISTING, "-"],
    [EXISTING, "--zeek", "--verify-checksums", "-j", "2", "--max-flows", "007"],
    ["--msl", "60", "--linger", ".25", "--filter", "tcp port 80", "--per-file", EXISTING],
    ["--no-progress", "--quiet", "--quiet", "-f", "json", "-f", "table", EXISTING, EXISTING],
    ["--filter", "", EXISTING],
])
def test_the_common_lines_are_read_without_click(args: list[str]) -> None:
    read = quick(["analyze", *args])
    assert read is not None
    assert read == by_click(args)


@pytest.mark.parametrize("args", [
    [],  # no capture: click's "Missing argument"
    ["-f", "parquet", "-o", "d", EXISTING],
    ["-f", "JSONL", EXISTING],
    ["--jobs", "0", EXISTING],
    ["--jobs", " 3", EXISTING],
    ["--msl", "inf", EXISTING],
    ["--msl", "1e3", EXISTING],
    ["--msl", "315360001", EXISTING],
    ["--zeek=1", EXISTING],
    ["-qf", "jsonl", EXISTING],
    ["-o", "-q", EXISTING],
    [EXISTING, "-o"],
    ["--", EXISTING],
    ["--help"],
    ["--tunnel-port", "vxlan=8472", EXISTING],
    ["--output", "", EXISTING],
])
def test_the_other_lines_go_to_click(args: list[str]) -> None:
    assert quick(["analyze", *args]) is None


def test_only_analyze_is_read_without_click() -> None:
    assert quick(["check", EXISTING]) is None
    assert quick(["--version"]) is None
    assert quick([]) is None


def test_shell_completion_goes_to_click(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_TCPTRACE_COMPLETE", "bash_complete")
    assert quick(["analyze", EXISTING]) is None


KIND_OF_TYPE = {click.Choice: FORMAT, click.IntRange: COUNT, click.FloatRange: SECONDS,
                click.Path: OUTPUT}


def test_the_options_read_are_the_commands_own() -> None:
    params = {p.name: p for p in analyze.params}
    assert set(DEFAULTS) == set(params) - {"captures"}
    for spelling, (dest, kind) in OPTIONS.items():
        param = params[dest]
        assert isinstance(param, click.Option)
        assert spelling in param.opts
        assert not param.multiple and param.nargs == 1
        assert param.envvar is None and param.callback is None
        if kind == FLAG:
            assert param.is_flag and not param.secondary_opts
            continue
        assert not param.is_flag
        expected = next((k for t, k in KIND_OF_TYPE.items() if isinstance(param.type, t)), TEXT)
        if isinstance(param.type, click.IntRange):  # clitypes.Count
            expected = JOBS if param.type.max == MAX_JOBS else COUNT
            assert param.type.max in (MAX_JOBS, MAX_COUNT) and param.type.min == 1
        assert kind == expected, spelling
        if kind == FORMAT:  # every format but parquet (a directory, made in Python)
            assert isinstance(param.type, click.Choice)
            assert set(param.type.choices) == {*FORMATS, "parquet"}
    # every spelling of an option read here is read here
    for dest in {dest for dest, _ in OPTIONS.values()}:
        assert set(params[dest].opts) <= set(OPTIONS)


def test_a_common_run_imports_neither_click_nor_typing(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    args = ["analyze", "-q", "-f", "jsonl", "-o", str(out), EXISTING]
    assert modules_loaded(args, ["click", "typing"]) == []
    assert out.read_text().startswith('{"id":1,"client":{"ip":"10.77.0.1","port":39740}')


def test_a_bad_value_still_gets_clicks_message(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "analyze", "--jobs", "0", EXISTING)
    assert code == 2
    assert err == ("tcptrace: error: Invalid value for '-j' / '--jobs': 0 is not in the "
                   f"range 1<=x<={MAX_JOBS}. (try 'tcptrace analyze --help')\n")
