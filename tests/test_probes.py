"""Scans and probes (docs/health.md, "Scans and probes"): each probe of the crafted scan and
of a real nmap scan classified (outcome, probe, rst.kind), the summary's scan sources and its
memory cap, `check`'s verdict on a scan, and the Zeek view left as Zeek has it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import CRAFTED, PCAPS, run_cli
from test_robustness import SYN, frame, pcap

PROBES = str(CRAFTED / "probes.pcap")
NMAP = str(PCAPS / "scan" / "nmap_scan.pcap")


def records(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    code, out, _ = run_cli(capsys, "analyze", "-f", "jsonl", *args)
    assert code == 0
    return [json.loads(line) for line in out.splitlines()]


def summary(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, _ = run_cli(capsys, "analyze", "-f", "json", *args)
    assert code == 0
    return dict(json.loads(out)["summary"])


def test_every_crafted_probe_is_classified(capsys: pytest.CaptureFixture[str]) -> None:
    got = [(r["client"]["port"], r["server"]["port"], r["outcome"], r["probe"],
            r["rst"] and r["rst"]["kind"]) for r in records(capsys, PROBES)]

    def probe(kind: str, answer: str, sender: str = "client") -> dict[str, str]:
        return {"kind": kind, "answer": answer, "sender": sender}

    assert got == [
        (50000, 1001, "REFUSED", probe("syn", "rst"), "REFUSED"),
        (50001, 1002, "UNANSWERED", probe("syn", "none"), None),
        (50002, 1003, "HANDSHAKE_ABORTED", probe("syn", "syn_ack"), "HANDSHAKE"),
        (50003, 1004, "PROBE_RESET", probe("null", "rst"), "REFUSED"),
        (50004, 1005, "PROBE_UNANSWERED", probe("null", "none"), None),
        (50005, 1006, "PROBE_RESET", probe("fin", "rst"), "REFUSED"),
        (50006, 1007, "PROBE_UNANSWERED", probe("fin", "none"), None),
        (50007, 1008, "PROBE_RESET", probe("xmas", "rst"), "REFUSED"),
        (50008, 1009, "PROBE_UNANSWERED", probe("xmas", "none"), None),
        (50009, 1010, "PROBE_RESET", probe("ack", "rst"), "REFUSED"),
        # an unanswered ACK or FIN/ACK looks like a connection's tail: not classified
        (50010, 1011, "OPEN", None, None),
        (50011, 1012, "PROBE_RESET", probe("maimon", "rst"), "REFUSED"),
        (50012, 1013, "HALF_CLOSED", None, None),
        # the prober has the lower port: the port rule made it the server
        (60001, 40000, "PROBE_RESET", probe("fin", "rst", "server"), "REFUSED"),
    ]


def test_csv_carries_the_probe_columns(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "analyze", "-f", "csv", "--filter", "port 1004 or port 1011",
                           PROBES)
    assert code == 0
    header, *rows = out.splitlines()
    at = header.split(",").index("probe.kind")
    assert header.split(",")[at:at + 3] == ["probe.kind", "probe.answer", "probe.sender"]
    assert [row.split(",")[at:at + 3] for row in rows] == [["null", "rst", "client"], ["", "", ""]]


def test_the_scan_source_and_its_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    scans = summary(capsys, PROBES)["scans"]
    assert scans == {
        "probes": {"syn": 3, "fin": 3, "null": 2, "xmas": 2, "ack": 1, "maimon": 1},
        "sources": [{"ip": "10.0.0.1", "targets": 11,
                     "probes": {"syn": 3, "null": 2, "fin": 2, "xmas": 2, "ack": 1,
                                "maimon": 1},
                     "answers": {"rst": 6, "none": 4, "syn_ack": 1}}],
    }
    # ten targets are a scan source, nine are not
    ten = summary(capsys, "--filter", "not port 1001", PROBES)["scans"]["sources"]
    assert [(s["ip"], s["targets"]) for s in ten] == [("10.0.0.1", 10)]
    nine = summary(capsys, "--filter", "not (port 1001 or port 1002)", PROBES)["scans"]
    assert nine["sources"] == []
    assert nine["probes"] == {"fin": 3, "null": 2, "xmas": 2, "ack": 1, "maimon": 1, "syn": 1}


def test_a_real_nmap_scan(capsys: pytest.CaptureFixture[str]) -> None:
    """nmap -sS, -sF, -sN, -sX, -sA, -sM of 12 ports, 2 of them open (pcaps/record_scan.py)."""
    s = summary(capsys, NMAP)
    assert s["outcomes"] == {"PROBE_RESET": 54, "REFUSED": 10, "PROBE_UNANSWERED": 6,
                             "HANDSHAKE_ABORTED": 2}
    assert s["rst"]["by_kind"] == {"REFUSED": 64, "HANDSHAKE": 2}
    assert s["scans"] == {
        "probes": {"syn": 12, "null": 12, "fin": 12, "xmas": 12, "ack": 12, "maimon": 12},
        "sources": [{"ip": "10.78.0.1", "targets": 12,
                     "probes": {"syn": 12, "null": 12, "fin": 12, "xmas": 12, "ack": 12,
                                "maimon": 12},
                     "answers": {"rst": 64, "none": 6, "syn_ack": 2}}],
    }
    by_port: dict[int, list[tuple[str, str, str]]] = {}
    for r in records(capsys, NMAP):
        p = r["probe"]
        by_port.setdefault(r["server"]["port"], []).append((p["kind"], p["answer"], r["outcome"]))
    # the open ports: SYN/ACK then the scanner's RST; FIN, NULL, Xmas dropped (RFC 9293
    # section 3.10.7.2); ACK and (on Linux) Maimon reset
    open_port = [("syn", "syn_ack", "HANDSHAKE_ABORTED"), ("fin", "none", "PROBE_UNANSWERED"),
                 ("null", "none", "PROBE_UNANSWERED"), ("xmas", "none", "PROBE_UNANSWERED"),
                 ("ack", "rst", "PROBE_RESET"), ("maimon", "rst", "PROBE_RESET")]
    closed_port = [("syn", "rst", "REFUSED")] + [
        (kind, "rst", "PROBE_RESET") for kind in ("fin", "null", "xmas", "ack", "maimon")]
    assert by_port[22] == by_port[80] == open_port
    assert sorted(by_port) == [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 80, 443]
    assert all(by_port[p] == closed_port for p in by_port if p not in (22, 80))


def test_the_text_summary_names_the_scan_source(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "analyze", NMAP)
    assert code == 0
    assert ("Probes: syn 12, null 12, fin 12, xmas 12, ack 12, maimon 12; scan sources: "
            "10.78.0.1 (12 targets:\n    syn 12, null 12, fin 12, xmas 12, ack 12, maimon 12)\n"
            ) in out


def test_check_fails_a_scan_on_purpose(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "check", "-f", "json", "--no-incomplete", "--no-rst", NMAP)
    assert code == 1
    rules = {r["origin"]: r for r in json.loads(out)["rules"]}
    # every probe fails: none completed a connection
    assert rules["--no-incomplete"]["detail"] == "72 of 72 connections"
    # the closed ports' answers and the scanner's RSTs
    assert rules["--no-rst"]["detail"] == "66 of 72 connections"
    # refusals and closed-port answers allowed: the half-open probes' RSTs still fail
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text('[[rule]]\ncheck = "rst"\nexcept_kinds = ["REFUSED"]\n')
    code, out, _ = run_cli(capsys, "check", "-f", "json", "-r", str(rules_file), NMAP)
    assert code == 1
    (rule,) = json.loads(out)["rules"]
    assert (rule["passed"], rule["detail"]) == (False, "2 of 72 connections")


def test_the_zeek_view_keeps_zeeks_states(capsys: pytest.CaptureFixture[str]) -> None:
    got = [(r["server"]["port"], r["probe"]["kind"], r["zeek"]["conn_state"])
           for r in records(capsys, "--zeek", "--filter", "port 22 or port 23", NMAP)]
    # as before probes were classified (the Zeek view depends on the segments alone)
    assert got == [
        (23, "syn", "REJ"), (22, "syn", "RSTO"), (23, "fin", "RSTR"), (23, "null", "RSTRH"),
        (23, "xmas", "RSTR"), (22, "fin", "SH"), (22, "null", "OTH"), (22, "xmas", "SH"),
        (22, "ack", "RSTRH"), (23, "ack", "RSTRH"), (23, "maimon", "RSTR"),
        (22, "maimon", "RSTR"),
    ]


def test_scan_sources_are_bounded(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A SYN flood from 10,005 addresses: 10,000 sources tracked, the rest told in a warning."""
    flood = [frame(src=f"10.{1 + i // 65536}.{i // 256 % 256}.{i % 256}", sport=40000, seq=i,
                   flags=SYN) for i in range(10_005)]
    path = tmp_path / "flood.pcap"
    path.write_bytes(pcap(flood))
    code, out, err = run_cli(capsys, "analyze", "-f", "json", str(path))
    assert code == 0
    scans = json.loads(out)["summary"]["scans"]
    assert scans == {"probes": {"syn": 10_005}, "sources": []}
    assert err == ("tcptrace: warning: scan_sources: 5 probes not counted (at most 10000 "
                   "sources and 100000 targets are tracked)\n")
