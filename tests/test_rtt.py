"""Connection health (issue 16), part 4: RTT samples over the connection and each side's
throughput (docs/health.md, "RTT and throughput"). The crafted captures say exactly what
is on the wire; the Linux captures are held to tshark's tcp.analysis.ack_rtt."""
from __future__ import annotations

import csv
import io
import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_health import write
from test_health_retransmissions import c2s, closing, opening, records, s2c

from tcptrace.commands import cli

ROOT = Path(__file__).resolve().parent.parent
NO_SAMPLES = {"samples": 0, "p50_ms": None, "p90_ms": None, "max_ms": None}


def stamp(val: int, ecr: int) -> list[Any]:
    return [("NOP", None), ("NOP", None), ("Timestamp", (val, ecr))]


def karn_capture() -> list[Any]:
    """A request answered after 10 ms; the server's data: two segments acknowledged
    together 12 ms after the first (timed), one sent again (its timing cancelled), one
    more acknowledged after 20 ms."""
    return [
        *opening(),  # the client's 18-byte request at 20 ms
        s2c(30, "A", 5001, 1019),
        s2c(40, "PA", 5001, 1019, 100), s2c(41, "PA", 5101, 1019, 100),
        c2s(52, "A", 1019, 5201),
        s2c(60, "PA", 5201, 1019, 100), s2c(260, "PA", 5201, 1019, 100),
        c2s(270, "A", 1019, 5301),
        s2c(280, "PA", 5301, 1019, 100), c2s(300, "A", 1019, 5401),
        *closing(310, 1019, 5401),
    ]


def test_samples_follow_karn_and_throughput_spans_the_data(tmp_path: Path) -> None:
    (r,) = records(write(tmp_path / "karn.pcap", karn_capture()))
    assert r["rtt"] == {
        "client": {"samples": 1, "p50_ms": 10.0, "p90_ms": 10.0, "max_ms": 10.0},
        # 12 ms and 20 ms: nothing from the segment sent twice (200 ms after it)
        "server": {"samples": 2, "p50_ms": 12.0, "p90_ms": 20.0, "max_ms": 20.0},
    }
    assert r["unique_bytes"] == {"client": 18, "server": 400}
    assert r["throughput"] == {
        "client": {"duration_ms": 0.0, "bits_per_s": None},  # one data segment
        # 400 bytes from 40 ms to 280 ms: 3200 bits over 0.24 s
        "server": {"duration_ms": 240.0, "bits_per_s": 13333},
    }


def test_a_partial_ack_echoing_the_tsval_times_a_large_segment(tmp_path: Path) -> None:
    frames = [
        *opening(ts=True),
        s2c(25, "A", 5001, 1019, options=stamp(60, 3)),  # request acknowledged: 5 ms
        # 3000 bytes at once, as a capture on a sender with TSO sees them
        s2c(30, "PA", 5001, 1019, 3000, options=stamp(70, 3)),
        c2s(33, "A", 1019, 6001, options=stamp(5, 69)),  # echoing another TSval: no sample
        c2s(36, "A", 1019, 7001, options=stamp(6, 70)),  # a part, echoing 70: 6 ms
        c2s(45, "A", 1019, 8001, options=stamp(7, 70)),
        *closing(50, 1019, 8001),
    ]
    (r,) = records(write(tmp_path / "tso.pcap", frames))
    assert r["rtt"]["client"] == {"samples": 1, "p50_ms": 5.0, "p90_ms": 5.0, "max_ms": 5.0}
    assert r["rtt"]["server"] == {"samples": 1, "p50_ms": 6.0, "p90_ms": 6.0, "max_ms": 6.0}
    # without the timestamps, only the ACK of the whole segment answers it
    for frame in frames:
        frame["TCP"].options = []
    (r,) = records(write(tmp_path / "tso_plain.pcap", frames))
    assert r["rtt"]["server"] == {"samples": 1, "p50_ms": 15.0, "p90_ms": 15.0,
                                  "max_ms": 15.0}


def test_no_payload_no_samples(tmp_path: Path) -> None:
    frames = [c2s(0, "S", 1000, 0), s2c(10, "SA", 5000, 1001), c2s(15, "A", 1001, 5001),
              *closing(20, 1001, 5001)]
    (r,) = records(write(tmp_path / "empty.pcap", frames))
    assert r["rtt"] == {"client": NO_SAMPLES, "server": NO_SAMPLES}
    assert r["throughput"]["server"] == {"duration_ms": 0.0, "bits_per_s": None}


