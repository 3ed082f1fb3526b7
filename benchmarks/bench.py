#!/usr/bin/env python3
"""Benchmark ``tcptrace analyze`` against Ostermann's C tcptrace (and optionally tshark).

Issue "Speed and memory": on a 1,000,000-packet capture, ``tcptrace analyze --format jsonl``
should be at most as slow as the C ``tcptrace -n`` and stay under 250 MB peak RSS.

Subcommands (standard library only, Python >= 3.11):

``make``
    Record ``benchmarks/data/bench.pcap`` (about 1M packets, ~417 MB) with the shared script
    ``../shared/bench/make_bench_pcap.sh`` beside the repository (needs root). Skipped when the
    file exists, unless ``--force``. ``benchmarks/data/`` is git-ignored.
``run`` (the default)
    Warm the page cache, then time alternating rounds of: ours
    (``tcptrace analyze CAPTURE --format jsonl -o /dev/null``, the venv's entry point), the C
    ``tcptrace -n CAPTURE >/dev/null``, ``tcpdump -r CAPTURE -w /dev/null`` (the floor) and,
    with ``--with-tshark``, ``tshark -q -z conv,tcp``.
    Every child is pinned to one CPU (``--cpu``). Wall time is the median over rounds; peak RSS
    is the largest ``ru_maxrss`` that ``os.wait4`` reports for the child. Prints a table and,
    with ``--json FILE``, writes the results.
``profile``
    Run our analysis under cProfile (``benchmarks/data/profile.out``) and print the top
    functions by tottime and by cumtime.
``check``
    Correctness signals: connections we report (jsonl lines), distinct 4-tuples among them,
    outcomes, and the connection / conversation counts of the C tcptrace and tshark.

Examples::

    sudo python3 benchmarks/bench.py make
    python3 benchmarks/bench.py run --rounds 3 --with-tshark --tshark-rounds 1 \\
        --json benchmarks/data/results.json
    python3 benchmarks/bench.py profile
    python3 benchmarks/bench.py check
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import pstats
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "benchmarks" / "data"
DEFAULT_CAPTURE = DATA / "bench.pcap"
SHARED_SCRIPT = REPO.parent / "shared" / "bench" / "make_bench_pcap.sh"
VENV_BIN = REPO / ".venv" / "bin"
OUR_CLI = VENV_BIN / "tcptrace"
VENV_PYTHON = VENV_BIN / "python"
C_TCPTRACE = Path("/usr/bin/tcptrace")  # NOT the venv's `tcptrace`, which is ours
PROFILE_OUT = DATA / "profile.out"
SUBCOMMANDS = ("make", "run", "profile", "check")

# Keep numeric libraries single-threaded, and the locale out of the way.
CHILD_ENV_OVERRIDES = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "LC_ALL": "C.UTF-8",
}


# --------------------------------------------------------------------------- helpers


@dataclass
class Sample:
    """One timed run of one tool."""

    wall_s: float
    maxrss_mb: float
    returncode: int


@dataclass
class ToolResult:
    """All runs of one tool, and their summary."""

    name: str
    argv: list[str]
    samples: list[Sample] = field(default_factory=list)
    stderr_tail: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.samples) and all(s.returncode == 0 for s in self.samples)

    @property
    def median_s(self) -> float:
        return statistics.median(s.wall_s for s in self.samples)

    @property
    def peak_rss_mb(self) -> float:
        return max(s.maxrss_mb for s in self.samples)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(CHILD_ENV_OVERRIDES)
    # Make sure the venv comes first so a bare `python` is the project's one.
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_measured(argv: list[str], cpu: int | None, stdout_path: str = os.devnull,
                 cwd: Path | None = None) -> tuple[Sample, str]:
    """Run ``argv`` once; return wall time, peak RSS (from ``os.wait4``) and the stderr tail."""

    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    with open(stdout_path, "wb") as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=child_env(), preexec_fn=pin, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped by wait4
        err.seek(0)
        tail = err.read()[-8000:].decode("utf-8", "replace")
    # Linux reports ru_maxrss in KiB.
    return Sample(wall, usage.ru_maxrss / 1024.0, proc.returncode), tail


def warm_cache(path: Path) -> float:
    """``cat FILE > /dev/null``: read the capture once so every tool finds it in the page cache."""
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(1 << 22):
            pass
    return time.perf_counter() - t0


PCAP_MAGICS: dict[bytes, str] = {
    b"\xd4\xc3\xb2\xa1": "<",  # microsecond, little-endian
    b"\xa1\xb2\xc3\xd4": ">",
    b"\x4d\x3c\xb2\xa1": "<",  # nanosecond
    b"\xa1\xb2\x3c\x4d": ">",
}


def count_packets(path: Path) -> int:
    """Count the records of a classic pcap with a small struct loop (capinfos for anything else)."""
    with open(path, "rb") as f:
        magic = f.read(4)
        endian = PCAP_MAGICS.get(magic)
        if endian is None:
            return count_packets_capinfos(path)
        f.seek(24)
        rec = struct.Struct(endian + "IIII")
        n = 0
        while True:
            hdr = f.read(16)
            if len(hdr) < 16:
                return n
            _, _, incl_len, _ = rec.unpack(hdr)
            f.seek(incl_len, os.SEEK_CUR)
            n += 1


def count_packets_capinfos(path: Path) -> int:
    out = subprocess.run(["capinfos", "-M", "-c", str(path)], check=True,
                         capture_output=True, text=True).stdout
    m = re.search(r"Number of packets:\s*(\d+)", out)
    if not m:
        raise SystemExit(f"bench: cannot read the packet count of {path} from capinfos")
    return int(m.group(1))


def need_capture(path: Path) -> None:
    if not path.is_file():
        raise SystemExit(f"bench: no capture at {path}; run `python3 benchmarks/bench.py make` "
                         "first (as root) or pass --capture PATH")


def ours_argv(capture: Path, output: str = os.devnull) -> list[str]:
    if not OUR_CLI.exists():
        raise SystemExit(f"bench: {OUR_CLI} not found; create the venv (pip install -e .)")
    return [str(OUR_CLI), "analyze", str(capture), "--format", "jsonl", "-o", output]


def tcpdump_argv(capture: Path) -> list[str]:
    return [str(shutil.which("tcpdump")), "-r", str(capture), "-w", os.devnull]


def c_argv(capture: Path) -> list[str]:
    if not C_TCPTRACE.exists():
        raise SystemExit(f"bench: {C_TCPTRACE} not found (apt-get install tcptrace)")
    return [str(C_TCPTRACE), "-n", str(capture)]


def tshark_argv(capture: Path) -> list[str]:
    exe = shutil.which("tshark")
    if exe is None:
        raise SystemExit("bench: tshark not found (apt-get install tshark)")
    return [exe, "-q", "-z", "conv,tcp", "-r", str(capture)]


def machine_info() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    py = "?"
    if VENV_PYTHON.exists():
        py = subprocess.run([str(VENV_PYTHON), "-c", "import sys; print(sys.version.split()[0])"],
                            capture_output=True, text=True).stdout.strip()
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "ram": mem, "venv_python": py,
            "kernel": platform.release()}


def git_state() -> str:
    """HEAD commit and whether tcptrace/ has uncommitted changes (the measured code)."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "tcptrace"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + (" + uncommitted changes in tcptrace/" if dirty else "")


