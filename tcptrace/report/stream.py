"""A table that streams: a header once, one row the moment each connection ends.

The batch table (text.render_table) sizes its columns to the widest value, which
needs every row first; a live capture cannot wait. This writer uses the same
columns and cell formatting with fixed widths (a wider value pushes its row to the
right rather than holding output back), plus `TW until`: the local time at which
the TIME_WAIT holder releases the 4-tuple (`close.time_wait_until`). Rows come from
the native engine as tuples (tcptrace._native.Session): no numpy, no record model.
"""

from __future__ import annotations

import time
from typing import Any, TextIO

from tcptrace.report.text import ALIGN as TABLE_ALIGN
from tcptrace.report.text import (
    CLIENT,
    LEGEND,
    SERVER,
    START,
    render_summary,
    shorten,
    table_cells,
    utc_time,
)
from tcptrace.report.text import HEADERS as TABLE_HEADERS

HEADERS = (*TABLE_HEADERS, "TW until")
ALIGN = (*TABLE_ALIGN, "left")
# wide enough for IPv4 endpoints and the common outcomes; longer values overflow
WIDTHS = (4, 8, 6, 21, 21, 7, 7, 6, 7, 2, 4, 7, 8)
"""An IPv6 endpoint is shortened to its column (text.shorten) so that its row keeps the
grid; a longer outcome or count pushes its row to the right rather than holding it back."""


class StreamTableWriter:
    """Rows in order of ending (not of id), flushed one by one; the summary at the end."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._header = False
        self.rows = 0

    def write(self, row: tuple[Any, ...], time_wait_until: float | None) -> None:
        """One connection: its table row (text.table_cells' arguments) and when its
        TIME_WAIT ends."""
        if not self._header:
            self.out.write(_line(HEADERS) + "\n" + _line(tuple("-" * w for w in WIDTHS)) + "\n")
            self._header = True
        until = time_wait_until
        tw_until = time.strftime("%H:%M:%S", time.localtime(until)) if until else "-"
        cells = list(table_cells(*row))
        cells[START] = utc_time(cells[START])  # a stream cannot wait to see every date
        for index in (CLIENT, SERVER):
            if len(cells[index]) > WIDTHS[index]:
                cells[index] = shorten(cells[index], WIDTHS[index])
        self.out.write(_line((*cells, tw_until)) + "\n")
        self.out.flush()
        self.rows += 1

    def finish(self, summary: dict[str, Any], source: dict[str, Any]) -> None:
        if self._header:
            self.out.write("start: UTC time of day; dur: first to last packet\n"
                           + LEGEND.replace("\n\n", "\nTW until: local time the holder releases "
                                            "the 4-tuple (2 * MSL after TIME_WAIT began)\n\n", 1))
        self.out.write(render_summary(summary, source))
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
    return " ".join(parts).rstrip()
