"""The Zeek translation on the bundled captures: conn.log TSV, checksums, letters."""

from __future__ import annotations

import gzip
import json
import struct
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import LINUX, run_cli

from tcptrace.commands import cli

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ZEEK_FIELDS = [
    "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service",
    "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig", "local_resp",
    "missed_bytes", "history", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes",
    "tunnel_parents", "ip_proto"]
ZEEK_TYPES = [
    "time", "string", "addr", "port", "addr", "port", "enum", "string", "interval", "count",
    "count", "string", "bool", "bool", "count", "string", "count", "count", "count", "count",
    "set[string]", "count"]


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
    assert lines[6].split("\t")[1:] == ZEEK_FIELDS
    assert lines[7].split("\t")[1:] == ZEEK_TYPES
    assert lines[-1].startswith("#close\t")
    rows = zeek_cut(result.output, "id.orig_p", "id.resp_p", "conn_state", "history", "uid")
    assert len(rows) == 13
    assert Counter(r[2] for r in rows)["SF"] >= 10
    assert rows[4][:4] == ["42810", "8081", "REJ", "Sr"]
    assert len({r[4] for r in rows}) == 13 and all(r[4].startswith("C") for r in rows)
    # Zeek's unset local_orig/local_resp (no Site::local_nets), no tunnel, TCP's ip_proto
    extra = zeek_cut(result.output, "proto", "local_orig", "local_resp", "tunnel_parents",
                     "ip_proto")
    assert set(map(tuple, extra)) == {("tcp", "-", "-", "-", "6")}


def test_service_is_http_where_tcptrace_recognised_it() -> None:
    result = CliRunner().invoke(cli, ["analyze", "-f", "zeek", str(LINUX / "http_reuse.pcap"),
                                      str(LINUX / "refused.pcap"), str(LINUX / "keepalive.pcap")])
    assert result.exit_code == 0, result.output
    rows = zeek_cut(result.output, "id.resp_p", "conn_state", "service")
    assert sorted(map(tuple, rows)) == [("8080", "SF", "-"), ("8080", "SF", "http"),
                                        ("8081", "REJ", "-")]


def test_the_columns_are_those_of_zeeks_own_conn_logs() -> None:
    """The #fields and #types lines of Zeek's conn.log (baselines of the Zeek corpus)."""
    baselines = sorted((SHARED / "corpus" / "zeek" / "baselines").glob("*.conn.log"))
    if not baselines:
        pytest.skip("../shared/corpus/zeek is absent")
    headers: Counter[tuple[str, str]] = Counter()
    for path in baselines:
        lines = path.read_text().splitlines()
        fields = [line for line in lines if line.startswith("#fields\t")]
        types = [line for line in lines if line.startswith("#types\t")]
        if fields and types:  # (a few baselines keep the rows only)
            headers[(fields[0], types[0])] += 1
    (fields_line, types_line), _ = headers.most_common(1)[0]
    assert fields_line.split("\t")[1:] == ZEEK_FIELDS
    assert types_line.split("\t")[1:] == ZEEK_TYPES


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


def test_checksums_of_real_linux_captures_are_good(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys, "analyze", *map(str, sorted(LINUX.glob("*.pcap"))),
                             "--verify-checksums", "-f", "json")
    source = json.loads(out)["source"]
    assert (status, source["tcp_segments"], source["skipped"]) == (0, 210, {})


def test_corrupted_byte_is_caught(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = bytearray((LINUX / "client_close.pcap").read_bytes())
    # the first frame: pcap header 24 + record header 16, Ethernet 14, IPv4 20, then TCP;
    # a byte of its sequence number changes, its checksum does not
    data[24 + 16 + 14 + 20 + 4] ^= 0x5A
    capture = tmp_path / "corrupt.pcap"
    capture.write_bytes(bytes(data))
    status, out, _ = run_cli(capsys, "analyze", str(capture), "--verify-checksums", "--zeek",
                             "-q", "-f", "json")
    document = json.loads(out)
    assert status == 0
    assert document["source"]["skipped"] == {"bad_checksum": 1}
    assert document["source"]["tcp_segments"] == 9
    # Zeek drops the SYN but writes its letter (C: the originator's bad checksum); without
    # the SYN it meets the SYN/ACK first and flips the roles (^)
    (record,) = document["connections"]
    assert record["zeek"]["history"] == "^hADadFf"
    assert [e["history"] for e in record["zeek"]["earlier"]] == ["C"]


def test_zeek_view_only_when_asked_for() -> None:
    capture = str(LINUX / "refused.pcap")
    plain = CliRunner().invoke(cli, ["analyze", "-f", "jsonl", capture])
    with_zeek = CliRunner().invoke(cli, ["analyze", "-f", "jsonl", "--zeek", capture])
    assert "zeek" not in json.loads(plain.output)
    assert json.loads(with_zeek.output)["zeek"]["conn_state"] == "REJ"


def test_bad_checksums_reach_the_zeek_view_a_batch_at_a_time(tmp_path: Path) -> None:
    """A plain file is read in pieces of about 1 MiB, but the ledger of bad-checksum segments
    is filled a whole batch at a time before any of its good segments is fed (as the Python
    engine did): a bad segment read in the second piece, stamped earlier than good segments
    of the first, is replayed before them. A gzip copy, read a whole chunk at a time, is the
    reference (one chunk, one batch: the same cuts)."""
    from random_traffic import tcp_frame

    frames: list[tuple[int, bytes]] = []  # (µs, frame)
    client, server = (1, 2, 40000, 80), (2, 1, 80, 40000)
    frames += [(0, tcp_frame(*client, 100, 0, 0x02, b"", None, checksums=True)),
               (100, tcp_frame(*server, 500, 101, 0x12, b"", None, checksums=True)),
               (200, tcp_frame(*client, 101, 501, 0x10, b"", None, checksums=True))]
    seq = 101
    for i in range(900):  # about 1.2 MB of data at t >= 0.6 s: the first piece and more
        frames.append((600_000 + i, tcp_frame(*client, seq, 501, 0x18, b"x" * 1300, None,
                                              checksums=True)))
        seq += 1300
    # the bad segment: read after the first piece, stamped before every data segment
    frames.append((500_000, tcp_frame(*server, 501, seq, 0x10, b"", None, checksums=False)))
    frames += [(700_000, tcp_frame(*client, seq, 501, 0x11, b"", None, checksums=True)),
               (700_100, tcp_frame(*server, 501, seq + 1, 0x11, b"", None, checksums=True)),
               (700_200, tcp_frame(*client, seq + 1, 502, 0x10, b"", None, checksums=True))]
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for t_us, data in frames:
        out += struct.pack("<IIII", 1_700_000_000 + t_us // 1_000_000, t_us % 1_000_000,
                           len(data), len(data)) + data
    plain = tmp_path / "late_bad_checksum.pcap"
    plain.write_bytes(bytes(out))
    packed = tmp_path / "late_bad_checksum.pcap.gz"
    packed.write_bytes(gzip.compress(bytes(out)))
    assert len(out) > 1 << 20
    documents = []
    for capture in (plain, packed):
        result = CliRunner().invoke(cli, ["analyze", "-f", "json", "--zeek",
                                          "--verify-checksums", str(capture)])
        assert result.exit_code == 0, result.output
        documents.append(json.loads(result.output))
    assert documents[0]["source"]["skipped"] == {"bad_checksum": 1}
    assert documents[0]["connections"] == documents[1]["connections"]
    [record] = documents[0]["connections"]
    # the responder's bad checksum comes right after the handshake, before the data
    assert record["zeek"]["history"] == "ShAcDFf"
