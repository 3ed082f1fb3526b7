"""The engine (tcptrace._native, the Rust crate beside this package), as the commands use it.

Rust reads the captures, runs the per-segment analysis and writes the jsonl, json, csv and
conn.log bytes itself; Python gets one run object, the summary and the source report as
dicts and, for the table (which is for people), one row tuple per connection. `check`,
`ladder` and `report` get the records as dicts (docs/output.md), streamed. A small run
starts in a few tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import threading
from collections.abc import Callable
from contextlib import nullcontext

from tcptrace.errors import EngineFailure, Interrupted, Terminated

# typing is for mypy only: importing it costs ~5 ms of a run's start (docs/performance.md)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, TypeVar

    from tcptrace._native import BpfFilter, Run

    T = TypeVar("T")

NATIVE_FORMATS = ("table", "json", "jsonl", "csv", "zeek")
POLL_S = 0.1
"""How often the waiting thread wakes (signals are handled at once regardless)."""
PANIC_HOOK = "TCPTRACE_PANIC_AT_FRAME"
"""Test hook: the frame (1-based) at which the engine panics, to prove that a panic
reaches the user as one line, with the records read so far written."""


def display_name(path: str) -> str:
    """`path` as the engine shows it (src/names.rs): itself when its bytes are UTF-8; else
    each byte that is not valid UTF-8 as \\xNN and each backslash doubled (a Unix name is any
    bytes; Python holds the invalid ones as surrogates, which no UTF-8 output can carry)."""
    raw = os.fsencode(path)
    try:
        return raw.decode()
    except UnicodeDecodeError:
        pass
    out, at = [], 0
    while at < len(raw):
        try:
            out.append(raw[at:].decode().replace("\\", "\\\\"))
            break
        except UnicodeDecodeError as bad:
            out.append(raw[at:at + bad.start].decode().replace("\\", "\\\\"))
            out.extend(f"\\x{b:02x}" for b in raw[at + bad.start:at + bad.end])
            at += bad.end
    return "".join(out)


def available() -> bool:
    """Whether the native engine was built into this installation."""
    try:
        from tcptrace import _native  # noqa: F401
    except ImportError:
        return False
    return True


def room_to_open(files: int) -> None:
    """Raise the soft limit of open files towards the hard one when `files` captures are
    read: a merge by time (and --per-file) holds every file open at once, and a day of
    rotated captures (`tcpdump -G 60`: 1,440 files) passes the usual soft limit of 1,024.
    The hard limit is the system's word: beyond it, the engine's one-line "Too many open
    files". Below 64 files nothing is done (nor imported: 0.2 ms)."""
    if files < 64:
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = files + 64  # the output, the interpreter's own, a few spare
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def analyze(paths: list[str], fmt: str, out: str | IO[bytes], *,
            bpf: BpfFilter | None = None, msl_s: float, linger_s: float, max_flows: int,
            zeek: bool = False,
            verify_checksums: bool = False,
            watch: Callable[[Callable[[], tuple[int, int]]], Any] | None = None,
            jobs: int = 1, per_file: bool = False,
            tunnel_ports: list[tuple[str, int]] | None = None,
            resume: str | None = None, resume_final: bool = False,
            resume_max_bytes: int | None = None,
            on_resume: Callable[[str], None] | None = None) -> list[str]:
    """Analyze `paths` and write the report in `fmt` to `out`; the warnings of the run.

    `out`: a path, which the engine writes itself ("-": the standard output, Python's
    buffer flushed first), or a binary stream (one Python replaced, as tests do).

    `zeek`: records carry Zeek's view (implied by fmt "zeek"); `verify_checksums`: leave
    out segments with a bad TCP/IPv4 checksum.

    `watch`, if given, is a context manager factory polling (bytes read, frames) for a
    progress bar while the run reads. A native engine failure still writes everything read
    before it, then raises EngineFailure. `jobs` > 1: that many shard threads (flows split by
    a hash of their 4-tuple), the same report byte for byte. `per_file`: each file its own
    capture, read in the order given (ids continue across files; records carry `file`; the
    table has a part per file); on one thread. `tunnel_ports`: (kind, UDP port) pairs
    decapsulated besides the well-known ports (--tunnel-port). `resume`: a STATE file
    (--resume, docs/scale-out.md): its frames read first, the connections open at the end
    held back and written to it (`on_resume` gets a line saying what was carried), the
    oldest written as they stand instead past `resume_max_bytes` of frames (a warning says
    how many); with `resume_final`, the last run of a series: every connection closed,
    STATE removed.
    """
    from tcptrace import _native

    room_to_open(len(paths))
    panic_at = os.environ.get(PANIC_HOOK)
    run = _native.Run(paths, fmt, bpf, msl_s, linger_s, max_flows,
                      int(panic_at) if panic_at else None, jobs=jobs, zeek=zeek,
                      verify_checksums=verify_checksums, per_file=per_file,
                      tunnel_ports=tunnel_ports or None)
    if resume is None:
        return _execute(run, fmt, out, watch, per_file)
    frames = f"{resume}.frames.pcap"  # the previous run's frames, read as a capture
    try:
        resumed = run.resume_from(resume, frames, hold=not resume_final,
                                  max_bytes=resume_max_bytes)
        warnings = _execute(run, fmt, out, watch, per_file)
        if resume_final:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(resume)
        else:
            connections, carried, size, closed = run.write_state(resume)
            if closed:
                warnings.append(f"resume: {closed} open connections closed early and written "
                                f"as they stand: with them {resume} would carry more than "
                                f"--resume-max-bytes ({resume_max_bytes} bytes) of frames")
    finally:
        with contextlib.suppress(OSError):
            os.unlink(frames)
    if resume_final:
        if on_resume is not None and resumed is not None:
            on_resume(f"{resumed} connections resumed from {resume} and closed; "
                      f"{resume} removed")
    elif on_resume is not None:
        before = "" if resumed is None else f" ({resumed} resumed from it)"
        on_resume(f"{connections} open connections held in {resume}{before}: "
                  f"{carried} frames, {size} bytes")
    return warnings


