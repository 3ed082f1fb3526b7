"""Peak memory of the distributed run's finalize alone (docs/scale-out.md, "The client's
memory"). In two steps, so that the finalize's process is measured alone (a child forked by
the process that ran the reduces would inherit its peak RSS):

    python benchmarks/finalize_rss.py prepare WORK FILES...      # maps, clock, reduces
    /usr/bin/time -f "%e s %M KB" python benchmarks/finalize_rss.py finalize WORK OUT FILES...

`prepare` runs the maps, the clock and the reduces in this process through
`tcptrace._native` (no Dask; `--partitions`, `-f`), into the directory WORK; `finalize`
runs the client's step over it, writes OUT and prints its time and output size. The files
are taken in the order given (list a rotation in time order). Timing and memory only:
never a test.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def _keys(files: list[str]) -> list[str]:
    return [f"f{i:06d}" for i in range(len(files))]


def prepare(files: list[str], work: str, partitions: int, fmt: str) -> None:
    """Map every file, run the clock and every reduce."""
    from tcptrace import _native

    os.makedirs(work, exist_ok=True)
    chunk = _native.scale_chunk(len(files))
    keys = _keys(files)
    for path, key in zip(files, keys, strict=True):
        _native.scale_map(os.path.abspath(path), path, key, work, partitions, chunk)
    _native.scale_clock(work, keys)
    for p in range(partitions):
        _native.scale_reduce(work, keys, p, fmt)


def finalize(files: list[str], work: str, out: str, partitions: int, fmt: str) -> None:
    """The client's step alone; prints its time and the output's size as one JSON line."""
    from tcptrace import _native
    from tcptrace.native import finish_document

    start = time.perf_counter()
    run = _native.scale_finalize(work, _keys(files), partitions, fmt, out)
    finish_document(run, fmt)
    print(json.dumps({"finalize_s": round(time.perf_counter() - start, 2),
                      "output_mb": round(os.path.getsize(out) / 2**20)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("-f", "--format", default="jsonl")
    steps = parser.add_subparsers(dest="step", required=True)
    first = steps.add_parser("prepare")
    first.add_argument("work")
    first.add_argument("files", nargs="+")
    last = steps.add_parser("finalize")
    last.add_argument("work")
    last.add_argument("out")
    last.add_argument("files", nargs="+")
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.files, args.work, args.partitions, args.format)
    else:
        finalize(args.files, args.work, args.out, args.partitions, args.format)


if __name__ == "__main__":
    main()
