"""The connection table is drawn without tabulate, in tabulate's "simple" layout: the same
text for any rows table_cells can make (tabulate sniffs every cell's type: seconds for 50k
rows; render_table draws in one pass per column)."""

from __future__ import annotations

import tabulate
from hypothesis import given, settings
from hypothesis import strategies as st

from tcptrace.report.text import ALIGN, HEADERS, LEGEND, render_table, table_cells


def tabulated(rows: list[tuple[object, ...]]) -> str:
    """The table as tabulate drew it before (tcptrace <= the native engine, part 1)."""
    if not rows:
        return ""
    tabulate.MIN_PADDING = 0
    return tabulate.tabulate(rows, headers=HEADERS, tablefmt="simple", disable_numparse=True,
                             colalign=ALIGN) + "\n" + LEGEND


ips = st.sampled_from(["10.0.0.1", "192.168.100.200", "2001:db8::1", "::1", "fe80::1:2:3:4"])
ms = st.one_of(st.none(), st.floats(0, 1e7, allow_nan=False),
               st.integers(0, 10**7).map(lambda n: n / 1000), st.sampled_from([0.0, 1e6, 1e-5]))
row = st.builds(
    table_cells,
    st.integers(1, 10**9), st.tuples(ips, st.integers(0, 65535)),
    st.tuples(ips, st.integers(0, 65535)),
    st.sampled_from(["established", "refused", "reset", "True", "1.5", "half_open"]),
    ms, ms, st.sampled_from([None, "client", "server", "both"]),
    st.sampled_from([None, "abort", "refused", "x"]), st.integers(0, 10**6),
    st.integers(0, 10**6), st.booleans(), st.tuples(st.integers(0, 10**9), st.integers(0, 9)))


@settings(max_examples=300, deadline=None)
@given(st.lists(row, max_size=30))
def test_render_table_draws_what_tabulate_drew(rows: list[tuple[object, ...]]) -> None:
    assert render_table(rows) == tabulated(rows)


def test_render_table_layout() -> None:
    rows = [table_cells(7, ("10.0.0.1", 40000), ("2001:db8::1", 443), "established", 12.5,
                        None, "client", None, 0, 3, True, (10, 9))]
    assert render_table(rows) == (
        "id  client          server             outcome      rtt ms  setup ms  TW      RST  ka  "
        "reqs  pkts\n"
        "--  --------------  -----------------  -----------  ------  --------  ------  ---  --  "
        "----  ----\n"
        " 7  10.0.0.1:40000  [2001:db8::1]:443  established    12.5         -  client  -     -  "
        "   3  10/9\n" + LEGEND)
