"""Live capture: network interfaces -> frames in the native session, through libpcap.

libpcap is driven through ctypes (the library scapy itself loads with
`conf.use_pcap`), not through scapy's packet objects: a live capture must keep up
with the wire, and building a scapy Packet per frame costs ~100x more than copying
the frame's bytes. libpcap also gives what the analysis needs and scapy's native
sockets do not: the `any` pseudo-interface (LINUX_SLL), nanosecond timestamps, the
wire length of snapped frames, in-kernel BPF filters and the kernel's drop counters.

No Python runs per frame: the capture loop calls `pcap_dispatch` (through ctypes, once
per read of up to `batch_size` frames) with a callback exported by the native engine
(tcptrace._native.Session.tap, src/binding/capture.rs), which copies each frame and its
header fields into the session's own buffer. Python only counts the frames of each read and
tells the session when to analyze what it holds (`Captured`, every `flush_s` or
`batch_size` frames); the session merges several interfaces in timestamp order. While the
wire is quiet a `ClockTick` carrying the current time is yielded every `tick_s`, so the
engine can emit connections that ended or went idle without waiting for traffic.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import select
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tcptrace.errors import (
    CapturePermissionError,
    FilterError,
    LiveCaptureError,
    UnknownInterfaceError,
)

SNAPLEN = 262_144  # libpcap's default (MAXIMUM_SNAPLEN): whole frames, jumbo and TSO included
BUFFER_BYTES = 16 << 20  # kernel ring per interface; bursts beyond it are counted as drops
IMMEDIATE = False
"""Not immediate mode: on Linux libpcap then uses a TPACKET_V3 ring, whose blocks hold
frames back to back at their own size, where immediate mode's TPACKET_V2 ring has one slot
per frame sized for the largest (64 KiB with TSO/GRO offloads: a few hundred frames in
BUFFER_BYTES, against tens of thousands of 420-byte frames in V3 blocks). A block is handed
over when full or BLOCK_TIMEOUT_MS after its first frame: rows wait that much longer."""
BLOCK_TIMEOUT_MS = 100
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
PCAP_TSTAMP_PRECISION_NANO = 1
PCAP_ERROR_NO_SUCH_DEVICE = -5
PCAP_ERROR_PERM_DENIED = -8
PCAP_ERROR_PROMISC_PERM_DENIED = -11


@dataclass(slots=True)
class ClockTick:
    """Time passes with no traffic: the wall clock, nanoseconds since the epoch."""

    ts_ns: int

    @staticmethod
    def now() -> ClockTick:
        return ClockTick(time.time_ns())


@dataclass(slots=True)
class Captured:
    """The session's callback holds `frames` new frames: time to analyze them."""

    frames: int
    merge: bool
    """Several interfaces: the engine orders the frames by time (ties keep arrival order)."""

    def __len__(self) -> int:
        return self.frames


LONG_BYTES = ctypes.sizeof(ctypes.c_long)
"""The C long of `struct timeval` in pcap_pkthdr: the layout of the records that
`Session.feed` reads (the tests' path; the capture itself goes through `Session.tap`)."""

Tap = Callable[[int, int], tuple[int, int]]
"""(linktype, ns_per_unit) -> (pcap_handler address, its user pointer): Session.tap."""


class _Stat(ctypes.Structure):
    _fields_ = [("ps_recv", ctypes.c_uint), ("ps_drop", ctypes.c_uint),
                ("ps_ifdrop", ctypes.c_uint)]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


_LIB: ctypes.CDLL | None = None


