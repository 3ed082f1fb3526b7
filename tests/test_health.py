"""Connection health (issue 16), part 1: handshake rounding, capture duplicates, negotiated
options, roles from evidence, time sanity. Each capture is crafted here with scapy, so the
test says exactly what is on the wire. The checks run the command line (click's runner), but
the comparison with tshark over the corpora, which calls the engine directly."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import analyze
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

from tcptrace.commands import cli

T0 = Decimal(1_700_000_000)
CLIENT, SERVER = ("10.0.0.1", 40000), ("10.0.0.2", 80)
CLIENT6, SERVER6 = ("fd00::1", 40000), ("fd00::2", 80)


def seg(t: Decimal, src: tuple[str, int], dst: tuple[str, int], flags: str, seq: int,
        ack: int = 0, data: bytes = b"", ip_id: int = 1, options: list[Any] | None = None,
        window: int = 64240) -> Packet:
    """One Ethernet/IP/TCP frame at T0 + t seconds (IPv6 when the address has a colon)."""
    ip: Packet = (IPv6(src=src[0], dst=dst[0]) if ":" in src[0]
                  else IP(src=src[0], dst=dst[0], id=ip_id))
    tcp = TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq, ack=ack, window=window,
              options=options or [])
    frame: Packet = Ether() / ip / tcp
    if data:
        frame = frame / Raw(data)
    frame.time = T0 + t
    return frame


def conversation(c: tuple[str, int] = CLIENT, s: tuple[str, int] = SERVER) -> list[Packet]:
    """Handshake (10 ms, then 5 ms), a request and its answer, and the client's close; the
    IP IDs count up per host as a real stack's do."""
    ms = Decimal("0.001")
    return [
        seg(0 * ms, c, s, "S", 1000, ip_id=100),
        seg(10 * ms, s, c, "SA", 5000, 1001, ip_id=200),
        seg(15 * ms, c, s, "A", 1001, 5001, ip_id=101),
        seg(16 * ms, c, s, "PA", 1001, 5001, b"GET / HTTP/1.1\r\n\r\n", ip_id=102),
        seg(30 * ms, s, c, "PA", 5001, 1019, b"HTTP/1.1 200 OK\r\n\r\n", ip_id=201),
        seg(31 * ms, c, s, "FA", 1019, 5020, ip_id=103),
        seg(40 * ms, s, c, "FA", 5020, 1020, ip_id=202),
        seg(41 * ms, c, s, "A", 1020, 5021, ip_id=104),
    ]


def write(path: Path, frames: list[Packet]) -> Path:
    wrpcap(str(path), frames, nano=True)
    return path


def run(*args: str) -> dict[str, Any]:
    """`tcptrace analyze -f json ARGS`: the document."""
    result = CliRunner().invoke(cli, ["analyze", "-q", "-f", "json", *args])
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def only(document: dict[str, Any]) -> dict[str, Any]:
    (record,) = document["connections"]
    return record


# ---- 1. setup_ms is never below rtt_ms


def test_rtt_is_rounded_once_so_setup_is_never_below_it(tmp_path: Path) -> None:
    """Legs of 0.6 µs each: rounded apart to 0.001 ms each (sum 0.002), while the whole
    handshake took 1.2 µs (0.001). rtt_ms is rounded once from nanoseconds, as setup_ms."""
    ns = Decimal("0.000000001")
    frames = [seg(0 * ns, CLIENT, SERVER, "S", 1000),
              seg(600 * ns, SERVER, CLIENT, "SA", 5000, 1001),
              seg(1200 * ns, CLIENT, SERVER, "A", 1001, 5001)]
    h = only(run(str(write(tmp_path / "fast.pcap", frames))))["handshake"]
    assert (h["syn_to_synack_ms"], h["synack_to_ack_ms"]) == (0.001, 0.001)
    assert (h["rtt_ms"], h["setup_ms"]) == (0.001, 0.001)


# ---- 2. capture duplicates


def span(frames: list[Packet], lag: str = "0.000005") -> list[Packet]:
    """Every frame captured twice, `lag` seconds apart (a SPAN port mirroring both ways)."""
    doubled = []
    for frame in frames:
        copy = frame.copy()
        copy.time = frame.time + Decimal(lag)
        doubled += [frame, copy]
    return doubled


