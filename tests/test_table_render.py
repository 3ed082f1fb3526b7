"""The connection table for people: UTC start, duration in its own unit, 100 columns."""

from __future__ import annotations

import pytest
from conftest import CRAFTED, LINUX, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from tcptrace.report.text import (
    LEGEND,
    WIDTH,
    duration,
    legend,
    render_table,
    shorten,
    table_cells,
)

T0 = 1_700_000_000.25  # 2023-11-14T22:13:20.25Z


def cells(conn_id: int = 7, start: float = T0, client: tuple[str, int] = ("10.0.0.1", 40000),
          server: tuple[str, int] = ("2001:db8::1", 443)) -> tuple[object, ...]:
    return table_cells(conn_id, start, 1234.5, client, server, "established", 12.5, 99.0,
                       "client", None, 0, 3, True, (10, 9))


def test_render_table_layout() -> None:
    assert render_table([cells()]) == (
        "id start      dur client         server            outcome     rtt ms TW     RST ka "
        "reqs pkts\n"
        "-- -------- ----- -------------- ----------------- ----------- ------ ------ --- -- "
        "---- ----\n"
        " 7 22:13:20 1.23s 10.0.0.1:40000 [2001:db8::1]:443 established   12.5 client -    -    3"
        " 10/9\n"
        "start: UTC time of day on 2023-11-14; dur: first to last packet\n" + LEGEND)


def test_starts_on_several_dates_are_written_whole() -> None:
    table = render_table([cells(1), cells(2, start=T0 + 2 * 86400)])
    lines = table.splitlines()
    assert lines[2].startswith(" 1 2023-11-14T22:13Z ")
    assert lines[3].startswith(" 2 2023-11-16T22:13Z ")
    assert lines[4] == ("start: UTC date and time (ISO 8601, to the minute); "
                        "dur: first to last packet")
    assert legend(None) + "" == lines[4] + "\n" + LEGEND


@pytest.mark.parametrize(("ms", "text"), [
    (0.0, "0us"), (0.0004, "0us"), (0.026, "26us"), (0.9994, "999us"), (0.9996, "1.00ms"),
    (3.3149, "3.31ms"), (50.06, "50.1ms"), (151.2, "151ms"), (999.4, "999ms"),
    (999.6, "1.00s"), (2390.0, "2.39s"), (59_940.0, "59.9s"), (192_000.0, "3m12s"),
    (3_600_000.0, "1h00m"), (7_530_000.0, "2h05m"), (90_000_000.0, "1d01h"),
])
def test_durations_in_their_own_unit(ms: float, text: str) -> None:
    assert duration(ms) == text


def test_shorten_keeps_the_port_and_both_ends_of_the_address() -> None:
    short = shorten("[2001:db8:85a3::8a2e:370:7334]:443", 20)
    assert len(short) == 20 and short.startswith("[2001:d") and short.endswith("7334]:443")
    assert "~" in short
    assert shorten("192.168.100.200:54321", 17) == "192.1~0.200:54321"


ips = st.sampled_from(["10.0.0.1", "192.168.100.200", "2001:db8::1", "::1",
                       "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "fe80::1:2:3:4"])
row = st.builds(
    table_cells,
    st.integers(1, 10**5), st.floats(0, 4e9), st.floats(0, 1e9),
    st.tuples(ips, st.integers(0, 65535)), st.tuples(ips, st.integers(0, 65535)),
    st.sampled_from(["CLOSED", "REFUSED", "RESET", "OPEN"]),
    st.one_of(st.none(), st.floats(0, 1e5)), st.none(),
    st.sampled_from([None, "client", "server", "both"]),
    st.sampled_from([None, "ABORT", "REFUSED"]), st.integers(0, 99),
    st.integers(0, 999), st.booleans(), st.tuples(st.integers(0, 99999), st.integers(0, 9999)))


@settings(max_examples=200, deadline=None)
@given(st.lists(row, min_size=1, max_size=20))
def test_ipv6_rows_keep_within_the_width(rows: list[tuple[object, ...]]) -> None:
    """IPv6 endpoints are shortened so that the table is no wider than WIDTH, or than the
    same table with IPv4 endpoints of the widest form; IPv4 endpoints stay whole."""
    as_ipv4 = [(*r[:3], *("255.255.255.255:65535" if "[" in str(c) else c for c in r[3:5]),
                *r[5:]) for r in rows]
    allowed = max(WIDTH, *(len(line) for line in render_table(as_ipv4).splitlines()))
    lines = render_table(rows).splitlines()
    assert all(len(line) <= allowed for line in lines)
    for row in rows:
        for cell in row[3:5]:
            if "[" not in str(cell):
                assert any(str(cell) in line for line in lines)


def test_the_table_at_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "analyze", str(LINUX / "refused.pcap"),
                           str(CRAFTED / "ref_ipv6.pcap"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["id", "start", "dur", "client", "server", "outcome", "rtt",
                                "ms", "TW", "RST", "ka", "reqs", "pkts"]
    assert lines[2].split()[:5] == ["1", "2023-11-14T22:13Z", "50.1ms", "[fd00::1]:40100",
                                    "[fd00::2]:80"]
    assert lines[3].split()[:4] == ["2", "2026-11-22T03:24Z", "26us", "10.77.0.1:42810"]
    assert lines[4].startswith("start: UTC date and time")
    code, out, _ = run_cli(capsys, "analyze", str(LINUX / "ipv6.pcap"))
    assert out.splitlines()[2].split()[:5] == ["1", "03:25:07", "426us", "[fd77::1]:40008",
                                               "[fd77::2]:8080"]
    assert out.splitlines()[3] == "start: UTC time of day on 2026-11-22; dur: first to last packet"
