"""`tcptrace live`: real Linux traffic between two network namespaces, captured as it happens.

Topology (built once for the module, removed even on failure)::

    ttlive-a-PID [ttlaPID 10.78.0.1] <--veth--> [ttlbPID 10.78.0.2] ttlive-b-PID

`tcptrace live` runs INSIDE ttlive-a-PID; the clients run there too, the servers in
ttlive-b-PID. One capture session runs every scenario at once (a normal
close each way, an abort with SO_LINGER 0, keep-alive probes, HTTP/1.1 reuse, and
a connection still open when SIGINT stops the capture); the tests then assert on
its output. The module needs root and `ip netns`; the unit tests at the end do not.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import LINUX
from livefeed import Frame, read_pcap, records

from tcptrace import _native
from tcptrace.errors import CapturePermissionError, EngineFailure, UnknownInterfaceError
from tcptrace.report.stream import StreamTableWriter
from tcptrace.sources.live import LONG_BYTES, _raise_activate

# unique per test process: CI or a colleague may run this module at the same time
PID = os.getpid()
NS_A, NS_B, IF_A, IF_B = f"ttlive-a-{PID}", f"ttlive-b-{PID}", f"ttla{PID}", f"ttlb{PID}"
CLI, SRV = "10.78.0.1", "10.78.0.2"
TCPTRACE = str(Path(sys.executable).parent / "tcptrace")

needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("ethtool") is None,
    reason="live capture tests need root, iproute2 (ip netns) and ethtool")

SERVER = r"""
import http.server, socket, sys, threading
SRV = "10.78.0.2"
def serve(port, handler):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((SRV, port))
    s.listen(16)
    def loop():
        while True:
            c, _ = s.accept()
            threading.Thread(target=handler, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
def echo(c):  # PONG for each line; close after the client's FIN: the client closes first
    with c:
        buf = b""
        try:
            while data := c.recv(4096):
                buf += data
                while b"\n" in buf:
                    _, buf = buf.split(b"\n", 1)
                    c.sendall(b"PONG\n")
        except ConnectionResetError:
            pass
def close_first(c):  # one answer, then the server closes first
    with c:
        c.recv(4096)
        c.sendall(b"PONG\n")
class Http11(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = f"You asked for {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
serve(8080, echo)
serve(8081, close_first)
httpd = http.server.ThreadingHTTPServer((SRV, 8082), Http11)
threading.Thread(target=httpd.serve_forever, daemon=True).start()
print("READY", flush=True)
sys.stdin.read()
"""

CLIENT = r"""
import http.client, socket, struct, sys, threading, time
SRV = "10.78.0.2"
lock = threading.Lock()
def report(name, s):
    with lock:
        print(name, s.getsockname()[1], flush=True)
def connect(port, name, setup=None):
    s = socket.socket()
    if setup:
        setup(s)
    s.connect((SRV, port))
    report(name, s)
    return s
def ping(s):
    s.sendall(b"PING\n")
    got = b""
    while not got.endswith(b"\n"):
        data = s.recv(64)
        if not data:
            raise EOFError
        got += data
def close_client():
    s = connect(8080, "close_client")
    ping(s)
    s.close()
def close_server():
    s = connect(8081, "close_server")
    ping(s)
    assert s.recv(64) == b""
    s.close()
def rst():
    s = connect(8080, "rst")
    ping(s)
    time.sleep(0.1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
def keepalive_setup(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 5)
def keepalive():
    s = connect(8080, "keepalive", keepalive_setup)
    ping(s)
    time.sleep(2.5)  # probes at ~1.0 s and ~2.0 s of idleness
    ping(s)
    s.close()
def http11():
    c = http.client.HTTPConnection(SRV, 8082)
    c.connect()
    report("http", c.sock)
    for path in ("/one", "/two", "/three"):
        c.request("GET", path)
        c.getresponse().read()
        time.sleep(0.1)
    c.close()
def single():
    s = connect(8080, "single")
    ping(s)
    s.close()
mode = sys.argv[1]
if mode == "single":
    single()
    time.sleep(0.3)
    sys.exit(0)
held = connect(8080, "open")
ping(held)
threads = [threading.Thread(target=f) for f in (close_client, close_server, rst, keepalive, http11)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("DONE", flush=True)
sys.stdin.read()  # the open connection stays ESTABLISHED until the test says so
held.close()
"""


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, text=True, capture_output=True)


def in_ns(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


class Proc:
    """A subprocess whose output lines are collected (with arrival times) by threads."""

    def __init__(self, argv: list[str], stdin: bool = False) -> None:
        self.popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                      text=True)
        self.out: list[tuple[float, str]] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.popen.stdout, self.out, True)),
            threading.Thread(target=self._pump, args=(self.popen.stderr, self.err, False)),
        ]
        for t in self._threads:
            t.daemon = True
            t.start()

    @staticmethod
    def _pump(stream: Any, sink: list[Any], timed: bool) -> None:
        for line in stream:
            line = line.rstrip("\n")
            sink.append((time.monotonic(), line) if timed else line)

    def lines(self) -> list[str]:
        return [line for _, line in self.out]

    def expect(self, word: str, stderr: bool = False, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            sink = self.err if stderr else self.lines()
            if any(word in line for line in sink):
                return
            if self.popen.poll() is not None and time.monotonic() > end - timeout + 0.5:
                time.sleep(0.1)
                sink = self.err if stderr else self.lines()
                if any(word in line for line in sink):
                    return
                break
            time.sleep(0.02)
        raise AssertionError(f"{self.popen.args}: no {word!r}; stdout={self.lines()} "
                             f"stderr={self.err}")

    def finish(self, timeout: float = 15.0) -> int:
        rc = self.popen.wait(timeout)
        for t in self._threads:
            t.join(2)
        return rc

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def _remove_namespaces() -> None:
    """Ours, and those left by a run that died (its pid is gone)."""
    for ns in sh("ip", "netns", "list", check=False).stdout.split():
        if not ns.startswith("ttlive-"):
            continue
        pid = ns.rsplit("-", 1)[-1]
        if ns in (NS_A, NS_B) or (pid.isdigit() and not os.path.exists(f"/proc/{pid}")):
            sh("ip", "netns", "del", ns, check=False)


@pytest.fixture(scope="module")
def lab() -> Iterator[None]:
    """Two namespaces and a veth, offloads off (wire-sized segments), static neighbours."""
    if sh("ip", "netns", "list", check=False).returncode != 0:
        pytest.skip("`ip netns` is unavailable")
    _remove_namespaces()
    try:
        sh("ip", "netns", "add", NS_A)
        sh("ip", "netns", "add", NS_B)
        sh("ip", "link", "add", IF_A, "netns", NS_A, "type", "veth", "peer", "name", IF_B,
           "netns", NS_B)
        macs = {NS_A: "02:78:00:00:00:01", NS_B: "02:78:00:00:00:02"}
        for ns, ifname, ip, peer, peer_ns in ((NS_A, IF_A, CLI, SRV, NS_B),
                                              (NS_B, IF_B, SRV, CLI, NS_A)):
            sh(*in_ns(ns, "ip", "link", "set", "lo", "up"))
            sh(*in_ns(ns, "ethtool", "-K", ifname, "tx", "off", "rx", "off", "tso", "off",
                      "gso", "off", "gro", "off"))
            sh(*in_ns(ns, "ip", "link", "set", ifname, "address", macs[ns]))
            sh(*in_ns(ns, "ip", "addr", "add", f"{ip}/24", "dev", ifname))
            sh(*in_ns(ns, "ip", "link", "set", ifname, "up"))
            sh(*in_ns(ns, "ip", "neigh", "replace", peer, "lladdr", macs[peer_ns], "dev",
                      ifname, "nud", "permanent"))
    except subprocess.CalledProcessError as exc:
        _remove_namespaces()
        pytest.skip(f"cannot build the namespaces: {exc.stderr.strip()}")
    try:
        yield
    finally:
        _remove_namespaces()


@pytest.fixture(scope="module")
def server(lab: None) -> Iterator[Proc]:
    proc = Proc(in_ns(NS_B, sys.executable, "-c", SERVER), stdin=True)
    try:
        proc.expect("READY")
        yield proc
    finally:
        proc.kill()


def live(*args: str) -> Proc:
    return Proc(in_ns(NS_A, TCPTRACE, "live", "-i", IF_A, *args))


@dataclass
class Session:
    records: dict[str, dict[str, Any]]
    stdout: list[str]
    stderr: list[str]
    rc: int
    pcap: Path
    before_sigint: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def session(server: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """Every scenario in one capture, stopped by SIGINT with one connection still open."""
    pcap = tmp_path_factory.mktemp("live") / "session.pcap"
    cap = live("--format", "jsonl", "--duration", "30", "--write", str(pcap))
    client: Proc | None = None
    try:
        cap.expect("listening on", stderr=True)
        client = Proc(in_ns(NS_A, sys.executable, "-c", CLIENT, "all"), stdin=True)
        client.expect("DONE", timeout=15)
        # the 5 finished connections are printed while the capture runs (linger 1 s)
        end = time.monotonic() + 6
        while len(cap.out) < 5 and time.monotonic() < end:
            time.sleep(0.05)
        before = cap.lines()
        cap.popen.send_signal(signal.SIGINT)
        rc = cap.finish()
        ports = {int(port): name for name, port in (line.split() for line in client.lines()
                                                   if line != "DONE")}
        records = {}
        for line in cap.lines():
            record = json.loads(line)
            records[ports.get(record["client"]["port"], str(record["id"]))] = record
        yield Session(records, cap.lines(), cap.err, rc, pcap, before)
    finally:
        cap.kill()
        if client is not None:
            client.kill()


def names(record: dict[str, Any], side: str) -> list[str]:
    return [s["state"] for s in record["states"][side]]


@needs_netns
def test_every_connection_is_reported_once(session: Session) -> None:
    assert session.rc == 0, session.stderr
    assert sorted(session.records) == ["close_client", "close_server", "http", "keepalive",
                                       "open", "rst"]
    assert len(session.stdout) == 6
    assert all(r["server"]["ip"] == SRV and r["client"]["ip"] == CLI
               for r in session.records.values())


@needs_netns
def test_connections_are_printed_as_they_end(session: Session) -> None:
    # before SIGINT: the 5 connections that ended, not the one still open
    ended = sorted(json.loads(line)["client"]["port"] for line in session.before_sigint)
    expected = sorted(session.records[n]["client"]["port"]
                      for n in ("close_client", "close_server", "http", "keepalive", "rst"))
    assert ended == expected


@needs_netns
def test_client_closes_first(session: Session) -> None:
    r = session.records["close_client"]
    assert r["outcome"] == "CLOSED" and r["role_rule"] == "syn"
    assert names(r, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
                                  "TIME_WAIT"]
    assert names(r, "server") == ["SYN_RCVD", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"]
    assert r["close"]["initiator"] == r["close"]["time_wait"] == "client"
    # the holder keeps the 4-tuple for 2 * MSL (default 30 s: Linux's 60 s)
    assert round(r["close"]["time_wait_until"] - r["close"]["time_wait_ts"], 6) == 60.0
    assert r["packets"] == {"client": 6, "server": 4} and r["rst"] is None


@needs_netns
def test_server_closes_first(session: Session) -> None:
    r = session.records["close_server"]
    assert r["outcome"] == "CLOSED"
    assert names(r, "server") == ["SYN_RCVD", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
                                  "TIME_WAIT"]
    assert names(r, "client") == ["SYN_SENT", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"]
    assert r["close"]["initiator"] == r["close"]["time_wait"] == "server"


@needs_netns
def test_abort_with_so_linger_zero(session: Session) -> None:
    r = session.records["rst"]
    assert r["outcome"] == "RESET"
    assert {k: r["rst"][k] for k in ("sender", "state", "receiver_state", "kind", "count")} == {
        "sender": "client", "state": "ESTABLISHED", "receiver_state": "ESTABLISHED",
        "kind": "ABORT", "count": 1}
    assert names(r, "client") == ["SYN_SENT", "ESTABLISHED", "CLOSED"]
    assert r["close"]["time_wait"] is None


@needs_netns
def test_keepalive_probes(session: Session) -> None:
    r = session.records["keepalive"]
    ka = r["keepalive"]
    assert (ka["probes"], ka["acks"]) == ({"client": 2, "server": 0}, {"client": 0, "server": 2})
    assert all(900 < gap < 1200 for gap in ka["intervals_ms"]["client"]), ka
    assert r["reuse"]["requests"] == 2 and r["close"]["time_wait"] == "client"
    assert r["retransmitted_bytes"] == {"client": 0, "server": 0}


@needs_netns
def test_http11_reuse(session: Session) -> None:
    r = session.records["http"]
    assert (r["reuse"]["protocol"], r["reuse"]["requests"], r["reuse"]["responses"]) == (
        "http/1.1", 3, 3)
    assert len(r["reuse"]["idle_gaps_ms"]) == 2
    assert r["outcome"] == "CLOSED" and r["close"]["time_wait"] == "client"


@needs_netns
def test_sigint_reports_open_connections_and_summary(session: Session) -> None:
    r = session.records["open"]
    assert r["outcome"] == "OPEN"
    assert names(r, "client") == ["SYN_SENT", "ESTABLISHED"]
    assert names(r, "server") == ["SYN_RCVD", "ESTABLISHED"]
    assert r["final_state"] == {"client": "ESTABLISHED", "server": "ESTABLISHED"}
    err = "\n".join(session.stderr)
    assert "Connections: 6 (CLOSED 4, RESET 1, OPEN 1)" in err, err
    assert f"Capture: {IF_A} for" in err and "kernel drops: 0" in err
    assert "Traceback" not in err


@needs_netns
def test_written_pcap_gives_the_same_records(session: Session) -> None:
    out = sh(TCPTRACE, "analyze", "--format", "jsonl", str(session.pcap))
    again = sorted((json.loads(line) for line in out.stdout.splitlines()), key=lambda r: r["id"])
    live_records = sorted(session.records.values(), key=lambda r: r["id"])
    assert again == live_records
    with open(session.pcap, "rb") as f:  # Ethernet, nanosecond timestamps
        magic, _, _, _, _, _, linktype = struct.unpack("<IHHiIII", f.read(24))
    assert (magic, linktype) == (0xA1B23C4D, 1)


@needs_netns
def test_table_sigint_mid_connection_prints_the_open_one(server: Proc, tmp_path: Path) -> None:
    """The table format, stopped by SIGINT while a connection is open: the finished rows as
    they end, then the open one, the legend, the summary and the capture line on stdout;
    the rows are those `analyze` gives for the capture `-w` wrote."""
    pcap = tmp_path / "table.pcap"
    cap = live("--duration", "30", "-w", str(pcap))
    client: Proc | None = None
    try:
        cap.expect("listening on", stderr=True)
        client = Proc(in_ns(NS_A, sys.executable, "-c", CLIENT, "all"), stdin=True)
        client.expect("DONE", timeout=15)
        cap.expect(" RESET ")  # rows stream before the stop
        end = time.monotonic() + 6
        while sum(" CLOSED " in line for line in cap.lines()) < 4 and time.monotonic() < end:
            time.sleep(0.05)
        assert not any(" OPEN " in line for line in cap.lines())
        cap.popen.send_signal(signal.SIGINT)
        assert cap.finish() == 0, cap.err
    finally:
        cap.kill()
        if client is not None:
            client.kill()
    out = cap.lines()
    rows = [line.split() for line in out[2:] if line[:4].strip().isdigit()]
    assert [r[5] for r in rows].count("OPEN") == 1 and rows[-1][5] == "OPEN", out
    assert len(rows) == 6
    assert "Connections: 6 (CLOSED 4, RESET 1, OPEN 1)" in out
    assert out[-1].startswith(f"Capture: {IF_A} for ") and "kernel drops: 0" in out[-1]
    table = sh(TCPTRACE, "analyze", str(pcap)).stdout.splitlines()
    again = [line.split() for line in table[2:] if line.split()[:1] and line.split()[0].isdigit()]
    # the live rows (ended order, plus "TW until") are the table's rows (id order)
    assert sorted(r[:12] for r in rows) == sorted(
        r[:12] for r in again)


@needs_netns
def test_csv_to_a_file_on_sigterm_equals_analyze_of_the_written_capture(
        server: Proc, tmp_path: Path) -> None:
    pcap, csv = tmp_path / "single.pcap", tmp_path / "single.csv"
    cap = live("-f", "csv", "-o", str(csv), "-w", str(pcap), "--duration", "30")
    try:
        cap.expect("listening on", stderr=True)
        client = Proc(in_ns(NS_A, sys.executable, "-c", CLIENT, "single"))
        assert client.finish() == 0
        cap.popen.send_signal(signal.SIGTERM)
        assert cap.finish() == 0, cap.err
    finally:
        cap.kill()
    assert cap.lines() == []  # records to the file, the summary to stderr
    assert any(line.startswith("Connections: 1 (CLOSED 1)") for line in cap.err), cap.err
    again = sh(TCPTRACE, "analyze", "-f", "csv", str(pcap)).stdout
    assert csv.read_text() == again and again.count("\n") == 2


@needs_netns
def test_count_stops_after_n_packets(server: Proc) -> None:
    cap = live("--count", "3", "--duration", "10")
    try:
        cap.expect("listening on", stderr=True)
        client = Proc(in_ns(NS_A, sys.executable, "-c", CLIENT, "single"))
        assert cap.finish() == 0, cap.err
        client.finish()
    finally:
        cap.kill()
    out = "\n".join(cap.lines())
    assert " OPEN " in out and "2/1" in out  # the handshake: SYN, SYN/ACK, ACK
    assert "Packets: 3 read, 3 TCP segments analyzed" in out
    assert "Connections: 1 (OPEN 1)" in out


@needs_netns
def test_unknown_interface(lab: None) -> None:
    result = sh(*in_ns(NS_A, TCPTRACE, "live", "-i", "nope0", "--duration", "1"), check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("tcptrace: error: no such interface: nope0")
    assert result.stderr.count("\n") == 1


@needs_netns
def test_bad_capture_filter(lab: None) -> None:
    result = sh(*in_ns(NS_A, TCPTRACE, "live", "-i", IF_A, "--bpf", "tcp port", "--duration",
                       "1"), check=False)
    assert result.returncode == 2 and result.stderr.startswith("tcptrace: error: --bpf")
    assert result.stderr.count("\n") == 1


@needs_netns
def test_without_capture_privilege(lab: None) -> None:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    probe = sh(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
               "-c", "import tcptrace", check=False)
    if probe.returncode != 0:
        pytest.skip("the venv is not readable by nobody")
    result = sh(*in_ns(NS_A, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                       "--inh-caps=-all", "--bounding-set=-all", TCPTRACE, "live", "-i", IF_A,
                       "--duration", "1"), check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"tcptrace: error: no permission to capture on {IF_A}")
    assert result.stderr.count("\n") == 1


# ---- unit tests: no root needed ---------------------------------------------------------


class _FakeLib:
    def __init__(self, message: bytes) -> None:
        self.message = message

    def pcap_geterr(self, pcap: int) -> bytes:
        return self.message

    def pcap_statustostr(self, status: int) -> bytes:
        return b""


def test_activate_errors_map_to_one_line_errors() -> None:
    fake: Any = _FakeLib(b"socket: Operation not permitted")
    with pytest.raises(CapturePermissionError, match="no permission to capture on eth0"):
        _raise_activate(fake, 1, "eth0", -8)
    with pytest.raises(UnknownInterfaceError, match="no such interface: nope0"):
        _raise_activate(fake, 1, "nope0", -5)


def _session(fmt: str = "jsonl", **options: Any) -> tuple[_native.Session, list[bytes]]:
    """A live engine session on `eth0` writing its records to a list."""
    written: list[bytes] = []
    session = _native.Session(["eth0"], fmt, long_bytes=LONG_BYTES, **options)
    if fmt != "table":
        session.output(written.append)
    return session, written


def _feed(session: _native.Session, path: Path, frames: list[Frame] | None = None) -> int:
    """Feed a capture's frames (or some of them) as one batch; the latest timestamp."""
    linktype, unit, every = read_pcap(path)
    frames = every if frames is None else frames
    session.feed([(records(frames, unit), linktype, unit)], False)
    return max(f.ts_ns for f in frames)


def test_clock_tick_emits_connections_without_traffic() -> None:
    session, written = _session(linger_s=1.0)
    last = _feed(session, LINUX / "client_close.pcap")
    assert written == [] and (session.open_connections, session.finished) == (1, 0)
    session.tick(last + 999_000_000)
    assert written == []  # still lingering
    session.tick(last + 2_000_000_000)  # past the linger: out without traffic
    assert [json.loads(line)["id"] for line in b"".join(written).splitlines()] == [1]
    assert (session.open_connections, session.finished) == (0, 1)
    session.close()
    assert session.finished == 1


def test_idle_connection_reported_on_tick() -> None:
    session, written = _session(idle_timeout_s=5.0)
    _, _, frames = read_pcap(LINUX / "midstream.pcap")
    last = _feed(session, LINUX / "midstream.pcap", frames[:3])
    session.tick(last + 10_000_000_000)
    (record,) = (json.loads(line) for line in b"".join(written).splitlines())
    assert record["outcome"] == "OPEN" and session.source_report()["idle_evicted"] == 1


def _syn_flood(n: int, ts0: int, first: int = 0) -> bytes:
    """n SYNs from n different sources (Ethernet/IPv4/TCP, 54 bytes each), as records."""
    frames = []
    for i in range(first, first + n):
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0,
                         bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255]),
                         bytes([10, 0, 0, 1]))
        tcp = struct.pack("!HHIIBBHHH", 1024 + i % 60000, 80, i, 0, 0x50, 0x02, 65535, 0, 0)
        frames.append(Frame(ts0 + (i - first) * 1000, b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
                            + ip + tcp, 54))
    return records(frames, 1)


def test_syn_flood_cannot_exhaust_memory() -> None:
    ts0 = time.time_ns()
    session, _ = _session(max_flows=500, idle_timeout_s=300)
    peak = 0
    for k in range(3):
        session.feed([(_syn_flood(2000, ts0 + k * 10_000_000, k * 2000), 1, 1)], False)
        peak = max(peak, session.open_connections)
    session.close()
    assert session.finished == 6000 and peak <= 500
    assert session.source_report()["evicted_for_capacity"] == 6000 - 500


def test_stream_table_writer_prints_rows_as_they_come() -> None:
    import io

    out = io.StringIO()
    writer = StreamTableWriter(out)
    session, _ = _session("table")
    _feed(session, LINUX / "client_close.pcap")
    rows = session.close()
    for row, until in rows:
        writer.write(row, until)
        assert out.getvalue().count("\n") == 3  # header, rule, the row: before finish
    source = session.source_report()
    source["live"] = {"interfaces": ["eth0"], "duration_s": 2.5, "kernel_drops": 0}
    writer.finish(session.summary(), source)
    lines = out.getvalue().splitlines()
    assert lines[0] == ("  id start       dur client                server                "
                        "outcome  rtt ms TW     RST     ka reqs    pkts TW until")
    assert lines[2].split()[:8] == ["1", "03:24:48", "322us", "10.77.0.1:42150",
                                    "10.77.0.2:8080", "CLOSED", "0.042", "client"]
    assert lines[3] == "start: UTC time of day; dur: first to last packet"
    assert lines[-1] == "Capture: eth0 for 2.5 s; kernel drops: 0; evicted: 0 for capacity, 0 idle"


def test_saved_pcap_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "copy.pcap"
    session, written = _session()
    session.save(str(path), 1)
    _, _, frames = read_pcap(LINUX / "keepalive.pcap")
    for at in range(0, len(frames), 5):  # several batches
        _feed(session, LINUX / "keepalive.pcap", frames[at:at + 5])
    session.close()
    with open(path, "rb") as f:  # Ethernet, nanosecond timestamps
        assert struct.unpack("<IHHiIII", f.read(24)) == (0xA1B23C4D, 2, 4, 0, 0, 262144, 1)
    copy = sh(TCPTRACE, "analyze", "-f", "jsonl", str(path)).stdout
    original = sh(TCPTRACE, "analyze", "-f", "jsonl", str(LINUX / "keepalive.pcap")).stdout
    assert copy == original == b"".join(written).decode()


def test_a_damage_warning_names_the_frame_of_the_written_capture(tmp_path: Path) -> None:
    # frames 7 and 12 cut inside their Ethernet header, fed in batches of 5: the warning
    # names frame 7, the frame number of the --write file, as analyze of it says
    path = tmp_path / "copy.pcap"
    session, _ = _session()
    session.save(str(path), 1)
    _, _, frames = read_pcap(LINUX / "keepalive.pcap")
    for at in (6, 11):
        frames[at] = Frame(frames[at].ts_ns, frames[at].data[:10], frames[at].wirelen)
    for at in range(0, len(frames), 5):
        _feed(session, LINUX / "keepalive.pcap", frames[at:at + 5])
    session.close()
    text = "2 frame(s) too short for their link-layer header skipped (first: frame 7)"
    assert session.warnings() == [f"truncated_link_header: live:eth0: {text}"]
    analyzed = sh(TCPTRACE, "analyze", "-f", "jsonl", "-o", str(tmp_path / "out"), str(path))
    assert analyzed.stderr == (
        f"tcptrace: warning: truncated_link_header: {path}: {text}\n")


def test_a_panic_is_one_error_after_the_open_connections() -> None:
    session, written = _session(panic_at_frame=5)
    with pytest.raises(EngineFailure, match="internal error in the native engine at "
                       "live:eth0, frame 5: forced panic"):
        _feed(session, LINUX / "http_reuse.pcap")
    assert len(b"".join(written).splitlines()) == 1  # the connection held, written first
    assert session.close() == [] and session.finished == 1


def test_bad_records_are_a_value_error() -> None:
    session, _ = _session()
    with pytest.raises(ValueError, match="shorter than its caplen"):
        session.feed([(records([Frame(1, b"abcd", 4)], 1)[:-1], 1, 1)], False)


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]  # Linux


