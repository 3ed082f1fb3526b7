"""`--max-flows` evicting connections changes the results: one warning with the count, and
a line in the table's summary (single thread and --jobs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli, write_refused_capture


@pytest.fixture
def refused(tmp_path: Path) -> Path:
    """20 refused connections a millisecond apart: all inside the 0.5 s linger at once."""
    return write_refused_capture(tmp_path / "refused.pcap", 20)


def test_evictions_warn_once_with_the_count(capsys: pytest.CaptureFixture[str],
                                            refused: Path) -> None:
    code, out, err = run_cli(capsys, "analyze", "--max-flows", "5", str(refused))
    assert code == 0
    assert err == ("tcptrace: warning: evicted_for_capacity: 15 connections evicted by the "
                   "--max-flows cap before their end (reported as they stood; raise "
                   "--max-flows for whole connections)\n")
    assert ("Evicted by the --max-flows cap before their end: 15 connections (reported as "
            "they stood)\n") in out


@pytest.mark.parametrize("command", [["analyze", "-f", "jsonl", "--jobs", "2"],
                                     ["check", "--no-rst"]])
def test_every_command_warns(capsys: pytest.CaptureFixture[str], refused: Path,
                             command: list[str]) -> None:
    _, _, err = run_cli(capsys, *command, "--max-flows", "5", str(refused))
    assert "tcptrace: warning: evicted_for_capacity: " in err


def test_no_eviction_no_warning(capsys: pytest.CaptureFixture[str], refused: Path) -> None:
    code, out, err = run_cli(capsys, "analyze", str(refused))
    assert code == 0 and err == "" and "Evicted" not in out
