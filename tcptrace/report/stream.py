"""A table that streams: a header once, one row the moment each connection ends.

The batch table (formats.TableWriter) sizes its columns to the widest value, which
needs every row first; a live capture cannot wait. This writer uses the same
columns and cell formatting with fixed widths (a wider value pushes its row to the
right rather than holding output back), plus `TW until`: the local time at which
the TIME_WAIT holder releases the 4-tuple (`close.time_wait_until`).
"""

from __future__ import annotations

import time
from typing import Any, TextIO

from tcptrace.model import ConnectionRecord
from tcptrace.report.formats import TableWriter, Writer
from tcptrace.report.summary import Summary
from tcptrace.report.text import LEGEND, render_summary

HEADERS = (*TableWriter.HEADERS, "TW until")
ALIGN = (*TableWriter.ALIGN, "left")
# wide enough for IPv4 endpoints and the common outcomes; longer values overflow
WIDTHS = (4, 21, 21, 7, 7, 8, 6, 7, 3, 4, 9, 8)


class StreamTableWriter(Writer):
    """Rows in order of ending (not of id), flushed one by one; the summary at the end."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(out)
        self._cells = TableWriter(out)  # reused for its cell formatting only
        self._header = False
        self.rows = 0

    def write(self, record: ConnectionRecord) -> None:
        if not self._header:
            self.out.write(_line(HEADERS) + "\n" + _line(tuple("-" * w for w in WIDTHS)) + "\n")
            self._header = True
        self._cells.write(record)
        row = self._cells.rows.pop()
        until = record.close.time_wait_until
        tw_until = time.strftime("%H:%M:%S", time.localtime(until)) if until else "-"
        self.out.write(_line((*row, tw_until)) + "\n")
        self.out.flush()
        self.rows += 1

    def finish(self, summary: Summary, source: dict[str, Any]) -> None:
        if self._header:
            self.out.write(LEGEND.replace("\n\n", "\nTW until: local time the holder releases "
                                          "the 4-tuple (2 * MSL after TIME_WAIT began)\n\n", 1))
        self.out.write(render_summary(summary.as_dict(), source))
        self.out.write(capture_line(source))
        self.out.flush()


def capture_line(source: dict[str, Any]) -> str:
    """The live capture's own summary line (interfaces, time, drops, evictions)."""
    live = source.get("live")
    if not live:
        return ""
    return (f"Capture: {', '.join(live['interfaces'])} for {live['duration_s']:.1f} s; "
            f"kernel drops: {live['kernel_drops']}; evicted: "
            f"{source['evicted_for_capacity']} for capacity, {source['idle_evicted']} idle\n")


def _line(cells: tuple[Any, ...]) -> str:
    parts = [str(c).rjust(w) if a == "right" else str(c).ljust(w)
             for c, w, a in zip(cells, WIDTHS, ALIGN, strict=True)]
    return "  ".join(parts).rstrip()
