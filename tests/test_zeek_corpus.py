"""tcptrace's Zeek translation against the conn.log Zeek itself wrote for its own test traces.

../shared/corpus/zeek/ (see its README) pairs 100 of Zeek's test traces with the conn.log
Zeek produced. Every TCP connection, tunnelled ones included, is compared on conn_state, history,
packets, payload bytes and duration; the agreement is printed per tier and field
(`pytest -s`). Known differences are listed in KNOWN, each explained in docs/zeek.md;
any other disagreement fails.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from conftest import Allowlist

from tcptrace import _native

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ZEEK = SHARED / "corpus" / "zeek"
FIELDS = ("conn_state", "history", "orig_pkts", "resp_pkts", "orig_bytes", "resp_bytes",
          "duration")
PRIMARY = ("conn_state", "history")

# Zeek run with -b loads only the scripts the test names: likely_server_ports then holds
# just those protocols' ports (docs/zeek.md, "Originator"). By test-id prefix:
BARE_PROTOCOLS = {
    "ftp": ("ftp",), "http": ("http",), "krb": ("krb",), "ldap": ("ldap",),
    "mysql": ("mysql",), "pop3": ("pop3",), "postgresql": ("postgresql",),
    "redis": ("redis",), "irc": ("irc",), "websocket": ("http",),
    "tls": ("ssl", "imap", "irc", "pop3", "xmpp"),
}
# ... and by test id where the prefix says nothing: core/tunnels/teredo.zeek loads
# base/protocols/http, dns and dhcp (dhcp's ports are UDP only)
BARE_PROTOCOLS_BY_ID = {"tunnel-teredo": ("http", "dns")}

# (expectation id, Zeek connection "orig_h:orig_p>resp_h:resp_p" or "*", field) -> docs anchor
KNOWN: dict[tuple[str, str, str], str] = {
    # deliberate or known differences
    ("tunnel-gtp1-outer-ip-frag", "10.131.47.185:1923>79.101.110.141:80", "history"):
        "outer-fragments",
    ("tunnel-gtp1-outer-ip-frag", "10.131.47.185:1923>79.101.110.141:80", "orig_pkts"):
        "outer-fragments",
    ("tunnel-gtp1-outer-ip-frag", "10.131.47.185:1923>79.101.110.141:80", "resp_pkts"):
        "outer-fragments",
    ("tunnel-gtp2-different-udp-port", "10.131.17.170:51803>173.199.115.168:80", "history"):
        "outer-fragments",
    ("tunnel-gtp2-different-udp-port", "10.131.17.170:51803>173.199.115.168:80",
     "resp_pkts"): "outer-fragments",
    ("tcp-syn-bad-checksum", "*", "missing"): "only-bad-checksums",
    ("chksum-localhost-bad", "*", "*"): "synack-first",
    ("tcp-handshake-reorder", "*", "*"): "synack-first",
    ("ftp-fake-long-commands", "*", "history"): "letter-x",
    ("krb-optional-service-name", "*", "conn_state"): "krb-s1",
    ("tcp-retransmit-fast009", "*", "history"): "gaps-snaplen",
    ("tls-irc-starttls", "*", "conn_state"): "rst-after-fin",
}


# Zeek's well-known server ports per protocol analyzer (each analyzer's `ports` in Zeek's
# scripts/base/protocols/*/main.zeek), the "likely server ports" when all are loaded. A
# trace made with `zeek -b` loads only the analyzers its test names (BARE_PROTOCOLS).
DEFAULT_SERVER_PORTS: dict[str, frozenset[int]] = {
    "dce-rpc": frozenset({135, 137, 138, 139, 445, 593, 49152}),
    "dnp3": frozenset({20000}),
    "dns": frozenset({53, 5353, 5355}),
    "ftp": frozenset({21, 2811}),
    "http": frozenset({80, 81, 631, 3128, 8000, 8080, 8888}),
    "imap": frozenset({143}),
    "irc": frozenset({6666, 6667, 6668, 6669}),
    "krb": frozenset({88}),
    "ldap": frozenset({389, 3268}),
    "modbus": frozenset({502}),
    "mysql": frozenset({1434, 3306}),
    "pop3": frozenset({110}),
    "postgresql": frozenset({5432}),
    "rdp": frozenset({3389}),
    "redis": frozenset({6379}),
    "smb": frozenset({139, 445}),
    "smtp": frozenset({25, 587}),
    "socks": frozenset({1080}),
    "ssh": frozenset({22}),
    "ssl": frozenset({443, 563, 585, 614, 636, 989, 990, 992, 993, 995, 5223}),
    "xmpp": frozenset({5222, 5269}),
}
LIKELY_SERVER_PORTS: frozenset[int] = frozenset().union(*DEFAULT_SERVER_PORTS.values())


def server_ports(expectation: dict[str, Any]) -> frozenset[int]:
    if not expectation["zeek_bare_mode"]:
        return LIKELY_SERVER_PORTS
    prefix = expectation["id"].split("-")[0]
    names = BARE_PROTOCOLS_BY_ID.get(expectation["id"], BARE_PROTOCOLS.get(prefix, ()))
    return frozenset().union(*(DEFAULT_SERVER_PORTS[n] for n in names))


def records(expectation: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The trace's records with the Zeek view, and the source report (what `tcptrace analyze
    --zeek` gives)."""
    trace = str(ZEEK / expectation["trace"])
    ports = server_ports(expectation)
    verify = not expectation["zeek_ignore_checksums"]
    run = _native.Run([trace], "jsonl", zeek=True, verify_checksums=verify,
                      zeek_server_ports=sorted(ports))
    chunks: list[bytes] = []
    run.execute(chunks.append)
    lines = b"".join(chunks).splitlines()
    return [json.loads(line) for line in lines], run.source_report()


