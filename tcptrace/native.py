"""`analyze` on the native engine (tcptrace._native, the Rust crate beside this package).

Rust reads the captures, runs the per-segment analysis and writes the jsonl, json and csv
bytes itself; Python gets one run object, the summary and the source report as dicts and,
for the table (which is for people), one row tuple per connection. Nothing here imports
numpy or the Python engine: a small run starts in a few tens of milliseconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext
from typing import IO, Any

from tcptrace.errors import EngineFailure

NATIVE_FORMATS = ("table", "json", "jsonl", "csv", "zeek")
PANIC_HOOK = "TCPTRACE_PANIC_AT_FRAME"
"""Test hook: the frame (1-based) at which the engine panics, to prove that a panic
reaches the user as one line, with the records read so far written."""


def available() -> bool:
    """Whether the native engine was built into this installation."""
    try:
        from tcptrace import _native  # noqa: F401
    except ImportError:
        return False
    return True


def analyze(paths: list[str], fmt: str, out: str | IO[bytes], *, filter_tree: Any = None,
            msl_s: float, linger_s: float, max_flows: int, zeek: bool = False,
            verify_checksums: bool = False,
            watch: Callable[[Callable[[], tuple[int, int]]], Any] | None = None) -> list[str]:
    """Analyze `paths` and write the report in `fmt` to `out`; the warnings of the run.

    `out`: a path, which the engine writes itself ("-": the standard output, Python's
    buffer flushed first), or a binary stream (one Python replaced, as tests do).

    `zeek`: records carry Zeek's view (implied by fmt "zeek"); `verify_checksums`: leave
    out segments with a bad TCP/IPv4 checksum.

    `watch`, if given, is a context manager factory polling (bytes read, frames) for a
    progress bar while the run reads. A native engine failure still writes everything read
    before it, then raises EngineFailure.
    """
    from tcptrace import _native

    panic_at = os.environ.get(PANIC_HOOK)
    run = _native.Run(paths, fmt, filter_tree, msl_s, linger_s, max_flows,
                      int(panic_at) if panic_at else None, zeek=zeek,
                      verify_checksums=verify_checksums)
    failure: EngineFailure | None = None
    progress = run.progress()
    sink = out if isinstance(out, str) else out.write
    try:
        with watch(lambda: (progress.bytes, progress.frames)) if watch else nullcontext():
            run.execute(sink)
    except EngineFailure as exc:
        failure = exc
    if fmt == "json":
        import json

        head = json.dumps({"source": run.source_report(), "summary": run.summary(),
                           "connections": []}, indent=2)
        run.write(head[: -len("[]\n}")].encode())
        run.write_connections()
    elif fmt == "table":
        from tcptrace.report.text import render_summary, render_table, table_cells

        run.write(render_table([table_cells(*row) for row in run.rows()]).encode())
        run.write(render_summary(run.summary(), run.source_report()).encode())
    if failure is not None:
        raise failure
    return list(run.warnings())

