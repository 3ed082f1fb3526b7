"""tcptrace against the flow records Suricata's own test suite expects (suricata-verify).

../shared/corpus/suricata/ (see its README) holds 22 suricata-verify tests whose eve `flow`
checks name a final TCP session state (`tcp.state`), most with per-direction packet and byte
counts and TCP flags. Every TCP check is compared with tcptrace's records: the session state
through the mapping in docs/zeek.md ("Suricata cross-check"), packets, bytes and flags per
direction. Checks without a 5-tuple are count checks ("exactly N flows match"), compared as
counts. The agreement is printed per field (`pytest -s`). Known differences are listed in
KNOWN, each explained in docs/zeek.md; any other disagreement fails.
"""

from __future__ import annotations

import ipaddress
import json
from collections import Counter, defaultdict
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from conftest import Allowlist

from tcptrace import _native, native
from tcptrace.defaults import DEFAULT_MSL_S

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SURICATA = SHARED / "corpus" / "suricata"

# (test id, Suricata flow "src:port>dst:port" or "*" (count checks), field) -> docs anchor
KNOWN: dict[tuple[str, str, str], str] = {
    # ICMP "need to frag" errors quoting the flow's segments count in Suricata's TCP flow
    ("smtp-eve", "10.10.1.4:1470>74.53.140.153:25", "pkts_toclient"): "icmp-in-flow",
    # the same 4 ICMP frames, plus 6 bytes of Ethernet padding on 14 short frames
    ("smtp-eve", "10.10.1.4:1470>74.53.140.153:25", "bytes_toclient"): "icmp-in-flow",
    # a RST captured twice, 14 us apart (IP ID 0): Suricata counts the copy, we count it in
    # `duplicates` and nowhere else
    ("bug-78-uricontent", "192.168.2.3:37010>208.69.36.231:80", "pkts_toserver"): "duplicate",
    ("bug-78-uricontent", "192.168.2.3:37010>208.69.36.231:80", "bytes_toserver"): "duplicate",
}

# app_proto of a count check without a 5-tuple -> the server ports that stand for it here
APP_PORTS = {"smb": frozenset({139, 445})}

FIN_SENT = {"FIN_WAIT_1", "FIN_WAIT_2", "CLOSING", "LAST_ACK", "TIME_WAIT"}
DONE = {"CLOSED", "TIME_WAIT"}


# ---- Suricata's one session state as a predicate over our two endpoints
#
# Suricata names its session state from the server's side (stream-tcp.c): a client FIN moves
# ESTABLISHED to close_wait, a server FIN to fin_wait1; the peer's FIN then gives last_ack or
# time_wait/closing, and the last ACK (or a valid RST) closed. `c`/`s` are Suricata's client
# (the flow's src, the first packet's sender) and server, as our final states; `fin` says
# which of them sent a FIN and `first` which FIN came first in capture order.

class View:
    def __init__(self, record: dict[str, Any], ts_side: str) -> None:
        tc_side = "server" if ts_side == "client" else "client"
        self.c = record["final_state"][ts_side]
        self.s = record["final_state"][tc_side]
        fin_ts = record["close"]["fin_ts"]
        self.c_fin, self.s_fin = fin_ts[ts_side], fin_ts[tc_side]
        self.changed = bool(record["states"]["client"] or record["states"]["server"])

    @property
    def client_first(self) -> bool:
        return self.c_fin is not None and (self.s_fin is None or self.c_fin <= self.s_fin)

    @property
    def server_first(self) -> bool:
        return self.s_fin is not None and (self.c_fin is None or self.s_fin < self.c_fin)


