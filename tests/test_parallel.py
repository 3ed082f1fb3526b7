"""--jobs N: flows split by partition give exactly the single-process report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest
from conftest import CRAFTED, LINUX, run_cli

from tcptrace import parallel
from tcptrace.decode import decode
from tcptrace.engine import Analysis, Options
from tcptrace.model import to_dict
from tcptrace.plan import (
    MappedChunk,
    PartitionIndex,
    map_chunk,
    partition_of,
    reduce_partition,
    renumber,
    renumbered,
)
from tcptrace.sources import SourceStats, read_captures

# every bundled capture merged: real Linux traffic, port reuse, the crafted references
CAPTURES = [str(p) for p in (*sorted(LINUX.glob("*.pcap")), *sorted(CRAFTED.glob("*.pcap*")))]


@pytest.fixture(scope="module")
def single() -> dict[str, tuple[str, str]]:
    """Single-process outputs (format -> stdout, stderr), computed once."""
    return {}


def _single(capsys: pytest.CaptureFixture[str], cache: dict[str, tuple[str, str]],
            fmt: str, *extra: str) -> tuple[str, str]:
    key = " ".join((fmt, *extra))
    if key not in cache:
        code, out, err = run_cli(capsys, "analyze", "--format", fmt, *extra, *CAPTURES)
        assert code == 0
        cache[key] = (out, err)
    return cache[key]


@pytest.mark.parametrize("jobs", [2, 3])
@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_sorted_formats_are_byte_identical(capsys: pytest.CaptureFixture[str],
                                           single: dict[str, tuple[str, str]],
                                           fmt: str, jobs: int) -> None:
    expected = _single(capsys, single, fmt)
    code, out, err = run_cli(capsys, "analyze", "--format", fmt, "--jobs", str(jobs), *CAPTURES)
    assert code == 0
    assert (out, err) == expected  # records, ids, summary, source report and warnings


@pytest.mark.parametrize("jobs", [2, 3])
def test_jsonl_has_the_same_lines(capsys: pytest.CaptureFixture[str],
                                  single: dict[str, tuple[str, str]], jobs: int) -> None:
    expected, _ = _single(capsys, single, "jsonl")
    code, out, _ = run_cli(capsys, "analyze", "--format", "jsonl", "-j", str(jobs), *CAPTURES)
    assert code == 0

    def by_id(text: str) -> list[str]:
        return sorted(text.splitlines(), key=lambda line: json.loads(line)["id"])

    assert by_id(out) == by_id(expected)  # the line order is not part of the contract


def test_port_reuse_keeps_previous_id(capsys: pytest.CaptureFixture[str]) -> None:
    # the reused 4-tuple is in one partition; another capture in front shifts its ids
    code, out, _ = run_cli(capsys, "analyze", "-f", "json", "-j", "2",
                       str(LINUX / "client_close.pcap"), str(CRAFTED / "port_reuse.pcap"))
    assert code == 0
    rows = {r["client"]["port"]: r for r in json.loads(out)["connections"]
            if r["client"]["port"] == 40008 or r["previous_id"] is not None}
    reused = [r for r in json.loads(out)["connections"] if r["previous_id"] is not None]
    assert len(reused) == 1 and rows
    first = next(r for r in json.loads(out)["connections"] if r["id"] == reused[0]["previous_id"])
    assert first["client"] == reused[0]["client"] and first["server"] == reused[0]["server"]
    assert first["id"] < reused[0]["id"]


@pytest.mark.parametrize("options", [["--verify-checksums", "--zeek"], ["--filter", "port 8080"],
                                     ["--linger", "0", "--msl", "1"]])
def test_options_give_the_same_report(capsys: pytest.CaptureFixture[str],
                                      single: dict[str, tuple[str, str]],
                                      options: list[str]) -> None:
    expected = _single(capsys, single, "json", *options)
    code, out, err = run_cli(capsys, "analyze", "-f", "json", "-j", "2", *options, *CAPTURES)
    assert code == 0
    assert (out, err) == expected


@pytest.mark.parametrize("jobs", ["0", "-1", "two"])
def test_unusable_jobs_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str],
                                              jobs: str) -> None:
    code, out, err = run_cli(capsys, "analyze", "--jobs", jobs, CAPTURES[0])
    assert code == 2 and out == ""
    assert err.startswith("tcptrace: error: ") and "--jobs" in err and err.count("\n") == 1


def test_unreadable_file_fails_like_a_single_process_run(capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pcap")
    assert run_cli(capsys, "analyze", "-j", "2", missing) == run_cli(capsys, "analyze", missing)
    code, _, err = run_cli(capsys, "analyze", "-j", "2", missing)
    assert code == 2 and err.count("\n") == 1


def test_both_directions_of_a_flow_share_a_partition() -> None:
    stats = SourceStats()
    for frames in read_captures([str(LINUX / "http_reuse.pcap")], stats):
        seg = decode(frames, stats.skipped)
        swapped = type(seg)(**{**{f: getattr(seg, f) for f in seg.__slots__},
                               "src_hi": seg.dst_hi, "src_lo": seg.dst_lo, "dst_hi": seg.src_hi,
                               "dst_lo": seg.src_lo, "sport": seg.dport, "dport": seg.sport})
        for n in (2, 3, 7):
            assert np.array_equal(partition_of(seg, n), partition_of(swapped, n))


def test_the_plan_runs_as_a_distributed_engine_would() -> None:
    """Map every chunk once into all partitions, reduce each, renumber: the records of
    the single-process engine (the plan API, without the local executor)."""
    options, partitions = Options(), 3
    stats = SourceStats()
    mapped: list[MappedChunk] = []
    ordinal = 0
    for frames in read_captures(CAPTURES, stats):
        chunk = map_chunk(frames, options, partitions, ordinal)
        ordinal += chunk.stats.segments
        mapped.append(chunk)
    records, indexes = [], []
    for k in range(partitions):
        emitted = list(reduce_partition(mapped, k, options))
        records.append([e.record for e in emitted])
        indexes.append(PartitionIndex(
            *(np.array(column, dtype=np.int64) for column in (
                [e.first_ordinal for e in emitted], [e.epoch for e in emitted],
                [e.open_epoch for e in emitted], [e.record.id for e in emitted],
                [e.record.previous_id or 0 for e in emitted]))))
    numbers = renumber(indexes)
    got = sorted((to_dict(renumbered(r, int(numbers.ids[k][i]), int(numbers.previous_ids[k][i])))
                  for k in range(partitions) for i, r in enumerate(records[k])),
                 key=lambda r: r["id"])
    expected = sorted((to_dict(r) for r in Analysis(CAPTURES, options).records()),
                      key=lambda r: r["id"])
    assert got == expected
    assert [r["id"] for r in got] == list(range(1, len(got) + 1))


SINGLE_FILES = [LINUX.parent / "transfer" / "download.pcap", LINUX / "http_reuse.pcap",
                CRAFTED / "ref_eth.pcapng", CRAFTED / "ref_eth.pcap.gz",
                CRAFTED / "ref_truncated.pcap", CRAFTED / "ref_snaplen64.pcap"]


@pytest.mark.parametrize("capture", SINGLE_FILES, ids=lambda p: p.name)
def test_one_file_gives_the_single_process_report(capsys: pytest.CaptureFixture[str],
                                                  capture: Path) -> None:
    # one uncompressed file: workers read the bytes back from it; gzip: the bytes travel
    expected = run_cli(capsys, "analyze", "--format", "json", str(capture))
    assert run_cli(capsys, "analyze", "--format", "json", "-j", "2", str(capture)) == expected


@pytest.mark.parametrize("capture", [LINUX / "http_reuse.pcap", CRAFTED / "ref_eth.pcapng"],
                         ids=lambda p: p.name)
def test_partitions_travel_without_bytes_and_get_them_back(capture: Path) -> None:
    frames = next(read_captures([str(capture)], SourceStats()))
    mapped = map_chunk(frames, Options(), 2, 0)
    assert frames.origin == (str(capture), 24 if capture.suffix == ".pcap" else 0)
    reader = parallel._Bytes()
    for k in (0, 1):
        sent = parallel._only(mapped, k)
        assert len(sent.parts[k].data) == 0 and sent.parts[k].origin is not None
        back = reader.restore(sent).parts[k]
        assert back.origin is not None and len(back.data) == back.origin[2]
        # the frames' bytes (decode may have added zero slack after them: not sent)
        assert np.array_equal(back.data, mapped.parts[k].data[: len(back.data)])


def test_gzip_partitions_carry_their_bytes() -> None:
    frames = next(read_captures([str(CRAFTED / "ref_eth.pcap.gz")], SourceStats()))
    assert frames.origin is None
    sent = parallel._only(map_chunk(frames, Options(), 2, 0), 0)
    assert sent.parts[0].origin is None and len(sent.parts[0].data) > 0


@pytest.mark.parametrize("layout, option", [(parallel.COMPACT, 0),
                                            (parallel.INDENTED, orjson.OPT_INDENT_2)])
def test_ids_spliced_into_encoded_records_match_a_fresh_encoding(layout: tuple[bytes, ...],
                                                                 option: int) -> None:
    # the parent renumbers without decoding: it must give what encoding the renumbered
    # record gives, for a record with and without a previous connection on its 4-tuple
    records = list(Analysis([str(CRAFTED / "port_reuse.pcap")], Options()).records())
    assert any(r.previous_id is not None for r in records)
    for record in records:
        data = orjson.dumps(to_dict(record), option=option)
        for new_id, previous in ((1, 0), (123456, 98765)):
            expected = orjson.dumps(to_dict(renumbered(record, new_id, previous)), option=option)
            assert parallel._with_ids(data, new_id, previous, layout) == expected
