"""`tcptrace analyze --executor dask`: the `--jobs` plan on a Dask cluster (issue 20;
docs/scale-out.md).

A map task per input file, or per part of a large pcap file (decoded by Rust into flow
partitions in a scratch directory, with a manifest), a clock task (the single run's feed
replayed once), a reduce task per partition (its segments of every file merged in the single
run's order, through a flow table), then the client writes the records in the single run's
order under its ids. Dask is an optional extra: `pip install 'tcptrace[dask]'`.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import importlib
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from tcptrace.errors import CaptureError, TcptraceError

INSTALL_HINT = "--executor dask needs Dask: pip install 'tcptrace[dask]'"
FORMATS = ("jsonl", "json", "csv", "table", "zeek")
"""Every format of a single run."""
RETRIES = 3
"""Times Dask runs a failed task again (a lost worker): tasks are idempotent."""
FAIL_HOOK = "TCPTRACE_DASK_FAIL_ONCE"
"""Test hook: a directory; each task's first attempt ends its worker process right after its
work is written (a map) or fails (a reduce), to prove a retry changes nothing."""
PART_BYTES_KNOB = "TCPTRACE_DASK_PART_BYTES"
"""Tuning and test knob: bytes per map task of a large plain pcap file (default
`PART_BYTES`); a smaller value cuts even small captures into parts."""
PART_BYTES = 256 << 20
"""A plain pcap file larger than this is mapped in parts of about this size."""
PAUSE_HOOK = "TCPTRACE_DASK_PAUSE"
"""Test hook: a directory; each map, once its files are written, leaves a mark there
(`map-KEY.PID`) and waits until a file `release` appears (a minute at most), so that a test
can kill a worker in the middle of a run (tests/test_dask.py)."""


@dataclass
class EngineOptions:
    """The analysis options every task gets (plain data: Dask ships them to workers)."""
    filter_text: str | None = None
    msl_s: float = 30.0
    linger_s: float = 0.5
    max_flows: int = 1_000_000
    zeek: bool = False
    verify_checksums: bool = False
    tunnel_ports: list[tuple[str, int]] = field(default_factory=list)

    def native(self) -> dict[str, Any]:
        """The keyword arguments of the native steps (the filter compiled where it runs)."""
        return {"msl_s": self.msl_s, "linger_s": self.linger_s, "max_flows": self.max_flows,
                "zeek": self.zeek, "verify_checksums": self.verify_checksums,
                "tunnel_ports": self.tunnel_ports or None}


def is_url(path: str) -> bool:
    """Whether `path` names a file through fsspec (`s3://bucket/key`, `file:///x`)."""
    return "://" in path


def _url_to_fs(url: str) -> tuple[Any, str]:
    """fsspec's filesystem for `url` and the path in it (fsspec comes with Dask)."""
    try:
        core: Any = importlib.import_module("fsspec.core")
    except ImportError:
        raise TcptraceError(INSTALL_HINT) from None
    try:
        fs, path = core.url_to_fs(url)
    except (ImportError, ValueError) as exc:  # a protocol without its package (s3fs)
        raise TcptraceError(f"{url}: {exc}") from None
    return fs, str(path)


def _expand_url(pattern: str) -> list[str]:
    """The files a URL pattern matches, as URLs fsspec opens again (sorted)."""
    fs, path = _url_to_fs(pattern)
    try:
        matches = sorted(str(m) for m in fs.glob(path) if fs.isfile(m))
    except OSError as exc:
        raise CaptureError(f"{pattern}: {exc}") from None
    return [str(fs.unstrip_protocol(m)) for m in matches]


