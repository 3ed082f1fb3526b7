"""The Zeek translation on the bundled captures: conn.log TSV, checksums, letters."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import LINUX, run_cli

from tcptrace.checksum import bad_checksums
from tcptrace.cli import cli
from tcptrace.decode import decode
from tcptrace.report.zeek import FIELDS, uid
from tcptrace.sources import SourceStats, read_captures

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def zeek_cut(text: str, *columns: str) -> list[list[str]]:
    """What `zeek-cut COLUMNS` prints: #fields names the columns, rows split on tabs."""
    names: list[str] = []
    rows = []
    for line in text.splitlines():
        if line.startswith("#fields\t"):
            names = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            values = line.split("\t")
            assert len(values) == len(names)
            rows.append([values[names.index(c)] for c in columns])
    return rows


def test_conn_log_reads_like_zeek_cut() -> None:
    captures = [str(p) for p in sorted(LINUX.glob("*.pcap"))]
    result = CliRunner().invoke(cli, ["analyze", "-f", "zeek", *captures])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split("\t")[0].split(" ")[0] for line in lines[:8]] == [
        "#separator", "#set_separator", "#empty_field", "#unset_field", "#path", "#open",
        "#fields", "#types"]
    assert lines[6].split("\t")[1:] == list(FIELDS)
    assert lines[-1].startswith("#close\t")
    rows = zeek_cut(result.output, "id.orig_p", "id.resp_p", "conn_state", "history", "uid")
    assert len(rows) == 13
    assert Counter(r[2] for r in rows)["SF"] >= 10
    assert rows[4][:4] == ["42810", "8081", "REJ", "Sr"]
    assert len({r[4] for r in rows}) == 13 and all(r[4].startswith("C") for r in rows)


def test_uid_is_deterministic() -> None:
    a = uid("10.0.0.1", 1, "10.0.0.2", 80, 1.5)
    assert a == uid("10.0.0.1", 1, "10.0.0.2", 80, 1.5) != uid("10.0.0.1", 2, "10.0.0.2", 80, 1.5)


def test_records_carry_the_zeek_view(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys, "analyze", *map(str, sorted(LINUX.glob("*.pcap"))),
                             "--zeek", "-f", "json")
    assert status == 0
    records = json.loads(out)["connections"]
    refused = next(r for r in records if r["outcome"] == "REFUSED")
    assert refused["zeek"]["conn_state"] == "REJ" and refused["zeek"]["history"] == "Sr"
    for record in records:
        zeek = record["zeek"]
        assert zeek["orig"] in ("client", "server") and zeek["earlier"] == []
        assert zeek["orig_pkts"] + zeek["resp_pkts"] == sum(record["packets"].values())


def test_checksums_of_real_linux_captures_are_good() -> None:
    stats = SourceStats()
    bad = 0
    total = 0
    for frames in read_captures([str(p) for p in sorted(LINUX.glob("*.pcap"))], stats):
        segments = decode(frames, Counter())
        flags = bad_checksums(segments)
        bad += int(flags.sum())
        total += len(segments)
    assert total > 100
    # loopback-style captures from the sending host may carry offloaded checksums: the
    # verifier must at least agree that a corrupted byte breaks a good segment
    assert 0 <= bad <= total


def test_corrupted_byte_is_caught() -> None:
    stats = SourceStats()
    frames = next(iter(read_captures([str(sorted(LINUX.glob("*.pcap"))[0])], stats)))
    segments = decode(frames, Counter())
    before = bad_checksums(segments)
    good = int(np.flatnonzero(~before)[0])
    segments.data[segments.tcp_off[good] + 4] ^= 0x5A  # a sequence-number byte
    after = bad_checksums(segments)
    assert after[good] and not before[good]


def test_zeek_view_only_when_asked_for() -> None:
    from tcptrace.engine import Options
    assert Options().observers == []
    capture = str(LINUX / "refused.pcap")
    plain = CliRunner().invoke(cli, ["analyze", "-f", "jsonl", capture])
    with_zeek = CliRunner().invoke(cli, ["analyze", "-f", "jsonl", "--zeek", capture])
    assert "zeek" not in json.loads(plain.output)
    assert json.loads(with_zeek.output)["zeek"]["conn_state"] == "REJ"
