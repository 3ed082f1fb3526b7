"""The flow table: 4-tuples to connections, port reuse, eviction.

A 4-tuple maps to its current connection. A SYN on a tuple whose connection has
ended (or holds TIME_WAIT, or was reset, or is an unanswered attempt with another
ISN) ends that connection and starts a new one: port reuse is reported through
`previous_id`, never merged. Ended connections linger a little (capture time) so
that late duplicates and a RST hitting TIME_WAIT still land on them; then they are
emitted. The table is capped: past `max_flows`, the connections idle the longest
are evicted (emitted as they are) and counted.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from tcptrace.connection import Bytes, Connection, ObserverFactory
from tcptrace.decode import ACK, SYN, SegmentBatch
from tcptrace.model import Endpoint, Role, RoleRule

NS = 1_000_000_000
WELL_KNOWN = 1024
SWEEP_INTERVAL_NS = NS // 2
CAP_SLACK = 1024  # flows allowed over --max-flows between two evictions
ROLES = (Role.client, Role.server)  # indexed by (canonical side XOR the client's side)


@dataclass(slots=True)
class FlowTableStats:
    connections: int = 0
    evicted_for_capacity: int = 0
    idle_evicted: int = 0
    port_reuse: int = 0
    after_close: int = 0
    """Segments that arrived after their connection was emitted (late duplicates)."""


@dataclass(slots=True)
class _Slot:
    """A 4-tuple as seen in canonical order: side 0 is the lower (address, port)."""

    key: bytes
    endpoints: tuple[Endpoint, Endpoint]
    conn: Connection | None = None
    client_side: int = 0


@dataclass
class FlowTable:
    linger_s: float = 5.0
    max_flows: int = 1_000_000
    tombstone_s: float = 60.0
    """How long a 4-tuple remembers its emitted connection (2 * MSL): late segments are
    counted in `after_close` instead of opening a ghost connection, and a new SYN links
    back to it through previous_id. A tombstone is a few dozen bytes; a connection ~6 KB."""
    idle_timeout_s: float | None = None
    """Emit connections that have not ended but saw no segment for this long (capture time)."""
    observers: list[ObserverFactory] = field(default_factory=list)
    stats: FlowTableStats = field(default_factory=FlowTableStats)
    slots: dict[bytes, _Slot] = field(default_factory=dict)
    ended: list[Connection] = field(default_factory=list)
    """Finished connections awaiting the caller (in the order they finished)."""
    next_id: int = 1
    now_ns: int = 0
    _bytes: Bytes = field(default_factory=Bytes)
    _bytes_of: object = None
    tombstones: dict[int, int] = field(default_factory=dict)
    """hash(4-tuple key) -> id of the connection last emitted on it. A 64-bit hash instead of
    the 40-byte key, and two deques of ints instead of tuples: ~150 bytes a tombstone."""
    _tombstone_ns: deque[int] = field(default_factory=deque)
    _tombstone_keys: deque[int] = field(default_factory=deque)
    _swept_ns: int = 0

    def feed(self, seg: SegmentBatch) -> None:
        """Run every segment of the batch through its connection, in capture order."""
        n = len(seg)
        if n == 0:
            return
        src_first = (seg.src_hi < seg.dst_hi) | (
            (seg.src_hi == seg.dst_hi)
            & ((seg.src_lo < seg.dst_lo) | ((seg.src_lo == seg.dst_lo) & (seg.sport <= seg.dport)))
        )
        lo_hi = np.where(src_first, seg.src_hi, seg.dst_hi)
        lo_lo = np.where(src_first, seg.src_lo, seg.dst_lo)
        hi_hi = np.where(src_first, seg.dst_hi, seg.src_hi)
        hi_lo = np.where(src_first, seg.dst_lo, seg.src_lo)
        lo_port = np.where(src_first, seg.sport, seg.dport).astype(np.uint64)
        hi_port = np.where(src_first, seg.dport, seg.sport).astype(np.uint64)
        keys = np.stack([lo_hi, lo_lo, hi_hi, hi_lo, (lo_port << np.uint64(16)) | hi_port], axis=1)
        keys = np.ascontiguousarray(keys).view(np.dtype((np.void, 40))).ravel()
        uniq, inverse = np.unique(keys, return_inverse=True)
        slots = [self._slot(k.tobytes()) for k in uniq]

        if seg.data is not self._bytes_of:  # slices of one read chunk share its buffer
            self._bytes_of = seg.data
            self._bytes.data = seg.data.tobytes()
        direction = (~src_first).astype(np.int64).tolist()
        columns = zip(
            inverse.tolist(), direction, seg.ts_ns.tolist(), seg.flags.tolist(), seg.seq.tolist(),
            seg.ack.tolist(), seg.window.tolist(), seg.payload_len.tolist(),
            seg.payload_off.tolist(), seg.payload_cap.tolist(), seg.tcp_off.tolist(),
            seg.opt_cap.tolist(), seg.ip_len.tolist(),
            (seg.ordinal if seg.ordinal is not None else np.arange(n)).tolist(), strict=True,
        )
        data = self._bytes
        for slot_i, side, ts, flags, sq, ak, win, plen, poff, pcap, toff, ocap, iplen, order \
                in columns:
            slot = slots[slot_i]
            conn = slot.conn
            if flags & SYN and not flags & ACK:
                if conn is None or conn.accepts_new_syn(ROLES[side ^ slot.client_side], sq):
                    conn = self._open(slot, side, ts, RoleRule.syn, flags, ak, order)
            elif conn is None:
                if self.tombstones and hash(slot.key) in self.tombstones:  # late segment
                    self.stats.after_close += 1
                    continue
                rule = RoleRule.synack if flags & SYN else RoleRule.port
                conn = self._open(slot, side, ts, rule, flags, ak, order)
            role = ROLES[side ^ slot.client_side]
            conn.segment(role, ts, flags, sq, ak, win, plen, poff, pcap, toff, ocap, data, iplen)
        self.now_ns = max(self.now_ns, int(seg.ts_ns.max()))
        self._sweep()

    def _slot(self, key: bytes) -> _Slot:
        """The table's slot for `key`, or a new one that joins the table when a connection
        opens on it (so the table holds only flows with a connection: that is what the
        --max-flows cap counts)."""
        slot = self.slots.get(key)
        if slot is None:
            words = np.frombuffer(key, dtype=np.uint64)
            slot = _Slot(key, (_endpoint(words[0], words[1], int(words[4]) >> 16),
                               _endpoint(words[2], words[3], int(words[4]) & 0xFFFF)))
        return slot

    def _open(self, slot: _Slot, side: int, ts: int, rule: RoleRule, flags: int,
              ack: int, ordinal: int) -> Connection:
        previous = slot.conn
        previous_id = self.tombstones.pop(hash(slot.key), None) if self.tombstones else None
        if previous is not None:
            self.ended.append(previous)
            previous_id = previous.id
        if previous_id is not None:
            self.stats.port_reuse += 1
        if rule is RoleRule.syn:
            slot.client_side = side
        elif rule is RoleRule.synack:
            slot.client_side = 1 - side
        else:
            slot.client_side = _client_by_port(slot.endpoints)
        conn = Connection(self.next_id, slot.endpoints[slot.client_side],
                          slot.endpoints[1 - slot.client_side], rule, ts, previous_id)
        if rule is not RoleRule.syn:
            conn.start_assumed(ts, ack)
        conn.observers = [make() for make in self.observers]
        conn.first_ordinal = ordinal
        self.next_id += 1
        self.stats.connections += 1
        slot.conn = conn
        if self.slots.get(slot.key) is not slot:
            self.slots[slot.key] = slot
        if len(self.slots) > self.max_flows + CAP_SLACK:
            self._evict_idlest()
        return conn

    def _sweep(self) -> None:
        """Emit connections that ended more than `linger_s` ago; enforce the cap.

        A sweep visits every connection, so it runs at most once per SWEEP_INTERVAL of
        capture time (emission is at most that much later), unless the table is over its cap.
        """
        if self.now_ns - self._swept_ns < SWEEP_INTERVAL_NS and len(self.slots) <= self.max_flows:
            return
        self._swept_ns = self.now_ns
        horizon = self.now_ns - int(self.linger_s * NS)
        idle = (self.now_ns - int(self.idle_timeout_s * NS)
                if self.idle_timeout_s is not None else None)
        done = [k for k, s in self.slots.items() if s.conn is not None and (
            (s.conn.last_ns < horizon and s.conn.ended())
            or (idle is not None and s.conn.last_ns < idle))]
        for key in done:
            conn = self.slots[key].conn
            if conn is not None and not conn.ended():
                self.stats.idle_evicted += 1
        for key in done:
            conn = self.slots.pop(key).conn
            assert conn is not None
            self.ended.append(conn)
            if conn.ended():
                hashed = hash(key)
                self.tombstones[hashed] = conn.id
                self._tombstone_ns.append(self.now_ns)
                self._tombstone_keys.append(hashed)
        expired = self.now_ns - int(self.tombstone_s * NS)
        while self._tombstone_ns and self._tombstone_ns[0] < expired:
            self._tombstone_ns.popleft()
            self.tombstones.pop(self._tombstone_keys.popleft(), None)
        if len(self.slots) > self.max_flows:
            self._evict_idlest()

    def _evict_idlest(self) -> None:
        """Back to `max_flows`: emit the connections idle the longest. Runs when the table
        is CAP_SLACK over its cap, so the sort is paid once per CAP_SLACK new flows."""
        excess = len(self.slots) - self.max_flows
        if excess <= 0:
            return
        oldest = sorted(self.slots, key=lambda k: self.slots[k].conn.last_ns  # type: ignore[union-attr]
                        if self.slots[k].conn else 0)[:excess]
        for key in oldest:
            slot = self.slots.pop(key)
            if slot.conn is not None:
                self.ended.append(slot.conn)
                self.stats.evicted_for_capacity += 1
            # a later segment of this flow in the same batch opens a new connection and
            # puts the slot back
            slot.conn = None

    def tick(self, now_ns: int) -> None:
        """Advance the clock without traffic (live capture): lets idle and lingering
        connections be emitted on time."""
        self.now_ns = max(self.now_ns, now_ns)
        self._sweep()

    def drain(self) -> Iterator[Connection]:
        """Connections finished so far, in the order they finished. Each is released as it
        is handed out: a burst of thousands must not stay alive until the last is written."""
        ended, self.ended = self.ended, []
        ended.reverse()
        while ended:
            yield ended.pop()

    def close(self) -> Iterator[Connection]:
        """Every connection still in the table, at the end of the capture."""
        self.tombstones.clear()
        self._tombstone_ns.clear()
        self._tombstone_keys.clear()
        yield from self.drain()
        for slot in self.slots.values():
            if slot.conn is not None:
                yield slot.conn
        self.slots.clear()


def _endpoint(hi: np.uint64, lo: np.uint64, port: int) -> Endpoint:
    value = (int(hi) << 64) | int(lo)
    address = ipaddress.IPv6Address(value)
    mapped = address.ipv4_mapped
    return Endpoint(str(mapped if mapped is not None else address), port)


def _client_by_port(endpoints: tuple[Endpoint, Endpoint]) -> int:
    """Mid-connection: the well-known (else the lower) port is the server's."""
    a, b = endpoints[0].port, endpoints[1].port
    if (a < WELL_KNOWN) != (b < WELL_KNOWN):
        return 1 if a < WELL_KNOWN else 0
    return 1 if a <= b else 0
