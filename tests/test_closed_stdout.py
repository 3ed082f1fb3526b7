"""`tcptrace ... | head -1`: a reader that closes standard output early ends the run quietly
(nothing on stderr) with the documented status: 0, and for `check` its verdict (0 or 1; a
closed pipe is never "a rule failed")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_refused_capture


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5,000 refused connections: every format's report is far beyond a pipe's buffer."""
    return write_refused_capture(tmp_path_factory.mktemp("closed") / "refused.pcap", 5000)


def closed_early(*args: str | Path) -> tuple[int, str]:
    """Run tcptrace with its standard output a pipe closed before anything was written
    (the write that `| head -1` makes fail, without a race): (status, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "tcptrace.cli", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    return proc.wait(timeout=60), err


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl", "csv", "zeek"])
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_analyze_ends_quietly_with_0(capture: Path, fmt: str, jobs: str) -> None:
    assert closed_early("analyze", "-f", fmt, "--jobs", jobs, capture) == (0, "")


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
def test_check_exit_status_is_its_verdict(capture: Path, fmt: str) -> None:
    passing = ("--min-connections", "1")
    assert closed_early("check", "-f", fmt, "--list", "0", *passing, capture) == (0, "")
    assert closed_early("check", "-f", fmt, "--list", "0", "--no-rst", capture) == (1, "")


@pytest.mark.parametrize("args", [
    ["ladder", "--conn", "1"], ["--help"], ["check", "--help"], ["--version"],
])
def test_other_output_ends_quietly_with_0(capture: Path, args: list[str]) -> None:
    assert closed_early(*args, *([capture] if args[0] == "ladder" else [])) == (0, "")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="live capture needs root")
def test_live_ends_quietly_with_0() -> None:
    assert closed_early("live", "-q", "-i", "lo", "--duration", "0.5") == (0, "")
