"""The entry point: a command line read and run, every user-caused failure turned into one
line on stderr (exit status 2 for a bad argument, an unreadable file or a bad filter).

Warnings about damaged captures go to stderr once per kind; the report goes to stdout or
-o FILE. The common `analyze` command line is read without click (tcptrace.quickargs:
click and what it imports are half of a small run's start); everything else goes to the
click commands in tcptrace.commands. No analysis logic here.
"""

from __future__ import annotations

import gc
import io
import signal
import sys
import threading
from types import FrameType

from tcptrace.analysis import analyze, say
from tcptrace.errors import Interrupted, PipeClosed, TcptraceError, Terminated
from tcptrace.quickargs import analyze_params

# typing is for mypy only: importing it costs ~5 ms of a run's start (docs/performance.md)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

EXIT_USAGE = 2


def silence_stdout() -> None:
    """After the reader of standard output went away: later writes, and the flush at exit,
    go to /dev/null instead of raising BrokenPipeError again (Python's documented recipe,
    https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno() if sys.stdout is not None else 1)
    except (AttributeError, ValueError, OSError):  # a stream Python replaced (tests)
        pass
    finally:
        os.close(devnull)


def fail(message: str) -> NoReturn:
    """A failure the user can mend: one line, exit status 2."""
    say(f"tcptrace: error: {message}")
    sys.exit(EXIT_USAGE)


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def stop(signum: int, detail: str = "") -> NoReturn:
    """A run stopped by a signal: one line, and the shell's convention for the status."""
    say(f"tcptrace: interrupted by {signal.Signals(signum).name}{detail}")
    sys.exit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning every user-caused failure into one line."""
    # `check` and `report` hold a dict per connection (hundreds of thousands of objects,
    # no reference cycles); the default GC thresholds would rescan them over and over.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    _escape_what_stdout_cannot_encode()
    # SIGTERM stops a run as Ctrl-C does (the report of what was read, then exit 143);
    # the previous handler is back afterwards (tests call main() in their own process)
    if threading.current_thread() is not threading.main_thread():
        _main(argv)
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _escape_what_stdout_cannot_encode() -> None:
    """A rule name or a file name the locale's encoding lacks (LANG=...ISO-8859-1, or
    PYTHONIOENCODING=ascii) is written escaped (\\u2014), as Python already does on
    stderr, instead of ending the run in a UnicodeEncodeError."""
    stdout = sys.stdout
    if isinstance(stdout, io.TextIOWrapper) and stdout.errors == "strict":
        stdout.reconfigure(errors="backslashreplace")


def _main(argv: list[str] | None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        params = analyze_params(args)
        if params is not None:  # the common `analyze` line: no click to import
            analyze(**params)
            return
        from tcptrace import commands

        status = commands.run(args)
    except (KeyboardInterrupt, EOFError):  # Ctrl-C outside a run, as click reports it
        say("")  # (the blank line closes the terminal's ^C echo)
        stop(signal.SIGINT)
    except Interrupted as exc:  # the engine stopped where it was; what it read is reported
        covered = "; the report covers them" if exc.report_written else ""
        stop(exc.signum, f" after {exc.frames} frames{covered}")
    except Terminated:
        stop(signal.SIGTERM)
    except TcptraceError as exc:
        fail(str(exc))
    except (PipeClosed, BrokenPipeError):  # `tcptrace analyze big.pcap | head`: done, quietly
        silence_stdout()
        sys.exit(0)
    except OSError as exc:
        if exc.strerror and exc.filename is not None:
            fail(f"{exc.filename}: {exc.strerror}")
        fail(exc.strerror or str(exc))  # (not ": No space left on device")
    # without standalone mode, click returns the code a command gave to ctx.exit(code)
    if isinstance(status, int) and status:
        sys.exit(status)


if __name__ == "__main__":
    main()