def duplicates_warning(count: int) -> str:
    return (
        f"duplicates: {count} segments captured twice (the same IP ID, sequence and acknowledgment "
        "numbers, flags, window and checksum, moments apart: a SPAN port, -i any on a "
        "forwarding host, or one connection in two merged files): each copy is counted in "
        "duplicates and left out of every other count")


def test_a_frame_captured_twice_is_a_duplicate_not_a_retransmission(tmp_path: Path) -> None:
    clean = only(run(str(write(tmp_path / "clean.pcap", conversation()))))
    document = run(str(write(tmp_path / "span.pcap", span(conversation()))))
    r = only(document)
    assert r["duplicates"] == {"client": 5, "server": 3}
    assert document["source"]["warnings"] == [duplicates_warning(8)]
    assert document["source"]["packets"] == 16
    # everything else as in the capture seen once; the SYN/ACK leg starts at the SYN's
    # copy, the ACK leg at the SYN/ACK's: 5 µs less each
    assert r["handshake"]["syn_to_synack_ms"] == 9.995
    assert r["handshake"]["synack_to_ack_ms"] == 4.995
    assert r["handshake"]["rtt_ms"] == 14.99
    assert r["handshake"]["matched_by"] == "unique" and r["handshake"]["ambiguity"] is None
    for key in ("packets", "bytes", "unique_bytes", "retransmitted_bytes", "gap_bytes",
                "anomalies", "outcome", "final_state", "reuse", "close"):
        assert r[key] == clean[key], key
    assert clean["duplicates"] == {"client": 0, "server": 0}
    assert clean["handshake"]["rtt_ms"] == 15.0


def test_one_connection_in_two_files_merged_is_one_connection(tmp_path: Path) -> None:
    path = str(write(tmp_path / "one.pcap", conversation()))
    document = run(path, path)
    r = only(document)
    assert r["duplicates"] == {"client": 5, "server": 3}
    assert (r["packets"], r["retransmitted_bytes"]) == (
        {"client": 5, "server": 3}, {"client": 0, "server": 0})
    assert r["handshake"]["syn_retransmits"] == 0
    assert r["handshake"]["rtt_ms"] == 15.0
    assert document["source"]["warnings"] == [duplicates_warning(8)]


def test_a_retransmission_has_another_ip_id(tmp_path: Path) -> None:
    """The same segment again 200 ms later with the next IP ID: a retransmission."""
    frames = conversation()
    again = frames[3].copy()
    again[IP].id = 105
    again.time = frames[3].time + Decimal("0.2")
    frames = sorted([*frames, again], key=lambda f: f.time)
    document = run(str(write(tmp_path / "rto.pcap", frames)))
    r = only(document)
    assert r["duplicates"] == {"client": 0, "server": 0}
    assert r["retransmitted_bytes"] == {"client": 18, "server": 0}
    assert document["source"]["warnings"] == []


def test_ipv6_copies_within_a_millisecond_and_bare_acks_counted(tmp_path: Path) -> None:
    """IPv6 has no ID: a copy must follow within 1 ms, and a bare ACK is never a copy."""
    document = run(str(write(tmp_path / "v6.pcap", span(conversation(CLIENT6, SERVER6)))))
    r = only(document)
    # SYN, request, FIN from the client; SYN/ACK, answer, FIN from the server
    assert r["duplicates"] == {"client": 3, "server": 3}
    assert r["packets"] == {"client": 7, "server": 3}
    assert r["retransmitted_bytes"] == {"client": 0, "server": 0}
    assert r["handshake"]["rtt_ms"] == 14.99
    late = run(str(write(tmp_path / "v6late.pcap",
                         span(conversation(CLIENT6, SERVER6), lag="0.002"))))
    assert only(late)["duplicates"] == {"client": 0, "server": 0}


def test_duplicates_are_the_same_with_jobs(tmp_path: Path) -> None:
    path = str(write(tmp_path / "span.pcap", span(conversation())))
    assert run("--jobs", "2", path) == run(path)


def test_duplicates_in_jsonl_and_csv(tmp_path: Path) -> None:
    path = str(write(tmp_path / "span.pcap", span(conversation())))
    lines = CliRunner().invoke(cli, ["analyze", "-q", "-f", "jsonl", path]).stdout
    assert json.loads(lines.splitlines()[0])["duplicates"] == {"client": 5, "server": 3}
    table = CliRunner().invoke(cli, ["analyze", "-q", "-f", "csv", path]).stdout
    header, row = table.splitlines()[:2]
    (cells,) = csv.DictReader([header, row])
    assert (cells["duplicates.client"], cells["duplicates.server"]) == ("5", "3")


