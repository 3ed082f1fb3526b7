"""The --filter tree (tcptrace.filter.parse_filter) as a numpy predicate over a whole
SegmentBatch: how the Python engine evaluates it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from tcptrace.decode import SegmentBatch
from tcptrace.filter import Node

Mask = npt.NDArray[np.bool_]
Predicate = Callable[[SegmentBatch], Mask]


def predicate(node: Node) -> Predicate:
    kind = node[0]
    if kind in ("or", "and"):
        left, right = predicate(node[1]), predicate(node[2])
        return _either(left, right) if kind == "or" else _both(left, right)
    if kind == "not":
        inner = predicate(node[1])
        return lambda s: ~inner(s)
    if kind == "all":
        return lambda s: np.ones(len(s), dtype=np.bool_)
    if kind == "ip":
        want_v4 = node[1]
        return lambda s: (s.src_hi == 0) & ((s.src_lo >> np.uint64(32)) == 0xFFFF) == want_v4
    if kind == "addr":
        return _masked(node[1], node[2], node[3])
    return _ports(node[1], node[2], node[3])


def _either(a: Predicate, b: Predicate) -> Predicate:
    return lambda s: a(s) | b(s)


def _both(a: Predicate, b: Predicate) -> Predicate:
    return lambda s: a(s) & b(s)


def _address_words(value: int) -> tuple[np.uint64, np.uint64]:
    return np.uint64(value >> 64), np.uint64(value & ((1 << 64) - 1))


def _masked(value: int, mask: int, direction: str | None) -> Predicate:
    want_hi, want_lo = _address_words(value & mask)
    mask_hi, mask_lo = _address_words(mask)

    def match(s: SegmentBatch) -> Mask:
        src: Mask = ((s.src_hi & mask_hi) == want_hi) & ((s.src_lo & mask_lo) == want_lo)
        dst: Mask = ((s.dst_hi & mask_hi) == want_hi) & ((s.dst_lo & mask_lo) == want_lo)
        return src if direction == "src" else dst if direction == "dst" else src | dst

    return match


def _ports(low: int, top: int, direction: str | None) -> Predicate:
    def match(s: SegmentBatch) -> Mask:
        src: Mask = (s.sport >= low) & (s.sport <= top)
        dst: Mask = (s.dport >= low) & (s.dport <= top)
        return src if direction == "src" else dst if direction == "dst" else src | dst

    return match
