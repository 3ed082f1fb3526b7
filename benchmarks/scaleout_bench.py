"""Benchmark of `analyze --executor dask` against the single run (docs/scale-out.md).

    python benchmarks/scaleout_bench.py --workers 1 2 --scratch /tmp -f jsonl FILES...

For each worker count, in a fresh process: a LocalCluster of that many worker processes
(one thread each), the run through `tcptrace.scaleout.analyze` on it, and then:

- wall time of the run and of each phase (plan, map, reduce: first task start to last task
  end in Dask's task stream; finalize: the rest, in the client), and the tasks' summed
  compute time per phase;
- peak memory per worker, measured inside the workers: `ru_maxrss` of each worker process
  at the end (the peak over its tasks), and the largest RSS each one had while the map
  tasks ran and while the reduce tasks ran (sampled every 0.2 s from /proc/self/status);
- the client's peak RSS (it runs the finalize), and whether the output is the single
  run's bytes.

The single run is timed with `/usr/bin/time` (wall, max RSS). Timing only: never a test.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def _rss_kb() -> int:
    """The calling process's resident set size, in KB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _peak_kb() -> int:
    """The calling process's peak resident set size, in KB (Linux: ru_maxrss in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _phases(stream: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per phase (from the task keys `tcptrace-PHASE-...`): its first start, last stop and
    summed compute seconds."""
    phases: dict[str, dict[str, float]] = {}
    for task in stream:
        phase = str(task["key"]).split("-")[1]
        for span in task["startstops"]:
            if span["action"] != "compute":
                continue
            p = phases.setdefault(phase, {"start": span["start"], "stop": span["stop"],
                                          "compute_s": 0.0, "tasks": 0})
            p["start"] = min(p["start"], span["start"])
            p["stop"] = max(p["stop"], span["stop"])
            p["compute_s"] += span["stop"] - span["start"]
            p["tasks"] += 1
    return phases


def one(files: list[str], workers: int, fmt: str, out: str, scratch: str) -> dict[str, Any]:
    """One distributed run on a fresh LocalCluster of `workers` processes."""
    import distributed

    from tcptrace.scaleout import EngineOptions, analyze

    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client:
        samples: list[tuple[float, dict[str, int]]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                try:
                    samples.append((time.time(), client.run(_rss_kb)))
                except Exception:  # the cluster going away at the end
                    return
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        started = time.time()
        with distributed.get_task_stream(client=client) as stream:
            sampler.start()
            analyze(files, fmt, out, options=EngineOptions(),
                    scheduler=cluster.scheduler_address, scratch=scratch, quiet=True)
            wall = time.time() - started
        done.set()
        sampler.join()
        peaks = client.run(_peak_kb)
        phases = _phases(stream.data)
    per_phase_rss: dict[str, dict[str, int]] = {}
    for name, p in phases.items():
        inside = [rss for at, rss in samples if p["start"] <= at <= p["stop"]]
        per_phase_rss[name] = {w: max((r.get(w, 0) for r in inside), default=0)
                               for w in peaks}
    last = max((p["stop"] for p in phases.values()), default=started)
    return {
        "workers": workers,
        "wall_s": round(wall, 2),
        "phases": {name: {"wall_s": round(p["stop"] - p["start"], 2),
                          "compute_s": round(p["compute_s"], 2), "tasks": int(p["tasks"])}
                   for name, p in sorted(phases.items(), key=lambda kv: kv[1]["start"])},
        "finalize_s": round(started + wall - last, 2),
        "worker_peak_mb": sorted(round(kb / 1024) for kb in peaks.values()),
        "worker_rss_mb_by_phase": {name: sorted(round(kb / 1024) for kb in rss.values())
                                   for name, rss in per_phase_rss.items()},
        "client_peak_mb": round(_peak_kb() / 1024),
    }


def single(files: list[str], fmt: str, out: str) -> dict[str, Any]:
    """The single run, timed by /usr/bin/time."""
    tcptrace = Path(sys.executable).with_name("tcptrace")
    done = subprocess.run(["/usr/bin/time", "-f", "%e %M", str(tcptrace), "analyze", "-q",
                           "-f", fmt, "-o", out, *files],
                          capture_output=True, text=True, check=True)
    wall, rss_kb = done.stderr.strip().splitlines()[-1].split()
    return {"workers": 0, "wall_s": float(wall), "peak_mb": round(int(rss_kb) / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("-f", "--format", default="jsonl")
    parser.add_argument("--scratch", default=None, help="where the runs' files go")
    parser.add_argument("--no-single", action="store_true", help="skip the single run")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child's run
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        result = one(args.files, args.one, args.format, args.out, args.scratch)
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(dir=args.scratch) as work:
        results = []
        reference = os.path.join(work, f"single.{args.format}")
        if not args.no_single:
            results.append(single(args.files, args.format, reference))
            print(json.dumps(results[-1]), flush=True)
        for workers in args.workers:
            out = os.path.join(work, f"dask{workers}.{args.format}")
            child = subprocess.run(
                [sys.executable, __file__, "--one", str(workers), "-f", args.format,
                 "--out", out, "--scratch", work, *args.files],
                capture_output=True, text=True, check=True)
            result = json.loads(child.stdout.strip().splitlines()[-1])
            if not args.no_single:  # (in 8 kB reads: a child forked later inherits the
                # parent's peak RSS as its own ru_maxrss)
                result["identical"] = filecmp.cmp(out, reference, shallow=False)
            os.unlink(out)
            results.append(result)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
