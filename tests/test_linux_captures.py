"""Real captures of the Linux TCP stack (pcaps/linux, recorded by pcaps/record_linux.py).

Every expected value below was checked by hand against the capture's tshark listing
(pcaps/linux/README.md) and the `ss` output recorded with it; times are µs after the
connection's first packet.
"""

from __future__ import annotations

from conftest import LINUX, PCAPS, analyze, one, states

NORMAL_OPEN_NO_LOSS = {"syn_retransmits": 0, "synack_retransmits": 0, "matched_by": "timestamps",
                       "ambiguity": None, "simultaneous_open": False, "complete": True}


def handshake(record: dict, **expected: object) -> None:
    assert record["handshake"] == {**NORMAL_OPEN_NO_LOSS, **expected}


def test_client_closes_first_holds_time_wait() -> None:
    r = one(LINUX / "client_close.pcap")
    assert (r["client"], r["server"]) == ({"ip": "10.77.0.1", "port": 42150},
                                          {"ip": "10.77.0.2", "port": 8080})
    assert r["id"] == 1 and r["role_rule"] == "syn" and r["outcome"] == "CLOSED"
    handshake(r, syn_to_synack_ms=0.028, synack_to_ack_ms=0.014, rtt_ms=0.042, setup_ms=0.042)
    assert states(r, "client") == [(0, "SYN_SENT"), (42, "ESTABLISHED"), (259, "FIN_WAIT_1"),
                                   (312, "FIN_WAIT_2"), (322, "TIME_WAIT")]
    assert states(r, "server") == [(28, "SYN_RCVD"), (42, "ESTABLISHED"), (312, "CLOSE_WAIT"),
                                   (312, "LAST_ACK"), (322, "CLOSED")]
    assert r["close"]["initiator"] == r["close"]["time_wait"] == "client"
    assert r["final_state"] == {"client": "TIME_WAIT", "server": "CLOSED"}
    assert r["half_close"] is None and r["rst"] is None
    assert r["packets"] == {"client": 6, "server": 4}
    assert r["bytes"] == {"client": 5, "server": 5}
    assert r["reuse"] == {"protocol": None, "requests": 1, "responses": 1, "idle_gaps_ms": []}
    assert r["first_ts"] == 1795317888.747063 and r["last_ts"] == 1795317888.747385
    # TIME_WAIT lasts 2 * MSL (30 s default, Linux's 60 s TCP_TIMEWAIT_LEN)
    assert r["close"]["time_wait_until"] - r["close"]["time_wait_ts"] == 60.0


def test_server_closes_first_http10() -> None:
    r = one(LINUX / "server_close.pcap")
    handshake(r, syn_to_synack_ms=0.029, synack_to_ack_ms=0.015, rtt_ms=0.044, setup_ms=0.044)
    assert states(r, "server") == [(29, "SYN_RCVD"), (44, "ESTABLISHED"), (245, "FIN_WAIT_1"),
                                   (266, "FIN_WAIT_2"), (280, "TIME_WAIT")]
    assert states(r, "client") == [(0, "SYN_SENT"), (44, "ESTABLISHED"), (266, "CLOSE_WAIT"),
                                   (266, "LAST_ACK"), (280, "CLOSED")]
    assert r["close"]["initiator"] == r["close"]["time_wait"] == "server"
    assert r["reuse"] == {"protocol": "http/1.0", "requests": 1, "responses": 1,
                          "idle_gaps_ms": []}
    assert r["bytes"] == {"client": 27, "server": 3067}  # 67-byte header + 3000-byte body
    assert r["packets"] == {"client": 7, "server": 7}


def test_simultaneous_close_both_hold_time_wait() -> None:
    r = one(LINUX / "simultaneous_close.pcap")
    # 50 ms each way through the forwarder, captured on the client side
    handshake(r, syn_to_synack_ms=100.614, synack_to_ack_ms=0.046, rtt_ms=100.66,
              setup_ms=100.66)
    assert r["close"]["initiator"] == r["close"]["time_wait"] == "both"
    # Each FIN's ACK field does not cover the other FIN: both were in FIN_WAIT_1 when the
    # peer's FIN arrived. The server's ACK of the client FIN echoes the TSval of that FIN,
    # not of the ACK of its own FIN: it went through CLOSING, not FIN_WAIT_2.
    assert states(r, "client") == [(0, "SYN_SENT"), (100660, "ESTABLISHED"),
                                   (2287918, "FIN_WAIT_1"), (2338214, "CLOSING"),
                                   (2388576, "TIME_WAIT")]
    assert states(r, "server") == [(100614, "SYN_RCVD"), (100660, "ESTABLISHED"),
                                   (2338175, "FIN_WAIT_1"), (2388576, "CLOSING"),
                                   (2388576, "TIME_WAIT")]
    assert r["final_state"] == {"client": "TIME_WAIT", "server": "TIME_WAIT"}


