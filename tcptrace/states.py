"""Per-endpoint TCP states (RFC 793 section 3.2, RFC 9293 section 3.3.2) as data.

Theory of operation
-------------------
A passive observer sees segments at one point between the two hosts. Each
endpoint gets its own machine, and an endpoint's state changes on *evidence*:

* what the endpoint itself sends proves what it has done: its SYN, its SYN/ACK,
  its first ACK of the peer's SYN, its first ACK of the peer's FIN (proof that it
  received that FIN, in order), its FIN, its RST;
* what reaches it from the peer, as seen at the capture point: an ACK that covers
  its SYN or its FIN, a RST.

Receipt of a FIN is taken from the receiver's ACK, not from the FIN itself,
because only the ACK says the FIN arrived in sequence: a FIN overtaking data,
a FIN lost after the capture point, and two FINs crossing in flight (simultaneous
close, where each FIN's ACK field does not cover the other) all come out right.

`TRANSITIONS` is the whole machine. A (state, event) pair that is absent is an
anomaly: the machine stays where it is and counts it; it never raises, because a
passive observer must not stop because a peer misbehaved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class TcpState(Enum):
    CLOSED = "CLOSED"
    SYN_SENT = "SYN_SENT"
    SYN_RCVD = "SYN_RCVD"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN_WAIT_1"
    FIN_WAIT_2 = "FIN_WAIT_2"
    CLOSE_WAIT = "CLOSE_WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST_ACK"
    TIME_WAIT = "TIME_WAIT"


class Event(Enum):
    SND_SYN = "sends SYN"
    SND_SYNACK = "sends SYN/ACK"
    SND_ACK_OF_SYN = "sends its first ACK of the peer's SYN"
    SND_ACK_OF_FIN = "acknowledges the peer's FIN (so received it)"
    SND_FIN = "sends FIN"
    SND_RST = "sends RST"
    RCV_ACK_OF_SYN = "receives an ACK of its SYN"
    RCV_ACK_OF_FIN = "receives an ACK of its FIN"
    RCV_RST = "receives an acceptable RST"


S, E = TcpState, Event

TRANSITIONS: dict[TcpState, dict[Event, TcpState]] = {
    S.CLOSED: {
        E.SND_SYN: S.SYN_SENT,  # active open
        E.SND_SYNACK: S.SYN_RCVD,  # passive open: LISTEN is invisible on the wire
        E.SND_RST: S.CLOSED,  # refusing a SYN, or answering a stray segment
        E.RCV_RST: S.CLOSED,
        # The capture missed this side's SYN/ACK, but an ACK proves it was sent and arrived.
        E.SND_ACK_OF_SYN: S.ESTABLISHED,
        E.RCV_ACK_OF_SYN: S.ESTABLISHED,
    },
    S.SYN_SENT: {
        E.SND_SYN: S.SYN_SENT,  # retransmission
        E.RCV_ACK_OF_SYN: S.SYN_SENT,  # SYN/ACK arrived; ESTABLISHED once we ACK it
        E.SND_ACK_OF_SYN: S.ESTABLISHED,  # rcv SYN,ACK / snd ACK
        E.SND_SYNACK: S.SYN_RCVD,  # simultaneous open: rcv SYN / snd SYN,ACK
        E.SND_RST: S.CLOSED,
        E.RCV_RST: S.CLOSED,  # connection refused
    },
    S.SYN_RCVD: {
        E.SND_SYNACK: S.SYN_RCVD,  # retransmission
        E.SND_SYN: S.SYN_RCVD,
        E.RCV_ACK_OF_SYN: S.ESTABLISHED,
        E.SND_ACK_OF_SYN: S.SYN_RCVD,
        E.SND_FIN: S.FIN_WAIT_1,  # close before the handshake completed
        E.SND_ACK_OF_FIN: S.CLOSE_WAIT,
        E.SND_RST: S.CLOSED,
        E.RCV_RST: S.CLOSED,
    },
    S.ESTABLISHED: {
        E.SND_FIN: S.FIN_WAIT_1,  # active close
        E.SND_ACK_OF_FIN: S.CLOSE_WAIT,  # passive close
        E.SND_SYNACK: S.ESTABLISHED,  # late retransmission of the handshake
        E.SND_SYN: S.ESTABLISHED,
        E.SND_ACK_OF_SYN: S.ESTABLISHED,
        E.RCV_ACK_OF_SYN: S.ESTABLISHED,
        E.SND_RST: S.CLOSED,
        E.RCV_RST: S.CLOSED,
    },
    S.FIN_WAIT_1: {
        E.RCV_ACK_OF_FIN: S.FIN_WAIT_2,
        E.SND_ACK_OF_FIN: S.CLOSING,  # simultaneous close: FINs crossed
        E.RCV_ACK_OF_SYN: S.FIN_WAIT_1,
        E.SND_RST: S.CLOSED,
        E.RCV_RST: S.CLOSED,
    },
    S.FIN_WAIT_2: {
        E.SND_ACK_OF_FIN: S.TIME_WAIT,
        E.SND_RST: S.CLOSED,
        E.RCV_RST: S.CLOSED,
    },
    S.CLOSING: {
        E.RCV_ACK_OF_FIN: S.TIME_WAIT,
        E.SND_RST: S.CLOSED,
        E.RCV_RST: S.CLOSED,
    },
    S.CLOSE_WAIT: {
        E.SND_FIN: S.LAST_ACK,
        E.SND_RST: S.CLOSED,
        E.RCV_RST: S.CLOSED,
    },
    S.LAST_ACK: {
        E.RCV_ACK_OF_FIN: S.CLOSED,
        E.SND_RST: S.CLOSED,
        E.RCV_RST: S.CLOSED,
    },
    S.TIME_WAIT: {
        # A RST kills TIME_WAIT on Linux (net.ipv4.tcp_rfc1337 = 0): the RFC 1337 hazard.
        E.RCV_RST: S.CLOSED,
        E.SND_RST: S.CLOSED,
    },
}

# The table compiled for lookup by position: each Event carries its ordinal and each state
# a row of targets indexed by it. Enum hashing is a Python-level call; this lookup runs for
# every state-relevant segment. TRANSITIONS stays the single source of truth.
for _ordinal, _event in enumerate(Event):
    _event.ordinal = _ordinal  # type: ignore[attr-defined]
for _state, _moves in TRANSITIONS.items():
    _state.row = tuple(_moves.get(e) for e in Event)  # type: ignore[attr-defined]

SYNCHRONIZED = frozenset(
    {S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT, S.CLOSING, S.LAST_ACK, S.TIME_WAIT}
)


@dataclass(slots=True)
class EndpointMachine:
    """One endpoint's state, every change it went through, and the anomalies it saw."""

    state: TcpState = TcpState.CLOSED
    history: list[tuple[int, TcpState]] = field(default_factory=list)
    """(timestamp in ns, state entered), in order."""
    anomalies: int = 0

    def start(self, ts_ns: int, state: TcpState) -> None:
        """Assume a state without an event: a capture that begins mid-connection."""
        self.state = state
        self.history.append((ts_ns, state))

    def apply(self, event: Event, ts_ns: int) -> bool:
        """Apply `event`; True when the state changed. Unexpected events are counted."""
        target = self.state.row[event.ordinal]  # type: ignore[attr-defined]
        if target is None:
            self.anomalies += 1
            return False
        if target is self.state:
            return False
        self.state = target
        self.history.append((ts_ns, target))
        return True

    def visited(self, state: TcpState) -> bool:
        return any(s is state for _, s in self.history)


def mermaid_diagram() -> str:
    """The transition table as a Mermaid state diagram (docs/states.md is generated from it)."""
    lines = ["stateDiagram-v2", "    [*] --> CLOSED"]
    for state, moves in TRANSITIONS.items():
        for event, target in moves.items():
            if target is not state:
                lines.append(f"    {state.name} --> {target.name}: {event.name}")
    return "\n".join(lines) + "\n"
