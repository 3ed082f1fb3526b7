"""Classify a RST by the states of its sender and its receiver."""

from __future__ import annotations

from tcptrace.model import RstKind
from tcptrace.states import TcpState

S = TcpState


def rst_kind(sender: TcpState, receiver: TcpState, sender_opened: bool, assumed: bool) -> RstKind:
    """The kind of a RST sent from state `sender` to an endpoint in state `receiver`.

    `sender_opened`: the sender had taken part in the connection (sent SYN, SYN/ACK
    or data); `assumed`: the states were assumed because the capture began mid-connection.
    """
    if S.TIME_WAIT in (sender, receiver):
        return RstKind.TIME_WAIT
    if sender is S.CLOSED and not sender_opened:
        return RstKind.REFUSED if receiver is S.SYN_SENT else RstKind.AFTER_CLOSE
    if sender in (S.SYN_SENT, S.SYN_RCVD):
        return RstKind.HANDSHAKE
    if assumed and sender is S.ESTABLISHED:
        return RstKind.UNKNOWN_STATE
    if sender in (S.ESTABLISHED, S.CLOSE_WAIT):
        return RstKind.ABORT
    return RstKind.AFTER_CLOSE