@pytest.mark.parametrize("lag", ["0.000005", "0.005"])
def test_syn_seen_twice_keeps_the_handshake(tmp_path: Path, lag: str) -> None:
    """Only the SYN twice (same ID), 5 µs or 5 ms apart: not a retransmitted SYN, and the
    handshake is timed from the copy."""
    frames = conversation()
    copy = frames[0].copy()
    copy.time = frames[0].time + Decimal(lag)
    r = only(run(str(write(tmp_path / "syn2.pcap", [frames[0], copy, *frames[1:]]))))
    h = r["handshake"]
    assert (h["syn_retransmits"], h["ambiguity"]) == (0, None)
    assert r["duplicates"] == {"client": 1, "server": 0}
    # the SYN/ACK leg from the copy; setup, what the application waited, from the first
    leg = 10 - float(lag) * 1000
    assert (h["syn_to_synack_ms"], h["rtt_ms"], h["setup_ms"]) == (leg, leg + 5, 15.0)


# ---- 3. negotiated options

CLIENT_OPTIONS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (100, 0)), ("NOP", None),
                  ("WScale", 7), ("TFO", b"\x01\x02\x03\x04\x05\x06\x07\x08")]
SERVER_OPTIONS = [("MSS", 1400), ("NOP", None), ("WScale", 9), ("SAckOK", b"")]


def fast_open(tmp_path: Path) -> Path:
    """A Fast Open connection with ECN: the SYN carries a cookie and 5 bytes, ECE and CWR;
    the SYN/ACK answers ECE, without timestamps."""
    ms = Decimal("0.001")
    return write(tmp_path / "tfo.pcap", [
        seg(0 * ms, CLIENT, SERVER, "SEC", 1000, data=b"hello", options=CLIENT_OPTIONS),
        seg(10 * ms, SERVER, CLIENT, "SAE", 5000, 1006, options=SERVER_OPTIONS),
        seg(15 * ms, CLIENT, SERVER, "A", 1006, 5001, ip_id=2),
    ])


def test_options_offered_by_each_side(tmp_path: Path) -> None:
    r = only(run(str(fast_open(tmp_path))))
    assert r["options"] == {
        "client": {"mss": 1460, "wscale": 7, "sack_permitted": True, "timestamps": True,
                   "tfo": "cookie", "data_bytes": 5, "ecn": True, "rewritten": []},
        "server": {"mss": 1400, "wscale": 9, "sack_permitted": True, "timestamps": False,
                   "tfo": None, "data_bytes": 0, "ecn": True, "rewritten": []}}


def test_options_in_jsonl_and_csv(tmp_path: Path) -> None:
    path = str(fast_open(tmp_path))
    lines = CliRunner().invoke(cli, ["analyze", "-q", "-f", "jsonl", path]).stdout
    assert json.loads(lines)["options"]["server"]["wscale"] == 9
    table = CliRunner().invoke(cli, ["analyze", "-q", "-f", "csv", path]).stdout
    (cells,) = csv.DictReader(table.splitlines())
    assert {k: v for k, v in cells.items() if k.startswith("options.client.")} == {
        "options.client.mss": "1460", "options.client.wscale": "7",
        "options.client.sack_permitted": "True", "options.client.timestamps": "True",
        "options.client.tfo": "cookie", "options.client.data_bytes": "5",
        "options.client.ecn": "True", "options.client.rewritten": "[]"}


def test_a_midstream_capture_has_no_options(tmp_path: Path) -> None:
    frames = conversation()[3:]
    r = only(run(str(write(tmp_path / "mid.pcap", frames))))
    assert r["options"] == {"client": None, "server": None}


def test_a_syn_clamped_between_two_capture_points_is_rewritten(tmp_path: Path) -> None:
    """The same SYN (same IP ID and sequence number) seen before and after a firewall that
    clamps the MSS to 1360: one SYN, a duplicate, and the MSS named as rewritten."""
    frames = conversation()
    clamped = seg(Decimal("0.0002"), CLIENT, SERVER, "S", 1000, ip_id=100,
                  options=[("MSS", 1360)])
    first = seg(Decimal(0), CLIENT, SERVER, "S", 1000, ip_id=100, options=[("MSS", 1460)])
    r = only(run(str(write(tmp_path / "clamp.pcap", [first, clamped, *frames[1:]]))))
    assert r["options"]["client"]["mss"] == 1460
    assert r["options"]["client"]["rewritten"] == ["mss"]
    assert r["duplicates"] == {"client": 1, "server": 0}
    assert r["handshake"]["syn_retransmits"] == 0


