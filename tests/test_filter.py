"""--filter: libpcap's language, compiled by libpcap per link type and run on each frame
before decode, in every command that reads captures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import CRAFTED, LINUX, run_cli

from tcptrace.errors import LiveCaptureError

REF = CRAFTED / "ref_eth_us_le.pcap"


def source_of(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = run_cli(capsys, "analyze", "-q", "-f", "json", *args)
    assert (code, err) == (0, ""), err
    source: dict[str, Any] = json.loads(out)["source"]
    return source


# The expressions of the former home-made subset: valid BPF, the same segments kept.
@pytest.mark.parametrize(("expression", "kept"), [
    ("tcp", 10),
    ("port 80", 10),
    ("port http", 10),
    ("src port 80", 4),
    ("dst port 80", 6),
    ("host 10.0.0.1", 10),
    ("src host 10.0.0.1", 6),
    ("dst 10.0.0.1", 4),
    ("net 10.0.0.0/24", 10),
    ("net 10.0.1.0/24", 0),
    ("portrange 79-81", 10),
    ("not port 80", 0),
    ("port 80 and host 10.0.0.2", 10),
    ("port 81 or host 10.0.0.9", 0),
    ("(port 81 or host 10.0.0.1) and not src port 80", 6),
    ("ip", 10),
    ("ip6", 0),
    ("port 80 && ! host 10.0.0.3", 10),
    # and what the subset rejected
    ("tcp port 80", 10),
    ("port 80 or 81", 10),
    ("tcp dst port 80", 6),
    ("tcp[tcpflags] & tcp-syn != 0", 2),
    ("udp", 0),
    ("ether src 02:00:00:00:00:01", 6),
])
def test_expressions(capsys: pytest.CaptureFixture[str], expression: str, kept: int) -> None:
    source = source_of(capsys, "--filter", expression, str(REF))
    assert source["tcp_segments"] == kept
    assert source["skipped"] == ({"filtered_out": 10 - kept} if kept < 10 else {})


def test_the_issue_expressions(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 18: `tcp port 8080`, `port 8080 or 8081`, `tcp dst port 8081` select what
    tcpdump selects."""
    files = [str(p) for p in sorted(LINUX.glob("*.pcap"))]

    def servers(expression: str) -> list[tuple[str, int]]:
        code, out, _ = run_cli(capsys, "analyze", "-q", "-f", "json", "--filter", expression,
                               *files)
        assert code == 0
        return sorted({(c["server"]["ip"], c["server"]["port"])
                       for c in json.loads(out)["connections"]})

    assert servers("tcp port 8080") == servers("port 8080")
    assert {port for _, port in servers("tcp port 8080")} == {8080}
    assert servers("port 8080 or 8081") == sorted(
        set(servers("port 8080")) | set(servers("port 8081")))
    assert servers("tcp dst port 8081") == [("10.77.0.2", 8081)]


def test_ipv6_host_and_net(capsys: pytest.CaptureFixture[str]) -> None:
    source = source_of(capsys, "--filter", "net fd77::/64 and host fd77::1",
                       str(LINUX / "ipv6.pcap"))
    assert source["tcp_segments"] == 10
    source = source_of(capsys, "--filter", "ip", str(LINUX / "ipv6.pcap"))
    assert (source["tcp_segments"], source["skipped"]) == (0, {"filtered_out": 10})


@pytest.mark.parametrize("capture", [
    "ref_sll.pcap", "ref_sll2.pcap", "ref_raw4.pcap", "ref_raw6.pcap", "ref_null.pcap",
    "ref_loop.pcap", "ref_ipv4_dlt228.pcap", "ref_ipv6_dlt229.pcap", "ref_vlan.pcap",
    "ref_qinq.pcap", "ref_eth.pcapng.gz", "ref_multi_if.pcapng",
])
def test_every_link_type_is_filtered_by_its_own_program(
        capsys: pytest.CaptureFixture[str], capture: str) -> None:
    """libpcap compiles the expression for each link type met (raw IP: LINKTYPE_RAW 101 is
    DLT_RAW to its compiler); VLAN-tagged frames need `vlan`, as with tcpdump."""
    path = str(CRAFTED / capture)
    tagged = capture in ("ref_vlan.pcap", "ref_qinq.pcap")
    port = source_of(capsys, "--filter", "tcp port 80", path)
    assert port["tcp_segments"] == (0 if tagged else 10)
    other = source_of(capsys, "--filter", "tcp port 81", path)
    assert (other["tcp_segments"], other["skipped"]) == (0, {"filtered_out": 10})
    if tagged:
        vlan = source_of(capsys, "--filter", "vlan and vlan and tcp port 80"
                         if capture == "ref_qinq.pcap" else "vlan and tcp port 80", path)
        assert vlan["tcp_segments"] == 10


def test_ipv6_extension_headers_need_protochain(capsys: pytest.CaptureFixture[str]) -> None:
    """libpcap's `tcp` reads the IPv6 next header only (tcpdump's answer too): behind
    extension headers, `ip6 protochain 6` finds TCP."""
    path = str(CRAFTED / "ref_ipv6_ext.pcap")
    assert source_of(capsys, "--filter", "tcp port 80", path)["tcp_segments"] == 0
    assert source_of(capsys, "--filter", "ip6 protochain 6", path)["tcp_segments"] == 10


