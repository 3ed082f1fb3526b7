"""Reading a capture in chunks: the frames do not depend on where the chunks end.

Bundled captures fit in one 8 MiB chunk, so here the chunk size is made tiny: every record
then straddles chunk boundaries, and records longer than a chunk occur.
"""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import CRAFTED, LINUX, SHARED

from tcptrace.decode import NOT_COLUMNS, SegmentBatch, decode
from tcptrace.sources import SourceStats, chunks, read_captures
from tcptrace.sources.batch import FrameBatch

CAPTURES = [LINUX / "http_reuse.pcap", LINUX.parent / "transfer" / "download.pcap",
            CRAFTED / "ref_eth.pcapng", CRAFTED / "ref_multi_if.pcapng",
            CRAFTED / "ref_eth.pcap.gz", CRAFTED / "ref_eth.pcapng.gz",
            CRAFTED / "ref_eth_ns_be.pcap", CRAFTED / "ref_truncated.pcap"]
Frame = tuple[int, int, int, int, bytes]


def _read(path: Path) -> tuple[list[Frame], list[FrameBatch], SourceStats]:
    stats = SourceStats()
    batches = list(read_captures([str(path)], stats))
    frames = [(t, c, w, lt, batch.data[o : o + c].tobytes())
              for batch in batches
              for t, o, c, w, lt in zip(batch.ts_ns.tolist(), batch.offset.tolist(),
                                        batch.caplen.tolist(), batch.wirelen.tolist(),
                                        batch.linktype.tolist(), strict=True)]
    return frames, batches, stats


@pytest.mark.parametrize("chunk", [1, 100, 1000, 65536])
@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_frames_do_not_depend_on_the_chunk_size(monkeypatch: pytest.MonkeyPatch,
                                                capture: Path, chunk: int) -> None:
    expected, whole, stats = _read(capture)
    assert len(whole) == 1 and expected  # one chunk of the default size
    monkeypatch.setattr(chunks, "CHUNK", chunk)
    got, batches, small = _read(capture)
    assert got == expected
    assert small.frames == stats.frames and small.skipped == stats.skipped
    assert small.warnings == stats.warnings  # a truncated file: the same byte, the same count
    raw = capture.read_bytes()
    if len(gzip.decompress(raw) if capture.suffix == ".gz" else raw) > 2 * chunk:
        assert len(batches) > 1
    for batch in batches:  # a batch of an uncompressed file names the bytes it holds
        if capture.suffix == ".gz":
            assert batch.origin is None
        else:
            assert batch.origin is not None
            at = batch.origin[1]
            assert batch.data.tobytes() == raw[at : at + len(batch.data)]


def test_a_truncated_stream_warns_where_the_file_ends(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    raw = (LINUX / "http_reuse.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(raw[: len(raw) - 10])
    zipped = tmp_path / "cut.pcap.gz"
    zipped.write_bytes(gzip.compress(cut.read_bytes()))
    monkeypatch.setattr(chunks, "CHUNK", 300)
    plain, _, plain_stats = _read(cut)
    packed, _, packed_stats = _read(zipped)
    assert plain == packed and plain_stats.skipped == packed_stats.skipped
    assert plain_stats.skipped == Counter(truncated_record=1)
    [warning] = plain_stats.warnings
    assert warning.endswith("the capture was probably cut short")
    [packed_warning] = packed_stats.warnings
    assert packed_warning == warning.replace(str(cut), str(zipped))


def _columns(seg: SegmentBatch) -> dict[str, list[int]]:
    return {name: getattr(seg, name).tolist() for name in SegmentBatch.__dataclass_fields__
            if name not in NOT_COLUMNS and getattr(seg, name) is not None}


def _slack_captures() -> list[Path]:
    bundled = sorted((*LINUX.glob("*.pcap"), *CRAFTED.glob("*.pcap*")))
    corpus = sorted(p for p in (SHARED / "corpus" / "tcpdump").rglob("*.pcap*") if p.is_file())
    return bundled + corpus


def test_decode_reads_nothing_from_the_slack_after_the_frames() -> None:
    # A chunk usually ends with the start of the next record, and decode gathers from there
    # instead of copying the chunk to pad it: those bytes must never change a value.
    # tcpdump's fuzzed captures have every kind of cut header.
    rng = np.random.default_rng(7)
    checked = 0
    for path in _slack_captures():
        try:
            batches = list(read_captures([str(path)], SourceStats()))
        except Exception:  # unreadable files are the robustness tests' business
            continue
        for frames in batches:
            if len(frames) == 0:
                continue
            used = int((frames.offset + frames.caplen).max())
            tight = FrameBatch(frames.data[:used].copy(), frames.ts_ns, frames.offset,
                               frames.caplen, frames.wirelen, frames.linktype)
            noisy = FrameBatch(np.concatenate([tight.data, rng.integers(0, 256, 200, np.uint8)]),
                               frames.ts_ns, frames.offset, frames.caplen, frames.wirelen,
                               frames.linktype)
            a, b = Counter[str](), Counter[str]()
            padded, in_place = decode(tight, a), decode(noisy, b)
            assert in_place.data is noisy.data  # enough slack: not copied
            assert _columns(padded) == _columns(in_place), path
            assert a == b
            checked += 1
    assert checked >= 20
