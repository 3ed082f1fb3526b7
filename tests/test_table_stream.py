"""The table format streamed from the engine's spool (issue 17 item 12) and its tunnel
column (issue 15), at the command line.

tcptrace/table.py lays the table out in two passes of SLICE rows; the rows come from
src/binding/table.rs, which spills them to a temporary file past 8 MiB. A flood large
enough to spill, arriving out of id order, must give the text report.text.render_table
gives for the same connections (built here from the jsonl records, an independent path).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from test_tunnels import SYN, ether, in_vxlan, inner_handshake, ipv4, tcp, write

from tcptrace import table
from tcptrace.report.text import LEGEND, render_table, table_cells
from tcptrace.table import SLICE

RST_ACK = 0x14
FLOOD = 150_000  # ~14 MB of encoded rows: past the 8 MiB spill, 8 slices


def flood_frames(first: int, count: int) -> list[bytes]:
    """SYNs from `count` sources (a connection each), IPv6 every 7th (wider endpoints),
    every third IPv4 one refused."""
    frames = []
    for i in range(first, first + count):
        if i % 7 == 0:
            src = bytes(12) + i.to_bytes(4, "big")
            frame = ether(bytes([0x60, 0, 0, 0, 0, 20, 6, 64]) + b"\xfd" + src[1:]
                          + b"\xfd" + bytes(14) + b"\x01" + tcp(1024 + i % 60000, 443, i, 0, SYN),
                          0x86DD)
        else:
            src_ip = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
            sport = 1024 + i % 60000
            frame = ether(ipv4(src_ip, "10.255.0.1", 6, tcp(sport, 80, i, 0, SYN)))
            if i % 3 == 0:  # refused: released after the linger, before the open ones
                frames.append(frame)
                frame = ether(ipv4("10.255.0.1", src_ip, 6, tcp(80, sport, 0, i + 1, RST_ACK)))
        frames.append(frame)
    return frames


def flood_pcap(frames: list[bytes]) -> bytes:
    """A pcap of `frames` a millisecond apart."""
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    return head + b"".join(
        struct.pack("<IIII", 1_700_000_000 + i // 1000, i % 1000 * 1000, len(f), len(f)) + f
        for i, f in enumerate(frames))


def row_of(record: dict[str, Any]) -> tuple[Any, ...]:
    """The engine's table row (Run.rows) of a jsonl record, made up from its fields."""
    rst = record["rst"]
    probes = record["keepalive"]["probes"]
    return table_cells(
        record["id"], record["first_ts"], record["duration_ms"],
        (record["client"]["ip"], record["client"]["port"]),
        (record["server"]["ip"], record["server"]["port"]), record["outcome"],
        record["handshake"]["rtt_ms"], record["handshake"]["setup_ms"],
        record["close"]["time_wait"], rst["kind"] if rst else None,
        probes["client"] + probes["server"], record["reuse"]["requests"],
        record["reuse"]["protocol"] is not None,
        (record["packets"]["client"], record["packets"]["server"]))


