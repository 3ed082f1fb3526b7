"""The click commands: `analyze` here, the others in modules of their own (LAZY_COMMANDS).

tcptrace.cli (the entry point) comes here for every command line but the common `analyze`
forms (tcptrace.quickargs), which run without importing click at all.
"""

from __future__ import annotations

import importlib
import signal
import sys
from typing import Any

import click

from tcptrace import __version__, analysis
from tcptrace.cli import EXIT_USAGE, fail, stop
from tcptrace.clitypes import ByteSize, Count, FiniteFloat
from tcptrace.defaults import (
    DEFAULT_MSL_S,
    DEFAULT_RESUME_MAX_BYTES,
    FORMATS,
    MAX_JOBS,
    MAX_PARTITIONS,
)
from tcptrace.errors import PipeClosed
from tcptrace.options import analysis_options, progress_option
from tcptrace.quickparse import QuickOptionsCommand

RESUME_MAX_BYTES_SHOWN = "1G"
"""DEFAULT_RESUME_MAX_BYTES as --help shows it (tests/test_resume.py holds them together)."""

# Commands in modules of their own, imported only when run (or listed by --help): `analyze`
# starts in a few tens of milliseconds without libpcap's bindings, the rules or the report.
LAZY_COMMANDS = {
    "live": "tcptrace.live:live",
    "check": "tcptrace.check.command:check",
    "ladder": "tcptrace.report.commands:ladder",
    "report": "tcptrace.report.commands:report",
}


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
@analysis_options
@click.option("-q", "--quiet", is_flag=True,
              help="Nothing on stderr but errors (no warnings, no progress bar).")
@progress_option
@click.option("--zeek", "zeek", is_flag=True,
              help="Add Zeek's conn_state and history to each record (implied by -f zeek).")
@click.option("-j", "--jobs", type=Count(max=MAX_JOBS), default=1,
              show_default=True,
              help="Threads analyzing flows; flows are split between them, the report is the "
                   "same.")
@click.option("--per-file", is_flag=True,
              help="Each file its own capture, read in the order given (ids continue; records "
                   "carry `file`; one thread). Default: the files are merged by time into one "
                   "capture.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local",
              show_default=True,
              help="Where the analysis runs: this process (--jobs threads), or a Dask cluster "
                   "(pip install 'tcptrace[dask]'; docs/scale-out.md). With dask, CAPTURES may "
                   "be quoted patterns ('captures/*.pcap*'), taken in time order.")
@click.option("--scheduler", metavar="ADDRESS",
              help="--executor dask: the scheduler (tcp://HOST:8786); default: a local cluster.")
@click.option("--workers", type=Count(max=MAX_JOBS),
              help="--executor dask without --scheduler: worker processes (default: the cores).")
@click.option("--partitions", type=Count(max=MAX_PARTITIONS),
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
@click.option("--resume-max-bytes", metavar="SIZE", type=ByteSize(),
              default=RESUME_MAX_BYTES_SHOWN, show_default=True,
              help="With --resume: a bound on the frames STATE carries (its pcap's records); "
                   "past it the oldest open connections are written as they stand, OPEN (K, "
                   "M, G, T: powers of 1024; 0: carry no frames).")
def analyze(captures: tuple[str, ...], fmt: str, output: str | None, filter_: str | None,
            msl: float, linger: float, max_flows: int, quiet: bool, no_progress: bool = False,
            verify_checksums: bool = False, zeek: bool = False, jobs: int = 1,
            per_file: bool = False, tunnel_ports: tuple[tuple[str, int], ...] = (),
            executor: str = "local", scheduler: str | None = None, workers: int | None = None,
            partitions: int | None = None, scratch: str | None = None,
            resume: str | None = None, resume_final: bool = False,
            resume_max_bytes: int = DEFAULT_RESUME_MAX_BYTES) -> None:
    """Report every TCP connection in CAPTURES (pcap, pcapng, optionally .gz).

    `-` is standard input (`tcpdump -w - | tcptrace analyze -`); FIFOs and other pipes
    are read as they come, the format told by their first bytes.

    Several files are merged in time order by default (a rotation, or captures from two
    interfaces); --per-file keeps them apart (unrelated captures).
    """
    if executor == "dask" and (per_file or jobs != 1):
        raise click.UsageError("--executor dask does not take --per-file or --jobs")
    if resume is not None and (executor == "dask" or per_file or jobs != 1
                               or "-" in captures):
        raise click.UsageError("--resume reads files in one process: not with --executor "
                               "dask, --per-file, --jobs or standard input (yet)")
    if resume_final and resume is None:
        raise click.UsageError("--resume-final goes with --resume STATE")
    if resume is None and given(click.get_current_context(silent=True), "resume_max_bytes"):
        raise click.UsageError("--resume-max-bytes goes with --resume STATE")
    if executor != "dask" and (scheduler or workers or partitions or scratch):
        raise click.UsageError("--scheduler, --workers, --partitions and --scratch go with "
                               "--executor dask")
    if fmt == "parquet" and (output is None or output == "-"):
        raise click.UsageError("-f parquet writes a directory: give -o DIR")
    analysis.analyze(captures=captures, fmt=fmt, output=output, filter_=filter_, msl=msl,
                     linger=linger, max_flows=max_flows, quiet=quiet, no_progress=no_progress,
                     verify_checksums=verify_checksums, zeek=zeek, jobs=jobs,
                     per_file=per_file, tunnel_ports=tunnel_ports, executor=executor,
                     scheduler=scheduler, workers=workers, partitions=partitions,
                     scratch=scratch, resume=resume, resume_final=resume_final,
                     resume_max_bytes=resume_max_bytes)


def given(ctx: click.Context | None, name: str) -> bool:
    """Whether the command line gave option `name` (not its default)."""
    if ctx is None:
        return False
    source = ctx.get_parameter_source(name)
    return source is not None and source is not click.core.ParameterSource.DEFAULT


def run(args: list[str]) -> Any:
    """The command line `args` read and run by click; click's own failures (a usage error,
    `--help` asked by running nothing, Ctrl-C while it reads) end here as tcptrace.cli
    reports every failure. The status a command returned, for the caller to exit with."""
    try:
        return cli.main(args=args, prog_name="tcptrace", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # plain `tcptrace`: help, not an error
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(EXIT_USAGE)
    except click.UsageError as exc:
        hint = f" (try '{exc.ctx.command_path} --help')" if exc.ctx else ""
        fail(f"{exc.format_message()}{hint}")
    except click.Abort:  # Ctrl-C outside a run (click turns KeyboardInterrupt into Abort)
        stop(signal.SIGINT)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
