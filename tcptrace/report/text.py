"""The table and the summary as text, for people: shared by `analyze` and `live`.

The rows are built in Rust; this module only lays them out, so a table starts as fast as
the command line itself.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

WIDTH = 100  # the table and summary fit a 100-column terminal
LEGEND = (
    "TW: side holding TIME_WAIT; ka: keep-alive probes; pkts: client/server\n"
    "reqs: HTTP requests (n*: request/response turns of another protocol)\n\n"
)
HEADERS = ("id", "client", "server", "outcome", "rtt ms", "setup ms", "TW", "RST", "ka", "reqs",
           "pkts")
ALIGN = ("right", "left", "left", "left", "right", "right", "left", "left", "right", "right",
         "right")


def table_cells(conn_id: int, client: tuple[str, int], server: tuple[str, int], outcome: str,
                rtt_ms: float | None, setup_ms: float | None, time_wait: str | None,
                rst_kind: str | None, probes: int, requests: int, http: bool,
                packets: tuple[int, int]) -> tuple[Any, ...]:
    """One connection's row of the table (for either engine: the Python one passes a
    record's fields, the native one its row tuples as they come)."""
    return (conn_id, endpoint(*client), endpoint(*server), outcome, num(rtt_ms), num(setup_ms),
            time_wait or "-", rst_kind or "-", probes or "-",
            requests if http else f"{requests}*", f"{packets[0]}/{packets[1]}")


def render_table(rows: list[tuple[Any, ...]]) -> str:
    """The connection table (rows in id order) and its legend; nothing for no rows.

    The layout of tabulate's "simple" format (MIN_PADDING 0, no number parsing, the cells'
    own text), which the table used to be drawn with: every column as wide as its widest
    cell or header, cells joined by two spaces, a dashed rule under the header. Drawn here
    in one pass per column: tabulate sniffs the type of every cell, seconds for 50k rows.
    Cells are single-line and carry no surrounding blanks (table_cells makes them).
    """
    if not rows:
        return ""
    columns = [[str(cell) for cell in column] for column in zip(*rows, strict=True)]
    widths = [max(len(header), max(map(len, column)))
              for header, column in zip(HEADERS, columns, strict=True)]
    line = "  ".join(f"{{:{'>' if align == 'right' else '<'}{width}}}"
                     for align, width in zip(ALIGN, widths, strict=True)).format
    lines = [line(*HEADERS), "  ".join("-" * width for width in widths)]
    lines.extend(line(*cells) for cells in zip(*columns, strict=True))
    return "\n".join(lines) + "\n" + LEGEND


TABLE_SLICE = 20_000
"""Rows taken from the engine at a time by `write_table`."""


def write_table(write: Callable[[bytes], object], count: int,
                rows: Callable[[int, int], list[tuple[Any, ...]]]) -> None:
    """`render_table` of the `count` rows that `rows(start, stop)` gives, written a slice
    at a time: two passes (the widths, then the lines), so that a table of a million
    connections is never held as text or as cells (item 12 of issue 17)."""
    if not count:
        return
    widths = [len(header) for header in HEADERS]
    for start in range(0, count, TABLE_SLICE):
        cells = [table_cells(*row) for row in rows(start, start + TABLE_SLICE)]
        for i, column in enumerate(zip(*cells, strict=True)):
            widths[i] = max(widths[i], max(len(str(cell)) for cell in column))
    line = "  ".join(f"{{:{'>' if align == 'right' else '<'}{width}}}"
                     for align, width in zip(ALIGN, widths, strict=True)).format
    write((line(*HEADERS) + "\n" + "  ".join("-" * width for width in widths) + "\n").encode())
    for start in range(0, count, TABLE_SLICE):
        text = "".join(line(*map(str, table_cells(*row))) + "\n"
                       for row in rows(start, start + TABLE_SLICE))
        write(text.encode())
    write(LEGEND.encode())


def render_summary(s: dict[str, Any], source: dict[str, Any]) -> str:
    lines = [
        f"Packets: {source['packets']} read, {source['tcp_segments']} TCP segments analyzed"
        + (f", skipped: {_pairs(source['skipped'])}" if source["skipped"] else ""),
        f"Connections: {s['connections']}"
        + (f" ({_pairs(s['outcomes'])})" if s["outcomes"] else ""),
    ]
    if source.get("evicted_for_capacity"):  # the results differ from an uncapped run
        lines.append(f"Evicted by the --max-flows cap before their end: "
                     f"{source['evicted_for_capacity']} connections (reported as they stood)")
    hs = s["handshake"]
    for name, key in (("Handshake RTT", "rtt_ms"), ("Set-up time", "setup_ms")):
        d = hs[key]
        if d["count"]:
            lines.append(f"{name} ms: p50 {num(d['p50'])}  p90 {num(d['p90'])}  "
                         f"p99 {num(d['p99'])}  max {num(d['max'])}  (n={d['count']})")
    if hs["syn_retransmits"] or hs["ambiguous"]:
        lines.append(f"SYN retransmissions: {hs['syn_retransmits']}; "
                     f"ambiguous handshakes: {hs['ambiguous']}")
    tw = s["time_wait"]
    if tw["by_side"]:
        top = list(tw["by_endpoint"].items())[:5]
        lines.append(f"TIME_WAIT held by: {_pairs(tw['by_side'])}; "
                     f"top holders: {', '.join(f'{k} {v}' for k, v in top)}")
    if s["rst"]["by_kind"]:
        lines.append(f"RST: {_pairs(s['rst']['by_kind'])} "
                     f"(sent by {_pairs(s['rst']['by_sender'])})")
    lines.append(f"Half-closes: {s['half_closes']}; keep-alive probing connections: "
                 f"{s['keepalive_connections']}; port reuse: {s['port_reuse']}")
    rq = s["reuse"]["requests_per_connection"]
    if rq["count"]:
        lines.append(f"Requests per connection: mean {rq['mean']}  p50 {num(rq['p50'])}  "
                     f"max {num(rq['max'])}; connections reused (>1 request): {rq['reused']}; "
                     f"protocols: {_pairs(s['reuse']['protocols'])}")
    wrapped = (textwrap.fill(line, WIDTH, subsequent_indent="    ") for line in lines)
    return "".join(line + "\n" for line in wrapped)


def _pairs(d: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items())


def num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if float(value).is_integer() else f"{value:.3f}".rstrip("0")


def endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


