"""What a drawn segment is marked with: the health analyzer's verdicts (docs/health.md, "The
verdict on each segment"), in words short enough for an arrow's label, and their legend.

A retransmission names its cause (`retransmission:rto`, `:fast`, `:tlp`), so the picture
says what the record counts. The trace's own marks (src/analyzers/trace.rs) judge a segment
without the receiver's ACKs, so where they and the verdicts differ (a simultaneous open's
SYN/ACK, a hole's fill) the verdicts are drawn; of the marks only the RST is, as a cross.
"""

from __future__ import annotations

from tcptrace.report.trace import KEEPALIVE, OUT_OF_ORDER, RETRANSMISSION, TracedSegment

CAUSES = {"rto": "rto", "fast_retransmission": "fast", "tail_loss_probe": "tlp"}
"""The verdict of a retransmission's cause, and its word after `retransmission:`."""

WORDS = {
    "spurious_retransmission": "spurious",
    "out_of_order": OUT_OF_ORDER,
    "keep_alive": KEEPALIVE,
    "zero_window_probe": "window-probe",
    "duplicate_ack": "dup-ack",
    "zero_window": "zero-window",
    "lost_segment": "lost-segment",
    "ack_lost_segment": "acks-unseen",
}
"""The other verdicts, in the order a label shows them, and their words."""

MEANINGS = {
    "retransmission:rto": "sent again when the retransmission timer fired",
    "retransmission:fast": "sent again on the receiver's duplicate or partial ACKs",
    "retransmission:tlp": "the last segment sent again as a tail-loss probe",
    RETRANSMISSION: "sent again",
    "spurious": "a retransmission already acknowledged when sent",
    OUT_OF_ORDER: "fills a hole nobody reported lost",
    KEEPALIVE: "keep-alive probe (not a retransmission)",
    "window-probe": "probe into the peer's zero window (not a retransmission)",
    "dup-ack": "duplicate ACK",
    "zero-window": "advertises a zero window: the peer must stop sending",
    "lost-segment": "starts beyond what its sender was seen to send: the capture missed some",
    "acks-unseen": "acknowledges data the capture never saw",
}
"""Each word as the legend under a drawing explains it."""


def marks_of(seg: TracedSegment) -> list[str]:
    """The words a segment is marked with, in label order ([] for an unremarkable one)."""
    verdicts = seg["verdicts"]
    words = []
    if "retransmission" in verdicts:
        cause = next((CAUSES[v] for v in verdicts if v in CAUSES), None)
        words.append(f"retransmission:{cause}" if cause else RETRANSMISSION)
    words += [word for verdict, word in WORDS.items() if verdict in verdicts]
    return words


def legend_lines(words: set[str]) -> list[str]:
    """One line per word drawn, in the order of MEANINGS, each `[word] meaning`."""
    return [f"[{word}] {meaning}" for word, meaning in MEANINGS.items() if word in words]
