"""Defaults and names the command line needs before it knows which engine runs: kept in a
module that imports nothing, so `tcptrace --help` and a small run start fast."""

DEFAULT_MSL_S = 30.0  # Linux holds TIME_WAIT for 60 s (TCP_TIMEWAIT_LEN) = 2 * 30 s
DEFAULT_LINGER_S = 0.5
DEFAULT_MAX_FLOWS = 1_000_000
MAX_SECONDS = 10 * 365 * 86_400.0
"""Ten years: longer than any capture; beyond it a duration is a typo (or 1e300)."""
MAX_COUNT = 2**63 - 1
"""The largest count or id an option takes: the engine holds them as 64-bit integers, and a
larger one was an OverflowError's traceback, not a usage error."""
MAX_JOBS = 256
"""The most `--jobs` a run takes (the engine's `parallel::MAX_JOBS`, tests/test_jobs.py holds
them together): one reader feeds every shard, so beyond the cores nothing is gained. Also the
most local Dask workers (`--workers`: a process each)."""
MAX_PARTITIONS = 512
"""The most Dask partitions (`--partitions`): each map task keeps a spill file open per
partition, and the usual limit of open files is 1,024."""
DEFAULT_RESUME_MAX_BYTES = 1 << 30
"""`--resume-max-bytes`: 1 GiB of frames in STATE (docs/scale-out.md, "The cost")."""
FORMATS = ("table", "json", "jsonl", "csv", "zeek")