def _libpcap() -> ctypes.CDLL:
    """Load libpcap once and declare the signatures used here."""
    global _LIB
    if _LIB is not None:
        return _LIB
    names = [n for n in (ctypes.util.find_library("pcap"),) if n] + [
        "libpcap.so.1", "libpcap.so.0.8", "libpcap.so", "libpcap.dylib"]
    for name in names:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        raise LiveCaptureError("live capture needs libpcap, which is not installed "
                               "(Debian/Ubuntu: apt-get install libpcap0.8)")
    p, i, s = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    signatures: dict[str, tuple[list[type], type | None]] = {
        "pcap_create": ([s, s], p),
        "pcap_set_snaplen": ([p, i], i),
        "pcap_set_promisc": ([p, i], i),
        "pcap_set_timeout": ([p, i], i),
        "pcap_set_immediate_mode": ([p, i], i),
        "pcap_set_buffer_size": ([p, i], i),
        "pcap_set_tstamp_precision": ([p, i], i),
        "pcap_activate": ([p], i),
        "pcap_geterr": ([p], s),
        "pcap_statustostr": ([i], s),
        "pcap_compile": ([p, ctypes.POINTER(_BpfProgram), s, i, ctypes.c_uint32], i),
        "pcap_setfilter": ([p, ctypes.POINTER(_BpfProgram)], i),
        "pcap_freecode": ([ctypes.POINTER(_BpfProgram)], None),
        "pcap_setnonblock": ([p, i, s], i),
        "pcap_get_selectable_fd": ([p], i),
        "pcap_dispatch": ([p, i, p, p], i),
        "pcap_datalink": ([p], i),
        "pcap_datalink_val_to_name": ([i], s),
        "pcap_stats": ([p, ctypes.POINTER(_Stat)], i),
        "pcap_close": ([p], None),
    }
    for fname, (args, res) in signatures.items():
        func = getattr(lib, fname)
        func.argtypes = args
        func.restype = res
    _LIB = lib
    return lib


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", "replace").strip()


@dataclass
class _Handle:
    """One activated libpcap handle on one interface."""

    name: str
    pcap: int
    linktype: int
    ns_per_unit: int
    fd: int
    callback: int = 0
    """The pcap_handler and its user pointer (Session.tap) this handle's frames go to."""
    user: int = 0

    @staticmethod
    def open(lib: ctypes.CDLL, name: str, bpf: str, promisc: bool) -> _Handle:
        errbuf = ctypes.create_string_buffer(256)
        pcap = lib.pcap_create(name.encode(), errbuf)
        if not pcap:
            raise LiveCaptureError(f"cannot capture on {name}: {_text(errbuf.value)}")
        try:
            lib.pcap_set_snaplen(pcap, SNAPLEN)
            lib.pcap_set_promisc(pcap, int(promisc))
            lib.pcap_set_timeout(pcap, BLOCK_TIMEOUT_MS)
            lib.pcap_set_immediate_mode(pcap, int(IMMEDIATE))
            lib.pcap_set_buffer_size(pcap, BUFFER_BYTES)
            nano = lib.pcap_set_tstamp_precision(pcap, PCAP_TSTAMP_PRECISION_NANO) == 0
            status = lib.pcap_activate(pcap)
            if status < 0:
                _raise_activate(lib, pcap, name, status)
            _set_filter(lib, pcap, bpf)
            if lib.pcap_setnonblock(pcap, 1, errbuf) < 0:
                raise LiveCaptureError(f"{name}: {_text(errbuf.value)}")
            fd = lib.pcap_get_selectable_fd(pcap)
            if fd < 0:
                raise LiveCaptureError(f"{name}: this interface cannot be polled")
            return _Handle(name, pcap, lib.pcap_datalink(pcap), 1 if nano else 1000, fd)
        except BaseException:
            lib.pcap_close(pcap)
            raise


def _raise_activate(lib: ctypes.CDLL, pcap: int, name: str, status: int) -> None:
    detail = _text(lib.pcap_geterr(pcap)) or _text(lib.pcap_statustostr(status))
    if status in (PCAP_ERROR_PERM_DENIED, PCAP_ERROR_PROMISC_PERM_DENIED):
        raise CapturePermissionError(
            f"no permission to capture on {name} ({detail}): run as root or grant the "
            "interpreter CAP_NET_RAW and CAP_NET_ADMIN (see docs/live.md)")
    if status == PCAP_ERROR_NO_SUCH_DEVICE:
        raise UnknownInterfaceError(f"no such interface: {name} (see `ip link`; "
                                    "`-i any` captures on all of them)")
    raise LiveCaptureError(f"cannot capture on {name}: {detail}")


