"""Deterministic generator of crafted TCP test captures for tcptrace.

Run as::

    /work/main/.venv/bin/python pcaps/craft.py

Every capture is written to ``pcaps/crafted/`` together with a ``README.md``
describing each file and the exact expected analysis outcome.

Everything is fixed: timestamps start at 1700000000.000000, ISNs, TCP
timestamp clocks (1 kHz, ``tsval = base + elapsed_ms``), IP ids, MAC and IP
addresses.  Running the script twice produces byte-identical files.

Packets are built with scapy (which computes all IP/TCP checksums); the capture
containers (pcap in all its variants, pcapng, gzip) are written by hand with
``struct`` so that every header field is under exact control.

Part A  - rare TCP life-cycle paths (Ethernet, microsecond little-endian pcap).
Part B  - one "reference connection" written in many containers, link types
          and network-layer variants; the analysis result must be identical.
Part C  - the reference connection behind every other link layer, layer-2.5 header and
          tunnel tcptrace decodes (pcaps/craft_tunnels.py).
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR, fragment
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw

OUT_DIR = Path(__file__).resolve().parent / "crafted"

BASE_US = 1_700_000_000 * 1_000_000  # capture start, microseconds since epoch

CLIENT_IP = "10.0.0.1"
SERVER_IP = "10.0.0.2"
V6_OF = {CLIENT_IP: "fd00::1", SERVER_IP: "fd00::2"}
MAC_OF = {
    CLIENT_IP: "02:00:00:00:00:01",
    SERVER_IP: "02:00:00:00:00:02",
}
OTHER_MAC = "02:00:00:00:00:fe"

# Link-layer header types (https://www.tcpdump.org/linktypes.html)
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

SYN_WINDOW = 64240
WINDOW = 502  # with window scale 7
MSS = 1460
WSCALE = 7


def ms(value: float) -> int:
    """Milliseconds after capture start -> microseconds after capture start."""
    return round(value * 1000)


# --------------------------------------------------------------------------
# TCP conversation model
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One captured TCP segment, network-layer independent."""

    t_us: int  # microseconds after BASE_US
    src: str  # IPv4 address (mapped to IPv6 by the IPv6 renderers)
    dst: str
    ip_id: int
    tcp: TCP  # TCP header + payload, checksum left unset (None)

    @property
    def tsopt(self) -> tuple[int, int] | None:
        for kind, value in self.tcp.options:
            if kind == "Timestamp":
                tsval, tsecr = value
                return int(tsval), int(tsecr)
        return None


