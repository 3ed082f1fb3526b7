"""Segment trace: every segment of selected connections, as the ladder and report draw them.

An optional observer (see `connection.SegmentObserver`): it sees each segment after the
core has processed it, so the endpoint states it records are the states *after* that
segment. Sequence numbers are made relative to each side's ISN, as Wireshark shows them
(a side whose SYN is not in the capture counts from the first sequence number it used, or
from the first ACK the peer sent it).

Marks, judged from what this side had sent before the segment:

* ``retransmission``: the segment's sequence space (payload, FIN) was all sent already; a
  SYN (or SYN/ACK) when this side had sent one before;
* ``out-of-order``: below the highest sequence sent, but not all sent before (a gap filled);
* ``keep-alive``: no SYN/FIN, at most one byte, seq == SND.NXT - 1 while the peer's window
  is open (RFC 1122 section 4.2.3.6; with a zero window the same shape is a window probe);
* ``rst``: the RST flag.

Memory: a trace keeps at most `limit` segments (the first ones); the counters keep
counting, so `total` says how many there were.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tcptrace.connection import Connection
from tcptrace.decode import ACK, FIN, PSH, RST, SYN, URG
from tcptrace.model import Role
from tcptrace.seqnum import seq_diff

NAME = "trace"
RETRANSMISSION, OUT_OF_ORDER = "retransmission", "out-of-order"
KEEPALIVE, RESET = "keep-alive", "rst"
FLAG_NAMES = ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"), (URG, "URG"), (ACK, "ACK"))


def flag_text(flags: int) -> str:
    """Flags the way they are usually spoken: SYN/ACK, FIN/ACK, PSH/ACK, RST/ACK."""
    return "/".join(name for bit, name in FLAG_NAMES if flags & bit) or "none"


@dataclass(frozen=True, slots=True)
class TracedSegment:
    ts_ns: int
    role: Role
    """The sender."""
    flags: int
    seq: int
    """Relative to the sender's ISN (the SYN is 0, the first data byte 1)."""
    ack: int | None
    """Relative to the receiver's ISN; None when the ACK flag is clear."""
    length: int
    """TCP payload bytes."""
    window: int
    """Advertised window in bytes: scaled by the sender's window scale when both SYNs
    negotiated scaling (RFC 7323 section 2; a SYN's own window is never scaled)."""
    states: tuple[str, str]
    """(client, server) state after the segment."""
    entered: tuple[tuple[str, ...], tuple[str, ...]]
    """(client, server) states entered since the previous segment, in order: one segment
    may move a side twice (an ACK of a FIN carrying its own FIN: CLOSE_WAIT, LAST_ACK)."""
    marks: tuple[str, ...]

    @property
    def plain(self) -> bool:
        """Data or a bare ACK, unremarkable, changing no state: what a fold may hide."""
        return not (self.flags & (SYN | FIN | RST) or self.marks or any(self.entered))


@dataclass(slots=True)
class _Sent:
    """What one side had sent: merged [start, end) ranges of relative sequence space."""

    base: int | None = None
    ranges: list[list[int]] = field(default_factory=list)
    window: int = -1
    syns: set[int] = field(default_factory=set)
    """SYN and SYN/ACK seen (flags & (SYN | ACK)): in a simultaneous open the SYN/ACK
    re-sends the SYN's sequence number without being a retransmission."""

    @property
    def nxt(self) -> int | None:
        return self.ranges[-1][1] if self.ranges else None

    def covered(self, start: int, end: int) -> bool:
        return any(lo <= start and end <= hi for lo, hi in self.ranges)

    def add(self, start: int, end: int) -> None:
        self.ranges.append([start, end])
        self.ranges.sort()
        merged = [self.ranges[0]]
        for lo, hi in self.ranges[1:]:
            if lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        self.ranges = merged[-16:]  # holes beyond that many are not worth memory


@dataclass(slots=True)
class Trace:
    """What `SegmentTracer.result` returns: the kept segments and the counts of all."""

    segments: list[TracedSegment]
    total: int
    """Segments of the connection, kept or not."""
    first_ns: int
    truncated: bool


class SegmentTracer:
    """Records the segments of a connection if `select(conn)` says so at its first segment."""

    name = NAME

    def __init__(self, select: Callable[[Connection], bool] | None = None,
                 limit: int | None = None) -> None:
        self.select, self.limit = select, limit
        self.active: bool | None = None
        self.segments: list[TracedSegment] = []
        self.total = 0
        self.first_ns = 0
        self.sent = (_Sent(), _Sent())
        self.seen = [0, 0]
        """Length of each side's state history at the previous segment."""

    def segment(self, conn: Connection, role: Role, ts_ns: int, flags: int, seq: int, ack: int,
                window: int, plen: int, ip_len: int) -> None:
        if self.active is None:
            self.active = self.select is None or self.select(conn)
            self.first_ns = ts_ns
        if not self.active:
            return
        self.total += 1
        me, peer = self.sent[role.value], self.sent[role.peer.value]
        if me.base is None:
            isn = conn.sides[role.value].isn
            me.base = isn if isn is not None else seq
        if peer.base is None and flags & ACK:
            isn = conn.sides[role.peer.value].isn
            peer.base = isn if isn is not None else ack
        rseq = seq_diff(seq, me.base)
        rack = seq_diff(ack, peer.base) if flags & ACK and peer.base is not None else None
        marks: list[str] = []
        if flags & RST:
            marks.append(RESET)
        else:
            end = rseq + plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
            nxt = me.nxt
            if (nxt is not None and not flags & (SYN | FIN) and plen <= 1
                    and rseq == nxt - 1 and peer.window != 0):
                marks.append(KEEPALIVE)
            elif flags & SYN:
                if flags & (SYN | ACK) in me.syns:
                    marks.append(RETRANSMISSION)
                me.syns.add(flags & (SYN | ACK))
            elif end > rseq and nxt is not None and me.covered(rseq, end):
                marks.append(RETRANSMISSION)
            elif end > rseq and nxt is not None and rseq < nxt:
                marks.append(OUT_OF_ORDER)
            if end > rseq and KEEPALIVE not in marks:
                me.add(rseq, end)
            elif nxt is None:
                me.add(rseq, rseq)
        me.window = window
        sides = conn.sides
        seen = self.seen
        entered = tuple(tuple(state.name for _, state in side.machine.history[seen[i]:])
                        for i, side in enumerate(sides))
        seen[0], seen[1] = len(sides[0].machine.history), len(sides[1].machine.history)
        if self.limit is not None and len(self.segments) >= self.limit:
            return
        shift, peer_shift = sides[role.value].wscale, sides[role.peer.value].wscale
        if shift is not None and peer_shift is not None and not flags & SYN:
            window <<= shift
        self.segments.append(TracedSegment(
            ts_ns, role, flags, rseq, rack, plen, window,
            (sides[0].machine.state.name, sides[1].machine.state.name),
            (entered[0], entered[1]), tuple(marks)))

    def result(self, conn: Connection) -> Trace | None:
        if not self.active:
            return None
        return Trace(self.segments, self.total, self.first_ns,
                     self.limit is not None and self.total > self.limit)


def tracer_factory(select: Callable[[Connection], bool] | None = None,
                   limit: int | None = None) -> Callable[[], SegmentTracer]:
    """A factory for `Options.observers`."""
    return lambda: SegmentTracer(select, limit)
