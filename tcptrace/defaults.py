"""Defaults and names the command line needs before it knows which engine runs: kept in a
module that imports nothing, so `tcptrace --help` and a small run start fast."""

DEFAULT_MSL_S = 30.0  # Linux holds TIME_WAIT for 60 s (TCP_TIMEWAIT_LEN) = 2 * 30 s
DEFAULT_LINGER_S = 0.5
DEFAULT_MAX_FLOWS = 1_000_000
MAX_SECONDS = 10 * 365 * 86_400.0
"""Ten years: longer than any capture; beyond it a duration is a typo (or 1e300)."""
MAX_JOBS = 256
"""The most `--jobs` a run takes (the engine's `parallel::MAX_JOBS`, tests/test_jobs.py holds
them together): one reader feeds every shard, so beyond the cores nothing is gained."""
FORMATS = ("table", "json", "jsonl", "csv", "zeek")
