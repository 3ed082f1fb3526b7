"""The `ladder` and `report` commands (registered in tcptrace.commands): pictures of connections.

Both run the native engine with segment traces (src/analyzers/trace.rs): `ladder` traces
only the selected connection and gets only its record; `report` reads the captures once,
tracing every connection while it is open (at most `--max-segments` segments, the first
ones) and keeping only the traces the page may embed (src/page/picks.rs), so memory stays
bounded.
"""

from __future__ import annotations

import os
import sys
import tempfile

import click

from tcptrace import native
from tcptrace.clitypes import Count, FiniteFloat
from tcptrace.defaults import DEFAULT_MSL_S
from tcptrace.digits import bounded_int
from tcptrace.errors import TcptraceError
from tcptrace.options import analysis_options, progress_option
from tcptrace.outputs import check_writable, refuse_inputs, replaced_on_success
from tcptrace.progress import watch_for
from tcptrace.report import html
from tcptrace.report import ladder as ladder_text
from tcptrace.report.picks import TRACE_BUDGET
from tcptrace.report.trace import Record, Trace, trace_of


class SelectionError(TcptraceError):
    """No connection matches --conn / --client / --server."""


def parse_endpoint(text: str, option: str = "--client") -> tuple[str, int]:
    """HOST:PORT, with IPv6 hosts in brackets: [fd77::1]:40008."""
    host, sep, port = text.rpartition(":")
    number = bounded_int(port, 65535)
    if not sep or number is None:
        raise click.BadParameter(f"expected HOST:PORT (PORT 0-65535), got {text!r}",
                                 param_hint=option)
    return host.strip("[]"), number


def _colour_wanted() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


@click.command()
@click.argument("captures", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("--conn", "conn_id", type=Count(), metavar="ID",
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
@click.option("--max-segments", type=Count(min=0), default=html.MAX_SEGMENTS,
              show_default=True, help="Segments kept per embedded connection trace.")
@click.option("--trace-budget", type=Count(min=0), default=TRACE_BUDGET,
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

    One pass over the captures: the table rows are spooled to a temporary file as
    connections end, and the segment traces of the connections picked for embedding
    (--trace-budget) are kept; the page gives the `tcptrace ladder` command for the others.
    """
    paths = list(captures)
    refuse_inputs(output, captures)
    check_writable(output)  # before the reading, which can take minutes
    run = native.record_run(paths, filter_text=filter_, msl_s=msl, linger_s=linger,
                            max_flows=max_flows, verify_checksums=verify_checksums,
                            tunnel_ports=list(tunnel_ports), format="page")
    run.report_page(max_segments, trace_budget)
    watch = watch_for(paths, enabled=not (quiet or no_progress))
    with tempfile.TemporaryDirectory(prefix="tcptrace-report-") as spool:
        rows = os.path.join(spool, "rows.json")
        native.read_page(run, rows, watch=watch)
        with (replaced_on_success(output) as temp, open(temp, "w", encoding="utf-8") as out,
              open(rows, encoding="utf-8") as spooled):
            html.write_page(out, spooled, run.page_data(), summary=run.summary(),
                            source=run.source_report(),
                            paths=[native.display_name(p) for p in paths], msl_s=msl,
                            max_segments=max_segments, trace_budget=trace_budget,
                            filter_text=filter_)
    if not quiet:
        for warning in run.warnings():
            click.echo(f"tcptrace: warning: {warning}", err=True)
