"""`analyze -f parquet -o DIR` (issue 20): the records as a Parquet dataset partitioned by
hour, the csv's columns, names and values with types (docs/output.md), read back with
pyarrow."""

from __future__ import annotations

import csv
import io
import sys
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from conftest import CRAFTED, LINUX, PCAPS, captures, run_cli

needs_pyarrow = pytest.mark.skipif(find_spec("pyarrow") is None,
                                   reason="pyarrow is not installed")
BUNDLED = [str(p) for p in captures(PCAPS)]
"""Every bundled capture: records of 2023 (crafted) and 2026 (linux), tunnels, damage."""


def _csv_cell(value: Any) -> str:
    """A value as the csv writes it (None empty, bools True/False, floats as repr)."""
    if value is None:
        return ""
    return str(value)


def _dataset(directory: Path) -> Any:
    import pyarrow.dataset as ds

    return ds.dataset(directory, format="parquet", partitioning="hive").to_table()


def _csv_rows(capsys: pytest.CaptureFixture[str], paths: list[str],
              *extra: str) -> tuple[list[str], list[list[str]]]:
    status, out, err = run_cli(capsys, "analyze", *paths, "-f", "csv", "-q", *extra)
    assert status == 0, err
    header, *rows = list(csv.reader(io.StringIO(out)))
    return header, rows


@needs_pyarrow
def test_records_partitioned_by_hour(capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    header, rows = _csv_rows(capsys, BUNDLED)
    out = tmp_path / "conns"
    status, stdout, err = run_cli(capsys, "analyze", *BUNDLED, "-f", "parquet", "-o",
                                  str(out), "-q")
    assert (status, stdout, err) == (0, "", "")
    hours = {datetime.fromtimestamp(float(r[header.index("first_ts")]), UTC)
             .strftime("%Y-%m-%dT%H") for r in rows}
    assert len(hours) > 1
    assert sorted(p.name for p in out.iterdir()) == sorted(f"hour={h}" for h in hours)
    for folder in out.iterdir():
        assert [p.name for p in folder.iterdir()] == ["part-0.parquet"]
    table = _dataset(out)
    # the csv's columns, in its order, then the partition's
    assert table.schema.names == [*header, "hour"]
    types = {name: str(table.schema.field(name).type) for name in
             ("id", "client.ip", "first_ts", "handshake.complete", "handshake.rtt_ms",
              "previous_id", "states.client", "encapsulation", "hour", "duplicates.server",
              "options.client.mss", "options.server.wscale", "options.client.data_bytes",
              "options.client.sack_permitted", "options.server.ecn", "options.client.tfo",
              "options.client.rewritten", "retransmissions.server.rto.segments",
              "zero_window.client.stall_ms")}
    assert types == {"id": "int64", "client.ip": "string", "first_ts": "double",
                     "handshake.complete": "bool", "handshake.rtt_ms": "double",
                     "previous_id": "int64", "states.client": "string",
                     "encapsulation": "string", "hour": "string", "duplicates.server": "int64",
                     "options.client.mss": "int64", "options.server.wscale": "int64",
                     "options.client.data_bytes": "int64",
                     "options.client.sack_permitted": "bool", "options.server.ecn": "bool",
                     "options.client.tfo": "string", "options.client.rewritten": "string",
                     "retransmissions.server.rto.segments": "int64",
                     "zero_window.client.stall_ms": "double"}
    got = sorted(table.to_pylist(), key=lambda r: r["id"])
    assert len(got) == len(rows) > 40
    for want, record in zip(sorted(rows, key=lambda r: int(r[0])), got, strict=True):
        hour = datetime.fromtimestamp(record["first_ts"], UTC).strftime("%Y-%m-%dT%H")
        assert record.pop("hour") == hour
        assert [_csv_cell(v) for v in record.values()] == want
    # each hour's rows in the run's order
    order = [int(r[0]) for r in rows]
    for folder in out.iterdir():
        ids = pq.read_table(folder / "part-0.parquet").column("id").to_pylist()
        assert ids == [i for i in order if i in set(ids)]
    assert not [p for p in out.rglob(".*")]  # no temporary file left


@needs_pyarrow
def test_zeek_columns_and_a_second_run(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    paths = [str(LINUX / "http_reuse.pcap"), str(CRAFTED / "ref_vxlan.pcap")]
    header, rows = _csv_rows(capsys, paths, "--zeek")
    out = tmp_path / "conns"
    for _ in range(2):  # a run into an existing dataset adds its own part in each hour
        status, _, err = run_cli(capsys, "analyze", *paths, "--zeek", "-f", "parquet",
                                 "-o", str(out), "-q")
        assert status == 0, err
    assert sorted(p.name for p in out.glob("*/*")) == ["part-0.parquet", "part-0.parquet",
                                                       "part-1.parquet", "part-1.parquet"]
    table = _dataset(out)
    assert table.schema.names == [*header, "hour"]
    assert str(table.schema.field("zeek.orig_bytes").type) == "int64"
    assert table.num_rows == 2 * len(rows)


@needs_pyarrow
def test_parquet_errors_are_one_line(capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    path = str(CRAFTED / "ref_vxlan.pcap")
    status, _, err = run_cli(capsys, "analyze", path, "-f", "parquet")
    assert (status, err) == (2, "tcptrace: error: -f parquet writes a directory: give -o DIR "
                                "(try 'tcptrace analyze --help')\n")
    plain = tmp_path / "file"
    plain.write_text("")
    status, _, err = run_cli(capsys, "analyze", path, "-f", "parquet", "-o", str(plain))
    assert (status, err) == (2, f"tcptrace: error: -o {plain}: not a directory (-f parquet "
                                "writes a directory of hour partitions)\n")


def test_without_pyarrow_says_how_to_install(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import fails as if absent
    status, out, err = run_cli(capsys, "analyze", str(CRAFTED / "ref_vxlan.pcap"),
                               "-f", "parquet", "-o", str(tmp_path / "conns"))
    assert (status, out) == (2, "")
    assert err == "tcptrace: error: -f parquet needs pyarrow: pip install pyarrow\n"
    assert not (tmp_path / "conns").exists()
