"""Steady runs (tcptrace.steady) change nothing: the records are those of the per-segment path.

Every bundled capture and every corpus capture is analyzed both ways and compared whole;
crafted conversations aim at the edges of a run (a body that ends inside it, a
retransmission, a hole, a keep-alive probe, a FIN, port reuse) and check that the bulk path
was really taken, plus the values that edge decides. A hypothesis property throws random
mostly-steady conversations at both paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import CRAFTED, LINUX, PCAPS, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_corpus_sweep import corpus_files
from test_robustness import ACK, FIN, PSH, SYN, frame, pcap

from tcptrace.engine import Analysis, Options
from tcptrace.errors import CaptureError
from tcptrace.model import to_dict

C_ISN, S_ISN = 1_000_000, 4_294_960_000  # the server's sequence numbers wrap mid-transfer


def both_ways(*paths: Path | str, **options: Any
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Records with steady runs, records without, and how many segments went in bulk."""
    results, bulk = [], 0
    for steady in (True, False):
        analysis = Analysis([str(p) for p in paths], Options(steady_runs=steady, **options))
        results.append(sorted((to_dict(r) for r in analysis.records()), key=lambda r: r["id"]))
        if steady:
            bulk = analysis.table.stats.steady_segments
        else:
            assert analysis.table.stats.steady_segments == 0
    return results[0], results[1], bulk


@pytest.mark.parametrize("path", sorted(LINUX.glob("*.pcap")) + sorted(CRAFTED.glob("*.pcap*"))
                         + sorted((PCAPS / "transfer").glob("*.pcap")),
                         ids=lambda p: p.name)
def test_bundled_captures_are_the_same_either_way(path: Path) -> None:
    fast, reference, _ = both_ways(path)
    assert fast == reference


@pytest.mark.parametrize("options", [{"max_flows": 2}, {"idle_timeout_s": 0.05},
                                     {"filter": "port 8080"}, {"linger_s": 0.0},
                                     {"verify_checksums": True}], ids=str)
def test_options_do_not_change_it(options: dict[str, Any]) -> None:
    # every bundled capture merged in time order, the download among them
    captures = [*sorted(LINUX.glob("*.pcap")), PCAPS / "transfer" / "download.pcap"]
    fast, reference, _ = both_ways(*captures, **options)
    assert fast == reference


def test_bulk_is_taken_on_a_real_download() -> None:
    fast, reference, bulk = both_ways(PCAPS / "transfer" / "download.pcap")
    assert fast == reference
    assert bulk > 100


@pytest.mark.skipif(not corpus_files(), reason="../shared/corpus is not beside this checkout")
def test_corpus_captures_are_the_same_either_way() -> None:
    different, compared = [], 0
    for path in corpus_files():
        try:
            fast, reference, _ = both_ways(path)
        except CaptureError:  # not a capture (baselines, notes): the sweep test covers those
            continue
        compared += 1
        if fast != reference:
            different.append(path.name)
    assert different == []
    assert compared > 400


# ---- crafted conversations


class Talk:
    """A client (10.0.0.1:40000) and a server (10.0.0.2:80) after a handshake; each method
    appends segments and moves the sender's sequence number."""

    def __init__(self, sport: int = 40000) -> None:
        self.sport = sport
        self.frames: list[bytes] = []
        self.nxt = {True: C_ISN, False: S_ISN}
        self.send(True, SYN, nxt=1)
        self.send(False, SYN | ACK, nxt=1)
        self.send(True, ACK)

    def send(self, client: bool, flags: int = ACK, payload: bytes = b"", seq: int | None = None,
             ack: int | None = None, nxt: int | None = None) -> None:
        src, dst, sport, dport = (("10.0.0.1", "10.0.0.2", self.sport, 80) if client
                                  else ("10.0.0.2", "10.0.0.1", 80, self.sport))
        at = self.nxt[client] if seq is None else seq
        acked = self.nxt[not client] if ack is None else ack
        self.frames.append(frame(src, dst, sport, dport, seq=at, ack=acked if flags & ACK else 0,
                                 flags=flags, payload=payload))
        step = len(payload) + (1 if flags & (SYN | FIN) else 0) if nxt is None else nxt
        if seq is None:
            self.nxt[client] = (at + step) & 0xFFFFFFFF

    def data(self, client: bool, payload: bytes, size: int = 1000) -> None:
        """`payload` in segments of `size`, each answered by a pure ACK."""
        for at in range(0, len(payload), size):
            self.send(client, ACK | PSH, payload[at : at + size])
            self.send(not client)

    def close(self) -> None:
        self.send(False, FIN | ACK)
        self.send(True, FIN | ACK)
        self.send(False)

    def write(self, tmp_path: Path, name: str = "talk.pcap") -> Path:
        path = tmp_path / name
        path.write_bytes(pcap(self.frames))
        return path


