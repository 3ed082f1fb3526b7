"""The transition table: complete, reachable, and the RFC 793 paths walk as drawn."""

from __future__ import annotations

import pytest
from conftest import ROOT

from tcptrace.states import TRANSITIONS, EndpointMachine, Event, TcpState, mermaid_diagram

S, E = TcpState, Event


def walk(*events: Event) -> list[str]:
    machine = EndpointMachine()
    for ts, event in enumerate(events):
        machine.apply(event, ts)
    assert machine.anomalies == 0
    return [state.name for _, state in machine.history]


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(TcpState)


def test_every_state_is_reachable_from_closed() -> None:
    seen, frontier = {S.CLOSED}, [S.CLOSED]
    while frontier:
        for target in TRANSITIONS[frontier.pop()].values():
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(TcpState)


def test_every_state_can_reach_closed_or_time_wait() -> None:
    for start in TcpState:
        seen, frontier = {start}, [start]
        while frontier:
            for target in TRANSITIONS[frontier.pop()].values():
                if target not in seen:
                    seen.add(target)
                    frontier.append(target)
        assert seen & {S.CLOSED, S.TIME_WAIT}, start


def test_a_rst_closes_every_state() -> None:
    for state in TcpState:
        assert TRANSITIONS[state][E.RCV_RST] is S.CLOSED
        assert TRANSITIONS[state][E.SND_RST] is S.CLOSED


@pytest.mark.parametrize(("events", "path"), [
    # active open, active close (RFC 793 figure 6, left side)
    ((E.SND_SYN, E.RCV_ACK_OF_SYN, E.SND_ACK_OF_SYN, E.SND_FIN, E.RCV_ACK_OF_FIN,
      E.SND_ACK_OF_FIN),
     ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]),
    # passive open, passive close
    ((E.SND_SYNACK, E.RCV_ACK_OF_SYN, E.SND_ACK_OF_FIN, E.SND_FIN, E.RCV_ACK_OF_FIN),
     ["SYN_RCVD", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"]),
    # simultaneous open (figure 8)
    ((E.SND_SYN, E.SND_SYNACK, E.RCV_ACK_OF_SYN),
     ["SYN_SENT", "SYN_RCVD", "ESTABLISHED"]),
    # simultaneous close (figure 13)
    ((E.SND_SYNACK, E.RCV_ACK_OF_SYN, E.SND_FIN, E.SND_ACK_OF_FIN, E.RCV_ACK_OF_FIN),
     ["SYN_RCVD", "ESTABLISHED", "FIN_WAIT_1", "CLOSING", "TIME_WAIT"]),
    # refused: the SYN is answered by RST
    ((E.SND_SYN, E.RCV_RST), ["SYN_SENT", "CLOSED"]),
    # RFC 1337: a RST ends TIME_WAIT early (Linux default)
    ((E.SND_SYN, E.SND_ACK_OF_SYN, E.SND_FIN, E.RCV_ACK_OF_FIN, E.SND_ACK_OF_FIN, E.RCV_RST),
     ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT", "CLOSED"]),
    # close from SYN_RCVD
    ((E.SND_SYNACK, E.SND_FIN), ["SYN_RCVD", "FIN_WAIT_1"]),
    # retransmitted SYN and SYN/ACK change nothing
    ((E.SND_SYN, E.SND_SYN, E.SND_ACK_OF_SYN), ["SYN_SENT", "ESTABLISHED"]),
])
def test_rfc793_paths(events: tuple[Event, ...], path: list[str]) -> None:
    assert walk(*events) == path


def test_unexpected_event_is_counted_not_raised() -> None:
    machine = EndpointMachine()
    assert machine.apply(E.RCV_ACK_OF_FIN, 1) is False  # no FIN was sent
    assert machine.state is S.CLOSED and machine.anomalies == 1 and machine.history == []


def test_start_assumes_a_state_for_mid_connection_captures() -> None:
    machine = EndpointMachine()
    machine.start(5, S.ESTABLISHED)
    assert machine.history == [(5, S.ESTABLISHED)] and machine.visited(S.ESTABLISHED)


def test_docs_state_diagram_is_generated_from_the_table() -> None:
    text = (ROOT / "docs" / "states.md").read_text()
    assert "```mermaid\n" + mermaid_diagram() + "```" in text
