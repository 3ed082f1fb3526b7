"""Steady runs: the segments of a batch that only move counters, found with numpy.

Most segments of a busy capture are in-order data and ACKs of established
connections. Each one, through `Connection.segment`, only adds to packet and byte
counts, advances the sender's sequence numbers and stream, and skips body bytes in
the HTTP parser. This module picks, per batch and per flow, the runs of segments
that can be accounted as one step (`Connection.account`), so the per-segment
Python path sees only the segments that can change a state, start a message or
reveal an anomaly.

A segment is *plain* when, judged from the batch alone:
- its flags are ACK (and PSH/URG/ECE/CWR), no SYN, FIN or RST;
- its sequence number continues its direction (SEG.SEQ = end of the previous
  segment of that direction): no retransmission, no reordering, no keep-alive probe;
- it acknowledges nothing beyond what the peer has been seen to send (no capture gap);
- if it carries data, the last data of the flow came from the same side (no new turn);
- it is not the ACK of the peer's SYN (that completes a handshake).

The batch alone cannot say where a flow stood before its first segments in the batch,
so a run is checked against the live connection when it is applied
(`Connection.account`): every assumption above is relative to sequence numbers the
connection must hold at the run's first segment, and a run that does not fit goes
segment by segment, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tcptrace.decode import ACK, FIN, RST, SYN, SegmentBatch

I64 = npt.NDArray[np.int64]
MASK = 0xFFFFFFFF
HALF = 1 << 31
MIN_RUN = 8
"""Runs shorter than this go segment by segment: checking a run, cutting it where a body
ends and applying it cost as much as a few ordinary segments (measured on slices of the
benchmark capture: 6 to 20 are alike, 3 is slower than no runs at all)."""


@dataclass(slots=True)
class Stretch:
    """Totals of the plain segments at flow positions lo..hi-1 of one flow, by canonical side
    (0: the lower address and port). Per-side `last_*` values are meaningless when that side
    sent nothing in the stretch."""

    lo: int
    hi: int
    expected: tuple[int, int]
    """Per side: the sequence number the stretch assumes that side's SND.NXT (and in-order
    stream position) to be at `lo`. `Connection.account` checks it against the connection."""
    talker: int
    """The side the stretch assumes sent the connection's latest data before `lo`."""
    packets: tuple[int, int]
    last_ns: tuple[int, int]
    window: tuple[int, int]
    end: tuple[int, int]
    """Per side: the sequence number after its last segment of the stretch."""
    data_side: int
    """The side that sent payload in the stretch (only one can), -1 for none."""
    data_bytes: int
    data_last_ns: int
    last_ns_any: int


class Runs:
    """One batch in flow order (a stable sort by flow slot). A run is a stretch of plain
    segments of one flow between two of its segments that must go one by one; runs are
    applied whole, or, when the connection cannot take one whole, cut or peeled from the
    front (`stretch`, `cut`)."""

    __slots__ = ("_columns", "_whole", "order", "slow", "slow_position", "start", "stop")

    def __init__(self, order: I64, slow: I64, slow_position: list[int], start: list[int],
                 stop: list[int], columns: _Columns, run_lo: I64, run_hi: I64) -> None:
        self.order = order
        """Flow position -> the segment's index in the batch (capture order)."""
        self.slow = slow
        """Batch indices, in capture order, of the segments that go one by one."""
        self.slow_position = slow_position
        """Flow position of each slow segment."""
        self.start = start
        """Per flow slot: its first flow position; `stop` is one past its last."""
        self.stop = stop
        self._columns = columns
        self._whole = {s.lo: s for s in columns.stretches(run_lo, run_hi)}

    def stretch(self, lo: int, hi: int) -> Stretch:
        """The totals of flow positions lo..hi-1 (all plain, in one flow)."""
        whole = self._whole.get(lo)
        if whole is not None and whole.hi == hi:
            return whole
        return self._columns.stretch(lo, hi)

    def cut(self, lo: int, hi: int, budget: int) -> int:
        """The largest stop <= hi such that lo..stop-1 carry fewer than `budget` payload
        bytes: a body that ends in the stretch ends with the segment at `stop`."""
        payload = self._columns.payload
        return min(hi, int(np.searchsorted(payload, payload.item(lo) + budget, "left")) - 1)


