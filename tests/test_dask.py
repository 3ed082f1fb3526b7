"""`analyze --executor dask` (issue 20, step 1): a map task per file, a reduce task per flow
partition, on a Dask LocalCluster of 2 worker processes. The records must be the bytes a
single run over the same files writes (docs/scale-out.md: what is guaranteed), in every
format the executor takes, whatever the number of partitions; a rotation's files given as a
pattern are taken in time order; connections cut by the rotation are stitched.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path

import pytest
from conftest import BENCH, CRAFTED, LINUX, PCAPS, captures, needs_dask, pcap_slice, run_cli

BUNDLED = captures(PCAPS)
"""Every bundled capture, merged by time in one run (pcap, pcapng, gzip, damaged ones,
traffic in tunnels)."""
FEW = [PCAPS / "crafted/port_reuse.pcap", PCAPS / "crafted/refused_then_ok.pcap",
       PCAPS / "transfer/download.pcap", PCAPS / "crafted/ref_with_noise.pcap"]



def _without_clock(data: bytes) -> bytes:
    """A conn.log without its #open/#close lines (the wall clock when it was written)."""
    return b"".join(line for line in data.splitlines(keepends=True)
                    if not line.startswith((b"#open\t", b"#close\t")))


def _analyze(capsys: pytest.CaptureFixture[str], out: Path, fmt: str, paths: list[str],
             *extra: str) -> tuple[int, bytes, str]:
    status, stdout, stderr = run_cli(capsys, "analyze", *paths, "-f", fmt, "-o", str(out),
                                     *extra)
    written = out.read_bytes() if out.exists() else b""
    return status, _without_clock(written) if fmt == "zeek" else written, stdout + stderr


def _single_and_dask(capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str,
                     paths: list[str], dask_paths: list[str] | None = None,
                     extra: tuple[str, ...] = (), dask_extra: tuple[str, ...] = ()
                     ) -> tuple[bytes, bytes, str]:
    single = _analyze(capsys, tmp_path / f"single.{fmt}", fmt, paths, "-q", *extra)
    assert single[0] == 0, single[2]
    dask = _analyze(capsys, tmp_path / f"dask.{fmt}", fmt, dask_paths or paths,
                    "--executor", "dask", *dask_extra, *extra)
    assert dask[0] == 0, dask[2]
    return single[1], dask[1], dask[2]


def _messages(output: str) -> list[str]:
    """stderr without the executor's own progress lines."""
    return [line for line in output.splitlines() if not line.startswith("tcptrace: dask:")]


@needs_dask
@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "table", "zeek"])
def test_bundled_captures_in_every_format(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          scheduler: str, fmt: str) -> None:
    paths = [str(p) for p in BUNDLED]
    single, dask, stderr = _single_and_dask(capsys, tmp_path, fmt, paths,
                                            dask_extra=("--scheduler", scheduler))
    assert len(single.splitlines()) > 20
    assert dask == single
    # the warnings of the single run (ref_truncated.pcap's), once, and the progress lines
    single_err = _analyze(capsys, tmp_path / "again", fmt, paths)[2]
    assert _messages(stderr) == _messages(single_err)
    assert "truncated_record" in stderr
    assert f"tcptrace: dask: map {len(paths)}/{len(paths)} tasks done" in stderr
    assert "tcptrace: dask: clock 1/1 tasks done" in stderr
    assert "tcptrace: dask: reduce 8/8 tasks done" in stderr  # 4 partitions per worker


TUNNELLED = [CRAFTED / f"ref_{name}.pcap" for name in (
    "erspan1", "erspan2", "erspan3", "erspan_vlan", "geneve", "geneve_in_vxlan", "gre",
    "gre_teb", "gtp", "ip4in4", "ip4in6", "ip6in4", "teredo", "vxlan")]
"""The crafted captures whose connection comes through a tunnel."""


