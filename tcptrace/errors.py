"""One error hierarchy: the CLI turns any TcptraceError into one line and exit status 2."""


class TcptraceError(Exception):
    """Base of every error tcptrace reports to a user."""


class PipeClosed(Exception):
    """Standard output was closed by its reader (`| head -1`): raised in place of the
    BrokenPipeError, which click would otherwise turn into exit status 1 on its own."""


class CaptureError(TcptraceError):
    """A capture file cannot be opened or is not a capture at all."""


class FilterError(TcptraceError):
    """A --filter expression cannot be parsed."""


class LiveCaptureError(TcptraceError):
    """A live capture cannot be started (libpcap missing, interface down, ...)."""


class CapturePermissionError(LiveCaptureError):
    """The process may not capture: no root, no CAP_NET_RAW (a PermissionError from libpcap)."""


class UnknownInterfaceError(LiveCaptureError):
    """`-i NAME` names no network interface."""


class EngineFailure(TcptraceError):
    """The native engine failed (a bug): reported in one line naming the file and the frame,
    after the connections read so far were written."""


class Terminated(BaseException):
    """SIGTERM arrived (the command line turns it into this, as Python turns SIGINT into
    KeyboardInterrupt): a run stops the way Ctrl-C stops it."""


class Interrupted(Exception):
    """A run was stopped by a signal after its report was completed for the frames read so
    far: the command line prints one line and exits with 128 + the signal's number."""

    def __init__(self, signum: int, frames: int) -> None:
        super().__init__(signum, frames)
        self.signum, self.frames = signum, frames
        self.report_written = False
        """Whether the report (of the frames read) was written before this was raised."""
        self.warnings: list[str] = []
        """The run's warnings about what it read (printed before the one line)."""
