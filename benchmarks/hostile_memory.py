"""Peak memory of tcptrace on the hostile captures of issue 17 (items 9-13), beside tshark's.

A sibling of flood.py (whose generators it reuses): each case writes its capture(s) with
numpy, runs one tcptrace command under `/usr/bin/time -f %M`, and prints seconds and peak
RSS; `--tshark` runs `tshark -r CAPTURE -q -z conv,tcp` on the same input. Cases:

- `same-syn`      1M copies of one SYN on one 4-tuple (item 9)
- `same-syn-gz`   one SYN repeated 100M times, gzip-compressed (item 9)
- `syn-synack`    1M SYN and SYN/ACK pairs on one 4-tuple (item 9)
- `plain`         200k whole connections, in order (the baseline of the next two)
- `jump`          200k whole connections, one timestamp 30 years ahead halfway (item 10)
- `backwards`     200k whole connections, the second half 1 day earlier (item 10)
- `files`         150 files of 2,000 whole connections each (item 11), and `one-file`
                  the same connections in one file
- `table`, `check`, `ladder`, `report`: 1M SYN sources (item 12)
- `bomb`          a pcap header and 10 GiB of zero records in ~10 MB of gzip (item 13)

    python benchmarks/hostile_memory.py same-syn jump --tshark

Numbers are in docs/robustness.md. Nothing here runs in the unit tests.
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from flood import ACK, ETH_IP_TCP, SYN, _frames, _header, _put, _times, syn_flood

TIME = "/usr/bin/time"
FIN = 0x01
HOUR_US = 3_600_000_000


def same_syn(n: int) -> bytes:
    rec = _frames(n)
    _times(rec, np.arange(n, dtype=np.int64))
    return _header() + rec.tobytes()


def syn_synack(n: int) -> bytes:
    """n/2 SYNs and n/2 SYN/ACKs alternating on one 4-tuple."""
    rec = _frames(n)
    i = np.arange(n, dtype=np.int64)
    _times(rec, i)
    server = i % 2 == 1
    ip_src, ip_dst = np.full(n, 0x0A000001), np.full(n, 0x0AFF0001)
    _put(rec, 16 + 26, np.where(server, ip_dst, ip_src), 4)
    _put(rec, 16 + 30, np.where(server, ip_src, ip_dst), 4)
    _put(rec, 16 + 34, np.where(server, 80, 40000), 2)
    _put(rec, 16 + 36, np.where(server, 40000, 80), 2)
    _put(rec, 16 + 42, np.where(server, 1, 0), 4)
    _put(rec, 16 + 47, np.where(server, SYN | ACK, SYN), 1)
    return _header() + rec.tobytes()


def connections(n: int, shift_us: np.ndarray | None = None) -> bytes:
    """n whole connections (SYN, SYN/ACK, ACK, FIN, FIN, ACK), each from its own source,
    one starting every millisecond; `shift_us` moves each packet's time."""
    per = 6
    rec = _frames(n * per)
    i = np.arange(n * per, dtype=np.int64)
    conn, step = i // per, i % per
    us = conn * 1000 + step * 10
    if shift_us is not None:
        us = us + shift_us
    _times(rec, us)
    server = np.isin(step, [1, 4])
    client_ip = (10 << 24) | (conn >> 8 & 0xFFFFFF)
    client_port = 1024 + (conn & 0xFF) * 200
    _put(rec, 16 + 26, np.where(server, 0x0AFF0001, client_ip), 4)
    _put(rec, 16 + 30, np.where(server, client_ip, 0x0AFF0001), 4)
    _put(rec, 16 + 34, np.where(server, 80, client_port), 2)
    _put(rec, 16 + 36, np.where(server, client_port, 80), 2)
    seq = np.select([step == 0, step == 1, step == 4], [1000, 5000, 5001], 1001)
    seq = np.where(step == 5, 1002, seq)
    ack = np.select([step == 0, step == 1, step == 4], [0, 1001, 1002], 5001)
    ack = np.where(step == 5, 5002, ack)
    _put(rec, 16 + 38, seq, 4)
    _put(rec, 16 + 42, ack, 4)
    flags = np.select([step == 0, step == 1, step == 3, step == 4],
                      [SYN, SYN | ACK, FIN | ACK, FIN | ACK], ACK)
    _put(rec, 16 + 47, flags, 1)
    return _header() + rec.tobytes()


def jump(n: int) -> bytes:
    """One packet halfway 30 years ahead (a flipped bit in the seconds field)."""
    shift = np.zeros(n * 6, dtype=np.int64)
    shift[n * 3] = 30 * 365 * 24 * HOUR_US
    return connections(n, shift)


def backwards(n: int) -> bytes:
    shift = np.zeros(n * 6, dtype=np.int64)
    shift[n * 3:] = -24 * HOUR_US
    return connections(n, shift)


