"""Crafted captures (pcaps/crafted, made by pcaps/craft.py) for the rare paths and for
every container, link type and network-layer variant of one reference connection."""

from __future__ import annotations

import json

import pytest
from conftest import CRAFTED, analyze, one, states

REFERENCE_CLIENT = [(0, "SYN_SENT"), (10100, "ESTABLISHED"), (40000, "FIN_WAIT_1"),
                    (50000, "FIN_WAIT_2"), (50100, "TIME_WAIT")]
REFERENCE_SERVER = [(10000, "SYN_RCVD"), (10100, "ESTABLISHED"), (50000, "CLOSE_WAIT"),
                    (50000, "LAST_ACK"), (50100, "CLOSED")]


def test_simultaneous_open() -> None:
    r = one(CRAFTED / "simultaneous_open.pcap")
    assert r["handshake"]["simultaneous_open"] is True and r["handshake"]["complete"] is True
    assert r["handshake"]["rtt_ms"] is None and r["handshake"]["setup_ms"] == 11.0
    assert r["client"]["port"] == 5000  # the first SYN's sender
    assert states(r, "client") == [(0, "SYN_SENT"), (10000, "SYN_RCVD"), (11000, "ESTABLISHED"),
                                   (50000, "FIN_WAIT_1"), (60000, "FIN_WAIT_2"),
                                   (80000, "TIME_WAIT")]
    assert states(r, "server") == [(1000, "SYN_SENT"), (11000, "SYN_RCVD"),
                                   (11000, "ESTABLISHED"), (60000, "CLOSE_WAIT"),
                                   (70000, "LAST_ACK"), (80000, "CLOSED")]
    assert r["bytes"] == {"client": 40, "server": 60}


def test_fin_carrying_data() -> None:
    r = one(CRAFTED / "fin_with_data.pcap")
    assert states(r, "client") == [(0, "SYN_SENT"), (10100, "ESTABLISHED"),
                                   (20100, "FIN_WAIT_1"), (40000, "FIN_WAIT_2"),
                                   (61000, "TIME_WAIT")]
    assert r["bytes"] == {"client": 20, "server": 100}
    assert r["half_close"] == {"side": "client", "bytes_after_fin": 100, "duration_ms": 30.9}


def test_rst_in_time_wait_does_not_undo_the_close() -> None:
    r = one(CRAFTED / "rst_in_time_wait.pcap")
    assert r["outcome"] == "CLOSED" and r["close"]["time_wait"] == "client"
    assert {k: r["rst"][k] for k in ("sender", "state", "receiver_state", "kind")} == {
        "sender": "server", "state": "CLOSED", "receiver_state": "TIME_WAIT", "kind": "TIME_WAIT"}
    assert states(r, "client")[-2:] == [(55100, "TIME_WAIT"), (555100, "CLOSED")]


def test_retransmitted_fin_is_not_a_second_close() -> None:
    r = one(CRAFTED / "fin_retransmitted.pcap")
    assert states(r, "client") == [(0, "SYN_SENT"), (10100, "ESTABLISHED"),
                                   (40000, "FIN_WAIT_1"), (250000, "FIN_WAIT_2"),
                                   (260100, "TIME_WAIT")]
    # the server shows it received the FIN only when it acknowledges it (250 ms)
    assert states(r, "server")[2:] == [(250000, "CLOSE_WAIT"), (260000, "LAST_ACK"),
                                       (260100, "CLOSED")]
    assert r["anomalies"] == {"client": 0, "server": 0}


def test_out_of_order_fin_waits_for_the_missing_data() -> None:
    r = one(CRAFTED / "fin_out_of_order.pcap")
    assert r["close"]["initiator"] == "server" and r["close"]["time_wait"] == "server"
    # the FIN (30.2 ms) overtook the last data segment (30.3 ms): the client enters
    # CLOSE_WAIT when it acknowledges all data and the FIN (40.3 ms)
    assert states(r, "client") == [(0, "SYN_SENT"), (10100, "ESTABLISHED"),
                                   (40300, "CLOSE_WAIT"), (100000, "LAST_ACK"),
                                   (110000, "CLOSED")]
    assert r["half_close"] is None  # the late segment is data from before the FIN
    assert r["bytes"]["server"] == 300 and r["retransmitted_bytes"]["server"] == 0


