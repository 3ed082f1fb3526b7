"""Application keep-alive reuse: how many requests one connection carried.

HTTP/1.x is parsed properly (RFC 9112): a request is counted when its header
block is complete, however many segments it was split over; message bodies are
skipped by Content-Length or chunked framing, a HEAD, 1xx, 204 or 304 response
has none, and a response without framing runs until close. Bodies are skipped
by length, so a bulk download costs no byte copies. Framing that cannot be
followed (a bad length, a chunk size that is not a non-negative hex number)
loses the direction until a segment starts a message.

Any other protocol is counted in turns: a run of client data is a request, the
server data after it the response.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Protocol

from tcptrace.model import Reuse

NS_PER_MS = 1_000_000
MAX_HEAD = 64 * 1024
REQUEST_START = re.compile(rb"[A-Z][A-Z_-]{1,19} ")
REQUEST_PREFIX = re.compile(rb"[A-Z][A-Z_-]{0,19}")  # a method not yet followed by its space
REQUEST_LINE = re.compile(rb"([A-Z][A-Z_-]{1,19}) [^ \r\n]+ HTTP/1\.([01])\r?$")
STATUS_LINE = re.compile(rb"HTTP/1\.([01]) (\d{3})")
FRAMING_HEADERS = (b"content-length", b"transfer-encoding")


class Phase(Enum):
    HEAD = auto()  # start line and header fields
    BODY = auto()  # `remaining` bytes of body
    CHUNK_SIZE = auto()
    CHUNK_DATA = auto()  # `remaining` bytes of chunk data plus its CRLF
    TRAILER = auto()
    UNTIL_CLOSE = auto()
    LOST = auto()  # bytes missing from the capture: wait for a segment that starts a message


@dataclass(slots=True)
class Message:
    start_ns: int
    line: bytes
    headers: dict[bytes, bytes]


class MessageSink(Protocol):
    def http_message(self, request: bool, message: Message) -> str: ...

    def http_end(self, request: bool, ts_ns: int) -> None: ...




def head_end(data: bytes | bytearray, pos: int = 0) -> tuple[int, int] | None:
    """Where the first empty line at or after `pos` starts and ends: the match of
    `\\r?\\n\\r?\\n` a regular expression search would find, with two `find`s (memchr)
    instead of trying the pattern at every byte of a head."""
    crlf = data.find(b"\n\r\n", pos)
    lf = data.find(b"\n\n", pos, crlf + 2 if crlf >= 0 else len(data))
    first = lf if lf >= 0 and (crlf < 0 or lf < crlf) else crlf
    if first < 0:
        return None
    start = first - 1 if first > pos and data[first - 1] == 13 else first
    return start, first + (2 if first == lf else 3)


def _skipping(phase: Phase) -> bool:
    """Phases that skip bytes by length: the parser does not need to see them."""
    return phase is Phase.BODY or phase is Phase.CHUNK_DATA or phase is Phase.UNTIL_CLOSE


class HttpDirection:
    """Frames HTTP/1.x messages in one direction of a connection.

    The owner (the MessageSink told about each message) is passed to every call rather
    than stored: a stored reference back to the owner, which holds this parser, would be
    a reference cycle and leave every connection to the cyclic garbage collector.
    """

    __slots__ = ("buf", "is_request", "phase", "remaining", "start_ns")

    def __init__(self, is_request: bool) -> None:
        self.is_request = is_request
        self.phase = Phase.HEAD
        self.buf = bytearray()
        self.start_ns = 0
        self.remaining = 0

    def looks_like_start(self, data: bytes) -> bool:
        if self.is_request:
            head = data[:21]
            return REQUEST_START.match(head) is not None or (
                len(head) < 21 and REQUEST_PREFIX.fullmatch(head) is not None)
        return data[:7] == b"HTTP/1."[: len(data[:7])]

    def gap(self) -> None:
        if self.phase is Phase.BODY or self.phase is Phase.CHUNK_DATA:
            return  # the caller skips the missing body bytes by length
        if self.phase is not Phase.UNTIL_CLOSE:
            self.phase = Phase.LOST
            self.buf.clear()

    def feed(self, owner: MessageSink, ts_ns: int, length: int, data: bytes | None) -> None:
        if data is None:
            self._skip(owner, ts_ns, length)
            return
        pos, n = 0, len(data)
        while pos < n:
            phase = self.phase
            if phase is Phase.LOST:
                if pos == 0 and self.looks_like_start(data):
                    self.phase = Phase.HEAD
                    continue
                return
            if phase is Phase.HEAD:
                if not self.buf:
                    if not self.looks_like_start(data[pos:] if pos else data):
                        self.phase = Phase.LOST
                        return
                    self.start_ns = ts_ns
                    found = head_end(data, pos)
                    if found is not None:  # the whole head is in this segment: no copy
                        head = data[pos : found[0]]
                        pos = found[1]
                        self._head(owner, ts_ns, head)
                        continue
                self.buf += data[pos:]
                found = head_end(self.buf)
                if found is None:
                    if len(self.buf) > MAX_HEAD:
                        self.phase = Phase.LOST
                        self.buf.clear()
                    return
                pos = n - (len(self.buf) - found[1])
                head = bytes(self.buf[: found[0]])
                self.buf.clear()
                self._head(owner, ts_ns, head)
            elif phase is Phase.BODY or phase is Phase.CHUNK_DATA:
                take = min(self.remaining, n - pos)
                pos += take
                self._consumed(owner, ts_ns, take)
            elif phase is Phase.CHUNK_SIZE or phase is Phase.TRAILER:
                self.buf += data[pos:]
                eol = self.buf.find(b"\n")
                if eol < 0:
                    if len(self.buf) > MAX_HEAD:
                        self.phase = Phase.LOST
                        self.buf.clear()
                    return
                pos = n - (len(self.buf) - eol - 1)
                line = bytes(self.buf[:eol]).strip()
                self.buf.clear()
                self._line(owner, ts_ns, line)
            else:  # UNTIL_CLOSE
                return

    def _skip(self, owner: MessageSink, ts_ns: int, length: int) -> None:
        if self.phase is Phase.BODY or self.phase is Phase.CHUNK_DATA:
            self._consumed(owner, ts_ns, min(length, self.remaining))
        elif self.phase is not Phase.UNTIL_CLOSE:
            self.phase = Phase.LOST
            self.buf.clear()

    def _consumed(self, owner: MessageSink, ts_ns: int, n: int) -> None:
        self.remaining -= n
        if self.remaining == 0:
            if self.phase is Phase.BODY:
                self.phase = Phase.HEAD
                owner.http_end(self.is_request, ts_ns)
            else:
                self.phase = Phase.CHUNK_SIZE

    def _head(self, owner: MessageSink, ts_ns: int, head: bytes) -> None:
        eol = head.find(b"\n")
        first = (head if eol < 0 else head[:eol]).rstrip(b"\r")
        headers = framing_headers(head)
        framing = owner.http_message(self.is_request, Message(self.start_ns, first, headers))
        if framing == "length":
            self.remaining = int(headers[b"content-length"])
            if self.remaining:
                self.phase = Phase.BODY
            else:
                self.phase = Phase.HEAD
                owner.http_end(self.is_request, ts_ns)
        elif framing == "none":
            self.phase = Phase.HEAD
            owner.http_end(self.is_request, ts_ns)
        elif framing == "chunked":
            self.phase = Phase.CHUNK_SIZE
        elif framing == "close":
            self.phase = Phase.UNTIL_CLOSE
        elif framing == "interim":
            self.phase = Phase.HEAD
        else:
            self.phase = Phase.LOST

    def _line(self, owner: MessageSink, ts_ns: int, line: bytes) -> None:
        if self.phase is Phase.TRAILER:
            if not line:
                self.phase = Phase.HEAD
                owner.http_end(self.is_request, ts_ns)
            return
        try:
            size = int(line.split(b";")[0], 16)
        except ValueError:
            size = -1
        if size < 0:
            # RFC 9112 section 7.1: chunk-size = 1*HEXDIG. int() also takes a sign: a
            # negative size is invalid framing, as an unparsable one is (never a step back).
            self.phase = Phase.LOST
            return
        if size == 0:
            self.phase = Phase.TRAILER
        else:
            self.remaining = size + 2  # chunk data and its CRLF
            self.phase = Phase.CHUNK_DATA


def framing_headers(head: bytes) -> dict[bytes, bytes]:
    """The last Content-Length and Transfer-Encoding of a head, by lower-case name: the only
    headers that decide body framing (RFC 9112 section 6). Found with two reverse searches
    instead of splitting every head into lines: heads are parsed by the hundred thousand."""
    lower = head.lower()
    found: dict[bytes, bytes] = {}
    for name in FRAMING_HEADERS:
        needle = b"\n" + name
        at = lower.rfind(needle)
        while at >= 0:
            stop = lower.find(b"\n", at + 1)
            key, colon, value = head[at + 1 : stop if stop >= 0 else len(head)].partition(b":")
            if colon and key.strip().lower() == name:  # not e.g. "Content-Length-Hint"
                found[name] = value.strip()
                break
            at = lower.rfind(needle, 0, at)
    return found


def body_framing(headers: dict[bytes, bytes]) -> str:
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        return "chunked"
    length = headers.get(b"content-length")
    if length is not None:
        return "length" if length.isdigit() else "bad"
    return "none"


@dataclass(slots=True)
class AppTracker:
    """Counts requests, responses and the idle time between them for one connection."""

    http: bool | None = None
    """None until the client's first bytes were seen; True once a request line parsed."""
    http_requests: int = 0
    http_responses: int = 0
    http11: bool = False
    methods: deque[bytes] = field(default_factory=deque)
    turns: int = 0
    answered_turns: int = 0
    last_role: int | None = None
    last_server_ns: int | None = None
    response_end_ns: int | None = None
    turn_gaps_ms: list[float] = field(default_factory=list)
    http_gaps_ms: list[float] = field(default_factory=list)
    _request_parser: HttpDirection | None = None
    _response_parser: HttpDirection | None = None

    # Parsers are made on first use: most connections held at once never carry HTTP, and
    # memory is bounded by the connections held.
    @property
    def request_parser(self) -> HttpDirection:
        if self._request_parser is None:
            self._request_parser = HttpDirection(True)
        return self._request_parser

    @property
    def response_parser(self) -> HttpDirection:
        if self._response_parser is None:
            self._response_parser = HttpDirection(False)
        return self._response_parser

    # ---- stream consumers (once per delivered stretch of data: kept flat)
    def wants(self, client: bool) -> bool:
        if self.http is False:
            return False
        parser = self._request_parser if client else self._response_parser
        return parser is None or not _skipping(parser.phase)  # a new parser reads a head

    def data(self, client: bool, ts_ns: int, length: int, payload: bytes | None) -> None:
        # turns: a run of client data is a request, the server data after it the response
        if client:
            if self.last_role != 0:
                self.turns += 1
                if self.last_server_ns is not None:
                    self.turn_gaps_ms.append(_ms(ts_ns - self.last_server_ns))
            self.last_role = 0
        else:
            if self.last_role == 0:
                self.answered_turns += 1
            self.last_server_ns = ts_ns
            self.last_role = 1
        http = self.http
        if http is False:
            return
        if http is None and (not client or payload is None):
            self.http = False  # the server spoke first, or the request bytes were not captured
            return
        parser = self.request_parser if client else self.response_parser
        parser.feed(self, ts_ns, length, payload)
        if self.http is None and self.request_parser.phase is Phase.LOST:
            self.http = False

    def gap(self, client: bool) -> None:
        if self.http:
            (self.request_parser if client else self.response_parser).gap()

    # ---- HTTP callbacks
    def http_message(self, request: bool, message: Message) -> str:
        """A parsed head; returns the body framing: 'none', 'length', 'chunked', 'close',
        'interim' or 'bad'."""
        return self._request(message) if request else self._response(message)

    def http_end(self, request: bool, ts_ns: int) -> None:
        if not request:
            self.response_end_ns = ts_ns

    def _request(self, message: Message) -> str:
        match = REQUEST_LINE.match(message.line)
        if match is None:
            if self.http is None:
                self.http = False
            return "bad"
        self.http = True
        self.http_requests += 1
        if match.group(2) == b"1":
            self.http11 = True
        if self.response_end_ns is not None:
            self.http_gaps_ms.append(_ms(message.start_ns - self.response_end_ns))
            self.response_end_ns = None
        self.methods.append(match.group(1))
        if match.group(1) == b"CONNECT":
            return "close"
        return body_framing(message.headers)

    def _response(self, message: Message) -> str:
        match = STATUS_LINE.match(message.line)
        if match is None:
            return "bad"
        status = int(match.group(2))
        if 100 <= status < 200 and status != 101:
            return "interim"
        self.http_responses += 1
        method = self.methods.popleft() if self.methods else b""
        if status == 101 or (method == b"CONNECT" and 200 <= status < 300):
            return "close"  # the connection now carries another protocol
        if method == b"HEAD" or status in (204, 304):
            return "none"
        framing = body_framing(message.headers)
        return "close" if framing == "none" else framing

    def result(self) -> Reuse:
        if self.http:
            protocol = "http/1.1" if self.http11 else "http/1.0"
            return Reuse(protocol, self.http_requests, self.http_responses, self.http_gaps_ms)
        return Reuse(None, self.turns, self.answered_turns, self.turn_gaps_ms)


def _ms(ns: int) -> float:
    return round(ns / NS_PER_MS, 3)
