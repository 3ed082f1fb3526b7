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

import functools
import ipaddress
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np
import numpy.typing as npt

from tcptrace.connection import Bytes, Connection, ObserverFactory
from tcptrace.decode import ACK, SYN, SegmentBatch
from tcptrace.model import Endpoint, Role, RoleRule
from tcptrace.steady import MIN_RUN, Runs, plan

NS = 1_000_000_000
WELL_KNOWN = 1024
SWEEP_INTERVAL_NS = NS // 2
KEY_BYTES = 40  # a 4-tuple key: four 64-bit address halves, then both ports in one word
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
    steady_segments: int = 0
    """Segments accounted in bulk as part of a steady run (not in the report: the records
    are the same either way)."""


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
    bulk: bool = True
    """Account steady runs in bulk (tcptrace.steady); False sends every segment through
    `Connection.segment` (the reference path the bulk one is compared against)."""
    _batch: tuple[SegmentBatch, npt.NDArray[np.int64], npt.NDArray[np.int64], Runs] | None = None
    _tombstone_ns: deque[int] = field(default_factory=deque)
    _tombstone_keys: deque[int] = field(default_factory=deque)
    _swept_ns: int = 0

    def feed(self, seg: SegmentBatch) -> None:
        """Run every segment of the batch through its connection, in capture order."""
        n = len(seg)
        if n == 0:
            return
        src_first = canonical_first(seg)
        lo_hi = np.where(src_first, seg.src_hi, seg.dst_hi)
        lo_lo = np.where(src_first, seg.src_lo, seg.dst_lo)
        hi_hi = np.where(src_first, seg.dst_hi, seg.src_hi)
        hi_lo = np.where(src_first, seg.dst_lo, seg.src_lo)
        lo_port = np.where(src_first, seg.sport, seg.dport).astype(np.uint64)
        hi_port = np.where(src_first, seg.dport, seg.sport).astype(np.uint64)
        keys = np.stack([lo_hi, lo_lo, hi_hi, hi_lo, (lo_port << np.uint64(16)) | hi_port], axis=1)
        keys = np.ascontiguousarray(keys).view(np.dtype((np.void, KEY_BYTES))).ravel()
        uniq, inverse = np.unique(keys, return_inverse=True)
        # keys cut from one bytes object: iterating the array would make a numpy scalar each
        raw, get = uniq.tobytes(), self.slots.get
        slots: list[_Slot] = []
        for at in range(0, len(raw), KEY_BYTES):
            key = raw[at : at + KEY_BYTES]
            slot = get(key)
            slots.append(slot if slot is not None else self._new_slot(key))

        if seg.data is not self._bytes_of:  # slices of one read chunk share its buffer
            self._bytes_of = seg.data
            whole: object = seg.data.base  # the read chunk itself, if decode did not copy it
            self._bytes.data = (whole if isinstance(whole, bytes) and len(whole) == len(seg.data)
                                else seg.data.tobytes())
        direction = (~src_first).astype(np.int64)
        ordinal = seg.ordinal if seg.ordinal is not None else np.arange(n)
        # Steady runs (tcptrace.steady) are accounted in bulk, unless observers want every
        # segment or this batch could evict (eviction compares the flows' last activity).
        picked: slice | npt.NDArray[np.int64] = slice(None)  # no runs: every segment
        runs: Runs | None = None
        cursor = [0] * len(slots)
        positions: Iterable[int] = repeat(-1, n)  # no runs: the cursor check below never fires
        if self.bulk and not self.observers and \
                len(self.slots) + len(slots) <= self.max_flows + CAP_SLACK:
            runs = plan(seg, inverse, direction,
                        np.array([slot.conn is None for slot in slots], dtype=bool))
            picked, cursor, positions = runs.slow, runs.start, runs.slow_position
            self._batch = (seg, direction, ordinal, runs)
        columns = zip(*(column[picked].tolist() for column in (
            inverse, direction, seg.ts_ns, seg.flags, seg.seq, seg.ack, seg.window,
            seg.payload_len, seg.payload_off, seg.payload_cap, seg.tcp_off, seg.opt_cap,
            seg.ip_len, ordinal)), positions, strict=True)
        data = self._bytes
        for slot_i, side, ts, flags, sq, ak, win, plen, poff, pcap, toff, ocap, iplen, order, \
                at in columns:
            slot = slots[slot_i]
            if cursor[slot_i] < at:  # this flow's steady run before this segment comes first
                self._run(slot, cursor[slot_i], at)
            cursor[slot_i] = at + 1
            conn = slot.conn
            if conn is None or (flags & SYN and not flags & ACK):
                conn = self._connection_for(slot, side, ts, flags, sq, ak, order)
                if conn is None:
                    continue
            conn.segment(ROLES[side ^ slot.client_side], ts, flags, sq, ak, win, plen, poff,
                         pcap, toff, ocap, data, iplen)
        if runs is not None:
            for slot_i, (at, stop) in enumerate(zip(cursor, runs.stop, strict=True)):
                if at < stop:
                    self._run(slots[slot_i], at, stop)
            self._batch = None
        self.now_ns = max(self.now_ns, int(seg.ts_ns.max()))
        self._sweep()

    def _connection_for(self, slot: _Slot, side: int, ts: int, flags: int, seq: int, ack: int,
                        ordinal: int) -> Connection | None:
        """The connection a segment belongs to, opening one if it starts one (a SYN, or the
        first segment of a flow the capture joined late); None for a late duplicate."""
        conn = slot.conn
        if flags & SYN and not flags & ACK:
            if conn is None or conn.accepts_new_syn(ROLES[side ^ slot.client_side], seq):
                conn = self._open(slot, side, ts, RoleRule.syn, flags, ack, ordinal)
        elif conn is None:
            if self.tombstones and hash(slot.key) in self.tombstones:
                self.stats.after_close += 1
                return None
            rule = RoleRule.synack if flags & SYN else RoleRule.port
            conn = self._open(slot, side, ts, rule, flags, ack, ordinal)
        return conn

    def _run(self, slot: _Slot, lo: int, hi: int) -> None:
        """A flow's segments at flow positions lo..hi-1 of the current batch: in bulk as far
        as the connection allows, the rest one by one."""
        assert self._batch is not None
        seg, direction, ordinal, runs = self._batch
        while lo < hi:
            conn = slot.conn
            if conn is not None and hi - lo >= MIN_RUN:
                taken = conn.account(runs, lo, hi, slot.client_side)
                self.stats.steady_segments += taken
                lo += taken
                if lo >= hi:
                    return
            i = runs.order.item(lo)
            side, ts, flags = direction.item(i), seg.ts_ns.item(i), seg.flags.item(i)
            seq, ack = seg.seq.item(i), seg.ack.item(i)
            conn = self._connection_for(slot, side, ts, flags, seq, ack, ordinal.item(i))
            if conn is not None:
                conn.segment(ROLES[side ^ slot.client_side], ts, flags, seq, ack,
                             seg.window.item(i), seg.payload_len.item(i),
                             seg.payload_off.item(i), seg.payload_cap.item(i),
                             seg.tcp_off.item(i), seg.opt_cap.item(i), self._bytes,
                             seg.ip_len.item(i))
            lo += 1

    @staticmethod
    def _new_slot(key: bytes) -> _Slot:
        """A slot for a `key` the table does not hold: it joins the table when a connection
        opens on it (so the table holds only flows with a connection: that is what the
        --max-flows cap counts)."""
        words = np.frombuffer(key, dtype=np.uint64)
        return _Slot(key, (_endpoint(words[0], words[1], int(words[4]) >> 16),
                           _endpoint(words[2], words[3], int(words[4]) & 0xFFFF)))

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
        if self.observers:
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
        # ended() is asked once per connection (it flushes the inboxes first, so a second
        # answer would be the same): most held connections are past neither horizon.
        done: list[tuple[bytes, Connection, bool]] = []
        for key, slot in self.slots.items():
            conn = slot.conn
            if conn is None:
                continue
            if conn.last_ns < horizon and conn.ended():
                done.append((key, conn, True))
            elif idle is not None and conn.last_ns < idle:
                done.append((key, conn, conn.ended()))
        for key, conn, ended in done:
            del self.slots[key]
            self.ended.append(conn)
            if not ended:
                self.stats.idle_evicted += 1
            else:
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


