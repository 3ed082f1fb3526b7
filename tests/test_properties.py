"""Properties (hypothesis): the decoder and the connection machinery never crash on any input.

- decode: random bytes, and mutated real headers, as frames of every link type in a pcapng:
  no failure, and every frame is accounted for (decoded + skipped == frames, `snaplen_cut`
  and `short_frame` aside since those segments are still analyzed);
- a connection: random segment sequences on one 4-tuple, written as a pcap and analyzed: no
  failure, states are RFC 9293 state names, counters never negative.
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path
from typing import Any

from conftest import analyze
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_robustness import ACK, FIN, PSH, RST, SHB, SYN, block, frame, pcap

# the link types the engine decodes (docs/input.md), and some it does not
SUPPORTED_LINKTYPES = [1, 0, 12, 14, 101, 108, 113, 276, 228, 229]
LINKTYPES = [*SUPPORTED_LINKTYPES, 10, 105, 127, 0xFFFF]
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def capture(frames: list[bytes], linktypes: list[int], wire_extra: list[int]) -> bytes:
    """A pcapng with one interface per link type: each frame as captured, its wire length
    `wire_extra` bytes longer (a snapped frame)."""
    kinds = sorted(set(linktypes))
    idbs = b"".join(block(1, struct.pack("<HHI", linktype, 0, 0)) for linktype in kinds)
    epbs = b"".join(
        block(6, struct.pack("<IIIII", kinds.index(linktype), 0, k, len(data),
                             len(data) + extra) + data)
        for k, (data, linktype, extra) in enumerate(zip(frames, linktypes, wire_extra,
                                                        strict=True)))
    return SHB + idbs + epbs


def check_decode(frames: list[bytes], linktypes: list[int], wire_extra: list[int]) -> None:
    """Through the whole engine, as `analyze` reads a capture: no failure, and every frame
    is accounted for."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "frames.pcapng"
        path.write_bytes(capture(frames, linktypes, wire_extra))
        records, source = analyze(path)
    skipped = source["skipped"]
    assert source["packets"] == len(frames)
    # counted, still analyzed
    dropped = sum(v for k, v in skipped.items() if k not in {"snaplen_cut", "short_frame"})
    assert source["tcp_segments"] + dropped == len(frames), skipped
    assert skipped.get("snaplen_cut", 0) <= source["tcp_segments"]
    # a short frame is one of its side's (unless a capture duplicate: counted apart)
    assert skipped.get("short_frame", 0) >= sum(
        r["short_frames"]["client"] + r["short_frames"]["server"] for r in records)
    assert all(v > 0 for v in skipped.values())
    # a segment is a packet of its side, or a capture duplicate of the one before it
    assert sum(r["packets"]["client"] + r["packets"]["server"] + r["duplicates"]["client"]
               + r["duplicates"]["server"] for r in records) == source["tcp_segments"]


frames_st = st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.lists(st.binary(max_size=120), min_size=n, max_size=n),
    st.lists(st.sampled_from(LINKTYPES), min_size=n, max_size=n),
    st.lists(st.integers(0, 3000), min_size=n, max_size=n),
))


@SETTINGS
@given(frames_st)
def test_random_bytes_never_crash_decode(case: tuple[list[bytes], list[int], list[int]]) -> None:
    check_decode(*case)


# A real Ethernet/IPv4/TCP frame with some bytes overwritten and the end cut off: reaches the
# IP and TCP checks far more often than random bytes do.
BASE = frame(payload=b"GET / HTTP/1.1\r\n")
mutated_st = st.tuples(
    st.lists(st.tuples(st.integers(0, len(BASE) - 1), st.integers(0, 255)), max_size=6),
    st.integers(0, len(BASE)),
    st.sampled_from([1, 113, 276, 0, 108, 101, 228, 229, 12, 14]),
    st.integers(0, 100),
)


@SETTINGS
@given(st.lists(mutated_st, min_size=1, max_size=10))
def test_mutated_headers_never_crash_decode(
        cases: list[tuple[list[tuple[int, int]], int, int, int]]) -> None:
    frames, linktypes, extra = [], [], []
    for edits, cut, linktype, wire in cases:
        data = bytearray(BASE)
        for at, value in edits:
            data[at] = value
        strip = {1: 0, 113: -2, 276: -6, 0: 10, 108: 10}.get(linktype, 14)
        body = bytes(data[strip:]) if strip >= 0 else b"\0" * -strip + bytes(data)
        frames.append(body[:cut])
        linktypes.append(linktype)
        extra.append(wire)
    check_decode(frames, linktypes, extra)


