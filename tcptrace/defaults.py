"""Defaults and names the command line needs before it knows which engine runs: kept in a
module that imports nothing, so `tcptrace --help` and a small run start fast."""

DEFAULT_MSL_S = 30.0  # Linux holds TIME_WAIT for 60 s (TCP_TIMEWAIT_LEN) = 2 * 30 s
FORMATS = ("table", "json", "jsonl", "csv", "zeek")
