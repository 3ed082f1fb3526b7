"""`live`'s engine (tcptrace._native.Session) fed batches of frames and clock ticks.

Every classic pcap we have is cut into batches (of several sizes), with ticks between them
(some moving the clock past the linger or the idle timeout), and given to the session as
libpcap records, as the live capture does. The records (jsonl and csv bytes, table rows with
their TIME_WAIT end), the summary, the source report and the warnings must hash to what the
Python engine gave for the same batches and ticks (tests/golden/live.json, recorded while
it was the reference; the native session matched it byte for byte).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import PCAPS, ROOT, SHARED
from livefeed import Frame, read_pcap, records

from tcptrace.sources.live import LONG_BYTES

NS = 1_000_000_000
Event = tuple[str, Any]  # ("batch", frames) or ("tick", now_ns)


def _classic(root: Path, max_bytes: int) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*.pcap")):
        if path.stat().st_size > max_bytes:
            continue
        with open(path, "rb") as f:
            head = f.read(24)
        if len(head) == 24 and struct.unpack("<I", head[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D):
            found.append(path)
    return found


BUNDLED = _classic(PCAPS, 1 << 24)
CORPUS = _classic(SHARED / "corpus", 300_000) if (SHARED / "corpus").is_dir() else []


def _events(frames: list[Frame], size: int) -> list[Event]:
    """Batches of `size` frames; after each a tick at its latest timestamp, every third
    one 0.6 s later (past --linger 0.5); at the end ticks 1.1 s and 400 s on (idle)."""
    events: list[Event] = []
    latest = 0
    for k, at in enumerate(range(0, len(frames), size)):
        batch = frames[at:at + size]
        events.append(("batch", batch))
        latest = max(latest, *(f.ts_ns for f in batch))
        events.append(("tick", latest + (NS * 6 // 10 if k % 3 == 2 else 0)))
    events += [("tick", latest + NS * 11 // 10), ("tick", latest + 400 * NS)]
    return events


@dataclass(frozen=True)
class Options:
    linger_s: float
    max_flows: int
    idle_timeout_s: float
    msl_s: float = 30.0


def _native(events: list[Event], linktype: int, unit: int, fmt: str,
            options: Options) -> dict[str, Any]:
    from tcptrace import _native
    from tcptrace.report.text import table_cells

    written: list[bytes] = []
    session = _native.Session(["eth0"], fmt, None, options.msl_s, options.linger_s,
                              options.max_flows, options.idle_timeout_s, LONG_BYTES)
    if fmt != "table":
        session.output(written.append)
    rows = []
    for kind, value in events:
        if kind == "tick":
            rows += session.tick(value)
        else:
            rows += session.feed([(records(value, unit), linktype, unit)], False)
    rows += session.close()
    assert session.finished == len(rows) or fmt != "table"
    return {fmt: b"".join(written), "rows": [(table_cells(*r), until) for r, until in rows],
            "summary": session.summary(), "source": session.source_report(),
            "warnings": session.warnings()}


def _digest(result: dict[str, Any], fmt: str) -> str:
    """One SHA-256 over what a format's run gave (order of records and of keys included)."""
    view = {"rows" if fmt == "table" else fmt: result["rows" if fmt == "table" else fmt],
            "summary": result["summary"], "source": result["source"],
            "warnings": result["warnings"]}
    return hashlib.sha256(json.dumps(view, default=lambda b: b.decode("latin-1"))
                          .encode()).hexdigest()


def _same(path: Path, sizes: tuple[int, ...], formats: tuple[str, ...]) -> None:
    linktype, unit, frames = read_pcap(path)
    name = os.path.relpath(path, ROOT)
    for size in sizes:
        for k, options in enumerate((
                Options(linger_s=0.5, max_flows=100_000, idle_timeout_s=300.0),
                Options(linger_s=1.0, max_flows=3, idle_timeout_s=0.5, msl_s=5.0))):
            events = _events(frames, size)
            for fmt in formats:
                key = f"{name} {size} {k} {fmt}"
                got = _digest(_native(events, linktype, unit, fmt, options), fmt)
                if REGEN:
                    _GOLDEN[key] = got
                else:
                    assert got == GOLDEN_DIGESTS.get(key), key


_GOLDEN: dict[str, str] = {}
GOLDEN = Path(__file__).parent / "golden" / "live.json"
GOLDEN_DIGESTS: dict[str, str] = json.loads(GOLDEN.read_text())
REGEN = os.environ.get("TCPTRACE_REGEN_GOLDEN") == "1"


@pytest.fixture(scope="module", autouse=True)
def _write_golden() -> Iterator[None]:
    """Regenerate tests/golden/live.json on purpose (TCPTRACE_REGEN_GOLDEN=1)."""
    yield
    if REGEN and _GOLDEN:
        known = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        known.update(_GOLDEN)
        GOLDEN.write_text(json.dumps(dict(sorted(known.items())), indent=0) + "\n")


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: str(p.relative_to(PCAPS)))
def test_bundled_captures(path: Path) -> None:
    _same(path, (1, 7, 64, 100_000), ("jsonl", "csv", "table"))


@pytest.mark.skipif(not CORPUS, reason="../shared/corpus is absent")
def test_corpus_captures() -> None:
    for path in CORPUS:
        _same(path, (50,), ("jsonl",))