def response(body: int) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % body + b"b" * body


REQUEST = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"


def checked(tmp_path: Path, talk: Talk, min_bulk: int = 8) -> list[dict[str, Any]]:
    fast, reference, bulk = both_ways(talk.write(tmp_path))
    assert fast == reference
    assert bulk >= min_bulk
    return fast


def test_bodies_ending_inside_runs_keep_every_request(tmp_path: Path) -> None:
    talk = Talk()
    for body in (25_000, 17_500, 40_000):
        talk.data(True, REQUEST)
        talk.data(False, response(body))
    talk.close()
    (record,) = checked(tmp_path, talk)
    assert record["reuse"]["requests"] == 3
    assert record["reuse"]["responses"] == 3
    assert record["bytes"]["server"] == sum(len(response(b)) for b in (25_000, 17_500, 40_000))


def test_retransmission_inside_a_run(tmp_path: Path) -> None:
    talk = Talk()
    talk.data(False, b"x" * 20_000)
    start = talk.nxt[False]
    talk.send(False, ACK | PSH, b"y" * 1000)
    talk.send(False, ACK | PSH, b"y" * 1000, seq=start)  # the same bytes again
    talk.data(False, b"z" * 20_000)
    talk.close()
    (record,) = checked(tmp_path, talk)
    assert record["retransmitted_bytes"]["server"] == 1000
    assert record["unique_bytes"]["server"] == 41_000


def test_capture_hole_inside_a_run(tmp_path: Path) -> None:
    talk = Talk()
    talk.data(False, b"x" * 20_000)
    talk.nxt[False] += 1000  # 1000 bytes the capture missed; the client acknowledges them
    talk.send(True)
    talk.data(False, b"z" * 20_000)
    talk.close()
    (record,) = checked(tmp_path, talk)
    assert record["gap_bytes"]["server"] == 1000


def test_out_of_order_inside_a_run(tmp_path: Path) -> None:
    talk = Talk()
    talk.data(False, b"x" * 20_000)
    start = talk.nxt[False]
    talk.send(False, ACK | PSH, b"b" * 1000, seq=start + 1000)
    talk.send(False, ACK | PSH, b"a" * 1000, seq=start)
    talk.nxt[False] = start + 2000
    talk.data(False, b"z" * 20_000)
    talk.close()
    (record,) = checked(tmp_path, talk)
    assert record["unique_bytes"]["server"] == 42_000
    assert record["retransmitted_bytes"]["server"] == 0


def test_keepalive_probes_between_runs(tmp_path: Path) -> None:
    talk = Talk()
    talk.data(True, b"x" * 20_000)
    for _ in range(3):
        talk.send(True, ACK, seq=talk.nxt[True] - 1)  # probe: SEG.SEQ = SND.NXT - 1
        talk.send(False)  # its answer
    talk.send(True)  # a plain ACK: not data, the run of probes goes on
    talk.data(True, b"z" * 20_000)  # data (in bulk) ends the run of probes
    talk.send(True, ACK, seq=talk.nxt[True] - 1)
    talk.send(False)
    talk.close()
    (record,) = checked(tmp_path, talk)
    assert record["keepalive"]["probes"] == {"client": 4, "server": 0}
    assert record["keepalive"]["acks"] == {"client": 0, "server": 4}
    # one frame per second: a probe counts from the previous probe of its run, the first of
    # a run from the segment before it
    assert record["keepalive"]["intervals_ms"]["client"] == [1000.0, 2000.0, 2000.0, 1000.0]