def _tshark_syn_options(capture: Path) -> dict[tuple[str, int, str, int], tuple[Any, ...]]:
    """The first SYN (no ACK) of each 4-tuple, as tshark reads its options: (mss, wscale
    shift, SACK permitted, timestamps)."""
    fields = ["ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst", "tcp.dstport",
              "tcp.options.mss_val", "tcp.options.wscale.shift", "tcp.options.sack_perm",
              "tcp.options.timestamp.tsval"]
    out = subprocess.run(
        ["tshark", "-n", "-r", str(capture), "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0",
         "-T", "fields", "-E", "occurrence=l", *[a for f in fields for a in ("-e", f)]],
        capture_output=True, text=True, check=False).stdout
    first: dict[tuple[str, int, str, int], tuple[Any, ...]] = {}
    for line in out.splitlines():
        v4s, v6s, sport, v4d, v6d, dport, mss, shift, sack, tsval = line.split("\t")
        if not sport.isdigit() or not dport.isdigit():
            continue
        key = (v6s or v4s, int(sport), v6d or v4d, int(dport))
        first.setdefault(key, (int(mss) if mss else None, int(shift) if shift else None,
                               bool(sack), bool(tsval)))
    return first


def test_client_options_agree_with_tshark(shared: Path) -> None:
    """Every first SYN of pcaps/ and the corpora: our client options against tshark's."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    root = Path(__file__).resolve().parent.parent
    captures = sorted([*(root / "pcaps").rglob("*.pcap"), *(root / "pcaps").rglob("*.pcapng"),
                       *(shared / "corpus").rglob("*.pcap"),
                       *(shared / "corpus").rglob("*.pcapng")])
    compared, differ = 0, []
    for capture in captures:
        if capture.stat().st_size > 20_000_000:
            continue
        try:
            records, _ = analyze(capture)
        except Exception:  # unreadable on purpose (the corpora's malformed captures)
            continue
        ours = {}
        for r in records:
            key = (r["client"]["ip"], r["client"]["port"], r["server"]["ip"], r["server"]["port"])
            if r["role_rule"] == "syn" and not r["encapsulation"] and key not in ours:
                o = r["options"]["client"]
                ours[key] = (o["mss"], o["wscale"], o["sack_permitted"], o["timestamps"])
        if not ours:
            continue  # tshark only where there is something to compare
        theirs = _tshark_syn_options(capture)
        for key, offered in ours.items():
            if key in theirs:
                compared += 1
                if offered != theirs[key]:
                    differ.append((capture.name, key, offered, theirs[key]))
    assert compared > 300
    assert differ == []


# ---- 4. roles from evidence

LOW, HIGH = ("10.0.0.1", 1000), ("10.0.0.2", 8080)  # the port rule takes 1000 for the server


def midstream(first_payload_from_low: bool, line: bytes) -> list[Packet]:
    """A capture joined mid-connection: a bare ACK from the high port, then the first payload
    (`line`), from the low port or the high one, then the other side's payload."""
    ms = Decimal("0.001")
    a, b = (LOW, HIGH) if first_payload_from_low else (HIGH, LOW)
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" if line.startswith(b"GET") else (
        b"GET / HTTP/1.1\r\n\r\n")
    return [
        seg(0 * ms, HIGH, LOW, "A", 7000, 3000, ip_id=10),
        seg(1 * ms, a, b, "PA", 3000 if a == LOW else 7000, 7000 if a == LOW else 3000, line,
            ip_id=20),
        seg(2 * ms, b, a, "PA", 7000 if a == LOW else 3000,
            (3000 if a == LOW else 7000) + len(line), answer, ip_id=30),
    ]


def endpoints(r: dict[str, Any]) -> tuple[int, int, str]:
    return r["client"]["port"], r["server"]["port"], r["role_rule"]


