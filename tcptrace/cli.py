"""Command line: thin click commands over the library; no analysis logic here.

Every failure a user can cause (bad argument, unreadable file, bad filter) ends as
one line on stderr and exit status 2; warnings about damaged captures go to stderr
once per kind; the report goes to stdout or -o FILE.
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Callable
from typing import IO, Any, NoReturn, TextIO

import click

from tcptrace import __version__
from tcptrace.clitypes import FiniteFloat
from tcptrace.defaults import DEFAULT_MSL_S, FORMATS
from tcptrace.errors import TcptraceError

EXIT_USAGE = 2
# Commands in modules of their own, imported only when run (or listed by --help): the
# Python engine and numpy cost a third of a second that `analyze` on the native engine
# does not need.
LAZY_COMMANDS = {
    "live": "tcptrace.live:live",
    "check": "tcptrace.check.command:check",
    "ladder": "tcptrace.report.commands:ladder",
    "report": "tcptrace.report.commands:report",
}
ENGINES = ("auto", "native", "python")


class LazyGroup(click.Group):
    """A click group whose other commands are imported on first use."""

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
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="table",
              show_default=True, help="Report format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write the report to FILE instead of stdout.")
@click.option("--filter", "filter_", metavar="EXPR",
              help='Analyze only matching segments (BPF syntax: "port 80 and host 10.0.0.1").')
@click.option("--msl", type=FiniteFloat(), default=DEFAULT_MSL_S, show_default=True,
              help="Maximum segment lifetime in seconds; TIME_WAIT lasts 2 * MSL.")
@click.option("--linger", type=FiniteFloat(), default=0.5, show_default=True,
              help="Seconds (capture time) an ended connection still collects late segments "
                   "(later ones are counted as after_close).")
@click.option("--max-flows", type=click.IntRange(min=1), default=1_000_000, show_default=True,
              help="Cap on connections held at once; the longest idle are evicted first.")
@click.option("-q", "--quiet", is_flag=True, help="No warnings on stderr.")
@click.option("--verify-checksums", is_flag=True,
              help="Leave out segments with a bad TCP/IPv4 checksum (as Zeek does without -C).")
@click.option("--zeek", "zeek", is_flag=True,
              help="Add Zeek's conn_state and history to each record (implied by -f zeek).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Threads analyzing flows (worker processes on the Python engine); flows are "
                   "split between them, the report is the same.")
@click.option("--no-steady-runs", "steady_runs", flag_value=False, default=True, hidden=True,
              help="Send every segment through the per-segment path (the reference the bulk "
                   "path is compared against; see docs/performance.md).")
@click.option("--engine", type=click.Choice(ENGINES), default="auto", hidden=True,
              help="auto: the native engine where it covers the options, else the Python one "
                   "(the reference the native engine is tested against).")
def analyze(captures: tuple[str, ...], fmt: str, output: str | None, filter_: str | None,
            msl: float, linger: float, max_flows: int, quiet: bool,
            verify_checksums: bool = False, zeek: bool = False, jobs: int = 1,
            steady_runs: bool = True, engine: str = "auto") -> None:
    """Report every TCP connection in CAPTURES (pcap, pcapng, optionally .gz).

    Several files are merged in time order (e.g. captures from two interfaces).
    """
    paths = list(captures)
    if _native_engine(engine, fmt, zeek, verify_checksums, jobs, steady_runs):
        _analyze_native(paths, fmt, output, filter_, msl, linger, max_flows, quiet, jobs,
                        zeek=zeek, verify_checksums=verify_checksums)
        return
    _analyze_python(paths, fmt, output, filter_, msl, linger, max_flows, quiet,
                    verify_checksums, zeek, jobs, steady_runs)


def _native_engine(engine: str, fmt: str, zeek: bool, verify_checksums: bool, jobs: int,
                   steady_runs: bool) -> bool:
    """Whether this `analyze` runs on the native engine (it covers every analysis and
    format, --jobs on native threads; --no-steady-runs is still Python's)."""
    if engine == "python":
        return False
    from tcptrace import native

    unsupported = [name for name, used in (
        (f"-f {fmt}", fmt not in native.NATIVE_FORMATS),
        ("--no-steady-runs", not steady_runs)) if used]
    if engine == "auto":
        return not unsupported and native.available()
    if unsupported:
        raise click.UsageError(f"--engine native does not support {', '.join(unsupported)} yet")
    if not native.available():
        raise click.UsageError("--engine native: this installation has no native engine")
    return True


def _analyze_native(paths: list[str], fmt: str, output: str | None, filter_: str | None,
                    msl: float, linger: float, max_flows: int, quiet: bool,
                    jobs: int = 1, *, zeek: bool = False,
                    verify_checksums: bool = False) -> None:
    from tcptrace import native

    tree = None
    if filter_:  # a bad expression fails before reading
        from tcptrace.filter import parse_filter  # (ipaddress, socket: only when filtering)

        tree = parse_filter(filter_)
    watch = None if quiet else _progress_watch(paths)
    warnings: list[str] = []
    if output:
        open(output, "wb").close()  # an unwritable -o fails here, before any reading
    out = output or _stdout()
    try:
        warnings = native.analyze(paths, fmt, out, filter_tree=tree, msl_s=msl,
                                  linger_s=linger, max_flows=max_flows, zeek=zeek,
                                  verify_checksums=verify_checksums, watch=watch, jobs=jobs)
    finally:
        if not isinstance(out, str):
            out.flush()
        if not quiet:
            for warning in warnings:
                click.echo(f"tcptrace: warning: {warning}", err=True)


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


def _progress_watch(paths: list[str]) -> Callable[..., Any] | None:
    """The progress bar's polling context, when stderr is a terminal (tqdm is imported only
    then)."""
    try:
        if not sys.stderr.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    from tcptrace.progress import ProgressBar, total_size

    return ProgressBar(total_size(paths)).watch


def _analyze_python(paths: list[str], fmt: str, output: str | None, filter_: str | None,
                    msl: float, linger: float, max_flows: int, quiet: bool,
                    verify_checksums: bool, zeek: bool, jobs: int, steady_runs: bool) -> None:
    from tcptrace import parallel
    from tcptrace.analyzers.zeek import ZeekObserver
    from tcptrace.connection import ObserverFactory
    from tcptrace.engine import Analysis, Options
    from tcptrace.progress import ProgressBar, total_size
    from tcptrace.report.formats import writer_for
    from tcptrace.report.summary import Summary
    from tcptrace.sources import SourceStats
    from tcptrace.sources.files import ReadMeter, read_captures

    _fixed_mmap_threshold()
    # The Zeek translation replays Zeek's own endpoint logic per segment (about 40% more
    # time), so it runs only when asked for.
    observers: list[ObserverFactory] = [ZeekObserver] if zeek or fmt == "zeek" else []
    options = Options(filter=filter_, msl_s=msl, linger_s=linger, max_flows=max_flows,
                      verify_checksums=verify_checksums, observers=observers,
                      steady_runs=steady_runs)
    # the bar counts bytes as the readers pull them (compressed bytes for gzip)
    bar = ProgressBar(total_size(paths), enabled=not quiet)
    meter, stats = ReadMeter(), SourceStats()
    analysis = Analysis(paths, options, source=stats,
                        frames=read_captures(paths, stats, meter) if bar.enabled else None)
    warnings = analysis.source.warnings
    out: TextIO = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    try:
        writer = writer_for(fmt, out)
        if jobs > 1:
            _fixed_mmap_threshold(PARALLEL_MMAP_THRESHOLD)
            try:
                report = parallel.analyze(paths, options, jobs, writer, bar.update)
            finally:
                bar.close()
            warnings = report["warnings"]
            return
        summary = Summary()
        with bar.watch(lambda: (meter.bytes, stats.frames)):
            for record in analysis.records():
                summary.add(record)
                writer.write(record)
        writer.finish(summary, analysis.source_report())
    finally:
        if out is not sys.stdout:
            out.close()
        if not quiet:
            for warning in warnings:
                click.echo(f"tcptrace: warning: {warning}", err=True)


def _fail(message: str) -> NoReturn:
    click.echo(f"tcptrace: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


M_MMAP_THRESHOLD = -3  # glibc mallopt parameter (malloc.h)
MMAP_THRESHOLD = 1 << 20
PARALLEL_MMAP_THRESHOLD = 32 << 20  # glibc's own ceiling for its moving threshold


def _fixed_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> None:
    """Give every allocation of `threshold` bytes or more its own mapping, returned to the
    system when freed (glibc only; elsewhere nothing happens).

    Each 8 MiB read chunk leaves a few buffers of its size behind it (the chunk, decode's
    padded copy, the payload bytes). glibc raises its mmap threshold after the first such
    buffer is freed, and from then on they come from the heap, which fragments: a 10M-packet
    run grew to 228-247 MiB this way, 197 MiB with a fixed 1 MiB threshold. The price is
    page faults on each new chunk buffer: about 0.9 s of system time per million packets.
    `--jobs` runs take PARALLEL_MMAP_THRESHOLD instead (what glibc would move to anyway):
    three processes faulting in every chunk buffer cost more than their smaller heaps save.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library already loaded: no search
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, threshold)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning every user-caused failure into one line."""
    # The analysis allocates millions of short-lived objects and creates no reference cycles
    # on its hot path; the default GC thresholds made the collector rescan every live
    # connection over and over (about 40% of the run time on the benchmark capture).
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        status = cli.main(args=argv, prog_name="tcptrace", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # plain `tcptrace`: help, not an error
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(EXIT_USAGE)
    except click.UsageError as exc:
        hint = f" (try '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _fail(f"{exc.format_message()}{hint}")
    except click.Abort:
        _fail("interrupted")
    except TcptraceError as exc:
        _fail(str(exc))
    except BrokenPipeError:  # `tcptrace analyze big.pcap | head`
        sys.stderr.close()
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
