"""`tcptrace live`: analyze traffic as it happens, with the same model and report as `analyze`.

The capture (sources/live.py) has libpcap hand each frame straight to the native engine
(tcptrace._native.Session) and yields, per small batch, the order to analyze it, and clock
ticks; the engine analyzes the batches and writes each jsonl or csv
record the moment its connection ends (table rows come back to be printed here). A stop
(--duration, --count, Ctrl-C, SIGTERM) ends the batch stream, after which the engine
reports the connections still open and the summary is printed: nothing captured before
the stop is lost. Neither numpy nor the Python engine is imported.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

import click

from tcptrace.clitypes import Count, FiniteFloat
from tcptrace.defaults import DEFAULT_MSL_S
from tcptrace.errors import EngineFailure, LiveCaptureError
from tcptrace.options import tunnel_port_option
from tcptrace.report.stream import StreamTableWriter, capture_line
from tcptrace.report.text import render_summary
from tcptrace.sources.live import LONG_BYTES, ClockTick, LiveCapture, LiveStats

if TYPE_CHECKING:
    from tcptrace._native import Session

LIVE_FORMATS = ("table", "jsonl", "csv")  # the streaming ones; json needs the whole run


@click.command()
@click.option("-i", "--interface", "interfaces", multiple=True, required=True, metavar="IFACE",
              help="Interface to capture on; repeat for several; `any` for all.")
@click.option("--bpf", default="tcp", show_default=True, metavar="EXPR",
              help="Capture filter (pcap-filter(7) syntax), applied in the kernel.")
@click.option("--filter", "filter_", metavar="EXPR",
              help="Analyze only the captured frames that match (pcap-filter(7), as for "
                   "`analyze`).")
@click.option("--duration", type=FiniteFloat(min=0, min_open=True), metavar="SECONDS",
              help="Stop after this many seconds.")
@click.option("-c", "--count", type=Count(), metavar="N",
              help="Stop after N captured packets.")
@click.option("-w", "--write", type=click.Path(dir_okay=False), metavar="FILE.pcap",
              help="Also save the packets analyzed to a pcap file; `-w -` writes them to "
                   "stdout (the report then needs -o FILE).")
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
@click.option("--max-flows", type=Count(), default=100_000, show_default=True,
              help="Cap on connections held at once; the longest idle are evicted first.")
@click.option("--no-promisc", is_flag=True, help="Do not put the interfaces in promiscuous mode.")
@click.option("-q", "--quiet", is_flag=True, help="No status line, summary or warnings on stderr.")
@tunnel_port_option
def live(interfaces: tuple[str, ...], bpf: str, filter_: str | None, duration: float | None,
         count: int | None, write: str | None, fmt: str, output: str | None, msl: float,
         linger: float, idle_timeout: float, max_flows: int, no_promisc: bool,
         quiet: bool, tunnel_ports: tuple[tuple[str, int], ...] = ()) -> None:
    """Capture on IFACE and report every TCP connection the moment it ends.

    Stops on --duration, --count, Ctrl-C or SIGTERM; then reports the connections
    still open and the summary. Needs capture rights (root or CAP_NET_RAW).
    """
    from tcptrace import native
    from tcptrace.outputs import refuse_same

    refuse_same(write, output, "-w and -o")  # the saved packets would overwrite the report
    if write == "-" and output in (None, "-"):  # both would go to stdout, interleaved
        raise click.UsageError("-w - writes the capture to stdout: give the report -o FILE")
    if not native.available():
        raise LiveCaptureError("live capture needs the native engine, which this "
                               "installation lacks (reinstall tcptrace)")
    frame_filter = None
    if filter_:  # a bad expression fails before the capture starts
        from tcptrace.bpf import compile_filter

        frame_filter = compile_filter(filter_)
    from tcptrace import _native

    panic_at = os.environ.get(native.PANIC_HOOK)
    names = list(dict.fromkeys(interfaces))
    session = _native.Session(names, fmt, frame_filter, msl, linger, max_flows, idle_timeout,
                              LONG_BYTES, int(panic_at) if panic_at else None,
                              tunnel_ports=list(tunnel_ports) or None)
    capture = LiveCapture(names, session.tap, bpf=bpf, duration_s=duration, count=count,
                          promisc=not no_promisc)
    capture.open()  # permission, interface, filter errors: one line, before any output
    try:
        if write is not None:
            session.save(write, capture.savefile_linktype())
        if not quiet:  # like tcpdump: once this is printed, every packet is captured
            links = ", ".join(f"{i} ({t})" for i, t in zip(capture.stats.interfaces,
                                                           capture.stats.linknames, strict=True))
            click.echo(f"tcptrace: listening on {links}, capture filter {bpf!r}", err=True)
        status = StatusLine(session) if not quiet and sys.stderr.isatty() else None
        out: TextIO | None = None
        if fmt == "table":
            out = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
        else:
            session.output(_record_sink(output, status))
        try:
            run(capture, session, fmt, out, status, quiet)
        finally:
            if out is not None and out is not sys.stdout:
                out.close()
    finally:
        capture.close()
        if not quiet:
            for warning in session.warnings():
                click.echo(f"tcptrace: warning: {warning}", err=True)


def _record_sink(output: str | None, status: StatusLine | None) -> Any:
    """Where the engine writes jsonl/csv records: the -o file, the standard output, or (with
    a status line on the terminal) a `write` that clears the status line first."""
    if output:
        return output
    from tcptrace.analysis import stdout_target

    stdout = stdout_target()
    if status is None:
        return stdout
    binary = sys.stdout.buffer if stdout == "-" else stdout
    assert not isinstance(binary, str)

    def write(data: bytes) -> None:
        status.clear()
        binary.write(data)
        binary.flush()

    return write


def run(capture: LiveCapture, session: Session, fmt: str, out: TextIO | None,
        status: StatusLine | None, quiet: bool) -> None:
    """Feed the capture to the engine; the records are written as they come out."""
    table = StreamTableWriter(out) if out is not None else None

    def show(rows: list[tuple[Any, ...]]) -> None:
        if table is not None and rows:
            if status is not None:
                status.clear()
            for row, until in rows:
                table.write(row, until)

    if status is not None:
        capture.on_status = status.update
    failure: EngineFailure | None = None
    with stop_on_signals(capture):
        try:
            for batch in capture.batches():
                if isinstance(batch, ClockTick):
                    show(session.tick(batch.ts_ns))
                else:
                    show(session.feed_captured(batch.merge))
        except EngineFailure as exc:
            failure = exc
            show(session.failed_rows())
        for kind, message in capture.warnings:  # before the engine's own warnings
            session.warn(kind, message)
        if failure is None:
            try:
                show(session.close())
            except EngineFailure as exc:
                failure = exc
                show(session.failed_rows())
    if status is not None:
        status.clear()
    report = session.source_report()
    report["live"] = {"interfaces": capture.stats.interfaces,
                      "duration_s": round(capture.stats.elapsed(), 3),
                      "kernel_drops": capture.stats.kernel_drops}
    if table is not None:
        table.finish(session.summary(), report)
    elif not quiet:  # stdout carries only records: the summary goes to stderr
        click.echo(render_summary(session.summary(), report) + capture_line(report), err=True,
                   nl=False)
    if failure is not None:
        raise failure


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

    def __init__(self, session: Session, stream: TextIO = sys.stderr) -> None:
        self.session, self.stream = session, stream
        self.shown = False

    def update(self, stats: LiveStats) -> None:
        text = (f"capturing on {','.join(stats.interfaces)}: {stats.packets} packets, "
                f"{self.session.open_connections} open, {self.session.finished} finished, "
                f"{stats.kernel_drops} dropped by the kernel, {stats.elapsed():.0f} s")
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False
