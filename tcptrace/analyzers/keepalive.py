"""TCP keep-alive probes and their answers (RFC 1122 section 4.2.3.6).

A probe is a segment with no SYN/FIN/RST, 0 or 1 byte of payload, and a sequence
number one below what the sender has already used (SEG.SEQ = SND.NXT - 1), so the
receiver must answer with an ACK. Zero-window probes look the same; they are told
apart by the peer's advertised window of 0. The answer is the peer's next pure
ACK acknowledging SND.NXT.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NS_PER_MS = 1_000_000


@dataclass(slots=True)
class KeepaliveSide:
    probes: int = 0
    acks_sent: int = 0
    """ACKs this side sent in answer to the peer's probes."""
    intervals_ms: list[float] = field(default_factory=list)
    last_probe_ns: int | None = None
    """Time of the latest probe of the current run; ordinary traffic from this side ends
    the run (Connection.segment and Connection.account set it back to None)."""
    awaiting_ack_at: int | None = None
    """SND.NXT of this side's outstanding probe: the ack value that answers it."""

    def probe(self, ts_ns: int, previous_activity_ns: int, nxt: int) -> None:
        since = self.last_probe_ns if self.last_probe_ns is not None else previous_activity_ns
        self.intervals_ms.append(round((ts_ns - since) / NS_PER_MS, 3))
        self.probes += 1
        self.last_probe_ns = ts_ns
        self.awaiting_ack_at = nxt