@dataclass(slots=True)
class _Columns:
    """Flow-ordered columns, for the totals of any stretch."""

    side: I64
    ts_ns: I64
    window: I64
    end: I64
    payload: I64
    """Prefix sum of payload lengths (one longer than the batch)."""
    from_side1: I64
    """Prefix count of segments sent by side 1."""
    last: tuple[I64, I64]
    """Per side: latest position at or before p, in p's flow, that the side sent (-1)."""
    last_data: I64
    expected: tuple[I64, I64]
    talker: I64

    def stretch(self, lo: int, hi: int) -> Stretch:
        """One stretch, read element by element (a run cut or peeled at run time)."""
        tail = hi - 1
        sent1 = self.from_side1.item(hi) - self.from_side1.item(lo)
        last_ns, window, end = [0, 0], [0, 0], [0, 0]
        for side in (0, 1):
            at = self.last[side].item(tail)
            if at >= lo:
                last_ns[side], window[side] = self.ts_ns.item(at), self.window.item(at)
                end[side] = self.end.item(at)
        data_at = self.last_data.item(tail)
        data_side = self.side.item(data_at) if data_at >= lo else -1
        return Stretch(lo, hi, (self.expected[0].item(lo), self.expected[1].item(lo)),
                       self.talker.item(lo), (hi - lo - sent1, sent1), (last_ns[0], last_ns[1]),
                       (window[0], window[1]), (end[0], end[1]), data_side,
                       self.payload.item(hi) - self.payload.item(lo),
                       self.ts_ns.item(data_at) if data_side >= 0 else 0, self.ts_ns.item(tail))

    def stretches(self, lo: I64, hi: I64) -> list[Stretch]:
        if len(lo) == 0:
            return []
        tail = hi - 1
        sent1 = self.from_side1[hi] - self.from_side1[lo]
        per_side = []
        for side in (0, 1):
            at = self.last[side][tail]
            at = np.where(at >= lo, at, tail)  # any position: unused when the side sent none
            per_side.append((self.ts_ns[at].tolist(), self.window[at].tolist(),
                             self.end[at].tolist()))
        data_at = self.last_data[tail]
        has_data = data_at >= lo
        data_at = np.where(has_data, data_at, tail)
        columns = zip(
            lo.tolist(), hi.tolist(), self.expected[0][lo].tolist(),
            self.expected[1][lo].tolist(), self.talker[lo].tolist(),
            (hi - lo - sent1).tolist(), sent1.tolist(), *per_side[0], *per_side[1],
            np.where(has_data, self.side[data_at], -1).tolist(),
            (self.payload[hi] - self.payload[lo]).tolist(), self.ts_ns[data_at].tolist(),
            self.ts_ns[tail].tolist(), strict=True,
        )
        return [Stretch(a, b, (e0, e1), t, (n0, n1), (ts0, ts1), (w0, w1), (end0, end1), ds, db,
                        dts, last)
                for a, b, e0, e1, t, n0, n1, ts0, w0, end0, ts1, w1, end1, ds, db, dts, last
                in columns]


