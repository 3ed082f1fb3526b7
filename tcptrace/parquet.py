"""`analyze -f parquet -o DIR`: the connection records as a Parquet dataset partitioned by
hour (`DIR/hour=YYYY-MM-DDTHH/part-N.parquet`, Hive style), the record flattened as in csv:
the same columns, names and order (docs/output.md, "parquet").

The run writes csv (the engine's flattening, so that the two never differ) to a hidden
temporary file in DIR; pyarrow reads it back in blocks with the documented column types and
appends each block's rows to the file of their hour. pyarrow is optional:
`pip install pyarrow` (the `dask` extra has it).
"""

from __future__ import annotations

import contextlib
import csv as text_csv
import importlib
import os
import re
import tempfile
from collections.abc import Iterator
from typing import Any

from tcptrace.errors import TcptraceError

INSTALL_HINT = "-f parquet needs pyarrow: pip install pyarrow"

INTEGER = frozenset({
    "id", "client.port", "server.port", "previous_id", "handshake.syn_retransmits",
    "handshake.synack_retransmits", "half_close.bytes_after_fin", "rst.count",
    "keepalive.probes.client", "keepalive.probes.server", "keepalive.acks.client",
    "keepalive.acks.server", "reuse.requests", "reuse.responses", "packets.client",
    "packets.server", "bytes.client", "bytes.server", "unique_bytes.client",
    "unique_bytes.server", "retransmitted_bytes.client", "retransmitted_bytes.server",
    "gap_bytes.client", "gap_bytes.server", "anomalies.client", "anomalies.server",
    "zeek.orig_bytes", "zeek.resp_bytes", "zeek.missed_bytes", "zeek.orig_pkts",
    "zeek.orig_ip_bytes", "zeek.resp_pkts", "zeek.resp_ip_bytes"})
"""Columns of int64 (counts, ports, ids)."""
_SIDES = ("client", "server")
_TALLIES = ("rto", "fast", "tlp", "spurious", "keepalive", "window_probe",
            "lost_before_capture", "lost_after_capture")
INTEGER |= frozenset(f"retransmissions.{side}.{kind}.{unit}" for side in _SIDES
                     for kind in _TALLIES for unit in ("segments", "bytes"))
INTEGER |= frozenset(f"zero_window.{side}.{key}" for side in _SIDES
                     for key in ("periods", "probes"))
INTEGER |= frozenset(f"duplicates.{side}" for side in _SIDES)
INTEGER |= frozenset(f"short_frames.{side}" for side in _SIDES)
INTEGER |= frozenset(f"options.{side}.{key}" for side in _SIDES
                     for key in ("mss", "wscale", "data_bytes"))
INTEGER |= frozenset(f"rtt.{side}.samples" for side in _SIDES)
INTEGER |= frozenset(f"throughput.{side}.bits_per_s" for side in _SIDES)
FLOAT = frozenset({
    "first_ts", "last_ts", "duration_ms", "handshake.syn_to_synack_ms",
    "handshake.synack_to_ack_ms", "handshake.rtt_ms", "handshake.setup_ms",
    "close.time_wait_ts", "close.time_wait_until", "close.fin_ts.client",
    "close.fin_ts.server", "half_close.duration_ms", "rst.ts", "zeek.ts", "zeek.duration"}) | \
    frozenset(f"zero_window.{side}.{key}" for side in _SIDES for key in ("stall_ms", "longest_ms"))
FLOAT |= frozenset(f"rtt.{side}.{key}" for side in _SIDES for key in ("p50_ms", "p90_ms", "max_ms"))
FLOAT |= frozenset(f"throughput.{side}.duration_ms" for side in _SIDES)
"""Columns of float64 (times in seconds since the epoch, durations in ms; zeek.duration
in s)."""
BOOLEAN = frozenset({"handshake.complete", "handshake.simultaneous_open"}) | \
    frozenset(f"options.{side}.{key}" for side in _SIDES
              for key in ("sack_permitted", "timestamps", "ecn"))
"""Columns of bool. Every other column is a string (lists as the csv's compact JSON)."""

