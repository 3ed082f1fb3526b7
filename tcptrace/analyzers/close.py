"""Close, TIME_WAIT, half-close and outcome: pure functions of the endpoint histories.

The active closer is the endpoint that went through FIN_WAIT_1 (it sent FIN before
it had received one); the TIME_WAIT holder is whoever reached TIME_WAIT. With
crossing FINs (simultaneous close, RFC 793 figure 13) both did both.

Each function takes the states each side went through (`visited`), listed once per
record: every connection is judged here. Lists, not sets: `in` on a list compares by
identity first, while hashing an Enum member is a Python-level call.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter

from tcptrace.model import Outcome
from tcptrace.states import SYNCHRONIZED, EndpointMachine, TcpState

S = TcpState
_STATE = itemgetter(1)


def visited(machine: EndpointMachine) -> list[TcpState]:
    """The states `machine` went through, in order."""
    return list(map(_STATE, machine.history))


def sides(client: bool, server: bool) -> str | None:
    if client and server:
        return "both"
    return "client" if client else "server" if server else None


def initiator(client: Sequence[TcpState], server: Sequence[TcpState]) -> str | None:
    return sides(S.FIN_WAIT_1 in client, S.FIN_WAIT_1 in server)


def time_wait(client: Sequence[TcpState], server: Sequence[TcpState]) -> str | None:
    return sides(S.TIME_WAIT in client, S.TIME_WAIT in server)


def outcome(client: Sequence[TcpState], server: Sequence[TcpState], fins: tuple[bool, bool],
            fins_acked: tuple[bool, bool], rst_kind_name: str | None, synack_seen: bool,
            syn_seen: bool) -> Outcome:
    """`fins`, `fins_acked`: (client, server)."""
    established = S.ESTABLISHED in client or S.ESTABLISHED in server or any(
        s in SYNCHRONIZED for states in (client, server) for s in states
    )
    fin_client, fin_server = fins
    if rst_kind_name == "REFUSED":
        return Outcome.REFUSED
    if fin_client and fin_server and fins_acked[0] and fins_acked[1]:
        return Outcome.CLOSED  # a RST after both FINs were acknowledged ended nothing
    if rst_kind_name is not None and (established or synack_seen):
        return Outcome.RESET
    if fin_client and fin_server:
        return Outcome.CLOSING
    if fin_client or fin_server:
        return Outcome.HALF_CLOSED
    if rst_kind_name is not None:
        return Outcome.RESET
    if established:
        return Outcome.OPEN
    if synack_seen:
        return Outcome.HANDSHAKE_FAILED
    return Outcome.UNANSWERED if syn_seen else Outcome.OPEN
