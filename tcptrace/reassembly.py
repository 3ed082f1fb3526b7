"""Per-direction byte streams: in-order delivery, duplicates removed, gaps recorded.

Only what the application analyzers need is kept: the stream hands each new
in-order stretch to a consumer as (timestamp, length, bytes or None). Bytes are
fetched lazily, and only while the consumer asks for them, so a bulk download
costs a few integer operations per segment, not a copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from tcptrace.seqnum import seq_add, seq_diff

# Out-of-order bytes held per direction before the stream gives up waiting for the
# missing piece and records a gap: bounds memory whatever the peer does.
MAX_PENDING_BYTES = 1 << 20


class PayloadSource(Protocol):
    def payload(self, off: int, cap: int, length: int) -> bytes | None: ...


class StreamConsumer(Protocol):
    @property
    def wants_bytes(self) -> bool: ...

    def on_data(self, ts_ns: int, length: int, data: bytes | None) -> None: ...

    def on_gap(self, ts_ns: int, length: int) -> None: ...


@dataclass(slots=True)
class Stream:
    """One direction of a connection, in sequence order."""

    consumer: StreamConsumer
    next_seq: int | None = None
    delivered: int = 0
    """Bytes delivered in order (unique payload, retransmissions excluded)."""
    duplicate: int = 0
    """Payload bytes seen again (retransmissions and overlaps)."""
    gap_bytes: int = 0
    gaps: int = 0
    pending: dict[int, tuple[int, int, bytes | None]] = field(default_factory=dict)
    pending_bytes: int = 0

    def start(self, seq: int) -> None:
        """First sequence number of data: ISN + 1, or the first segment seen mid-stream."""
        if self.next_seq is None:
            self.next_seq = seq

    def segment(self, ts_ns: int, seq: int, length: int, source: PayloadSource,
                payload_off: int, payload_cap: int) -> None:
        """A segment carrying `length` bytes at `seq`; its bytes are read from `source`
        (at payload_off, payload_cap of them captured) only if the consumer wants them."""
        expected = self.next_seq
        if expected is None:
            expected = self.next_seq = seq
        if seq == expected and not self.pending:  # the common case: next in order
            consumer = self.consumer
            data = source.payload(payload_off, payload_cap, length) \
                if consumer.wants_bytes else None
            # `_deliver`, inline: this runs for every data segment
            self.next_seq = (expected + length) & 0xFFFFFFFF
            self.delivered += length
            consumer.on_data(ts_ns, length, data)
            return
        ahead = seq_diff(seq, expected)
        if ahead > 0:  # out of order: hold until the hole fills
            if seq not in self.pending:
                data = source.payload(payload_off, payload_cap, length) \
                    if self.consumer.wants_bytes else None
                self.pending[seq] = (ts_ns, length, data)
                self.pending_bytes += length
                if self.pending_bytes > MAX_PENDING_BYTES:
                    self.skip_to(ts_ns, min(self.pending, key=lambda s: seq_diff(s, seq)))
            return
        new = length + ahead  # ahead <= 0: the first -ahead bytes were seen already
        self.duplicate += min(length, -ahead)
        if new <= 0:
            return
        data = None
        if self.consumer.wants_bytes:
            full = source.payload(payload_off, payload_cap, length)
            data = full[-ahead:] if full is not None else None
        self._deliver(ts_ns, new, data)
        self._drain(ts_ns)

    def acked(self, ts_ns: int, ack: int) -> None:
        """The receiver acknowledged up to `ack`: bytes before it that we never saw are a gap."""
        if self.next_seq is not None and seq_diff(ack, self.next_seq) > 0:
            if self.pending:
                first = min(self.pending, key=lambda s: seq_diff(s, self.next_seq or 0))
                if seq_diff(first, ack) < 0:
                    ack = first
            if seq_diff(ack, self.next_seq) > 0:
                self.skip_to(ts_ns, ack)

    def skip_to(self, ts_ns: int, seq: int) -> None:
        assert self.next_seq is not None
        missing = seq_diff(seq, self.next_seq)
        if missing > 0:
            self.gaps += 1
            self.gap_bytes += missing
            self.consumer.on_gap(ts_ns, missing)
            self.next_seq = seq
        self._drain(ts_ns)

    def _deliver(self, ts_ns: int, length: int, data: bytes | None) -> None:
        assert self.next_seq is not None
        self.next_seq = seq_add(self.next_seq, length)
        self.delivered += length
        self.consumer.on_data(ts_ns, length, data)

    def _drain(self, ts_ns: int) -> None:
        while self.pending:
            progressed = False
            for seq in list(self.pending):
                assert self.next_seq is not None
                ahead = seq_diff(seq, self.next_seq)
                if ahead > 0:
                    continue
                _held_ts, length, data = self.pending.pop(seq)
                self.pending_bytes -= length
                new = length + ahead
                self.duplicate += min(length, -ahead)
                if new > 0:
                    self._deliver(ts_ns, new, data[-ahead:] if data is not None else None)
                progressed = True
            if not progressed:
                return
