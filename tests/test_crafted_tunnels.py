"""Part C of the crafted captures (pcaps/craft_tunnels.py, issue 15): the reference
connection behind every link layer, layer-2.5 header and tunnel the decoder reads.

Each file carries the same 10 TCP segments as ref_eth_us_le.pcap, so its one record must
equal that reference record in every field except `encapsulation` (asserted exactly: type,
identifier, outer addresses and ports as the client sent them) and, where the inner packet
is IPv6, the addresses. The malformed frame most files hold is counted in `source.skipped`
for its reason and changes nothing else."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest
from conftest import CRAFTED, analyze, one, run_cli

V4 = ("10.0.0.1", "10.0.0.2")
V6 = ("fd00::1", "fd00::2")
OUTER = {"src": "192.0.2.1", "dst": "192.0.2.2"}


def udp(sport: int, dport: int, src: str = "192.0.2.1", dst: str = "192.0.2.2"
        ) -> dict[str, Any]:
    return {"src": src, "dst": dst, "sport": sport, "dport": dport}


VXLAN_42 = {"type": "vxlan", "vni": 42, "outer": udp(51000, 4789)}

# file -> (the record's encapsulation, source.skipped, inner addresses)
CASES: dict[str, tuple[list[dict[str, Any]], dict[str, int], tuple[str, str]]] = {
    "ref_fddi.pcap": ([], {"truncated_link_header": 1}, V4),
    "ref_ppp.pcap": ([], {"truncated_link_header": 1}, V4),
    "ref_ppp_hdlc.pcap": ([], {"not_ip": 1}, V4),
    "ref_chdlc.pcap": ([], {"truncated_link_header": 1}, V4),
    "ref_pppoe.pcap": ([], {"truncated_tunnel_header": 1}, V4),
    "ref_nflog.pcap": ([], {"truncated_link_header": 1}, V4),
    "ref_radiotap.pcap": ([], {"encrypted": 1}, V4),
    "ref_pbb.pcap": ([], {"truncated_tunnel_header": 1}, V4),
    "ref_fabricpath.pcap": ([], {"truncated_tunnel_header": 1}, V4),
    "ref_mpls.pcap": ([], {"truncated_tunnel_header": 1}, V4),
    "ref_mpls6.pcap": ([], {}, V6),
    "ref_mpls_pw.pcap": ([], {}, V4),
    "ref_gre.pcap": ([{"type": "gre", "key": 7, "outer": OUTER}], {"bad_tunnel_header": 1}, V4),
    "ref_gre_teb.pcap": ([{"type": "gre", "key": 8, "outer": OUTER}],
                         {"truncated_tunnel_header": 1}, V4),
    "ref_erspan1.pcap": ([{"type": "erspan", "outer": OUTER}], {}, V4),
    "ref_erspan2.pcap": ([{"type": "erspan", "session": 100, "outer": OUTER}],
                         {"bad_tunnel_header": 1}, V4),
    "ref_erspan3.pcap": ([{"type": "erspan", "session": 200, "outer": OUTER}],
                         {"truncated_tunnel_header": 1}, V4),
    "ref_erspan_vlan.pcap": ([{"type": "erspan", "session": 100, "outer": OUTER}], {}, V4),
    "ref_vxlan.pcap": ([VXLAN_42], {"bad_tunnel_header": 1}, V4),
    "ref_geneve.pcap": ([{"type": "geneve", "vni": 0x123456, "outer": udp(52000, 6081)}],
                        {"bad_tunnel_header": 1}, V4),
    "ref_geneve_in_vxlan.pcap": ([VXLAN_42, {"type": "geneve", "vni": 7, "outer": udp(
        52000, 6081, "198.51.100.1", "198.51.100.2")}], {}, V4),
    "ref_ip4in4.pcap": ([{"type": "ip-in-ip", "outer": OUTER}], {"truncated_ip_header": 1},
                        V4),
    "ref_ip6in4.pcap": ([{"type": "ip-in-ip", "outer": OUTER}], {}, V6),
    "ref_ip4in6.pcap": ([{"type": "ip-in-ip", "outer": {"src": "2001:db8::1",
                                                        "dst": "2001:db8::2"}}], {}, V4),
    "ref_teredo.pcap": ([{"type": "teredo", "outer": udp(40001, 3544)}], {"not_tcp": 1}, V6),
    "ref_gtp.pcap": ([{"type": "gtp", "outer": udp(2152, 2152)}], {"bad_tunnel_header": 1}, V4),
}


@cache
def reference() -> dict[str, Any]:
    return one(CRAFTED / "ref_eth_us_le.pcap")


def without_layer(record: dict[str, Any]) -> dict[str, Any]:
    """A record less what a layer may change: its encapsulation and the IP addresses."""
    out = {k: v for k, v in record.items() if k != "encapsulation"}
    out["client"] = dict(record["client"], ip="*")
    out["server"] = dict(record["server"], ip="*")
    return out


def test_the_reference_itself_has_no_encapsulation() -> None:
    assert reference()["encapsulation"] == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_layer_gives_the_reference_record_and_its_path(name: str) -> None:
    encapsulation, skipped, (client_ip, server_ip) = CASES[name]
    records, source = analyze(CRAFTED / name)
    assert len(records) == 1
    (record,) = records
    assert without_layer(record) == without_layer(reference())
    assert (record["client"]["ip"], record["server"]["ip"]) == (client_ip, server_ip)
    assert record["encapsulation"] == encapsulation
    assert source["skipped"] == skipped
    assert source["tcp_segments"] == 10
    assert source["packets"] == 10 + sum(skipped.values())


def test_every_part_c_capture_is_covered() -> None:
    """Each file the README lists in Part C has its expected record here (vxlan8472 below)."""
    part_c = (CRAFTED / "README.md").read_text(encoding="utf-8").split("## Part C")[1]
    assert set(re.findall(r"^- `([^`]+)`", part_c, re.MULTILINE)) == {
        *CASES, "ref_vxlan8472.pcap"}


def test_vxlan_on_8472_needs_tunnel_port(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(CRAFTED / "ref_vxlan8472.pcap")
    code, out, err = run_cli(capsys, "analyze", "-q", "-f", "json", path)
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert document["connections"] == []
    assert document["source"]["skipped"] == {"not_tcp": 10}

    code, out, err = run_cli(capsys, "analyze", "-q", "-f", "json", "--tunnel-port",
                             "vxlan=8472", path)
    assert (code, err) == (0, "")
    (record,) = json.loads(out)["connections"]
    assert record["encapsulation"] == [{"type": "vxlan", "vni": 42, "outer": udp(51000, 8472)}]
    assert without_layer(record) == without_layer(reference())


def test_csv_flattens_the_nested_path(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "analyze", "-q", "-f", "csv",
                           str(CRAFTED / "ref_geneve_in_vxlan.pcap"))
    assert code == 0
    header, row = out.splitlines()
    assert header.endswith(",encapsulation") and row.endswith(",vxlan:42>geneve:7")
