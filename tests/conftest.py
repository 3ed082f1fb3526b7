"""Shared fixtures: paths to the bundled captures and a one-call analysis helper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tcptrace.cli import main
from tcptrace.engine import Analysis, Options
from tcptrace.model import to_dict

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "pcaps"
LINUX = PCAPS / "linux"
CRAFTED = PCAPS / "crafted"
SHARED = ROOT.parent / "shared"


def analyze(*paths: Path | str, **options: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Records (as JSON dicts, by id) and the source report of a capture."""
    analysis = Analysis([str(p) for p in paths], Options(**options))
    records = sorted((to_dict(r) for r in analysis.records()), key=lambda r: r["id"])
    return records, analysis.source_report()


def one(*paths: Path | str, **options: Any) -> dict[str, Any]:
    records, _ = analyze(*paths, **options)
    assert len(records) == 1, [r["id"] for r in records]
    return records[0]


def states(record: dict[str, Any], side: str) -> list[tuple[float, str]]:
    """A side's transitions as (µs since the connection's first packet, state)."""
    first = record["first_ts"]
    return [(round((s["ts"] - first) * 1e6), s["state"]) for s in record["states"][side]]


@pytest.fixture
def shared() -> Path:
    if not (SHARED / "corpus").is_dir():
        pytest.skip("../shared is not beside this checkout")
    return SHARED


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `tcptrace ARGS` in-process: (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([*args])
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err
