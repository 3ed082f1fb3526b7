"""The table format of `analyze`, written from the engine's rows in two passes.

A column is as wide as its widest cell, so nothing can be written before every row was
seen; `report.text.render_table` lays a table out at once, which for a SYN flood of 1M
connections is gigabytes of cells. Here the rows stay in the engine (compact, spilled to a
temporary file when large: src/binding/table.rs) and are taken SLICE at a time: pass one
measures the columns, pass two writes the lines. Memory is bounded by the slice, and the
text is byte for byte that of `render_table` (tests/test_table_stream.py).

When a connection of the run came through a tunnel, a `tunnel` column follows the server:
its path as the csv column writes it (`vxlan:42`, `gre:7>vxlan:1`; `-` for plain traffic).
When a connection retransmitted, had a zero window or was captured twice, a `health` column
ends the line: its counts in a few words (`rto:2 fast:1 zw:1`; `-` for a healthy one), made
by the engine (src/health_label.rs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol

from tcptrace.report.text import (
    ALIGN,
    CLIENT,
    ENDPOINT_MIN,
    HEADERS,
    LEGEND,
    SERVER,
    START,
    duration,
    endpoint,
    legend,
    narrow_endpoints,
    num,
    shorten,
    table_cells,
    utc_date,
    utc_datetime,
    utc_time,
)

SLICE = 20_000
"""Rows taken from the engine at a time."""

TUNNEL = SERVER + 1
"""The tunnel column's place, when there is one: after the endpoints it carried."""
TUNNEL_LEGEND = "tunnel: outermost first, kind[:id] joined by > (vxlan:42, gre:7>vxlan:1)\n"
HEALTH_LEGEND = ("health, both sides: retransmitted segments by cause (rto, fast, tlp), spurious "
                 "ones (spur);\nzero-window periods (zw); frames captured twice (dup)\n")


class TableRun(Protocol):
    """What the table needs of a native Run."""

    def rows(self, start: int = 0, stop: int | None = None, *,
             tunnel: bool = False, health: bool = False) -> list[tuple[Any, ...]]: ...

    def row_count(self) -> int: ...

    def tunnelled_rows(self) -> int: ...

    def unhealthy_rows(self) -> int: ...

    def file_ids(self) -> list[tuple[str, int, int]]: ...


def write_table(run: TableRun, write: Callable[[bytes], object], *, per_file: bool) -> None:
    """The run's table (a part per file with `per_file`) and its legend, to `write`."""
    count = run.row_count()
    extra = _Extra(run.tunnelled_rows() > 0, run.unhealthy_rows() > 0)
    if not per_file:
        if count:
            _write_part(run, 0, count, extra, write)
            write(_legend_tail(extra).encode())
        return
    from tcptrace.inputs import display_name

    run.rows(0, 0)  # sorts the rows by id (a start of 0 does)
    # ids continue across files, so a file's rows are a range of the sorted rows
    start = 0
    for path, first, after in run.file_ids():
        stop = _first_at_or_after(run, start, count, after)
        s = "" if after - first == 1 else "s"
        write(f"{display_name(path)}: {after - first} connection{s}\n".encode())
        if stop > start:
            _write_part(run, start, stop, extra, write)
        write(b"\n")
        start = stop
    if count:
        write(_legend_tail(extra).encode())


def _first_at_or_after(run: TableRun, low: int, high: int, conn_id: int) -> int:
    """The first index in low..high whose row's id is `conn_id` or more (rows sorted by
    id)."""
    while low < high:
        middle = (low + high) // 2
        if run.rows(middle, middle + 1)[0][0] < conn_id:
            low = middle + 1
        else:
            high = middle
    return low


class _Extra(NamedTuple):
    """The columns a table has beyond HEADERS: each only when a row of the run has one."""

    tunnels: bool
    health: bool


def _legend_tail(extra: _Extra) -> str:
    """LEGEND, with the tunnel and health columns' lines when the table has them."""
    lines = (TUNNEL_LEGEND if extra.tunnels else "") + (HEALTH_LEGEND if extra.health else "")
    return LEGEND.replace("\n\n", "\n" + lines + "\n", 1) if lines else LEGEND


def _rows(run: TableRun, start: int, stop: int, extra: _Extra) -> list[tuple[Any, ...]]:
    return run.rows(start, stop, tunnel=extra.tunnels, health=extra.health)


def _slices(run: TableRun, start: int, stop: int,
            extra: _Extra) -> Iterator[list[tuple[Any, ...]]]:
    """The cells of rows start..stop (table_cells, plus the tunnel path and the health words
    when the table has them), a slice at a time."""
    for at in range(start, stop, SLICE):
        rows = _rows(run, at, min(stop, at + SLICE), extra)
        if not extra.tunnels and not extra.health:
            yield [table_cells(*row) for row in rows]
            continue
        cells = []
        for row in rows:
            cell = table_cells(*row[:BASE])
            if extra.tunnels:
                cell = (*cell[:TUNNEL], row[BASE] or "-", *cell[TUNNEL:])
            if extra.health:
                cell = (*cell, row[-1] or "-")
            cells.append(cell)
        yield cells


