"""Connection health (issue 16), part 2: retransmissions by cause, probes, where segments
were lost, zero windows and the STALLED outcome (docs/health.md). Each capture is crafted
here with scapy, so the test says exactly what is on the wire; the checks run the command
line."""
from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from test_health import CLIENT, SERVER, seg, write

from tcptrace.commands import cli

MS = Decimal("0.001")
KINDS = ("rto", "fast", "tlp", "spurious", "keepalive", "window_probe", "lost_before_capture",
         "lost_after_capture")


def records(path: Path, fmt: str = "json") -> Any:
    result = CliRunner().invoke(cli, ["analyze", "-q", "-f", fmt, str(path)])
    assert result.exit_code == 0, result.output
    return result.stdout if fmt == "csv" else json.loads(result.stdout)["connections"]


def tallies(side: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """The non-zero tallies of a side as (segments, bytes)."""
    return {k: (v["segments"], v["bytes"]) for k, v in side.items() if v["segments"]}


IP_IDS = iter(range(1, 1 << 30))


def c2s(t: float, flags: str, seq: int, ack: int, data: int = 0, **kw: Any) -> Any:
    """A frame from the client `t` ms in; each frame has an IP ID of its own (a frame
    repeating the previous one's would be a capture duplicate)."""
    return seg(Decimal(str(t)) * MS, CLIENT, SERVER, flags, seq, ack, b"c" * data,
               ip_id=next(IP_IDS) % 65536, **kw)


def s2c(t: float, flags: str, seq: int, ack: int, data: int = 0, **kw: Any) -> Any:
    return seg(Decimal(str(t)) * MS, SERVER, CLIENT, flags, seq, ack, b"s" * data,
               ip_id=next(IP_IDS) % 65536, **kw)


def opening(ts: bool = False) -> list[Any]:
    """Handshake (the client's ISN 1000, the server's 5000) and an 18-byte request."""
    stamp = (lambda val, ecr: [("NOP", None), ("NOP", None), ("Timestamp", (val, ecr))]) \
        if ts else (lambda val, ecr: [])
    return [
        c2s(0, "S", 1000, 0, options=[("SAckOK", b""), *stamp(1, 0)]),
        s2c(10, "SA", 5000, 1001, options=[("SAckOK", b""), *stamp(50, 1)]),
        c2s(15, "A", 1001, 5001, options=stamp(2, 50)),
        c2s(20, "PA", 1001, 5001, 18, options=stamp(3, 50)),
    ]


def closing(t: float, client_seq: int, server_seq: int) -> list[Any]:
    return [c2s(t, "FA", client_seq, server_seq), s2c(t + 5, "FA", server_seq, client_seq + 1),
            c2s(t + 6, "A", client_seq + 1, server_seq + 1)]


def sack(left: int, right: int) -> list[Any]:
    return [("NOP", None), ("NOP", None), ("SAck", (left, right))]


def causes_capture() -> list[Any]:
    """The server's retransmissions: 1 fast, 2 rto (one spurious), 1 tlp; 400 of its 1300
    payload bytes (the client sent 18)."""
    frames = opening()
    # five segments; the first is lost after the capture point: three duplicate ACKs
    # with SACK blocks, then the fast retransmission
    frames += [s2c(30 + i, "A", 5001 + 100 * i, 1019, 100) for i in range(5)]
    frames += [c2s(45 + i, "A", 1019, 5001, options=sack(5101, 5501)) for i in range(3)]
    frames += [s2c(50, "A", 5001, 1019, 100), c2s(60, "A", 1019, 5501)]
    # silence after one segment: the timer resends it
    frames += [s2c(70, "A", 5501, 1019, 100), s2c(400, "A", 5501, 1019, 100),
               c2s(410, "A", 1019, 5601)]
    # the last of two segments again, the first still unacknowledged: a tail-loss probe
    frames += [s2c(420, "A", 5601, 1019, 100), s2c(421, "A", 5701, 1019, 100),
               s2c(440, "A", 5701, 1019, 100), c2s(450, "A", 1019, 5801)]
    # sent again although already acknowledged: spurious
    frames += [s2c(460, "A", 5801, 1019, 100), c2s(470, "A", 1019, 5901),
               s2c(480, "A", 5801, 1019, 100)]
    return frames + closing(500, 1019, 5901)


def test_each_retransmission_is_told_by_its_cause(tmp_path: Path) -> None:
    frames = causes_capture()
    (r,) = records(write(tmp_path / "causes.pcap", frames))
    assert tallies(r["retransmissions"]["server"]) == {
        "fast": (1, 100), "rto": (2, 200), "tlp": (1, 100), "spurious": (1, 100),
        "lost_after_capture": (3, 300)}
    assert tallies(r["retransmissions"]["client"]) == {}
    assert r["retransmitted_bytes"] == {"client": 0, "server": 400}
    assert r["outcome"] == "CLOSED"
    assert r["zero_window"]["server"] == {"periods": 0, "stall_ms": 0.0, "longest_ms": 0.0,
                                          "probes": 0}


def test_spurious_by_the_timestamp_echo_and_by_a_dsack(tmp_path: Path) -> None:
    stamp = lambda val, ecr: [("NOP", None), ("NOP", None), ("Timestamp", (val, ecr))]  # noqa: E731
    # Eifel (RFC 3522): the ACK of the retransmission echoes the original's TSval
    eifel = [
        *opening(ts=True),
        s2c(30, "A", 5001, 1019, 100, options=stamp(100, 3)),
        s2c(300, "A", 5001, 1019, 100, options=stamp(130, 3)),
        c2s(310, "A", 1019, 5101, options=stamp(20, 100)),
        # a needed one: its ACK echoes the retransmission's TSval
        s2c(320, "A", 5101, 1019, 100, options=stamp(140, 20)),
        s2c(620, "A", 5101, 1019, 100, options=stamp(170, 20)),
        c2s(630, "A", 1019, 5201, options=stamp(50, 170)),
        *closing(700, 1019, 5201),
    ]
    (r,) = records(write(tmp_path / "eifel.pcap", eifel))
    assert tallies(r["retransmissions"]["server"]) == {
        "rto": (2, 200), "spurious": (1, 100), "lost_after_capture": (1, 100)}
    # D-SACK (RFC 2883): the receiver reports the segment received twice
    dsack = [
        *opening(),
        s2c(30, "A", 5001, 1019, 100), s2c(300, "A", 5001, 1019, 100),
        c2s(310, "A", 1019, 5101), c2s(311, "A", 1019, 5101, options=sack(5001, 5101)),
        *closing(400, 1019, 5101),
    ]
    (r,) = records(write(tmp_path / "dsack.pcap", dsack))
    assert tallies(r["retransmissions"]["server"]) == {"rto": (1, 100), "spurious": (1, 100)}


def test_lost_before_the_capture_point_apart_from_lost_after(tmp_path: Path) -> None:
    frames = [
        *opening(),
        # overtaken on the way: 5101 comes after 5201, nobody reported it lost
        s2c(30, "A", 5001, 1019, 100), s2c(31, "A", 5201, 1019, 100),
        s2c(32, "A", 5101, 1019, 100), c2s(40, "A", 1019, 5301),
        # 5401..5501 never passes the capture point; reported lost twice, then sent again
        s2c(50, "A", 5301, 1019, 100), s2c(51, "A", 5501, 1019, 100),
        c2s(52, "A", 1019, 5401, options=sack(5501, 5601)),
        c2s(53, "A", 1019, 5401, options=sack(5501, 5601)),
        c2s(54, "A", 1019, 5401, options=sack(5501, 5601)),
        s2c(60, "A", 5401, 1019, 100), c2s(70, "A", 1019, 5601),
        # acknowledged, never seen: the capture missed 5601..5701
        c2s(80, "A", 1019, 5701),
        s2c(90, "A", 5701, 1019, 100), c2s(100, "A", 1019, 5801),
        *closing(200, 1019, 5801),
    ]
    (r,) = records(write(tmp_path / "where.pcap", frames))
    assert tallies(r["retransmissions"]["server"]) == {
        "fast": (1, 100), "lost_before_capture": (2, 200)}
    assert r["gap_bytes"]["server"] == 100
    assert r["retransmitted_bytes"]["server"] == 0  # nothing was seen twice


def zero_window_capture() -> list[Any]:
    """The client's window shuts twice; the server probes Linux's way (one below SND.NXT,
    no data), then the BSD way (one new byte); the capture ends with the window shut."""
    return [
        *opening(),
        s2c(30, "A", 5001, 1019, 100),
        c2s(40, "A", 1019, 5101, window=0),
        s2c(240, "A", 5100, 1019), c2s(241, "A", 1019, 5101, window=0),
        s2c(640, "A", 5100, 1019), c2s(641, "A", 1019, 5101, window=0),
        c2s(700, "A", 1019, 5101, window=502),
        s2c(701, "A", 5101, 1019, 100),
        c2s(800, "A", 1019, 5201, window=0),
        s2c(1000, "A", 5201, 1019, 1), c2s(1001, "A", 1019, 5201, window=0),
        s2c(1400, "A", 5201, 1019, 1), c2s(1500, "A", 1019, 5201, window=0),
    ]


def test_zero_window_periods_probes_and_a_stalled_end(tmp_path: Path) -> None:
    (r,) = records(write(tmp_path / "zero.pcap", zero_window_capture()))
    assert r["zero_window"]["client"] == {"periods": 2, "stall_ms": 1360.0,
                                          "longest_ms": 700.0, "probes": 4}
    assert r["zero_window"]["server"]["periods"] == 0
    assert tallies(r["retransmissions"]["server"]) == {"window_probe": (4, 2)}
    # probes are neither keep-alives nor retransmissions
    assert r["keepalive"]["probes"] == {"client": 0, "server": 0}
    assert r["outcome"] == "STALLED"


def test_a_window_that_opens_again_is_no_stall(tmp_path: Path) -> None:
    frames = [
        *zero_window_capture()[:-2], c2s(1500, "A", 1019, 5202, window=502),
        s2c(1501, "A", 5202, 1019, 10), c2s(1502, "A", 1019, 5212)]
    (r,) = records(write(tmp_path / "reopened.pcap", frames))
    assert r["zero_window"]["client"] == {"periods": 2, "stall_ms": 1360.0,
                                          "longest_ms": 700.0, "probes": 3}
    assert r["outcome"] == "OPEN"


def test_csv_and_jsonl_carry_the_same_health(tmp_path: Path) -> None:
    path = write(tmp_path / "zero.pcap", zero_window_capture())
    (row,) = csv.DictReader(io.StringIO(records(path, "csv")))
    assert row["retransmissions.server.window_probe.segments"] == "4"
    assert row["retransmissions.server.window_probe.bytes"] == "2"
    assert row["zero_window.client.stall_ms"] == "1360.0"
    assert row["zero_window.client.periods"] == "2"
    assert row["outcome"] == "STALLED"
    result = CliRunner().invoke(cli, ["analyze", "-q", "-f", "jsonl", str(path)])
    line = json.loads(result.stdout)
    (document,) = records(path)
    assert line["retransmissions"] == document["retransmissions"]
    assert line["zero_window"] == document["zero_window"]
    assert set(line["retransmissions"]["client"]) == set(KINDS)


def test_the_table_and_check_take_the_stalled_outcome(tmp_path: Path) -> None:
    path = str(write(tmp_path / "zero.pcap", zero_window_capture()))
    table = CliRunner().invoke(cli, ["analyze", path])
    assert table.exit_code == 0, table.output
    (row,) = [line for line in table.stdout.splitlines() if line.startswith(" 1 ")]
    assert row.split()[5] == "STALLED"
    check = CliRunner().invoke(cli, ["check", "--no-incomplete", path])
    assert check.exit_code == 0, check.output
