"""Capture inputs given on the command line: files, or streams read once.

`-` is standard input (as for tcpdump -r and tshark -r); a FIFO, `/dev/stdin` or a shell's
`<(...)` are streams too. The engine reads every one of them by content, without seeking
(src/sources/files.rs); what cannot be done with a stream is knowing its size in advance
(the progress bar shows no percentage then) and reading it twice.
"""

from __future__ import annotations

import os
import stat

STDIN = "-"


def status(path: str) -> os.stat_result | None:
    """os.stat of `path` (of the file or pipe on standard input for `-`), None when it
    cannot be had (the engine then says why, naming the path)."""
    try:
        return os.fstat(0) if path == STDIN else os.stat(path)
    except (OSError, ValueError):
        return None


def is_stream(path: str) -> bool:
    """Whether `path` is read once, as it comes: not a regular file (nor a directory, which
    the engine refuses)."""
    st = status(path)
    return st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode))


def display_name(path: str) -> str:
    """How messages name `path`: "standard input" for `-`."""
    return "standard input" if path == STDIN else path
