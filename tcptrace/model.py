"""The connection record: the documented contract of every output format.

Records are slotted dataclasses, immutable by convention (not `frozen`: a frozen
dataclass's __init__ goes through object.__setattr__ per field, five times slower, and
tens of thousands of records with ~25 parts each are built per second). `to_dict` turns
them into the JSON documented in docs/output.md and checked against
schema/output.schema.json. Enums travel as
their `.name`, timestamps as float seconds since the epoch, durations as float
milliseconds.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import types
import typing
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Role(Enum):
    client = 0
    server = 1

    @property
    def peer(self) -> Role:
        return Role.server if self is Role.client else Role.client


class RoleRule(Enum):
    """How the client was told apart from the server."""

    syn = "sent the first SYN (without ACK)"
    synack = "the first segment seen was a SYN/ACK: its receiver is the client"
    port = "capture began mid-connection: the lower (well-known) port is the server's"


class Outcome(Enum):
    """How a connection ended, one word each, most specific first."""

    CLOSED = "both sides sent FIN and both FINs were acknowledged"
    RESET = "an established connection was ended by RST"
    REFUSED = "the SYN was answered by RST"
    UNANSWERED = "SYNs got no answer in the capture"
    HANDSHAKE_FAILED = "the handshake started but never completed, and no RST ended it"
    HALF_CLOSED = "one side sent FIN; the capture ends before the other closed"
    CLOSING = "both sides sent FIN but not every FIN was acknowledged in the capture"
    OPEN = "established and still open when the capture ends"


class RstKind(Enum):
    """Why a RST was sent, judged from the states of both endpoints."""

    REFUSED = "answer to a SYN: nothing listening (connection refused)"
    HANDSHAKE = "sent during the handshake by an endpoint in SYN_SENT or SYN_RCVD"
    ABORT = "abort of an open connection (ESTABLISHED or CLOSE_WAIT): SO_LINGER 0, unread data"
    AFTER_CLOSE = "sent by an endpoint that had already closed; data arrived for a closed socket"
    TIME_WAIT = "reset involving an endpoint in TIME_WAIT: ends it early (RFC 1337)"
    UNKNOWN_STATE = "capture began mid-connection and the sender's state is only assumed"


@dataclass(slots=True)
class PerSide(Generic[T]):
    client: T
    server: T


@dataclass(slots=True)
class Endpoint:
    ip: str
    port: int


@dataclass(slots=True)
class StateChange:
    ts: float
    state: str


@dataclass(slots=True)
class Handshake:
    complete: bool
    """A SYN, a SYN/ACK and the ACK completing the handshake were all seen."""
    syn_to_synack_ms: float | None
    """From the SYN that was answered to the SYN/ACK answering it."""
    synack_to_ack_ms: float | None
    """From that SYN/ACK to the ACK completing the handshake."""
    rtt_ms: float | None
    """Sum of the two: the network round trip as seen from the capture point."""
    setup_ms: float | None
    """First SYN to completing ACK: what the application waited, timeouts included."""
    syn_retransmits: int
    synack_retransmits: int
    matched_by: str | None
    """"timestamps" (TSecr echoes), "unique" (one candidate) or null."""
    ambiguity: str | None
    """Why a latency is null although the handshake completed."""
    simultaneous_open: bool


@dataclass(slots=True)
class Close:
    initiator: str | None
    """Side that sent FIN first ("both" when the FINs crossed)."""
    time_wait: str | None
    """Side(s) that entered TIME_WAIT: the active closer(s)."""
    time_wait_ts: float | None
    """When the (first) holder entered TIME_WAIT."""
    time_wait_until: float | None
    """When it leaves TIME_WAIT: time_wait_ts + 2 * MSL."""
    fin_ts: PerSide[float | None]


@dataclass(slots=True)
class HalfClose:
    side: str
    """Side that sent its FIN first and then went on receiving data."""
    bytes_after_fin: int
    """Unique payload bytes the other side sent after that FIN."""
    duration_ms: float
    """From the first FIN to the other side's FIN (or its last segment if none)."""


