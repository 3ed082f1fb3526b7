#!/usr/bin/env python3
"""Record small, real TCP captures of the Linux kernel TCP stack.

Each scenario is recorded in a fresh set of network namespaces and written to
``pcaps/linux/NAME.pcap``.  Everything TCP is done by the kernel: the client and
server are plain Python sockets running in ``ip netns exec`` subprocesses (they
are sub-commands of this very script, see ``role`` below).

Topology
--------
Direct (most scenarios)::

    tt-cli [tt-c0 10.77.0.1 / fd77::1] <--veth--> [tt-s0 10.77.0.2 / fd77::2] tt-srv

With a middle box (scenarios needing delay or loss; netem is not available)::

    tt-cli [tt-c0] <--veth--> [tt-mc] tt-mid [tt-ms] <--veth--> [tt-s0] tt-srv

In ``tt-mid`` a userspace forwarder (``forward`` sub-command) opens AF_PACKET
raw sockets on both interfaces (promiscuous) and copies every frame as-is to the
other side, like a bridge, after a configurable one-way delay, optionally
dropping the first SYN (``first-syn``) or the first SYN/ACK (``first-synack``).

Offloads (tx/rx checksum, TSO, GSO, GRO) are disabled on every veth so that the
captured segments are wire-sized and carry valid checksums.  Static neighbour
entries are installed so no ARP/ND resolution delays the first SYN.  TCP
timestamps stay enabled (Linux default).

Captures are taken with ``tcpdump --immediate-mode -U -s 0 -Z root -w FILE -i IF
tcp`` (Ethernet link type; ``-i any -y LINUX_SLL2`` for ``any_sll2``), started
before the scenario (we wait for its "listening on" line) and stopped with
SIGINT ~0.3 s after it ends.  ``--immediate-mode`` matters: with TPACKET_V3
block buffering, packets still in the ring when SIGINT arrives are lost.
``-Z root`` keeps tcpdump from dropping privileges before opening the file.

Usage (as root)::

    python3 pcaps/record_linux.py                 # record all scenarios
    python3 pcaps/record_linux.py --only keepalive  # record one scenario
    python3 pcaps/record_linux.py --list

All namespaces (tt-cli, tt-srv, tt-mid) and processes created are removed on
exit, also on error.  Internal sub-commands: ``role`` (client/server programs)
and ``forward`` (the middle-box forwarder).
"""

from __future__ import annotations

import argparse
import collections
import http.server
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

SCRIPT = Path(__file__).resolve()
OUT_DIR = SCRIPT.parent / "linux"

