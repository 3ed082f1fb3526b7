"""The records of every capture we have, pinned: golden files recorded on purpose.

The Python per-segment engine was the reference the native engine was proven against
(tests/test_native_parity.py). Before it left the package, the output of every capture in
pcaps/ and ../shared/corpus/ was recorded here, so that the records cannot drift unnoticed:

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

GOLDEN = Path(__file__).parent / "golden" / "records"
MANIFEST = GOLDEN / "MANIFEST.json"
REGEN = os.environ.get("TCPTRACE_REGEN_GOLDEN") == "1"
# TCPTRACE_GOLDEN_ENGINE=python recorded the files with the Python engine, while it existed
ENGINE = ("--engine", os.environ["TCPTRACE_GOLDEN_ENGINE"]) if "TCPTRACE_GOLDEN_ENGINE" in \
    os.environ else ()
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


def _run(capsys: pytest.CaptureFixture[str], tmp_path: Path, capture: str,
         args: tuple[str, ...]) -> tuple[dict[str, Any], bytes]:
    out = tmp_path / "out"
    out.unlink(missing_ok=True)
    status, stdout, stderr = run_cli(capsys, "analyze", capture, "-q", "-o", str(out), *args,
                                     *ENGINE)
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


def test_every_golden_capture_still_exists() -> None:
    """A capture removed from pcaps/ leaves no stale golden entry behind."""
    bundled = {c for c in _manifest() if c.startswith("pcaps/")}
    assert bundled == set(BUNDLED)
    if CORPUS:
        assert {c for c in _manifest() if not c.startswith("pcaps/")} == set(CORPUS)
