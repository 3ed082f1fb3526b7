"""--filter: the BPF subset, evaluated on decoded segments."""

from __future__ import annotations

import pytest
from conftest import CRAFTED, LINUX, analyze

from tcptrace.errors import FilterError
from tcptrace.filter import parse_filter

REF = CRAFTED / "ref_eth_us_le.pcap"


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
])
def test_expressions(expression: str, kept: int) -> None:
    _, source = analyze(REF, filter=expression)
    assert source["tcp_segments"] == kept
    assert source["skipped"].get("filtered_out", 0) == 10 - kept


def test_ipv6_host_and_net() -> None:
    _, source = analyze(LINUX / "ipv6.pcap", filter="net fd77::/64 and host fd77::1")
    assert source["tcp_segments"] == 10
    _, source = analyze(LINUX / "ipv6.pcap", filter="ip")
    assert source["tcp_segments"] == 0


@pytest.mark.parametrize(("expression", "message"), [
    ("", "empty filter expression"),
    ("port", "filter ends too early"),
    ("port 99999", "not a port number"),
    ("host 10.0.0", "not an IP address"),
    ("net banana", "not a network"),
    ("udp", "unknown filter word 'udp'"),
    ("(port 80", "filter ends too early"),
    ("port 80 port 81", "unexpected 'port'"),
])
def test_errors_name_the_problem(expression: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_filter(expression)
