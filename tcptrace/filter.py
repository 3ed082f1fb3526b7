"""`--filter`: a BPF-syntax subset evaluated on whole batches of decoded segments.

Grammar (the primitives of pcap-filter(7) that select TCP traffic):

    expr      := term (("or" | "||") term)*
    term      := factor (("and" | "&&") factor)*
    factor    := ("not" | "!") factor | "(" expr ")" | primitive
    primitive := [src | dst] (host ADDR | net CIDR | port N | portrange N-M | ADDR)
               | tcp | ip | ip6

Without src/dst a primitive matches either direction, so a connection selected
by host, net or port keeps both of its directions. Evaluation is vectorised: the
expression compiles to a function from a SegmentBatch to a boolean mask.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from tcptrace.decode import MAPPED_V4, SegmentBatch
from tcptrace.errors import FilterError

Mask = npt.NDArray[np.bool_]
Predicate = Callable[[SegmentBatch], Mask]
TOKEN = re.compile(r"\s*(\(|\)|&&|\|\||!|[^\s()!]+)")
FULL = (1 << 128) - 1


def compile_filter(text: str) -> Predicate:
    """Parse `text`; raise FilterError naming the offending word."""
    tokens = [m.group(1) for m in TOKEN.finditer(text)]
    if not tokens:
        raise FilterError("empty filter expression")
    parser = _Parser(tokens, text)
    predicate = parser.expr()
    if parser.pos != len(tokens):
        raise FilterError(f"unexpected '{tokens[parser.pos]}' in filter: {text}")
    return predicate


class _Parser:
    def __init__(self, tokens: list[str], text: str) -> None:
        self.tokens, self.text, self.pos = tokens, text, 0

    def peek(self) -> str | None:
        return self.tokens[self.pos].lower() if self.pos < len(self.tokens) else None

    def take(self) -> str:
        if self.pos >= len(self.tokens):
            raise FilterError(f"filter ends too early: {self.text}")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def expr(self) -> Predicate:
        left = self.term()
        while self.peek() in ("or", "||"):
            self.take()
            left = _either(left, self.term())
        return left

    def term(self) -> Predicate:
        left = self.factor()
        while self.peek() in ("and", "&&"):
            self.take()
            left = _both(left, self.factor())
        return left

    def factor(self) -> Predicate:
        word = self.peek()
        if word in ("not", "!"):
            self.take()
            inner = self.factor()
            return lambda s: ~inner(s)
        if word == "(":
            self.take()
            inner = self.expr()
            if self.take() != ")":
                raise FilterError(f"missing ')' in filter: {self.text}")
            return inner
        return self.primitive()

    def primitive(self) -> Predicate:
        word = self.take().lower()
        if word == "tcp":
            return lambda s: np.ones(len(s), dtype=np.bool_)
        if word in ("ip", "ip6"):
            want_v4 = word == "ip"
            return lambda s: (s.src_hi == 0) & ((s.src_lo >> np.uint64(32)) == 0xFFFF) == want_v4
        direction = None
        if word in ("src", "dst"):
            direction, word = word, self.take().lower()
        if word == "host":
            return _host(self.take(), direction)
        if word == "net":
            return _net(self.take(), direction)
        if word == "port":
            return _ports(_port(self.take()), None, direction)
        if word == "portrange":
            low, _, high = self.take().partition("-")
            return _ports(_port(low), _port(high), direction)
        if direction is not None:  # "src 10.0.0.1" means "src host 10.0.0.1"
            return _host(word, direction)
        raise FilterError(f"unknown filter word '{word}' (use host, net, port, portrange, "
                          f"src, dst, and, or, not): {self.text}")


def _either(a: Predicate, b: Predicate) -> Predicate:
    return lambda s: a(s) | b(s)


def _both(a: Predicate, b: Predicate) -> Predicate:
    return lambda s: a(s) & b(s)


def _address_words(value: int) -> tuple[np.uint64, np.uint64]:
    return np.uint64(value >> 64), np.uint64(value & ((1 << 64) - 1))


def _as_int(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    if isinstance(address, ipaddress.IPv4Address):
        return int(MAPPED_V4) | int(address)
    return int(address)


def _host(text: str, direction: str | None) -> Predicate:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise FilterError(f"'{text}' is not an IP address") from None
    return _masked(_as_int(address), FULL, direction)


def _net(text: str, direction: str | None) -> Predicate:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise FilterError(f"'{text}' is not a network (use CIDR, e.g. 10.0.0.0/8)") from None
    bits = network.prefixlen + (96 if network.version == 4 else 0)
    mask = FULL ^ ((1 << (128 - bits)) - 1)
    return _masked(_as_int(network.network_address), mask, direction)


def _masked(value: int, mask: int, direction: str | None) -> Predicate:
    want_hi, want_lo = _address_words(value & mask)
    mask_hi, mask_lo = _address_words(mask)

    def match(s: SegmentBatch) -> Mask:
        src: Mask = ((s.src_hi & mask_hi) == want_hi) & ((s.src_lo & mask_lo) == want_lo)
        dst: Mask = ((s.dst_hi & mask_hi) == want_hi) & ((s.dst_lo & mask_lo) == want_lo)
        return src if direction == "src" else dst if direction == "dst" else src | dst

    return match


def _port(text: str) -> int:
    if text.isdigit() and 0 <= int(text) <= 65535:
        return int(text)
    try:
        return socket.getservbyname(text, "tcp")
    except OSError:
        raise FilterError(f"'{text}' is not a port number or service name") from None


def _ports(low: int, high: int | None, direction: str | None) -> Predicate:
    top = low if high is None else high

    def match(s: SegmentBatch) -> Mask:
        src: Mask = (s.sport >= low) & (s.sport <= top)
        dst: Mask = (s.dport >= low) & (s.dport <= top)
        return src if direction == "src" else dst if direction == "dst" else src | dst

    return match
