"""Tunnels at the command line (issue 15): --tunnel-port, the `encapsulation` of records in
jsonl and csv, two tunnels with the same inner 4-tuple, malformed and too deep layers.
Frames are built by hand (struct), as in test_robustness."""

from __future__ import annotations

import csv
import io
import json
import struct
from pathlib import Path

import pytest
from conftest import run_cli
from test_schema import validator

SYN, ACK = 0x02, 0x10


def ipv4(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000, 64, proto, 0,
                       bytes(map(int, src.split("."))), bytes(map(int, dst.split(".")))) + payload


def tcp(sport: int, dport: int, seq: int, ack: int, flags: int) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)


def ether(payload: bytes, ethertype: int = 0x0800) -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + struct.pack("!H", ethertype) + payload


def inner_handshake() -> list[bytes]:
    """10.0.0.1:40000 -> 10.0.0.2:80, as Ethernet frames (what VXLAN carries)."""
    return [ether(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(40000, 80, 1000, 0, SYN))),
            ether(ipv4("10.0.0.2", "10.0.0.1", 6, tcp(80, 40000, 5000, 1001, SYN | ACK))),
            ether(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(40000, 80, 1001, 5001, ACK)))]


def vxlan(inner: bytes, vni: int, port: int = 4789, outer: tuple[str, str] = ("192.0.2.1",
                                                                              "192.0.2.2"),
          flags: int = 0x08) -> bytes:
    """`inner` in VXLAN (RFC 7348) in UDP in IPv4 in Ethernet; outer addresses swapped for
    frames the server sends, so each direction is one side of the tunnel."""
    body = struct.pack("!B3xI", flags, vni << 8) + inner
    udp = struct.pack("!HHHH", 51000, port, 8 + len(body), 0) + body
    return ether(ipv4(*outer, 17, udp))


def in_vxlan(vni: int, port: int = 4789) -> list[bytes]:
    ends = ("192.0.2.1", "192.0.2.2")
    return [vxlan(f, vni, port, ends if i != 1 else (ends[1], ends[0]))
            for i, f in enumerate(inner_handshake())]


def pcap(frames: list[bytes]) -> bytes:
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    return head + b"".join(struct.pack("<IIII", 1_700_000_000, i * 1000, len(f), len(f)) + f
                           for i, f in enumerate(frames))


def write(tmp_path: Path, name: str, frames: list[bytes]) -> Path:
    path = tmp_path / name
    path.write_bytes(pcap(frames))
    return path


def jsonl(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict]:
    code, out, err = run_cli(capsys, "analyze", "-f", "jsonl", *args)
    assert (code, err) == (0, "")
    return [json.loads(line) for line in out.splitlines()]