@dataclass
class Endpoint:
    """One side of a TCP connection; tracks the sequence space and clocks."""

    ip: str
    port: int
    isn: int
    ts_base: int | None  # tsval at t=0 (1 kHz clock); None = no timestamps
    ip_id: int = 0x1000
    snd_nxt: int = 0
    rcv_nxt: int = 0
    ts_recent: int = 0

    def __post_init__(self) -> None:
        self.snd_nxt = self.isn

    def tsval_at(self, t_us: int) -> int:
        assert self.ts_base is not None
        return (self.ts_base + t_us // 1000) & 0xFFFFFFFF


@dataclass
class Conversation:
    """Produces a list of frames between two endpoints."""

    a: Endpoint
    b: Endpoint
    frames: list[Frame] = field(default_factory=list)

    def peer(self, ep: Endpoint) -> Endpoint:
        return self.b if ep is self.a else self.a

    def send(
        self,
        src: Endpoint,
        t_ms: float,
        flags: str,
        data: bytes = b"",
        *,
        seq: int | None = None,
        ack: int | None = None,
        deliver: bool = True,
        sent_ms: float | None = None,
        tsopt: bool = True,
    ) -> Frame:
        """Emit one segment from ``src`` captured at ``t_ms``.

        ``deliver=False`` models a segment lost after the capture point.
        ``sent_ms`` is the sender's clock reading for tsval (default t_ms).
        ``tsopt=False`` suppresses all TCP options (e.g. RST to a closed port).
        """
        dst = self.peer(src)
        t_us = ms(t_ms)
        seq = src.snd_nxt if seq is None else seq
        if ack is None:
            ack = src.rcv_nxt if "A" in flags else 0
        options = (
            tcp_options(src, dst, flags, ms(sent_ms if sent_ms is not None else t_ms))
            if tsopt
            else []
        )
        window = 0 if "R" in flags else (SYN_WINDOW if "S" in flags else WINDOW)
        tcp = TCP(
            sport=src.port,
            dport=dst.port,
            seq=seq,
            ack=ack,
            flags=flags,
            window=window,
            options=options,
        )
        if data:
            tcp = tcp / Raw(load=data)
        frame = Frame(t_us=t_us, src=src.ip, dst=dst.ip, ip_id=src.ip_id, tcp=tcp)
        src.ip_id += 1
        seg_end = seq + len(data) + ("S" in flags) + ("F" in flags)
        if "R" not in flags:
            src.snd_nxt = max(src.snd_nxt, seg_end)
        if deliver:
            self._deliver(dst, frame, seq, seg_end, flags)
        self.frames.append(frame)
        return frame

    @staticmethod
    def _deliver(dst: Endpoint, frame: Frame, seq: int, seg_end: int, flags: str) -> None:
        if "S" in flags:
            dst.rcv_nxt = seg_end
        elif seq <= dst.rcv_nxt:
            dst.rcv_nxt = max(dst.rcv_nxt, seg_end)
        ts = frame.tsopt
        if ts is not None and "R" not in flags:
            dst.ts_recent = ts[0]


def tcp_options(src: Endpoint, dst: Endpoint, flags: str, t_us: int) -> list[tuple[str, object]]:
    """Linux-like option layout for SYNs and established segments."""
    if src.ts_base is None:
        if "S" in flags:
            return [
                ("MSS", MSS),
                ("NOP", None),
                ("NOP", None),
                ("SAckOK", b""),
                ("NOP", None),
                ("WScale", WSCALE),
            ]
        return []
    tsecr = src.ts_recent if "A" in flags else 0
    ts = ("Timestamp", (src.tsval_at(t_us), tsecr))
    if "S" in flags:
        return [("MSS", MSS), ("SAckOK", b""), ts, ("NOP", None), ("WScale", WSCALE)]
    return [("NOP", None), ("NOP", None), ts]


def new_conv(
    cport: int,
    sport: int = 80,
    cisn: int = 1_000_000_000,
    sisn: int = 3_000_000_000,
    with_ts: bool = True,
    cts: int = 100_000,
    sts: int = 500_000,
) -> tuple[Conversation, Endpoint, Endpoint]:
    client = Endpoint(CLIENT_IP, cport, cisn, cts if with_ts else None, ip_id=0x1000)
    server = Endpoint(SERVER_IP, sport, sisn, sts if with_ts else None, ip_id=0x8000)
    return Conversation(client, server), client, server


def handshake(conv: Conversation, c: Endpoint, s: Endpoint, t0: float, rtt: float = 10.0) -> float:
    """SYN at t0, SYN/ACK at t0+rtt, ACK at t0+rtt+0.1; returns the last time."""
    conv.send(c, t0, "S")
    conv.send(s, t0 + rtt, "SA")
    conv.send(c, t0 + rtt + 0.1, "A")
    return t0 + rtt + 0.1


def client_close(
    conv: Conversation, c: Endpoint, s: Endpoint, t0: float, rtt: float = 10.0
) -> float:
    """Client FIN, server FIN/ACK, client ACK (3-segment close)."""
    conv.send(c, t0, "FA")
    conv.send(s, t0 + rtt, "FA")
    conv.send(c, t0 + rtt + 0.1, "A")
    return t0 + rtt + 0.1


def client_close4(
    conv: Conversation, c: Endpoint, s: Endpoint, t0: float, rtt: float = 10.0
) -> float:
    """Client FIN, server ACK, server FIN (a little later), client ACK (4-segment close)."""
    conv.send(c, t0, "FA")
    conv.send(s, t0 + rtt, "A")
    conv.send(s, t0 + rtt + 5, "FA")
    conv.send(c, t0 + rtt + 5.1, "A")
    return t0 + rtt + 5.1


# State sequences for the 3-segment close (client FIN, server FIN/ACK, client ACK).
# The server's FIN/ACK both acknowledges the client FIN and carries the server FIN:
# RFC 793 takes the client FIN_WAIT_1 -> TIME_WAIT directly; a model applying the
# ACK before the FIN passes through FIN_WAIT_2 within that same packet.
CLIENT_3SEG = (
    "client: SYN_SENT>ESTABLISHED>FIN_WAIT_1>[FIN_WAIT_2 transient, same packet]>TIME_WAIT"
)
SERVER_3SEG = "server: LISTEN>SYN_RECEIVED>ESTABLISHED>CLOSE_WAIT>LAST_ACK (on its FIN/ACK)>CLOSED"
STATES_3SEG = f"{CLIENT_3SEG}; {SERVER_3SEG}; client holds TIME_WAIT."


def payload(n: int, tag: bytes) -> bytes:
    return (tag * (n // len(tag) + 1))[:n]


# --------------------------------------------------------------------------
# Network layer renderers
# --------------------------------------------------------------------------


def ipv4(frame: Frame, options: list[Packet] | None = None) -> Packet:
    ip = IP(src=frame.src, dst=frame.dst, id=frame.ip_id, flags="DF", ttl=64)
    if options:
        ip.options = options
    return ip / frame.tcp.copy()


def ipv6(frame: Frame, ext: bool = False) -> Packet:
    ip = IPv6(src=V6_OF[frame.src], dst=V6_OF[frame.dst], hlim=64, fl=0)
    if ext:
        return ip / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / frame.tcp.copy()
    return ip / frame.tcp.copy()


def ipv4_with_rr(frame: Frame) -> Packet:
    """IPv4 with a Record Route option (2 empty slots, padded: ihl = 8)."""
    return ipv4(frame, [IPOption_RR(pointer=4, routers=["0.0.0.0", "0.0.0.0"])])


# --------------------------------------------------------------------------
# Link layer renderers: (frame, l3 bytes) -> link frame bytes
# --------------------------------------------------------------------------


def macs(frame: Frame) -> tuple[str, str]:
    return MAC_OF[frame.src], MAC_OF[frame.dst]


def ethertype_of(l3: bytes) -> int:
    return 0x86DD if l3[0] >> 4 == 6 else 0x0800


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def link_eth(frame: Frame, l3: bytes) -> bytes:
    src, dst = macs(frame)
    return mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", ethertype_of(l3)) + l3


def link_vlan(frame: Frame, l3: bytes) -> bytes:
    src, dst = macs(frame)
    return bytes(Ether(src=src, dst=dst, type=0x8100) / Dot1Q(vlan=10, type=ethertype_of(l3))) + l3


def link_qinq(frame: Frame, l3: bytes) -> bytes:
    src, dst = macs(frame)
    tags = (
        Ether(src=src, dst=dst, type=0x88A8)
        / Dot1Q(vlan=100, type=0x8100)
        / Dot1Q(vlan=10, type=ethertype_of(l3))
    )
    return bytes(tags) + l3


def sll_pkttype(frame: Frame) -> int:
    """Capture taken on the client: 4 = outgoing, 0 = to us (host)."""
    return 4 if frame.src == CLIENT_IP else 0


def link_sll(frame: Frame, l3: bytes) -> bytes:
    src, _ = macs(frame)
    addr = mac_bytes(src) + b"\x00\x00"
    # pkttype, ARPHRD_ETHER, addr len, addr[8], protocol
    return struct.pack("!HHH8sH", sll_pkttype(frame), 1, 6, addr, ethertype_of(l3)) + l3


def link_sll2(frame: Frame, l3: bytes) -> bytes:
    src, _ = macs(frame)
    addr = mac_bytes(src) + b"\x00\x00"
    # protocol, reserved, ifindex, hatype, pkttype, addrlen, addr[8]
    return struct.pack("!HHIHBB8s", ethertype_of(l3), 0, 2, 1, sll_pkttype(frame), 6, addr) + l3


def link_null(frame: Frame, l3: bytes) -> bytes:
    return struct.pack("<I", 2) + l3  # AF_INET in host (little-endian) order


def link_loop(frame: Frame, l3: bytes) -> bytes:
    return struct.pack("!I", 2) + l3  # AF_INET in network order


def link_raw(frame: Frame, l3: bytes) -> bytes:
    return l3


LINK_OF_TYPE: dict[int, Callable[[Frame, bytes], bytes]] = {
    LINKTYPE_ETHERNET: link_eth,
    LINKTYPE_LINUX_SLL: link_sll,
    LINKTYPE_RAW: link_raw,
}


# --------------------------------------------------------------------------
# Capture records and container writers
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    ts_ns: int  # absolute, nanoseconds since epoch
    data: bytes  # captured bytes
    orig_len: int


def record(t_us: int, data: bytes, snaplen: int = 65535) -> Record:
    return Record((BASE_US + t_us) * 1000, data[:snaplen], len(data))


def render(
    frames: Iterable[Frame],
    l3: Callable[[Frame], Packet] = ipv4,
    link: Callable[[Frame, bytes], bytes] = link_eth,
    snaplen: int = 65535,
) -> list[Record]:
    return [record(f.t_us, link(f, bytes(l3(f))), snaplen) for f in frames]


def pcap_bytes(
    records: Iterable[Record],
    linktype: int,
    nano: bool = False,
    big_endian: bool = False,
    snaplen: int = 65535,
) -> bytes:
    """Classic libpcap savefile (pcap-savefile(5))."""
    bo = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(bo + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for rec in records:
        sec, frac_ns = divmod(rec.ts_ns, 1_000_000_000)
        frac = frac_ns if nano else frac_ns // 1000
        out.append(struct.pack(bo + "IIII", sec, frac, len(rec.data), rec.orig_len))
        out.append(rec.data)
    return b"".join(out)


def pad4(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


class PcapngWriter:
    """Minimal pcapng (draft-ietf-opsawg-pcapng) writer with exact control."""

    def __init__(self, big_endian: bool = False) -> None:
        self.bo = ">" if big_endian else "<"
        self.blocks: list[bytes] = []
        self.tsresol: list[int] = []  # per interface: units per second

    def _block(self, btype: int, body: bytes) -> None:
        body = pad4(body)
        total = 12 + len(body)
        self.blocks.append(
            struct.pack(self.bo + "II", btype, total) + body + struct.pack(self.bo + "I", total)
        )

    def _options(self, opts: list[tuple[int, bytes]]) -> bytes:
        if not opts:
            return b""
        out = [struct.pack(self.bo + "HH", code, len(val)) + pad4(val) for code, val in opts]
        return b"".join(out) + struct.pack(self.bo + "HH", 0, 0)

    def section_header(self, userappl: str) -> None:
        body = struct.pack(self.bo + "IHHq", 0x1A2B3C4D, 1, 0, -1)
        body += self._options([(4, userappl.encode())])  # shb_userappl
        self._block(0x0A0D0D0A, body)

    def interface(self, linktype: int, name: str, tsresol_exp: int | None = None) -> int:
        opts = [(2, name.encode())]  # if_name
        if tsresol_exp is not None:
            opts.append((9, bytes([tsresol_exp])))  # if_tsresol, power of 10
        body = struct.pack(self.bo + "HHI", linktype, 0, 65535) + self._options(opts)
        self._block(0x00000001, body)
        self.tsresol.append(10 ** (tsresol_exp if tsresol_exp is not None else 6))
        return len(self.tsresol) - 1

    def _ts_words(self, if_id: int, ts_ns: int) -> tuple[int, int]:
        units = ts_ns * self.tsresol[if_id] // 1_000_000_000
        return units >> 32, units & 0xFFFFFFFF

    def packet(self, if_id: int, rec: Record) -> None:
        hi, lo = self._ts_words(if_id, rec.ts_ns)
        body = struct.pack(self.bo + "IIIII", if_id, hi, lo, len(rec.data), rec.orig_len)
        self._block(0x00000006, body + pad4(rec.data))

    def name_resolution(self, entries: list[tuple[str, str]]) -> None:
        body = b""
        for addr, name in entries:
            value = bytes(int(x) for x in addr.split(".")) + name.encode() + b"\x00"
            body += struct.pack(self.bo + "HH", 1, len(value)) + pad4(value)  # nrb_record_ipv4
        body += struct.pack(self.bo + "HH", 0, 0)  # nrb_record_end
        self._block(0x00000004, body)

    def interface_stats(self, if_id: int, ts_ns: int, recv: int, drop: int) -> None:
        hi, lo = self._ts_words(if_id, ts_ns)
        opts = [(4, struct.pack(self.bo + "Q", recv)), (5, struct.pack(self.bo + "Q", drop))]
        self._block(0x00000005, struct.pack(self.bo + "III", if_id, hi, lo) + self._options(opts))

    def custom(self, btype: int, pen: int, data: bytes) -> None:
        self._block(btype, struct.pack(self.bo + "I", pen) + data)

    def getvalue(self) -> bytes:
        return b"".join(self.blocks)


def write(name: str, data: bytes) -> None:
    (OUT_DIR / name).write_bytes(data)


def write_pcap(
    name: str, records: list[Record], linktype: int = LINKTYPE_ETHERNET, **kw: object
) -> None:
    write(name, pcap_bytes(records, linktype, **kw))  # type: ignore[arg-type]


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


# --------------------------------------------------------------------------
# Part A scenarios
# --------------------------------------------------------------------------

Scenario = tuple[str, list[Frame], str]


def sc_simultaneous_open() -> Scenario:
    a = Endpoint(CLIENT_IP, 5000, 1_000_000_000, 100_000, ip_id=0x1000)
    b = Endpoint(SERVER_IP, 6000, 3_000_000_000, 500_000, ip_id=0x8000)
    conv = Conversation(a, b)
    conv.send(a, 0, "S")
    conv.send(b, 1, "S")
    conv.send(a, 10, "SA", seq=a.isn)
    conv.send(b, 11, "SA", seq=b.isn)
    conv.send(a, 20, "PA", payload(40, b"A"))
    conv.send(b, 30, "PA", payload(60, b"B"))
    conv.send(a, 40, "A")
    conv.send(a, 50, "FA")
    conv.send(b, 60, "A")
    conv.send(b, 70, "FA")
    conv.send(a, 80, "A")
    readme = (
        "Simultaneous open 10.0.0.1:5000 <-> 10.0.0.2:6000 (A ISN 1000000000, B ISN 3000000000): "
        "SYN A@0, SYN B@1ms, SYN/ACK A@10 (seq=ISN_A, ack=ISN_B+1), SYN/ACK B@11, A sends 40 B, "
        "B sends 60 B, "
        "A closes first. ONE connection. A: "
        "CLOSED>SYN_SENT>SYN_RECEIVED>ESTABLISHED>FIN_WAIT_1>FIN_WAIT_2>TIME_WAIT; "
        "B: CLOSED>SYN_SENT>SYN_RECEIVED>ESTABLISHED>CLOSE_WAIT>LAST_ACK>CLOSED. A holds "
        "TIME_WAIT. Bytes A->B 40, B->A 60."
    )
    return "simultaneous_open.pcap", conv.frames, readme


def sc_fin_with_data() -> Scenario:
    conv, c, s = new_conv(40002)
    t = handshake(conv, c, s, 0)
    conv.send(c, t + 10, "FPA", payload(20, b"GET /x HTTP/1.0\r\n"))
    conv.send(s, 40, "A")
    conv.send(s, 50, "PA", payload(100, b"R"))
    conv.send(s, 51, "FA")
    conv.send(c, 61, "A")
    readme = (
        "Handshake; client sends 20 B with FIN+PSH+ACK in one segment @20.1ms; server ACKs (ack "
        "covers data+FIN), "
        "sends 100 B, then FIN; client ACKs both. Client: "
        "SYN_SENT>ESTABLISHED>FIN_WAIT_1>FIN_WAIT_2>TIME_WAIT; "
        "server: LISTEN>SYN_RECEIVED>ESTABLISHED>CLOSE_WAIT>LAST_ACK>CLOSED. Client holds "
        "TIME_WAIT. "
        "Bytes c->s 20, s->c 100. Normal (FIN) close, client active closer."
    )
    return "fin_with_data.pcap", conv.frames, readme


def sc_rst_in_time_wait() -> Scenario:
    conv, c, s = new_conv(40003)
    handshake(conv, c, s, 0)
    conv.send(c, 20, "PA", payload(30, b"Q"))
    conv.send(s, 30, "PA", payload(60, b"R"))
    conv.send(c, 30.1, "A")
    end = client_close4(conv, c, s, 40)
    conv.send(s, end + 500, "R", seq=s.snd_nxt)
    readme = (
        "Normal request (30 B)/response (60 B), client closes first with 4 segments (FIN@40, "
        "ACK@50, FIN@55, ACK@55.1): "
        "client TIME_WAIT, server CLOSED. At 555.1 ms the server sends RST (flags R only, seq = "
        "server FIN seq+1 = client RCV.NXT, "
        "with TS option, tsecr 0). Client: "
        "SYN_SENT>ESTABLISHED>FIN_WAIT_1>FIN_WAIT_2>TIME_WAIT>CLOSED (RST in TIME_WAIT, "
        "'TIME_WAIT assassination'); server: "
        "LISTEN>SYN_RECEIVED>ESTABLISHED>CLOSE_WAIT>LAST_ACK>CLOSED (RST sent after close). "
        "One connection, closed normally by FIN exchange; the RST is post-close and must not "
        "turn it into a reset connection "
        "(or, if reported, as reset-in-TIME_WAIT)."
    )
    return "rst_in_time_wait.pcap", conv.frames, readme


def sc_fin_retransmitted() -> Scenario:
    conv, c, s = new_conv(40004)
    handshake(conv, c, s, 0)
    conv.send(c, 20, "PA", payload(30, b"Q"))
    conv.send(s, 30, "PA", payload(60, b"R"))
    conv.send(c, 30.1, "A")
    fin_seq = c.snd_nxt
    conv.send(c, 40, "FA", deliver=False)
    conv.send(c, 240, "FA", seq=fin_seq)
    conv.send(s, 250, "A")
    conv.send(s, 260, "FA")
    conv.send(c, 260.1, "A")
    readme = (
        "Request/response, client FIN @40ms (lost after capture point), same FIN retransmitted "
        "@240ms (same seq, new tsval), "
        "server ACK @250, server FIN @260, client ACK @260.1. Exactly ONE close; 1 FIN "
        "retransmission. "
        "Client: SYN_SENT>ESTABLISHED>FIN_WAIT_1 (@40, first FIN; the retransmission changes "
        "nothing)>FIN_WAIT_2 (@250)>TIME_WAIT (@260.1); "
        "server: LISTEN>SYN_RECEIVED>ESTABLISHED>CLOSE_WAIT (@40 as seen in the "
        "capture)>LAST_ACK (@260)>CLOSED (@260.1). "
        "Client holds TIME_WAIT. Bytes 30/60."
    )
    return "fin_retransmitted.pcap", conv.frames, readme


def sc_fin_out_of_order() -> Scenario:
    conv, c, s = new_conv(40005)
    handshake(conv, c, s, 0)
    conv.send(c, 20, "PA", payload(20, b"Q"))
    base = s.snd_nxt
    conv.send(s, 30, "A", payload(100, b"1"))
    conv.send(s, 30.1, "A", payload(100, b"2"))
    # FIN (sent after segment 3) overtakes segment 3 in the network.
    conv.send(s, 30.2, "FA", seq=base + 300, sent_ms=30.1)
    conv.send(s, 30.3, "PA", payload(100, b"3"), seq=base + 200, sent_ms=30.1)
    conv.send(c, 40.3, "A", ack=base + 301)
    c.rcv_nxt = base + 301
    conv.send(c, 100, "FA")
    conv.send(s, 110, "A")
    readme = (
        "Client sends 20 B; server sends 3x100 B; in the capture the server FIN (seq = data "
        "start+300) @30.2ms appears "
        "BEFORE the 3rd data segment (@30.3ms, seq = data start+200); client ACKs all 300 B + "
        "FIN @40.3; client FIN @100, "
        "server ACK @110. Server is the active closer and holds TIME_WAIT. Server: "
        "LISTEN>SYN_RECEIVED>ESTABLISHED>FIN_WAIT_1>"
        "FIN_WAIT_2>TIME_WAIT; client: SYN_SENT>ESTABLISHED>CLOSE_WAIT>LAST_ACK>CLOSED. Bytes "
        "s->c 300 (the 3rd segment is "
        "out-of-order data, NOT data-after-FIN and NOT a retransmission), c->s 20."
    )
    return "fin_out_of_order.pcap", conv.frames, readme


def sc_syn_retrans_no_ts() -> Scenario:
    conv, c, s = new_conv(40006, with_ts=False)
    conv.send(c, 0, "S", deliver=False)
    conv.send(c, 1000, "S", seq=c.isn)
    conv.send(s, 1010, "SA")
    conv.send(c, 1020, "A")
    conv.send(c, 1030, "PA", payload(30, b"Q"))
    conv.send(s, 1040, "PA", payload(60, b"R"))
    conv.send(c, 1040.1, "A")
    client_close(conv, c, s, 1050)
    readme = (
        "NO TCP timestamps anywhere. SYN @0, SYN retransmitted @1000ms (same ISN), one SYN/ACK "
        "@1010, ACK @1020, "
        "30 B request, 60 B response, client closes first (FIN, FIN/ACK, ACK). One connection, 1 "
        "SYN retransmission; "
        "the handshake RTT is ambiguous (Karn: 10 ms or 1010 ms) and must not be asserted. "
        + STATES_3SEG
    )
    return "syn_retrans_no_ts.pcap", conv.frames, readme


def sc_synack_lost_ts() -> Scenario:
    conv, c, s = new_conv(40007, cts=1000, sts=50_000)
    conv.send(c, 0, "S")  # tsval 1000
    conv.send(s, 10, "SA", deliver=False)  # tsecr 1000, lost
    conv.send(c, 1000, "S", seq=c.isn)  # tsval 2000
    conv.send(s, 1010, "SA", seq=s.isn)  # tsecr 2000, tsval 51010
    conv.send(c, 1020, "A")  # tsecr 51010
    conv.send(c, 1030, "PA", payload(30, b"Q"))
    conv.send(s, 1040, "PA", payload(60, b"R"))
    conv.send(c, 1040.1, "A")
    client_close(conv, c, s, 1050)
    readme = (
        "With TS. SYN1 @0 (tsval 1000), SYN/ACK1 @10ms (tsval 50010, tsecr 1000; lost after "
        "capture point), SYN2 @1000 "
        "(same ISN, tsval 2000), SYN/ACK2 @1010 (same server ISN, tsval 51010, tsecr 2000), ACK "
        "@1020 (tsecr 51010), "
        "30 B req, 60 B resp, client closes first. One connection; 1 SYN retransmission, 1 "
        "SYN/ACK retransmission. "
        "Timestamps disambiguate: SYN/ACK2 answers SYN2 -> handshake RTT(SYN2->SYN/ACK2) = 10 "
        "ms; client ACK answers SYN/ACK2 "
        "(10 ms). Close = FIN, FIN/ACK, ACK. " + STATES_3SEG
    )
    return "synack_lost_ts.pcap", conv.frames, readme


def sc_port_reuse() -> Scenario:
    conv1, c1, s1 = new_conv(40008, cisn=1_000_000_000, sisn=3_000_000_000)
    handshake(conv1, c1, s1, 0)
    conv1.send(c1, 20, "PA", payload(30, b"Q"))
    conv1.send(s1, 30, "PA", payload(60, b"R"))
    conv1.send(c1, 30.1, "A")
    end = client_close(conv1, c1, s1, 40)
    conv2, c2, s2 = new_conv(40008, cisn=1_500_000_000, sisn=3_500_000_000)
    c2.ip_id, s2.ip_id = c1.ip_id, s1.ip_id
    t = end + 100
    handshake(conv2, c2, s2, t)
    conv2.send(c2, t + 20, "PA", payload(30, b"q"))
    conv2.send(s2, t + 30, "PA", payload(60, b"r"))
    conv2.send(c2, t + 30.1, "A")
    client_close(conv2, c2, s2, t + 40)
    readme = (
        "Two connections on the same 4-tuple 10.0.0.1:40008->10.0.0.2:80. #1 (ISN c 1000000000 / "
        "s 3000000000) @0..50.1ms, "
        "normal 30/60 B exchange, client closes first (client TIME_WAIT). #2 starts @150.1ms "
        "with SYN ISN 1500000000 "
        "(higher, tsval higher, while client still in TIME_WAIT) / server ISN 3500000000, same "
        "exchange, client closes first. "
        "TWO connections expected, each 30 B c->s, 60 B s->c, each closed FIN, FIN/ACK, ACK; "
        "for each: " + STATES_3SEG
    )
    return "port_reuse.pcap", conv1.frames + conv2.frames, readme


def sc_refused_then_ok() -> Scenario:
    conv1, c1, s1 = new_conv(40009, sport=81)
    conv1.send(c1, 0, "S")
    conv1.send(s1, 0.2, "RA", seq=0, tsopt=False)
    conv2, c2, s2 = new_conv(40009, cisn=1_100_000_000)
    c2.ip_id, s2.ip_id = c1.ip_id, s1.ip_id
    handshake(conv2, c2, s2, 100)
    conv2.send(c2, 120, "PA", payload(30, b"Q"))
    conv2.send(s2, 130, "PA", payload(60, b"R"))
    conv2.send(c2, 130.1, "A")
    client_close(conv2, c2, s2, 140)
    readme = (
        "SYN 10.0.0.1:40009->10.0.0.2:81 @0 (with TS) answered @0.2ms by RST/ACK (seq 0, ack "
        "ISN+1, no TCP options, as a "
        "closed port replies); then a normal connection 10.0.0.1:40009->10.0.0.2:80 @100ms (30 "
        "B/60 B, client closes first). "
        "TWO connections: #1 refused (client SYN_SENT>CLOSED, server (no listener) CLOSED; reset "
        "by server, no handshake); "
        "#2 normal, closed FIN, FIN/ACK, ACK: " + STATES_3SEG
    )
    return "refused_then_ok.pcap", conv1.frames + conv2.frames, readme


def sc_keepalive() -> Scenario:
    conv, c, s = new_conv(40010)
    handshake(conv, c, s, 0)
    conv.send(c, 20, "PA", payload(10, b"q"))
    conv.send(s, 30, "PA", payload(10, b"r"))
    conv.send(c, 30.1, "A")
    for t in (2000, 3000, 4000):
        conv.send(c, t, "A", seq=c.snd_nxt - 1)
        conv.send(s, t + 1, "A")
    client_close(conv, c, s, 5000)
    readme = (
        "Handshake, 10 B each way, idle; keep-alive probes from the client @2000, 3000, 4000ms "
        "(zero length, "
        "seq = SND.NXT-1, flags ACK), each answered 1 ms later by a pure server ACK (ack = "
        "client SND.NXT); client closes "
        "first @5000ms. One connection, 3 keep-alives + 3 keep-alive ACKs, NO "
        "retransmissions/out-of-order/dup-ack anomalies; "
        "bytes 10/10. Close = FIN, FIN/ACK, ACK. " + STATES_3SEG
    )
    return "keepalive_crafted.pcap", conv.frames, readme


def sc_rst_after_close() -> Scenario:
    conv, c, s = new_conv(40011)
    handshake(conv, c, s, 0)
    conv.send(c, 20, "PA", payload(30, b"Q"))
    conv.send(s, 30, "PA", payload(60, b"R"))
    conv.send(s, 30.1, "FA")
    conv.send(c, 40.1, "A")
    conv.send(c, 50, "PA", payload(50, b"Z"))
    conv.send(s, 60, "R", seq=s.snd_nxt)
    readme = (
        "Request 30 B, response 60 B, server FIN @30.1ms (server closes first), client ACK "
        "@40.1, client then sends 50 more "
        "bytes @50 (it had not read the FIN), server (socket fully closed) answers @60 with RST "
        "(flags R only, seq = server "
        "FIN seq+1 = ack of the data segment, TS option with tsecr 0). Server: "
        "LISTEN>SYN_RECEIVED>ESTABLISHED>FIN_WAIT_1>"
        "FIN_WAIT_2>CLOSED (sends RST); client: SYN_SENT>ESTABLISHED>CLOSE_WAIT>CLOSED (reset "
        "received). Nobody holds TIME_WAIT. "
        "Connection ends by RST (reset after half-close, by the server); c->s bytes 80 (the last "
        "50 never acknowledged), s->c 60."
    )
    return "rst_after_close.pcap", conv.frames, readme


# What each probe of sc_probes is: (target port, flags, answer), nmap's names (nmap(1),
# "Port Scanning Techniques"). "R": the closed port's RST (RFC 9293 section 3.10.7.1),
# "SA": a SYN/ACK and the scanner's RST, "": nothing.
PROBES = [
    (1001, "S", "R"),  # -sS, closed port
    (1002, "S", ""),  # -sS, filtered (sent twice)
    (1003, "S", "SA"),  # -sS, open port: half-open
    (1004, "", "R"),  # -sN, closed
    (1005, "", ""),  # -sN, open|filtered
    (1006, "F", "R"),  # -sF, closed
    (1007, "F", ""),  # -sF, open|filtered
    (1008, "FPU", "R"),  # -sX, closed
    (1009, "FPU", ""),  # -sX, open|filtered
    (1010, "A", "R"),  # -sA, unfiltered
    (1011, "A", ""),  # -sA, filtered: not told from a connection's stray ACK
    (1012, "FA", "R"),  # -sM, closed
    (1013, "FA", ""),  # -sM, open|filtered: not told from a connection's last FIN
]


def sc_probes() -> Scenario:
    frames: list[Frame] = []
    rows = []
    for n, (port, flags, answer) in enumerate(PROBES):
        conv, c, s = new_conv(50000 + n, sport=port, with_ts=False)
        t0 = 10.0 * n
        probe_ack = 2_000_000_000 + n if "A" in flags else 0
        conv.send(c, t0, flags, seq=c.isn, ack=probe_ack, tsopt=False)
        if flags == "S" and answer == "":
            conv.send(c, t0 + 1, flags, seq=c.isn, tsopt=False)  # retransmitted probe
        if answer == "R":
            if "A" in flags:  # <SEQ=SEG.ACK><CTL=RST>
                conv.send(s, t0 + 0.2, "R", seq=probe_ack, ack=0, tsopt=False)
            else:  # <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
                length = ("S" in flags) + ("F" in flags)
                conv.send(s, t0 + 0.2, "RA", seq=0, ack=c.isn + length, tsopt=False)
        elif answer == "SA":
            conv.send(s, t0 + 0.2, "SA", tsopt=False)
            conv.send(c, t0 + 0.3, "R", seq=c.isn + 1, ack=0, tsopt=False)
        rows.append(f"{port} {flags or 'none'}/{answer or '-'}")
        frames += conv.frames
    # a FIN probe to a port above the scanner's: the port rule makes the scanner the server
    conv, c, s = new_conv(60001, sport=40000, with_ts=False)
    conv.send(s, 200, "F", seq=s.isn, ack=0, tsopt=False)
    conv.send(c, 200.2, "RA", seq=0, ack=s.isn + 1, tsopt=False)
    frames += conv.frames
    readme = (
        "A port scan 10.0.0.1 -> 10.0.0.2, no TCP options, one probe every 10 ms from source "
        "port 50000+N (target port, probe flags/answer: R = the closed port's RST as RFC 9293 "
        "section 3.10.7.1 forms it, SA = SYN/ACK then the scanner's RST, - = none): "
        + ", ".join(rows)
        + "; the unanswered SYN is sent twice. Then 10.0.0.2:40000 -> 10.0.0.1:60001 a FIN "
        "probe answered by RST/ACK (the prober has the lower port). Records: 1001 REFUSED, "
        "1002 UNANSWERED, 1003 HANDSHAKE_ABORTED, 1004/1006/1008/1010/1012 and the last "
        "PROBE_RESET, 1005/1007/1009 PROBE_UNANSWERED, 1011 OPEN and 1013 HALF_CLOSED "
        "(probe null); 10.0.0.1 is a scan source."
    )
    return "probes.pcap", frames, readme


def sc_one_sided_hole() -> Scenario:
    # the server's frames never pass the capture point (asymmetric routing)
    conv, c, s = new_conv(40014, with_ts=False)
    conv.send(c, 0, "S")
    for i in range(6):
        if i != 2:  # the 3rd segment never seen, and nothing acknowledges it
            conv.send(c, 10 + i, "PA", payload(100, b"D"), seq=c.isn + 1 + 100 * i,
                      ack=s.isn + 1)
    readme = (
        "One-sided: only the client's frames (asymmetric routing). SYN @0, then 100 B "
        "segments @10..15ms covering ISN+1..ISN+601 with the 3rd (ISN+201..ISN+301) never "
        "captured and never acknowledged (no server frame at all). One OPEN connection: "
        "client bytes 500, sequence space 600, a 100 B hole (gap_bytes 100)."
    )
    return "one_sided_hole.pcap", conv.frames, readme


def short_frames() -> tuple[str, list[Record], str]:
    """A request whose frame is 50 bytes shorter than its IP length says, with the capture
    length equal to the length on the wire (the frame was short, not cut), and the same
    request cut by a snap length (the bytes were on the wire) on a second connection."""
    records: list[Record] = []
    for port, cut_by_snaplen in ((40012, False), (40013, True)):
        conv, c, s = new_conv(port, with_ts=False)
        t0 = 100.0 * (port - 40012)
        handshake(conv, c, s, t0)
        conv.send(c, t0 + 20, "PA", payload(100, b"Q"))
        rendered = render(conv.frames)
        last = rendered[-1]
        held = last.data[:-50]
        orig_len = last.orig_len if cut_by_snaplen else len(held)
        records += [*rendered[:-1], Record(last.ts_ns, held, orig_len)]
    readme = (
        "Two connections without TCP timestamps, each a handshake then a 100 B request "
        "@20ms whose frame holds 50 B of it. Port 40012: capture length = length on the "
        "wire (the frame itself was short: IPv4 total length 140, 90 bytes of IP present; "
        "tshark: Len=50, expert info 'IPv4 total length exceeds packet length'). Port 40013 "
        "@100ms: the same frame cut by the snap length (original length 154: the 100 B were on "
        "the wire). Client bytes 50 (short_frames 1) and 100 (snaplen_cut)."
    )
    return "short_frame.pcap", records, readme


PART_A: list[Callable[[], Scenario]] = [
    sc_simultaneous_open,
    sc_fin_with_data,
    sc_rst_in_time_wait,
    sc_fin_retransmitted,
    sc_fin_out_of_order,
    sc_syn_retrans_no_ts,
    sc_synack_lost_ts,
    sc_port_reuse,
    sc_refused_then_ok,
    sc_keepalive,
    sc_rst_after_close,
    sc_probes,
    sc_one_sided_hole,
]


# --------------------------------------------------------------------------
# Part B: reference connection in many forms
# --------------------------------------------------------------------------

REF_PORT = 40100


def reference_frames() -> list[Frame]:
    """10 packets: SYN, SYN/ACK, ACK, req(30), ACK, resp(60), ACK, FIN/ACK, FIN/ACK, ACK."""
    conv, c, s = new_conv(REF_PORT)
    handshake(conv, c, s, 0)  # 0, 10, 10.1
    conv.send(c, 10.2, "PA", payload(30, b"GET / HTTP/1.0\r\n"))
    conv.send(s, 20.2, "A")
    conv.send(s, 30, "PA", payload(60, b"HTTP/1.0 200 OK\r\n"))
    conv.send(c, 30.1, "A")
    client_close(conv, c, s, 40)  # 40, 50, 50.1
    assert len(conv.frames) == 10
    return conv.frames


def midpoints(frames: list[Frame], after: list[int]) -> list[int]:
    """Timestamps halfway between frame i and i+1 (0-based) for each i in ``after``."""
    return [(frames[i].t_us + frames[i + 1].t_us) // 2 for i in after]


def merge(a: list[Record], b: list[Record]) -> list[Record]:
    return sorted(a + b, key=lambda r: r.ts_ns)


def noise_records(ref: list[Frame]) -> list[Record]:
    t = midpoints(ref, [0, 2, 4, 6])
    cmac, smac = MAC_OF[CLIENT_IP], MAC_OF[SERVER_IP]
    arp = Ether(src=cmac, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=cmac, psrc=CLIENT_IP, hwdst="00:00:00:00:00:00", pdst="10.0.0.254"
    )
    dns = (
        Ether(src=cmac, dst=OTHER_MAC)
        / IP(src=CLIENT_IP, dst="10.0.0.53", id=0x2000)
        / UDP(sport=53000, dport=53)
        / DNS(id=0x1234, rd=1, qd=DNSQR(qname="example.com"))
    )
    icmp = (
        Ether(src=cmac, dst=smac)
        / IP(src=CLIENT_IP, dst=SERVER_IP, id=0x2001)
        / ICMP(type=8, id=0x77, seq=1)
        / Raw(b"pingpingpingping")
    )
    icmp6 = (
        Ether(src=cmac, dst=smac)
        / IPv6(src="fd00::1", dst="fd00::2", hlim=64)
        / ICMPv6EchoRequest(id=0x78, seq=1, data=b"ping6")
    )
    return [record(ts, bytes(p)) for ts, p in zip(t, [arp, dns, icmp, icmp6], strict=True)]


def fragment_records(ref: list[Frame]) -> list[Record]:
    t = midpoints(ref, [2, 5])
    dgram = (
        IP(src="10.0.0.3", dst="10.0.0.4", id=0x4242, ttl=64)
        / TCP(sport=5555, dport=80, seq=777, ack=888, flags="PA", window=502)
        / Raw(payload(60, b"F"))
    )
    frags: list[Packet] = fragment(dgram, fragsize=40)  # type: ignore[no-untyped-call]
    assert len(frags) == 2
    eth = Ether(src=OTHER_MAC, dst=MAC_OF[SERVER_IP])
    return [record(ts, bytes(eth / f)) for ts, f in zip(t, frags, strict=True)]


def multi_if_pcapng(ref: list[Frame]) -> bytes:
    w = PcapngWriter()
    w.section_header("tcptrace pcaps/craft.py")
    w.interface(LINKTYPE_ETHERNET, "eth0")
    w.interface(LINKTYPE_LINUX_SLL, "any", tsresol_exp=9)
    w.interface(LINKTYPE_RAW, "tun0")
    w.name_resolution([(CLIENT_IP, "client.example"), (SERVER_IP, "server.example")])
    for i, f in enumerate(ref):
        if_id = i % 3
        w.packet(
            if_id,
            render(
                [f], link=LINK_OF_TYPE[[LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_RAW][if_id]]
            )[0],
        )
        if i == 4:
            w.custom(0x00000BAD, 32473, b"skip me: opaque custom block")
    end_ns = (BASE_US + ref[-1].t_us + 1000) * 1000
    for if_id, count in enumerate([4, 3, 3]):
        w.interface_stats(if_id, end_ns, count, 0)
    return w.getvalue()


def simple_pcapng(records: list[Record], big_endian: bool = False) -> bytes:
    w = PcapngWriter(big_endian=big_endian)
    w.section_header("tcptrace pcaps/craft.py")
    w.interface(LINKTYPE_ETHERNET, "eth0")
    for rec in records:
        w.packet(0, rec)
    return w.getvalue()


def truncate_in_record(pcap: bytes, index: int) -> bytes:
    """Cut a classic LE pcap in the middle of the data of record ``index`` (0-based)."""
    off = 24
    for _ in range(index):
        incl = struct.unpack_from("<I", pcap, off + 8)[0]
        off += 16 + incl
    incl = struct.unpack_from("<I", pcap, off + 8)[0]
    return pcap[: off + 16 + incl // 2]


def part_b() -> list[tuple[str, str]]:
    """Write all reference-connection variants; returns (file, description) rows."""
    ref = reference_frames()
    eth = render(ref)
    us_le = pcap_bytes(eth, LINKTYPE_ETHERNET)
    rows: list[tuple[str, str]] = []

    def out(name: str, data: bytes, desc: str) -> None:
        write(name, data)
        rows.append((name, desc))

    out("ref_eth_us_le.pcap", us_le, "Ethernet, pcap magic a1b2c3d4 (µs) little-endian.")
    out(
        "ref_eth_ns_le.pcap",
        pcap_bytes(eth, LINKTYPE_ETHERNET, nano=True),
        "Ethernet, pcap magic a1b23c4d (ns) little-endian.",
    )
    out(
        "ref_eth_us_be.pcap",
        pcap_bytes(eth, LINKTYPE_ETHERNET, big_endian=True),
        "Ethernet, µs pcap, big-endian.",
    )
    out(
        "ref_eth_ns_be.pcap",
        pcap_bytes(eth, LINKTYPE_ETHERNET, nano=True, big_endian=True),
        "Ethernet, ns pcap, big-endian.",
    )
    ng = simple_pcapng(eth)
    out("ref_eth.pcapng", ng, "pcapng LE: SHB, one IDB (Ethernet, default µs), 10 EPBs.")
    out(
        "ref_multi_if.pcapng",
        multi_if_pcapng(ref),
        "pcapng LE: SHB, IDB0 Ethernet (µs), IDB1 LINUX_SLL (if_tsresol=9, ns), IDB2 RAW/101 "
        "(µs), NRB, packets round-robin "
        "over if0/if1/if2 (pkt i -> if (i-1)%3), a custom block type 0x00000BAD (PEN 32473) "
        "after packet 5, 3 ISBs at the end. "
        "Readers must skip NRB/ISB/custom blocks. Checked: tshark 4.0 reads it (lists the custom "
        "block as an extra "
        "non-packet record #6, so 11 rows); tcpdump/libpcap 1.10 refuses it ('an interface has a "
        "type 113 different "
        "from the type of the first interface') - expected, libpcap does not support mixed link "
        "types.",
    )
    out(
        "ref_be.pcapng",
        simple_pcapng(eth, big_endian=True),
        "pcapng big-endian section (BOM 1a2b3c4d written BE), one Ethernet IDB.",
    )
    out("ref_eth.pcap.gz", gz(us_le), "gzip (mtime 0) of ref_eth_us_le.pcap.")
    out("ref_eth.pcapng.gz", gz(ng), "gzip (mtime 0) of ref_eth.pcapng.")
    out(
        "ref_vlan.pcap",
        pcap_bytes(render(ref, link=link_vlan), LINKTYPE_ETHERNET),
        "Ethernet + 802.1Q tag (0x8100, VID 10).",
    )
    out(
        "ref_qinq.pcap",
        pcap_bytes(render(ref, link=link_qinq), LINKTYPE_ETHERNET),
        "Ethernet + QinQ: outer 0x88a8 VID 100, inner 0x8100 VID 10.",
    )
    out(
        "ref_sll.pcap",
        pcap_bytes(render(ref, link=link_sll), LINKTYPE_LINUX_SLL),
        "LINUX_SLL (DLT 113), 16-byte cooked header; pkttype 4 (outgoing) for client->server, 0 "
        "(host) for server->client.",
    )
    out(
        "ref_sll2.pcap",
        pcap_bytes(render(ref, link=link_sll2), LINKTYPE_LINUX_SLL2),
        "LINUX_SLL2 (DLT 276), 20-byte header, ifindex 2, same pkttypes.",
    )
    out(
        "ref_null.pcap",
        pcap_bytes(render(ref, link=link_null), LINKTYPE_NULL),
        "DLT_NULL (0), AF=2 as little-endian u32 (file is LE).",
    )
    out(
        "ref_loop.pcap",
        pcap_bytes(render(ref, link=link_loop), LINKTYPE_LOOP),
        "DLT_LOOP (108), AF=2 as big-endian u32.",
    )
    out(
        "ref_raw4.pcap",
        pcap_bytes(render(ref, link=link_raw), LINKTYPE_RAW),
        "LINKTYPE_RAW (101), IPv4.",
    )
    out(
        "ref_ipv4_dlt228.pcap",
        pcap_bytes(render(ref, link=link_raw), LINKTYPE_IPV4),
        "LINKTYPE_IPV4 (228).",
    )
    out(
        "ref_ipv6.pcap",
        pcap_bytes(render(ref, l3=ipv6), LINKTYPE_ETHERNET),
        "Ethernet + IPv6 fd00::1 -> fd00::2 (same TCP content; endpoints are [fd00::1]:40100 / "
        "[fd00::2]:80).",
    )
    out(
        "ref_ipv6_ext.pcap",
        pcap_bytes(render(ref, l3=lambda f: ipv6(f, ext=True)), LINKTYPE_ETHERNET),
        "Ethernet + IPv6 where every packet has Hop-by-Hop (PadN) then Destination Options "
        "(PadN) headers before TCP.",
    )
    out(
        "ref_raw6.pcap",
        pcap_bytes(render(ref, l3=ipv6, link=link_raw), LINKTYPE_RAW),
        "LINKTYPE_RAW (101) with IPv6.",
    )
    out(
        "ref_ipv6_dlt229.pcap",
        pcap_bytes(render(ref, l3=ipv6, link=link_raw), LINKTYPE_IPV6),
        "LINKTYPE_IPV6 (229).",
    )
    out(
        "ref_ipv4_options.pcap",
        pcap_bytes(render(ref, l3=ipv4_with_rr), LINKTYPE_ETHERNET),
        "Every IPv4 header has a Record Route option (2 empty slots) + EOL padding: IHL = 8 "
        "(32-byte IP header).",
    )
    out(
        "ref_snaplen64.pcap",
        pcap_bytes(render(ref, snaplen=64), LINKTYPE_ETHERNET, snaplen=64),
        "snaplen 64 (header snaplen 64): EVERY frame is cut at 64 bytes (incl_len 64 < "
        "orig_len): IP and the 20-byte fixed "
        "TCP header are complete but the TCP options are cut: SYN and SYN/ACK keep MSS, SAckOK, "
        "TS kind/len + 2 bytes of "
        "tsval; other packets keep NOP NOP, TS kind/len, full tsval, 2 of 4 tsecr bytes; no "
        "payload bytes captured. "
        "Flags/seq/ack and payload length (from IP total length) are intact; TS option must be "
        "treated as unavailable "
        "(an option parser must not read past the captured bytes). Connection result otherwise "
        "identical.",
    )
    out(
        "ref_snaplen80.pcap",
        pcap_bytes(render(ref, snaplen=80), LINKTYPE_ETHERNET, snaplen=80),
        "EXTRA (see snaplen64 note): snaplen 80: every TCP header incl. all options is complete "
        "(SYNs are 74 B); only "
        "the 2 payload-bearing packets (4: 96 B, 6: 126 B) are cut to 80 B (incl_len < "
        "orig_len). Analysis must be "
        "identical to the reference (incl. TS values and byte counts from IP total length).",
    )
    out(
        "ref_with_fragments.pcap",
        pcap_bytes(merge(eth, fragment_records(ref)), LINKTYPE_ETHERNET),
        "12 frames: the reference plus 2 IPv4 fragments of another datagram (10.0.0.3 -> "
        "10.0.0.4, id 0x4242, proto TCP "
        "5555->80 PA): frag 1 offset 0 MF=1 (after pkt 3), frag 2 offset 40 B (after pkt 6). "
        "Fragments counted & skipped; "
        "no 10.0.0.3/10.0.0.4 connection must appear (the 2 fragments form a complete "
        "datagram: tshark reassembles them into one mid-stream TCP segment at frame 8; a "
        "non-reassembling analyzer must simply count and skip both).",
    )
    out(
        "ref_with_noise.pcap",
        pcap_bytes(merge(eth, noise_records(ref)), LINKTYPE_ETHERNET),
        "14 frames: the reference interleaved with ARP request (after pkt 1), UDP DNS query "
        "(after pkt 3), ICMP echo "
        "request (after pkt 5), ICMPv6 echo request over IPv6 (after pkt 7). 4 non-TCP frames "
        "skipped.",
    )
    out(
        "ref_truncated.pcap",
        truncate_in_record(us_le, 7),
        "ref_eth_us_le.pcap cut in the middle of the 8th record's packet data (header complete, "
        "half the data). "
        "Reader must report/tolerate truncation (tshark: 'cut short in the middle of a packet'; "
        "tcpdump: "
        "'truncated dump file') and yield 7 complete packets (SYN .. client ACK of the "
        "response): connection "
        "established, 30/60 B, no FIN seen, not closed (both ESTABLISHED at end of capture).",
    )
    out(
        "ref_split_a.pcap",
        pcap_bytes(eth[0::2], LINKTYPE_ETHERNET),
        "Reference packets 1,3,5,7,9 (SYN, ACK, srv ACK, ACK, srv FIN/ACK); "
        "alone it is an incomplete connection.",
    )
    out(
        "ref_split_b.pcap",
        pcap_bytes(eth[1::2], LINKTYPE_ETHERNET),
        "Reference packets 2,4,6,8,10 (SYN/ACK, req, resp, FIN/ACK, ACK). "
        "Merging _a and _b by timestamp restores exactly the reference connection (identical "
        "result).",
    )
    return rows


# --------------------------------------------------------------------------
# README
# --------------------------------------------------------------------------


def frame_table(frames: list[Frame]) -> list[str]:
    lines = [
        "| # | time (s) | dir | flags | seq | ack | len | tsval | tsecr |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(frames, 1):
        ts = f.tsopt or (None, None)
        t = f"{(BASE_US + f.t_us) // 1_000_000}.{(BASE_US + f.t_us) % 1_000_000:06d}"
        direction = "c->s" if f.src == CLIENT_IP else "s->c"
        plen = len(f.tcp.payload) if f.tcp.payload else 0
        lines.append(
            f"| {i} | {t} | {direction} | {f.tcp.sprintf('%TCP.flags%')} | {f.tcp.seq} | "
            f"{f.tcp.ack} | {plen} | {ts[0]} | {ts[1]} |"
        )
    return lines


REF_OUTCOME = (
    "Expected result for EVERY ref_* file (except where noted: truncated, split (each half "
    "alone), snaplen64 (no TS)): "
    "exactly one TCP connection 10.0.0.1:40100 -> 10.0.0.2:80 (IPv6 files: [fd00::1]:40100 -> "
    "[fd00::2]:80), "
    "10 TCP packets, handshake complete (SYN->SYN/ACK 10 ms, SYN/ACK->ACK 0.1 ms), 30 B "
    "client->server, "
    "60 B server->client, no retransmissions, client closes first (FIN/ACK, FIN/ACK, ACK); "
    + STATES_3SEG
    + " First packet 1700000000.000000, last 1700000000.050100."
)


def write_readme(
    part_a: list[tuple[str, str]],
    part_b: list[tuple[str, str]],
    ref: list[Frame],
    part_c: tuple[list[str], list[tuple[str, str]]],
) -> None:
    lines = [
        "# Crafted TCP test captures",
        "",
        "Generated deterministically by `pcaps/craft.py` (do not edit by hand; re-run the script).",
        "All times are relative to 1700000000.000000. Client 10.0.0.1 (MAC 02:00:00:00:00:01), "
        "server 10.0.0.2",
        "(MAC 02:00:00:00:00:02). Default ISNs: client 1000000000, server 3000000000. TCP "
        "timestamp clocks are 1 kHz:",
        "client tsval = 100000 + ms, server tsval = 500000 + ms (unless stated). State names "
        "follow RFC 793;",
        "`>` separates successive states. All TCP/IP checksums are correct. RSTs sent on a TS "
        "connection carry a TS",
        "option (tsecr 0 when the ACK flag is clear, RFC 7323); the RST/ACK from a closed port "
        "carries no options.",
        "Every file was checked with `tshark -r` and `tcpdump -r` (see notes for ref_multi_if "
        "and ref_truncated).",
        "",
        "## Part A - rare TCP paths (Ethernet, µs little-endian pcap, client port 40000+N)",
        "",
    ]
    lines += [f"- `{name}`: {desc}" for name, desc in part_a]
    lines += [
        "",
        "## Part B - the reference connection in many containers / link types / network layers",
        "",
    ]
    lines += ["Reference connection packet list (identical TCP content in every ref_* file):", ""]
    lines += frame_table(ref)
    lines += ["", REF_OUTCOME, ""]
    lines += [f"- `{name}`: {desc}" for name, desc in part_b]
    intro, rows = part_c
    lines += ["", *intro, ""]
    lines += [f"- `{name}`: {desc}" for name, desc in rows]
    lines.append("")
    (OUT_DIR / "README.md").write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    part_a_rows: list[tuple[str, str]] = []
    for build in PART_A:
        name, frames, desc = build()
        write_pcap(name, render(frames))
        part_a_rows.append((name, desc))
    name, records, desc = short_frames()
    write_pcap(name, records)
    part_a_rows.append((name, desc))
    part_b_rows = part_b()
    # Part C lives in its own module, which imports this one's helpers
    from craft_tunnels import PART_C_INTRO, part_c

    part_c_rows = part_c()
    write_readme(part_a_rows, part_b_rows, reference_frames(), (PART_C_INTRO, part_c_rows))


if __name__ == "__main__":
    main()