@needs_dask
def test_tunnelled_traffic(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                           scheduler: str) -> None:
    # every map numbers the paths of its file; the reduce numbers them for the run as the
    # single run's decoder does, and the records carry their encapsulation
    paths = [str(p) for p in TUNNELLED]
    single, dask, _ = _single_and_dask(capsys, tmp_path, "jsonl", paths,
                                       dask_extra=("--scheduler", scheduler))
    assert dask == single
    records = [json.loads(line) for line in dask.splitlines()]
    # 13: erspan2 and erspan_vlan carry one connection in one tunnel (session 100)
    assert len(records) == 13
    assert records[-1]["encapsulation"] == [{
        "type": "vxlan", "vni": 42,
        "outer": {"src": "192.0.2.1", "dst": "192.0.2.2", "sport": 51000, "dport": 4789}}]
    # the table shows its tunnel column
    single, dask, _ = _single_and_dask(capsys, tmp_path, "table", paths,
                                       dask_extra=("--scheduler", scheduler))
    assert dask == single
    lines = dask.decode().splitlines()
    assert lines[0].split()[:6] == ["id", "start", "dur", "client", "server", "tunnel"]
    assert sum(" vxlan:42>geneve:7 " in line for line in lines) == 1


@needs_dask
def test_zeek_view_and_checksums(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                 scheduler: str) -> None:
    paths = [str(p) for p in BUNDLED]
    for extra in (("--zeek",), ("--verify-checksums",), ("--filter", "tcp port 80"),
                  ("--zeek", "--verify-checksums")):
        single, dask, _ = _single_and_dask(capsys, tmp_path, "jsonl", paths, extra=extra,
                                           dask_extra=("--scheduler", scheduler))
        assert dask == single, extra
    single, dask, _ = _single_and_dask(capsys, tmp_path, "zeek", paths,
                                       extra=("--verify-checksums",),
                                       dask_extra=("--scheduler", scheduler))
    assert dask == single


@needs_dask
def test_the_checksum_ledger(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch, scheduler: str) -> None:
    """--zeek --verify-checksums: each batch's bad-checksum segments go to the ledger before
    its first good one is fed (a merge step's, over several files), in its order; also with
    a file mapped in parts."""
    from random_traffic import random_capture
    from test_jobs import _late_bad_checksum_capture

    late = tmp_path / "late_bad.pcap"
    late.write_bytes(_late_bad_checksum_capture())
    extra = ("--zeek", "--verify-checksums")
    dask_extra = ("--scheduler", scheduler, "--partitions", "3")
    single, dask, _ = _single_and_dask(capsys, tmp_path, "jsonl", [str(late)], extra=extra,
                                       dask_extra=dask_extra)
    assert dask == single
    # A, swept at the end of the first slice, takes the bad SYN of B's batch
    assert [(r["id"], r["previous_id"], r["zeek"]["history"])
            for r in map(json.loads, dask.splitlines())] == [
        (1, None, "ShARC"), (2, None, "ShD"), (3, 1, "ShA")]
    randoms = []
    for seed in range(30):  # wrong checksums, port reuse, every gap; merged by time
        randoms.append(tmp_path / f"random{seed}.pcap")
        randoms[-1].write_bytes(random_capture(seed))
    paths = [str(p) for p in randoms]
    single, dask, _ = _single_and_dask(capsys, tmp_path, "jsonl", paths, extra=extra,
                                       dask_extra=dask_extra)
    assert dask == single
    histories = [json.loads(line)["zeek"]["history"] for line in single.splitlines()]
    assert sum(any(c in h for c in "Cc") for h in histories) > 10  # the ledger's letters
    # in parts: the late file in parts of 200 kB, merged with the random ones
    monkeypatch.setenv("TCPTRACE_DASK_PART_BYTES", "200000")
    for files in ([str(late)], [str(late), *paths[:10]]):
        single, dask, stderr = _single_and_dask(capsys, tmp_path, "jsonl", files, extra=extra,
                                                dask_extra=dask_extra)
        assert dask == single
        assert "tcptrace: dask: plan 1/1 tasks done" in stderr


def _classic(path: Path) -> tuple[bytes, list[tuple[int, bytes]]] | None:
    """A little-endian microsecond Ethernet pcap's header and (time in us, record body)."""
    raw = path.read_bytes()
    if raw[:4] != b"\xd4\xc3\xb2\xa1" or struct.unpack("<I", raw[20:24])[0] != 1:
        return None
    records, at = [], 24
    while at + 16 <= len(raw):
        sec, usec, incl, _orig = struct.unpack("<IIII", raw[at:at + 16])
        records.append((sec * 1_000_000 + usec, raw[at + 8:at + 16 + incl]))
        at += 16 + incl
    return raw[:24], records


