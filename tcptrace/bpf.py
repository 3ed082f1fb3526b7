"""`--filter`: libpcap's filter language (pcap-filter(7)), compiled and run by libpcap.

The expression is checked here, before any capture is read: libpcap compiles it for an
Ethernet link (or, if that fails, any link type tcptrace decodes), and a bad one fails in
one line that names the failing word. The native engine then compiles it once per
link type it meets in the capture(s) (pcapng may add interfaces at any point) and runs
every frame through libpcap's filter machine (`bpf_filter`) before decoding it
(src/binding/bpf.rs, src/filter.rs). So `tcp port 8080`, `vlan and port 80` or
`tcp[13] & 2 != 0` select what tcpdump would select, and what `live --bpf` captures.
"""

from __future__ import annotations

import ctypes
import functools
import re
from typing import TYPE_CHECKING

from tcptrace.errors import FilterError, LiveCaptureError

if TYPE_CHECKING:
    from tcptrace._native import BpfFilter

Symbols = tuple[int, int, int, int, int, int]

SYMBOLS = ("pcap_open_dead", "pcap_compile", "pcap_geterr", "pcap_freecode", "pcap_close",
           "bpf_filter")
"""The libpcap functions the native engine calls, in the order `BpfFilter` takes them."""
LINKTYPES = (1, 113, 276, 101, 0, 108, 228, 229)
"""The link types tcptrace decodes, Ethernet first: an expression is valid when libpcap
compiles it for one of them (`vlan` compiles for Ethernet only, `ether host` for no raw-IP
link)."""
PARSE_PREFIX = "can't parse filter expression: "
LINK_INDEPENDENT = (PARSE_PREFIX, "unknown host", "unknown network", "illegal port",
                    "unknown port")
"""libpcap's messages that no other link type would change."""
WORD = re.compile(r"[()]|[^\s()]+")


def compile_filter(expression: str) -> BpfFilter:
    """The expression compiled by libpcap, for `Run` and `Session`; FilterError (one message
    naming the failing word) when libpcap rejects it or is not installed."""
    from tcptrace._native import BpfFilter
    from tcptrace.native import interruptible

    symbols = _symbols()
    bpf = BpfFilter(expression, symbols)
    first_error = ""
    for linktype in LINKTYPES:
        try:
            interruptible(functools.partial(bpf.compile, linktype))
            return bpf
        except ValueError as exc:
            first_error = first_error or str(exc)
            if first_error.startswith(LINK_INDEPENDENT):
                break  # (and an unknown host is not looked up once per link type)
    raise FilterError(_located(expression, first_error, symbols))


def _symbols() -> Symbols:
    from tcptrace.sources.live import _libpcap

    try:
        lib = _libpcap()
    except LiveCaptureError:
        raise FilterError("--filter needs libpcap, which is not installed (Debian/Ubuntu: "
                          "apt-get install libpcap0.8); everything else works "
                          "without it") from None
    addresses = [ctypes.cast(getattr(lib, name), ctypes.c_void_p).value or 0
                 for name in SYMBOLS]
    a, b, c, d, e, f = addresses
    return a, b, c, d, e, f


def _located(expression: str, message: str, symbols: Symbols) -> str:
    """libpcap's message in one line, naming the word it failed at (libpcap's parser says
    only "syntax error": the word is the one after the longest start it accepts)."""
    message = message.removeprefix(PARSE_PREFIX)
    words = list(WORD.finditer(expression))
    if not words or _named_word(words, message):
        return f"--filter {expression!r}: {message}"
    at = 0
    for k in range(len(words) - 1, 0, -1):
        if _compiles(expression[:words[k - 1].end()], symbols):
            at = k
            break
    word = words[at]
    return (f"--filter {expression!r}: {message} at {word.group()!r} "
            f"(column {word.start() + 1})")


def _named_word(words: list[re.Match[str]], message: str) -> bool:
    """Does libpcap's message name a word of the expression (unknown host 'x', illegal
    port number 70000 > 65535)?"""
    quoted = re.findall(r"'([^']+)'", message)
    numbers = set(re.findall(r"\b\d+\b", message))
    return any(word.group() in numbers or any(q in word.group() for q in quoted)
               for word in words)


def _compiles(expression: str, symbols: Symbols) -> bool:
    from tcptrace._native import BpfFilter

    bpf = BpfFilter(expression, symbols)
    for linktype in LINKTYPES:
        try:
            bpf.compile(linktype)
            return True
        except ValueError as exc:
            if str(exc).startswith(LINK_INDEPENDENT):
                return False
    return False