NS_CLI, NS_SRV, NS_MID = "tt-cli", "tt-srv", "tt-mid"
IF_CLI, IF_SRV, IF_MID_C, IF_MID_S = "tt-c0", "tt-s0", "tt-mc", "tt-ms"
MAC_CLI, MAC_SRV = "02:77:00:00:00:01", "02:77:00:00:00:02"
CLI4, SRV4 = "10.77.0.1", "10.77.0.2"
CLI6, SRV6 = "fd77::1", "fd77::2"
PORT = 8080
DOWNLOAD_BYTES = 200_000
REFUSED_PORT = 8081


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing output."""
    return subprocess.run(cmd, check=check, text=True, capture_output=True)


def ns_run(ns: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run("ip", "netns", "exec", ns, *cmd, check=check)


def log(msg: str) -> None:
    print(f"[record] {msg}", file=sys.stderr, flush=True)


def wait_until(deadline: float) -> None:
    """Sleep until the absolute wall-clock time ``deadline``."""
    while (left := deadline - time.time()) > 0:
        time.sleep(min(left, 0.05) if left > 0.01 else left)


def recv_until(sock: socket.socket, buf: bytearray, marker: bytes) -> bytes:
    """Receive until ``marker`` is in ``buf``; return and consume up to it."""
    while marker not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"EOF while waiting for {marker!r}")
        buf += chunk
    idx = buf.index(marker) + len(marker)
    out = bytes(buf[:idx])
    del buf[:idx]
    return out


def recv_exact(sock: socket.socket, buf: bytearray, n: int) -> bytes:
    while len(buf) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("EOF in body")
        buf += chunk
    out = bytes(buf[:n])
    del buf[:n]
    return out


def drain_to_eof(sock: socket.socket) -> int:
    total = 0
    while chunk := sock.recv(65536):
        total += len(chunk)
    return total


def family_of(addr: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def listen(addr: str, port: int = PORT) -> socket.socket:
    srv = socket.socket(family_of(addr), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(8)
    print("READY", flush=True)
    return srv


def connect(addr: str, port: int = PORT,
            setup: Callable[[socket.socket], None] | None = None) -> socket.socket:
    sock = socket.socket(family_of(addr), socket.SOCK_STREAM)
    if setup:
        setup(sock)
    sock.connect((addr, port))
    return sock


# --------------------------------------------------------------------------
# role programs (run inside the namespaces via `record_linux.py role ...`)
# --------------------------------------------------------------------------

@dataclass
class RoleArgs:
    addr: str
    deadline: float = 0.0


def srv_ping_pong(a: RoleArgs) -> None:
    """Answer each line with PONG, close after EOF (server closes second)."""
    with listen(a.addr) as srv:
        conn, _ = srv.accept()
        buf = bytearray()
        with conn:
            while True:
                try:
                    recv_until(conn, buf, b"\n")
                except ConnectionError:
                    break
                conn.sendall(b"PONG\n")


def cli_ping_close(a: RoleArgs) -> None:
    with connect(a.addr) as s:
        s.sendall(b"PING\n")
        recv_until(s, bytearray(), b"\n")
    time.sleep(0.3)  # keep the process around while the server's FIN arrives


def srv_http10(a: RoleArgs) -> None:
    body = (b"0123456789abcdef" * 200)[:3000]
    head = (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    with listen(a.addr) as srv:
        conn, _ = srv.accept()
        with conn:
            recv_until(conn, bytearray(), b"\r\n\r\n")
            conn.sendall(head + body)
    time.sleep(0.3)


def cli_http10(a: RoleArgs) -> None:
    with connect(a.addr) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        drain_to_eof(s)


def simultaneous_side(sock: socket.socket, deadline: float) -> None:
    wait_until(deadline)
    sock.shutdown(socket.SHUT_WR)
    drain_to_eof(sock)
    sock.close()
    time.sleep(0.5)


def srv_simultaneous(a: RoleArgs) -> None:
    with listen(a.addr) as srv:
        conn, _ = srv.accept()
        recv_until(conn, bytearray(), b"\n")
        conn.sendall(b"PONG\n")
        simultaneous_side(conn, a.deadline)


def cli_simultaneous(a: RoleArgs) -> None:
    s = connect(a.addr)
    s.sendall(b"PING\n")
    recv_until(s, bytearray(), b"\n")
    simultaneous_side(s, a.deadline)


def srv_half_close(a: RoleArgs) -> None:
    with listen(a.addr) as srv:
        conn, _ = srv.accept()
        with conn:
            drain_to_eof(conn)  # read the request until the client's FIN
            chunk = bytes(range(65, 91)) * 200  # 5200 bytes
            for i in range(4):  # 4 * 5200 = 20800 bytes
                if i:
                    time.sleep(0.05)
                conn.sendall(chunk)
    time.sleep(0.3)


def cli_half_close(a: RoleArgs) -> None:
    with connect(a.addr) as s:
        s.sendall(b"GET /data\n")
        s.shutdown(socket.SHUT_WR)
        got = drain_to_eof(s)
        assert got == 20800, got


def cli_refused(a: RoleArgs) -> None:
    try:
        connect(a.addr, REFUSED_PORT)
    except ConnectionRefusedError:
        return
    raise SystemExit("connect to 8081 unexpectedly succeeded")


def srv_abort(a: RoleArgs) -> None:
    with listen(a.addr) as srv:
        conn, _ = srv.accept()
        with conn:
            buf = bytearray()
            recv_until(conn, buf, b"\n")
            conn.sendall(b"PONG\n")
            try:
                drain_to_eof(conn)
            except ConnectionResetError:
                print("server: got ECONNRESET", file=sys.stderr)


def cli_abort(a: RoleArgs) -> None:
    s = connect(a.addr)
    s.sendall(b"PING\n")
    recv_until(s, bytearray(), b"\n")
    time.sleep(0.1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def keepalive_setup(s: socket.socket) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 5)


def cli_keepalive(a: RoleArgs) -> None:
    with connect(a.addr, setup=keepalive_setup) as s:
        buf = bytearray()
        s.sendall(b"PING\n")
        recv_until(s, buf, b"\n")
        time.sleep(3.5)
        s.sendall(b"PING again\n")
        recv_until(s, buf, b"\n")
    time.sleep(0.3)


class Http11Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = (b"0123456789abcdef" * (DOWNLOAD_BYTES // 16) if self.path == "/big"
                else f"You asked for {self.path}\n".encode())
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def srv_http11(a: RoleArgs) -> None:
    httpd = http.server.HTTPServer((a.addr, PORT), Http11Handler)
    print("READY", flush=True)
    httpd.handle_request()  # exactly one connection (all its requests)
    httpd.server_close()
    time.sleep(0.3)


def read_http_response(s: socket.socket, buf: bytearray) -> bytes:
    head = recv_until(s, buf, b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return recv_exact(s, buf, length)


def cli_download(a: RoleArgs) -> None:
    s = connect(a.addr)
    buf = bytearray()
    s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    assert len(read_http_response(s, buf)) == DOWNLOAD_BYTES
    s.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    read_http_response(s, buf)
    assert drain_to_eof(s) == 0 and not buf
    s.close()
    time.sleep(0.3)


def cli_http11(a: RoleArgs) -> None:
    s = connect(a.addr)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    s.sendall(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
    read_http_response(s, buf)
    time.sleep(0.2)
    req2 = b"GET /two HTTP/1.1\r\nHost: x\r\n\r\n"
    s.sendall(req2[:10])
    time.sleep(0.05)
    s.sendall(req2[10:])
    read_http_response(s, buf)
    time.sleep(0.2)
    s.sendall(b"GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    read_http_response(s, buf)
    assert drain_to_eof(s) == 0 and not buf
    s.close()
    time.sleep(0.3)


def srv_midstream(a: RoleArgs) -> None:
    """Answer ticks; close (SHUT_WR first) 1 s after GO arrives on stdin."""
    with listen(a.addr) as srv:
        conn, _ = srv.accept()
        go = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.readline(), go.set()), daemon=True).start()
        go_at: float | None = None
        buf = bytearray()
        conn.settimeout(0.02)
        while go_at is None or time.monotonic() < go_at + 1.0:
            if go_at is None and go.is_set():
                go_at = time.monotonic()
            try:
                chunk = conn.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                raise SystemExit("client closed first in midstream")
            buf += chunk
            while b"\n" in buf:
                line = recv_until(conn, buf, b"\n")
                conn.sendall(line.replace(b"tick", b"tock"))
        conn.settimeout(None)
        conn.shutdown(socket.SHUT_WR)
        drain_to_eof(conn)
        conn.close()
    time.sleep(0.3)


def cli_midstream(a: RoleArgs) -> None:
    s = connect(a.addr)
    print("CONNECTED", flush=True)
    n = 0
    next_tick = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= next_tick:
            s.sendall(b"tick %d\n" % n)
            n += 1
            next_tick += 0.1
            continue
        ready, _, _ = select.select([s], [], [], next_tick - now)
        if ready and not s.recv(4096):
            break
    s.close()
    time.sleep(0.3)


ROLES: dict[str, Callable[[RoleArgs], None]] = {
    "srv_ping_pong": srv_ping_pong,
    "cli_ping_close": cli_ping_close,
    "srv_http10": srv_http10,
    "cli_http10": cli_http10,
    "srv_simultaneous": srv_simultaneous,
    "cli_simultaneous": cli_simultaneous,
    "srv_half_close": srv_half_close,
    "cli_half_close": cli_half_close,
    "cli_refused": cli_refused,
    "srv_abort": srv_abort,
    "cli_abort": cli_abort,
    "cli_keepalive": cli_keepalive,
    "srv_http11": srv_http11,
    "cli_http11": cli_http11,
    "cli_download": cli_download,
    "srv_midstream": srv_midstream,
    "cli_midstream": cli_midstream,
}


# --------------------------------------------------------------------------
# the middle-box forwarder (runs in tt-mid via `record_linux.py forward ...`)
# --------------------------------------------------------------------------

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
TCP_SYN, TCP_ACK = 0x02, 0x10


def tcp_flags(frame: bytes) -> int | None:
    """TCP flags byte of an Ethernet frame, or None if it is not TCP."""
    if len(frame) < 14:
        return None
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype == 0x0800 and len(frame) >= 34 and frame[23] == 6:
        off = 14 + (frame[14] & 0x0F) * 4
    elif ethertype == 0x86DD and len(frame) >= 54 and frame[20] == 6:
        off = 14 + 40
    else:
        return None
    return frame[off + 13] if len(frame) > off + 13 else None


def drop_matches(rule: str, flags: int | None) -> bool:
    if flags is None:
        return False
    syn_ack = flags & (TCP_SYN | TCP_ACK)
    if rule == "first-syn":
        return syn_ack == TCP_SYN
    if rule == "first-synack":
        return syn_ack == TCP_SYN | TCP_ACK
    return False


def open_raw(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((ifname, ETH_P_ALL))
    mreq = struct.pack("iHH8s", socket.if_nametoindex(ifname), PACKET_MR_PROMISC, 0, b"")
    s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    return s


def forward(if_a: str, if_b: str, delay: float, drop: str | None) -> None:
    """Bridge frames between two interfaces with a one-way delay and drops."""
    a, b = open_raw(if_a), open_raw(if_b)
    peer = {a: b, b: a}
    pending: collections.deque[tuple[float, socket.socket, bytes]] = collections.deque()
    dropped = False
    print("READY", flush=True)
    while True:
        timeout = max(0.0, pending[0][0] - time.monotonic()) if pending else None
        readable, _, _ = select.select([a, b], [], [], timeout)
        for s in readable:
            frame, addr = s.recvfrom(65536)
            if addr[2] == PACKET_OUTGOING:
                continue
            if drop and not dropped and drop_matches(drop, tcp_flags(frame)):
                dropped = True
                print(f"forwarder: dropped {drop} from {addr[0]} at {time.time():.6f}",
                      file=sys.stderr, flush=True)
                continue
            pending.append((time.monotonic() + delay, peer[s], frame))
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _, out, frame = pending.popleft()
            out.send(frame)


# --------------------------------------------------------------------------
# orchestration: namespaces, processes, tcpdump
# --------------------------------------------------------------------------

class Proc:
    """A subprocess whose stdout lines are collected by a reader thread."""

    def __init__(self, argv: list[str], stdin: bool = False) -> None:
        self.argv = argv
        self.popen = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        for stream, sink in ((self.popen.stdout, self.stdout), (self.popen.stderr, self.stderr)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    @staticmethod
    def _pump(stream: IO[str], sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    def expect(self, word: str, timeout: float = 10.0, stderr: bool = False) -> None:
        """Wait until a line containing ``word`` appears on stdout (or stderr)."""
        sink = self.stderr if stderr else self.stdout
        end = time.monotonic() + timeout
        exited_at: float | None = None
        while time.monotonic() < end:
            if any(word in line for line in sink):
                return
            if exited_at is None and self.popen.poll() is not None:
                exited_at = time.monotonic()
            if exited_at is not None and time.monotonic() - exited_at > 0.3:
                break
            time.sleep(0.01)
        raise RuntimeError(f"{self.argv}: no {word!r}; stderr={self.stderr}")

    def send(self, text: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(text)
        self.popen.stdin.flush()

    def wait(self, timeout: float = 20.0) -> int:
        rc = self.popen.wait(timeout)
        time.sleep(0.05)
        if rc != 0:
            raise RuntimeError(f"{self.argv} exited {rc}; stderr={self.stderr}")
        return rc

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@dataclass
class Scenario:
    name: str
    description: str
    server: str | None
    client: str
    ipv6: bool = False
    middle: bool = False
    delay: float = 0.0
    drop: str | None = None
    capture_ns: str = NS_CLI
    capture_if: str = IF_CLI
    linktype: str | None = None
    deadline_in: float = 0.0  # >0: pass an absolute close deadline to both sides
    midstream: bool = False
    folder: str = "linux"
    """Where under pcaps/ the capture goes: `linux` holds the small life-cycle scenarios
    the tests analyze as one set; bigger ones live beside it."""


class Lab:
    """Namespaces + veths for one scenario; removes everything on exit."""

    def __init__(self, middle: bool, ipv6: bool) -> None:
        self.middle, self.ipv6 = middle, ipv6
        self.procs: list[Proc] = []

    def __enter__(self) -> Lab:
        cleanup_namespaces()
        try:
            self._build()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for p in reversed(self.procs):
            p.stop(signal.SIGKILL)
        cleanup_namespaces()

    def _build(self) -> None:
        for ns in (NS_CLI, NS_SRV) + ((NS_MID,) if self.middle else ()):
            run("ip", "netns", "add", ns)
            ns_run(ns, "ip", "link", "set", "lo", "up")
        if self.middle:
            run("ip", "link", "add", IF_CLI, "netns", NS_CLI, "type", "veth",
                "peer", "name", IF_MID_C, "netns", NS_MID)
            run("ip", "link", "add", IF_SRV, "netns", NS_SRV, "type", "veth",
                "peer", "name", IF_MID_S, "netns", NS_MID)
            ns_run(NS_MID, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            ns_run(NS_MID, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
            for ifname in (IF_MID_C, IF_MID_S):
                self._prepare_if(NS_MID, ifname)
                ns_run(NS_MID, "ip", "link", "set", ifname, "promisc", "on", "up")
        else:
            run("ip", "link", "add", IF_CLI, "netns", NS_CLI, "type", "veth",
                "peer", "name", IF_SRV, "netns", NS_SRV)
        self._host(NS_CLI, IF_CLI, MAC_CLI, CLI4, CLI6, MAC_SRV, SRV4, SRV6)
        self._host(NS_SRV, IF_SRV, MAC_SRV, SRV4, SRV6, MAC_CLI, CLI4, CLI6)

    @staticmethod
    def _prepare_if(ns: str, ifname: str) -> None:
        ns_run(ns, "ethtool", "-K", ifname, "tx", "off", "rx", "off", "tso", "off",
               "gso", "off", "gro", "off")

    def _host(self, ns: str, ifname: str, mac: str, ip4: str, ip6: str,
              peer_mac: str, peer4: str, peer6: str) -> None:
        self._prepare_if(ns, ifname)
        ns_run(ns, "ip", "link", "set", ifname, "address", mac)
        ns_run(ns, "ip", "addr", "add", f"{ip4}/24", "dev", ifname)
        ns_run(ns, "ip", "link", "set", ifname, "up")
        ns_run(ns, "ip", "neigh", "replace", peer4, "lladdr", peer_mac, "dev", ifname,
               "nud", "permanent")
        if self.ipv6:
            ns_run(ns, "ip", "-6", "addr", "add", f"{ip6}/64", "dev", ifname, "nodad")
            ns_run(ns, "ip", "-6", "neigh", "replace", peer6, "lladdr", peer_mac,
                   "dev", ifname, "nud", "permanent")

    def spawn(self, ns: str, argv: list[str], stdin: bool = False) -> Proc:
        p = Proc(["ip", "netns", "exec", ns, *argv], stdin=stdin)
        self.procs.append(p)
        return p

    def role(self, ns: str, name: str, addr: str, deadline: float = 0.0,
             stdin: bool = False) -> Proc:
        return self.spawn(ns, [sys.executable, str(SCRIPT), "role", name, addr,
                               "--deadline", repr(deadline)], stdin=stdin)

    def start_capture(self, ns: str, ifname: str, path: Path,
                      linktype: str | None) -> Proc:
        argv = ["tcpdump", "--immediate-mode", "-U", "-s", "0", "-Z", "root", "-w", str(path),
                "-i", ifname]
        if linktype:
            argv += ["-y", linktype]
        p = self.spawn(ns, [*argv, "tcp"])
        p.expect("listening on", stderr=True)
        return p


def cleanup_namespaces() -> None:
    existing = run("ip", "netns", "list").stdout.split()
    for ns in (NS_CLI, NS_SRV, NS_MID):
        if ns in existing:
            run("ip", "netns", "del", ns, check=False)


def tcp_states(ns: str) -> str:
    out = ns_run(ns, "ss", "-tanH", check=False).stdout.strip()
    return " | ".join(" ".join(line.split()) for line in out.splitlines()) or "(none)"


def stop_capture(cap: Proc) -> None:
    time.sleep(0.3)
    cap.stop(signal.SIGINT)
    summary = [line for line in cap.stderr if "packets" in line]
    log(f"tcpdump: {'; '.join(summary)}")


def record(sc: Scenario) -> None:
    out = SCRIPT.parent / sc.folder / f"{sc.name}.pcap"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    srv_addr = SRV6 if sc.ipv6 else SRV4
    log(f"=== {sc.name} ===")
    with Lab(sc.middle, sc.ipv6) as lab:
        if sc.middle:
            fwd = lab.spawn(NS_MID, [sys.executable, str(SCRIPT), "forward", IF_MID_C,
                                     IF_MID_S, "--delay", str(sc.delay)]
                            + (["--drop", sc.drop] if sc.drop else []))
            fwd.expect("READY")
        deadline = time.time() + sc.deadline_in if sc.deadline_in else 0.0
        srv = None
        if sc.server:
            srv = lab.role(NS_SRV, sc.server, srv_addr, deadline, stdin=sc.midstream)
            srv.expect("READY")
        if sc.midstream:
            cli = lab.role(NS_CLI, sc.client, srv_addr)
            cli.expect("CONNECTED")
            time.sleep(0.25)  # a few ticks happen before the capture starts
            cap = lab.start_capture(sc.capture_ns, sc.capture_if, out, sc.linktype)
            assert srv is not None
            srv.send("GO\n")
        else:
            cap = lab.start_capture(sc.capture_ns, sc.capture_if, out, sc.linktype)
            cli = lab.role(NS_CLI, sc.client, srv_addr, deadline)
        cli.wait()
        if srv:
            srv.wait()
        stop_capture(cap)
        for label, ns in (("client", NS_CLI), ("server", NS_SRV)):
            log(f"{label} sockets: {tcp_states(ns)}")
        for p in lab.procs:
            for line in p.stderr:
                if "forwarder" in line or "server:" in line:
                    log(line)
    log(f"wrote {out} ({out.stat().st_size} bytes)")


SCENARIOS: list[Scenario] = [
    Scenario("client_close", "IPv4 PING/PONG, client closes first (client TIME_WAIT); "
             "direct veth, captured on client side.", "srv_ping_pong", "cli_ping_close"),
    Scenario("server_close", "HTTP/1.0 GET with 3000-byte body, server closes first "
             "(server TIME_WAIT); direct veth, captured on client side.",
             "srv_http10", "cli_http10"),
    Scenario("simultaneous_close", "PING/PONG then both sides shutdown(SHUT_WR) at the "
             "same wall-clock instant, FINs cross (both CLOSING -> TIME_WAIT); forwarder "
             "with 50 ms one-way delay, captured on client side.",
             "srv_simultaneous", "cli_simultaneous", middle=True, delay=0.05,
             deadline_in=2.5),
    Scenario("half_close", "Client sends request then SHUT_WR; server reads to EOF, then "
             "sends 20800 bytes in 4 writes 50 ms apart and closes; direct veth, "
             "captured on client side.", "srv_half_close", "cli_half_close"),
    Scenario("refused", "Single connect to 10.77.0.2:8081 (no listener) -> RST/ACK; "
             "direct veth, captured on client side.", None, "cli_refused"),
    Scenario("abort_linger0", "PING/PONG then client close() with SO_LINGER {1,0} -> RST "
             "from the client in ESTABLISHED; direct veth, captured on client side.",
             "srv_abort", "cli_abort"),
    Scenario("keepalive", "SO_KEEPALIVE idle=1 intvl=1 cnt=5, PING/PONG, 3.5 s idle "
             "(keep-alive probes + ACKs), another PING/PONG, client closes first; "
             "direct veth, captured on client side.", "srv_ping_pong", "cli_keepalive"),
    Scenario("http_reuse", "http.server HTTP/1.1 keep-alive: GET /one, /two (split in 2 "
             "segments, TCP_NODELAY), /three with Connection: close; ~200 ms idle between; "
             "server closes first; direct veth, captured on client side.",
             "srv_http11", "cli_http11"),
    Scenario("download", "http.server HTTP/1.1: GET /big (200,000-byte body, ~140 full "
             "segments: the bulk path's steady runs), then GET /after with Connection: "
             "close on the same connection; server closes first; direct veth, captured on "
             "client side.", "srv_http11", "cli_download", folder="transfer"),
    Scenario("syn_retransmit", "First SYN dropped by the forwarder (0 delay), SYN "
             "retransmitted ~1 s later; PING/PONG, client closes first; captured on "
             "client side (before the forwarder).", "srv_ping_pong", "cli_ping_close",
             middle=True, drop="first-syn"),
    Scenario("synack_lost", "First SYN/ACK dropped by the forwarder (20 ms one-way "
             "delay); captured on SERVER side, so the lost SYN/ACK is visible, then SYN "
             "and SYN/ACK retransmissions; PING/PONG, client closes first.",
             "srv_ping_pong", "cli_ping_close", middle=True, delay=0.02,
             drop="first-synack", capture_ns=NS_SRV, capture_if=IF_SRV),
    Scenario("ipv6", "client_close over IPv6 (fd77::1 -> [fd77::2]:8080); direct veth, "
             "captured on client side.", "srv_ping_pong", "cli_ping_close", ipv6=True),
    Scenario("midstream", "Ticks every 100 ms on an established connection; tcpdump "
             "started after the handshake (no SYN in capture); ~1 s later the server "
             "closes first; direct veth, captured on client side.",
             "srv_midstream", "cli_midstream", midstream=True),
    Scenario("any_sll2", "client_close captured with `tcpdump -i any -y LINUX_SLL2` in the "
             "client namespace (link type LINUX_SLL2); direct veth.",
             "srv_ping_pong", "cli_ping_close", linktype="LINUX_SLL2",
             capture_if="any"),
]


README_NOTES = [
    "tshark shows relative sequence numbers by default; raw ISNs are random.",
    "RST segments (refused, abort_linger0) carry no TCP options, hence no timestamps.",
    "keepalive: Linux probes are zero-length ACKs with seq = snd_nxt - 1; the peer's "
    "ACK echoes a stale TSecr (the probe is out of window so ts_recent is not updated).",
    "synack_lost: the client's SYN retransmission and the server's first SYN/ACK "
    "retransmission cross in flight; the server answers the retransmitted SYN with "
    "another SYN/ACK (TSecr = TSval of the FIRST SYN), which reaches the already "
    "ESTABLISHED client and triggers a (challenge/dup) ACK with ack = server ISN + 1.",
    "simultaneous_close: each FIN's ack field does not cover the other side's FIN, "
    "showing both were sent before the peer's FIN arrived; ss showed TIME-WAIT on both.",
    "midstream: the capture starts with a data segment of an established connection.",
    "Timestamps are host clock at capture time; synack_lost is seen from the server "
    "side, everything else from the client side.",
]


def write_readme() -> None:
    kernel = run("uname", "-r").stdout.strip()
    lines = [
        "# Linux kernel TCP captures",
        "",
        "Recorded by `pcaps/record_linux.py` (run as root) between network namespaces "
        f"on Linux kernel `{kernel}` with tcpdump "
        f"{run('tcpdump', '--version').stdout.split()[2]}. Client 10.77.0.1 / fd77::1, "
        "server 10.77.0.2 / fd77::2 port 8080; offloads off on all veths (wire-sized "
        "segments, valid checksums); TCP timestamps on; capture filter `tcp`; Ethernet "
        "link type unless noted. Delay/loss comes from a userspace AF_PACKET forwarder in "
        "a middle namespace (netem unavailable).",
        "",
    ]
    lines += [f"- `{sc.name}.pcap`: {sc.description}" if sc.folder == "linux" else
              f"- `../{sc.folder}/{sc.name}.pcap`: {sc.description}" for sc in SCENARIOS]
    lines += ["", "## Notes", ""] + [f"- {note}" for note in README_NOTES]
    (OUT_DIR / "README.md").write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", metavar="NAME", help="record only this scenario")
    ap.add_argument("--list", action="store_true", help="list scenarios")
    sub = ap.add_subparsers(dest="cmd")
    r = sub.add_parser("role", help="(internal) run a client/server program")
    r.add_argument("name", choices=sorted(ROLES))
    r.add_argument("addr")
    r.add_argument("--deadline", type=float, default=0.0)
    f = sub.add_parser("forward", help="(internal) middle-box forwarder")
    f.add_argument("if_a")
    f.add_argument("if_b")
    f.add_argument("--delay", type=float, default=0.0)
    f.add_argument("--drop", choices=["first-syn", "first-synack"])
    args = ap.parse_args(argv)

    if args.cmd == "role":
        ROLES[args.name](RoleArgs(args.addr, args.deadline))
        return 0
    if args.cmd == "forward":
        forward(args.if_a, args.if_b, args.delay, args.drop)
        return 0
    if args.list:
        for sc in SCENARIOS:
            print(f"{sc.name}: {sc.description}")
        return 0
    if os.geteuid() != 0:
        ap.error("must run as root")
    # turn SIGTERM into SystemExit so the finally/with blocks clean up
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chosen = [sc for sc in SCENARIOS if args.only in (None, sc.name)]
    if not chosen:
        ap.error(f"unknown scenario {args.only!r}")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    try:
        for sc in chosen:
            try:
                record(sc)
            except Exception as exc:  # keep going with the other scenarios
                log(f"FAILED {sc.name}: {exc}")
                failed.append(sc.name)
    finally:
        cleanup_namespaces()
    if args.only is None:
        write_readme()
    if failed:
        log(f"failed scenarios: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