def test_half_close_data_after_fin() -> None:
    r = one(LINUX / "half_close.pcap")
    # client FIN at 96 µs, then 4 x 5200 bytes from the server, its FIN at 151116 µs
    assert r["half_close"] == {"side": "client", "bytes_after_fin": 20800, "duration_ms": 151.02}
    assert states(r, "client") == [(0, "SYN_SENT"), (46, "ESTABLISHED"), (96, "FIN_WAIT_1"),
                                   (193, "FIN_WAIT_2"), (151122, "TIME_WAIT")]
    assert states(r, "server") == [(32, "SYN_RCVD"), (46, "ESTABLISHED"), (193, "CLOSE_WAIT"),
                                   (151116, "LAST_ACK"), (151122, "CLOSED")]
    assert r["close"]["time_wait"] == "client" and r["outcome"] == "CLOSED"
    assert r["bytes"] == {"client": 10, "server": 20800}
    assert r["packets"] == {"client": 21, "server": 19}


def test_refused_connection() -> None:
    r = one(LINUX / "refused.pcap")
    assert r["outcome"] == "REFUSED" and r["server"]["port"] == 8081
    assert r["rst"] == {"sender": "server", "state": "CLOSED", "receiver_state": "SYN_SENT",
                        "kind": "REFUSED", "ts": r["first_ts"] + 0.000026, "count": 1}
    assert states(r, "client") == [(0, "SYN_SENT"), (26, "CLOSED")]
    assert states(r, "server") == []
    assert r["final_state"] == {"client": "CLOSED", "server": "CLOSED"}
    assert r["handshake"]["complete"] is False and r["handshake"]["rtt_ms"] is None
    assert r["close"] == {"initiator": None, "time_wait": None, "time_wait_ts": None,
                          "time_wait_until": None, "fin_ts": {"client": None, "server": None}}


def test_abort_with_so_linger_zero() -> None:
    r = one(LINUX / "abort_linger0.pcap")
    assert r["outcome"] == "RESET"
    assert {k: r["rst"][k] for k in ("sender", "state", "receiver_state", "kind", "count")} == {
        "sender": "client", "state": "ESTABLISHED", "receiver_state": "ESTABLISHED",
        "kind": "ABORT", "count": 1}
    assert states(r, "client") == [(0, "SYN_SENT"), (57, "ESTABLISHED"), (100534, "CLOSED")]
    assert states(r, "server") == [(38, "SYN_RCVD"), (57, "ESTABLISHED"), (100534, "CLOSED")]
    assert r["close"]["time_wait"] is None


def test_keepalive_probes_and_acks() -> None:
    r = one(LINUX / "keepalive.pcap")
    # TCP_KEEPIDLE=1 TCP_KEEPINTVL=1: frames 8, 10, 12 (seq = SND.NXT - 1), answered by 9, 11, 13
    assert r["keepalive"] == {
        "probes": {"client": 3, "server": 0},
        "acks": {"client": 0, "server": 3},
        "intervals_ms": {"client": [1000.189, 1023.917, 1024.016], "server": []},
    }
    assert r["reuse"] == {"protocol": None, "requests": 2, "responses": 2,
                          "idle_gaps_ms": [3500.183]}
    assert r["close"]["time_wait"] == "client" and r["outcome"] == "CLOSED"
    assert r["retransmitted_bytes"] == {"client": 0, "server": 0}  # probes carry no data


def test_http11_reuse_counts_split_request_once() -> None:
    r = one(LINUX / "http_reuse.pcap")
    # GET /one, GET /two (sent as 10 + 20 bytes 50 ms apart), GET /three with Connection: close
    assert r["reuse"] == {"protocol": "http/1.1", "requests": 3, "responses": 3,
                          "idle_gaps_ms": [200.194, 200.189]}
    assert r["close"]["initiator"] == r["close"]["time_wait"] == "server"
    assert r["bytes"] == {"client": 111, "server": 473}


