"""An offending connection as the outputs name it, and the collections rules keep them in.

An offender keeps only what its line shows (id, endpoints, first packet time, reason), not
the record: `check` streams the records and a rule may hold a million offenders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple, Protocol

from tcptrace.check.spool import Item, SortedSpool


class Offender(NamedTuple):
    id: int
    client: str
    """ip:port, IPv6 addresses in brackets (`endpoint`)."""
    server: str
    first_ts: float
    """The connection's first packet, epoch seconds (Wireshark's frame.time_epoch)."""
    reason: str
    """Why this connection breaks the rule, e.g. "setup_ms 1029.814"."""


class Offenders(Protocol):
    """Offenders in id order: counted without reading them, read any number of times."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Offender]: ...


def endpoint(ip: str, port: int | None = None) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return host if port is None else f"{host}:{port}"


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {words or word + 's'}"


def named(record: Mapping[str, Any]) -> tuple[int, str, str, float]:
    """What an offender line shows of a record, but the reason."""
    client, server = record["client"], record["server"]
    return (record["id"], endpoint(client["ip"], client["port"]),
            endpoint(server["ip"], server["port"]), record["first_ts"])


class OffenderSpool:
    """The offenders of a per-connection rule, added as records arrive (any order)."""

    def __init__(self) -> None:
        self._spool = SortedSpool()

    def add(self, record: Mapping[str, Any], reason: str) -> None:
        self._spool.add((*named(record), reason))

    def __len__(self) -> int:
        return len(self._spool)

    def __iter__(self) -> Iterator[Offender]:
        return map(Offender._make, self._spool)


class Chosen:
    """Offenders picked and named at the end from spooled tuples, once the verdict that picks
    them is known (e.g. the connections below a mean known only after the last record)."""

    def __init__(self, source: Iterable[Item], count: int,
                 choose: Callable[[Item], Offender | None]) -> None:
        self._source, self._count, self._choose = source, count, choose

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Offender]:
        for item in self._source:
            chosen = self._choose(item)
            if chosen is not None:
                yield chosen

