"""Output files that never destroy an input and never leave half a report behind.

`-o capture.pcap` once truncated the capture it was about to read. Every command that
writes a file (analyze -o, report -o, check --junit, live -w) therefore

* refuses a path that is one of its inputs (the same file by device and inode, so a
  hard link or another spelling of the path is caught too): `refuse_inputs`;
* writes a whole document (json, table, HTML, JUnit) to a temporary file beside the target
  and renames it into place only when the run succeeded (`replaced_on_success`): a failed
  run leaves neither a 0-byte file nor a clobbered old report. rename(2) within one
  directory is atomic, so a reader sees the old file or the new one, never a mix.

Streaming formats (jsonl, csv, zeek) are written in place, so that `tail -f` follows them;
the engine opens such a file at its first byte, after the captures were opened
(src/binding.rs Sink), so a capture that cannot be read truncates nothing either.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from tcptrace.errors import TcptraceError
from tcptrace.inputs import status


class OutputIsInputError(TcptraceError):
    """An output path names one of the input files."""


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of `path`; of the file or pipe on standard input for `-`."""
    st = status(path)
    return None if st is None else (st.st_dev, st.st_ino)


def _inputs_of(path: str) -> Iterator[str]:
    """`path`, and the files in it when it is a directory (a directory is not read as a
    capture, but a file in it may be named as the output)."""
    yield path
    if path != "-" and os.path.isdir(path):
        with contextlib.suppress(OSError), os.scandir(path) as entries:
            for entry in entries:
                yield entry.path


def refuse_inputs(output: str | None, inputs: Iterable[str], option: str = "-o") -> None:
    """Raise OutputIsInputError when `output` is the same file as one of `inputs`."""
    if output is None or output == "-":
        return
    target = _identity(output)
    if target is None:  # a path that does not exist yet is no input
        return
    for given in inputs:
        for path in _inputs_of(given):
            if _identity(path) == target:
                raise OutputIsInputError(
                    f"{option} {output}: is the input {path}; refusing to overwrite it")


def refuse_same(first: str | None, second: str | None, options: str) -> None:
    """Raise OutputIsInputError when two outputs (`live -w FILE -o FILE`) name one file."""
    if first is None or second is None:
        return
    if "-" in (first, second):  # stdout: the same only as itself
        if first == second:
            raise OutputIsInputError(f"{options}: both are standard output")
        return
    same = os.path.realpath(first) == os.path.realpath(second)
    if same or (_identity(first) is not None and _identity(first) == _identity(second)):
        raise OutputIsInputError(f"{options}: {first} and {second} are the same file")


def check_writable(path: str) -> None:
    """Fail before any reading (as open() would, with errno and the path) when `path` cannot
    be written, without creating or truncating it."""
    if os.path.exists(path):
        if os.path.isdir(path):
            raise IsADirectoryError(21, os.strerror(21), path)
        if not os.access(path, os.W_OK):
            raise PermissionError(13, os.strerror(13), path)
        return
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise FileNotFoundError(2, os.strerror(2), path)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(13, os.strerror(13), path)


@contextmanager
def replaced_on_success(path: str) -> Iterator[str]:
    """The path to write a whole document to: a temporary file in `path`'s directory, renamed
    onto `path` when the body ends without an exception and removed otherwise.

    A `path` that exists and is not a regular file (/dev/null, /dev/full, a FIFO) is
    written in place: renaming over a device would replace the device node."""
    real = os.path.realpath(path)  # a symbolic link: replace the file it points to
    if os.path.exists(real) and not os.path.isfile(real):
        try:
            yield path
        except OSError as exc:
            if exc.filename is None:  # a write's error names no file: the user's path
                exc.filename = path
            raise
        return
    check_writable(real)
    directory, name = os.path.split(real)
    # os.urandom is what secrets.token_hex reads; importing secrets (hmac, hashlib and
    # OpenSSL, random) cost every run ~5 ms of start-up, also runs that write no file
    temp = os.path.join(directory, f".{name}.{os.urandom(4).hex()}.tmp")
    # created here (O_EXCL, mode 0666 less the umask: the mode a new output gets anyway), so
    # an unwritable directory fails before any reading
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        if os.path.isfile(real):  # an existing report keeps its permissions
            os.chmod(temp, os.stat(real).st_mode & 0o7777)
        yield temp
    except BaseException as exc:
        if getattr(exc, "report_written", False):  # stopped by a signal, the report whole
            os.replace(temp, real)
            raise
        with contextlib.suppress(OSError):
            os.unlink(temp)
        # name the path the user gave (a write's error, ENOSPC say, names no file at all)
        if isinstance(exc, OSError) and exc.filename in (temp, None):
            exc.filename = path
        raise
    try:
        os.replace(temp, real)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