def test_download_then_second_request() -> None:
    r = one(PCAPS / "transfer" / "download.pcap")
    # 200,000-byte body in 139 segments, then GET /after (Connection: close); checked with
    # tshark: 119 client / 145 server segments carrying 81 / 200,301 payload bytes
    assert r["packets"] == {"client": 119, "server": 145}
    assert r["bytes"] == {"client": 81, "server": 200301}
    assert r["unique_bytes"] == r["bytes"]
    assert r["reuse"] == {"protocol": "http/1.1", "requests": 2, "responses": 2,
                          "idle_gaps_ms": [0.658]}
    assert r["close"]["initiator"] == r["close"]["time_wait"] == "server"
    assert r["final_state"] == {"client": "CLOSED", "server": "TIME_WAIT"}


def test_syn_retransmission_setup_includes_rto_rtt_does_not() -> None:
    r = one(LINUX / "syn_retransmit.pcap")
    # first SYN dropped by the forwarder; the retransmission 1.03 s later is answered
    handshake(r, syn_retransmits=1, syn_to_synack_ms=0.199, synack_to_ack_ms=0.023,
              rtt_ms=0.222, setup_ms=1029.814)
    assert states(r, "client")[:2] == [(0, "SYN_SENT"), (1029814, "ESTABLISHED")]


def test_lost_synack_matched_by_timestamps() -> None:
    r = one(LINUX / "synack_lost.pcap")
    # Captured on the server side, 20 ms each way. Frame 2's SYN/ACK is lost; the server's
    # timer resends it (frame 3, echoing SYN 1) while the client resends its SYN (frame 4),
    # answered by frame 5. The ACK (frame 6) echoes frame 3's TSval: synack_to_ack is the
    # 40 ms path round trip, and syn_to_synack is SYN 1 to its first answer (frame 2).
    handshake(r, syn_retransmits=1, synack_retransmits=2, syn_to_synack_ms=0.03,
              synack_to_ack_ms=40.462, rtt_ms=40.492, setup_ms=1048.237)
    assert states(r, "server")[:2] == [(30, "SYN_RCVD"), (1048237, "ESTABLISHED")]
    assert states(r, "client")[:2] == [(0, "SYN_SENT"), (1048237, "ESTABLISHED")]
    assert r["anomalies"] == {"client": 0, "server": 0}


def test_ipv6() -> None:
    r = one(LINUX / "ipv6.pcap")
    assert (r["client"], r["server"]) == ({"ip": "fd77::1", "port": 40008},
                                          {"ip": "fd77::2", "port": 8080})
    handshake(r, syn_to_synack_ms=0.031, synack_to_ack_ms=0.014, rtt_ms=0.045, setup_ms=0.045)
    assert r["close"]["time_wait"] == "client" and r["outcome"] == "CLOSED"


def test_capture_starting_mid_connection() -> None:
    r = one(LINUX / "midstream.pcap")
    assert r["role_rule"] == "port"  # no SYN: port 8080 < 55188 is the server
    assert r["server"] == {"ip": "10.77.0.2", "port": 8080}
    assert r["handshake"]["complete"] is False and r["handshake"]["setup_ms"] is None
    assert states(r, "client") == [(0, "ESTABLISHED"), (1000227, "CLOSE_WAIT"),
                                   (1000227, "LAST_ACK"), (1000242, "CLOSED")]
    assert states(r, "server") == [(0, "ESTABLISHED"), (1000169, "FIN_WAIT_1"),
                                   (1000227, "FIN_WAIT_2"), (1000242, "TIME_WAIT")]
    assert r["close"]["time_wait"] == "server"
    assert r["reuse"]["requests"] == 11 and r["reuse"]["protocol"] is None
    assert r["packets"] == {"client": 23, "server": 13}


def test_linux_cooked_sll2_capture() -> None:
    r = one(LINUX / "any_sll2.pcap")
    handshake(r, syn_to_synack_ms=0.027, synack_to_ack_ms=0.014, rtt_ms=0.041, setup_ms=0.041)
    assert r["close"]["time_wait"] == "client"


def test_all_linux_captures_merged_in_time_order() -> None:
    files = sorted(LINUX.glob("*.pcap"))
    records, source = analyze(*files)
    assert len(records) == 13 and source["packets"] == 210 and source["skipped"] == {}
    assert [r["id"] for r in records] == list(range(1, 14))
    firsts = [r["first_ts"] for r in records]
    assert firsts == sorted(firsts)  # ids follow each connection's first packet
    assert all(r["anomalies"] == {"client": 0, "server": 0} for r in records)
