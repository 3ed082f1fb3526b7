"""One error hierarchy: the CLI turns any TcptraceError into one line and exit status 2."""


class TcptraceError(Exception):
    """Base of every error tcptrace reports to a user."""


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
