"""The `ladder` and `report` commands (registered in tcptrace.cli): pictures of connections.

Both run the native engine with segment traces (src/analyzers/trace.rs): `ladder` traces
only the selected connection and gets only its record; `report` reads every record once
without traces, then traces only the connections it embeds (tcptrace.report.picks), at most
`--max-segments` segments of each (the first ones), so memory stays bounded.
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import click

from tcptrace import native
from tcptrace.clitypes import FiniteFloat
from tcptrace.defaults import DEFAULT_MSL_S
from tcptrace.errors import TcptraceError
from tcptrace.inputs import STDIN, display_name, is_stream
from tcptrace.options import analysis_options, progress_option
from tcptrace.outputs import check_writable, refuse_inputs, replaced_on_success
from tcptrace.progress import watch_for
from tcptrace.report import html
from tcptrace.report import ladder as ladder_text
from tcptrace.report.picks import TRACE_BUDGET
from tcptrace.report.trace import Record, Trace, trace_of

if TYPE_CHECKING:
    from tcptrace._native import Progress


class SelectionError(TcptraceError):
    """No connection matches --conn / --client / --server."""


def parse_endpoint(text: str, option: str = "--client") -> tuple[str, int]:
    """HOST:PORT, with IPv6 hosts in brackets: [fd77::1]:40008."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {text!r}", param_hint=option)
    return host.strip("[]"), int(port)


def _colour_wanted() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


@click.command()
@click.argument("captures", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("--conn", "conn_id", type=click.IntRange(min=1), metavar="ID",
              help="Connection id, as `tcptrace analyze` numbers them.")
@click.option("--client", "client", metavar="HOST:PORT",
              help="Select the connection(s) whose client is HOST:PORT.")
@click.option("--server", "server", metavar="HOST:PORT",
              help="Select the connection(s) whose server is HOST:PORT (e.g. every "
                   "connection to one service; each is drawn).")
@click.option("--ascii", "ascii_", is_flag=True, help="Plain ASCII: no box drawing, no colour.")
@click.option("--filter", "filter_", metavar="EXPR",
              help="Analyze only the frames that match (pcap-filter(7), as for `analyze`).")
@analysis_options
@progress_option
def ladder(captures: tuple[str, ...], conn_id: int | None, client: str | None,
           server: str | None, ascii_: bool, filter_: str | None, linger: float,
           max_flows: int, verify_checksums: bool, tunnel_ports: tuple[tuple[str, int], ...],
           no_progress: bool) -> None:
    """Draw one connection of CAPTURES as a ladder diagram (client left, server right).

    Colours are used when stdout is a terminal and NO_COLOR is not set.
    """
    given = [(name, value) for name, value in (("conn", conn_id), ("client", client),
                                               ("server", server)) if value is not None]
    if len(given) != 1:
        raise click.UsageError(
            "give exactly one of --conn ID, --client HOST:PORT or --server HOST:PORT")
    (side, value), = given
    select: native.TraceSelect = conn_id if side == "conn" else (
        side, *parse_endpoint(str(value), f"--{side}"))
    run = native.record_run(list(captures), filter_text=filter_, msl_s=DEFAULT_MSL_S,
                            tunnel_ports=list(tunnel_ports), linger_s=linger,
                            max_flows=max_flows, verify_checksums=verify_checksums)
    native.trace(run, select, traced_only=True)
    found: list[tuple[Record, Trace]] = []

    def keep(record: Record) -> None:
        trace = trace_of(record)
        if trace is not None:
            found.append((record, trace))

    native.read_records(run, keep, watch=watch_for(list(captures), enabled=not no_progress))
    if not found:
        what = f"connection {conn_id}" if side == "conn" else f"connection with {side} {value}"
        raise SelectionError(f"no {what} in {', '.join(captures)}")
    found.sort(key=lambda item: item[0]["id"])
    colour = not ascii_ and _colour_wanted()
    click.echo("\n".join(ladder_text.render(r, t, ascii_, colour) for r, t in found), nl=False)


@click.command()
@click.argument("captures", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, writable=True),
              help="The HTML file to write.")
