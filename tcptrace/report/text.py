"""The table and the summary as text, for people: shared by `analyze` and `live`.

The rows are built in Rust; this module only lays them out, so a table starts as fast as
the command line itself.
"""

from __future__ import annotations

import textwrap
import time
from typing import Any

WIDTH = 100  # the table and summary fit a 100-column terminal
LEGEND = (
    "TW: side holding TIME_WAIT; ka: keep-alive probes; pkts: client/server\n"
    "reqs: HTTP requests (n*: request/response turns of another protocol)\n\n"
)
HEADERS = ("id", "start", "dur", "client", "server", "outcome", "rtt ms", "TW", "RST", "ka",
           "reqs", "pkts")
ALIGN = ("right", "left", "right", "left", "left", "left", "right", "left", "left", "right",
         "right", "right")
START, CLIENT, SERVER = 1, 3, 4
"""Columns of table_cells' rows: start (epoch seconds until render_table writes it) and the
two endpoints (shortened when the table would be wider than WIDTH)."""
ENDPOINT_MIN = 14  # "[2001:d…]:443": still tells addresses apart by their ends
ELLIPSIS = "~"  # ASCII: the table goes to any terminal and pipe


def table_cells(conn_id: int, start: float, duration_ms: float, client: tuple[str, int],
                server: tuple[str, int], outcome: str, rtt_ms: float | None,
                setup_ms: float | None, time_wait: str | None, rst_kind: str | None,
                probes: int, requests: int, http: bool,
                packets: tuple[int, int]) -> tuple[Any, ...]:
    """One connection's row of the table, from the native engine's row tuple (Run.rows,
    Session). The start stays epoch seconds: its text depends on the whole table
    (render_table, stream). Set-up time is not a column (summary and machine formats)."""
    del setup_ms
    return (conn_id, start, duration(duration_ms), endpoint(*client), endpoint(*server),
            outcome, num(rtt_ms), time_wait or "-", rst_kind or "-", probes or "-",
            requests if http else f"{requests}*", f"{packets[0]}/{packets[1]}")


def render_table(rows: list[tuple[Any, ...]]) -> str:
    """The connection table (rows in id order) and its legend; nothing for no rows.

    Every column as wide as its widest cell or header, cells joined by one space, a dashed
    rule under the header, drawn in one pass per column. The start is UTC: the time of day
    when every connection starts on one UTC date (the legend names it), else ISO 8601
    date and time to the minute. In a table wider than WIDTH the IPv6 endpoints are shortened
    in the middle of the address (the full form is in the machine formats).
    """
    if not rows:
        return ""
    columns = [[str(cell) for cell in column] for column in zip(*rows, strict=True)]
    starts = [float(row[START]) for row in rows]
    dates = {utc_date(ts) for ts in starts}
    one_date = len(dates) == 1
    columns[START] = [utc_time(ts) if one_date else utc_datetime(ts) for ts in starts]
    widths = [max(len(header), max(map(len, column)))
              for header, column in zip(HEADERS, columns, strict=True)]
    _fit_endpoints(columns, widths)
    line = " ".join(f"{{:{'>' if align == 'right' else '<'}{width}}}"
                    for align, width in zip(ALIGN, widths, strict=True)).format
    lines = [line(*HEADERS), " ".join("-" * width for width in widths)]
    lines.extend(line(*cells) for cells in zip(*columns, strict=True))
    return "\n".join(lines) + "\n" + legend(dates.pop() if one_date else None)


def legend(date: str | None) -> str:
    """The table's legend; `date`: the UTC date of every start (time of day shown)."""
    start = (f"start: UTC time of day on {date}" if date
             else "start: UTC date and time (ISO 8601, to the minute)")
    return f"{start}; dur: first to last packet\n" + LEGEND


def _fit_endpoints(columns: list[list[str]], widths: list[int]) -> None:
    """Narrow the endpoint columns to fit (`narrow_endpoints`), never below their widest
    IPv4 endpoint (those stay whole: an IPv6 row never makes the table wider than IPv4 rows
    would); IPv6 cells longer than their column are shortened in place."""
    floors = {index: max([ENDPOINT_MIN, *(len(c) for c in columns[index] if "[" not in c)])
              for index in (CLIENT, SERVER)}
    narrow_endpoints(widths, floors)
    for index in (CLIENT, SERVER):
        width = widths[index]
        columns[index] = [cell if len(cell) <= width else shorten(cell, width)
                          for cell in columns[index]]


def narrow_endpoints(widths: list[int], floors: dict[int, int]) -> None:
    """Narrow the wider endpoint column, one character at a time, until the table fits WIDTH,
    never below its floor (`floors`: each endpoint column's narrowest width)."""
    excess = sum(widths) + len(widths) - 1 - WIDTH
    while excess > 0:
        wider = CLIENT if widths[CLIENT] - floors[CLIENT] >= widths[SERVER] - floors[SERVER] \
            else SERVER
        if widths[wider] <= floors[wider]:
            break
        widths[wider] -= 1
        excess -= 1


def shorten(cell: str, width: int) -> str:
    """An endpoint in `width` characters: the port kept, the address cut in its middle."""
    address, colon, port = cell.rpartition(":")
    closing = "]" if address.endswith("]") else ""
    inner = address[1:-1] if closing else address
    opening = "[" if closing else ""
    room = width - len(opening) - len(closing) - len(colon) - len(port) - len(ELLIPSIS)
    if room < 2:
        return cell[:width - 1] + ELLIPSIS
    head = (room + 1) // 2
    tail = room - head
    return f"{opening}{inner[:head]}{ELLIPSIS}{inner[len(inner) - tail:]}{closing}{colon}{port}"


def utc_date(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def utc_time(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts))


def utc_datetime(ts: float) -> str:
    """ISO 8601 to the minute (the seconds would cost the endpoints their room)."""
    return time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(ts))


def duration(ms: float) -> str:
    """A duration in the unit that suits it, 3 significant digits or two units."""
    if ms < 0.9995:
        return f"{ms * 1000:.0f}us"
    if ms < 999.5:
        return f"{_sig3(ms)}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{_sig3(seconds)}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def _sig3(value: float) -> str:
    """Three significant digits: 1.23, 12.3, 123."""
    for decimals in (2, 1):
        text = f"{value:.{decimals}f}"
        if len(text) <= 4:
            return text
    return f"{value:.0f}"


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
    data_rtt = [(side, d) for side, d in s["rtt_p50_ms"].items() if d["count"]]
    if data_rtt:  # the median over the connections of their median sample, per side that
        # sent the data (docs/health.md; the report draws the spread). No throughput here: a
        # per-connection rate says little summed or spread over a run
        lines.append("Data RTT ms, median of each connection's p50: " + ", ".join(
            f"{side} {num(d['p50'])} (n={d['count']})" for side, d in data_rtt))
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
    scans = s["scans"]
    if scans["probes"]:  # docs/health.md, "Scans and probes"
        sources = ", ".join(f"{x['ip']} ({x['targets']} targets: {_pairs(x['probes'])})"
                            for x in scans["sources"][:5])
        lines.append(f"Probes: {_pairs(scans['probes'])}; scan sources: {sources or 'none'}")
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


