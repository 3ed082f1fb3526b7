"""Three-way handshake latency (RFC 9293 section 3.5), matched by TCP timestamps.

Retransmitted SYNs and SYN/ACKs make "which SYN did this SYN/ACK answer?" the
classic Karn ambiguity. With TCP timestamps (RFC 7323) the answer is exact: a
SYN/ACK echoes the TSval of the SYN it answers in TSecr, and the completing
ACK echoes the SYN/ACK's. Without timestamps a latency is only reported where a
single candidate exists; otherwise the record says it is ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tcptrace.model import Handshake

NS_PER_MS = 1_000_000


@dataclass(slots=True)
class Sighting:
    ts_ns: int
    tsval: int | None
    tsecr: int | None


@dataclass(slots=True)
class HandshakeAnalyzer:
    syns: list[Sighting] = field(default_factory=list)
    synacks: list[Sighting] = field(default_factory=list)
    completing_ack: Sighting | None = None
    simultaneous_open: bool = False

    def syn(self, ts_ns: int, ts_opt: tuple[int, int] | None) -> None:
        self.syns.append(Sighting(ts_ns, *(ts_opt or (None, None))))

    def synack(self, ts_ns: int, ts_opt: tuple[int, int] | None) -> None:
        self.synacks.append(Sighting(ts_ns, *(ts_opt or (None, None))))

    def completed(self, ts_ns: int, ts_opt: tuple[int, int] | None) -> None:
        if self.completing_ack is None:
            self.completing_ack = Sighting(ts_ns, *(ts_opt or (None, None)))

    def result(self) -> Handshake:
        # Handshake's fields are passed positionally: this runs once per connection, and a
        # keyword call of ten fields costs as much as the matching itself.
        ack, syns, synacks = self.completing_ack, self.syns, self.synacks
        setup = _ms(ack.ts_ns - syns[0].ts_ns) if ack and syns else None
        if self.simultaneous_open:
            # each SYN/ACK answers the other side's SYN: no request/answer legs to measure
            return Handshake(ack is not None, None, None, None, setup,
                             max(0, len(syns) - 1), max(0, len(synacks) - 1), None,
                             "simultaneous open: both sides sent SYN", True)
        # The SYN/ACK the completing ACK answers (TSecr echo), then the SYN that SYN/ACK
        # echoes, then the *first* SYN/ACK sent in answer to that SYN: a SYN/ACK
        # retransmitted by the server's timer echoes the same SYN but is no measure of
        # the network, so each leg is measured from a segment to the first answer to it.
        acked, how_ack = _answered(synacks, ack)
        syn, how_syn = _answered(syns, acked or (synacks[0] if synacks else None))
        first_answer = _first_answer(synacks, syn)
        ambiguity = None
        if how_ack == "ambiguous" or how_syn == "ambiguous":
            ambiguity = "retransmissions without TCP timestamps: the answered segment is unknown"
        syn_to_synack = _ms(first_answer.ts_ns - syn.ts_ns) if syn and first_answer else None
        synack_to_ack = _ms(ack.ts_ns - acked.ts_ns) if ack and acked else None
        if how_ack == "timestamps" or how_syn == "timestamps":
            matched: str | None = "timestamps"
        else:
            matched = "unique" if syn_to_synack is not None or synack_to_ack is not None else None
        return Handshake(
            ack is not None and bool(syns) and bool(synacks),  # complete
            syn_to_synack,
            synack_to_ack,
            (round(syn_to_synack + synack_to_ack, 3)  # rtt_ms
             if syn_to_synack is not None and synack_to_ack is not None else None),
            setup,
            max(0, len(syns) - 1),  # syn_retransmits
            max(0, len(synacks) - 1),  # synack_retransmits
            matched,
            ambiguity,
            False,  # simultaneous_open
        )


def _answered(candidates: list[Sighting], answer: Sighting | None) -> tuple[Sighting | None, str]:
    """The candidate (sent before `answer`) that `answer` responds to, and how we know."""
    if answer is None:
        return None, "none"
    if len(candidates) == 1:  # the common case, without the lists below
        only = candidates[0]
        if only.ts_ns > answer.ts_ns:
            return None, "none"
        if answer.tsecr is not None and only.tsval == answer.tsecr:  # (a None tsval differs)
            return only, "timestamps"
        return only, "unique"
    earlier = [c for c in candidates if c.ts_ns <= answer.ts_ns]
    if answer.tsecr is not None and earlier and all(c.tsval is not None for c in earlier):
        echoed = [c for c in earlier if c.tsval == answer.tsecr]
        if echoed:
            return echoed[0], "timestamps"  # equal TSvals: same tick, the first went out first
    if len(earlier) == 1:
        return earlier[0], "unique"
    return None, "ambiguous" if earlier else "none"


def _first_answer(answers: list[Sighting], request: Sighting | None) -> Sighting | None:
    """The first of `answers` sent in reply to `request`."""
    if request is None:
        return None
    if len(answers) == 1:  # the common case: the only answer, if it came after
        return answers[0] if answers[0].ts_ns >= request.ts_ns else None
    later = [a for a in answers if a.ts_ns >= request.ts_ns]
    if request.tsval is not None:
        echoing = [a for a in later if a.tsecr == request.tsval]
        if echoing:
            return echoing[0]
    return later[0] if later else None


def _ms(ns: int) -> float:
    return round(ns / NS_PER_MS, 3)
