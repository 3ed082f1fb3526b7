"""Analysis options shared by the commands that read captures (`analyze`, `check`, `report`),
so that a capture judged by `check` or drawn by `report` is analyzed exactly as `analyze`
would analyze it with the same flags."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from tcptrace.clitypes import FiniteFloat

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_LINGER_S = 0.5
DEFAULT_MAX_FLOWS = 1_000_000


def analysis_options(command: F) -> F:
    """--linger, --max-flows and --verify-checksums, as `analyze` has them."""
    for option in reversed([
        click.option("--linger", type=FiniteFloat(), default=DEFAULT_LINGER_S,
                     show_default=True,
                     help="Seconds (capture time) an ended connection still collects late "
                          "segments (later ones are counted as after_close)."),
        click.option("--max-flows", type=click.IntRange(min=1), default=DEFAULT_MAX_FLOWS,
                     show_default=True,
                     help="Cap on connections held at once; the longest idle are evicted "
                          "first (with a warning)."),
        click.option("--verify-checksums", is_flag=True,
                     help="Leave out segments with a bad TCP/IPv4 checksum (as Zeek does "
                          "without -C)."),
    ]):
        command = option(command)
    return command


def progress_option(command: F) -> F:
    """--no-progress: no bar, the warnings kept (-q hides both)."""
    return click.option("--no-progress", is_flag=True,
                        help="No progress bar (it is drawn only when stderr is a terminal, "
                             "for reads longer than a second).")(command)
