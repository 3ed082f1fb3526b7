"""Command line: thin click commands over the library; no analysis logic here.

Every failure a user can cause (bad argument, unreadable file, bad filter) ends as
one line on stderr and exit status 2; warnings about damaged captures go to stderr
once per kind; the report goes to stdout or -o FILE.
"""

from __future__ import annotations

import gc
import importlib
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, NoReturn

import click

from tcptrace import __version__
from tcptrace.clitypes import FiniteFloat
from tcptrace.defaults import DEFAULT_MSL_S, FORMATS
from tcptrace.errors import Interrupted, TcptraceError, Terminated
from tcptrace.options import progress_option, tunnel_port_option
from tcptrace.quickparse import QuickOptionsCommand

if TYPE_CHECKING:
    from tcptrace._native import BpfFilter

EXIT_USAGE = 2
WHOLE_DOCUMENT_FORMATS = ("json", "table")
"""Formats whose -o file is written beside the target and renamed into place on success
(the others stream, in place: tcptrace.outputs)."""
# Commands in modules of their own, imported only when run (or listed by --help): `analyze`
# starts in a few tens of milliseconds without libpcap's bindings, the rules or the report.
LAZY_COMMANDS = {
    "live": "tcptrace.live:live",
    "check": "tcptrace.check.command:check",
    "ladder": "tcptrace.report.commands:ladder",
    "report": "tcptrace.report.commands:report",
}


class PipeClosed(Exception):
    """Standard output was closed by its reader (`| head -1`): raised in place of the
    BrokenPipeError, which click would otherwise turn into exit status 1 on its own."""


class LazyGroup(click.Group):
    """A click group whose other commands are imported on first use."""

    command_class = QuickOptionsCommand

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:  # (--help and --version write here)
            return super().make_context(info_name, args, parent, **extra)
        except BrokenPipeError as exc:
            raise PipeClosed from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as exc:
            raise PipeClosed from exc

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module, _, name = LAZY_COMMANDS[cmd_name].partition(":")
            command: click.Command = getattr(importlib.import_module(module), name)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tcptrace")
def cli() -> None:
    """TCP connection life-cycles from packet captures."""


@cli.command()
@click.argument("captures", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("-f", "--format", "fmt", type=click.Choice((*FORMATS, "parquet")),
              default="table", show_default=True,
              help="Report format (parquet: a directory of hour partitions, -o DIR).")
@click.option("-o", "--output", type=click.Path(writable=True),
              help="Write the report to FILE instead of stdout (-f parquet: to DIR).")
@click.option("--filter", "filter_", metavar="EXPR",
              help='Analyze only the frames that match, as tcpdump would select them '
                   '(pcap-filter(7), compiled by libpcap: "tcp port 80 and host 10.0.0.1").')
@click.option("--msl", type=FiniteFloat(), default=DEFAULT_MSL_S, show_default=True,
              help="Maximum segment lifetime in seconds; TIME_WAIT lasts 2 * MSL.")
@click.option("--linger", type=FiniteFloat(), default=0.5, show_default=True,
              help="Seconds (capture time) an ended connection still collects late segments "
                   "(later ones are counted as after_close).")
@click.option("--max-flows", type=click.IntRange(min=1), default=1_000_000, show_default=True,
              help="Cap on connections held at once; the longest idle are evicted first.")
@click.option("-q", "--quiet", is_flag=True,
              help="Nothing on stderr but errors (no warnings, no progress bar).")
@progress_option
@click.option("--verify-checksums", is_flag=True,
              help="Leave out segments with a bad TCP/IPv4 checksum (as Zeek does without -C).")
@click.option("--zeek", "zeek", is_flag=True,
              help="Add Zeek's conn_state and history to each record (implied by -f zeek).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Threads analyzing flows; flows are split between them, the report is the "
                   "same.")
@click.option("--per-file", is_flag=True,
              help="Each file its own capture, read in the order given (ids continue; records "
                   "carry `file`; one thread). Default: the files are merged by time into one "
                   "capture.")
@tunnel_port_option
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local",
              show_default=True,
              help="Where the analysis runs: this process (--jobs threads), or a Dask cluster "
                   "(pip install 'tcptrace[dask]'; docs/scale-out.md). With dask, CAPTURES may "
                   "be quoted patterns ('captures/*.pcap*'), taken in time order.")
@click.option("--scheduler", metavar="ADDRESS",
              help="--executor dask: the scheduler (tcp://HOST:8786); default: a local cluster.")