# --------------------------------------------------------------------------- make


def cmd_make(args: argparse.Namespace) -> int:
    out: Path = args.capture
    if out.exists() and not args.force:
        print(f"bench: {out} exists ({out.stat().st_size / 1e6:.0f} MB); use --force to re-record")
        return 0
    if not SHARED_SCRIPT.is_file():
        print(f"bench: the capture script is not at {SHARED_SCRIPT}.\n"
              "It lives beside the repository in ../shared/bench/make_bench_pcap.sh; copy it there "
              "or record any ~1M-packet capture and pass it with --capture PATH.", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("bench: make_bench_pcap.sh needs root (network namespaces, tcpdump)", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    env = dict(os.environ)
    env["MAKE_10X"] = "0"  # never the 4.2 GB copy from here
    print(f"bench: recording {out} with {SHARED_SCRIPT} (1-2 minutes)", flush=True)
    rc = subprocess.run(["bash", str(SHARED_SCRIPT), str(tmp)], env=env).returncode
    if rc != 0:
        print(f"bench: make_bench_pcap.sh failed (exit {rc})", file=sys.stderr)
        tmp.unlink(missing_ok=True)
        return rc
    tmp.replace(out)
    print(f"bench: wrote {out}: {count_packets(out):,} packets, {out.stat().st_size / 1e6:.0f} MB")
    return 0


# --------------------------------------------------------------------------- run


def compile_package() -> None:
    """Byte-compile the package as `pip install` does for a user: an editable install
    under PYTHONDONTWRITEBYTECODE=1 (as the development machines set it) would otherwise
    compile every module again on each timed run (~10 ms, not the product's cost)."""
    subprocess.run([str(VENV_PYTHON), "-m", "compileall", "-q", str(REPO / "tcptrace")],
                   check=True, env={k: v for k, v in os.environ.items()
                                    if k != "PYTHONDONTWRITEBYTECODE"})


def cmd_run(args: argparse.Namespace) -> int:
    capture: Path = args.capture
    need_capture(capture)
    compile_package()
    cpu: int | None = None if args.no_pin else args.cpu
    tools = [ToolResult("ours (tcptrace analyze --format jsonl)", ours_argv(capture)),
             ToolResult("C tcptrace -n", c_argv(capture))]
    if shutil.which("tcpdump"):  # the floor: reading the file at all
        tools.append(ToolResult("tcpdump -r FILE -w /dev/null", tcpdump_argv(capture)))
    if args.with_zeek:
        tools.append(ToolResult("ours, every analysis (--zeek --verify-checksums)",
                                [*ours_argv(capture), "--zeek", "--verify-checksums"]))
    if args.with_jobs:
        tools.append(ToolResult(f"ours, --jobs {args.with_jobs}",
                                [*ours_argv(capture), "--jobs", str(args.with_jobs)]))
    tshark = ToolResult("tshark -q -z conv,tcp", tshark_argv(capture)) if args.with_tshark else None
    tshark_rounds = args.tshark_rounds if args.tshark_rounds is not None else args.rounds

    print(f"bench: counting packets of {capture} ...", flush=True)
    packets = count_packets(capture)
    cat_s = min(warm_cache(capture) for _ in range(2))
    print(f"bench: {packets:,} packets, {capture.stat().st_size / 1e6:.0f} MB, "
          f"cached read {cat_s:.3f} s; {args.rounds} rounds, cpu {cpu}", flush=True)

    for rnd in range(1, args.rounds + 1):
        order = tools + ([tshark] if tshark is not None and rnd <= tshark_rounds else [])
        if rnd % 2 == 0:
            order = order[::-1]  # alternate the order, the machine is noisy
        for tool in order:
            warm_cache(capture)
            sample, tail = run_measured(tool.argv, cpu)
            tool.samples.append(sample)
            if sample.returncode != 0:
                tool.stderr_tail = tail
            print(f"  round {rnd}: {tool.name:<40} {sample.wall_s:8.2f} s "
                  f"{sample.maxrss_mb:8.0f} MB  exit {sample.returncode}", flush=True)
            if sample.returncode != 0:
                print("    stderr (tail):\n" + "\n".join("    | " + ln for ln in tail.splitlines()),
                      flush=True)

    results = tools + ([tshark] if tshark is not None else [])
    c_median = tools[1].median_s
    rows = []
    for tool in results:
        med = tool.median_s
        rows.append({
            "tool": tool.name,
            "argv": tool.argv,
            "runs": len(tool.samples),
            "ok": tool.ok,
            "median_s": med,
            "min_s": min(s.wall_s for s in tool.samples),
            "max_s": max(s.wall_s for s in tool.samples),
            "packets_per_s": round(packets / med),
            "ratio_to_c": round(med / c_median, 2),
            "peak_rss_mb": round(tool.peak_rss_mb, 1),
            "samples": [asdict(s) for s in tool.samples],
            "stderr_tail": tool.stderr_tail,
        })
    print()
    print_table(rows)
    failed = [r for r in rows if not r["ok"]]
    for r in failed:
        print(f"\nbench: {r['tool']} exited non-zero; stderr tail:\n{r['stderr_tail']}")
    if args.json:
        doc = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "capture": str(capture),
            "capture_bytes": capture.stat().st_size,
            "packets": packets,
            "cached_read_s": round(cat_s, 3),
            "rounds": args.rounds,
            "cpu_pinned": cpu,
            "machine": machine_info(),
            "git": git_state(),
            "results": rows,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"\nbench: wrote {args.json}")
    return 1 if failed else 0


def print_table(rows: list[dict[str, object]]) -> None:
    head = ("tool", "runs", "median s", "packets/s", "x C", "peak RSS MB")
    body = [(str(r["tool"]) + ("" if r["ok"] else " [FAILED]"), str(r["runs"]),
             f"{r['median_s']:.2f}", f"{r['packets_per_s']:,}", f"{r['ratio_to_c']:.2f}",
             f"{r['peak_rss_mb']:.0f}") for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for b in body:
        cells = [b[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(b[1:], widths[1:], strict=True)]
        print("| " + " | ".join(cells) + " |")


# --------------------------------------------------------------------------- profile


def cmd_profile(args: argparse.Namespace) -> int:
    capture: Path = args.capture
    need_capture(capture)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    if not VENV_PYTHON.exists():
        raise SystemExit(f"bench: {VENV_PYTHON} not found")
    # `python -m tcptrace.cli` runs main() through its `if __name__ == "__main__"` guard.
    argv = [str(VENV_PYTHON), "-m", "cProfile", "-o", str(out), "-m", "tcptrace.cli",
            "analyze", str(capture), "--format", "jsonl", "-o", os.devnull]
    warm_cache(capture)
    print("bench: " + " ".join(argv), flush=True)
    sample, tail = run_measured(argv, None if args.no_pin else args.cpu, cwd=REPO)
    print(f"bench: profiled run {sample.wall_s:.1f} s, {sample.maxrss_mb:.0f} MB, "
          f"exit {sample.returncode}")
    if sample.returncode != 0 or not out.exists():
        print(f"bench: profiled run failed; stderr tail:\n{tail}", file=sys.stderr)
        return 1
    for key in ("tottime", "cumtime"):
        print(f"\n==== top {args.top} by {key} ====")
        stats = pstats.Stats(str(out), stream=sys.stdout)
        stats.strip_dirs().sort_stats(key).print_stats(args.top)
    return 0


# --------------------------------------------------------------------------- check


def cmd_check(args: argparse.Namespace) -> int:
    capture: Path = args.capture
    need_capture(capture)
    report: dict[str, object] = {"capture": str(capture)}
    DATA.mkdir(parents=True, exist_ok=True)
    jsonl = DATA / "bench.jsonl"
    sample, tail = run_measured(ours_argv(capture, str(jsonl)), None)
    report["ours_exit"] = sample.returncode
    if sample.returncode != 0:
        print(f"bench: ours failed (exit {sample.returncode}):\n{tail}", file=sys.stderr)
    if tail.strip():
        report["ours_stderr"] = tail.strip()
    conns = 0
    tuples: set[tuple[str, int, str, int]] = set()
    outcomes: collections.Counter[str] = collections.Counter()
    with open(jsonl, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            if "client" not in rec:  # a trailer/summary line, if the format has one
                continue
            conns += 1
            c, s = rec["client"], rec["server"]
            a, b = (c["ip"], c["port"]), (s["ip"], s["port"])
            lo, hi = sorted([a, b])
            tuples.add((lo[0], lo[1], hi[0], hi[1]))
            outcomes[str(rec.get("outcome"))] += 1
    report["ours_connections"] = conns
    report["ours_distinct_4tuples"] = len(tuples)
    report["ours_outcomes"] = dict(outcomes.most_common())

    c_out = subprocess.run(c_argv(capture), capture_output=True, text=True, env=child_env())
    report["c_tcptrace_connections"] = sum(
        1 for ln in c_out.stdout.splitlines() if re.match(r"\s*\d+: .* - .*\(\w+2\w+\)", ln))
    if not args.no_tshark:
        t_out = subprocess.run(tshark_argv(capture), capture_output=True, text=True,
                               env=child_env())
        # conversation rows look like "10.77.0.2:40000 <-> 10.77.0.1:80  ..."
        rows = [ln for ln in t_out.stdout.splitlines() if "<->" in ln]
        report["tshark_conversations"] = len(rows)
        report["tshark_distinct_4tuples"] = len({tuple(sorted(ln.split()[0:3:2])) for ln in rows})
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if sample.returncode == 0 else 1


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE,
                        help=f"capture to use (default {DEFAULT_CAPTURE.relative_to(REPO)})")
    pin = argparse.ArgumentParser(add_help=False)
    pin.add_argument("--cpu", type=int, default=1,
                     help="pin each measured child to this CPU (default 1)")
    pin.add_argument("--no-pin", action="store_true", help="do not pin children to one CPU")

    sub = p.add_subparsers(dest="command")
    m = sub.add_parser("make", parents=[common], help="record the benchmark capture")
    m.add_argument("--force", action="store_true", help="re-record even if the file exists")
    m.set_defaults(func=cmd_make)

    r = sub.add_parser("run", parents=[common, pin], help="time ours vs C tcptrace (default)")
    r.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    r.add_argument("--with-tshark", action="store_true", help="also time tshark -z conv,tcp")
    r.add_argument("--with-zeek", action="store_true",
                   help="also time ours with every analysis on (--zeek --verify-checksums)")
    r.add_argument("--with-jobs", type=int, metavar="N",
                   help="also time ours with --jobs N (shard threads)")
    r.add_argument("--tshark-rounds", type=int, default=None,
                   help="rounds that include tshark (default: all; it takes ~20 s a run)")
    r.add_argument("--json", metavar="FILE", help="write the results as JSON")
    r.set_defaults(func=cmd_run)

    pr = sub.add_parser("profile", parents=[common, pin], help="cProfile our analysis")
    pr.add_argument("--out", type=Path, default=PROFILE_OUT, help="profile output file")
    pr.add_argument("--top", type=int, default=25, help="rows to print (default 25)")
    pr.set_defaults(func=cmd_profile)

    c = sub.add_parser("check", parents=[common], help="connection-count cross-check")
    c.add_argument("--no-tshark", action="store_true", help="skip the tshark count")
    c.add_argument("--json", metavar="FILE", help="write the counts as JSON")
    c.set_defaults(func=cmd_check)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not set(SUBCOMMANDS) & set(argv) and not {"-h", "--help"} & set(argv):
        argv = ["run", *argv]  # `run` is the default subcommand
    args = parser.parse_args(argv)
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