_PART = re.compile(r"part-(\d+)\.parquet")


def require() -> Any:
    """pyarrow, or the one-line install hint."""
    try:
        return importlib.import_module("pyarrow")
    except ImportError:
        raise TcptraceError(INSTALL_HINT) from None


def prepare(directory: str) -> None:
    """Make the dataset's directory (an existing one is added to: each run writes its own
    `part-N` in every hour); fail before any reading when it cannot be."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise TcptraceError(f"-o {directory}: not a directory (-f parquet writes a "
                            "directory of hour partitions)")
    os.makedirs(directory, exist_ok=True)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(13, os.strerror(13), directory)


@contextlib.contextmanager
def csv_beside(directory: str) -> Iterator[str]:
    """A hidden temporary csv file in `directory` for the run to write (removed after;
    readers of the dataset skip names starting with a dot)."""
    fd, path = tempfile.mkstemp(prefix=".tcptrace-", suffix=".csv", dir=directory)
    os.close(fd)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def schema_of(pa: Any, columns: list[str]) -> Any:
    """The dataset's schema for the csv's columns (in their order)."""
    def kind(name: str) -> Any:
        if name in INTEGER:
            return pa.int64()
        if name in FLOAT:
            return pa.float64()
        if name in BOOLEAN:
            return pa.bool_()
        return pa.string()

    return pa.schema([(name, kind(name)) for name in columns])


def _next_part(directory: str) -> int:
    numbers = [int(m.group(1)) for name in os.listdir(directory)
               if (m := _PART.fullmatch(name))]
    return max(numbers, default=-1) + 1


def write_dataset(csv_path: str, directory: str) -> dict[str, int]:
    """Turn the run's csv into the hour partitions under `directory` (rows per hour,
    `YYYY-MM-DDTHH` in UTC of each connection's `first_ts`): the rows of each hour. Files
    are written under hidden names and renamed into place once all are complete."""
    pa = require()
    csv = importlib.import_module("pyarrow.csv")
    compute = importlib.import_module("pyarrow.compute")
    parquet = importlib.import_module("pyarrow.parquet")
    if os.path.getsize(csv_path) == 0:  # no connection: no row, no partition
        return {}
    with open(csv_path, encoding="utf-8", newline="") as head:
        columns = next(text_csv.reader([head.readline().rstrip("\n")]))
    schema = schema_of(pa, columns)
    convert = csv.ConvertOptions(
        column_types=schema, true_values=["True"], false_values=["False"],
        null_values=[""], strings_can_be_null=True)
    read = csv.ReadOptions(block_size=16 << 20)
    parse = csv.ParseOptions(newlines_in_values=True)  # a --per-file name may hold one
    writers: dict[str, tuple[Any, str, str]] = {}
    rows: dict[str, int] = {}
    try:
        with csv.open_csv(csv_path, read_options=read, parse_options=parse,
                          convert_options=convert) as reader:
            for batch in reader:
                micros = compute.cast(compute.multiply(batch.column("first_ts"), 1_000_000),
                                      pa.int64(), safe=False)
                hours = compute.strftime(compute.cast(micros, pa.timestamp("us", tz="UTC")),
                                         format="%Y-%m-%dT%H")
                for hour in compute.unique(hours).to_pylist():
                    part = batch.filter(compute.equal(hours, hour))
                    if hour not in writers:
                        folder = os.path.join(directory, f"hour={hour}")
                        os.makedirs(folder, exist_ok=True)
                        final = os.path.join(folder, f"part-{_next_part(folder)}.parquet")
                        hidden = os.path.join(folder, f".{os.path.basename(final)}.tmp")
                        writers[hour] = (parquet.ParquetWriter(hidden, schema), hidden, final)
                        rows[hour] = 0
                    writers[hour][0].write_batch(part)
                    rows[hour] += part.num_rows
        for writer, hidden, final in writers.values():
            writer.close()
            os.replace(hidden, final)
    except BaseException:
        for writer, hidden, _ in writers.values():
            with contextlib.suppress(Exception):
                writer.close()
            with contextlib.suppress(OSError):
                os.unlink(hidden)
        raise
    return rows