STATES: dict[str, Callable[[View], bool]] = {
    "none": lambda v: not v.changed,
    "syn_sent": lambda v: v.c == "SYN_SENT" and v.s == "CLOSED",
    "syn_recv": lambda v: v.s == "SYN_RCVD",
    "established": lambda v: v.c == "ESTABLISHED" and v.s == "ESTABLISHED",
    "close_wait": lambda v: v.c in ("FIN_WAIT_1", "FIN_WAIT_2") and v.s_fin is None,
    "fin_wait1": lambda v: v.s == "FIN_WAIT_1" and v.c_fin is None and v.c == "ESTABLISHED",
    "fin_wait2": lambda v: v.s == "FIN_WAIT_2" and v.c == "CLOSE_WAIT",
    "last_ack": lambda v: (v.client_first and v.s_fin is not None
                           and v.c in ("FIN_WAIT_1", "FIN_WAIT_2") and v.s in FIN_SENT),
    "closing": lambda v: (v.server_first and v.c_fin is not None
                          and v.c in ("FIN_WAIT_1", "CLOSING")
                          and v.s in ("FIN_WAIT_1", "CLOSING")),
    "time_wait": lambda v: (v.server_first and v.c_fin is not None
                            and v.s in ("FIN_WAIT_1", "FIN_WAIT_2") and v.c in FIN_SENT),
    "closed": lambda v: v.changed and v.c in DONE and v.s in DONE,
}


def ip(text: str) -> str:
    return str(ipaddress.ip_address(text))


def link_header(trace_info: dict[str, Any]) -> int | None:
    """Bytes Suricata counts per frame before the IP header (its flow bytes are frame bytes):
    Ethernet, plus an 802.1Q tag when every frame has one; None when it varies per frame."""
    if trace_info["dlt"] != "EN10MB" or trace_info["vlan_pkts"] not in (0, trace_info["packets"]):
        return None
    return 14 + (4 if trace_info["vlan_pkts"] else 0)


def _zeek_records(path: str) -> list[dict[str, Any]]:
    """The records with the Zeek view, as `analyze --zeek -f jsonl` writes them."""
    run = _native.Run([path], "jsonl", zeek=True)
    chunks: list[bytes] = []
    run.execute(chunks.append)
    return [json.loads(line) for line in b"".join(chunks).splitlines()]


SYN, RST, ACK, FIN = 0x02, 0x04, 0x10, 0x01


def opens_session(flags: int, length: int, midstream: bool) -> bool:
    """Whether Suricata opens a TCP session on this segment of a flow that has none
    (stream-tcp.c, StreamTcpPacketStateNone): a RST never; a FIN only mid-stream and with
    payload; a SYN always; a SYN/ACK or a bare ACK only with stream.midstream on."""
    if flags & RST:
        return False
    if flags & FIN:
        return midstream and length > 0
    if flags & SYN:
        return not flags & ACK or midstream
    return bool(flags & ACK) and midstream


def _flags(path: str, midstream: bool) -> dict[int, dict[str, int]]:
    """The OR of the TCP flags each side sent (Suricata's tcp_flags_ts / tcp_flags_tc), by
    connection id, from the segment traces `ladder` and `report` draw: from the segment on
    which Suricata opens its session (the flags are the session's, so 00 without one)."""
    run = native.record_run([path], msl_s=DEFAULT_MSL_S)
    native.trace(run, None, limit=1 << 30)
    flags: dict[int, dict[str, int]] = {}

    def each(record: dict[str, Any]) -> None:
        sent = {"client": 0, "server": 0}
        session = False
        for segment in record["trace"]["segments"]:
            session = session or opens_session(segment["flags"], segment["length"], midstream)
            if session:
                sent[segment["role"]] |= segment["flags"]
        flags[record["id"]] = sent

    native.read_records(run, each)
    return flags


def midstream(expectation: dict[str, Any]) -> bool:
    """Whether the test ran Suricata with stream.midstream on (off by default)."""
    return any("stream.midstream=true" in arg for arg in expectation["suricata_args"])


