"""Fixture for the writers' tests: records from the bundled captures plus edge cases, as a
Rust expression (records.rs) and as the Python writers write them (expected.*).

Run from the repository root with the reference venv:
    /work/refvenv/bin/python src/writers/testdata/gen_records.py
A wider check (throwaway, the tests' fixed counts then differ): OUT=dir and capture paths as
arguments write the same files for those captures' records to `dir`.
"""

import dataclasses
import glob
import io
import json
import math
import os
import random
import struct
import sys
from pathlib import Path

from tcptrace.engine import Analysis
from tcptrace.model import Endpoint, HalfClose, PerSide, Rst, StateChange, to_dict
from tcptrace.report.formats import CsvWriter, JsonLinesWriter, JsonWriter
from tcptrace.report.summary import Summary

HERE = Path(os.environ.get("OUT", Path(__file__).parent))


def captured() -> list:
    records = []
    paths = sys.argv[1:] or (sorted(glob.glob("pcaps/linux/*.pcap"))
                             + sorted(glob.glob("pcaps/crafted/*.pcap")))
    for path in paths:
        try:
            records += list(Analysis([path]).records())
        except Exception as e:  # a capture the reference refuses: not this check's business
            print(path, e, file=sys.stderr)
    for n, r in enumerate(records):  # unique ids, as one run would number them
        r.id = n + 1
    return records


def edges(base: list) -> list:
    """Records with the odd values the captures do not hold."""
    replace = dataclasses.replace
    a, b, c, d = base[0], base[5], base[10], base[20]
    weird = replace(
        a, id=1000,
        client=Endpoint('é😀"\\,\n\t\x01\x1f\x7f\u2028 x', 1),
        server=Endpoint("2001:db8::1", 65535),
        previous_id=7, first_ts=1e16, last_ts=5e-324, duration_ms=-0.0,
        handshake=replace(a.handshake, rtt_ms=-0.0, setup_ms=1.5e300, syn_to_synack_ms=1e-05,
                          synack_to_ack_ms=1e-7, matched_by='"quoted", comma',
                          ambiguity="line\nbreak\r\x08\x0c"),
        half_close=HalfClose("server", 2**64 - 1, 1e-4),
        rst=Rst("client", "TIME_WAIT", "SYN_RCVD", "UNKNOWN_STATE", 123456789012345.67, 2**63),
        keepalive=replace(a.keepalive, probes=PerSide(3, 0), acks=PerSide(0, 2),
                          intervals_ms=PerSide([1e-7, 0.1, math.inf], [-math.inf])),
        reuse=replace(a.reuse, protocol="http/1.0", requests=7, responses=6,
                      idle_gaps_ms=[math.nan, -1e22, 1e16, 100.0]),
        states=PerSide([], [StateChange(0.0, "CLOSED")]),
        bytes=PerSide(2**64 - 1, 0),
    )
    ipv6 = replace(b, id=3, client=Endpoint("fe80::1:2", 40000), server=Endpoint("::1", 80),
                   handshake=replace(b.handshake, rtt_ms=0.0, ambiguity=None),
                   close=replace(b.close, time_wait="both"),
                   reuse=replace(b.reuse, requests=2))
    tie = replace(c, id=999, handshake=replace(c.handshake, rtt_ms=-0.0),
                  close=replace(c.close, time_wait="server"),
                  server=Endpoint("2001:db8::1", 65535))
    many = replace(d, id=500, reuse=replace(d.reuse, requests=1, protocol="http/1.1"))
    return [weird, ipv6, tie, many]


