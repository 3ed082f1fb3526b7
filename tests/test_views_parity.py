"""`check`, `ladder` and `report` on the native engine against the Python engine's outputs.

The golden files were recorded by tests/golden/make_views.py from the Python engine before
these commands moved to the native one: for each bundled capture the outputs themselves
(exit status, stdout, stderr, the JUnit file, the report's embedded data), for each corpus
capture their exit status and a sha256. Every capture is run again here, the same way, and
must give the same bytes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, SHARED

from tcptrace import native

sys.path.insert(0, str(ROOT / "tests" / "golden"))
import make_views

GOLDEN = ROOT / "tests" / "golden" / "views"
BUNDLED = json.loads((GOLDEN / "bundled.json").read_text())
CORPUS = json.loads((GOLDEN / "corpus.json").read_text())


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the goldens name captures relative to the repository root


def _first_difference(name: str, got: dict[str, Any], want: dict[str, Any]) -> str:
    for key in sorted(set(got) | set(want)):
        if got.get(key) != want.get(key):
            return (f"{name}[{key}]:\nnative: {got.get(key)!r:.2000}\n"
                    f"python: {want.get(key)!r:.2000}")
    return ""


def test_every_capture_has_goldens() -> None:
    bundled = {str(p.relative_to(ROOT)) for p in make_views.captures(ROOT / "pcaps")}
    assert bundled == set(BUNDLED)


@pytest.mark.parametrize("capture", sorted(BUNDLED))
def test_bundled_capture(capture: str) -> None:
    got = make_views.views(capture)
    for name, want in BUNDLED[capture].items():
        assert got[name] == want, _first_difference(name, got[name], want)


@pytest.mark.parametrize("capture", sorted(CORPUS))
def test_corpus_capture(capture: str) -> None:
    if not (SHARED / "corpus").is_dir():
        pytest.skip("../shared is not beside this checkout")
    got = {name: [out["status"], make_views.digest(out)]
           for name, out in make_views.views(capture).items()}
    assert got == CORPUS[capture]


def test_corpus_goldens_cover_the_corpus() -> None:
    if not (SHARED / "corpus").is_dir():
        pytest.skip("../shared is not beside this checkout")
    import os

    found = {os.path.relpath(p, ROOT) for p in make_views.captures(SHARED / "corpus")}
    assert found == set(CORPUS)


def test_goldens_show_what_they_are_for() -> None:
    """The goldens exercise what they should: offenders, traces cut at the cap, marks."""
    reports = [v["report"]["data"] for v in BUNDLED.values() if v["report"]["data"]]
    traces = [t for data in reports for t in data["traces"].values()]
    assert any(t["truncated"] for t in traces)
    marks = {m for t in traces for s in t["segs"] for m in s[9].split(",") if m}
    # the health verdicts in words (src/page/health.rs mark_words), and the RST
    assert marks == {"retransmission:rto", "out-of-order", "keep-alive", "dup-ack",
                     "lost-segment", "acks-unseen", "rst"}
    assert sum(v["check_json"]["status"] == 1 for v in BUNDLED.values()) > 40
    assert all(Path(p).exists() for p in BUNDLED)


@pytest.mark.parametrize("capture", sorted(BUNDLED))
def test_record_dicts_are_the_jsonl_records(capture: str, tmp_path: Path) -> None:
    """The dicts Rust builds for Python are the records `analyze` writes, key for key (and
    in the same order); no `trace` key unless the run traces."""
    from tcptrace.cli import main

    out = tmp_path / "records.jsonl"
    try:
        main(["analyze", capture, "-f", "jsonl", "-o", str(out), "-q"])
    except SystemExit as exc:
        assert not exc.code, f"{capture} is not a capture the engine reads"
    written = [json.loads(line) for line in out.read_text().splitlines()]
    run = native.record_run([capture], msl_s=30.0)
    records: list[dict[str, Any]] = []
    native.read_records(run, records.append)
    assert records == written
    assert [list(r) for r in records] == [list(r) for r in written]


def test_traces_have_the_documented_shape() -> None:
    from tcptrace.report.trace import Trace, TracedSegment

    run = native.record_run(["pcaps/linux/keepalive.pcap"], msl_s=30.0)
    native.trace(run, limit=3)
    records: list[dict[str, Any]] = []
    native.read_records(run, records.append)
    (record,) = records
    trace = record["trace"]
    assert list(trace) == list(Trace.__annotations__)
    assert [list(s) for s in trace["segments"]] == [list(TracedSegment.__annotations__)] * 3
    assert (trace["total"], trace["truncated"]) == (record["packets"]["client"]
                                                    + record["packets"]["server"], True)
    assert trace["segments"][0] | {"ts_ns": 0} == {
        "ts_ns": 0, "role": "client", "flags": 2, "seq": 0, "ack": None, "length": 0,
        "window": 64240, "states": ["SYN_SENT", "CLOSED"], "entered": [["SYN_SENT"], []],
        "marks": [], "verdicts": []}
    assert trace["first_ns"] == trace["segments"][0]["ts_ns"]


def test_a_trace_by_client_gives_only_its_connections() -> None:
    run = native.record_run(["pcaps/linux/ipv6.pcap"], msl_s=30.0)
    native.trace(run, ("fd77::1", 40008), traced_only=True)
    records: list[dict[str, Any]] = []
    native.read_records(run, records.append)
    assert [(r["id"], r["client"]["port"], len(r["trace"]["segments"])) for r in records] \
        == [(1, 40008, records[0]["trace"]["total"])]