def ours(expectation: dict[str, Any]) -> list[dict[str, Any]]:
    path = str(SURICATA / expectation["pcap"])
    records = _zeek_records(path)
    flags = _flags(path, midstream(expectation))
    for data in records:  # IP bytes per side of ours, from the Zeek view (earlier splits too)
        ip_bytes = {"client": 0, "server": 0}
        zeek = data["zeek"]
        for conn in [*zeek["earlier"], zeek]:
            resp = "server" if conn["orig"] == "client" else "client"
            ip_bytes[conn["orig"]] += conn["orig_ip_bytes"]
            ip_bytes[resp] += conn["resp_ip_bytes"]
        data["ip_bytes"] = ip_bytes
        data["suricata_flags"] = flags[data["id"]]
    return records


def is_tcp(match: dict[str, Any]) -> bool:
    return match.get("proto") == "TCP" or any(k.startswith("tcp.") for k in match)


def label(match: dict[str, Any]) -> str:
    if "src_ip" not in match:
        return "*"
    return f"{match['src_ip']}:{match['src_port']}>{match['dest_ip']}:{match['dest_port']}"


def find(records: list[dict[str, Any]], used: set[int], match: dict[str, Any]
         ) -> tuple[dict[str, Any] | None, str]:
    """Our record for a Suricata flow by 5-tuple, and which of our sides is Suricata's src."""
    src = (ip(match["src_ip"]), match["src_port"])
    dst = (ip(match["dest_ip"]), match["dest_port"])
    for record in records:
        client = (record["client"]["ip"], record["client"]["port"])
        server = (record["server"]["ip"], record["server"]["port"])
        if record["id"] not in used and {client, server} == {src, dst}:
            used.add(record["id"])
            return record, "client" if client == src else "server"
    return None, "client"


def compare_flow(record: dict[str, Any], ts_side: str, match: dict[str, Any],
                 header: int | None) -> list[tuple[str, Any, Any]]:
    """(field, Suricata's value, ours) for every field the check names."""
    tc_side = "server" if ts_side == "client" else "client"
    out: list[tuple[str, Any, Any]] = []
    if "tcp.state" in match:
        state = match["tcp.state"]
        ok = STATES[state](View(record, ts_side))
        out.append(("state", state, state if ok else
                    f"{record['final_state'][ts_side]}/{record['final_state'][tc_side]}"))
    for direction, side in (("toserver", ts_side), ("toclient", tc_side)):
        if f"flow.pkts_{direction}" in match:
            out.append((f"pkts_{direction}", match[f"flow.pkts_{direction}"],
                        record["packets"][side]))
        if f"flow.bytes_{direction}" in match:
            assert header is not None, "byte check on a trace with mixed link headers"
            frames = record["ip_bytes"][side] + header * record["packets"][side]
            out.append((f"bytes_{direction}", match[f"flow.bytes_{direction}"], frames))
    flags = record["suricata_flags"]
    for key, value in (("tcp.tcp_flags_ts", flags[ts_side]), ("tcp.tcp_flags_tc", flags[tc_side]),
                       ("tcp.tcp_flags", flags[ts_side] | flags[tc_side])):
        if key in match:
            out.append((key.removeprefix("tcp."), match[key], f"{value:02x}"))
    return out


def compare_count(records: list[dict[str, Any]], count: int, match: dict[str, Any]
                  ) -> list[tuple[str, Any, Any]]:
    """A check without a 5-tuple: exactly `count` flows match it."""
    pool = records
    if match.get("app_proto"):  # Suricata detected the protocol: its port, data both ways
        ports = APP_PORTS[match["app_proto"]]
        pool = [r for r in records if r["server"]["port"] in ports
                and r["bytes"]["client"] and r["bytes"]["server"]]
    if "tcp.state" not in match:
        return [("flows", count, len(pool))]
    state = match["tcp.state"]
    return [("state", count, sum(STATES[state](View(r, "client")) for r in pool))]


