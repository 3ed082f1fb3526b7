"""A progress bar on stderr for long reads: bytes read of the capture files, packets/s.

tqdm rather than rich: one small pure-Python dependency with no dependencies of its own,
writes to any text stream (so tests render it into a StringIO), throttles its own redraws
(`mininterval`) and can wait before it appears at all (`delay`): runs shorter than a second
never show a bar. rich would bring a whole rendering stack (pygments, markdown-it) for one
line of output.
"""

from __future__ import annotations

import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from tcptrace.inputs import is_stream, status

# typing is for mypy only: importing it costs ~5 ms of a run's start (docs/performance.md)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

DELAY_S = 1.0  # a bar appears only for runs longer than this
REFRESH_S = 0.25  # at most four redraws per second
BAR_FORMAT = ("{desc}: {percentage:3.0f}%|{bar}| {n_fmt}B/{total_fmt}B "
              "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")
STREAM_FORMAT = "{desc}: {n_fmt}B [{elapsed}, {rate_fmt}{postfix}]"
"""Without a total (a pipe among the inputs): bytes and rate, no percentage or ETA."""


def total_size(paths: list[str]) -> int | None:
    """Bytes of all capture files (compressed size for gzip); unreadable ones count 0
    (they fail at once anyway). None when one is a stream (standard input `-`, a FIFO, a
    pipe): its size is not known before it ends."""
    if any(is_stream(path) for path in paths):
        return None
    total = 0
    for path in paths:
        st = status(path)
        if st is not None and stat.S_ISREG(st.st_mode):
            total += st.st_size
    return total


class ProgressBar:
    """Bytes read of `total` bytes (None: unknown, a stream) and packets per second, on
    `stream` (stderr).

    Off unless `stream` is a terminal (or `force`): redirected stderr stays clean."""

    def __init__(self, total: int | None, stream: TextIO | None = None, *, enabled: bool = True,
                 force: bool = False, delay_s: float = DELAY_S,
                 refresh_s: float = REFRESH_S) -> None:
        stream = sys.stderr if stream is None else stream
        self.enabled = enabled and (force or _isatty(stream))
        self._started = time.monotonic()
        self._bar: Any = None
        if not self.enabled:  # no tqdm object at all: even a disabled one starts a thread
            return
        # sizes in SI units with their B ("417MB", as `ls --si` and most people count a
        # file), not tqdm's bare "399M" of MiB; the bar tracks bytes read, which is the work
        # done: the engine reads 1 MiB at a time and handles each piece before the next
        from tqdm import tqdm  # only when a bar is drawn (its import costs a few ms)

        self._bar = tqdm(total=total, file=stream, unit="B", unit_scale=True,
                         unit_divisor=1000, delay=delay_s, mininterval=refresh_s, leave=False,
                         desc="reading", dynamic_ncols=True,
                         bar_format=BAR_FORMAT if total is not None else STREAM_FORMAT)

    def update(self, bytes_read: int, packets: int) -> None:
        """Bytes read so far and packets decoded so far (cumulative)."""
        if self._bar is None:
            return
        elapsed = max(time.monotonic() - self._started, 1e-9)
        self._bar.set_postfix_str(f"{packets / elapsed:,.0f} pkt/s", refresh=False)
        self._bar.update(max(0, bytes_read - self._bar.n))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    @contextmanager
    def watch(self, read: Callable[[], tuple[int, int]]) -> Iterator[None]:
        """Poll `read` (bytes, packets) from a background thread while the body runs: the
        reading loop itself never waits for the terminal."""
        if not self.enabled:
            yield
            return
        done = threading.Event()

        def poll() -> None:
            while not done.wait(REFRESH_S):
                self.update(*read())

        thread = threading.Thread(target=poll, name="tcptrace-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            self.close()


def watch_for(paths: list[str], enabled: bool = True
              ) -> Callable[[Callable[[], tuple[int, int]]], AbstractContextManager[None]] | None:
    """The polling context of a bar over `paths`, or None when no bar is wanted (`enabled`
    False: -q or --no-progress) or stderr is not a terminal."""
    if not enabled or not _isatty(sys.stderr):
        return None
    return ProgressBar(total_size(paths)).watch


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