def test_an_expression_that_cannot_apply_to_a_link_type_is_warned(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`vlan` has no meaning on Linux cooked captures: their frames are filtered out, said
    once."""
    code, out, err = run_cli(capsys, "analyze", "-f", "json", "--filter", "vlan",
                             str(CRAFTED / "ref_sll.pcap"))
    assert code == 0
    source = json.loads(out)["source"]
    assert (source["tcp_segments"], source["skipped"]) == (0, {"filtered_out": 10})
    assert source["warnings"] == [
        "filter_linktype: --filter \"vlan\" does not apply to link type 113 (no VLAN support "
        "for Linux cooked v1): its frames are filtered out"]
    assert "does not apply to link type 113" in err


def test_frames_are_filtered_before_decode(capsys: pytest.CaptureFixture[str]) -> None:
    """Non-TCP frames the expression rejects are filtered out, not decoded (as in tcpdump);
    what it keeps is decoded and counted as before."""
    noise = str(CRAFTED / "ref_with_noise.pcap")
    assert source_of(capsys, "--filter", "port 80", noise)["skipped"] == {"filtered_out": 4}
    assert source_of(capsys, "--filter", "ip", noise)["skipped"] == {
        "filtered_out": 2, "not_tcp": 2}
    fragments = str(CRAFTED / "ref_with_fragments.pcap")
    assert source_of(capsys, "--filter", "ip", fragments)["skipped"] == {"ip_fragment": 2}


@pytest.mark.parametrize(("expression", "message"), [
    ("port", "--filter 'port': syntax error at 'port' (column 1)"),
    ("tcp prot 80", "--filter 'tcp prot 80': syntax error at 'prot' (column 5)"),
    ("port 8080 or", "--filter 'port 8080 or': syntax error at 'or' (column 11)"),
    ("port 80 port 81", "--filter 'port 80 port 81': syntax error at 'port' (column 9)"),
    ("port 99999", "--filter 'port 99999': illegal port number 99999 > 65535"),
    ("host nowhere.invalid", "--filter 'host nowhere.invalid': unknown host 'nowhere.invalid'"),
    ("net banana/8", "--filter 'net banana/8': unknown network 'banana'"),
])
@pytest.mark.parametrize("command", [
    ["analyze"], ["check", "--no-rst"], ["ladder", "--conn", "1"], ["report", "-o", "r.html"],
])
def test_errors_name_the_failing_word(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, command: list[str],
                                      expression: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *command, "--filter", expression, str(REF))
    assert (code, out, err) == (2, "", f"tcptrace: error: {message}\n")
    assert not (tmp_path / "r.html").exists()


def test_live_takes_the_same_language(capsys: pytest.CaptureFixture[str]) -> None:
    """The expression is checked before any capture starts (no interface needed)."""
    code, _, err = run_cli(capsys, "live", "-i", "lo", "--filter", "tcp prot 80")
    assert (code, err) == (2, "tcptrace: error: --filter 'tcp prot 80': syntax error at "
                              "'prot' (column 5)\n")


def test_without_libpcap_filter_fails_in_one_line(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> None:
        raise LiveCaptureError("live capture needs libpcap, which is not installed")

    monkeypatch.setattr("tcptrace.sources.live._libpcap", missing)
    code, out, err = run_cli(capsys, "analyze", "-q", "--filter", "port 80", str(REF))
    assert (code, out, err) == (2, "", (
        "tcptrace: error: --filter needs libpcap, which is not installed (Debian/Ubuntu: "
        "apt-get install libpcap0.8); everything else works without it\n"))
    code, out, err = run_cli(capsys, "analyze", "-q", "-f", "jsonl", str(REF))
    assert (code, len(out.splitlines()), err) == (0, 1, "")


def test_the_filter_machine_runs_on_the_bytes_given() -> None:
    from tcptrace.bpf import compile_filter

    bpf = compile_filter("tcp[13] & 2 != 0 and len > 60")
    assert bpf.expression == "tcp[13] & 2 != 0 and len > 60"
    syn = bytes(REF.read_bytes()[24 + 16:24 + 16 + 74])  # the first frame: the SYN
    assert bpf.matches(1, syn) and not bpf.matches(1, syn, 60)
    assert not bpf.matches(1, syn[:40])  # a load beyond the bytes given: no match
    assert not bpf.matches(1, b"")
    assert bpf.compile(1) > 0
    with pytest.raises(ValueError, match="no VLAN support for Linux cooked v1"):
        compile_filter("vlan").compile(113)
    # libpcap refuses to compile what never matches (tcp[] on raw IPv6): `ret #0`, no error
    assert compile_filter("tcp[13] & 2 != 0").compile(229) == 1


def test_an_expression_that_never_matches_a_link_type_filters_silently(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "analyze", "-f", "json", "--filter", "tcp[13] & 2 != 0",
                             str(CRAFTED / "ref_ipv6_dlt229.pcap"))
    source = json.loads(out)["source"]
    assert (code, err) == (0, "")
    assert (source["tcp_segments"], source["skipped"], source["warnings"]) == (
        0, {"filtered_out": 10}, [])
