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


class Allowlist:
    """Documented differences from a peer tool, keyed (trace, connection, field); "*" in the
    connection or field position matches any. The corpus tests fail on any other difference,
    and on an entry that no longer matches anything (a stale entry hides nothing)."""

    def __init__(self, entries: dict[tuple[str, str, str], str]) -> None:
        self.entries = entries

    def covers(self, trace: str, connection: str, field: str) -> bool:
        return any(t == trace and c in ("*", connection) and f in ("*", field)
                   for t, c, f in self.entries)

    def unexpected(self, differences: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Differences (trace, connection, field, theirs, ours) no entry covers."""
        return [d for d in differences if not self.covers(d[0], d[1], d[2])]

    def stale(self, differences: list[tuple[Any, ...]]) -> list[tuple[str, str, str]]:
        """Entries that cover none of `differences` (trace, connection, field, theirs, ours)."""
        seen = {(d[0], d[1], d[2]) for d in differences}
        return [(t, c, f) for t, c, f in self.entries if not any(
            t == s_t and c in ("*", s_c) and f in ("*", s_f) for s_t, s_c, s_f in seen)]
