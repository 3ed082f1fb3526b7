"""Per-direction byte streams: order, duplicates, gaps."""

from __future__ import annotations

from dataclasses import dataclass, field

from tcptrace.reassembly import Stream


@dataclass
class Recorder:
    wants_bytes: bool = True
    chunks: list[tuple[int, bytes | None]] = field(default_factory=list)
    gaps: list[int] = field(default_factory=list)

    def on_data(self, ts_ns: int, length: int, data: bytes | None) -> None:
        self.chunks.append((length, data))

    def on_gap(self, ts_ns: int, length: int) -> None:
        self.gaps.append(length)


def stream() -> tuple[Stream, Recorder]:
    rec = Recorder()
    s = Stream(rec)
    s.start(1000)
    return s, rec


class Payload:
    """A payload source holding one segment's bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def payload(self, off: int, cap: int, length: int) -> bytes | None:
        return self.data


def send(s: Stream, seq: int, data: bytes) -> None:
    s.segment(0, seq, len(data), Payload(data), 0, len(data))


def test_in_order_and_retransmission() -> None:
    s, rec = stream()
    send(s, 1000, b"hello")
    send(s, 1000, b"hello")  # retransmission
    send(s, 1003, b"lo wor")  # overlap: only " wor" is new
    assert rec.chunks == [(5, b"hello"), (4, b" wor")]
    assert (s.delivered, s.duplicate) == (9, 7)


def test_out_of_order_is_held_until_the_hole_fills() -> None:
    s, rec = stream()
    send(s, 1005, b"world")
    assert rec.chunks == []
    send(s, 1000, b"hello")
    assert rec.chunks == [(5, b"hello"), (5, b"world")]


def test_acknowledged_bytes_never_seen_are_a_gap() -> None:
    s, rec = stream()
    send(s, 1000, b"ab")
    send(s, 1010, b"xyz")
    s.acked(0, 1013)  # the receiver has everything: 8 bytes were lost at the capture point
    assert rec.gaps == [8] and s.gap_bytes == 8
    assert rec.chunks == [(2, b"ab"), (3, b"xyz")]


def test_sequence_numbers_wrap() -> None:
    rec = Recorder()
    s = Stream(rec)
    s.start(0xFFFFFFFE)
    send(s, 0xFFFFFFFE, b"wrap")
    send(s, 2, b"ok")
    assert rec.chunks == [(4, b"wrap"), (2, b"ok")]