def plan(seg: SegmentBatch, slot_of: I64, side_of: I64, fresh: npt.NDArray[np.bool_]) -> Runs:
    """Split a batch into steady runs and the segments that must go one by one.

    `slot_of` numbers each segment's flow (0..slots-1) and `side_of` gives its canonical
    sender; `fresh[slot]` says the flow has no connection yet: its first segment opens one,
    in capture order, so it is never part of a run. Where the batch holds no earlier
    segment of a side, the side's sequence number is taken from its next segment in the
    batch: the run that relies on it is checked against the connection when applied. A
    flow's first data in the batch is never plain (who spoke last is not known from the
    batch).
    """
    n = len(seg)
    order = np.argsort(slot_of, kind="stable")
    slot = slot_of[order]
    side = side_of[order]
    flags = seg.flags[order]
    seq = seg.seq[order]
    ack = seg.ack[order]
    plen = seg.payload_len[order]
    ts_ns = seg.ts_ns[order]
    end = (seq + plen + ((flags & SYN) != 0) + ((flags & FIN) != 0)) & MASK

    pos = np.arange(n, dtype=np.int64)
    first = np.ones(n, dtype=bool)
    first[1:] = slot[1:] != slot[:-1]
    starts = np.flatnonzero(first)
    stops = np.append(starts[1:], n)
    flow_start = np.repeat(starts, stops - starts)
    flow_stop = np.repeat(stops, stops - starts)

    def latest(mask: npt.NDArray[np.bool_]) -> I64:  # at or before p, in p's flow
        at = np.maximum.accumulate(np.where(mask, pos, -1))
        return np.where(at >= flow_start, at, -1)

    def earliest(mask: npt.NDArray[np.bool_]) -> I64:  # at or after p, in p's flow
        at = np.minimum.accumulate(np.where(mask, pos, n)[::-1])[::-1]
        return np.where(at < flow_stop, at, -1)

    def before(at: I64) -> I64:
        shifted = np.empty(n, dtype=np.int64)
        shifted[0] = -1
        shifted[1:] = at[:-1]
        shifted[first] = -1
        return shifted

    def expected_of(mine: npt.NDArray[np.bool_], last: I64) -> I64:
        prior, upcoming = before(last), earliest(mine)
        return np.where(prior >= 0, end[prior], np.where(upcoming >= 0, seq[upcoming], -1))

    is0, is1, has_data = side == 0, side == 1, plen > 0
    last0, last1, last_data = latest(is0), latest(is1), latest(has_data)
    expected0, expected1 = expected_of(is0, last0), expected_of(is1, last1)
    prior_data = before(last_data)
    talker = np.where(prior_data >= 0, side[prior_data], -1)
    own = np.where(is0, expected0, expected1)
    peer = np.where(is0, expected1, expected0)
    beyond = (ack - peer) & MASK
    peer_prior = np.where(is0, before(last1), before(last0))
    plain = (
        ((flags & (SYN | FIN | RST)) == 0) & ((flags & ACK) != 0)
        & (seq == own) & (peer >= 0) & ((beyond == 0) | (beyond >= HALF))
        & (~has_data | (side == talker))
        # the ACK of a SYN completes a handshake: not plain, however it looks
        & ((peer_prior < 0) | ((flags[peer_prior] & SYN) == 0))
    )
    plain[starts[fresh[slot[starts]]]] = False
    # runs: maximal stretches of plain segments within a flow; short ones go one by one
    boundary = first.copy()
    boundary[1:] |= plain[1:] != plain[:-1]
    run_id = np.cumsum(boundary) - 1
    run_len = np.bincount(run_id)
    plain &= run_len[run_id] >= MIN_RUN
    run_first = plain & boundary
    run_lo = np.flatnonzero(run_first)
    run_hi = run_lo + run_len[run_id[run_lo]]

    slow = np.sort(order[~plain])
    position = np.empty(n, dtype=np.int64)
    position[order] = pos
    payload = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(plen, out=payload[1:])
    from_side1 = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(side, out=from_side1[1:])
    slots_range = np.arange(len(fresh))
    columns = _Columns(side, ts_ns, seg.window[order], end, payload, from_side1, (last0, last1),
                       last_data, (expected0, expected1), talker)
    return Runs(order, slow, position[slow].tolist(),
                np.searchsorted(slot, slots_range, "left").tolist(),
                np.searchsorted(slot, slots_range, "right").tolist(), columns, run_lo, run_hi)