class _PktHdr(ctypes.Structure):
    _fields_ = [("ts", _Timeval), ("caplen", ctypes.c_uint32), ("len", ctypes.c_uint32)]


_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(_PktHdr), ctypes.c_char_p)


def _dispatch(tap: tuple[int, int], frames: list[Frame], unit: int) -> None:
    """Call the session's pcap_handler as pcap_dispatch would, once per frame."""
    callback, user = tap
    handler = _HANDLER(callback)
    for f in frames:
        header = _PktHdr(_Timeval(f.ts_ns // 1_000_000_000, f.ts_ns % 1_000_000_000 // unit),
                         len(f.data), f.wirelen)
        handler(user, ctypes.byref(header), f.data)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux struct timeval")
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_frames_through_the_pcap_callback_equal_frames_fed_as_records(fmt: str) -> None:
    # two interfaces (the frames of a capture dealt between them): the callback path with
    # its merge by time gives the records of the byte-records path, batch for batch
    linktype, unit, frames = read_pcap(LINUX / "http_reuse.pcap")
    eth0, eth1 = frames[0::2], frames[1::2]
    names = ["eth0", "eth1"]
    direct: list[bytes] = []
    session = _native.Session(names, fmt, long_bytes=LONG_BYTES)
    session.output(direct.append)
    taps = [session.tap(linktype, unit), session.tap(linktype, unit)]
    fed: list[bytes] = []
    reference = _native.Session(names, fmt, long_bytes=LONG_BYTES)
    reference.output(fed.append)
    for at in range(0, len(eth0), 4):  # several batches, each read from eth1 then eth0
        _dispatch(taps[1], eth1[at:at + 4], unit)
        _dispatch(taps[0], eth0[at:at + 4], unit)
        session.feed_captured(True)
        reference.feed([(records(eth1[at:at + 4], unit), linktype, unit),
                        (records(eth0[at:at + 4], unit), linktype, unit)], True)
    session.close()
    reference.close()
    assert session.source_report() == reference.source_report()
    assert session.source_report()["packets"] == len(frames)
    assert b"".join(direct) == b"".join(fed)
    assert len(b"".join(fed).splitlines()) == {"jsonl": 1, "csv": 2}[fmt]  # one connection
    assert session.feed_captured(True) == []  # nothing held: a no-op