def test_csv_and_jsonl_carry_the_same_rtt(tmp_path: Path) -> None:
    path = write(tmp_path / "karn.pcap", karn_capture())
    (row,) = csv.DictReader(io.StringIO(records(path, "csv")))
    assert [row[f"rtt.server.{k}"] for k in ("samples", "p50_ms", "p90_ms", "max_ms")] == \
        ["2", "12.0", "20.0", "20.0"]
    assert row["throughput.server.bits_per_s"] == "13333"
    assert row["throughput.client.bits_per_s"] == ""
    assert row["throughput.server.duration_ms"] == "240.0"
    result = CliRunner().invoke(cli, ["analyze", "-q", "-f", "jsonl", str(path)])
    line = json.loads(result.stdout)
    (document,) = records(path)
    assert (line["rtt"], line["throughput"]) == (document["rtt"], document["throughput"])


def nearest_rank(values: list[int], p: int) -> int | None:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1] if ordered else None


def tshark_data_rtts(path: Path) -> dict[int, list[int]]:
    """tcp.analysis.ack_rtt (microseconds) of the ACKs of data segments that were not
    retransmissions, by the data sender's port."""
    fields = ["tcp.srcport", "tcp.len", "tcp.analysis.acks_frame", "tcp.analysis.ack_rtt",
              "tcp.analysis.retransmission", "frame.number"]
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields",
                          *[a for f in fields for a in ("-e", f)]],
                         capture_output=True, text=True, check=True).stdout
    frames: dict[str, tuple[int, int, bool]] = {}
    rtts: dict[int, list[int]] = {}
    for line in out.splitlines():
        port, length, acked, rtt, retransmission, number = line.split("\t")
        frames[number] = (int(port), int(length or 0), retransmission != "")
        if rtt and frames[acked][1] > 0 and not frames[acked][2]:
            rtts.setdefault(frames[acked][0], []).append(round(float(rtt) * 1e6))
    return rtts


LINUX = [*sorted((ROOT / "pcaps" / "linux").glob("*.pcap")),
         ROOT / "pcaps" / "transfer" / "download.pcap"]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_samples_agree_with_tsharks_ack_rtt_on_linux_captures() -> None:
    """Per direction: (samples, p50, p90, max) in microseconds, ours and tshark's (the
    ack_rtt of data segments' ACKs). Identical but for two known differences."""
    differ = {}
    for path in LINUX:
        tshark = tshark_data_rtts(path)
        result = CliRunner().invoke(cli, ["analyze", "-q", "-f", "jsonl", str(path)])
        for line in result.stdout.splitlines():
            r = json.loads(line)
            for side in ("client", "server"):
                o = r["rtt"][side]
                ours = (o["samples"], *(None if o[k] is None else round(o[k] * 1000)
                                        for k in ("p50_ms", "p90_ms", "max_ms")))
                t = tshark.get(r[side]["port"], [])
                theirs = (len(t), nearest_rank(t, 50), nearest_rank(t, 90), max(t, default=None))
                if ours != theirs:
                    differ[(path.name, side)] = (ours, theirs)
    assert len(LINUX) * 2 - len(differ) == 25  # directions where all four agree
    assert differ == {
        # the capture starts mid-connection: its first segment each way has no SND.NXT
        # before it to tell new data, so we do not time it; tshark does
        ("midstream.pcap", "client"): ((10, 123, 162, 210), (11, 123, 162, 210)),
        ("midstream.pcap", "server"): ((10, 14, 17, 39), (11, 14, 17, 39)),
        # bulk data: we time one segment a round trip (BSD), tshark every ACK that ends on
        # a segment, timed from that (last) segment: p50 1 us apart
        ("download.pcap", "server"): ((91, 4, 10, 200), (114, 5, 7, 116)),
    }


def test_the_summary_spreads_each_sides_median_over_the_connections(tmp_path: Path) -> None:
    frames = karn_capture()
    # the same exchange 10 s later on another port, every interval twice as long
    start = frames[0].time
    later = [f.copy() for f in frames]
    for f in later:
        f["TCP"].sport, f["TCP"].dport = (41000, 80) if f["TCP"].sport == 40000 else (80, 41000)
        f.time = start + 10 + 2 * (f.time - start)
    result = CliRunner().invoke(cli, ["analyze", "-q", "-f", "json",
                                      str(write(tmp_path / "two.pcap", frames + later))])
    document = json.loads(result.stdout)
    assert [r["rtt"]["server"]["p50_ms"] for r in document["connections"]] == [12.0, 24.0]
    assert document["summary"]["rtt_p50_ms"] == {
        "client": {"count": 2, "p50": 10.0, "p90": 20.0, "p99": 20.0, "max": 20.0},
        "server": {"count": 2, "p50": 12.0, "p90": 24.0, "p99": 24.0, "max": 24.0},
    }