def _write_part(run: TableRun, start: int, stop: int, extra: _Extra,
                write: Callable[[bytes], object]) -> None:
    """One table (rows start..stop) and its date line, without LEGEND: `render_table`'s
    text, with the tunnel and health columns when the table has them."""
    headers: Sequence[str] = HEADERS
    align: Sequence[str] = ALIGN
    if extra.tunnels:
        headers = (*headers[:TUNNEL], "tunnel", *headers[TUNNEL:])
        align = (*align[:TUNNEL], "left", *align[TUNNEL:])
    if extra.health:
        headers, align = (*headers, "health"), (*align, "left")
    # pass one: the widest cell of each column, the IPv4 endpoints' widest, the first and
    # last start
    measure = _Measure(extra)
    for at in range(start, stop, SLICE):
        measure.add(_rows(run, at, min(stop, at + SLICE), extra))
    earliest, latest = measure.earliest, measure.latest
    widths = measure.widths
    if extra.tunnels:
        widths.insert(TUNNEL, measure.tunnel)
    if extra.health:
        widths.append(measure.health)
    if earliest is None or latest is None:
        return
    date = utc_date(earliest)
    one_date = date == utc_date(latest)  # a date per start, in order: the first and last
    start_text = utc_time if one_date else utc_datetime
    widths[START] = max(widths[START], len(start_text(earliest)), len(start_text(latest)))
    narrow_endpoints(widths, measure.ipv4)
    cells_line = " ".join(f"{{:{'>' if a == 'right' else '<'}{width}}}"
                          for a, width in zip(align, widths, strict=True)).format
    # the health column ends the line, left-aligned: no padding after the last word
    line = (lambda *cells: cells_line(*cells).rstrip()) if extra.health else cells_line
    write((line(*headers) + "\n" + " ".join("-" * width for width in widths) + "\n").encode())
    client_width, server_width = widths[CLIENT], widths[SERVER]
    # pass two: the lines, a slice at a time
    for cells in _slices(run, start, stop, extra):
        starts = _StartTexts(start_text)
        lines = []
        for row in cells:
            row_cells = list(row)
            row_cells[START] = starts(row[START])
            if len(row[CLIENT]) > client_width:
                row_cells[CLIENT] = shorten(row[CLIENT], client_width)
            if len(row[SERVER]) > server_width:
                row_cells[SERVER] = shorten(row[SERVER], server_width)
            lines.append(line(*row_cells))
        write(("\n".join(lines) + "\n").encode())
    write(legend(date if one_date else None).removesuffix(LEGEND).encode())


DURATION, OUTCOME, RTT, TIME_WAIT, RST, PROBES, REQUESTS, PACKETS = 2, 5, 6, 7, 8, 9, 10, 11
"""Columns of table_cells' rows besides START, CLIENT and SERVER."""
BASE = 14
"""Values of a Run.rows tuple before the tunnel path and the health words."""


class _Measure:
    """Pass one: the width of every column of the table_cells of the rows given (Run.rows
    tuples, a slice at a time), measured from the values without making the cells: each
    distinct value is formatted once (a flood's rows share most of theirs)."""

    def __init__(self, extra: _Extra) -> None:
        self.extra = extra
        self.widths = [len(header) for header in HEADERS]
        self.tunnel = len("tunnel")
        self.health = len("health")
        self.ipv4 = {CLIENT: ENDPOINT_MIN, SERVER: ENDPOINT_MIN}
        """The widest IPv4 endpoint of each endpoint column, or ENDPOINT_MIN."""
        self.earliest: float | None = None
        self.latest: float | None = None

    def add(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        columns = list(zip(*rows, strict=True))
        (ids, starts, durations, clients, servers, outcomes, rtts, _, time_waits, rsts,
         probes, requests, http, packets) = columns[:BASE]
        widest = self._widest
        widest(0, [str(max(ids))])  # ids are positive
        low, high = min(starts), max(starts)
        self.earliest = low if self.earliest is None else min(self.earliest, low)
        self.latest = high if self.latest is None else max(self.latest, high)
        widest(DURATION, map(duration, set(durations)))
        for index, ends in ((CLIENT, clients), (SERVER, servers)):
            cells = [endpoint(ip, port) for ip, port in set(ends)]
            widest(index, cells)
            self.ipv4[index] = max(self.ipv4[index],
                                   max((len(c) for c in cells if "[" not in c), default=0))
        widest(OUTCOME, set(outcomes))
        widest(RTT, map(num, set(rtts)))
        widest(TIME_WAIT, (side or "-" for side in set(time_waits)))
        widest(RST, (kind or "-" for kind in set(rsts)))
        widest(PROBES, [str(max(probes) or "-")])  # counts, so the largest is the widest
        widest(REQUESTS, (str(n) if is_http else f"{n}*"
                          for n, is_http in set(zip(requests, http, strict=True))))
        widest(PACKETS, (f"{client}/{server}" for client, server in set(packets)))
        if self.extra.tunnels:
            self.tunnel = max(self.tunnel, *(len(path or "-") for path in set(columns[BASE])))
        if self.extra.health:
            self.health = max(self.health, *(len(words or "-") for words in set(columns[-1])))

    def _widest(self, index: int, texts: Iterable[str]) -> None:
        self.widths[index] = max(self.widths[index], *map(len, texts))


class _StartTexts:
    """A start's text, formatted once per second: rows of one slice share their seconds."""

    def __init__(self, text: Callable[[float], str]) -> None:
        self.text = text
        self.seen: dict[int, str] = {}

    def __call__(self, ts: float) -> str:
        second = int(ts // 1)  # gmtime floors a float's seconds too
        found = self.seen.get(second)
        if found is None:
            found = self.seen[second] = self.text(ts)
        return found
