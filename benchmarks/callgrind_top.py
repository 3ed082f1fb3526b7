#!/usr/bin/env python3
"""Top functions of a callgrind profile by instruction count, inlined code folded in.

``callgrind_annotate`` lists a function once per source file its inlined code came from
(``core/slice/iter.rs:...::HttpDirection::head``, ``src/analyzers/http.rs:...::head``, ...).
This sums those lines per function name, so each function's own (exclusive) instructions
appear once. Standard library only; needs ``callgrind_annotate`` (valgrind) on PATH.

Usage::

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \\
        .venv/bin/tcptrace analyze benchmarks/data/bench.pcap --format jsonl -o /dev/null
    python3 benchmarks/callgrind_top.py /tmp/cg.out --top 20
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess

LINE = re.compile(r"\s*([\d,]+)\s+\([\s\d.]+%\)\s+(.*)")


def exclusive_by_function(path: str) -> tuple[int, collections.Counter[str]]:
    """(program total, instructions per function name) of a callgrind output file."""
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=100", "--auto=no", path],
        capture_output=True, text=True, check=True).stdout
    total = 0
    per_function: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        match = LINE.match(line)
        if not match:
            continue
        count = int(match.group(1).replace(",", ""))
        rest = re.sub(r"\s*\[[^\]]*\]$", "", match.group(2))  # the object file
        if "PROGRAM TOTALS" in rest:
            total = count
            continue
        function = rest.split(":", 1)[1] if ":" in rest else rest
        per_function[function] += count
    return total, per_function


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", help="a callgrind.out file")
    parser.add_argument("--top", type=int, default=20, help="rows to print (default 20)")
    args = parser.parse_args()
    total, per_function = exclusive_by_function(args.profile)
    print(f"| instructions | share | function |\n|---:|---:|---|\n"
          f"| {total:,} | 100 % | program total |")
    for function, count in per_function.most_common(args.top):
        print(f"| {count:,} | {100 * count / total:.1f} % | `{function}` |")


if __name__ == "__main__":
    main()
