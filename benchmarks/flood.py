"""Hostile captures against the flow-table cap: peak memory and time of `tcptrace analyze`.

Two captures, written as raw pcap bytes with numpy (1M packets in about a second):

- `syn`: a SYN flood, every packet from a distinct source (address and port), so every
  packet opens a connection that is never answered;
- `endless`: one connection that never ends: a handshake, then data and ACKs forever.

Each is run as `tcptrace analyze --format jsonl -o /dev/null --max-flows N CAPTURE` in a child
process; its peak RSS comes from `/usr/bin/time -f %M` (os.wait4 as a fallback, which counts
this generator's own memory too). Usage:

    python benchmarks/flood.py --packets 1000000 --max-flows 1000 100000 1000000
    python benchmarks/flood.py --kind endless --packets 1000000

Numbers are in docs/robustness.md. Nothing here runs in the unit tests.
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ETH_IP_TCP = 14 + 20 + 20
RECORD = 16 + ETH_IP_TCP
SYN, ACK, PSH = 0x02, 0x10, 0x08
T0 = 1_700_000_000
TIME = "/usr/bin/time"


def _frames(n: int) -> np.ndarray:
    """n records (pcap record header + Ethernet/IPv4/TCP, no payload) from one template."""
    template = bytearray(RECORD)
    struct.pack_into("<IIII", template, 0, T0, 0, ETH_IP_TCP, ETH_IP_TCP)
    template[16:28] = b"\x02" * 6 + b"\x04" * 6
    struct.pack_into("!H", template, 28, 0x0800)
    struct.pack_into("!BBHHHBBH4s4s", template, 30, 0x45, 0, 40, 0, 0x4000, 64, 6, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 255, 0, 1]))
    struct.pack_into("!HHIIBBHHH", template, 50, 40000, 80, 0, 0, 5 << 4, SYN, 65535, 0, 0)
    return np.tile(np.frombuffer(bytes(template), dtype=np.uint8), (n, 1))


def _put(rec: np.ndarray, at: int, values: np.ndarray, size: int, order: str = ">") -> None:
    rec[:, at:at + size] = values.astype(f"{order}u{size}").view(np.uint8).reshape(-1, size)


def _times(rec: np.ndarray, us: np.ndarray) -> None:
    _put(rec, 0, T0 + us // 1_000_000, 4, "<")
    _put(rec, 4, us % 1_000_000, 4, "<")


def syn_flood(n: int) -> bytes:
    """n SYNs to 10.255.0.1:80, source 10.x.y.z:port distinct for every packet, 1 µs apart."""
    rec = _frames(n)
    i = np.arange(n, dtype=np.int64)
    _times(rec, i)
    _put(rec, 16 + 14 + 12, (10 << 24) | (i >> 8 & 0xFFFFFF), 4)  # source address
    _put(rec, 16 + 34, 1024 + (i & 0xFF) * 200 + (i >> 32), 2)  # source port
    _put(rec, 16 + 34 + 4, (i * 2654435761) & 0xFFFFFFFF, 4)  # ISN
    return _header() + rec.tobytes()


def endless(n: int) -> bytes:
    """One connection: handshake, then client data (1000 bytes claimed on the wire, snaplen
    cut to the headers) and server ACKs alternating, 100 µs apart, never closed."""
    rec = _frames(n)
    i = np.arange(n, dtype=np.int64)
    _times(rec, i * 100)
    server = (i % 2 == 1)
    ip_src, ip_dst = np.full(n, 0x0A000001), np.full(n, 0x0AFF0001)
    _put(rec, 16 + 26, np.where(server, ip_dst, ip_src), 4)
    _put(rec, 16 + 30, np.where(server, ip_src, ip_dst), 4)
    _put(rec, 16 + 34, np.where(server, 80, 40000), 2)
    _put(rec, 16 + 36, np.where(server, 40000, 80), 2)
    client_seq = np.where(i == 0, 1000, 1001 + np.maximum(i // 2 - 2, 0) * 1000)
    server_ack = 1001 + np.maximum((i - 1) // 2 - 1, 0) * 1000  # the client's data so far
    _put(rec, 16 + 38, np.where(server, np.where(i == 1, 5000, 5001), client_seq) & 0xFFFFFFFF,
         4)
    _put(rec, 16 + 42, np.where(server, server_ack, np.where(i == 0, 0, 5001)) & 0xFFFFFFFF, 4)
    flags = np.where(server, ACK, np.where(i == 0, SYN, PSH | ACK))
    flags[1] = SYN | ACK
    flags[2] = ACK
    _put(rec, 16 + 47, flags, 1)
    data = (~server) & (i >= 4)
    _put(rec, 16 + 16, np.where(data, 1040, 40), 2)  # IP total length: 1000 payload bytes
    _put(rec, 12, np.where(data, ETH_IP_TCP + 1000, ETH_IP_TCP), 4, "<")  # orig_len
    return _header(snaplen=ETH_IP_TCP) + rec.tobytes()


def _header(snaplen: int = 65535) -> bytes:
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1)


def measure(capture: Path, max_flows: int) -> tuple[float, int, int]:
    """(seconds, peak RSS in KiB, exit status) of one tcptrace run."""
    # the tcptrace of this interpreter (another `tcptrace` on PATH may be Ostermann's C tool)
    cmd = [sys.executable, "-m", "tcptrace.cli", "analyze", "--format", "jsonl",
           "-o", "/dev/null", "-q", "--max-flows", str(max_flows), str(capture)]
    start = time.perf_counter()
    # Measured through /usr/bin/time: a child spawned from this process (which holds the
    # generated capture) reports this process's pages in its ru_maxrss, even with
    # posix_spawn/vfork, which inflated the figures in proportion to the capture size.
    if os.path.exists(TIME):
        proc = subprocess.run([TIME, "-f", "%M", *cmd], capture_output=True, text=True)
        peak_kib = int(proc.stderr.strip().splitlines()[-1])
        return time.perf_counter() - start, peak_kib, proc.returncode
    child = subprocess.Popen(cmd, close_fds=False)
    _, status, usage = os.wait4(child.pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kind", choices=["syn", "endless"], default="syn")
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--max-flows", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    parser.add_argument("--keep", type=Path, help="write the capture here and keep it")
    args = parser.parse_args()
    start = time.perf_counter()
    data = (syn_flood if args.kind == "syn" else endless)(args.packets)
    made = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        capture = args.keep or Path(tmp) / f"{args.kind}.pcap"
        capture.write_bytes(data)
        size = len(data)
        del data
        print(f"{args.kind}: {args.packets} packets, {size / 1e6:.1f} MB, "
              f"generated in {made:.2f} s")
        print("max_flows   seconds   us/pkt   peak RSS MiB  exit")
        for cap in args.max_flows:
            seconds, rss_kib, code = measure(capture, cap)
            print(f"{cap:>9}  {seconds:8.1f}  {seconds / args.packets * 1e6:7.1f}  "
                  f"{rss_kib / 1024:13.1f}  {code:>4}", flush=True)


if __name__ == "__main__":
    main()
