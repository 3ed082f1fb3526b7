"""How many packets per second `tcptrace live` keeps up with: the rate at which libpcap's
kernel drop counter leaves 0.

Two network namespaces joined by a veth pair; `tcpreplay --pps RATE` replays the benchmark
capture onto one end, `tcptrace live -f jsonl -o /dev/null` captures on the other (in
promiscuous mode, so every replayed frame is captured whatever its MAC addresses) and is
stopped by SIGINT a second after the replay ends. Printed per run: the rate asked for, the
rate tcpreplay achieved, packets the capture read, kernel drops, the capture's CPU time
(user + sys, startup included) and per packet read, the 1-minute load average after the run.
Needs root, iproute2 and tcpreplay. Usage:

    python benchmarks/live_rate.py --packets 400000 --pps 100000 200000 300000
    python benchmarks/live_rate.py --packets 400000 --no-offloads --pps 200000 300000
    python benchmarks/live_rate.py --packets 400000 --topspeed
    python benchmarks/live_rate.py --packets 1000000 --runs 3 --pps 100000 200000 300000

Numbers are in docs/live.md. Nothing here runs in the unit tests.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "data" / "bench.pcap"
NS_A, NS_B, IF_A, IF_B = "ttrate-a", "ttrate-b", "ttratea", "ttrateb"
OFFLOADS = True
TCPTRACE = str(Path(sys.executable).parent / "tcptrace")


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def lab() -> None:
    for ns in (NS_A, NS_B):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", IF_A, "netns", NS_A, "type", "veth", "peer", "name", IF_B,
       "netns", NS_B)
    for ns, ifname in ((NS_A, IF_A), (NS_B, IF_B)):
        sh("ip", "netns", "exec", ns, "ip", "link", "set", ifname, "up")
        if not OFFLOADS:
            sh("ip", "netns", "exec", ns, "ethtool", "-K", ifname, "tso", "off", "gso", "off",
               "gro", "off")


def run(capture: Path, packets: int, pps: int | None) -> dict[str, object]:
    live = subprocess.Popen(["ip", "netns", "exec", NS_B, TCPTRACE, "live", "-i", IF_B,
                             "-f", "jsonl", "-o", "/dev/null", "--duration", "600"],
                            stderr=subprocess.PIPE, text=True)
    assert live.stderr is not None
    line = live.stderr.readline()
    assert "listening on" in line, line
    speed = ["--topspeed"] if pps is None else [f"--pps={pps}"]
    replay = subprocess.run(["ip", "netns", "exec", NS_A, "tcpreplay", "-i", IF_A, *speed,
                             f"--limit={packets}", str(capture)],
                            capture_output=True, text=True, check=True)
    time.sleep(1.0)
    live.send_signal(signal.SIGINT)
    _, status, usage = os.wait4(live.pid, 0)
    err = live.stderr.read()
    rated = re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", replay.stdout)
    read = re.search(r"Packets: (\d+) read", err)
    drops = re.search(r"kernel drops: (\d+)", err)
    cpu_s = usage.ru_utime + usage.ru_stime
    packets = int(read.group(1)) if read else None
    return {"asked": pps or "top", "achieved_pps": float(rated.group(1)) if rated else None,
            "read": packets, "drops": int(drops.group(1)) if drops else None,
            "cpu_s": round(cpu_s, 2),
            "cpu_us_per_packet": round(1e6 * cpu_s / packets, 2) if packets else None,
            "load1": os.getloadavg()[0], "status": status}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capture", type=Path, default=BENCH)
    parser.add_argument("--packets", type=int, default=400_000)
    parser.add_argument("--pps", type=int, nargs="*", default=[])
    parser.add_argument("--topspeed", action="store_true")
    parser.add_argument("--runs", type=int, default=1,
                        help="rounds over the rates (alternating: rate1, rate2, ..., rate1, ...)")
    parser.add_argument("--no-offloads", action="store_true",
                        help="TSO/GSO/GRO off on the veth: libpcap's ring then has MTU-sized "
                             "frame slots instead of 64 KiB ones (see docs/live.md)")
    args = parser.parse_args()
    global OFFLOADS
    OFFLOADS = not args.no_offloads
    lab()
    try:
        for _ in range(args.runs):
            for pps in [*args.pps, *([None] if args.topspeed else [])]:
                print(run(args.capture, args.packets, pps), flush=True)
    finally:
        for ns in (NS_A, NS_B):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


if __name__ == "__main__":
    main()
