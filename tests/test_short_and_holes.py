"""Connection health (issue 16), part 6: frames shorter than their IP length, and holes that
nothing acknowledges. At the command line (click's runner) on the crafted captures
(pcaps/craft.py: short_frame.pcap, one_sided_hole.pcap) and on captures built here with
scapy; tshark, when installed, confirms what is on the wire."""
from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import CRAFTED
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import rdpcap, wrpcap

from tcptrace.commands import cli

SHORT = CRAFTED / "short_frame.pcap"
ONE_SIDED = CRAFTED / "one_sided_hole.pcap"
ISN = 1_000_000_000
# (tshark -r short_frame.pcap: frame 4 is the short one, frame 8 the one cut by the snap
# length, "Packet size limited during capture")
WARNING = ("short_frame: {path}: 1 frame(s) shorter than their IP length says (not cut by "
           "the snap length) (first: frame 4): only the payload present counted; short_frames "
           "in the records names their connections")


def invoke(*args: str) -> tuple[str, str]:
    """`tcptrace analyze ARGS`: (stdout, stderr)."""
    result = CliRunner().invoke(cli, ["analyze", *args])
    assert result.exit_code == 0, result.output
    return result.stdout, result.stderr


def document(*args: str) -> dict[str, Any]:
    out, _ = invoke("-q", "-f", "json", *args)
    parsed: dict[str, Any] = json.loads(out)
    return parsed


def by_port(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {r["client"]["port"]: r for r in doc["connections"]}


def counts(r: dict[str, Any], side: str = "client") -> dict[str, int]:
    keys = ("packets", "bytes", "unique_bytes", "retransmitted_bytes", "gap_bytes",
            "short_frames")
    return {k: r[k][side] for k in keys}


# ---- frames shorter than their IP length


def test_a_short_frame_counts_only_the_payload_it_holds() -> None:
    doc = document(str(SHORT))
    short, cut = by_port(doc)[40012], by_port(doc)[40013]
    assert counts(short) == {"packets": 3, "bytes": 50, "unique_bytes": 50,
                             "retransmitted_bytes": 0, "gap_bytes": 0, "short_frames": 1}
    assert short["short_frames"] == {"client": 1, "server": 0}
    # cut by the snap length: the 100 bytes were on the wire, and are counted (as before)
    assert counts(cut) == {"packets": 3, "bytes": 100, "unique_bytes": 100,
                           "retransmitted_bytes": 0, "gap_bytes": 0, "short_frames": 0}
    assert doc["source"]["skipped"] == {"short_frame": 1, "snaplen_cut": 1}
    assert doc["source"]["warnings"] == [
        f"snaplen_cut: {SHORT}: 1 segment(s) cut by the snap length (first: frame 8); analyzed "
        "without the bytes beyond the cut",
        WARNING.format(path=SHORT),
    ]


def test_the_warning_is_given_once_on_stderr() -> None:
    _, err = invoke("-f", "jsonl", str(SHORT), str(SHORT))
    lines = [line for line in err.splitlines() if "warning: short_frame:" in line]
    # two files: counted over the run, the first named with its file (the first given)
    assert lines == ["tcptrace: warning: short_frame: 2 frame(s) shorter than their IP length "
                     f"says (not cut by the snap length) (first: {SHORT} frame 4): only the "
                     "payload present counted; short_frames in the records names their "
                     "connections"]


def test_short_frames_in_every_format() -> None:
    out, _ = invoke("-q", "-f", "csv", str(SHORT))
    rows = {row["client.port"]: row for row in csv.DictReader(io.StringIO(out))}
    assert (rows["40012"]["short_frames.client"], rows["40012"]["short_frames.server"]) == (
        "1", "0")
    assert rows["40013"]["short_frames.client"] == "0"
    out, _ = invoke("-q", "-f", "jsonl", str(SHORT))
    assert [json.loads(line)["short_frames"] for line in out.splitlines()] == [
        {"client": 1, "server": 0}, {"client": 0, "server": 0}]


def test_a_short_frame_is_not_a_bad_checksum() -> None:
    """Its checksum covers bytes that are not there: not verifiable, kept (as a cut one)."""
    doc = document("--verify-checksums", str(SHORT))
    assert counts(by_port(doc)[40012])["bytes"] == 50
    assert "bad_checksum" not in doc["source"]["skipped"]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_reads_the_same_lengths() -> None:
    fields = subprocess.run(
        ["tshark", "-r", str(SHORT), "-Y", "tcp.len > 0", "-T", "fields", "-e", "tcp.srcport",
         "-e", "tcp.len", "-e", "_ws.expert.message"],
        capture_output=True, text=True, check=True).stdout.splitlines()
    rows = [line.split("\t") for line in fields]
    assert [(port, length) for port, length, *_ in rows] == [("40012", "50"), ("40013", "100")]
    assert "IPv4 total length exceeds packet length (90 bytes)" in rows[0][2]


# ---- holes that nothing acknowledges


def frame(t: float, flags: str, seq: int, ack: int = 0, data: bytes = b"",
          server: bool = False) -> Packet:
    ends = (("10.0.0.1", 40000), ("10.0.0.2", 80))
    (src, sport), (dst, dport) = ends[::-1] if server else ends
    p: Packet = Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags,
                                                       seq=seq, ack=ack)
    if data:
        p = p / Raw(load=data)
    p.time = 1_700_000_000 + t
    return p