@click.option("--workers", type=click.IntRange(min=1),
              help="--executor dask without --scheduler: worker processes (default: the cores).")
@click.option("--partitions", type=click.IntRange(min=1),
              help="--executor dask: flow partitions (default: 4 per worker); the records do "
                   "not depend on it.")
@click.option("--scratch", type=click.Path(file_okay=False),
              help="--executor dask: where the intermediate files go (seen by every worker); "
                   "a temporary directory in it is removed at the end.")
@click.option("--resume", "resume", metavar="STATE", type=click.Path(dir_okay=False),
              help="Hand connections on between runs (an hourly job over new files): read "
                   "first the frames STATE holds (if it exists), hold back the connections "
                   "still open at the end and write them to STATE (docs/scale-out.md).")
@click.option("--resume-final", is_flag=True,
              help="With --resume: the last run of a series; every connection is closed at "
                   "the end and STATE removed.")
def analyze(captures: tuple[str, ...], fmt: str, output: str | None, filter_: str | None,
            msl: float, linger: float, max_flows: int, quiet: bool, no_progress: bool = False,
            verify_checksums: bool = False, zeek: bool = False, jobs: int = 1,
            per_file: bool = False, tunnel_ports: tuple[tuple[str, int], ...] = (),
            executor: str = "local", scheduler: str | None = None, workers: int | None = None,
            partitions: int | None = None, scratch: str | None = None,
            resume: str | None = None, resume_final: bool = False) -> None:
    """Report every TCP connection in CAPTURES (pcap, pcapng, optionally .gz).

    `-` is standard input (`tcpdump -w - | tcptrace analyze -`); FIFOs and other pipes
    are read as they come, the format told by their first bytes.

    Several files are merged in time order by default (a rotation, or captures from two
    interfaces); --per-file keeps them apart (unrelated captures).
    """
    from tcptrace import native

    if not native.available():
        raise TcptraceError("this installation has no native engine (reinstall tcptrace)")
    if executor == "dask" and (per_file or jobs != 1):
        raise click.UsageError("--executor dask does not take --per-file or --jobs")
    if resume is not None and (executor == "dask" or per_file or jobs != 1
                               or "-" in captures):
        raise click.UsageError("--resume reads files in one process: not with --executor "
                               "dask, --per-file, --jobs or standard input (yet)")
    if resume is not None and tunnel_ports:  # STATE's frames are found by the well-known
        raise click.UsageError("--resume does not take --tunnel-port (yet)")  # ports only
    if resume_final and resume is None:
        raise click.UsageError("--resume-final goes with --resume STATE")
    if executor != "dask" and (scheduler or workers or partitions or scratch):
        raise click.UsageError("--scheduler, --workers, --partitions and --scratch go with "
                               "--executor dask")

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
                     resume_final=resume_final)

    if fmt != "parquet":
        run(fmt, output)
        return
    # the run's csv (the engine's flattening) turned into hour partitions (parquet.py)
    from tcptrace import parquet
    from tcptrace.outputs import refuse_inputs

    if output is None or output == "-":
        raise click.UsageError("-f parquet writes a directory: give -o DIR")
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
             resume: str | None = None, resume_final: bool = False) -> None:
    bpf = None
    if filter_:  # a bad expression fails before reading
        from tcptrace.bpf import compile_filter  # (ctypes, libpcap: only when filtering)

        bpf = compile_filter(filter_)
    from tcptrace.outputs import check_writable, refuse_inputs, replaced_on_success

    refuse_inputs(output, paths)
    if output is None or output == "-":
        target: AbstractContextManager[str | IO[bytes]] = nullcontext(_stdout())
    elif fmt in WHOLE_DOCUMENT_FORMATS:  # written beside, renamed into place on success
        target = replaced_on_success(output)
    else:  # streamed in place; the engine opens (truncates) it at its first byte
        check_writable(output)
        target = nullcontext(output)
    from tcptrace.progress import watch_for

    watch = watch_for(paths, enabled=not (quiet or no_progress))
    with target as out:
        _run_analysis(paths, fmt, out, bpf, msl, linger, max_flows, quiet, jobs, zeek=zeek,
                      verify_checksums=verify_checksums, watch=watch, per_file=per_file,
                      tunnel_ports=tunnel_ports, resume=resume, resume_final=resume_final)


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
    from tcptrace.outputs import check_writable, refuse_inputs, replaced_on_success

    refuse_inputs(output, patterns)
    if output is None or output == "-":
        target: AbstractContextManager[str | IO[bytes]] = nullcontext(_stdout())
    elif fmt in WHOLE_DOCUMENT_FORMATS:  # written beside, renamed into place on success
        target = replaced_on_success(output)
    else:
        check_writable(output)
        target = nullcontext(output)
    with target as out:
        warnings = scaleout.analyze(patterns, fmt, out, options=options, scheduler=scheduler,
                                    workers=workers, partitions=partitions, scratch=scratch,
                                    quiet=quiet)
        if not isinstance(out, str):
            out.flush()
    if not quiet:
        for warning in warnings:
            click.echo(f"tcptrace: warning: {warning}", err=True)


