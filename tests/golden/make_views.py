"""Record the outputs of `check`, `ladder` and `report` as golden files (run on purpose only).

    .venv/bin/python tests/golden/make_views.py

The files were first made by the Python engine, before these commands moved to the native
one; tests/test_views_parity.py holds the native commands to them. The report's data were
recorded again when the report changed form (issue 19: rows, traces under a budget).
For every bundled capture (pcaps/) they keep the outputs themselves (views/bundled.json);
for every capture of ../shared/corpus/ the exit status and a sha256 of each
(views/corpus.json: the corpus is not ours to copy).
Paths are given relative to the repository root, which the commands run in.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
OUT = ROOT / "tests" / "golden" / "views"
SKIP_SUFFIXES = (".md", ".py", ".json", ".log", ".txt", ".yaml", ".rules", ".out", ".zeek",
                 ".sh")

CHECK_FLAGS = ("--max-handshake-ms", "1", "--max-handshake-p99-ms", "1",
               "--max-syn-retransmits", "0", "--no-rst", "--time-wait-on", "server",
               "--max-time-wait", "1", "--no-half-close", "--min-requests", "2",
               "--no-incomplete", "--min-connections", "1")
REPORT_SEGMENTS = "50"
"""Segments kept per connection in the golden reports: small files, and truncation shown."""


def captures(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(SKIP_SUFFIXES))


def run(*args: str) -> dict[str, Any]:
    """`tcptrace ARGS` in this process: exit status, stdout, stderr."""
    from tcptrace.cli import main

    out, err = io.StringIO(), io.StringIO()
    status = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            status = int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return {"status": status, "stdout": out.getvalue(), "stderr": err.getvalue()}


def report_data(page: str) -> Any:
    """The JSON document the report embeds (what report.js draws), each embedded trace's
    rows inflated (the deflated bytes depend on the zlib build; the rows do not)."""
    from tcptrace.report.html import unpack_trace

    start = page.index('<script type="application/json" id="data">') + len(
        '<script type="application/json" id="data">')
    data = json.loads(page[start:page.index("</script>", start)])
    for packed in data["traces"].values():
        packed["segs"] = unpack_trace(packed)
        del packed["z"]
    return data


def views(path: str) -> dict[str, Any]:
    """Every recorded output of one capture."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = os.path.join(tmp, "junit.xml")
        check_json = run("check", path, *CHECK_FLAGS, "-f", "json", "--junit", junit)
        check_json["junit"] = Path(junit).read_text() if os.path.exists(junit) else None
        check_text = run("check", path, *CHECK_FLAGS, "--list", "3")
        check_github = run("check", path, *CHECK_FLAGS, "-f", "github", "--list", "2")
        ladder = run("ladder", path, "--conn", "1", "--ascii")
        page = os.path.join(tmp, "report.html")
        report = run("report", path, "-o", page, "--max-segments", REPORT_SEGMENTS)
        report["data"] = report_data(Path(page).read_text()) if os.path.exists(page) else None
    return {"check_json": check_json, "check_text": check_text, "check_github": check_github,
            "ladder": ladder, "report": report}


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def main() -> None:
    os.chdir(ROOT)
    OUT.mkdir(parents=True, exist_ok=True)
    bundled = {str(p.relative_to(ROOT)): views(str(p.relative_to(ROOT)))
               for p in captures(ROOT / "pcaps")}
    (OUT / "bundled.json").write_text(json.dumps(bundled, indent=1, sort_keys=True) + "\n")
    corpus_root = ROOT.parent / "shared" / "corpus"
    if not corpus_root.is_dir():
        sys.exit(f"{corpus_root} is missing: corpus.json not written")
    corpus = {}
    for p in captures(corpus_root):
        path = os.path.relpath(p, ROOT)
        corpus[path] = {name: [out["status"], digest(out)] for name, out in views(path).items()}
    (OUT / "corpus.json").write_text(json.dumps(corpus, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
