"""`--filter`: a BPF-syntax subset evaluated on whole batches of decoded segments.

Grammar (the primitives of pcap-filter(7) that select TCP traffic):

    expr      := term (("or" | "||") term)*
    term      := factor (("and" | "&&") factor)*
    factor    := ("not" | "!") factor | "(" expr ")" | primitive
    primitive := [src | dst] (host ADDR | net CIDR | port N | portrange N-M | ADDR)
               | tcp | ip | ip6

Without src/dst a primitive matches either direction, so a connection selected
by host, net or port keeps both of its directions. The parser builds a small tree
(`Node`, plain tuples) that the native engine evaluates per segment (src/filter.rs):
a bad expression fails here, in one line, before any capture is read.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

from tcptrace.errors import FilterError

Node = tuple[Any, ...]
"""A parsed expression: ("or", a, b), ("and", a, b), ("not", a), ("all",), ("ip", want_v4),
("addr", value, mask, direction) with 128-bit IPv4-mapped integers, ("ports", low, high,
direction); direction is "src", "dst" or None."""
TOKEN = re.compile(r"\s*(\(|\)|&&|\|\||!|[^\s()!]+)")
FULL = (1 << 128) - 1
MAPPED_V4 = 0x0000FFFF00000000  # ::ffff:a.b.c.d keeps IPv4 and IPv6 in one key (decode)


def parse_filter(text: str) -> Node:
    """Parse `text` into its tree; raise FilterError naming the offending word."""
    tokens = [m.group(1) for m in TOKEN.finditer(text)]
    if not tokens:
        raise FilterError("empty filter expression")
    parser = _Parser(tokens, text)
    tree = parser.expr()
    if parser.pos != len(tokens):
        raise FilterError(f"unexpected '{tokens[parser.pos]}' in filter: {text}")
    return tree


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

    def expr(self) -> Node:
        left = self.term()
        while self.peek() in ("or", "||"):
            self.take()
            left = ("or", left, self.term())
        return left

    def term(self) -> Node:
        left = self.factor()
        while self.peek() in ("and", "&&"):
            self.take()
            left = ("and", left, self.factor())
        return left

    def factor(self) -> Node:
        word = self.peek()
        if word in ("not", "!"):
            self.take()
            return ("not", self.factor())
        if word == "(":
            self.take()
            inner = self.expr()
            if self.take() != ")":
                raise FilterError(f"missing ')' in filter: {self.text}")
            return inner
        return self.primitive()

    def primitive(self) -> Node:
        word = self.take().lower()
        if word == "tcp":
            return ("all",)
        if word in ("ip", "ip6"):
            return ("ip", word == "ip")
        direction = None
        if word in ("src", "dst"):
            direction, word = word, self.take().lower()
        if word == "host":
            return _host(self.take(), direction)
        if word == "net":
            return _net(self.take(), direction)
        if word == "port":
            port = _port(self.take())
            return ("ports", port, port, direction)
        if word == "portrange":
            low, _, high = self.take().partition("-")
            return ("ports", _port(low), _port(high), direction)
        if direction is not None:  # "src 10.0.0.1" means "src host 10.0.0.1"
            return _host(word, direction)
        raise FilterError(f"unknown filter word '{word}' (use host, net, port, portrange, "
                          f"src, dst, and, or, not): {self.text}")


def _as_int(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    if isinstance(address, ipaddress.IPv4Address):
        return MAPPED_V4 | int(address)
    return int(address)


def _host(text: str, direction: str | None) -> Node:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise FilterError(f"'{text}' is not an IP address") from None
    return ("addr", _as_int(address), FULL, direction)


def _net(text: str, direction: str | None) -> Node:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise FilterError(f"'{text}' is not a network (use CIDR, e.g. 10.0.0.0/8)") from None
    bits = network.prefixlen + (96 if network.version == 4 else 0)
    mask = FULL ^ ((1 << (128 - bits)) - 1)
    return ("addr", _as_int(network.network_address) & mask, mask, direction)


def _port(text: str) -> int:
    if text.isdigit() and 0 <= int(text) <= 65535:
        return int(text)
    try:
        return socket.getservbyname(text, "tcp")
    except OSError:
        raise FilterError(f"'{text}' is not a port number or service name") from None
