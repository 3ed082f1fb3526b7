"""One TCP connection: two endpoint machines and the analyzers, fed segment by segment.

For each segment the sender's and the receiver's events are derived in the order
RFC 9293 section 3.10.7.4 processes a segment: SYN, then the ACK field, then the
payload, then FIN. Every state change goes through `EndpointMachine.apply`.

Ordering with TCP timestamps: an ACK of a side's SYN or FIN is seen at the capture
point before it reaches that side, and in a simultaneous close it may reach it
only after the side has acted on the peer's FIN. When timestamps are in use, such
a receive event waits in the side's inbox until a segment from that side echoes
its TSval (proof it arrived) and is applied before that segment's own events; a
segment that echoes an older TSval is processed first. Without timestamps the
event applies when seen.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tcptrace.analyzers import close as close_analysis
from tcptrace.analyzers.handshake import HandshakeAnalyzer
from tcptrace.analyzers.keepalive import KeepaliveSide
from tcptrace.analyzers.reuse import AppTracker, Phase
from tcptrace.analyzers.rst import rst_kind
from tcptrace.decode import ACK, FIN, RST, SYN
from tcptrace.model import (
    Close,
    ConnectionRecord,
    Endpoint,
    HalfClose,
    Keepalive,
    PerSide,
    Role,
    RoleRule,
    Rst,
    StateChange,
)
from tcptrace.reassembly import Stream
from tcptrace.seqnum import seq_add, seq_diff
from tcptrace.states import SYNCHRONIZED, EndpointMachine, Event, TcpState
from tcptrace.steady import Runs

NS = 1_000_000_000
NS_PER_MS = 1_000_000
S = TcpState
CLIENT = Role.client
MASK = 0xFFFFFFFF
DONE = (S.CLOSED, S.TIME_WAIT)  # a tuple: `in` compares identity, no Enum.__hash__ call
HALF = 1 << 31
NOP_NOP_TS = b"\x01\x01\x08\x0a"  # RFC 7323 appendix A: the recommended alignment
TS_PAIR = struct.Struct(">II")  # TSval, TSecr


class SegmentObserver(Protocol):
    """An optional per-connection analysis fed every segment after the core has processed it.

    Observers are created per connection by the factories in `FlowTable.observers`; their
    `result()` lands in the record's `extra[name]` (a top-level JSON key).
    """

    name: str

    def segment(self, conn: Connection, role: Role, ts_ns: int, flags: int, seq: int, ack: int,
                window: int, plen: int, ip_len: int) -> None: ...

    def result(self, conn: Connection) -> Any: ...


ObserverFactory = Callable[[], SegmentObserver]


class Bytes:
    """Gives a segment's payload and TCP options on demand, from the current batch."""

    data: bytes = b""

    def payload(self, off: int, cap: int, length: int) -> bytes | None:
        return self.data[off : off + length] if cap == length else None

    def timestamps(self, tcp_off: int, opt_cap: int) -> tuple[int, int] | None:
        """(TSval, TSecr) from the TCP options (RFC 7323 section 3), or None."""
        data, pos = self.data, tcp_off + 20
        if opt_cap >= 12 and data.startswith(NOP_NOP_TS, pos):  # Linux's layout after the SYN
            pair: tuple[int, int] = TS_PAIR.unpack_from(data, pos + 4)
            return pair
        return self.options(tcp_off, opt_cap)[1]

    def options(self, tcp_off: int, opt_cap: int) -> tuple[int | None, tuple[int, int] | None]:
        """The window scale shift (RFC 7323 section 2.2) and (TSval, TSecr) (section 3), each
        None when absent. One walk finds both (a SYN wants both), over the captured option
        bytes only (snaplen may cut them); the first well-formed instance of each counts."""
        data, pos = self.data, tcp_off + 20
        stop = pos + opt_cap
        wscale: int | None = None
        stamp: tuple[int, int] | None = None
        while pos < stop:
            here = data[pos]
            if here == 0:
                break
            if here == 1:
                pos += 1
                continue
            size = data[pos + 1] if pos + 1 < stop else 0
            if size < 2:
                break
            if here == 3 and size == 3 and wscale is None and pos + 3 <= stop:
                wscale = min(data[pos + 2], 14)  # RFC 7323: at most 14
            elif here == 8 and size == 10 and stamp is None and pos + 10 <= stop:
                stamp = TS_PAIR.unpack_from(data, pos + 2)
            pos += size
        return wscale, stamp