# ---- one connection, random segments

segment_st = st.tuples(
    st.booleans(),  # from the client?
    st.sets(st.sampled_from([SYN, ACK, FIN, RST, PSH])),
    st.one_of(st.integers(-3, 3000), st.integers(0, 2**32 - 1)),  # seq, relative to the ISN
    st.one_of(st.integers(-3, 3000), st.integers(0, 2**32 - 1)),  # ack, relative to peer ISN
    st.integers(0, 60),  # payload bytes
    st.integers(0, 3_000_000),  # µs since the previous segment
)
STATES = {"CLOSED", "SYN_SENT", "SYN_RCVD", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
          "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT"}
# Every number in a record is a count, a length, a time or a duration: none may be negative.
# Known exception, reported and pinned by test_setup_ms_negative_after_midstream_simultaneous_open.
KNOWN_NEGATIVE = {".handshake.setup_ms"}


def _walk(value: Any, path: str = "") -> list[tuple[str, float]]:
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _walk(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [x for v in value for x in _walk(v, path)]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return []
    return [(path, value)]


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(segment_st, min_size=1, max_size=25))
def test_random_segments_on_one_connection(tmp_path_factory: Any,
                                           segments: list[tuple[Any, ...]]) -> None:
    isn = {True: 1_000_000, False: 4_000_000_000}
    frames, times, t = [], [], 0
    for from_client, flags, seq, ack, length, gap in segments:
        src, dst, sport, dport = (("10.0.0.1", "10.0.0.2", 40000, 80) if from_client
                                  else ("10.0.0.2", "10.0.0.1", 80, 40000))
        frames.append(frame(src, dst, sport, dport, seq=isn[from_client] + seq,
                            ack=isn[not from_client] + ack, flags=sum(flags),
                            payload=b"x" * length))
        t += gap
        times.append(t)
    data = bytearray(pcap(frames))
    pos = 24
    for f, us in zip(frames, times, strict=True):  # spread the timestamps as drawn
        data[pos:pos + 8] = (1_700_000_000 + us // 1_000_000).to_bytes(4, "little") + (
            us % 1_000_000).to_bytes(4, "little")
        pos += 16 + len(f)
    path: Path = tmp_path_factory.mktemp("seg") / "c.pcap"
    path.write_bytes(bytes(data))
    records, source = analyze(path)
    assert source["tcp_segments"] == len(segments)
    assert sum(r["packets"]["client"] + r["packets"]["server"] + r["duplicates"]["client"]
               + r["duplicates"]["server"] for r in records) == len(segments)
    for r in records:
        for side in ("client", "server"):
            assert r["final_state"][side] in STATES
            assert all(change["state"] in STATES for change in r["states"][side])
        if r["rst"] is not None:
            assert r["rst"]["state"] in STATES and r["rst"]["receiver_state"] in STATES
        negative = [(k, v) for k, v in _walk(r) if v < 0 and k not in KNOWN_NEGATIVE]
        assert not negative, negative


def test_setup_ms_never_negative_after_midstream_simultaneous_open(tmp_path: Path) -> None:
    """Found by test_random_segments_on_one_connection: an empty server segment at t=0, the
    server's SYN at t=0, the client's SYN at t=1 µs gave handshake.setup_ms == -0.001 (the
    simultaneous open was taken as complete before the client's SYN was seen)."""
    c, s = ("10.0.0.1", "10.0.0.2", 40000, 80), ("10.0.0.2", "10.0.0.1", 80, 40000)
    frames = [frame(*s, seq=4_000_000_000, ack=1_000_000, flags=0),
              frame(*s, seq=4_000_000_000, ack=1_000_000, flags=SYN),
              frame(*s, seq=4_000_000_000, ack=1_000_000, flags=0),
              frame(*c, seq=1_000_000, ack=4_000_000_000, flags=SYN)]
    data = bytearray(pcap(frames))
    pos = 24
    for f, us in zip(frames, [0, 0, 1, 1], strict=True):
        data[pos + 4:pos + 8] = us.to_bytes(4, "little")
        pos += 16 + len(f)
    path = tmp_path / "neg.pcap"
    path.write_bytes(bytes(data))
    (record,), _ = analyze(path)
    assert record["handshake"]["setup_ms"] is None or record["handshake"]["setup_ms"] >= 0