def test_a_request_line_marks_the_client_before_the_ports(tmp_path: Path) -> None:
    path = write(tmp_path / "req.pcap", midstream(True, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
    r = only(run(str(path)))
    assert endpoints(r) == (1000, 8080, "request")
    assert (r["reuse"]["protocol"], r["reuse"]["requests"], r["reuse"]["responses"]) == (
        "http/1.1", 1, 1)
    assert r["packets"] == {"client": 1, "server": 2}
    assert r["bytes"] == {"client": 27, "server": 38}
    assert r["final_state"] == {"client": "ESTABLISHED", "server": "ESTABLISHED"}
    assert run("--jobs", "2", str(path)) == run(str(path))
    # Zeek's view is its own: the same originator (the low port's host, now our client)
    # as when the payload is no evidence and our roles stay by port
    assert only(run("--zeek", str(path)))["zeek"]["orig"] == "client"
    plain = write(tmp_path / "plain.pcap", midstream(True, b"xet / HTTP/1.1\r\nHost: a\r\n\r\n"))
    assert only(run("--zeek", str(plain)))["zeek"]["orig"] == "server"

    def conn_log_ids(capture: Path) -> list[str]:
        out = CliRunner().invoke(cli, ["analyze", "-q", "-f", "zeek", str(capture)]).stdout
        (line,) = [row for row in out.splitlines() if not row.startswith("#")]
        return line.split("\t")[2:6]

    assert conn_log_ids(path) == conn_log_ids(plain) == ["10.0.0.1", "1000", "10.0.0.2", "8080"]


def test_a_status_line_marks_the_server(tmp_path: Path) -> None:
    path = write(tmp_path / "resp.pcap", midstream(False, b"HTTP/1.1 200 OK\r\n\r\n"))
    r = only(run(str(path)))
    assert endpoints(r) == (1000, 8080, "response")


def test_evidence_agreeing_with_the_ports_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "agree.pcap", midstream(False, b"GET / HTTP/1.1\r\n\r\n"))
    assert endpoints(only(run(str(path)))) == (8080, 1000, "request")


def test_without_evidence_the_port_rule_stays(tmp_path: Path) -> None:
    path = write(tmp_path / "none.pcap", midstream(True, b"\x16\x03\x01\x00\x05hello\n"))
    assert endpoints(only(run(str(path)))) == (8080, 1000, "port")


# ---- 5. time sanity

YEARS_46 = Decimal(46 * 365 * 86_400)
LEAPT = "a timestamp leapt more than a day within the handshake (see source.warnings)"


def time_warning(kind: str, path: Path, frame: int, seconds: str, direction: str,
                 threshold: str) -> str:
    return (f"{kind}: {path}, frame {frame}: timestamp {seconds} s {direction} the frame before "
            f"({threshold}; 1 time in all): a damaged timestamp, a clock set while capturing, "
            "or captures of different times; each connection's clock never goes back, and a "
            "handshake time across such a step is left null")


def test_a_synack_46_years_ahead_is_warned_and_measures_nothing(tmp_path: Path) -> None:
    frames = conversation()
    frames[1].time += YEARS_46
    path = write(tmp_path / "leap.pcap", frames)
    document = run(str(path))
    assert document["source"]["warnings"] == [
        time_warning("time_backwards", path, 3, "1450655999.995", "earlier than",
                     "more than a second"),
        time_warning("time_jump", path, 2, "1450656000.01", "later than", "more than a day"),
    ]
    r = only(document)
    h = r["handshake"]
    assert (h["syn_to_synack_ms"], h["synack_to_ack_ms"], h["rtt_ms"], h["setup_ms"]) == (
        None, None, None, None)
    assert (h["complete"], h["ambiguity"]) == (True, LEAPT)
    # the leapt SYN/ACK counts for the SYN's time; the rest of the connection is unharmed
    assert r["duration_ms"] == 41.0
    assert r["states"]["server"][0] == {"ts": float(T0), "state": "SYN_RCVD"}
    assert r["outcome"] == "CLOSED"


def test_time_going_back_gives_no_negative_duration(tmp_path: Path) -> None:
    """The server's FIN stamped 10 s before everything else: counted at the time of the
    segment before it."""
    frames = conversation()
    frames[6].time -= Decimal(10)
    path = write(tmp_path / "back.pcap", frames)
    document = run(str(path))
    assert [w.split(":")[0] for w in document["source"]["warnings"]] == ["time_backwards"]
    r = only(document)
    assert r["duration_ms"] == 41.0
    assert r["close"]["fin_ts"]["server"] == float(T0 + Decimal("0.031"))
    assert all(later["ts"] >= earlier["ts"] for side in ("client", "server")
               for earlier, later in pairwise(r["states"][side]))
    assert run("--jobs", "2", str(path)) == document