def canonical_first(seg: SegmentBatch) -> npt.NDArray[np.bool_]:
    """Whether each segment's source is the lower (address, port) of its 4-tuple: the
    canonical order both directions of a flow share (flow keys, partition hashes)."""
    first: npt.NDArray[np.bool_] = (seg.src_hi < seg.dst_hi) | (
        (seg.src_hi == seg.dst_hi)
        & ((seg.src_lo < seg.dst_lo) | ((seg.src_lo == seg.dst_lo) & (seg.sport <= seg.dport)))
    )
    return first


@functools.lru_cache(maxsize=1 << 16)
def _address(value: int) -> str:
    """The text of an address key (IPv4 is kept IPv4-mapped): cached, since a capture has
    far fewer addresses than flows and `ipaddress` costs microseconds per call."""
    address = ipaddress.IPv6Address(value)
    mapped = address.ipv4_mapped
    return str(mapped if mapped is not None else address)


def _endpoint(hi: np.uint64, lo: np.uint64, port: int) -> Endpoint:
    return Endpoint(_address((int(hi) << 64) | int(lo)), port)


def _client_by_port(endpoints: tuple[Endpoint, Endpoint]) -> int:
    """Mid-connection: the well-known (else the lower) port is the server's."""
    a, b = endpoints[0].port, endpoints[1].port
    if (a < WELL_KNOWN) != (b < WELL_KNOWN):
        return 1 if a < WELL_KNOWN else 0
    return 1 if a <= b else 0