def _run_analysis(paths: list[str], fmt: str, out: str | IO[bytes], bpf: BpfFilter | None,
                  msl: float, linger: float, max_flows: int, quiet: bool, jobs: int, *, zeek: bool,
                  verify_checksums: bool, watch: Callable[..., Any] | None,
                  per_file: bool = False,
                  tunnel_ports: list[tuple[str, int]] | None = None,
                  resume: str | None = None, resume_final: bool = False) -> None:
    from tcptrace import native

    def say(line: str) -> None:
        if not quiet:
            click.echo(f"tcptrace: resume: {line}", err=True)


    warnings: list[str] = []
    try:
        warnings = native.analyze(paths, fmt, out, bpf=bpf, msl_s=msl,
                                  linger_s=linger, max_flows=max_flows, zeek=zeek,
                                  verify_checksums=verify_checksums, watch=watch, jobs=jobs,
                                  per_file=per_file, tunnel_ports=tunnel_ports,
                                  resume=resume, resume_final=resume_final,
                                  on_resume=say)
    except Interrupted as exc:
        warnings = exc.warnings
        raise
    finally:
        if not isinstance(out, str):
            out.flush()
        if not quiet:
            for warning in warnings:
                click.echo(f"tcptrace: warning: {warning}", err=True)


def silence_stdout() -> None:
    """After the reader of standard output went away: later writes, and the flush at exit,
    go to /dev/null instead of raising BrokenPipeError again (Python's documented recipe,
    https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno() if sys.stdout is not None else 1)
    except (AttributeError, ValueError, OSError):  # a stream Python replaced (tests)
        pass
    finally:
        os.close(devnull)


def _stdout() -> str | IO[bytes]:
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


def _fail(message: str) -> NoReturn:
    click.echo(f"tcptrace: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def _stop(signum: int, detail: str = "") -> NoReturn:
    """A run stopped by a signal: one line, and the shell's convention for the status."""
    click.echo(f"tcptrace: interrupted by {signal.Signals(signum).name}{detail}", err=True)
    sys.exit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning every user-caused failure into one line."""
    # `check` and `report` hold a dict per connection (hundreds of thousands of objects,
    # no reference cycles); the default GC thresholds would rescan them over and over.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    # SIGTERM stops a run as Ctrl-C does (the report of what was read, then exit 143);
    # the previous handler is back afterwards (tests call main() in their own process)
    if threading.current_thread() is not threading.main_thread():
        _main(argv)
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> None:
    try:
        status = cli.main(args=argv, prog_name="tcptrace", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # plain `tcptrace`: help, not an error
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(EXIT_USAGE)
    except click.UsageError as exc:
        hint = f" (try '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _fail(f"{exc.format_message()}{hint}")
    except Interrupted as exc:  # the engine stopped where it was; what it read is reported
        covered = "; the report covers them" if exc.report_written else ""
        _stop(exc.signum, f" after {exc.frames} frames{covered}")
    except click.Abort:  # Ctrl-C outside a run (click turns KeyboardInterrupt into Abort)
        _stop(signal.SIGINT)
    except Terminated:
        _stop(signal.SIGTERM)
    except TcptraceError as exc:
        _fail(str(exc))
    except (PipeClosed, BrokenPipeError):  # `tcptrace analyze big.pcap | head`: done, quietly
        silence_stdout()
        sys.exit(0)
    except OSError as exc:
        _fail(f"{exc.filename or ''}: {exc.strerror}" if exc.strerror else str(exc))
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    # without standalone mode, click returns the code a command gave to ctx.exit(code)
    if isinstance(status, int) and status:
        sys.exit(status)


if __name__ == "__main__":
    main()