def rust_str(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append(f"\\u{{{ord(ch):x}}}")
    return '"' + "".join(out) + '"'


def camel(name: str) -> str:
    return "".join(p.capitalize() for p in name.split("_"))


def rust_f(v: float) -> str:
    return f"f(0x{struct.unpack('<Q', struct.pack('<d', v))[0]:016x})"


def opt(v, fmt) -> str:
    return "None" if v is None else f"Some({fmt(v)})"


def pair(p: dict, fmt) -> str:
    return f"PerSide::new({fmt(p['client'])}, {fmt(p['server'])})"


def rust_record(r: dict) -> str:
    h, c, k, u = r["handshake"], r["close"], r["keepalive"], r["reuse"]
    floats = lambda vs: "vec![" + ", ".join(rust_f(v) for v in vs) + "]"  # noqa: E731
    changes = lambda cs: "vec![" + ", ".join(  # noqa: E731
        f"StateChange {{ ts: {rust_f(x['ts'])}, state: TcpState::{camel(x['state'])} }}"
        for x in cs) + "]"
    hc, rst = r["half_close"], r["rst"]
    half = "None" if hc is None else (
        f"Some(HalfClose {{ side: Role::{camel(hc['side'])}, "
        f"bytes_after_fin: {hc['bytes_after_fin']}, "
        f"duration_ms: {rust_f(hc['duration_ms'])} }})")
    reset = "None" if rst is None else (
        f"Some(Rst {{ sender: Role::{camel(rst['sender'])}, "
        f"state: TcpState::{camel(rst['state'])}, "
        f"receiver_state: TcpState::{camel(rst['receiver_state'])}, "
        f"kind: RstKind::{camel(rst['kind'])}, "
        f"ts: {rust_f(rst['ts'])}, count: {rst['count']} }})")
    sides = lambda v: opt(v, lambda s: f"Sides::{camel(s)}")  # noqa: E731
    return f"""ConnectionRecord {{
    id: {r['id']},
    client: Endpoint {{ ip: {rust_str(r['client']['ip'])}.into(), port: {r['client']['port']} }},
    server: Endpoint {{ ip: {rust_str(r['server']['ip'])}.into(), port: {r['server']['port']} }},
    role_rule: RoleRule::{camel(r['role_rule'])},
    previous_id: {opt(r['previous_id'], str)},
    first_ts: {rust_f(r['first_ts'])},
    last_ts: {rust_f(r['last_ts'])},
    duration_ms: {rust_f(r['duration_ms'])},
    outcome: Outcome::{camel(r['outcome'])},
    handshake: Handshake {{
        complete: {str(h['complete']).lower()},
        syn_to_synack_ms: {opt(h['syn_to_synack_ms'], rust_f)},
        synack_to_ack_ms: {opt(h['synack_to_ack_ms'], rust_f)},
        rtt_ms: {opt(h['rtt_ms'], rust_f)},
        setup_ms: {opt(h['setup_ms'], rust_f)},
        syn_retransmits: {h['syn_retransmits']},
        synack_retransmits: {h['synack_retransmits']},
        matched_by: {opt(h['matched_by'], rust_str)},
        ambiguity: {opt(h['ambiguity'], rust_str)},
        simultaneous_open: {str(h['simultaneous_open']).lower()},
    }},
    close: Close {{
        initiator: {sides(c['initiator'])},
        time_wait: {sides(c['time_wait'])},
        time_wait_ts: {opt(c['time_wait_ts'], rust_f)},
        time_wait_until: {opt(c['time_wait_until'], rust_f)},
        fin_ts: {pair(c['fin_ts'], lambda v: opt(v, rust_f))},
    }},
    half_close: {half},
    rst: {reset},
    keepalive: Keepalive {{
        probes: {pair(k['probes'], str)},
        acks: {pair(k['acks'], str)},
        intervals_ms: {pair(k['intervals_ms'], floats)},
    }},
    reuse: Reuse {{
        protocol: {opt(u['protocol'], rust_str)},
        requests: {u['requests']},
        responses: {u['responses']},
        idle_gaps_ms: {floats(u['idle_gaps_ms'])},
    }},
    states: {pair(r['states'], changes)},
    final_state: {pair(r['final_state'], lambda s: f"TcpState::{camel(s)}")},
    packets: {pair(r['packets'], str)},
    bytes: {pair(r['bytes'], str)},
    unique_bytes: {pair(r['unique_bytes'], str)},
    retransmitted_bytes: {pair(r['retransmitted_bytes'], str)},
    gap_bytes: {pair(r['gap_bytes'], str)},
    anomalies: {pair(r['anomalies'], str)},
    zeek: None,
}}"""


def main() -> None:
    base = captured()
    records = base + edges(base)
    random.Random(1).shuffle(records)  # written out of id order, as connections end
    (HERE / "records.rs").write_text(
        "// Generated by gen_records.py from the Python reference: do not edit.\n"
        "vec![\n" + ",\n".join(rust_record(to_dict(r)) for r in records) + ",\n]\n")

    for name, writer in (("expected.jsonl", JsonLinesWriter), ("expected.csv", CsvWriter)):
        out = io.StringIO(newline="")
        w = writer(out)
        for r in records:
            w.write(r)
        (HERE / name).write_bytes(out.getvalue().encode())

    summary = Summary()
    for r in records:
        summary.add(r)
    source = {"files": []}
    for name, subset in (("expected_json_tail.txt", records), ("expected_json_empty.txt", [])):
        out = io.StringIO(newline="")
        w = JsonWriter(out)
        for r in subset:
            w.write(r)
        w.finish(Summary(), source)
        head = json.dumps({"source": source, "summary": Summary().as_dict(), "connections": []},
                          indent=2)[: -len("[]\n}")]
        text = out.getvalue()
        assert text.startswith(head)
        (HERE / name).write_bytes(text[len(head):].encode())
    (HERE / "expected_summary.json").write_text(json.dumps(summary.as_dict()) + "\n")
    (HERE / "expected_summary_empty.json").write_text(json.dumps(Summary().as_dict()) + "\n")
    print(len(records), "records")


main()