def test_fin_right_after_a_run_and_data_after_it(tmp_path: Path) -> None:
    talk = Talk()
    talk.data(False, b"x" * 20_000)
    talk.send(True, FIN | ACK)  # the client half-closes; the server goes on sending
    talk.data(False, b"z" * 20_000)
    talk.send(False, FIN | ACK)
    talk.send(True)
    (record,) = checked(tmp_path, talk)
    assert record["half_close"]["side"] == "client"
    assert record["half_close"]["bytes_after_fin"] == 20_000
    assert record["final_state"] == {"client": "TIME_WAIT", "server": "CLOSED"}


def test_port_reuse_with_runs_on_both_connections(tmp_path: Path) -> None:
    first = Talk()
    first.data(False, b"x" * 20_000)
    first.close()
    second = Talk()
    second.nxt = {True: C_ISN + 100_000, False: S_ISN + 100_000}
    second.frames = []
    second.send(True, SYN, nxt=1)
    second.send(False, SYN | ACK, nxt=1)
    second.send(True)
    second.data(False, b"y" * 30_000)
    second.close()
    first.frames += second.frames
    records = checked(tmp_path, first, min_bulk=30)
    assert [r["previous_id"] for r in records] == [None, 1]
    assert [r["bytes"]["server"] for r in records] == [20_000, 30_000]


# ---- random mostly-steady conversations

step_st = st.one_of(
    st.tuples(st.just("data"), st.booleans(), st.integers(1, 3000)),
    st.tuples(st.just("ack"), st.booleans(), st.just(0)),
    st.tuples(st.just("http"), st.booleans(), st.integers(0, 9000)),
    st.tuples(st.just("retransmit"), st.booleans(), st.integers(1, 1500)),
    st.tuples(st.just("hole"), st.booleans(), st.integers(1, 1500)),
    st.tuples(st.just("probe"), st.booleans(), st.just(0)),
    st.tuples(st.just("fin"), st.booleans(), st.just(0)),
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(step_st, min_size=1, max_size=12), st.integers(1, 30))
def test_random_conversations_are_the_same_either_way(
        tmp_path: Path, steps: list[tuple[str, bool, int]], burst: int) -> None:
    talk = Talk()
    for kind, client, size in steps:
        if kind == "data":
            for _ in range(burst):
                talk.send(client, ACK | PSH, b"d" * size)
                talk.send(not client)
        elif kind == "ack":
            for _ in range(burst):
                talk.send(client)
        elif kind == "http":
            talk.data(True, REQUEST, size=7)
            talk.data(False, response(size), size=1448)
        elif kind == "retransmit":
            talk.send(client, ACK | PSH, b"r" * size)
            talk.send(client, ACK | PSH, b"r" * size, seq=(talk.nxt[client] - size) & 0xFFFFFFFF)
        elif kind == "hole":
            talk.nxt[client] = (talk.nxt[client] + size) & 0xFFFFFFFF
            talk.send(not client)
        elif kind == "probe":
            talk.send(client, ACK, seq=(talk.nxt[client] - 1) & 0xFFFFFFFF)
        else:
            talk.send(client, FIN | ACK)
    fast, reference, _ = both_ways(talk.write(tmp_path))
    assert fast == reference


def test_cli_reference_path_gives_the_same_report(capsys: pytest.CaptureFixture[str]) -> None:
    capture = str(PCAPS / "transfer" / "download.pcap")
    outputs = [run_cli(capsys, "analyze", capture, "-f", "json", *flag)
               for flag in ((), ("--no-steady-runs",))]
    assert outputs[0] == outputs[1]
    assert outputs[0][0] == 0 and '"requests": 2' in outputs[0][1]