def expand(patterns: Iterable[str]) -> tuple[list[str], bool]:
    """The input files: each pattern the shell did not expand (`'captures/*.pcap*'`, also
    through fsspec: `'s3://bucket/day/*.pcap'`) expanded here (sorted; reordered by first
    timestamp once mapped). Also whether any was a pattern. A pattern matching nothing is
    an error, as a missing file is."""
    paths: list[str] = []
    any_pattern = False
    for pattern in patterns:
        wild = any(c in pattern for c in "*?[")
        if is_url(pattern) and wild:
            matches = _expand_url(pattern)
            if not matches:
                raise CaptureError(f"{pattern}: no file matches")
            paths.extend(matches)
            any_pattern = True
        elif is_url(pattern):
            _url_to_fs(pattern)  # a protocol fsspec cannot serve: said before any task
            paths.append(pattern)
        elif wild and not os.path.exists(pattern):
            matches = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
            if not matches:
                raise CaptureError(f"{pattern}: no file matches")
            paths.extend(matches)
            any_pattern = True
        else:
            paths.append(pattern)
    if "-" in paths:
        raise TcptraceError("--executor dask reads files, not standard input (-)")
    return paths, any_pattern


@dataclass
class Staged:
    """A URL's file as the native reader takes it: a local path (`staged`: a copy to
    remove once read), or the capture's error."""
    local: str | None = None
    staged: bool = False
    error: str | None = None


def _stage(url: str, path: str, scratch: str, key: str) -> Staged:
    """`url` (named `path` as given) as a local path: `file://` as it is, any other
    filesystem's file copied to the scratch directory first (the native reader takes paths;
    the copy has this process's name, so a retry never meets a half-written one)."""
    fs, remote = _url_to_fs(url)
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "file" in protocols:
        return Staged(local=remote)
    staged = os.path.join(scratch, f"{key}.input.{os.getpid()}")
    try:
        with fs.open(remote, "rb") as source, open(staged, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(staged)
        # fsspec's FileNotFoundError carries the path, not the system's words
        missing = isinstance(exc, FileNotFoundError)
        reason = os.strerror(errno.ENOENT) if missing else exc.strerror or str(exc)
        return Staged(error=f"{path}: cannot open: {reason}")
    return Staged(local=staged, staged=True)


def part_bytes() -> int:
    """Bytes per map task of a large plain pcap file (`TCPTRACE_DASK_PART_BYTES`)."""
    value = os.environ.get(PART_BYTES_KNOB, "")
    try:
        return max(1, int(value)) if value else PART_BYTES
    except ValueError:
        raise TcptraceError(f"{PART_BYTES_KNOB}={value!r}: expected a number of bytes") from None


Start = tuple[int, int, int, int, int, int | None]
"""Where a part of a file starts (`_native.scale_plan`)."""
Part = tuple[int, Start | None, int | None]
"""A part to map: its number, its start (None: the file's), the next part's first byte."""


def plan_task(located: str, chunk: int, size: int) -> list[Part]:
    """A worker's plan of a large local file: its parts (one walk over its records, nothing
    decoded); empty when it is mapped whole (not a plain pcap file, or unreadable)."""
    from tcptrace import _native

    starts = _native.scale_plan(located, chunk, size)
    if not starts:
        return []
    firsts: list[Start | None] = [None, *starts]
    ends: list[int | None] = [s[0] for s in starts]
    ends.append(None)
    return [(k, start, end) for k, (start, end) in enumerate(zip(firsts, ends, strict=True))]


def map_task(located: str, path: str, key: str, scratch: str, partitions: int, chunk: int,
             options: EngineOptions,
             part: Part | None = None) -> tuple[int | None, str | None]:
    """A worker's map of one file, at `located` (absolute: a worker's directory is its own;
    or a URL fsspec opens), named `path` as given, or of a part of it: (first timestamp,
    the capture's error)."""
    from tcptrace import _native

    bpf = None
    if options.filter_text:
        from tcptrace.bpf import compile_filter

        bpf = compile_filter(options.filter_text)
    source = _stage(located, path, scratch, key) if is_url(located) else Staged(located)
    if source.local is None:
        return None, source.error
    try:
        mapped = _native.scale_map(source.local, path, key, scratch, partitions, chunk,
                                   part=part, filter=bpf, **options.native())
    finally:
        if source.staged:
            with contextlib.suppress(OSError):
                os.unlink(source.local)
    if _first_attempt(f"map-{key}"):
        os._exit(17)  # a worker killed: the nanny starts another, Dask runs the task again
    _pause(f"map-{key}")
    return mapped


def clock_task(scratch: str, keys: list[str]) -> None:
    """A worker's clock step (every map is done): the single run's feed replayed once, for
    every reduce (src/parallel/scaleclock.rs)."""
    from tcptrace import _native

    _native.scale_clock(scratch, keys)


def reduce_task(scratch: str, keys: list[str], partition: int, fmt: str,
                options: EngineOptions) -> int:
    """A worker's reduce of one partition (every map is done)."""
    from tcptrace import _native

    _native.scale_reduce(scratch, keys, partition, fmt, **options.native())
    if _first_attempt(f"reduce-{partition}"):
        raise RuntimeError(f"forced failure ({FAIL_HOOK})")
    return partition


def _first_attempt(task: str) -> bool:
    """With the test hook set: whether this is the task's first attempt (marked now)."""
    hook = os.environ.get(FAIL_HOOK)
    if not hook:
        return False
    marker = os.path.join(hook, task)
    try:
        with open(marker, "x"):
            return True
    except FileExistsError:
        return False


def _pause(task: str) -> None:
    """With the pause hook set: mark the task as reached, then wait for the release."""
    hook = os.environ.get(PAUSE_HOOK)
    if not hook:
        return
    with open(os.path.join(hook, f"{task}.{os.getpid()}"), "w"):
        pass
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(hook, "release")) and time.monotonic() < deadline:
        time.sleep(0.05)


