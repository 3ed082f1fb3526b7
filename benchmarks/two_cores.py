"""What two cores give a split run at most: two single-thread runs at once, one pinned to
each core, against one run alone (docs/performance.md, `--jobs`).

    python benchmarks/two_cores.py [--rounds 7] [CAPTURE]

If the two runs at once each take as long as one alone, the cores share nothing this
workload feels (caches, memory bandwidth, a host's hyper-threads) and the ceiling of
`--jobs 2` is 2x less what the split itself costs; if they slow each other, the ceiling is
2 x alone / together whatever the split does. Each round runs: alone on CPU 1, two at
once on CPUs 0 and 1, alone on CPU 0. Timing only: never a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = ROOT / ".venv" / "bin" / "tcptrace"


def wall_times(command: list[str], cpus: list[int]) -> list[float]:
    """Start `command` once per CPU in `cpus` (pinned), all at once: each one's wall time."""
    start = time.perf_counter()
    children = [subprocess.Popen(["taskset", "-c", str(cpu), *command]) for cpu in cpus]
    ends = []
    for child in children:
        _, status, _ = os.wait4(child.pid, 0)
        if status:
            raise SystemExit(f"{command} failed (wait status {status})")
        ends.append(time.perf_counter() - start)
    return ends


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("capture", nargs="?", default=str(ROOT / "benchmarks" / "data" /
                                                          "bench.pcap"))
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    command = [str(OURS), "analyze", "-q", "-f", "jsonl", "-o", os.devnull, args.capture]
    alone: list[float] = []
    together: list[float] = []
    for _ in range(args.rounds):
        alone += wall_times(command, [1])
        together += wall_times(command, [0, 1])
        alone += wall_times(command, [0])
    one, two = statistics.median(alone), statistics.median(together)
    print(f"alone: median {one:.3f} s ({len(alone)} runs)")
    print(f"two at once: median {two:.3f} s each ({len(together)} runs)")
    print(f"ceiling of a split over the two cores: {2 * one / two:.2f}x")


if __name__ == "__main__":
    main()