def _execute(run: Run, fmt: str, out: str | IO[bytes],
             watch: Callable[[Callable[[], tuple[int, int]]], Any] | None,
             per_file: bool) -> list[str]:
    """Execute `run` to `out` and finish its document; the warnings of the run."""
    failure: EngineFailure | None = None
    progress = run.progress()
    sink = out if isinstance(out, str) else out.write
    try:
        with watch(lambda: (progress.bytes, progress.frames)) if watch else nullcontext():
            interrupted = execute(run, sink)
    except EngineFailure as exc:
        failure, interrupted = exc, None
    finish_document(run, fmt, per_file=per_file)
    if failure is not None:
        raise failure
    if interrupted is not None:
        interrupted.report_written = True
        interrupted.warnings = list(run.warnings())
        raise interrupted
    return list(run.warnings())


def finish_document(run: Run, fmt: str, *, per_file: bool = False) -> None:
    """After `execute` (or a distributed run's finalize): the json document's head and its
    connections, or the table and its summary; nothing for the streamed formats."""
    if fmt == "json":
        import json

        head = json.dumps({"source": run.source_report(), "summary": run.summary(),
                           "connections": []}, indent=2)
        run.write(head[: -len("[]\n}")].encode())
        run.write_connections()
    elif fmt == "table":
        from tcptrace.report.text import render_summary
        from tcptrace.table import write_table

        write_table(run, run.write, per_file=per_file)
        run.write(render_summary(run.summary(), run.source_report()).encode())