@dataclass(slots=True)
class _HalfClose:
    """Data sent toward a side after that side's FIN: shared by both directions."""

    first_fin: Role | None = None
    bytes_after: int = 0


class _Direction:
    """Stream consumer for one direction: feeds the application tracker, counts half-close data.

    It holds no reference back to the connection: without cycles, a connection is freed
    by reference counting the moment it is emitted, not by the cyclic garbage collector.
    """

    __slots__ = ("app", "client", "half", "role")

    def __init__(self, app: AppTracker, client: bool, half: _HalfClose) -> None:
        self.app, self.client, self.half = app, client, half
        self.role = Role.client if client else Role.server

    @property
    def wants_bytes(self) -> bool:
        return self.app.wants(self.client)

    def on_data(self, ts_ns: int, length: int, data: bytes | None) -> None:
        self.app.data(self.client, ts_ns, length, data)
        first_fin = self.half.first_fin
        if first_fin is not None and first_fin is not self.role:
            self.half.bytes_after += length

    def on_gap(self, ts_ns: int, length: int) -> None:
        self.app.gap(self.client)


@dataclass(slots=True)
class Side:
    """What one endpoint has shown of itself."""

    stream: Stream
    machine: EndpointMachine = field(default_factory=EndpointMachine)
    keepalive: KeepaliveSide = field(default_factory=KeepaliveSide)
    isn: int | None = None
    nxt: int | None = None
    """SND.NXT as observed: the highest sequence number used so far, plus one."""
    syn_acked: bool = False
    """The peer has acknowledged this side's SYN."""
    acked_peer_syn: bool = False
    fin_seq: int | None = None
    """Sequence number this side's FIN occupies."""
    fin_ns: int | None = None
    fin_acked: bool = False
    fin_retransmits: int = 0
    opened: bool = False
    """Took part in the connection: sent SYN, SYN/ACK or data."""
    packets: int = 0
    bytes: int = 0
    window: int = -1
    """Last window this side advertised (unscaled); 0 means the peer may only probe."""
    last_ns: int = 0
    wscale: int | None = None
    """Window scale shift from this side's SYN; it applies only if both SYNs carried one."""
    uses_ts: bool = False
    """Both SYNs carried TCP timestamps (RFC 7323 section 3.2: then every segment does)."""
    inbox: list[tuple[int, int, Event]] = field(default_factory=list)
    """Receive events seen at the capture point but not yet shown to have reached this
    side: (sender's TSval, ts_ns, event). See `Connection._deliver`."""

    def flush(self, tsecr: int | None = None) -> None:
        """Apply the inbox events this side has seen: all of them, or those whose TSval
        it echoes (RFC 7323: TSecr carries the newest TSval it received)."""
        # runs for every segment that finds events waiting: usually all of them apply
        machine = self.machine
        history = machine.history
        keep: list[tuple[int, int, Event]] | None = None
        for waiting in self.inbox:
            tsval, ts_ns, event = waiting
            if tsecr is None or seq_diff(tsval, tsecr) <= 0:
                machine.apply(event, max(ts_ns, history[-1][0]) if history else ts_ns)
            elif keep is None:
                keep = [waiting]
            else:
                keep.append(waiting)
        if keep is None:
            self.inbox.clear()
        else:
            self.inbox = keep


