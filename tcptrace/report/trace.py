"""The segment trace as records carry it (the `trace` key; built by src/analyzers/trace.rs).

A run asked to trace (tcptrace.native.trace) gives each selected connection's record a
trace: its first segments (up to the run's limit), how many there were, and per segment
the sender, flags, sequence numbers relative to each side's ISN (Wireshark's relative
numbers), payload length, scaled window, the states after it and those it entered, and
its mark (see the Rust module for what each mark means).
"""

from __future__ import annotations

from typing import Any, TypedDict

FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
RETRANSMISSION, OUT_OF_ORDER = "retransmission", "out-of-order"
KEEPALIVE, RESET = "keep-alive", "rst"
FLAG_NAMES = ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"), (URG, "URG"), (ACK, "ACK"))

Record = dict[str, Any]
"""A connection record: the dict of docs/output.md (tcptrace/schema/output.schema.json)."""


class TracedSegment(TypedDict):
    ts_ns: int
    role: str
    """The sender: "client" or "server"."""
    flags: int
    seq: int
    """Relative to the sender's ISN (the SYN is 0, the first data byte 1)."""
    ack: int | None
    """Relative to the receiver's ISN; None when the ACK flag is clear."""
    length: int
    window: int
    """Advertised window in bytes, scaled when both SYNs negotiated scaling."""
    states: list[str]
    """[client, server] state after the segment."""
    entered: list[list[str]]
    """[client, server] states entered since the previous segment, in order."""
    marks: list[str]
    verdicts: list[str]
    """The health analyzer's verdicts on the segment (docs/health.md), named as Wireshark's
    tcp.analysis flags where one exists."""


class Trace(TypedDict):
    segments: list[TracedSegment]
    total: int
    """Segments of the connection, kept or not."""
    first_ns: int
    truncated: bool


def trace_of(record: Record) -> Trace | None:
    """The record's trace, if its connection was traced."""
    trace: Trace | None = record.get("trace")
    return trace


def flag_text(flags: int) -> str:
    """Flags the way they are usually spoken: SYN/ACK, FIN/ACK, PSH/ACK, RST/ACK."""
    return "/".join(name for bit, name in FLAG_NAMES if flags & bit) or "none"


def plain(seg: TracedSegment) -> bool:
    """Data or a bare ACK, unremarkable (no mark, no health verdict), changing no state:
    what a fold may hide."""
    return not (seg["flags"] & (SYN | FIN | RST) or seg["marks"] or seg["verdicts"]
                or any(seg["entered"]))