def test_syn_retransmission_without_timestamps_is_reported_ambiguous() -> None:
    r = one(CRAFTED / "syn_retrans_no_ts.pcap")
    assert r["handshake"] == {
        "complete": True, "syn_to_synack_ms": None, "synack_to_ack_ms": 10.0, "rtt_ms": None,
        "setup_ms": 1020.0, "syn_retransmits": 1, "synack_retransmits": 0,
        "matched_by": "unique",
        "ambiguity": "retransmissions without TCP timestamps: the answered segment is unknown",
        "simultaneous_open": False,
    }


def test_lost_synack_with_timestamps_is_unambiguous() -> None:
    r = one(CRAFTED / "synack_lost_ts.pcap")
    assert r["handshake"] == {
        "complete": True, "syn_to_synack_ms": 10.0, "synack_to_ack_ms": 10.0, "rtt_ms": 20.0,
        "setup_ms": 1020.0, "syn_retransmits": 1, "synack_retransmits": 1,
        "matched_by": "timestamps", "ambiguity": None, "simultaneous_open": False,
    }


def test_port_reuse_starts_a_new_connection() -> None:
    records, source = analyze(CRAFTED / "port_reuse.pcap")
    assert [r["id"] for r in records] == [1, 2]
    assert records[0]["client"] == records[1]["client"] == {"ip": "10.0.0.1", "port": 40008}
    assert records[1]["previous_id"] == 1 and records[0]["previous_id"] is None
    assert [r["outcome"] for r in records] == ["CLOSED", "CLOSED"]
    assert [r["close"]["time_wait"] for r in records] == ["client", "client"]
    assert source["port_reuse"] == 1
    assert [r["packets"] for r in records] == [{"client": 6, "server": 3}] * 2  # 18 frames


def test_refused_then_successful_connection() -> None:
    records, _ = analyze(CRAFTED / "refused_then_ok.pcap")
    assert [(r["server"]["port"], r["outcome"]) for r in records] == [(81, "REFUSED"),
                                                                      (80, "CLOSED")]
    assert records[0]["rst"]["kind"] == "REFUSED"


def test_keepalive_crafted() -> None:
    r = one(CRAFTED / "keepalive_crafted.pcap")
    assert r["keepalive"] == {"probes": {"client": 3, "server": 0},
                              "acks": {"client": 0, "server": 3},
                              "intervals_ms": {"client": [1969.9, 1000.0, 1000.0], "server": []}}


def test_reset_after_close_by_the_closed_side() -> None:
    r = one(CRAFTED / "rst_after_close.pcap")
    assert r["outcome"] == "RESET"
    assert {k: r["rst"][k] for k in ("sender", "state", "receiver_state", "kind")} == {
        "sender": "server", "state": "FIN_WAIT_2", "receiver_state": "CLOSE_WAIT",
        "kind": "AFTER_CLOSE"}
    assert r["half_close"] == {"side": "server", "bytes_after_fin": 50, "duration_ms": 19.9}
    assert r["close"]["time_wait"] is None
    assert r["final_state"] == {"client": "CLOSED", "server": "CLOSED"}


def _reference(**changes: object) -> dict:
    r = one(CRAFTED / "ref_eth_us_le.pcap")
    return {**r, **changes}


def _normalized(r: dict) -> str:
    r = dict(r, client=dict(r["client"], ip="*"), server=dict(r["server"], ip="*"))
    r.pop("zeek", None)  # Zeek's IP-level byte counts differ between IPv4 and IPv6 by design
    return json.dumps(r, sort_keys=True)


def test_reference_connection() -> None:
    r = one(CRAFTED / "ref_eth_us_le.pcap")
    assert states(r, "client") == REFERENCE_CLIENT and states(r, "server") == REFERENCE_SERVER
    assert r["handshake"]["syn_to_synack_ms"] == 10.0
    assert r["handshake"]["synack_to_ack_ms"] == 0.1
    assert r["bytes"] == {"client": 30, "server": 60}
    assert (r["first_ts"], r["last_ts"]) == (1700000000.0, 1700000000.0501)