class Connection:
    """A connection from its first segment to its last, on one 4-tuple."""

    # memory is bounded by the connections held at once; slots save ~1 KB of dict per one
    __slots__ = ("app", "assumed", "client", "first_ns", "first_ordinal", "half", "handshake",
                 "id", "last_ns", "observers", "previous_id", "rst", "rst_count", "rule",
                 "server", "sides")

    def __init__(self, conn_id: int, client: Endpoint, server: Endpoint, rule: RoleRule,
                 first_ns: int, previous_id: int | None = None) -> None:
        self.id = conn_id
        self.client, self.server = client, server
        self.rule = rule
        self.previous_id = previous_id
        self.first_ns = self.last_ns = first_ns
        self.app = AppTracker()
        self.half = _HalfClose()
        self.sides = (Side(Stream(_Direction(self.app, True, self.half))),
                      Side(Stream(_Direction(self.app, False, self.half))))
        self.handshake = HandshakeAnalyzer()
        self.rst: Rst | None = None
        self.rst_count = 0
        self.assumed = rule is RoleRule.port
        self.observers: list[SegmentObserver] = []
        self.first_ordinal = 0
        """Ordinal of the first segment among all segments of the run (see SegmentBatch)."""

    # ---- life-cycle questions the flow table asks
    def ended(self) -> bool:
        """Both endpoints are done (CLOSED or TIME_WAIT) after something happened."""
        # asked of every lingering connection at each sweep, and for every new SYN on a tuple
        client, server = self.sides
        if client.inbox or server.inbox:
            self.flush()
        cm, sm = client.machine, server.machine
        return cm.state in DONE and sm.state in DONE and bool(cm.history or sm.history)

    def flush(self) -> None:
        """Deliver every waiting receive event: nothing more will come from either side."""
        for side in self.sides:
            if side.inbox:
                side.flush()

    def accepts_new_syn(self, role: Role, isn: int) -> bool:
        """True when a SYN (no ACK) from `role` with `isn` must start a new connection."""
        if self.ended() or any(s.machine.state is S.TIME_WAIT for s in self.sides):
            return True
        if any(s.machine.state is S.CLOSED and s.machine.history for s in self.sides) and \
                self.rst is not None:
            return True
        mine, peer = self.sides[role.value], self.sides[role.peer.value]
        # an unanswered attempt followed by a SYN with another ISN is a new connect()
        return mine.isn is not None and mine.isn != isn and peer.packets == 0

    def start_assumed(self, ts_ns: int, ack: int) -> None:
        """A capture that begins after the SYN: assume what the first segment implies."""
        client = self.sides[Role.client.value]
        if self.rule is RoleRule.synack:
            client.machine.start(ts_ns, S.SYN_SENT)
            client.isn = seq_add(ack, -1)
            client.nxt = ack
            client.opened = True
            client.stream.start(ack)
            return
        for side in self.sides:
            side.machine.start(ts_ns, S.ESTABLISHED)
            side.syn_acked = side.acked_peer_syn = side.opened = True

    # ---- the segment path
    def segment(self, role: Role, ts_ns: int, flags: int, seq: int, ack: int, window: int,
                plen: int, payload_off: int, payload_cap: int, tcp_off: int, opt_cap: int,
                data: Bytes, ip_len: int = 0) -> None:
        # The hot path of the whole tool: every segment of every connection comes here, so
        # the common case (data or ACK of an established connection) is checked first and
        # sequence arithmetic is written inline.
        if role is CLIENT:
            me, peer = self.sides
        else:
            peer, me = self.sides
        previous_ns = self.last_ns
        self.last_ns = me.last_ns = ts_ns
        me.packets += 1
        me.bytes += plen
        if me.inbox:
            echo = data.timestamps(tcp_off, opt_cap) if not flags & RST else None
            me.flush(echo[1] if echo is not None else None)
        if flags & RST:
            self._rst(role, me, peer, ts_ns, flags, ack)
            for observer in self.observers:
                observer.segment(self, role, ts_ns, flags, seq, ack, window, plen, ip_len)
            return
        syn, fin = flags & SYN, flags & FIN
        machine = me.machine

        if syn:
            wscale, stamp = data.options(tcp_off, opt_cap)
            if me.wscale is None:
                me.wscale = wscale
            self._syn(role, me, ts_ns, seq, flags & ACK, stamp)
            if flags & ACK and stamp is not None and self.handshake.syns and \
                    self.handshake.syns[-1].tsval is not None:
                me.uses_ts = peer.uses_ts = True

        if flags & ACK:
            if not me.acked_peer_syn:
                if peer.isn is None and not syn and machine.state is S.SYN_SENT:
                    # the peer's SYN/ACK is not in the capture, but this ACK answers it
                    peer.isn, peer.nxt = (ack - 1) & MASK, ack
                    peer.stream.start(ack)
                if peer.isn is not None and 0 < (ack - peer.isn) & MASK < HALF:
                    me.acked_peer_syn = True
                    if not syn:
                        machine.apply(Event.SND_ACK_OF_SYN, ts_ns)
                        if role is CLIENT:
                            self.handshake.completed(ts_ns, data.timestamps(tcp_off, opt_cap))
                    if not peer.syn_acked:
                        peer.syn_acked = True
                        self._deliver(peer, Event.RCV_ACK_OF_SYN, ts_ns, syn, data, tcp_off,
                                      opt_cap)
            fin_seq = peer.fin_seq
            if fin_seq is not None and not peer.fin_acked and 0 < (ack - fin_seq) & MASK < HALF:
                peer.fin_acked = True
                machine.apply(Event.SND_ACK_OF_FIN, ts_ns)  # proof it received the FIN
                self._deliver(peer, Event.RCV_ACK_OF_FIN, ts_ns, syn, data, tcp_off, opt_cap)
            expected = peer.stream.next_seq
            if expected is not None and 0 < (ack - expected) & MASK < HALF:
                # acknowledged beyond what we saw: the capture missed data (a FIN is not data)
                peer.stream.acked(ts_ns, ack if fin_seq is None or
                                  seq_diff(ack, fin_seq) <= 0 else fin_seq)
        me.window = window

        nxt = me.nxt
        probe = False
        if plen <= 1 and nxt is not None and not syn and not fin:
            if seq == (nxt - 1) & MASK and peer.window != 0:
                probe = True
                me.keepalive.probe(ts_ns, previous_ns, nxt)
            elif plen == 0 and peer.keepalive.awaiting_ack_at == ack:
                me.keepalive.acks_sent += 1
                peer.keepalive.awaiting_ack_at = None
        if plen:
            if not probe:
                me.keepalive.last_probe_ns = None  # ordinary traffic ends a run of probes
            me.opened = True
            me.stream.segment(ts_ns, (seq + 1) & MASK if syn else seq, plen, data, payload_off,
                              payload_cap)

        end = (seq + plen + 1) & MASK if syn else (seq + plen) & MASK
        if fin:
            if me.fin_seq is None:
                # A FIN the sender's state cannot send (from SYN_SENT, say) is an anomaly,
                # counted by the machine: it is not this side's close, and nothing acks it.
                if machine.apply(Event.SND_FIN, ts_ns):
                    me.fin_seq, me.fin_ns = end, ts_ns
                    if self.half.first_fin is None:
                        self.half.first_fin = role
            elif me.fin_seq == end:
                me.fin_retransmits += 1
            end = (end + 1) & MASK
        if nxt is None or 0 < (end - nxt) & MASK < HALF:
            me.nxt = end
        if self.observers:
            for observer in self.observers:
                observer.segment(self, role, ts_ns, flags, seq, ack, window, plen, ip_len)
        if self.handshake.simultaneous_open and self.handshake.completing_ack is None and \
                self.handshake.syns and all(
            side.machine.state in SYNCHRONIZED for side in self.sides
        ):
            # simultaneous open completes with the segment that synchronizes the second side
            self.handshake.completed(ts_ns, data.timestamps(tcp_off, opt_cap))

    def account(self, runs: Runs, lo: int, hi: int, client_side: int) -> int:
        """Take the plain segments at flow positions lo..hi-1 (see tcptrace.steady) in one
        step, exactly as `segment` would one by one, if this connection is in the steady
        state the run assumes. Returns how many were taken from `lo` (0: none, the caller
        sends `lo` through `segment`).

        Steady: both handshake halves acknowledged, no FIN, no RST, no receive event
        waiting, no out-of-order bytes held, no keep-alive probe awaiting its answer,
        each side's SND.NXT where the run continues from, and, for data, the same speaker
        as before and an HTTP parser skipping a body that is longer than the run's data.
        """
        client, server = self.sides
        handshake = self.handshake
        if self.observers or (handshake.simultaneous_open and handshake.completing_ack is None):
            return 0
        for side in self.sides:
            if side.inbox or not side.acked_peer_syn or side.fin_seq is not None or \
                    side.keepalive.awaiting_ack_at is not None or side.stream.pending:
                return 0
        stretch = runs.stretch(lo, hi)
        at_client, at_server = stretch.expected[client_side], stretch.expected[1 - client_side]
        if client.nxt != at_client or client.stream.next_seq != at_client or \
                server.nxt != at_server or server.stream.next_seq != at_server:
            return 0
        parser = None
        if stretch.data_side >= 0:
            speaks_client = stretch.data_side == client_side
            app = self.app
            if app.last_role != (0 if speaks_client else 1) or app.http is None:
                return 0
            if app.http:
                parser = app.request_parser if speaks_client else app.response_parser
                phase = parser.phase
                if phase is Phase.BODY or phase is Phase.CHUNK_DATA:
                    if stretch.data_bytes >= parser.remaining:
                        # stop before the segment that completes the body: it ends a message
                        hi = runs.cut(lo, hi, parser.remaining)
                        if hi <= lo:
                            return 0
                        stretch = runs.stretch(lo, hi)
                elif phase is Phase.UNTIL_CLOSE:
                    parser = None
                else:
                    return 0
        for canonical in (0, 1):
            sent = stretch.packets[canonical]
            if sent:
                side = self.sides[canonical ^ client_side]
                side.packets += sent
                side.last_ns = stretch.last_ns[canonical]
                side.window = stretch.window[canonical]
                side.nxt = side.stream.next_seq = stretch.end[canonical]
        if stretch.data_side >= 0:
            amount = stretch.data_bytes
            talker = self.sides[stretch.data_side ^ client_side]
            talker.bytes += amount
            talker.stream.delivered += amount
            talker.opened = True
            talker.keepalive.last_probe_ns = None
            if talker is server:
                self.app.last_server_ns = stretch.data_last_ns
            if parser is not None:
                parser.remaining -= amount
        self.last_ns = stretch.last_ns_any
        return hi - lo

    def _deliver(self, to: Side, event: Event, ts_ns: int, syn: int, data: Bytes, tcp_off: int,
                 opt_cap: int) -> None:
        """A receive event for `to`: now, or once `to` shows it has seen this segment."""
        stamp = data.timestamps(tcp_off, opt_cap) if to.uses_ts and not syn else None
        if stamp is None:
            to.machine.apply(event, ts_ns)
        else:
            to.inbox.append((stamp[0], ts_ns, event))

    def _syn(self, role: Role, me: Side, ts_ns: int, seq: int, has_ack: int,
             ts_opt: tuple[int, int] | None) -> None:
        if me.isn is None:
            me.isn = seq
            me.nxt = seq_add(seq, 1)
            me.opened = True
            me.stream.start(seq_add(seq, 1))
        if not has_ack:
            if role is Role.client:
                self.handshake.syn(ts_ns, ts_opt)
            else:
                self.handshake.simultaneous_open = True
            me.machine.apply(Event.SND_SYN, ts_ns)
            return
        if role is Role.server:
            self.handshake.synack(ts_ns, ts_opt)
        me.machine.apply(Event.SND_SYNACK, ts_ns)
        if me.syn_acked and me.machine.state is S.SYN_RCVD:
            # Simultaneous open (RFC 793 figure 8): the peer's SYN/ACK crossed ours, so the
            # ACK of our SYN it carried takes effect now that we are in SYN_RCVD.
            me.machine.apply(Event.RCV_ACK_OF_SYN, ts_ns)

    def _rst(self, role: Role, me: Side, peer: Side, ts_ns: int, flags: int, ack: int) -> None:
        # whatever reached the receiver before the RST happened before it: apply it first,
        # or a late flush would act on an endpoint the RST already closed
        if peer.inbox:
            peer.flush()
        self.rst_count += 1
        sender, receiver = me.machine.state, peer.machine.state
        if self.rst is None:
            kind = rst_kind(sender, receiver, me.opened, self.assumed)
            self.rst = Rst(role.name, sender.name, receiver.name, kind.name, ts_ns / NS, 0)
        me.machine.apply(Event.SND_RST, ts_ns)
        # RFC 9293 section 3.10.7.3: in SYN_SENT a RST counts only if it acknowledges the SYN
        if receiver is not S.SYN_SENT or (
            flags & ACK and peer.isn is not None and ack == seq_add(peer.isn, 1)
        ):
            peer.machine.apply(Event.RCV_RST, ts_ns)

    # ---- the record
    def record(self, msl_s: float) -> ConnectionRecord:
        # Once per connection, but short connections come by the tens of thousands: each
        # history is walked once (`visited`), and the parts are passed positionally (a
        # keyword call of the record's 24 fields costs more than the rest of its making).
        self.flush()
        client, server = self.sides
        cm, sm = client.machine, server.machine
        c_seen, s_seen = close_analysis.visited(cm), close_analysis.visited(sm)
        tw_first = None
        if S.TIME_WAIT in c_seen or S.TIME_WAIT in s_seen:
            tw_first = min(ts for m in (cm, sm) for ts, s in m.history if s is S.TIME_WAIT)
        rst = self.rst
        if rst is not None:
            rst = Rst(rst.sender, rst.state, rst.receiver_state, rst.kind, rst.ts, self.rst_count)
        handshake = self.handshake
        c_ka, s_ka = client.keepalive, server.keepalive
        c_stream, s_stream = client.stream, server.stream
        return ConnectionRecord(
            self.id,  # in field order, as ConnectionRecord declares them
            self.client,
            self.server,
            self.rule._name_,  # not `.name`: a Python-level property
            self.previous_id,
            self.first_ns / NS,  # first_ts
            self.last_ns / NS,  # last_ts
            _ms(self.last_ns - self.first_ns),  # duration_ms
            close_analysis.outcome(
                c_seen, s_seen, (client.fin_seq is not None, server.fin_seq is not None),
                (client.fin_acked, server.fin_acked), rst.kind if rst else None,
                bool(handshake.synacks), bool(handshake.syns),
            )._name_,
            handshake.result(),
            Close(
                close_analysis.initiator(c_seen, s_seen),
                close_analysis.time_wait(c_seen, s_seen),
                tw_first / NS if tw_first is not None else None,
                (tw_first / NS + 2 * msl_s) if tw_first is not None else None,
                PerSide(_ts(client.fin_ns), _ts(server.fin_ns)),
            ),
            self._half_close(),
            rst,
            Keepalive(
                PerSide(c_ka.probes, s_ka.probes),
                PerSide(c_ka.acks_sent, s_ka.acks_sent),
                PerSide(c_ka.intervals_ms, s_ka.intervals_ms),
            ),
            self.app.result(),
            PerSide(_changes(cm), _changes(sm)),  # states
            PerSide(cm.state._name_, sm.state._name_),  # final_state
            PerSide(client.packets, server.packets),
            PerSide(client.bytes, server.bytes),
            PerSide(c_stream.delivered + c_stream.gap_bytes,  # unique_bytes
                    s_stream.delivered + s_stream.gap_bytes),
            PerSide(c_stream.duplicate, s_stream.duplicate),  # retransmitted_bytes
            PerSide(c_stream.gap_bytes, s_stream.gap_bytes),
            PerSide(cm.anomalies, sm.anomalies),
            {observer.name: observer.result(self) for observer in self.observers}  # extra
            if self.observers else {},
        )

    def _half_close(self) -> HalfClose | None:
        first_fin = self.half.first_fin
        if first_fin is None or self.half.bytes_after == 0:
            return None
        closer = self.sides[first_fin.value]
        other = self.sides[first_fin.peer.value]
        assert closer.fin_ns is not None
        end = other.fin_ns if other.fin_ns is not None else other.last_ns
        # capture order can put the peer's last segment a hair before the FIN it answers
        return HalfClose(first_fin.name, self.half.bytes_after,
                         _ms(max(0, end - closer.fin_ns)))


def _changes(machine: EndpointMachine) -> list[StateChange]:
    # `_name_` rather than `.name`: Enum.name is a Python-level descriptor, and this runs
    # for every state change of every connection
    return [StateChange(ts / NS, state._name_) for ts, state in machine.history]


def _ms(ns: int) -> float:
    return round(ns / NS_PER_MS, 3)


def _ts(ns: int | None) -> float | None:
    return ns / NS if ns is not None else None
