"""The common `tcptrace analyze` command lines, read without importing click.

click and the standard library it pulls in (typing's machinery, enum, inspect, uuid,
datetime, gettext) took about 23 ms of a run's start: 6 % of a 1M-packet `analyze`
(docs/performance.md, "The start without click"). A command line made only of `analyze`,
capture paths and the options in OPTIONS, each option spelled whole (`--name VALUE`,
`--name=VALUE`, `-x VALUE`), every value one click would take unchanged, is read here into
the parameters click would hand the command. Anything else (help, a typo, a bad or doubtful
value, the rarer options, bundled short flags, `--`) gives None, and click reads the line
with its own messages. tests/test_quickargs.py holds the two readings equal on generated
command lines, and OPTIONS equal to the command's declarations (tcptrace.commands.analyze).
"""

from __future__ import annotations

import os

from tcptrace.defaults import (
    DEFAULT_LINGER_S,
    DEFAULT_MAX_FLOWS,
    DEFAULT_MSL_S,
    DEFAULT_RESUME_MAX_BYTES,
    FORMATS,
    MAX_COUNT,
    MAX_JOBS,
    MAX_SECONDS,
)
from tcptrace.digits import bounded_int

# typing is for mypy only: importing it costs ~5 ms of a run's start (docs/performance.md)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLAG, FORMAT, OUTPUT, TEXT, SECONDS, COUNT, JOBS = (
    "flag", "format", "output", "text", "seconds", "count", "jobs")
"""The kinds of option read here (a click type each: is_flag, Choice(FORMATS), Path for
the report, str, FiniteFloat, Count(), Count(max=MAX_JOBS))."""

OPTIONS: dict[str, tuple[str, str]] = {
    "-f": ("fmt", FORMAT), "--format": ("fmt", FORMAT),
    "-o": ("output", OUTPUT), "--output": ("output", OUTPUT),
    "--filter": ("filter_", TEXT),
    "--msl": ("msl", SECONDS),
    "--linger": ("linger", SECONDS),
    "--max-flows": ("max_flows", COUNT),
    "-j": ("jobs", JOBS), "--jobs": ("jobs", JOBS),
    "-q": ("quiet", FLAG), "--quiet": ("quiet", FLAG),
    "--no-progress": ("no_progress", FLAG),
    "--verify-checksums": ("verify_checksums", FLAG),
    "--zeek": ("zeek", FLAG),
    "--per-file": ("per_file", FLAG),
}
"""Option spelling -> (the command's parameter, kind)."""

DEFAULTS: dict[str, object] = {
    "fmt": "table", "output": None, "filter_": None, "msl": DEFAULT_MSL_S,
    "linger": DEFAULT_LINGER_S, "max_flows": DEFAULT_MAX_FLOWS, "quiet": False,
    "no_progress": False, "verify_checksums": False, "zeek": False, "jobs": 1,
    "per_file": False, "tunnel_ports": (), "executor": "local", "scheduler": None,
    "workers": None, "partitions": None, "scratch": None, "resume": None,
    "resume_final": False, "resume_max_bytes": DEFAULT_RESUME_MAX_BYTES,
}
"""Every parameter of `analyze` as click gives it when the option is absent."""

COMPLETION_VARIABLE = "_TCPTRACE_COMPLETE"
"""Set by a shell asking click for completions: click's to answer."""


def analyze_params(args: list[str]) -> dict[str, Any] | None:
    """The parameters of `analyze` for command line `args` (without the program name), or
    None when click must read it."""
    if not args or args[0] != "analyze" or COMPLETION_VARIABLE in os.environ:
        return None
    params: dict[str, Any] = dict(DEFAULTS)
    captures: list[str] = []
    rest = iter(args[1:])
    for arg in rest:
        if arg == "-" or not arg.startswith("-"):
            if not _readable_or_absent(arg, writable=False):
                return None
            captures.append(arg)
            continue
        name, equals, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name not in OPTIONS:
            return None
        dest, kind = OPTIONS[name]
        if kind == FLAG:
            if equals:
                return None
            params[dest] = True
            continue
        if not equals:
            following = next(rest, None)
            if following is None or (following.startswith("-") and following != "-"):
                return None  # (click takes an option-like value; a typo, more likely)
            value = following
        read = _value(kind, value)
        if read is None:
            return None
        params[dest] = read
    if not captures:
        return None
    params["captures"] = tuple(captures)
    return params


def _value(kind: str, text: str) -> object | None:
    """`text` as click would convert it for an option of `kind`, or None when in doubt."""
    if kind == FORMAT:
        return text if text in FORMATS else None
    if kind == TEXT:
        return text
    if kind == OUTPUT:
        return text if text and _readable_or_absent(text, writable=True) else None
    if not text.isascii():
        return None
    if kind in (COUNT, JOBS):
        count = bounded_int(text, MAX_JOBS if kind == JOBS else MAX_COUNT)
        return count if count else None  # (0, or beyond the top: click's message)
    # SECONDS: plain decimals only (no sign, exponent, underscore, inf or nan)
    if not text.replace(".", "", 1).isdigit():
        return None
    seconds = float(text)
    return seconds if seconds <= MAX_SECONDS else None


def _readable_or_absent(path: str, *, writable: bool) -> bool:
    """What click.Path checks of a path that need not exist: if it does, that it can be
    read (and written)."""
    try:
        os.stat(path)
    except OSError:
        return True
    except ValueError:  # (a NUL in the name: click's to report)
        return False
    mode = os.R_OK | (os.W_OK if writable else 0)
    return os.access(path, mode)
