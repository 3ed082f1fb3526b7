"""`analyze` after its command line was read (by click in tcptrace.commands, or by
tcptrace.quickargs for the common forms): the report written, warnings on stderr.

Nothing here imports click: the common `analyze` run starts without it (quickargs).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from tcptrace.errors import Interrupted, TcptraceError

# typing is for mypy only: importing it costs ~5 ms of a run's start (docs/performance.md)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

    from tcptrace._native import BpfFilter

WHOLE_DOCUMENT_FORMATS = ("json", "table")
"""Formats whose -o file is written beside the target and renamed into place on success
(the others stream, in place: tcptrace.outputs)."""


def say(line: str) -> None:
    """One line on stderr, flushed (what click.echo(line, err=True) writes)."""
    if sys.stderr is not None:
        sys.stderr.write(f"{line}\n")
        sys.stderr.flush()


def analyze(*, captures: tuple[str, ...], fmt: str, output: str | None, filter_: str | None,
            msl: float, linger: float, max_flows: int, quiet: bool, no_progress: bool,
            verify_checksums: bool, zeek: bool, jobs: int, per_file: bool,
            tunnel_ports: tuple[tuple[str, int], ...], executor: str, scheduler: str | None,
            workers: int | None, partitions: int | None, scratch: str | None,
            resume: str | None, resume_final: bool, resume_max_bytes: int) -> None:
    """Run `analyze` with the parameters its command declares (their combinations already
    checked by the command: tcptrace.commands.analyze)."""
    from tcptrace import native

    if not native.available():
        raise TcptraceError("this installation has no native engine (reinstall tcptrace)")

    def run(fmt: str, output: str | None) -> None:
        if executor == "dask":
            _analyze_on_dask(list(captures), fmt, output, quiet, scheduler=scheduler,
                             workers=workers, partitions=partitions, scratch=scratch,
                             filter_text=filter_, msl=msl, linger=linger,
                             max_flows=max_flows, zeek=zeek,
                             verify_checksums=verify_checksums,
                             tunnel_ports=list(tunnel_ports))
        else:
            _analyze(list(captures), fmt, output, filter_, msl, linger, max_flows, quiet,
                     jobs, zeek=zeek, verify_checksums=verify_checksums,
                     no_progress=no_progress, per_file=per_file,
                     tunnel_ports=list(tunnel_ports), resume=resume,
                     resume_final=resume_final, resume_max_bytes=resume_max_bytes)

    if fmt != "parquet":
        run(fmt, output)
        return
    # the run's csv (the engine's flattening) turned into hour partitions (parquet.py)
    from tcptrace import parquet
    from tcptrace.outputs import refuse_inputs

    assert output is not None  # (the command refuses -f parquet without -o DIR)
    parquet.require()
    refuse_inputs(output, captures)
    parquet.prepare(output)
    with parquet.csv_beside(output) as csv_path:
        run("csv", csv_path)
        parquet.write_dataset(csv_path, output)


def _analyze(paths: list[str], fmt: str, output: str | None, filter_: str | None,
             msl: float, linger: float, max_flows: int, quiet: bool, jobs: int = 1, *,
             zeek: bool = False, verify_checksums: bool = False,
             no_progress: bool = False, per_file: bool = False,
             tunnel_ports: list[tuple[str, int]] | None = None,
             resume: str | None = None, resume_final: bool = False,
             resume_max_bytes: int | None = None) -> None:
    bpf = None
    if filter_:  # a bad expression fails before reading
        from tcptrace.bpf import compile_filter  # (ctypes, libpcap: only when filtering)

        bpf = compile_filter(filter_)
    target = _report_target(output, fmt, paths)
    from tcptrace.progress import watch_for

    watch = watch_for(paths, enabled=not (quiet or no_progress))
    with target as out:
        _run_analysis(paths, fmt, out, bpf, msl, linger, max_flows, quiet, jobs, zeek=zeek,
                      verify_checksums=verify_checksums, watch=watch, per_file=per_file,
                      tunnel_ports=tunnel_ports, resume=resume, resume_final=resume_final,
                      resume_max_bytes=resume_max_bytes)


def _report_target(output: str | None, fmt: str,
                   inputs: list[str]) -> AbstractContextManager[str | IO[bytes]]:
    """Where the report goes: standard output, a file written beside and renamed into place
    on success (whole documents), or the file itself (streamed formats: the engine opens,
    and so truncates, it at its first byte)."""
    from tcptrace.outputs import check_writable, refuse_inputs, replaced_on_success

    refuse_inputs(output, inputs)
    if output is None or output == "-":
        return nullcontext(stdout_target())
    if fmt in WHOLE_DOCUMENT_FORMATS:
        return replaced_on_success(output)
    check_writable(output)
    return nullcontext(output)


def _analyze_on_dask(patterns: list[str], fmt: str, output: str | None, quiet: bool, *,
                     scheduler: str | None, workers: int | None, partitions: int | None,
                     scratch: str | None, filter_text: str | None, msl: float, linger: float,
                     max_flows: int, zeek: bool, verify_checksums: bool,
                     tunnel_ports: list[tuple[str, int]]) -> None:
    from tcptrace import scaleout

    if filter_text:  # a bad expression fails here, before any cluster starts
        from tcptrace.bpf import compile_filter

        compile_filter(filter_text)
    options = scaleout.EngineOptions(filter_text=filter_text, msl_s=msl, linger_s=linger,
                                     max_flows=max_flows, zeek=zeek,
                                     verify_checksums=verify_checksums,
                                     tunnel_ports=tunnel_ports)
    target = _report_target(output, fmt, patterns)
    with target as out:
        warnings = scaleout.analyze(patterns, fmt, out, options=options, scheduler=scheduler,
                                    workers=workers, partitions=partitions, scratch=scratch,
                                    quiet=quiet)
        if not isinstance(out, str):
            out.flush()
    if not quiet:
        for warning in warnings:
            say(f"tcptrace: warning: {warning}")


def _run_analysis(paths: list[str], fmt: str, out: str | IO[bytes], bpf: BpfFilter | None,
                  msl: float, linger: float, max_flows: int, quiet: bool, jobs: int, *, zeek: bool,
                  verify_checksums: bool, watch: Callable[..., Any] | None,
                  per_file: bool = False,
                  tunnel_ports: list[tuple[str, int]] | None = None,
                  resume: str | None = None, resume_final: bool = False,
                  resume_max_bytes: int | None = None) -> None:
    from tcptrace import native

    def tell_resume(line: str) -> None:
        if not quiet:
            say(f"tcptrace: resume: {line}")

    warnings: list[str] = []
    try:
        warnings = native.analyze(paths, fmt, out, bpf=bpf, msl_s=msl,
                                  linger_s=linger, max_flows=max_flows, zeek=zeek,
                                  verify_checksums=verify_checksums, watch=watch, jobs=jobs,
                                  per_file=per_file, tunnel_ports=tunnel_ports,
                                  resume=resume, resume_final=resume_final,
                                  resume_max_bytes=resume_max_bytes, on_resume=tell_resume)
    except Interrupted as exc:
        warnings = exc.warnings
        raise
    finally:
        if not isinstance(out, str):
            out.flush()
        if not quiet:
            for warning in warnings:
                say(f"tcptrace: warning: {warning}")


def stdout_target() -> str | IO[bytes]:
    """Where the report goes without -o: "-" (the engine writes the process's standard output
    itself) when sys.stdout is that, else the binary stream under the sys.stdout a caller put
    in its place. Text written before is flushed first."""
    if sys.stdout is None:  # started with stdout closed (`>&-`)
        raise TcptraceError("standard output is closed; use -o FILE")
    stdout = sys.stdout
    stdout.flush()
    try:
        real = stdout.fileno() == 1 and stdout is sys.__stdout__
    except (AttributeError, ValueError, OSError):
        real = False
    return "-" if real else stdout.buffer