@dataclass(slots=True)
class Rst:
    sender: str
    state: str
    """The sender's state just before the RST."""
    receiver_state: str
    kind: str
    ts: float
    count: int
    """RST segments in the connection (retransmitted or repeated ones included)."""


@dataclass(slots=True)
class Keepalive:
    probes: PerSide[int]
    """Keep-alive probes sent by each side (RFC 1122 section 4.2.3.6)."""
    acks: PerSide[int]
    """ACKs each side sent in answer to the other side's probes."""
    intervals_ms: PerSide[list[float]]
    """Time between consecutive probes of a side (the first: since its previous segment)."""


@dataclass(slots=True)
class Reuse:
    protocol: str | None
    """"http/1.1", "http/1.0", or null when the payload is not HTTP/1.x."""
    requests: int
    """HTTP requests, or for other protocols the client's turns (request/response exchanges)."""
    responses: int
    idle_gaps_ms: list[float]
    """Idle time between the end of each response and the next request."""


@dataclass(slots=True)
class ConnectionRecord:
    id: int
    client: Endpoint
    server: Endpoint
    role_rule: str
    previous_id: int | None
    """An earlier connection on the same 4-tuple (port reuse), if any."""
    first_ts: float
    last_ts: float
    duration_ms: float
    outcome: str
    handshake: Handshake
    close: Close
    half_close: HalfClose | None
    rst: Rst | None
    keepalive: Keepalive
    reuse: Reuse
    states: PerSide[list[StateChange]]
    final_state: PerSide[str]
    packets: PerSide[int]
    bytes: PerSide[int]
    """TCP payload bytes seen, retransmissions included."""
    unique_bytes: PerSide[int]
    """Payload bytes in sequence space: retransmissions excluded, capture gaps included."""
    retransmitted_bytes: PerSide[int]
    gap_bytes: PerSide[int]
    """Bytes the capture missed (acknowledged but never seen)."""
    anomalies: PerSide[int]
    """Segments the state table did not expect for that side."""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Results of optional analyses (observers), each under its own top-level JSON key."""


def to_dict(obj: Any) -> Any:
    """JSON-ready form of a record: dataclasses to dicts, enums to names, `extra` merged in.

    Converters are built once per type: records are serialised by the tens of thousands,
    and generic dataclass introspection per value dominated the run time.
    """
    convert = _CONVERTERS.get(type(obj))
    if convert is None:
        convert = _CONVERTERS[type(obj)] = _converter(type(obj))
    return convert(obj)


def _converter(kind: type) -> Any:
    if dataclasses.is_dataclass(kind):
        return _compile_dataclass(kind)
    if issubclass(kind, Enum):
        return lambda obj: obj.name
    if issubclass(kind, list | tuple):
        return lambda obj: [v if v.__class__ in _SCALARS else to_dict(v) for v in obj]
    if issubclass(kind, dict):
        return lambda obj: {k: to_dict(v) for k, v in obj.items()}
    return lambda obj: obj


def _compile_dataclass(kind: type) -> Any:
    """A converter for one dataclass written out field by field (like attrs/cattrs do).

    Nested dataclasses named by the annotations (Endpoint, PerSide[list[StateChange]], ...)
    are written inline too, so a record is one call instead of ~35 (`_Writer.value`).
    """
    writer = _Writer()
    items = ", ".join(
        f"{f.name!r}: {writer.value(hint, f'o.{f.name}', {kind})}"
        for f, hint in _fields(kind, ()) if f.name != "extra"
    )
    lines = ["def convert(o):", f"    out = {{{items}}}"]
    if any(f.name == "extra" for f in dataclasses.fields(kind)):
        lines += ["    if o.extra:", "        out.update(to_dict(o.extra))"]
    lines.append("    return out")
    namespace: dict[str, Any] = {"_SCALARS": _SCALARS, "to_dict": to_dict}
    namespace.update((name, cls) for cls, name in writer.classes.items())
    exec("\n".join(lines), namespace)
    return namespace["convert"]


class _Writer:
    """Writes the expression converting one annotated value, for `_compile_dataclass`."""

    def __init__(self) -> None:
        self.classes: dict[type, str] = {}
        self.temps = 0

    def value(self, hint: Any, src: str, inlining: set[type]) -> str:
        """`src` (read once) converted, as its annotation `hint` allows.

        A value annotated as a plain scalar (str, int, float, bool, None) is copied: mypy
        (strict) checks every constructor call, and no IntEnum/StrEnum is used. A nested
        dataclass or list is written inline behind a check of its class; any other value
        (None for an optional part, say) takes the generic `to_dict` path, as before.
        `inlining`: the dataclasses around this value (a recursive type stops there).
        """
        origin, args = typing.get_origin(hint) or hint, typing.get_args(hint)
        optional = origin is typing.Union or origin is types.UnionType
        if _scalar(hint) or (optional and all(_scalar(a) for a in args)):
            return src
        v = first = src
        if not src.isidentifier():  # an attribute: read it once, into a local
            self.temps += 1
            v = f"v{self.temps}"
            first = f"({v} := {src})"
        generic = f"{v} if {v}.__class__ in _SCALARS else to_dict({v})"
        if optional:
            kinds = [a for a in args if a is not type(None)]
            hint = kinds[0] if len(kinds) == 1 else Any
            origin, args = typing.get_origin(hint) or hint, typing.get_args(hint)
        if origin is list and len(args) == 1:
            self.temps += 1
            item = f"v{self.temps}"
            each = self.value(args[0], item, inlining)
            return f"[{each} for {item} in {v}] if {first}.__class__ is list else {generic}"
        if not _inlinable(origin) or origin in inlining:
            return f"{v} if {first}.__class__ in _SCALARS else to_dict({v})"
        inner = ", ".join(
            f"{f.name!r}: {self.value(field_hint, f'{v}.{f.name}', inlining | {origin})}"
            for f, field_hint in _fields(origin, args)
        )
        name = self.classes.setdefault(origin, f"_C{len(self.classes)}")
        return f"{{{inner}}} if {first}.__class__ is {name} else {generic}"


def _scalar(hint: Any) -> bool:
    return isinstance(hint, type) and hint in _SCALARS


def _inlinable(kind: Any) -> bool:
    """A dataclass without `extra` (merging it takes statements, not an expression)."""
    return isinstance(kind, type) and dataclasses.is_dataclass(kind) and \
        all(f.name != "extra" for f in dataclasses.fields(kind))


def _fields(kind: type, args: tuple[Any, ...]) -> list[tuple[dataclasses.Field[Any], Any]]:
    """The fields of `kind` with their annotations, a generic's type variables bound to
    `args` (PerSide[int]: client and server are int)."""
    try:
        hints = typing.get_type_hints(kind)
    except (NameError, TypeError):  # a name only imported for type checking: convert as Any
        hints = {}
    bound = dict(zip(getattr(kind, "__parameters__", ()), args, strict=False))
    return [(f, _bind(hints.get(f.name, Any), bound)) for f in dataclasses.fields(kind)]


def _bind(hint: Any, bound: dict[Any, Any]) -> Any:
    """`hint` with type variables replaced by `bound` (Any when unbound)."""
    if isinstance(hint, TypeVar):
        return bound.get(hint, Any)
    args = typing.get_args(hint)
    if not args or not bound:
        return hint
    origin = typing.get_origin(hint)
    new = tuple(_bind(a, bound) for a in args)
    if origin is typing.Union or origin is types.UnionType:
        return functools.reduce(operator.or_, new)
    return origin[new] if origin is not None else hint


_SCALARS = frozenset({str, int, float, bool, type(None)})
_CONVERTERS: dict[type, Any] = {}