def source(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    code, out, _ = run_cli(capsys, "analyze", "-q", "-f", "json", *args)
    assert code == 0
    return dict(json.loads(out)["source"])


OUTER = {"src": "192.0.2.1", "dst": "192.0.2.2", "sport": 51000, "dport": 4789}


def test_vxlan_connection_names_its_tunnel(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    (record,) = jsonl(capsys, str(write(tmp_path, "vxlan.pcap", in_vxlan(42))))
    assert record["encapsulation"] == [{"type": "vxlan", "vni": 42, "outer": OUTER}]
    assert (record["client"], record["server"]) == ({"ip": "10.0.0.1", "port": 40000},
                                                    {"ip": "10.0.0.2", "port": 80})
    assert record["handshake"]["complete"] is True
    validator("connection").validate(record)


def test_plain_traffic_has_an_empty_encapsulation(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    (record,) = jsonl(capsys, str(write(tmp_path, "plain.pcap", inner_handshake())))
    assert record["encapsulation"] == []


def test_same_inner_tuple_in_two_vnis_is_two_connections(capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    a, b = in_vxlan(42), in_vxlan(43)
    frames = [a[0], b[0], a[1], b[1], a[2], b[2]]
    records = jsonl(capsys, str(write(tmp_path, "two.pcap", frames)))
    assert [r["encapsulation"][0]["vni"] for r in records] == [42, 43]
    assert all(r["handshake"]["complete"] and r["packets"] == {"client": 2, "server": 1}
               for r in records)


def test_tunnel_port_decodes_vxlan_on_another_port(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    path = write(tmp_path, "8472.pcap", in_vxlan(7, port=8472))
    assert jsonl(capsys, str(path)) == []  # UDP to a port tcptrace does not know
    assert source(capsys, str(path))["skipped"] == {"not_tcp": 3}
    (record,) = jsonl(capsys, "--tunnel-port", "vxlan=8472", str(path))
    assert record["encapsulation"] == [{"type": "vxlan", "vni": 7,
                                        "outer": {**OUTER, "dport": 8472}}]


@pytest.mark.parametrize("command", ["check", "ladder", "report"])
def test_every_analysis_command_takes_tunnel_port(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path, command: str) -> None:
    path = str(write(tmp_path, "8472.pcap", in_vxlan(7, port=8472)))
    args = {"check": ["--min-connections", "1"], "ladder": ["--conn", "1"],
            "report": ["-o", str(tmp_path / "r.html")]}[command]
    if command != "report":  # (a report of no connection is still a report)
        assert run_cli(capsys, command, *args, path)[0] != 0
    code, _, err = run_cli(capsys, command, *args, "--tunnel-port", "vxlan=8472", path)
    assert (code, err) == (0, "")


@pytest.mark.parametrize("value", ["vxlan", "foo=1", "vxlan=0", "vxlan=65536", "gtp=x"])
def test_a_bad_tunnel_port_is_a_usage_error(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path, value: str) -> None:
    path = str(write(tmp_path, "v.pcap", in_vxlan(1)))
    code, out, err = run_cli(capsys, "analyze", "--tunnel-port", value, path)
    assert (code, out) == (2, "")
    assert err.startswith(f"tcptrace: error: Invalid value for '--tunnel-port': '{value}'")


def test_csv_flattens_the_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plain = write(tmp_path, "plain.pcap", inner_handshake())
    tunnelled = write(tmp_path, "vxlan.pcap", in_vxlan(42))
    for path, cell in ((plain, ""), (tunnelled, "vxlan:42")):
        code, out, _ = run_cli(capsys, "analyze", "-f", "csv", str(path))
        header, row = csv.reader(io.StringIO(out))
        assert code == 0 and header[-1] == "encapsulation" and row[-1] == cell


def test_malformed_and_too_deep_tunnels_are_counted(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    good = inner_handshake()[0]
    bad_flags = vxlan(good, 1, flags=0x00)  # the I flag must be set (RFC 7348)
    cut = vxlan(good, 1)[: 14 + 20 + 8 + 4]  # ends inside the VXLAN header
    deep = good
    for vni in range(5):  # one more than the 4 tunnels decapsulated
        deep = vxlan(deep, vni)
    path = write(tmp_path, "bad.pcap", [bad_flags, cut, deep])
    skipped = source(capsys, str(path))["skipped"]
    assert skipped == {"bad_tunnel_header": 1, "truncated_tunnel_header": 1,
                       "tunnel_too_deep": 1}
    code, _, err = run_cli(capsys, "analyze", "-f", "jsonl", str(path))
    assert code == 0
    assert [line.split(":")[2].strip() for line in err.splitlines()] == [
        "truncated_tunnel_header", "bad_tunnel_header", "tunnel_too_deep"]


def test_nested_tunnels_are_listed_outermost_first(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    """VXLAN inside GRE (IP protocol 47, no key): two layers, valid JSON in every format."""
    gre = [ether(ipv4(*(("192.0.2.1", "192.0.2.2") if i != 1 else ("192.0.2.2", "192.0.2.1")),
                      47, struct.pack("!HH", 0, 0x0800) + f[14:]))
           for i, f in enumerate(in_vxlan(9))]
    path = str(write(tmp_path, "gre-vxlan.pcap", gre))
    (record,) = jsonl(capsys, path)
    expected = [{"type": "gre", "outer": {"src": "192.0.2.1", "dst": "192.0.2.2"}},
                {"type": "vxlan", "vni": 9, "outer": OUTER}]
    assert record["encapsulation"] == expected
    code, out, _ = run_cli(capsys, "analyze", "-f", "json", path)
    assert code == 0 and json.loads(out)["connections"][0]["encapsulation"] == expected
    validator("connection").validate(record)
    code, out, _ = run_cli(capsys, "analyze", "-f", "csv", path)
    assert list(csv.reader(io.StringIO(out)))[1][-1] == "gre>vxlan:9"