def ours(expectation: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Our Zeek-view connections for an expectation's trace (earlier Zeek splits included)."""
    data_records, source = records(expectation)
    rows: list[dict[str, Any]] = []
    for data in data_records:
        zeek = data["zeek"]
        for conn in [*zeek["earlier"], zeek]:
            orig, resp = ((data["client"], data["server"]) if conn["orig"] == "client"
                          else (data["server"], data["client"]))
            rows.append({**conn, "orig_h": orig["ip"], "orig_p": orig["port"],
                         "resp_h": resp["ip"], "resp_p": resp["port"]})
    rows.sort(key=lambda r: r["ts"])
    return rows, source


def label(conn: dict[str, Any]) -> str:
    if "orig_h" not in conn:
        return "*"
    return f"{conn['orig_h']}:{conn.get('orig_p')}>{conn['resp_h']}:{conn.get('resp_p')}"


def tuple_key(conn: dict[str, Any], ports: bool = True) -> frozenset[tuple[str, int]]:
    if not ports:  # a subset that kept the hosts only
        return frozenset({(conn["orig_h"], 0), (conn["resp_h"], 0)})
    return frozenset({(conn["orig_h"], conn["orig_p"]), (conn["resp_h"], conn["resp_p"])})


def pair(expected: list[dict[str, Any]], got: list[dict[str, Any]]
         ) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Zeek's rows with ours: by 4-tuple, then in time order within a 4-tuple."""
    if expected and "orig_h" not in expected[0]:  # a subset without the 5-tuple: one conn
        best = max(got, key=lambda r: r["orig_pkts"] + r["resp_pkts"], default=None)
        return [(expected[0], best)]
    ports = "orig_p" in expected[0]
    pool: dict[frozenset[tuple[str, int]], list[dict[str, Any]]] = defaultdict(list)
    for row in got:
        pool[tuple_key(row, ports)].append(row)
    pairs: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    for conn in expected:
        candidates = pool.get(tuple_key(conn, ports))
        pairs.append((conn, candidates.pop(0) if candidates else None))
    return pairs


def same(field: str, want: Any, have: Any) -> bool:
    if field == "duration" and want is not None and have is not None:
        return bool(abs(want - have) < 2e-6)
    return bool(want == have)


@cache
def comparison() -> dict[str, Any]:
    """Every comparison in the corpus: per tier and field, agreements and differences."""
    tally: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    differences: list[tuple[str, str, str, Any, Any]] = []
    skipped: dict[str, dict[str, int]] = {}
    for path in sorted((ZEEK / "expected").glob("*.json")):
        expectation = json.loads(path.read_text())
        tier, eid = expectation["tier"], expectation["id"]
        expected = list(expectation["connections"])
        if not expected:
            continue
        got, source = ours(expectation)
        if source["skipped"]:
            skipped[eid] = source["skipped"]
        for want, have in pair(expected, got):
            name = label(want)
            if have is None:
                tally[(tier, "missing")]["differ"] += 1
                differences.append((eid, name, "missing", "row", None))
                continue
            tally[(tier, "missing")]["agree"] += 1
            if "orig_h" in want and (want["orig_h"], want.get("orig_p", have["orig_p"])) != (
                    have["orig_h"], have["orig_p"]):
                tally[(tier, "orig")]["differ"] += 1
                differences.append((eid, name, "orig", want["orig_h"], have["orig_h"]))
            fields = [f for f in FIELDS if f in want and (want[f] is not None or f in PRIMARY
                                                          or f == "duration")]
            if tier == "event" and want.get("endpoints"):
                for side in ("orig", "resp"):
                    end = want["endpoints"][side]
                    for key, ours_key in (("state_name", f"{side}_state"),
                                          ("num_pkts", f"{side}_pkts"),
                                          ("size", f"{side}_bytes"),
                                          ("num_bytes_ip", f"{side}_ip_bytes")):
                        field = f"endpoint.{ours_key}"
                        ok = same(field, end[key], have[ours_key])
                        tally[(tier, field)]["agree" if ok else "differ"] += 1
                        if not ok:
                            differences.append((eid, name, field, end[key], have[ours_key]))
            for field in fields:
                if tier == "event" and want.get(field) is None:
                    continue
                ok = same(field, want[field], have[field])
                tally[(tier, field)]["agree" if ok else "differ"] += 1
                if not ok:
                    differences.append((eid, name, field, want[field], have[field]))
    return {"tally": tally, "differences": differences, "skipped": skipped}


ALLOWLIST = Allowlist(KNOWN)


def known(eid: str, name: str, field: str) -> bool:
    return ALLOWLIST.covers(eid, name, field)


def report(result: dict[str, Any]) -> str:
    lines = ["tier     field                     agree  differ  (after allowlist)"]
    allowed = Counter((e, f) for e, n, f, _, _ in result["differences"] if known(e, n, f))
    tiers = {eid: json.loads(p.read_text())["tier"] for p in (ZEEK / "expected").glob("*.json")
             for eid in [p.stem]}
    per_tier_allowed: Counter[tuple[str, str]] = Counter()
    for (eid, field), n in allowed.items():
        per_tier_allowed[(tiers[eid], field)] += n
    for (tier, field), counts in sorted(result["tally"].items()):
        left = counts["differ"] - per_tier_allowed[(tier, field)]
        lines.append(f"{tier:8} {field:24} {counts['agree']:6} {counts['differ']:7}  {left}")
    return "\n".join(lines)


pytestmark = pytest.mark.skipif(not ZEEK.is_dir(), reason="../shared corpus not present")


def test_zeek_corpus_agreement() -> None:
    result = comparison()
    print()
    print(report(result))
    unexpected = ALLOWLIST.unexpected(result["differences"])
    assert not unexpected, "\n".join(map(str, unexpected))


def test_known_differences_still_occur() -> None:
    """Each allowlist entry names a difference that still exists (no stale entries)."""
    stale = ALLOWLIST.stale(comparison()["differences"])
    assert not stale, stale
