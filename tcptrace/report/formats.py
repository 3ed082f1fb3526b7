"""Table, JSON, JSON lines and CSV writers.

Each writer takes the records one at a time (`write`) and the run's summary and
source report at the end (`finish`), so jsonl and csv stream while the capture
is read; json and table need everything and hold the rows until the end.
"""

from __future__ import annotations

import csv
import json
import tempfile
from abc import ABC, abstractmethod
from array import array
from typing import Any, TextIO

import numpy as np
import orjson  # 10x faster than json.dumps on records, byte-identical output

from tcptrace.model import ConnectionRecord, to_dict
from tcptrace.report.summary import Summary
from tcptrace.report.text import (
    ALIGN,
    HEADERS,
    render_summary,
    render_table,
    table_cells,
)


class Writer(ABC):
    """A report format: records one at a time, then the summary and the source report."""

    flush_each = False
    """Flush after every record (live capture: a record is news the moment it ends). Off
    for files: one flush per record would be a system call per connection."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    @abstractmethod
    def write(self, record: ConnectionRecord) -> None: ...

    @abstractmethod
    def finish(self, summary: Summary, source: dict[str, Any]) -> None: ...


class JsonLinesWriter(Writer):
    """One connection per line, written the moment the connection ends."""

    def write(self, record: ConnectionRecord) -> None:
        self.out.write(orjson.dumps(to_dict(record), option=orjson.OPT_APPEND_NEWLINE).decode())
        if self.flush_each:
            self.out.flush()

    def finish(self, summary: Summary, source: dict[str, Any]) -> None:
        pass


class JsonWriter(Writer):
    """One JSON document: source, summary, then the connections in id order.

    Connections end out of id order, and the document can only be written at the end: each
    record is encoded as it comes and spooled to a temporary file, so memory holds 24 bytes
    per connection (its id and where its bytes are), not the record.
    """

    def __init__(self, out: TextIO) -> None:
        super().__init__(out)
        self._spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finish()
        self._spooled = 0
        self._index = array("q")  # (id, offset, length) per record

    def write(self, record: ConnectionRecord) -> None:
        self.add_encoded(record.id, orjson.dumps(to_dict(record), option=orjson.OPT_INDENT_2))

    def add_encoded(self, record_id: int, data: bytes) -> None:
        """A record already encoded with OPT_INDENT_2 (the parallel runner renumbers these)."""
        self._spool.write(data)
        self._index.extend((record_id, self._spooled, len(data)))
        self._spooled += len(data)

    def finish(self, summary: Summary, source: dict[str, Any]) -> None:
        # the same bytes json.dump(document, indent=2) writes, records streamed from the spool
        head = json.dumps({"source": source, "summary": summary.as_dict(), "connections": []},
                          indent=2)
        self.out.write(head[: -len("[]\n}")])
        index = np.frombuffer(self._index, dtype=np.int64).reshape(-1, 3)
        if len(index) == 0:
            self.out.write("[]\n}\n")
        else:
            self.out.write("[\n")
            spool = self._spool
            for n, (_, offset, length) in enumerate(index[np.argsort(index[:, 0], kind="stable")]):
                spool.seek(int(offset))
                text = spool.read(int(length)).decode()
                self.out.write("    " + text.replace("\n", "\n    "))
                self.out.write(",\n" if n < len(index) - 1 else "\n")
            self.out.write("  ]\n}\n")
        self._spool.close()


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted column names for nested dicts; lists become compact JSON."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(flatten(inner, f"{prefix}{key}."))
        return flat
    if isinstance(value, list):
        return {prefix[:-1]: json.dumps(value, separators=(",", ":"))}
    return {prefix[:-1]: value}


# Sub-records that may be null: their columns exist even when they are.
OPTIONAL_COLUMNS = {
    "half_close": ("side", "bytes_after_fin", "duration_ms"),
    "rst": ("sender", "state", "receiver_state", "kind", "ts", "count"),
}


class CsvWriter(Writer):
    def __init__(self, out: TextIO) -> None:
        super().__init__(out)
        self.writer: csv.DictWriter[str] | None = None

    def write(self, record: ConnectionRecord) -> None:
        row = to_dict(record)
        for name, fields in OPTIONAL_COLUMNS.items():
            if row[name] is None:
                row[name] = dict.fromkeys(fields)
        flat = flatten(row)
        if self.writer is None:
            self.writer = csv.DictWriter(self.out, fieldnames=list(flat), lineterminator="\n")
            self.writer.writeheader()
        self.writer.writerow(flat)
        if self.flush_each:
            self.out.flush()

    def finish(self, summary: Summary, source: dict[str, Any]) -> None:
        pass


class TableWriter(Writer):
    """A table that fits 100 columns, then the summary."""

    HEADERS = HEADERS
    ALIGN = ALIGN

    def __init__(self, out: TextIO) -> None:
        super().__init__(out)
        self.rows: list[tuple[Any, ...]] = []

    def write(self, r: ConnectionRecord) -> None:
        self.rows.append(table_cells(
            r.id, (r.client.ip, r.client.port), (r.server.ip, r.server.port), r.outcome,
            r.handshake.rtt_ms, r.handshake.setup_ms, r.close.time_wait,
            r.rst.kind if r.rst else None,
            r.keepalive.probes.client + r.keepalive.probes.server, r.reuse.requests,
            bool(r.reuse.protocol), (r.packets.client, r.packets.server)))

    def finish(self, summary: Summary, source: dict[str, Any]) -> None:
        self.rows.sort(key=lambda row: row[0])
        self.out.write(render_table(self.rows))
        self.out.write(render_summary(summary.as_dict(), source))


def writer_for(name: str, out: TextIO) -> Writer:
    if name == "zeek":  # report/zeek.py builds on Writer: imported here, not at the top
        from tcptrace.report.zeek import ZeekWriter
        return ZeekWriter(out)
    writers: dict[str, type[Writer]] = {"table": TableWriter, "json": JsonWriter,
                                         "jsonl": JsonLinesWriter, "csv": CsvWriter}
    return writers[name](out)