def _interleaved(target: Path) -> Path:
    """Every bundled Ethernet capture at once, each started 20 ms after the previous one:
    a few hundred packets of dozens of overlapping connections."""
    header, merged = b"", []
    sources = [p for p in sorted(LINUX.glob("*.pcap")) + sorted(CRAFTED.glob("*.pcap"))
               if not p.name.startswith("ref_truncated")]
    for k, path in enumerate(sources):
        parsed = _classic(path)
        if parsed is None or not parsed[1]:
            continue
        header = parsed[0]
        start = parsed[1][0][0]
        merged.extend((1_700_000_000_000_000 + 20_000 * k + (t - start), k, i, body)
                      for i, (t, body) in enumerate(parsed[1]))
    merged.sort()
    with target.open("wb") as out:
        out.write(header)
        for t, _, _, body in merged:
            out.write(struct.pack("<II", t // 1_000_000, t % 1_000_000) + body)
    return target


def _rotate(source: Path, per_file: int, directory: Path, names: list[str] | None = None
            ) -> list[Path]:
    """`source` cut into files of `per_file` records (as `editcap -c`), named `names`."""
    parsed = _classic(source)
    assert parsed is not None
    header, records = parsed
    directory.mkdir(exist_ok=True)
    files = []
    for n, at in enumerate(range(0, len(records), per_file)):
        path = directory / (names[n] if names else f"rot_{n:03d}.pcap")
        with path.open("wb") as out:
            out.write(header)
            for t, body in records[at:at + per_file]:
                out.write(struct.pack("<II", t // 1_000_000, t % 1_000_000) + body)
        files.append(path)
    return files


def _by_id(jsonl: bytes) -> dict[int, dict[str, object]]:
    records = [json.loads(line) for line in jsonl.splitlines()]
    return {r["id"]: r for r in records}


@needs_dask
def test_a_rotation_is_stitched(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                scheduler: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # relative names, from a directory that is not the workers'
    monkeypatch.chdir(tmp_path)
    whole = _interleaved(tmp_path / "whole.pcap")
    # the files' names run against their time: a pattern takes them in time order
    count = -(-len(_classic(whole)[1]) // 40)  # type: ignore[index]
    names = [f"z{count - n:03d}.pcap" for n in range(count)]
    rotation = _rotate(whole, 40, tmp_path / "rot", names)
    assert len(rotation) > 5
    in_time_order = [str(p.relative_to(tmp_path)) for p in rotation]
    single, dask, _ = _single_and_dask(
        capsys, tmp_path, "jsonl", in_time_order, dask_paths=["rot/z*.pcap"],
        dask_extra=("--scheduler", scheduler, "--partitions", "7"))
    assert dask == single
    # connections cut by the rotation: the same records as one file gives (its batches
    # end elsewhere, so the emission order may differ: compared by id)
    whole_run = _analyze(capsys, tmp_path / "whole.jsonl", "jsonl", [str(whole)], "-q")
    assert whole_run[0] == 0
    assert _by_id(dask) == _by_id(whole_run[1])
    records = _by_id(dask)
    assert len(records) > 25
    starts = [_classic(p)[1][0][0] / 1e6 for p in rotation[1:]]  # type: ignore[index]
    cut = [r for r in records.values() for b in starts
           if r["first_ts"] < b < r["first_ts"] + r["duration_ms"] / 1000]  # type: ignore[operator]
    assert len(cut) >= 5
    # explicit names keep the order given (here: their time order too)
    _, again, _ = _single_and_dask(capsys, tmp_path, "jsonl", in_time_order,
                                   dask_extra=("--scheduler", scheduler, "--partitions", "1"))
    assert again == single


@needs_dask
def test_partitions_do_not_change_the_records(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path, scheduler: str) -> None:
    paths = [str(p) for p in BUNDLED]
    outputs = set()
    for partitions in ("1", "7"):
        status, out, err = _analyze(capsys, tmp_path / f"p{partitions}.csv", "csv", paths,
                                    "--executor", "dask", "--scheduler", scheduler,
                                    "--partitions", partitions, "-q")
        assert status == 0, err
        assert err == ""  # -q: no progress, no warnings
        outputs.add(out)
    assert len(outputs) == 1


@needs_dask
@pytest.mark.skipif(not BENCH.exists(), reason="benchmark capture not generated")
def test_benchmark_slice_rotated(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                 scheduler: str) -> None:
    whole = pcap_slice(BENCH, 30_000, tmp_path / "slice.pcap")
    rotation = [str(p) for p in _rotate(whole, 4_000, tmp_path / "rot")]
    single, dask, _ = _single_and_dask(capsys, tmp_path, "jsonl", rotation,
                                       dask_extra=("--scheduler", scheduler))
    assert dask == single
    assert len(single.splitlines()) > 150


@needs_dask
def test_own_local_cluster_and_scratch_removed(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    paths = [str(p) for p in FEW]
    single, dask, stderr = _single_and_dask(
        capsys, tmp_path, "jsonl", paths, dask_extra=("--workers", "2", "--scratch",
                                                      str(scratch)))
    assert dask == single
    assert "tcptrace: dask: dashboard http" in stderr
    assert list(scratch.iterdir()) == []


@needs_dask
def test_failed_tasks_are_retried_without_loss_or_duplication(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # every map's worker is killed after the map wrote its files, every reduce fails once
    # after writing its output: each runs again, over what the first attempt left
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("TCPTRACE_DASK_FAIL_ONCE", str(marks))
    paths = [str(p) for p in FEW]
    single, dask, _ = _single_and_dask(capsys, tmp_path, "jsonl", paths,
                                       dask_extra=("--workers", "2", "--partitions", "3"))
    assert dask == single
    assert sorted(p.name for p in marks.iterdir()) == [
        *(f"map-f{i:06d}" for i in range(len(paths))), "reduce-0", "reduce-1", "reduce-2"]


@needs_dask
def test_inputs_through_fsspec(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                               scheduler: str) -> None:
    whole = _interleaved(tmp_path / "whole.pcap")
    rotation = _rotate(whole, 40, tmp_path / "rot")
    single = _analyze(capsys, tmp_path / "single.jsonl", "jsonl",
                      [str(p) for p in rotation], "-q")
    assert single[0] == 0
    base = ("--executor", "dask", "--scheduler", scheduler, "-q")
    # file:// URLs, a pattern and explicit names
    urls = [f"file://{tmp_path}/rot/rot_*.pcap"], [f"file://{p}" for p in rotation]
    for paths in urls:
        status, out, err = _analyze(capsys, tmp_path / "dask.jsonl", "jsonl", paths, *base)
        assert (status, err) == (0, "")
        assert out == single[1]
    # the report names the files as given
    status, _, err = _analyze(capsys, tmp_path / "dask.json", "json", urls[1], *base)
    assert status == 0, err
    report = json.loads((tmp_path / "dask.json").read_text())
    assert report["source"]["files"] == urls[1]


@needs_dask
def test_remote_inputs_are_staged(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # fsspec's memory filesystem lives in this process: a cluster of threads here sees it
    # (a remote file, s3:// with s3fs, is copied to the scratch directory by its map)
    import distributed
    import fsspec

    whole = _interleaved(tmp_path / "whole.pcap")
    rotation = _rotate(whole, 40, tmp_path / "rot")
    single = _analyze(capsys, tmp_path / "single.jsonl", "jsonl",
                      [str(p) for p in rotation], "-q")
    memory = fsspec.filesystem("memory")
    for p in rotation:
        memory.pipe(f"/tcptrace-test/{p.name}", p.read_bytes())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                      dashboard_address=":0",
                                      silence_logs=logging.ERROR) as cluster:
            base = ("--executor", "dask", "--scheduler", cluster.scheduler_address, "-q",
                    "--scratch", str(scratch))
            status, out, err = _analyze(capsys, tmp_path / "dask.jsonl", "jsonl",
                                        ["memory://tcptrace-test/rot_*.pcap"], *base)
            assert (status, err) == (0, "")
            assert out == single[1]
            assert list(scratch.iterdir()) == []
            missing = "memory://tcptrace-test/none.pcap"
            status, _, err = _analyze(capsys, tmp_path / "x.jsonl", "jsonl",
                                      ["memory://tcptrace-test/rot_000.pcap", missing], *base)
            assert (status, err.strip()) == (
                2, f"tcptrace: error: {missing}: cannot open: No such file or directory")
            assert list(scratch.iterdir()) == []
    finally:
        memory.rm("/tcptrace-test", recursive=True)


@needs_dask
@pytest.mark.skipif(find_spec("s3fs") is not None, reason="s3fs is installed")
def test_a_protocol_without_its_package(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli(capsys, "analyze", "--executor", "dask",
                               "s3://bucket/day/*.pcap")
    assert (status, out) == (2, "")
    assert err.startswith("tcptrace: error: s3://bucket/day/*.pcap: ")
    assert "s3fs" in err and len(err.splitlines()) == 1


@needs_dask
@pytest.mark.skipif(find_spec("pyarrow") is None, reason="pyarrow is not installed")
def test_parquet_dataset(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                         scheduler: str) -> None:
    import pyarrow.parquet as pq

    paths = [str(p) for p in BUNDLED]
    single, dask = tmp_path / "single", tmp_path / "dask"
    status, _, err = run_cli(capsys, "analyze", *paths, "-f", "parquet", "-o", str(single),
                             "-q")
    assert status == 0, err
    status, _, err = run_cli(capsys, "analyze", *paths, "-f", "parquet", "-o", str(dask),
                             "-q", "--executor", "dask", "--scheduler", scheduler)
    assert (status, err) == (0, "")
    parts = sorted(str(p.relative_to(single)) for p in single.rglob("*.parquet"))
    assert len(parts) > 1
    assert sorted(str(p.relative_to(dask)) for p in dask.rglob("*.parquet")) == parts
    for part in parts:
        assert pq.read_table(dask / part).equals(pq.read_table(single / part))


def _wait_for(what: str, ready: Callable[[], bool], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _scheduler_address(scheduler_file: Path) -> str | None:
    """The address in `dask scheduler --scheduler-file`'s file, or None while the file is
    absent or still being written (it appears before its JSON is complete)."""
    try:
        address = json.loads(scheduler_file.read_text())["address"]
    except (OSError, ValueError, KeyError):
        return None
    return str(address)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """End the processes the test started (each by its own handle)."""
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
    for proc in processes:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@needs_dask
def test_a_real_cluster_survives_a_killed_worker(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    # `dask scheduler` and two `dask worker` processes (no nanny: a killed worker is gone
    # for good) on loopback, random ports; every map pauses once its files are written
    # (TCPTRACE_DASK_PAUSE), one worker is killed with SIGKILL, and its tasks (the one it
    # was running and the results it held) run again on the other
    import distributed

    marks, scratch, rot = tmp_path / "marks", tmp_path / "scratch", tmp_path / "rot"
    marks.mkdir()
    scratch.mkdir()
    whole = _interleaved(tmp_path / "whole.pcap")
    rotation = _rotate(whole, 40, rot)
    assert len(rotation) > 5
    single = _analyze(capsys, tmp_path / "single.jsonl", "jsonl",
                      [str(p) for p in rotation], "-q")
    assert single[0] == 0
    processes: list[subprocess.Popen[bytes]] = []
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "TCPTRACE_DASK_PAUSE": str(marks)}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    try:
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)],
            cwd=tmp_path, **quiet))
        _wait_for("the scheduler", lambda: _scheduler_address(scheduler_file) is not None)
        address = _scheduler_address(scheduler_file) or ""
        assert address.startswith("tcp://127.0.0.1:")
        workers = [subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", address, "--nthreads", "1",
             "--no-nanny", "--name", f"w{n}", "--local-directory", str(tmp_path / f"w{n}")],
            cwd=tmp_path, env=env, **quiet) for n in range(2)]
        processes.extend(workers)
        with distributed.Client(address) as client:
            client.wait_for_workers(2, timeout=90)
        run = subprocess.Popen(
            [sys.executable, "-m", "tcptrace.cli", "analyze", "--executor", "dask",
             "--scheduler", address, "--scratch", str(scratch), "-q", "-f", "jsonl",
             "-o", str(tmp_path / "dask.jsonl"), str(rot / "*.pcap")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        processes.append(run)
        _wait_for("a map to pause", lambda: any(marks.iterdir()))
        first = min(marks.iterdir(), key=lambda p: p.stat().st_mtime_ns)
        task, pid = first.name.rsplit(".", 1)
        victim = next(w for w in workers if w.pid == int(pid))
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(timeout=20) == -signal.SIGKILL
        (marks / "release").touch()
        _, err = run.communicate(timeout=180)
        assert run.returncode == 0, err.decode()
    finally:
        _stop(processes)
    dask = (tmp_path / "dask.jsonl").read_bytes()
    assert dask == single[1]
    ids = [json.loads(line)["id"] for line in dask.splitlines()]
    assert len(ids) == len(set(ids)) > 25
    # the killed worker's task ran again on the other worker
    survivor = next(w for w in workers if w is not victim)
    assert (marks / f"{task}.{survivor.pid}").exists()
    assert list(scratch.iterdir()) == []


@needs_dask
def test_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                             scheduler: str) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    base = ("--executor", "dask", "--scheduler", scheduler)
    cases: list[tuple[list[str], tuple[str, ...], str]] = [
        ([str(FEW[0]), str(text)], (),
         f"tcptrace: error: {text}: not a pcap or pcapng capture (starts with 68656c6c)"),
        ([str(tmp_path / "none*.pcap")], (),
         f"tcptrace: error: {tmp_path / 'none*.pcap'}: no file matches"),
        ([str(FEW[0])], ("--jobs", "2"),
         "tcptrace: error: --executor dask does not take --per-file or --jobs "
         "(try 'tcptrace analyze --help')"),
    ]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    for paths, extra, message in cases:
        status, _, err = _analyze(capsys, tmp_path / "out", "jsonl", paths, *base, "-q",
                                  "--scratch", str(scratch), *extra)
        assert (status, err.strip()) == (2, message)
        assert list(scratch.iterdir()) == []  # removed on an error too


def test_without_dask_says_how_to_install(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if absent
    status, out, err = run_cli(capsys, "analyze", str(FEW[0]), "--executor", "dask")
    assert (status, out) == (2, "")
    assert err == ("tcptrace: error: --executor dask needs Dask: "
                   "pip install 'tcptrace[dask]'\n")


S = 1_000_000_000
DAY = 86_400 * S
T0 = 1_700_000_000 * S


def _tcp_conversation(port: int, start_ns: int) -> list[tuple[int, bytes]]:
    """A short connection from port `port` (handshake, a request, its answer, the close),
    10 ms a step from `start_ns`: (time in ns, Ethernet frame)."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    c, s = ("10.0.0.1", port), ("10.0.0.2", 80)
    steps = [(c, s, "S", 1000, 0, b""), (s, c, "SA", 5000, 1001, b""),
             (c, s, "A", 1001, 5001, b""), (c, s, "PA", 1001, 5001, b"GET / HTTP/1.1\r\n\r\n"),
             (s, c, "PA", 5001, 1019, b"HTTP/1.1 200 OK\r\n\r\n"),
             (c, s, "FA", 1019, 5020, b""), (s, c, "FA", 5020, 1020, b""),
             (c, s, "A", 1020, 5021, b"")]
    return [(start_ns + k * 10_000_000,
             bytes(Ether() / IP(src=a[0], dst=b[0], id=100 + k)
                   / TCP(sport=a[1], dport=b[1], flags=f, seq=seq, ack=ack) / data))
            for k, (a, b, f, seq, ack, data) in enumerate(steps)]


def _udp(at_ns: int, size: int = 64) -> tuple[int, bytes]:
    """A UDP datagram of `size` bytes at `at_ns`: a frame the flow table never sees."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    return at_ns, bytes(Ether() / IP(src="10.0.0.9", dst="10.0.0.8") / UDP(sport=53, dport=53)
                        / (b"x" * size))


def _write_ns_pcap(path: Path, frames: list[tuple[int, bytes]]) -> str:
    """A nanosecond pcap of `frames` in the order given (times need not increase)."""
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1))
        for ns, frame in frames:
            out.write(struct.pack("<IIII", ns // S, ns % S, len(frame), len(frame)) + frame)
    return str(path)


def _time_warning(kind: str, place: str, seconds: str, count: int) -> str:
    direction, threshold = (("earlier than", "more than a second") if kind == "time_backwards"
                            else ("later than", "more than a day"))
    times = "1 time" if count == 1 else f"{count} times"
    return (f"{kind}: {place}: timestamp {seconds} s {direction} the frame before "
            f"({threshold}; {times} in all): a damaged timestamp, a clock set while capturing, "
            "or captures of different times; each connection's clock never goes back, and a "
            "handshake time across such a step is left null")


DUPLICATES_8 = (
    "duplicates: 8 segments captured twice (the same IP ID, sequence and acknowledgment "
    "numbers, flags, window and checksum, moments apart: a SPAN port, -i any on a "
    "forwarding host, or one connection in two merged files): each copy is counted in "
    "duplicates and left out of every other count")


@needs_dask
def test_time_steps_across_and_within_files(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path, scheduler: str) -> None:
    """Warnings about timestamps that go back or leap ahead are the single run's: counted
    over every frame (UDP too) in the order it reads them, the merge's over several files.

    a.pcap: a connection at T0, 150 datagrams of 60 kB from T0 + 1 s every 10 ms (the
    first 139 fill its first 8 MiB read), a connection 100 s before T0 (the clock set
    back), a datagram at T0 + 3 days 1 s, a connection a second later. b.pcap: a's first
    connection again (the same frames: captured at two points), another at T0 + 5 ms, a
    datagram at T0 + 2 days."""
    a = _write_ns_pcap(tmp_path / "a.pcap", [
        *_tcp_conversation(40000, T0),
        *(_udp(T0 + S + k * 10_000_000, 60_000) for k in range(150)),
        *_tcp_conversation(40002, T0 - 100 * S),
        _udp(T0 + 3 * DAY + S),
        *_tcp_conversation(40003, T0 + 3 * DAY + 2 * S)])
    b = _write_ns_pcap(tmp_path / "b.pcap", [
        *_tcp_conversation(40000, T0), *_tcp_conversation(40001, T0 + 5_000_000),
        _udp(T0 + 2 * DAY)])
    extra = ("--scheduler", scheduler, "--partitions", "3")
    # a alone, in its order: back at the first frame of the connection set back (frame 8
    # + 150 + 1), a leap to the datagram 3 days on (8 frames later)
    single, dask, _ = _single_and_dask(capsys, tmp_path, "json", [a], dask_extra=extra)
    assert dask == single
    assert json.loads(dask)["source"]["warnings"] == [
        _time_warning("time_backwards", f"{a}, frame 159", "102.49", 1),
        _time_warning("time_jump", f"{a}, frame 167", "259300.93", 1)]
    # merged: step 1 (up to the end of a's first read, T0 + 2.38 s) hands on its 147
    # frames and 16 of b (frames 1-163); step 2 (up to b's end, 2 days) starts with the
    # connection set back from a's second read (frame 164: 102.38 s back), then a's 11
    # datagrams left and b's datagram (frame 183: 2 days less 2.49 s on); step 3 is a's
    # rest from 3 days 1 s (frame 184: a day and a second after b's datagram)
    merged = "frame {} of 2 files merged by time"
    single, dask, stderr = _single_and_dask(capsys, tmp_path, "json", [a, b], dask_extra=extra)
    assert dask == single
    assert json.loads(dask)["source"]["warnings"] == [
        DUPLICATES_8,
        _time_warning("time_backwards", merged.format(164), "102.38", 1),
        _time_warning("time_jump", merged.format(183), "172797.51", 2)]
    assert [m for m in _messages(stderr) if "time" in m or "duplicates" in m] == [
        f"tcptrace: warning: {w}" for w in json.loads(dask)["source"]["warnings"]]


# Step 3 of issue 20: a large plain pcap file is mapped a part at a time (a plan task walks
# its records once; docs/scale-out.md). TCPTRACE_DASK_PART_BYTES forces small parts.


def _parts_run(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               paths: list[str], part_bytes: int, scheduler: str, fmt: str = "json"
               ) -> tuple[bytes, bytes, str]:
    monkeypatch.setenv("TCPTRACE_DASK_PART_BYTES", str(part_bytes))
    single = _analyze(capsys, tmp_path / f"single.{fmt}", fmt, paths)
    assert single[0] == 0, single[2]
    dask = _analyze(capsys, tmp_path / f"dask.{fmt}", fmt, paths, "--executor", "dask",
                    "--scheduler", scheduler, "--partitions", "3")
    assert dask[0] == 0, dask[2]
    assert _messages(dask[2]) == _messages(single[2])
    return single[1], dask[1], dask[2]


@needs_dask
@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_large_files_are_mapped_in_parts(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, scheduler: str,
                                         fmt: str) -> None:
    # every bundled capture larger than 3000 bytes in parts of about 3000 bytes (pcapng and
    # gzip files whole), merged by time with the rest: the single run's bytes and warnings
    paths = [str(p) for p in BUNDLED]
    single, dask, stderr = _parts_run(capsys, tmp_path, monkeypatch, paths, 3000, scheduler,
                                      fmt)
    assert dask == single
    large = [p for p in BUNDLED if p.stat().st_size > 3000]
    pcap_large = [p for p in large if p.read_bytes()[:4] in (
        b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")]
    assert len(pcap_large) >= 3
    assert f"tcptrace: dask: plan {len(large)}/{len(large)} tasks done" in stderr
    # download.pcap alone (222 kB) is 74 parts
    map_line = next(line for line in stderr.splitlines() if " map " in line)
    assert int(map_line.split()[3].split("/")[1]) > len(paths) + 70


@needs_dask
def test_parts_across_read_chunks_and_time_steps(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 scheduler: str) -> None:
    # test_time_steps_across_and_within_files's a.pcap (9 MB: two reads of 8 MiB, a clock
    # set back, a leap of 3 days) in parts of 1 MB, alone and merged with b.pcap
    a = _write_ns_pcap(tmp_path / "a.pcap", [
        *_tcp_conversation(40000, T0),
        *(_udp(T0 + S + k * 10_000_000, 60_000) for k in range(150)),
        *_tcp_conversation(40002, T0 - 100 * S),
        _udp(T0 + 3 * DAY + S),
        *_tcp_conversation(40003, T0 + 3 * DAY + 2 * S)])
    b = _write_ns_pcap(tmp_path / "b.pcap", [
        *_tcp_conversation(40000, T0), *_tcp_conversation(40001, T0 + 5_000_000),
        _udp(T0 + 2 * DAY)])
    single, dask, _ = _parts_run(capsys, tmp_path, monkeypatch, [a], 1_000_000, scheduler)
    assert dask == single
    assert json.loads(dask)["source"]["warnings"] == [
        _time_warning("time_backwards", f"{a}, frame 159", "102.49", 1),
        _time_warning("time_jump", f"{a}, frame 167", "259300.93", 1)]
    single, dask, stderr = _parts_run(capsys, tmp_path, monkeypatch, [a, b], 1_000_000,
                                      scheduler)
    assert dask == single
    assert "tcptrace: dask: map 10/10 tasks done" in stderr  # a in 9 parts, b whole
    merged = "frame {} of 2 files merged by time"
    assert json.loads(dask)["source"]["warnings"] == [
        DUPLICATES_8,
        _time_warning("time_backwards", merged.format(164), "102.38", 1),
        _time_warning("time_jump", merged.format(183), "172797.51", 2)]


@needs_dask
def test_a_damaged_file_in_parts(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch, scheduler: str) -> None:
    # download.pcap with garbage in the middle (records that parse, of random bytes), cut
    # inside its last record; and with a record header of an impossible length there
    raw = (PCAPS / "transfer/download.pcap").read_bytes()
    middle = 24
    for _ in range(130):  # the first 130 records
        middle += 16 + struct.unpack("<I", raw[middle + 8:middle + 12])[0]
    garbage = b"".join(struct.pack("<IIII", 1_800_000_000 + k, 0, n, n) + bytes(
        (i * 31 + k) % 256 for i in range(n)) for k, n in enumerate(range(0, 1400, 97)))
    truncated = tmp_path / "truncated.pcap"
    truncated.write_bytes(raw[:middle] + garbage + raw[middle:-700])
    corrupt = tmp_path / "corrupt.pcap"
    corrupt.write_bytes(raw[:middle] + garbage + struct.pack("<IIII", 0, 0, 1 << 30, 1 << 30)
                        + raw[middle:])
    for path, kind in ((truncated, "truncated_record"), (corrupt, "corrupt_record")):
        single, dask, stderr = _parts_run(capsys, tmp_path, monkeypatch, [str(path)], 5000,
                                          scheduler)
        assert dask == single
        warnings = json.loads(dask)["source"]["warnings"]
        assert [w.split(":")[0] for w in warnings if w.startswith(kind)] == [kind]
        assert "tcptrace: dask: plan 1/1 tasks done" in stderr


@needs_dask
@pytest.mark.skipif(not BENCH.exists(), reason="benchmark capture not generated")
def test_benchmark_slice_in_parts(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch, scheduler: str) -> None:
    whole = pcap_slice(BENCH, 60_000, tmp_path / "slice.pcap")
    assert whole.stat().st_size > 2 * 8 << 20  # three reads of 8 MiB
    single, dask, _ = _parts_run(capsys, tmp_path, monkeypatch, [str(whole)], 3_000_000,
                                 scheduler, "jsonl")
    assert dask == single
    assert len(single.splitlines()) > 800


@needs_dask
def test_a_bad_part_size_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch, scheduler: str) -> None:
    monkeypatch.setenv("TCPTRACE_DASK_PART_BYTES", "1M")
    status, _, err = _analyze(capsys, tmp_path / "out", "jsonl", [str(FEW[0])], "--executor",
                              "dask", "--scheduler", scheduler, "-q")
    assert (status, err.strip()) == (
        2, "tcptrace: error: TCPTRACE_DASK_PART_BYTES='1M': expected a number of bytes")