def _set_filter(lib: ctypes.CDLL, pcap: int, bpf: str) -> None:
    program = _BpfProgram()
    if lib.pcap_compile(pcap, ctypes.byref(program), bpf.encode(), 1,
                        PCAP_NETMASK_UNKNOWN) < 0:
        raise FilterError(f"--bpf {bpf!r}: {_text(lib.pcap_geterr(pcap))}")
    try:
        if lib.pcap_setfilter(pcap, ctypes.byref(program)) < 0:
            raise LiveCaptureError(f"--bpf {bpf!r}: {_text(lib.pcap_geterr(pcap))}")
    finally:
        lib.pcap_freecode(ctypes.byref(program))


@dataclass
class LiveStats:
    """What the capture saw so far, for the status line and the report."""

    interfaces: list[str] = field(default_factory=list)
    linktypes: list[int] = field(default_factory=list)
    linknames: list[str] = field(default_factory=list)
    """libpcap's names of the link types (EN10MB, LINUX_SLL, ...)."""
    packets: int = 0
    kernel_drops: int = 0
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass
class LiveCapture:
    """Capture on interfaces until a stop condition; `batches()` yields what was captured.

    Open it (`open()` or `with`) before reading: permission, interface and filter
    errors are raised there, before any output.
    """

    interfaces: list[str]
    tap: Tap
    """Where each interface's frames go (Session.tap), called once per interface at open."""
    bpf: str = "tcp"
    duration_s: float | None = None
    count: int | None = None
    promisc: bool = True
    flush_s: float = 0.2
    batch_size: int = 4096
    tick_s: float = 0.5
    status_s: float = 0.5
    on_status: Callable[[LiveStats], None] | None = None
    stats: LiveStats = field(default_factory=LiveStats)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    """(kind, message) of capture errors, once per kind, for the source report."""
    _handles: list[_Handle] = field(default_factory=list)
    _stopping: bool = False

    def open(self) -> LiveCapture:
        lib = _libpcap()
        try:
            for name in self.interfaces:
                handle = _Handle.open(lib, name, self.bpf, self.promisc)
                self._handles.append(handle)
                handle.callback, handle.user = self.tap(handle.linktype, handle.ns_per_unit)
        except BaseException:
            self.close()
            raise
        self.stats.interfaces = [h.name for h in self._handles]
        self.stats.linktypes = [h.linktype for h in self._handles]
        self.stats.linknames = [_text(lib.pcap_datalink_val_to_name(h.linktype))
                                or str(h.linktype) for h in self._handles]
        self.stats.started = time.monotonic()
        return self

    def savefile_linktype(self) -> int:
        """The link type of a pcap file of this capture (`--write`): the interfaces' one."""
        if len(set(self.stats.linktypes)) > 1:
            raise LiveCaptureError(
                "--write: the interfaces have different link types "
                f"({', '.join(map(str, self.stats.linktypes))}); a pcap file holds one; "
                "capture with `-i any` instead")
        return self.stats.linktypes[0]

    def __enter__(self) -> LiveCapture:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._handles:
            self._update_drops()
        lib = _LIB
        for handle in self._handles:
            if lib is not None:
                lib.pcap_close(handle.pcap)
        self._handles = []

    def stop(self) -> None:
        """Ask the capture to end (signal-safe: sets a flag the loop checks every 0.1 s)."""
        self._stopping = True

    def batches(self) -> Iterator[Captured | ClockTick]:
        """Captured frames in small batches, and clock ticks while the wire is quiet.

        Ends on a stop condition; the frames captured up to then are always yielded.
        """
        if not self._handles:
            raise LiveCaptureError("the capture is not open")
        deadline = (self.stats.started + self.duration_s) if self.duration_s is not None else None
        by_fd = {h.fd: h for h in self._handles}
        pending = _Pending()
        last_yield = last_status = time.monotonic()
        while not self._stopping and not self._count_reached():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            due = [now + 0.1]
            if self.on_status is not None:  # (without one, a past status time would spin)
                due.append(last_status + self.status_s)
            due.append(pending.first + self.flush_s if pending.n else last_yield + self.tick_s)
            if deadline is not None:
                due.append(deadline)
            try:
                ready, _, _ = select.select(list(by_fd), [], [], max(0.0, min(due) - now))
            except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for safety
                ready = []
            for fd in ready:
                self._read(by_fd[fd], pending)
            now = time.monotonic()
            if pending.n and (pending.n >= self.batch_size or now - pending.first >= self.flush_s):
                yield self._flush(pending)
                last_yield = now
            elif not pending.n and now - last_yield >= self.tick_s:
                yield ClockTick.now()
                last_yield = now
            if self.on_status is not None and now - last_status >= self.status_s:
                self._update_drops()
                self.on_status(self.stats)
                last_status = now
        # the ring may still hold frames captured before the stop: take them too, once the
        # kernel has handed over the block being filled (it does within BLOCK_TIMEOUT_MS)
        if not IMMEDIATE and not self._count_reached():
            time.sleep(1.5 * BLOCK_TIMEOUT_MS / 1000)
        for handle in self._handles:
            while True:
                more = self._read(handle, pending)
                if pending.n >= self.batch_size:
                    yield self._flush(pending)
                elif not more:
                    break
        if pending.n:
            yield self._flush(pending)
        self._update_drops()

    def _count_reached(self) -> bool:
        return self.count is not None and self.stats.packets >= self.count

    def _read(self, handle: _Handle, pending: _Pending) -> bool:
        """The frames the handle has ready now (non-blocking), up to a full batch and up to
        --count: one `pcap_dispatch`, whose callback (native) takes each frame. True when
        there may be more.

        pcap_breakloop is not needed to stop: the read is bounded and non-blocking, so it
        returns within milliseconds, and Python runs a signal handler only between calls.
        """
        lib = _LIB
        assert lib is not None
        room = self.batch_size - pending.n
        if self.count is not None:
            room = min(room, self.count - self.stats.packets)
        if room <= 0:  # (0 or -1 would mean "no limit" to pcap_dispatch)
            return False
        n: int = lib.pcap_dispatch(handle.pcap, room, handle.callback, handle.user)
        if n < 0:  # the interface went away (-1) or breakloop (-2)
            if n == -1:
                self._warn("capture_error", f"{handle.name}: {_text(lib.pcap_geterr(handle.pcap))}")
            self._stopping = True
            return False
        if n:
            pending.add(n)
            self.stats.packets += n
        return n == room

    def _warn(self, kind: str, message: str) -> None:
        if all(k != kind for k, _ in self.warnings):
            self.warnings.append((kind, message))

    def _flush(self, pending: _Pending) -> Captured:
        return pending.take(merge=len(self._handles) > 1)

    def _update_drops(self) -> None:
        lib = _LIB
        if lib is None:
            return
        drops = 0
        stat = _Stat()
        for handle in self._handles:
            if lib.pcap_stats(handle.pcap, ctypes.byref(stat)) == 0:
                drops += stat.ps_drop + stat.ps_ifdrop
        self.stats.kernel_drops = max(self.stats.kernel_drops, drops)


class _Pending:
    """Frames the session's callback took since the last flush."""

    def __init__(self) -> None:
        self.n = 0
        self.first = 0.0

    def add(self, n: int) -> None:
        if not self.n:
            self.first = time.monotonic()
        self.n += n

    def take(self, merge: bool) -> Captured:
        batch = Captured(self.n, merge)
        self.n = 0
        return batch


__all__ = ["LONG_BYTES", "Captured", "ClockTick", "LiveCapture", "LiveStats", "Tap"]