def hole_capture(path: Path, acked: bool, server_side: bool) -> Path:
    """Client data ISN+1..ISN+601 in 100-byte segments, the 3rd never captured."""
    frames = [frame(0, "S", ISN)]
    if server_side:
        frames.append(frame(0.005, "SA", 5000, ISN + 1, server=True))
    for i in range(6):
        if i != 2:
            frames.append(frame(0.01 + i * 0.001, "PA", ISN + 1 + 100 * i, 5001, b"y" * 100))
    if server_side:
        ack = ISN + 601 if acked else ISN + 201
        frames.append(frame(0.02, "A", 5001, ack, server=True))
    wrpcap(str(path), frames)
    return path


def test_a_one_sided_hole_is_a_gap_at_the_connections_end() -> None:
    r = document(str(ONE_SIDED))["connections"][0]
    assert counts(r) == {"packets": 6, "bytes": 500, "unique_bytes": 600,
                         "retransmitted_bytes": 0, "gap_bytes": 100, "short_frames": 0}
    assert r["retransmissions"]["client"]["lost_before_capture"] == {"segments": 1,
                                                                     "bytes": 100}
    assert r["outcome"] == "OPEN"


def test_a_hole_counts_alike_whether_acknowledged_or_not(tmp_path: Path) -> None:
    """The sequence space and the hole are the same whatever the capture shows of the
    receiver: one-sided, two-sided with the hole never acknowledged, or acknowledged."""
    seen = {}
    for name, acked, server_side in [("one_sided", False, False),
                                     ("unacked", False, True), ("acked", True, True)]:
        r = document(str(hole_capture(tmp_path / f"{name}.pcap", acked, server_side)))
        (record,) = r["connections"]
        seen[name] = (counts(record),
                      record["retransmissions"]["client"]["lost_before_capture"])
    expected = ({"packets": 6, "bytes": 500, "unique_bytes": 600, "retransmitted_bytes": 0,
                 "gap_bytes": 100, "short_frames": 0}, {"segments": 1, "bytes": 100})
    assert seen == {"one_sided": expected, "unacked": expected, "acked": expected}


def test_a_hole_filled_later_is_no_gap(tmp_path: Path) -> None:
    """The held data waits for the fill: a retransmission that fills the hole before the end
    leaves no gap (lost before the capture point, filled)."""
    path = hole_capture(tmp_path / "filled.pcap", False, False)
    frames = [*rdpcap(str(path)), frame(0.5, "PA", ISN + 201, 5001, b"y" * 100)]
    wrpcap(str(path), frames)
    r = document(str(path))["connections"][0]
    assert counts(r) == {"packets": 7, "bytes": 600, "unique_bytes": 600,
                         "retransmitted_bytes": 0, "gap_bytes": 0, "short_frames": 0}


def test_the_issues_captures_as_reported(tmp_path: Path) -> None:
    """Issue 16's two reproductions, written as its script writes them."""
    short = [frame(0, "S", 1000), frame(0.01, "SA", 5000, 1001, server=True),
             frame(0.02, "A", 1001, 5001)]
    raw = bytes(frame(0.03, "PA", 1001, 5001, b"x" * 100))[:-50]
    cut = Ether(raw)
    cut.time = 1_700_000_000.03
    wrpcap(str(tmp_path / "short.pcap"), [*short, cut])
    r = document(str(tmp_path / "short.pcap"))["connections"][0]
    assert (r["bytes"]["client"], r["short_frames"]["client"]) == (50, 1)