@cache
def comparison() -> dict[str, Any]:
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    differences: list[tuple[str, str, str, Any, Any]] = []
    for path in sorted((SURICATA / "expected").glob("*.json")):
        expectation = json.loads(path.read_text())
        checks = [c for c in expectation["flow_checks"] if is_tcp(c["match"])]
        if not checks:
            continue
        tid = expectation["id"]
        records = ours(expectation)
        header = link_header(expectation["trace_info"])
        used: set[int] = set()
        for check in checks:
            match, name = check["match"], label(check["match"])
            if name == "*":
                fields = compare_count(records, check["count"], match)
            else:
                assert check["count"] == 1, check
                record, ts_side = find(records, used, match)
                if record is None:
                    tally["missing"]["differ"] += 1
                    differences.append((tid, name, "missing", "flow", None))
                    continue
                tally["missing"]["agree"] += 1
                fields = compare_flow(record, ts_side, match, header)
            for field, want, have in fields:
                ok = want == have
                tally[field]["agree" if ok else "differ"] += 1
                if not ok:
                    differences.append((tid, name, field, want, have))
    return {"tally": tally, "differences": differences}


ALLOWLIST = Allowlist(KNOWN)


def known(tid: str, name: str, field: str) -> bool:
    return ALLOWLIST.covers(tid, name, field)


def report(result: dict[str, Any]) -> str:
    allowed = Counter(f for t, n, f, _, _ in result["differences"] if known(t, n, f))
    lines = ["field           agree  differ  (after allowlist)"]
    for field, counts in sorted(result["tally"].items()):
        left = counts["differ"] - allowed[field]
        lines.append(f"{field:15} {counts['agree']:5} {counts['differ']:7}  {left}")
    for t, n, f, w, h in result["differences"]:
        if known(t, n, f):
            anchor = KNOWN.get((t, n, f)) or KNOWN.get((t, "*", f))
            lines.append(f"  known: {t} {n} {f}: suricata {w!r}, ours {h!r} ({anchor})")
    return "\n".join(lines)


pytestmark = pytest.mark.skipif(not (SURICATA / "expected").is_dir(),
                                reason="../shared corpus not present")


def test_suricata_corpus_agreement() -> None:
    result = comparison()
    print()
    print(report(result))
    unexpected = ALLOWLIST.unexpected(result["differences"])
    assert not unexpected, "\n".join(map(str, unexpected))


def test_known_differences_still_occur() -> None:
    """Each allowlist entry names a difference that still exists (no stale entries)."""
    stale = ALLOWLIST.stale(comparison()["differences"])
    assert not stale, stale


def test_teredo_off_its_port_is_ours_only() -> None:
    """decode-teredo-01 carries a Teredo connection between UDP ports 3797 and 32900
    (a client talking to a peer directly, off the Teredo port). Suricata decodes Teredo on
    its configured port (3544) only, so it logs those datagrams as one UDP flow and has no
    TCP check for the connection inside; tcptrace finds it by Wireshark's heuristic (as
    Zeek does: tunnel-teredo in the Zeek corpus, same file)."""
    expectation = json.loads((SURICATA / "expected" / "decode-teredo-01.json").read_text())
    outer = [c["match"] for c in expectation["flow_checks"]
             if c["match"].get("dest_port") == 32900]
    assert [(m["proto"], m["src_port"], m["flow.pkts_toserver"], m["flow.pkts_toclient"])
            for m in outer] == [("UDP", 3797, 12, 13)]
    records = ours(expectation)
    tunnelled = [r for r in records if r["encapsulation"]]
    assert [(r["client"]["ip"], r["server"]["ip"], r["server"]["port"], r["packets"],
             r["encapsulation"]) for r in tunnelled] == [
        ("2001:0:4137:9e50:8000:f12a:b9c8:2815", "2001:4860:0:2001::68", 80,
         {"client": 10, "server": 12},
         [{"type": "teredo", "outer": {"src": "192.168.2.16", "dst": "83.170.1.38",
                                       "sport": 3797, "dport": 32900}}])]
    tcp_ports = {(c["match"].get("src_port"), c["match"].get("dest_port"))
                 for c in expectation["flow_checks"] if is_tcp(c["match"])}
    assert not tcp_ports & {(1286, 80), (80, 1286)}
