"""The records of every capture we have, pinned: golden files recorded on purpose.

The Python per-segment engine was the reference the native engine was proven against. Before
it left the package, the output of every capture in pcaps/ and ../shared/corpus/ (and of the
merges, the options and seeded random traffic below) was recorded here with it, so that the
records cannot drift unnoticed:

- tests/golden/records/<capture>.json: the whole `analyze --zeek -f json` document of each
  bundled capture (source report, summary, every record with its Zeek view), readable in a
  diff;
- tests/golden/records/MANIFEST.json: for each capture and each variant below, the exit
  status, stderr and the SHA-256 of the output (the corpus is not ours to copy, so its
  records are pinned by digest; its summary and source report are kept readable).

A change that moves any record fails here. When the change is intended, regenerate with
`TCPTRACE_REGEN_GOLDEN=1 python -m pytest tests/test_golden_records.py` and review the diff
of the json files in the commit that makes the change.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import PCAPS, ROOT, SHARED, run_cli
from random_traffic import random_capture

GOLDEN = Path(__file__).parent / "golden" / "records"
MANIFEST = GOLDEN / "MANIFEST.json"
REGEN = os.environ.get("TCPTRACE_REGEN_GOLDEN") == "1"
SKIP_SUFFIXES = (".md", ".py", ".json", ".log", ".txt", ".yaml", ".rules", ".out", ".zeek",
                 ".sh")

BUNDLED_VARIANTS: dict[str, tuple[str, ...]] = {
    "json+zeek": ("-f", "json", "--zeek"),
    "json": ("-f", "json"),
    "jsonl": ("-f", "jsonl"),
    "csv": ("-f", "csv"),
    "table": ("-f", "table"),
    "zeek": ("-f", "zeek"),
    "json+zeek+checksums": ("-f", "json", "--zeek", "--verify-checksums"),
}
CORPUS_VARIANTS = {key: BUNDLED_VARIANTS[key] for key in ("json+zeek", "json+zeek+checksums")}


def _captures(root: Path) -> list[str]:
    """Capture paths relative to the repository root, as the records' source report shows."""
    if not root.is_dir():
        return []
    return sorted(os.path.relpath(p, ROOT) for p in root.rglob("*")
                  if p.is_file() and not p.name.endswith(SKIP_SUFFIXES))


BUNDLED = _captures(PCAPS)
CORPUS = _captures(SHARED / "corpus")


def _manifest() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}


def _run(capsys: pytest.CaptureFixture[str], tmp_path: Path, capture: str | tuple[str, ...],
         args: tuple[str, ...]) -> tuple[dict[str, Any], bytes]:
    out = tmp_path / "out"
    out.unlink(missing_ok=True)
    paths = (capture,) if isinstance(capture, str) else capture
    status, stdout, stderr = run_cli(capsys, "analyze", *paths, "-q", "-o", str(out), *args)
    data = out.read_bytes() if out.exists() else b""
    if "zeek" in args[:2]:  # conn.log's #open and #close lines carry the wall-clock time
        data = re.sub(rb"(?m)^#(open|close)\t.*$", rb"#\1\t(wall clock)", data)
    # -q: warnings are in the source report; stderr carries only errors
    entry = {"status": status, "stderr": stdout + stderr,
             "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    return entry, data


def _readable(data: bytes) -> dict[str, Any] | None:
    """The summary and source report of a json document: what a reviewer reads in a diff."""
    try:
        document = json.loads(data)
    except ValueError:
        return None
    return {"source": document.get("source"), "summary": document.get("summary")}


def _check(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           capture: str, variants: dict[str, tuple[str, ...]], keep_json: bool) -> None:
    monkeypatch.chdir(ROOT)
    manifest = _manifest()
    got: dict[str, Any] = {}
    for name, args in variants.items():
        entry, data = _run(capsys, tmp_path, capture, args)
        if name == "json+zeek":
            if keep_json:
                path = GOLDEN / f"{capture}.json"
                if REGEN:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
                assert data.decode() == path.read_text(), f"{capture}: records differ from {path}"
            else:
                entry["readable"] = _readable(data)
        got[name] = entry
    if REGEN:
        _MANIFEST_UPDATES[capture] = got
        return
    assert capture in manifest, f"{capture} has no golden entry (TCPTRACE_REGEN_GOLDEN=1)"
    assert got == manifest[capture]


_MANIFEST_UPDATES: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def _write_manifest() -> Any:
    yield
    if REGEN and _MANIFEST_UPDATES:
        manifest = _manifest()
        manifest.update(_MANIFEST_UPDATES)
        GOLDEN.mkdir(parents=True, exist_ok=True)
        MANIFEST.write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n")


@pytest.mark.parametrize("capture", BUNDLED)
def test_bundled(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch, capture: str) -> None:
    _check(capsys, tmp_path, monkeypatch, capture, BUNDLED_VARIANTS, keep_json=True)


@pytest.mark.parametrize("capture", CORPUS)
def test_corpus(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch, capture: str) -> None:
    _check(capsys, tmp_path, monkeypatch, capture, CORPUS_VARIANTS, keep_json=False)


# ---- several files merged, and the options, on the bundled captures

LINUX_ALL = tuple(c for c in BUNDLED if c.startswith("pcaps/linux/"))
COMBINATIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "merge-split": (("pcaps/crafted/ref_split_b.pcap", "pcaps/crafted/ref_split_a.pcap"), ()),
    "merge-linux": (LINUX_ALL, ()),
    "filter-port": ((*LINUX_ALL, "pcaps/transfer/download.pcap"),
                    ("--filter", "port 8080 and not host 10.77.0.9")),
    "filter-net": ((*LINUX_ALL, "pcaps/transfer/download.pcap"),
                   ("--filter", "src net 10.77.0.0/24 or ip6")),
    "linger-msl": ((*LINUX_ALL, "pcaps/transfer/download.pcap"),
                   ("--linger", "0", "--msl", "0.001")),
    "max-flows": ((*LINUX_ALL, "pcaps/transfer/download.pcap"), ("--max-flows", "2")),
}
COMBINATION_VARIANTS = {key: BUNDLED_VARIANTS[key]
                        for key in ("json+zeek", "csv", "table", "zeek",
                                    "json+zeek+checksums")}


