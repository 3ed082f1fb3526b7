"""TCP and IPv4 header checksums, verified for a whole SegmentBatch at once.

The TCP checksum (RFC 9293 section 3.1; RFC 8200 section 8.1 for IPv6) is the ones'
complement sum of a pseudo-header (addresses, protocol 6, TCP length) and the TCP
segment; a correct segment sums to 0xFFFF. Every 16-bit word of every segment is
gathered with one fancy index and summed per segment with `np.add.reduceat`, so the
cost is a few vector operations per batch. A segment is verified only when the whole
of it was captured (as Zeek does: `caplen >= len`); IPv4 header checksums are verified
too, since Zeek drops a packet with a bad IP header checksum before TCP sees it.

Segments that fail are counted in `source.skipped["bad_checksum"]` and left out of
the analysis (engine.py). The `ChecksumLedger` keeps them per 4-tuple so the Zeek
observer can still write the `C`/`c` history letter Zeek writes for them.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tcptrace.decode import MAPPED_V4, SegmentBatch
from tcptrace.model import Endpoint, Role

if TYPE_CHECKING:
    from tcptrace.analyzers.zeek import ZeekObserver
    from tcptrace.connection import Connection

BOOL = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]
Key = tuple[int, int, int, int, int, int]


def _fold(total: I64) -> I64:
    """Ones' complement: fold the carries back into 16 bits."""
    for _ in range(3):
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _word_sums(value: npt.NDArray[np.uint64]) -> I64:
    """Sum of the four 16-bit words of each 64-bit value."""
    v = value.astype(np.uint64)
    total = np.zeros(len(v), dtype=np.int64)
    for shift in (0, 16, 32, 48):
        total += ((v >> np.uint64(shift)) & np.uint64(0xFFFF)).astype(np.int64)
    return total


def _sum_ranges(data: npt.NDArray[np.uint8], start: I64, length: I64) -> I64:
    """Ones' complement sum (unfolded) of data[start : start + length] for each row."""
    words = (length + 1) // 2
    total = int(words.sum())
    if total == 0:
        return np.zeros(len(start), dtype=np.int64)
    first = np.cumsum(words) - words
    row = np.repeat(np.arange(len(start)), words)
    pos = start[row] + 2 * (np.arange(total) - first[row])
    hi = data[pos].astype(np.int64)
    lo = data[pos + 1].astype(np.int64) * (pos + 1 < (start + length)[row])
    sums = np.zeros(len(start), dtype=np.int64)
    nonempty = words > 0
    sums[nonempty] = np.add.reduceat((hi << 8) | lo, first[nonempty])
    return sums


def bad_checksums(seg: SegmentBatch) -> BOOL:
    """True for each segment whose TCP (or IPv4 header) checksum is wrong.

    Segments not captured in full are not verifiable and count as good. The buffer of
    a SegmentBatch is padded (decode.py), so reading one byte past a frame is safe.
    """
    n = len(seg)
    if n == 0:
        return np.zeros(0, dtype=bool)
    tcp_len = seg.tcp_hlen + seg.payload_len
    full = (seg.payload_cap == seg.payload_len) & (seg.opt_cap == seg.tcp_hlen - 20)
    v4 = (seg.src_hi == 0) & ((seg.src_lo & ~np.uint64(0xFFFFFFFF)) == MAPPED_V4)
    idx = np.flatnonzero(full)
    if len(idx) == 0:
        return np.zeros(n, dtype=bool)
    s4 = v4[idx]
    pseudo = np.where(
        s4,
        _word_sums(seg.src_lo[idx] & np.uint64(0xFFFFFFFF))
        + _word_sums(seg.dst_lo[idx] & np.uint64(0xFFFFFFFF)),
        _word_sums(seg.src_hi[idx]) + _word_sums(seg.src_lo[idx])
        + _word_sums(seg.dst_hi[idx]) + _word_sums(seg.dst_lo[idx]),
    )
    pseudo = pseudo + 6 + (tcp_len[idx] & 0xFFFF) + (tcp_len[idx] >> 16)
    total = _fold(pseudo + _sum_ranges(seg.data, seg.tcp_off[idx], tcp_len[idx]))
    bad = np.zeros(n, dtype=bool)
    bad[idx] = total != 0xFFFF
    # IPv4 header: ip_len - tcp_len is its length (IHL * 4), right before the TCP header
    ihl = seg.ip_len[idx] - tcp_len[idx]
    h = s4 & (ihl >= 20) & (ihl <= 60)
    if h.any():
        rows = idx[h]
        head = _fold(_sum_ranges(seg.data, seg.tcp_off[rows] - ihl[h], ihl[h]))
        bad[rows] |= head != 0xFFFF
    return bad


def _address_key(address: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return 0, int(MAPPED_V4) | int(ip)
    value = int(ip)
    return value >> 64, value & 0xFFFFFFFFFFFFFFFF


def endpoint_key(src: Endpoint, dst: Endpoint) -> Key:
    a, b = _address_key(src.ip), _address_key(dst.ip)
    return a[0], a[1], src.port, b[0], b[1], dst.port


class ChecksumLedger:
    """Bad-checksum segments per direction of a 4-tuple: (capture time, TCP flags).

    The engine adds each batch's bad segments before it feeds the good ones to the flow
    table; a Zeek observer takes the entries of its own 4-tuple as it goes (`replay`).
    """

    def __init__(self) -> None:
        self.entries: dict[Key, deque[tuple[int, int]]] = {}
        self.total = 0

    def add(self, seg: SegmentBatch) -> None:
        columns = zip(seg.src_hi.tolist(), seg.src_lo.tolist(), seg.sport.tolist(),
                      seg.dst_hi.tolist(), seg.dst_lo.tolist(), seg.dport.tolist(),
                      seg.ts_ns.tolist(), seg.flags.tolist(), strict=True)
        for sh, sl, sp, dh, dl, dp, ts, flags in columns:
            self.entries.setdefault((sh, sl, sp, dh, dl, dp), deque()).append((ts, flags))
            self.total += 1

    def replay(self, observer: ZeekObserver, conn: Connection, until_ns: int | None) -> None:
        """Hand `observer` its 4-tuple's entries up to `until_ns` (all when None), in order."""
        if not self.entries:
            return
        keys = observer.ledger_keys
        if keys is None:
            keys = observer.ledger_keys = (endpoint_key(conn.client, conn.server),
                                           endpoint_key(conn.server, conn.client))
        queues = (self.entries.get(keys[0]), self.entries.get(keys[1]))
        if queues[0] is None and queues[1] is None:
            return
        while True:
            pick = -1
            best = 0
            for i, queue in enumerate(queues):
                if queue and (until_ns is None or queue[0][0] <= until_ns) and (
                        pick < 0 or queue[0][0] < best):
                    pick, best = i, queue[0][0]
            if pick < 0:
                break
            queue = queues[pick]
            assert queue is not None
            ts, flags = queue.popleft()
            observer.bad_checksum(conn, Role.client if pick == 0 else Role.server, ts, flags)
        for key, queue in zip(keys, queues, strict=True):
            if queue is not None and not queue:
                del self.entries[key]

    def orphans(self) -> int:
        """Bad segments no connection claimed (their 4-tuple had no good segment)."""
        return sum(len(q) for q in self.entries.values())
