"""Shared fixtures: paths to the bundled captures and a one-call analysis helper."""

from __future__ import annotations

import ast
import io
import json
import logging
import struct
import subprocess
import sys
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from tcptrace import native
from tcptrace.bpf import compile_filter
from tcptrace.cli import main
from tcptrace.defaults import DEFAULT_MSL_S

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "pcaps"
LINUX = PCAPS / "linux"
CRAFTED = PCAPS / "crafted"
SHARED = ROOT.parent / "shared"
BENCH = ROOT / "benchmarks" / "data" / "bench.pcap"
"""The 1M-packet benchmark capture, where ../shared/bench/make_bench_pcap.sh recorded it."""


def captures(root: Path) -> list[Path]:
    """Every capture under `root` (the corpus holds notes and baselines beside them)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(
        (".md", ".py", ".json", ".log", ".txt", ".yaml", ".rules", ".out", ".zeek", ".sh")))


def pcap_slice(source: Path, packets: int, target: Path) -> Path:
    """The first `packets` records of a classic pcap file."""
    with source.open("rb") as f, target.open("wb") as out:
        header = f.read(24)
        endian = "<" if header[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        out.write(header)
        for _ in range(packets):
            record = f.read(16)
            if len(record) < 16:
                break
            (incl,) = struct.unpack(endian + "I", record[8:12])
            out.write(record + f.read(incl))
    return target


def analyze(*paths: Path | str, filter: str | None = None, msl_s: float = DEFAULT_MSL_S,
            linger_s: float = 0.5, max_flows: int = 1_000_000,
            ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Records (as JSON dicts, by id) and the source report of a capture, from the engine
    `analyze` runs."""
    out = io.BytesIO()
    native.analyze([str(p) for p in paths], "json", out,
                   bpf=compile_filter(filter) if filter else None, msl_s=msl_s,
                   linger_s=linger_s, max_flows=max_flows)
    document = json.loads(out.getvalue())
    return document["connections"], document["source"]


def one(*paths: Path | str, **options: Any) -> dict[str, Any]:
    records, _ = analyze(*paths, **options)
    assert len(records) == 1, [r["id"] for r in records]
    return records[0]


def states(record: dict[str, Any], side: str) -> list[tuple[float, str]]:
    """A side's transitions as (µs since the connection's first packet, state)."""
    first = record["first_ts"]
    return [(round((s["ts"] - first) * 1e6), s["state"]) for s in record["states"][side]]


@pytest.fixture
def shared() -> Path:
    if not (SHARED / "corpus").is_dir():
        pytest.skip("../shared is not beside this checkout")
    return SHARED


REFUSED_SERVER = bytes([10, 0, 0, 80])


def write_refused_capture(path: Path, count: int) -> Path:
    """`count` refused connections (SYN, RST/ACK 10 us later), one a millisecond, from
    10.1.x.1 ports 1024-61023 to 10.0.0.80:80: a capture whose every connection is short
    and ends at once, for tests that need many records (pipes, signals, evictions)."""
    head = bytes.fromhex("020000000002" "020000000001" "0800")
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(count):
            sport, src = 1024 + i % 60000, bytes([10, 1, (i // 60000) & 255, 1])
            for k, (a, b, ports, seq, ack, flags) in enumerate((
                    (src, REFUSED_SERVER, (sport, 80), 1000, 0, 0x02),
                    (REFUSED_SERVER, src, (80, sport), 0, 1001, 0x14))):
                ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0, a, b)
                tcp = struct.pack("!HHIIBBHHH", *ports, seq, ack, 0x50, flags, 512, 0, 0)
                frame = head + ip + tcp
                us = i * 1000 + k * 10
                out.write(struct.pack("<IIII", 1_700_000_000 + us // 1_000_000, us % 1_000_000,
                                      len(frame), len(frame)) + frame)
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `tcptrace ARGS` in-process: (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([*args])
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (benchmarks/browser.py), one per test module; the test is skipped
    where chromium is not installed."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from browser import Browser, chromium

    binary = chromium()
    if binary is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    with Browser(binary) as b:
        yield b


def modules_loaded(args: list[str], names: list[str]) -> list[str]:
    """Which of the modules `names` a fresh `tcptrace ARGS` process has imported by its end
    (what a run's start costs is what it imports)."""
    code = ("import sys\nfrom tcptrace.cli import main\n"
            f"main({args!r})\n"
            f"print(sorted(m for m in {names!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return list(ast.literal_eval(done.stdout))


class Allowlist:
    """Documented differences from a peer tool, keyed (trace, connection, field); "*" in the
    connection or field position matches any. The corpus tests fail on any other difference,
    and on an entry that no longer matches anything (a stale entry hides nothing)."""

    def __init__(self, entries: dict[tuple[str, str, str], str]) -> None:
        self.entries = entries

    def covers(self, trace: str, connection: str, field: str) -> bool:
        return any(t == trace and c in ("*", connection) and f in ("*", field)
                   for t, c, f in self.entries)

    def unexpected(self, differences: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Differences (trace, connection, field, theirs, ours) no entry covers."""
        return [d for d in differences if not self.covers(d[0], d[1], d[2])]

    def stale(self, differences: list[tuple[Any, ...]]) -> list[tuple[str, str, str]]:
        """Entries that cover none of `differences` (trace, connection, field, theirs, ours)."""
        seen = {(d[0], d[1], d[2]) for d in differences}
        return [(t, c, f) for t, c, f in self.entries if not any(
            t == s_t and c in ("*", s_c) and f in ("*", s_f) for s_t, s_c, s_f in seen)]


needs_dask = pytest.mark.skipif(find_spec("distributed") is None,
                                reason="dask[distributed] is not installed")


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A LocalCluster of 2 worker processes, started once per test module that asks for
    it (--executor dask)."""
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster:
        yield cluster.scheduler_address
