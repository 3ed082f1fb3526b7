"""Close, TIME_WAIT, half-close and outcome: pure functions of the endpoint histories.

The active closer is the endpoint that went through FIN_WAIT_1 (it sent FIN before
it had received one); the TIME_WAIT holder is whoever reached TIME_WAIT. With
crossing FINs (simultaneous close, RFC 793 figure 13) both did both.
"""

from __future__ import annotations

from tcptrace.model import Outcome, PerSide
from tcptrace.states import SYNCHRONIZED, EndpointMachine, TcpState

S = TcpState


def sides(client: bool, server: bool) -> str | None:
    if client and server:
        return "both"
    return "client" if client else "server" if server else None


def initiator(m: PerSide[EndpointMachine]) -> str | None:
    return sides(m.client.visited(S.FIN_WAIT_1), m.server.visited(S.FIN_WAIT_1))


def time_wait(m: PerSide[EndpointMachine]) -> str | None:
    return sides(m.client.visited(S.TIME_WAIT), m.server.visited(S.TIME_WAIT))


def outcome(m: PerSide[EndpointMachine], fins: PerSide[bool], fins_acked: PerSide[bool],
            rst_kind_name: str | None, synack_seen: bool, syn_seen: bool) -> Outcome:
    established = any(
        s in SYNCHRONIZED for mach in (m.client, m.server) for _, s in mach.history
    )
    if rst_kind_name == "REFUSED":
        return Outcome.REFUSED
    if fins.client and fins.server and fins_acked.client and fins_acked.server:
        return Outcome.CLOSED  # a RST after both FINs were acknowledged ended nothing
    if rst_kind_name is not None and (established or synack_seen):
        return Outcome.RESET
    if fins.client and fins.server:
        return Outcome.CLOSING
    if fins.client or fins.server:
        return Outcome.HALF_CLOSED
    if rst_kind_name is not None:
        return Outcome.RESET
    if established:
        return Outcome.OPEN
    if synack_seen:
        return Outcome.HANDSHAKE_FAILED
    return Outcome.UNANSWERED if syn_seen else Outcome.OPEN