def _hold_signals() -> set[int | signal.Signals] | None:
    """Block Ctrl-C and SIGTERM in this thread (and the threads it starts); the mask before,
    to put back (None where threads have no signal mask)."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGINT, signal.SIGTERM))


def interruptible(call: Callable[[], T], name: str = "tcptrace-native",
                  on_signal: Callable[[BaseException], None] | None = None) -> T:
    """`call()` (a native call that releases the GIL) in a thread of its own while this one
    waits, so that Ctrl-C and SIGTERM are taken at once rather than when it returns. Without
    `on_signal`, the KeyboardInterrupt or Terminated is raised here and the call, left
    behind, ends with the process; with it, `on_signal` gets the exception and the wait goes
    on until the call returns. What the call raises is raised here."""
    outcome: list[T] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def work() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # raised again in the caller's thread
            failure.append(exc)
        finally:
            done.set()

    # An Event, not Thread.join: a join cut short by a signal can leave the thread looking
    # finished while it runs (CPython's tstate lock), an Event wait cannot. Nor may a signal
    # cut Thread.start short (the call would run on behind the caller's back, a run borrowed:
    # "Already mutably borrowed"): signals are held until the thread is started.
    held = _hold_signals()  # (the call's threads keep them blocked: they are this one's)
    threading.Thread(target=work, name=name, daemon=True).start()
    while True:
        try:
            if held is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)  # one held is raised here
                held = None
            if done.wait(POLL_S):
                break
        except (KeyboardInterrupt, Terminated) as exc:
            if on_signal is None:
                raise
            on_signal(exc)
    if failure:
        raise failure[0]
    return outcome[0]


def execute(run: Run, out: Any) -> Interrupted | None:
    """`run.execute(out)`, stoppable: the engine works in a thread of its own (without the
    GIL) while this one waits, so that Ctrl-C (KeyboardInterrupt) and SIGTERM (Terminated)
    reach Python at once. Either ends the input where the engine is: the connections open
    then are reported as they stand, the report is whole, and the Interrupted returned says
    how far it got (the caller completes the report, then raises it). Errors of the run are
    raised here."""
    progress = run.progress()  # (not while executing: the run is borrowed then)
    signums: list[int] = []

    def stop(exc: BaseException) -> None:
        progress.stop()
        signums.append(int(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT))

    interruptible(lambda: run.execute(out), "tcptrace-engine", on_signal=stop)
    return Interrupted(signums[-1], progress.frames) if signums else None



TraceSelect = int | list[int] | tuple[str, int] | tuple[str, str, int] | None
"""Which connections a run traces: a connection id, a list of ids, a client (host, port),
an end of either side ("client" or "server", host, port), or None (all)."""


def record_run(paths: list[str], *, filter_text: str | None = None,
               msl_s: float, linger_s: float = 0.5, max_flows: int = 1_000_000,
               verify_checksums: bool = False, per_file: bool = False,
               tunnel_ports: list[tuple[str, int]] | None = None,
               format: str = "records") -> Run:
    """A run yielding records to Python (`read_records`), for `check` and `ladder`, or
    (`format="page"`, `read_page`) the HTML report's data, analyzed as `analyze` would with
    the same options. A bad --filter fails here, before any reading."""
    from tcptrace import _native

    bpf = None
    if filter_text:
        from tcptrace.bpf import compile_filter  # (ctypes, libpcap: only when filtering)

        bpf = compile_filter(filter_text)
    room_to_open(len(paths))
    return _native.Run(paths, format, bpf, msl_s, linger_s, max_flows,
                       verify_checksums=verify_checksums, per_file=per_file,
                       tunnel_ports=tunnel_ports or None)


def trace(run: Run, select: TraceSelect = None, *, limit: int | None = None,
          traced_only: bool = False) -> None:
    """Trace the segments of the connections `select` picks (see TraceSelect), at most
    `limit` each: their records carry a `trace` key (tcptrace.report.trace). `traced_only`
    leaves the other records out."""
    run.trace(select, limit, traced_only)


def read_page(run: Run, rows: str, *,
              watch: Callable[[Callable[[], tuple[int, int]]], Any] | None = None) -> None:
    """Run a page run (`record_run(format="page")`, then `run.report_page`): the table rows
    go to the file `rows`, the rest is `run.page_data()`. Raises as `read_records` does."""
    progress = run.progress()
    with watch(lambda: (progress.bytes, progress.frames)) if watch else nullcontext():
        interrupted = execute(run, rows)
    if interrupted is not None:  # a page of part of the capture would mislead
        raise interrupted


def read_records(run: Run, each: Callable[[dict[str, Any]], object], *,
                 watch: Callable[[Callable[[], tuple[int, int]]], Any] | None = None) -> None:
    """Run the analysis, handing every record (the dict of docs/output.md) to `each` as its
    connection ends: memory is bounded by the connections open at once, as for `analyze`.

    `watch`: a progress bar's polling context, as for `analyze`. Rust builds the dicts and
    hands them over in lists of a few hundred. Raises
    CaptureError, EngineFailure as `analyze` does, and Interrupted after a Ctrl-C or SIGTERM
    (once every record read was handed over); `run.warnings()` then still holds the
    warnings of what was read.
    """

    def take(batch: list[dict[str, Any]]) -> None:
        for record in batch:
            each(record)

    # Records are trees of dicts (no cycles) and a caller often keeps them all: with the
    # default thresholds the collector's passes over that growing heap cost more than the
    # analysis (1.2 s of CPU for the 50k records of the 1M-packet benchmark) and free
    # nothing. (The command line raises the thresholds already; a library caller may not.)
    collecting = gc.isenabled()
    gc.disable()
    try:
        progress = run.progress()
        with watch(lambda: (progress.bytes, progress.frames)) if watch else nullcontext():
            interrupted = execute(run, take)
    finally:
        if collecting:
            gc.enable()
    if interrupted is not None:  # a verdict on part of the capture would mislead
        raise interrupted