def write_gzip_repeated(path: Path, header: bytes, record: bytes, count: int) -> None:
    """header + count copies of record, gzip-compressed, written without holding it."""
    block = record * max(1, (1 << 20) // len(record))
    per_block = len(block) // len(record)
    with gzip.open(path, "wb", compresslevel=6) as out:
        out.write(header)
        for _ in range(count // per_block):
            out.write(block)
        out.write(record * (count % per_block))


def run(cmd: list[str]) -> tuple[float, float, int]:
    start = time.perf_counter()
    proc = subprocess.run([TIME, "-f", "%M", *cmd], capture_output=True, text=True)
    peak = int(proc.stderr.strip().splitlines()[-1]) / 1024
    return time.perf_counter() - start, peak, proc.returncode


def tcptrace(*args: str) -> list[str]:
    return [sys.executable, "-m", "tcptrace.cli", *args]


def case(name: str, tmp: Path, max_flows: int | None) -> tuple[list[str], list[Path]]:
    """The tcptrace command of a case and its captures."""
    out = ["-o", "/dev/null", "-q"]
    flows = [] if max_flows is None else ["--max-flows", str(max_flows)]
    one = tmp / f"{name}.pcap"
    if name == "same-syn":
        one.write_bytes(same_syn(1_000_000))
    elif name == "syn-synack":
        one.write_bytes(syn_synack(1_000_000))
    elif name == "same-syn-gz":
        one = tmp / "same-syn.pcap.gz"
        rec = same_syn(1)[24:]
        write_gzip_repeated(one, _header(), rec, 100_000_000)
    elif name == "plain":
        one.write_bytes(connections(200_000))
    elif name == "jump":
        one.write_bytes(jump(200_000))
    elif name == "backwards":
        one.write_bytes(backwards(200_000))
    elif name == "bomb":
        one = tmp / "bomb.pcap.gz"
        write_gzip_repeated(one, _header(), bytes(1 << 16), (10 << 30) >> 16)
    elif name in ("files", "one-file"):
        # 150 files of 2,000 whole connections each (a rotation), against the same
        # connections in one file
        data = connections(300_000)
        if name == "one-file":
            one.write_bytes(data)
            return tcptrace("analyze", "-f", "jsonl", *out, *flows, str(one)), [one]
        rec = np.frombuffer(data[24:], dtype=np.uint8).reshape(-1, 16 + ETH_IP_TCP)
        paths = []
        per = len(rec) // 150
        for k in range(150):
            path = tmp / f"part{k:03}.pcap"
            path.write_bytes(_header() + rec[k * per:(k + 1) * per].tobytes())
            paths.append(path)
        return tcptrace("analyze", "-f", "jsonl", *out, *flows, *map(str, paths)), paths
    elif name in ("table", "check", "ladder", "report"):
        one = tmp / "syn1m.pcap"
        if not one.exists():
            one.write_bytes(syn_flood(1_000_000))
        command = {"table": ["analyze", *out], "check": ["check", "--no-rst", "-q"],
                   "ladder": ["ladder", "--conn", "5"],
                   "report": ["report", "-q", "-o", str(tmp / "r.html")]}[name]
        return tcptrace(*command, *flows, str(one)), [one]
    return tcptrace("analyze", "-f", "jsonl", *out, *flows, str(one)), [one]


CASES = ["same-syn", "same-syn-gz", "syn-synack", "plain", "jump", "backwards", "files",
         "one-file", "table", "check", "ladder", "report", "bomb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cases", nargs="*", choices=CASES, default=CASES)
    parser.add_argument("--tshark", action="store_true", help="tshark's figure beside it")
    parser.add_argument("--tmp", type=Path, help="directory for the captures")
    parser.add_argument("--max-flows", type=int, help="--max-flows for every command")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        print(f"{'case':<12} {'MB in':>8} {'s':>7} {'peak MiB':>9} {'exit':>4}"
              + ("   tshark s  peak MiB" if args.tshark else ""), flush=True)
        for name in args.cases:
            cmd, paths = case(name, Path(tmp), args.max_flows)
            size = sum(p.stat().st_size for p in paths) / 1e6
            seconds, peak, code = run(cmd)
            line = f"{name:<12} {size:8.1f} {seconds:7.1f} {peak:9.1f} {code:>4}"
            if args.tshark and len(paths) == 1 and paths[0].suffix != ".gz":
                t_s, t_peak, _ = run(["tshark", "-n", "-r", str(paths[0]), "-q",
                                      "-z", "conv,tcp"])
                line += f"   {t_s:8.1f} {t_peak:9.1f}"
            print(line, flush=True)
            for p in paths:
                if p.name != "syn1m.pcap":
                    p.unlink()


if __name__ == "__main__":
    main()