@click.option("--filter", "filter_", metavar="EXPR",
              help="Analyze only the frames that match (pcap-filter(7), as for `analyze`).")
@click.option("--msl", type=FiniteFloat(), default=DEFAULT_MSL_S, show_default=True,
              help="Maximum segment lifetime in seconds; TIME_WAIT lasts 2 * MSL.")
@click.option("--max-segments", type=click.IntRange(min=0), default=html.MAX_SEGMENTS,
              show_default=True, help="Segments kept per embedded connection trace.")
@click.option("--trace-budget", type=click.IntRange(min=0), default=TRACE_BUDGET,
              show_default=True, metavar="SEGMENTS",
              help="Segments embedded in all: the traces of RSTs, the slowest handshakes, "
                   "stalls, the longest and the largest connections, in turns.")
@analysis_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, no warnings on stderr.")
@progress_option
def report(captures: tuple[str, ...], output: str, filter_: str | None, msl: float,
           max_segments: int, trace_budget: int, linger: float, max_flows: int,
           verify_checksums: bool, tunnel_ports: tuple[tuple[str, int], ...], quiet: bool,
           no_progress: bool) -> None:
    """Write a self-contained HTML report of CAPTURES: charts, table, per-connection diagrams.

    Two passes over the captures: the records (spooled to a temporary file as they come),
    then the segment traces of the connections picked for embedding (--trace-budget); the
    page gives the `tcptrace ladder` command for the others.
    """
    paths = list(captures)
    streams = [display_name(p) for p in paths if p == STDIN or is_stream(p)]
    if streams:  # the second pass would find it empty
        raise TcptraceError(f"{streams[0]}: report reads its captures twice, and a pipe can "
                            "be read only once; save the capture to a file first")
    refuse_inputs(output, captures)
    check_writable(output)  # before the reading, which can take minutes
    options: dict[str, Any] = {"filter_text": filter_, "msl_s": msl, "linger_s": linger,
                               "max_flows": max_flows, "verify_checksums": verify_checksums,
                               "tunnel_ports": list(tunnel_ports)}
    passes: list[Progress] = []  # (taken before each pass: a run is borrowed while it runs)
    bar = None if quiet or no_progress else _progress_bar(paths, passes)
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool, bar or nullcontext():
        run = native.record_run(paths, **options)
        passes.append(run.progress())
        page = html.PageBuilder(spool, max_segments, trace_budget)
        native.read_records(run, page.add)
        picked = page.picker.picked()
        traces: dict[int, dict[str, Any]] = {}
        if picked:
            second = native.record_run(paths, **options)
            passes.append(second.progress())
            native.trace(second, sorted(picked), limit=max_segments, traced_only=True)

            def keep(record: Record) -> None:
                trace = trace_of(record)
                if trace is not None and record["id"] in picked:
                    traces[record["id"]] = html.pack_trace(trace, picked[record["id"]])

            native.read_records(second, keep)
        with replaced_on_success(output) as temp, open(temp, "w", encoding="utf-8") as out:
            page.write(out, source=run.source_report(),
                       paths=[native.display_name(p) for p in paths],
                       msl_s=msl, max_segments=max_segments, traces=traces,
                       trace_budget=trace_budget, filter_text=filter_)
    if not quiet:
        for warning in run.warnings():
            click.echo(f"tcptrace: warning: {warning}", err=True)


def _progress_bar(paths: list[str],
                  passes: list[Progress]) -> AbstractContextManager[None] | None:
    """A progress bar over both passes (the second counts after the first), when stderr is
    a terminal (tqdm is imported only then)."""
    try:
        if not sys.stderr.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    from tcptrace.progress import ProgressBar, total_size

    size = total_size(paths)

    def read() -> tuple[int, int]:
        if not passes:
            return 0, 0
        return ((size or 0) * (len(passes) - 1) + passes[-1].bytes,
                sum(p.frames for p in passes))

    return ProgressBar(None if size is None else 2 * size).watch(read)
