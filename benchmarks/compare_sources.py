"""Compare the Rust capture readers (examples/dump_frames.rs) with the Python ones, batch by
batch and frame by frame, over every file under the directories given (files that are not
captures included) and over extra multi-file merges.

    cargo build --example dump_frames
    /work/refvenv/bin/python benchmarks/compare_sources.py pcaps /work/shared/corpus/...

Prints one line per difference and a summary; exit 1 if any file differs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

from tcptrace.errors import CaptureError
from tcptrace.sources import SourceStats, read_captures

DUMP = os.environ.get("DUMP", "target/debug/examples/dump_frames")


def python_dump(paths: list[str]) -> str:
    out: list[str] = []
    stats = SourceStats()
    error = None
    try:
        for b in read_captures(paths, stats):
            out.append(f"B {len(b)} {len(b.data)}")
            data = b.data.tobytes()
            for ts, off, cap, wire, lt in zip(b.ts_ns.tolist(), b.offset.tolist(),
                                              b.caplen.tolist(), b.wirelen.tolist(),
                                              b.linktype.tolist(), strict=True):
                crc = zlib.crc32(data[off:off + cap])
                out.append(f"{ts} {off} {cap} {wire} {lt} {crc:08x}")
    except CaptureError as e:
        error = str(e)
    files = "[" + ", ".join('"' + f.replace("\\", "\\\\").replace('"', '\\"') + '"'
                            for f in stats.files) + "]"
    out.append(f"files {files}")
    out.append(f"frames {stats.frames}")
    for k in sorted(stats.skipped):
        if stats.skipped[k]:
            out.append(f"skipped {k} {stats.skipped[k]}")
    for w in stats.warnings:
        out.append(f"warning {w}")
    if error is not None:
        out.append(f"error {error}")
    return "\n".join(out) + "\n"


def rust_dump(paths: list[str]) -> str:
    return subprocess.run([DUMP, *paths], capture_output=True, check=True).stdout.decode(
        "utf-8", "replace")


def gzip_kept(py: str, rs: str) -> bool:
    """The one deliberate difference: where a gzip stream is damaged, Python loses the chunk
    the error is in and Rust keeps every record before it. Then Python's frames are a prefix
    of Rust's, each of Python's warnings is also Rust's, and no count is lower."""
    if "stopped reading: " not in py:
        return False
    pf = [x for x in py.splitlines() if x[:1].isdigit()]
    rf = [x for x in rs.splitlines() if x[:1].isdigit()]
    if rf[: len(pf)] != pf:
        return False
    rest = [x for x in py.splitlines()
            if not x[:1].isdigit() and not x.startswith(("B ", "frames"))]
    rlines = rs.splitlines()
    for line in rest:
        if line.startswith("skipped "):
            key = line.rsplit(" ", 1)[0] + " "
            have = [x for x in rlines if x.startswith(key)]
            if not have or int(have[0].rsplit(" ", 1)[1]) < int(line.rsplit(" ", 1)[1]):
                return False
        elif line not in rlines:
            return False
    return True


def main() -> int:
    runs: list[list[str]] = []
    for root in sys.argv[1:]:
        if os.path.isfile(root):
            runs.append([root])
            continue
        for d, _, files in sorted(os.walk(root)):
            runs.extend([os.path.join(d, f)] for f in sorted(files))
    extra = os.environ.get("MERGES", "")
    runs.extend(group.split(",") for group in extra.split(";") if group)
    bad = kept = 0
    for paths in runs:
        py, rs = python_dump(paths), rust_dump(paths)
        if py != rs and gzip_kept(py, rs):
            kept += 1
        elif py != rs:
            bad += 1
            pl, rl = py.splitlines(), rs.splitlines()
            first = next((i for i, (a, b) in enumerate(zip(pl, rl, strict=False)) if a != b),
                         min(len(pl), len(rl)))
            print(f"DIFF {paths}: line {first}: py={pl[first:first + 1]} rs={rl[first:first + 1]}")
    print(f"{len(runs)} runs, {bad} differ, {kept} keep more of a damaged gzip stream")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