class Progress:
    """Tasks done / total on stderr: one line rewritten on a terminal, else a line per
    phase."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        try:
            self.tty = enabled and sys.stderr.isatty()
        except (AttributeError, ValueError):
            self.tty = False

    def update(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        line = f"tcptrace: dask: {phase} {done}/{total} tasks done"
        if self.tty:
            end = "\n" if done == total else ""
            sys.stderr.write(f"\r{line}{end}")
        elif done == total:
            sys.stderr.write(f"{line}\n")
        sys.stderr.flush()

    def say(self, text: str) -> None:
        if self.enabled:
            sys.stderr.write(f"tcptrace: dask: {text}\n")
            sys.stderr.flush()


def _gather(client: Any, futures: list[Any], phase: str, progress: Progress) -> list[Any]:
    as_completed = importlib.import_module("distributed").as_completed
    progress.update(phase, 0, len(futures))
    for done, _ in enumerate(as_completed(futures), start=1):
        progress.update(phase, done, len(futures))
    try:
        return list(client.gather(futures))
    except TcptraceError:
        raise
    except Exception as exc:  # a task's own error (a worker lost for good, a bug)
        raise TcptraceError(f"a Dask task failed: {exc}") from exc


def _plan(client: Any, located: list[str], chunk: int, token: str,
          progress: Progress) -> list[list[Part]]:
    """Per file, its parts (empty: mapped whole): a plan task per local file larger than
    `part_bytes()` (remote files are mapped whole)."""
    size = part_bytes()
    large = []
    for i, path in enumerate(located):
        with contextlib.suppress(OSError):
            if not is_url(path) and os.path.getsize(path) > size:
                large.append(i)
    parts: list[list[Part]] = [[] for _ in located]
    if not large:
        return parts
    plans = [client.submit(plan_task, located[i], chunk, size,
                           key=f"tcptrace-plan-{token}-{i}", retries=RETRIES, pure=False)
             for i in large]
    for i, planned in zip(large, _gather(client, plans, "plan", progress), strict=True):
        parts[i] = planned
    return parts


def analyze(patterns: list[str], fmt: str, out: str | IO[bytes], *, options: EngineOptions,
            scheduler: str | None = None, workers: int | None = None,
            partitions: int | None = None, scratch: str | None = None,
            quiet: bool = False) -> list[str]:
    """Analyze the files on Dask and write the report in `fmt` to `out` (a path, "-" or a
    binary stream); the warnings of the run. The records are those of a single run over the
    same files (docs/scale-out.md says what is guaranteed)."""
    try:  # (untyped: held as Any)
        distributed: Any = importlib.import_module("distributed")
    except ImportError:
        raise TcptraceError(INSTALL_HINT) from None
    if fmt not in FORMATS:
        raise TcptraceError(f"-f {fmt} is not supported with --executor dask yet "
                            f"(use {', '.join(FORMATS)})")
    paths, pattern = expand(patterns)
    progress = Progress(not quiet)
    work = os.path.abspath(tempfile.mkdtemp(prefix="tcptrace-dask-", dir=scratch))
    cluster: Any = None
    client: Any = None
    try:
        if scheduler:
            client = distributed.Client(scheduler)
        else:
            cluster = distributed.LocalCluster(
                n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                processes=True, dashboard_address=":0", silence_logs=logging.ERROR)
            client = distributed.Client(cluster)
        link = getattr(client, "dashboard_link", None)
        if link:
            progress.say(f"dashboard {link}")
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        parts = partitions or 4 * n_workers
        return _run(client, paths, pattern, fmt, out, options, parts, work, progress)
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        shutil.rmtree(work, ignore_errors=True)


def _run(client: Any, paths: list[str], pattern: bool, fmt: str, out: str | IO[bytes],
         options: EngineOptions, partitions: int, work: str, progress: Progress) -> list[str]:
    from tcptrace import _native

    token = uuid.uuid4().hex[:12]  # task keys of this run only (a shared scheduler)
    chunk = _native.scale_chunk(len(paths))
    located = [path if is_url(path) else os.path.abspath(path) for path in paths]
    parts = _plan(client, located, chunk, token, progress)
    # a map task per file, or per part of a large one: (file, key, part)
    whole: list[Part | None] = [None]
    tasks = [(i, f"f{i:06d}" if part is None else f"f{i:06d}c{part[0]:06d}", part)
             for i in range(len(paths)) for part in (parts[i] or whole)]
    maps = [client.submit(map_task, located[i], paths[i], key, work, partitions, chunk,
                          options, part,
                          key=f"tcptrace-map-{token}-{key}", retries=RETRIES, pure=False)
            for i, key, part in tasks]
    results = _gather(client, maps, "map", progress)
    keys: list[list[str]] = [[] for _ in paths]
    mapped: list[tuple[int | None, str | None]] = [(None, None) for _ in paths]
    for (i, key, _), (first, error) in zip(tasks, results, strict=True):
        if not keys[i]:
            mapped[i] = (first, error)
        elif mapped[i][1] is None and error is not None:  # a later part could not be read
            mapped[i] = (mapped[i][0], error)
        keys[i].append(key)
    order = list(range(len(paths)))
    if pattern:  # a rotation: in time order of the files' first frames, not of their names
        order.sort(key=lambda i: (mapped[i][0] is None, mapped[i][0] or 0, paths[i]))
    for i in order:
        if mapped[i][1] is not None:  # the single run stops at the first bad file
            raise CaptureError(mapped[i][1])
    ordered = [key for i in order for key in keys[i]]
    clock = client.submit(clock_task, work, ordered, key=f"tcptrace-clock-{token}",
                          retries=RETRIES, pure=False)
    _gather(client, [clock], "clock", progress)
    reduces = [client.submit(reduce_task, work, ordered, p, fmt, options,
                             key=f"tcptrace-reduce-{token}-{p}", retries=RETRIES, pure=False)
               for p in range(partitions)]
    _gather(client, reduces, "reduce", progress)
    sink = out if isinstance(out, str) else out.write
    run = _native.scale_finalize(work, ordered, partitions, fmt, sink, zeek=options.zeek)
    from tcptrace.native import finish_document

    finish_document(run, fmt)
    return list(run.warnings())