@pytest.mark.parametrize("name", [
    "ref_eth_ns_le.pcap", "ref_eth_us_be.pcap", "ref_eth_ns_be.pcap", "ref_eth.pcapng",
    "ref_multi_if.pcapng", "ref_be.pcapng", "ref_eth.pcap.gz", "ref_eth.pcapng.gz",
    "ref_vlan.pcap", "ref_qinq.pcap", "ref_sll.pcap", "ref_sll2.pcap", "ref_null.pcap",
    "ref_loop.pcap", "ref_raw4.pcap", "ref_ipv4_dlt228.pcap", "ref_ipv6.pcap",
    "ref_ipv6_ext.pcap", "ref_raw6.pcap", "ref_ipv6_dlt229.pcap", "ref_ipv4_options.pcap",
    "ref_snaplen80.pcap", "ref_with_fragments.pcap", "ref_with_noise.pcap",
])
def test_every_container_and_link_type_gives_the_reference_result(name: str) -> None:
    assert _normalized(one(CRAFTED / name)) == _normalized(_reference())


@pytest.mark.parametrize(("name", "skipped"), [
    ("ref_with_fragments.pcap", {"ip_fragment": 2}),
    ("ref_with_noise.pcap", {"not_ip": 1, "not_tcp": 3}),
    ("ref_snaplen80.pcap", {"snaplen_cut": 2}),
    ("ref_eth.pcapng", {}),
])
def test_skipped_frames_are_counted_by_reason(name: str, skipped: dict) -> None:
    assert analyze(CRAFTED / name)[1]["skipped"] == skipped


def test_ipv6_endpoints() -> None:
    r = one(CRAFTED / "ref_ipv6_ext.pcap")
    assert (r["client"]["ip"], r["server"]["ip"]) == ("fd00::1", "fd00::2")


def test_snaplen_cutting_the_timestamp_option_loses_only_the_matching_method() -> None:
    r = one(CRAFTED / "ref_snaplen64.pcap")
    assert r["handshake"]["matched_by"] == "unique" and r["handshake"]["rtt_ms"] == 10.1
    assert r["bytes"] == {"client": 30, "server": 60}  # lengths come from the IP header
    assert states(r, "client") == REFERENCE_CLIENT


def test_two_files_merged_in_time_order() -> None:
    merged = one(CRAFTED / "ref_split_a.pcap", CRAFTED / "ref_split_b.pcap")
    assert _normalized(merged) == _normalized(_reference())


def test_truncated_file_keeps_what_was_read() -> None:
    records, source = analyze(CRAFTED / "ref_truncated.pcap")
    assert len(records) == 1 and records[0]["outcome"] == "OPEN"
    assert records[0]["packets"] == {"client": 4, "server": 3}
    assert source["packets"] == 7 and source["skipped"] == {"truncated_record": 1}
    assert source["warnings"] == [
        f"truncated_record: {CRAFTED / 'ref_truncated.pcap'}: file ends inside a record at "
        "byte 704 (after frame 7; 49 bytes dropped); the capture was probably cut short"]


def test_fin_sent_in_syn_sent_is_an_anomaly_not_the_close(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Zeek's fin_retransmission trace: the client sends a FIN (no ACK) before the SYN/ACK
    arrives, then FIN/ACK once established. The first FIN cannot be sent from SYN_SENT: it is
    counted as an anomaly, so the SYN/ACK (ack = ISN + 1) acknowledges the SYN, not a FIN,
    and the FIN/ACK from ESTABLISHED is the client's close."""
    from test_robustness import ACK, FIN, RST, SYN, frame, pcap

    c = {"src": "10.0.0.1", "dst": "10.0.0.2", "sport": 40000, "dport": 80}
    s = {"src": "10.0.0.2", "dst": "10.0.0.1", "sport": 80, "dport": 40000}
    path = tmp_path / "fin_in_syn_sent.pcap"
    path.write_bytes(pcap([
        frame(**c, seq=1000, flags=SYN),
        frame(**c, seq=1000, flags=FIN),
        frame(**s, seq=5000, ack=1001, flags=SYN | ACK),
        frame(**c, seq=1000, ack=5001, flags=FIN | ACK),
        frame(**s, seq=5001, flags=RST),
    ]))
    r = one(path)
    assert [state for _, state in states(r, "client")] == [
        "SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "CLOSED"]
    assert [state for _, state in states(r, "server")] == ["SYN_RCVD", "ESTABLISHED", "CLOSED"]
    assert r["anomalies"] == {"client": 1, "server": 0}
    assert r["close"]["initiator"] == "client" and r["close"]["fin_ts"]["client"] == r[
        "first_ts"] + 3
    assert r["outcome"] == "RESET"
    assert (r["rst"]["sender"], r["rst"]["state"], r["rst"]["kind"]) == (
        "server", "ESTABLISHED", "ABORT")
