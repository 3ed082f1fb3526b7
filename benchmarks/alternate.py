"""Commands timed in alternation: wall time and what the kernel charged each run (user and
system CPU, page faults, context switches), medians over the rounds.

    python benchmarks/alternate.py [--rounds 11] LABEL COMMAND [LABEL COMMAND ...]

e.g. `alternate.py single "tcptrace analyze -f jsonl bench.pcap" jobs2 "tcptrace analyze -f
jsonl --jobs 2 bench.pcap"`. Each round runs every command once, in the order given, so
that a shared host's slow minutes fall on all of them alike (docs/performance.md). COMMAND
goes to the shell; its stdout is discarded. Timing only: never a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from typing import NamedTuple


class Sample(NamedTuple):
    wall: float
    user: float
    system: float
    faults: int
    switches: int


def timed(command: str) -> Sample:
    """One run of `command` (through the shell, stdout discarded)."""
    start = time.perf_counter()
    child = subprocess.Popen(command, shell=True, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if status:
        raise SystemExit(f"{command!r} failed (wait status {status})")
    return Sample(wall, usage.ru_utime, usage.ru_stime, usage.ru_minflt,
                  usage.ru_nvcsw + usage.ru_nivcsw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("pairs", nargs="+", metavar="LABEL COMMAND")
    args = parser.parse_args()
    if len(args.pairs) % 2:
        parser.error("give LABEL COMMAND pairs")
    pairs = list(zip(args.pairs[::2], args.pairs[1::2], strict=True))
    samples: dict[str, list[Sample]] = {label: [] for label, _ in pairs}
    for _ in range(args.rounds):
        for label, command in pairs:
            samples[label].append(timed(command))
    for label, runs in samples.items():
        def median(field: str, runs: list[Sample] = runs) -> float:
            return statistics.median(getattr(run, field) for run in runs)
        print(f"{label:12s} wall {median('wall'):.3f} s  user {median('user'):.3f} s  "
              f"system {median('system'):.3f} s  CPU "
              f"{median('user') + median('system'):.3f} s  faults {median('faults'):.0f}  "
              f"switches {median('switches'):.0f}")


if __name__ == "__main__":
    main()
