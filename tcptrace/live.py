"""`tcptrace live`: analyze traffic as it happens, with the same model and report as `analyze`.

The capture (sources/live.py) yields small frame batches and clock ticks; the
engine turns them into records as connections end; each record is written the
moment it comes out. A stop (--duration, --count, Ctrl-C, SIGTERM) ends the batch
stream, after which the engine reports the connections still open and the summary
is printed: nothing captured before the stop is lost.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TextIO

import click

from tcptrace.clitypes import FiniteFloat
from tcptrace.defaults import DEFAULT_MSL_S
from tcptrace.engine import Analysis, Options
from tcptrace.report.formats import Writer, writer_for
from tcptrace.report.stream import StreamTableWriter, capture_line
from tcptrace.report.summary import Summary
from tcptrace.report.text import render_summary
from tcptrace.sources import SourceStats
from tcptrace.sources.live import LiveCapture, LiveStats

LIVE_FORMATS = ("table", "jsonl", "csv")  # the streaming ones; json needs the whole run


@click.command()
@click.option("-i", "--interface", "interfaces", multiple=True, required=True, metavar="IFACE",
              help="Interface to capture on; repeat for several; `any` for all.")
@click.option("--bpf", default="tcp", show_default=True, metavar="EXPR",
              help="Capture filter (pcap-filter(7) syntax), applied in the kernel.")
@click.option("--filter", "filter_", metavar="EXPR",
              help="Analyze only matching segments (as for `analyze`).")
@click.option("--duration", type=FiniteFloat(min=0, min_open=True), metavar="SECONDS",
              help="Stop after this many seconds.")
@click.option("-c", "--count", type=click.IntRange(min=1), metavar="N",
              help="Stop after N captured packets.")
@click.option("-w", "--write", type=click.Path(dir_okay=False), metavar="FILE.pcap",
              help="Also save the packets analyzed to a pcap file.")
@click.option("-f", "--format", "fmt", type=click.Choice(LIVE_FORMATS), default="table",
              show_default=True, help="Report format (each connection as it ends).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write the report to FILE instead of stdout.")
@click.option("--msl", type=FiniteFloat(), default=DEFAULT_MSL_S, show_default=True,
              help="Maximum segment lifetime in seconds; TIME_WAIT lasts 2 * MSL.")
@click.option("--linger", type=FiniteFloat(), default=1.0, show_default=True,
              help="Seconds an ended connection still collects late segments before its row.")
@click.option("--idle-timeout", type=FiniteFloat(min=0, min_open=True), default=300.0,
              show_default=True, help="Report a connection silent for this many seconds.")
@click.option("--max-flows", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Cap on connections held at once; the longest idle are evicted first.")
@click.option("--no-promisc", is_flag=True, help="Do not put the interfaces in promiscuous mode.")
@click.option("-q", "--quiet", is_flag=True, help="No status line, summary or warnings on stderr.")
def live(interfaces: tuple[str, ...], bpf: str, filter_: str | None, duration: float | None,
         count: int | None, write: str | None, fmt: str, output: str | None, msl: float,
         linger: float, idle_timeout: float, max_flows: int, no_promisc: bool,
         quiet: bool) -> None:
    """Capture on IFACE and report every TCP connection the moment it ends.

    Stops on --duration, --count, Ctrl-C or SIGTERM; then reports the connections
    still open and the summary. Needs capture rights (root or CAP_NET_RAW).
    """
    options = Options(filter=filter_, msl_s=msl, linger_s=linger, max_flows=max_flows,
                      idle_timeout_s=idle_timeout)
    source = SourceStats()
    capture = LiveCapture(list(dict.fromkeys(interfaces)), bpf=bpf, duration_s=duration,
                          count=count, promisc=not no_promisc, write=write, source=source)
    capture.open()  # permission, interface, filter errors: one line, before any output
    if not quiet:  # like tcpdump: once this is printed, every packet is captured
        links = ", ".join(f"{i} ({t})" for i, t in zip(capture.stats.interfaces,
                                                       capture.stats.linknames, strict=True))
        click.echo(f"tcptrace: listening on {links}, capture filter {bpf!r}", err=True)
    out: TextIO = sys.stdout
    try:
        if output:
            out = open(output, "w", encoding="utf-8")  # noqa: SIM115
        run(capture, options, fmt, out, quiet)
    finally:
        capture.close()
        if out is not sys.stdout:
            out.close()
        if not quiet:
            for warning in source.warnings:
                click.echo(f"tcptrace: warning: {warning}", err=True)


def run(capture: LiveCapture, options: Options, fmt: str, out: TextIO, quiet: bool) -> None:
    """Feed the capture to the engine and write each record as it comes out."""
    analysis = Analysis(paths=[], options=options, source=capture.source,
                        frames=capture.batches())
    writer: Writer = StreamTableWriter(out) if fmt == "table" else writer_for(fmt, out)
    writer.flush_each = True
    summary = Summary()
    status = StatusLine(analysis, summary) if not quiet and sys.stderr.isatty() else None
    if status is not None:
        capture.on_status = status.update
    with stop_on_signals(capture):
        for record in analysis.records():
            if status is not None:
                status.clear()
            summary.add(record)
            writer.write(record)
    if status is not None:
        status.clear()
    report = analysis.source_report()
    report["live"] = {"interfaces": capture.stats.interfaces,
                      "duration_s": round(capture.stats.elapsed(), 3),
                      "kernel_drops": capture.stats.kernel_drops}
    writer.finish(summary, report)
    out.flush()
    if fmt != "table" and not quiet:  # stdout carries only records: the summary goes to stderr
        click.echo(render_summary(summary.as_dict(), report) + capture_line(report), err=True,
                   nl=False)


@contextmanager
def stop_on_signals(capture: LiveCapture) -> Iterator[None]:
    """SIGINT and SIGTERM end the capture cleanly; a second one acts as usual."""
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        capture.stop()
        signal.signal(signum, previous[signum])

    for sig in (int(signal.SIGINT), int(signal.SIGTERM)):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class StatusLine:
    """One self-overwriting line on stderr (only when it is a terminal)."""

    def __init__(self, analysis: Analysis, summary: Summary, stream: TextIO = sys.stderr) -> None:
        self.analysis, self.summary, self.stream = analysis, summary, stream
        self.shown = False

    def update(self, stats: LiveStats) -> None:
        text = (f"capturing on {','.join(stats.interfaces)}: {stats.packets} packets, "
                f"{len(self.analysis.table.slots)} open, {self.summary.connections} finished, "
                f"{stats.kernel_drops} dropped by the kernel, {stats.elapsed():.0f} s")
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False