def _check_entry(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch, key: str, paths: tuple[str, ...],
                 variants: dict[str, tuple[str, ...]]) -> None:
    monkeypatch.chdir(ROOT)
    got = {}
    for name, args in variants.items():
        entry, data = _run(capsys, tmp_path, paths, args)
        if name.startswith("json"):
            entry["readable"] = _readable(data)
        got[name] = entry
    if REGEN:
        _MANIFEST_UPDATES[key] = got
        return
    manifest = _manifest()
    assert key in manifest, f"{key} has no golden entry (TCPTRACE_REGEN_GOLDEN=1)"
    assert got == manifest[key]


@pytest.mark.parametrize("name", COMBINATIONS)
def test_combinations(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    paths, options = COMBINATIONS[name]
    variants = {k: (*v, *options) for k, v in COMBINATION_VARIANTS.items()}
    _check_entry(capsys, tmp_path, monkeypatch, f"combination:{name}", paths, variants)


# ---- random traffic (tests/random_traffic.py): what no capture holds

RANDOM_SEEDS = range(300)
RANDOM_VARIANTS: dict[str, tuple[str, ...]] = {
    "jsonl": ("-f", "jsonl"),
    "csv": ("-f", "csv"),
    "json+timers": ("-f", "json", "--linger", "0.2", "--msl", "0.5"),
    "jsonl+zeek": ("-f", "jsonl", "--zeek"),
    "csv+zeek+checksums": ("-f", "csv", "--zeek", "--verify-checksums", "--linger", "0.2"),
}


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_random_traffic(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    path = tmp_path / f"random-{seed}.pcap"
    path.write_bytes(random_capture(seed))
    monkeypatch.chdir(tmp_path)  # the file's name in the source report: "random-N.pcap"
    got = {}
    for name, args in RANDOM_VARIANTS.items():
        entry, _ = _run(capsys, tmp_path, (path.name,), args)
        got[name] = entry
    if REGEN:
        _MANIFEST_UPDATES[f"random:{seed}"] = got
        return
    assert got == _manifest()[f"random:{seed}"]


def test_every_golden_capture_still_exists() -> None:
    """A capture removed from pcaps/ leaves no stale golden entry behind."""
    keys = set(_manifest())
    assert {c for c in keys if c.startswith("pcaps/")} == set(BUNDLED)
    assert {c for c in keys if c.startswith("combination:")} == {
        f"combination:{name}" for name in COMBINATIONS}
    assert {c for c in keys if c.startswith("random:")} == {
        f"random:{seed}" for seed in RANDOM_SEEDS}
    if CORPUS:
        assert {c for c in keys if c.startswith("../")} == set(CORPUS)