@pytest.fixture(scope="module")
def flood(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A SYN flood of FLOOD connections in two files."""
    directory = tmp_path_factory.mktemp("flood")
    split = FLOOD * 3 // 5
    first, second = directory / "a.pcap", directory / "b.pcap"
    first.write_bytes(flood_pcap(flood_frames(0, split)))
    second.write_bytes(flood_pcap(flood_frames(split, FLOOD - split)))
    return first, second


def records(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    code, out, err = run_cli(capsys, "analyze", "-q", "-f", "jsonl", *args)
    assert (code, err) == (0, "")
    return [json.loads(line) for line in out.splitlines()]


def table_part(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The table of `analyze ARGS` (what comes before the summary)."""
    code, out, err = run_cli(capsys, "analyze", "-q", *args)
    assert (code, err) == (0, "")
    return out[: out.index("\nPackets: ") + 1]


def test_a_spilled_table_is_the_whole_table(capsys: pytest.CaptureFixture[str],
                                            flood: tuple[Path, Path]) -> None:
    paths = list(map(str, flood))
    flooded = records(capsys, *paths)
    arrival = [r["id"] for r in flooded]
    assert len(arrival) == FLOOD > 7 * SLICE
    assert arrival != sorted(arrival)  # the spill is read back out of its order
    expected = render_table([row_of(r) for r in sorted(flooded, key=lambda r: r["id"])])
    assert table_part(capsys, *paths) == expected
    assert table_part(capsys, "--jobs", "2", *paths) == expected


def test_a_spilled_table_per_file(capsys: pytest.CaptureFixture[str],
                                  flood: tuple[Path, Path]) -> None:
    """--per-file: a table per file, cut from the sorted rows by id, the legend once."""
    paths = list(map(str, flood))
    flooded = sorted(records(capsys, "--per-file", *paths), key=lambda r: r["id"])
    parts = []
    for path in paths:
        mine = [row_of(r) for r in flooded if r["file"] == path]
        parts.append(f"{path}: {len(mine)} connections\n"
                     + render_table(mine).removesuffix(LEGEND) + "\n")
    assert table_part(capsys, "--per-file", *paths) == "".join(parts) + LEGEND


HEADER = "id start       dur client         server      {}outcome rtt ms TW RST ka reqs pkts\n"
RULE = "-- -------- ------ -------------- ----------- {}------- ------ -- --- -- ---- ----\n"
ROW = " {} 22:13:20 2.00ms 10.0.0.1:40000 10.0.0.2:80 {}OPEN         2 -  -    -   0*  2/1\n"
DATE = "start: UTC time of day on 2023-11-14; dur: first to last packet\n"
TUNNEL_LEGEND = "tunnel: outermost first, kind[:id] joined by > (vxlan:42, gre:7>vxlan:1)\n"
TUNNELLED_LEGEND = LEGEND.removesuffix("\n") + TUNNEL_LEGEND + "\n"


@pytest.fixture
def tunnels(tmp_path: Path) -> tuple[str, str, str]:
    """A handshake plain, in VXLAN 42, and in VXLAN 9 inside GRE (tests/test_tunnels.py)."""
    gre = [ether(ipv4(*(("192.0.2.1", "192.0.2.2") if i != 1 else ("192.0.2.2", "192.0.2.1")),
                      47, bytes([0, 0, 8, 0]) + f[14:]))
           for i, f in enumerate(in_vxlan(9))]
    return (str(write(tmp_path, "plain.pcap", inner_handshake())),
            str(write(tmp_path, "vxlan.pcap", in_vxlan(42))),
            str(write(tmp_path, "gre.pcap", gre)))


def test_a_plain_capture_has_no_tunnel_column(capsys: pytest.CaptureFixture[str],
                                              tunnels: tuple[str, str, str]) -> None:
    plain, _, _ = tunnels
    assert table_part(capsys, plain) == (
        HEADER.format("") + RULE.format("") + ROW.format(1, "") + DATE + LEGEND)


def test_a_tunnelled_capture_has_a_tunnel_column(capsys: pytest.CaptureFixture[str],
                                                 tunnels: tuple[str, str, str]) -> None:
    _, vxlan, gre = tunnels
    assert table_part(capsys, vxlan) == (
        HEADER.format("tunnel   ") + RULE.format("-------- ") + ROW.format(1, "vxlan:42 ")
        + DATE + TUNNELLED_LEGEND)
    assert table_part(capsys, gre) == (
        HEADER.format("tunnel      ") + RULE.format("----------- ")
        + ROW.format(1, "gre>vxlan:9 ") + DATE + TUNNELLED_LEGEND)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_merged_captures_show_the_column_when_one_is_tunnelled(
        capsys: pytest.CaptureFixture[str], tunnels: tuple[str, str, str], jobs: str) -> None:
    """Plain connections get `-` in it."""
    assert table_part(capsys, "--jobs", jobs, *tunnels) == (
        HEADER.format("tunnel      ") + RULE.format("----------- ")
        + ROW.format(1, "-           ") + ROW.format(2, "vxlan:42    ")
        + ROW.format(3, "gre>vxlan:9 ") + DATE + TUNNELLED_LEGEND)


def test_per_file_tables_all_show_the_column_when_one_is_tunnelled(
        capsys: pytest.CaptureFixture[str], tunnels: tuple[str, str, str]) -> None:
    """Each file's table sizes its own columns; the column is the run's (a plain file's
    table has it too), its legend line once at the end."""
    plain, vxlan, gre = tunnels
    assert table_part(capsys, "--per-file", *tunnels) == (
        f"{plain}: 1 connection\n"
        + HEADER.format("tunnel ") + RULE.format("------ ") + ROW.format(1, "-      ") + DATE
        + f"\n{vxlan}: 1 connection\n"
        + HEADER.format("tunnel   ") + RULE.format("-------- ") + ROW.format(2, "vxlan:42 ")
        + DATE
        + f"\n{gre}: 1 connection\n"
        + HEADER.format("tunnel      ") + RULE.format("----------- ")
        + ROW.format(3, "gre>vxlan:9 ") + DATE
        + "\n" + TUNNELLED_LEGEND)
    assert table_part(capsys, "--per-file", plain, plain) == (
        f"{plain}: 1 connection\n" + HEADER.format("") + RULE.format("") + ROW.format(1, "")
        + DATE + f"\n{plain}: 1 connection\n" + HEADER.format("") + RULE.format("")
        + ROW.format(2, "") + DATE + "\n" + LEGEND)


class FakeRun:
    """Run's table methods over rows given here (ids in order, as Run.rows sorts them)."""

    def __init__(self, rows: list[tuple[Any, ...]], paths: list[str]) -> None:
        self.table = rows
        self.paths = paths

    def rows(self, start: int = 0, stop: int | None = None, *,
             tunnel: bool = False, health: bool = False) -> list[tuple[Any, ...]]:
        assert not health, "no row here has health words"
        return [row if tunnel else row[:-1] for row in self.table[start:stop]]

    def row_count(self) -> int:
        return len(self.table)

    def tunnelled_rows(self) -> int:
        return sum(1 for row in self.table if row[-1])

    def unhealthy_rows(self) -> int:
        return 0

    def file_ids(self) -> list[tuple[str, int, int]]:
        """The rows in two files, cut after the first third."""
        cut = len(self.table) // 3 + 1
        return [(self.paths[0], 1, cut), (self.paths[1], cut, len(self.table) + 1)]


ips = st.sampled_from(["10.0.0.1", "192.168.100.200", "2001:db8::1", "::1",
                       "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "fe80::1:2:3:4"])
raw_row = st.tuples(
    st.floats(0, 4e9), st.floats(0, 1e9),
    st.tuples(ips, st.integers(0, 65535)), st.tuples(ips, st.integers(0, 65535)),
    st.sampled_from(["CLOSED", "REFUSED", "RESET", "OPEN", "HANDSHAKE_FAILED"]),
    st.one_of(st.none(), st.floats(0, 1e5), st.integers(0, 10**7).map(float)), st.none(),
    st.sampled_from([None, "client", "server", "both"]),
    st.sampled_from([None, "ABORT", "REFUSED"]), st.integers(0, 99),
    st.integers(0, 999), st.booleans(), st.tuples(st.integers(0, 99999), st.integers(0, 9999)))


@settings(max_examples=150, deadline=None)
@given(st.lists(raw_row, min_size=0, max_size=12), st.integers(1, 4), st.booleans())
def test_the_two_passes_write_render_tables_text(raw: list[tuple[Any, ...]], slice_rows: int,
                                                 per_file: bool) -> None:
    """Any rows, any slice size: the text of render_table (a part per file with
    --per-file), pass one measuring the values without making the cells."""
    rows = [(i, *row, "") for i, row in enumerate(raw, 1)]
    run = FakeRun(rows, ["a.pcap", "b.pcap"])
    chunks: list[bytes] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(table, "SLICE", slice_rows)
        table.write_table(run, chunks.append, per_file=per_file)
    cells = [table_cells(*row[:-1]) for row in rows]
    if not per_file:
        expected = render_table(cells)
    else:
        expected = ""
        for path, first, after in run.file_ids():
            mine = [c for c in cells if first <= c[0] < after]
            s = "" if after - first == 1 else "s"
            expected += (f"{path}: {after - first} connection{s}\n"
                         + render_table(mine).removesuffix(LEGEND) + "\n")
        expected += LEGEND if rows else ""
    assert b"".join(chunks).decode() == expected
