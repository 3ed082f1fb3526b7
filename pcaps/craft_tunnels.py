"""Part C of the crafted captures: the reference connection behind every link layer,
layer-2.5 header and tunnel that tcptrace decodes (issue 15).

Called by ``pcaps/craft.py`` (run that script, not this module). Every frame is built byte
by byte with ``struct`` where scapy's layers are doubtful (FDDI, NFLOG, radiotap and 802.11,
PBB, FabricPath, MPLS, GRE, ERSPAN, VXLAN, Geneve, Teredo, GTP-U); scapy only builds the IP
and UDP headers around them, so every IP and UDP checksum is correct. Each file was read
with ``tshark -r F -V``: tshark names every layer listed here and finds the inner TCP segment
(see the notes in the README rows where its reading needs an option).

Tunnel endpoints: 192.0.2.1 (the client's side, MAC 02:00:00:00:01:01) and 192.0.2.2 (the
server's side, MAC 02:00:00:00:01:02), 2001:db8::1 / 2001:db8::2 for IPv6 outer headers.
A frame the client sends leaves from the client's side; the server's frames come back the
other way. Most files also hold one malformed frame (between reference packets 5 and 6)
that the decoder must count in ``source.skipped`` and leave out.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from craft import (
    CLIENT_IP,
    LINKTYPE_ETHERNET,
    MAC_OF,
    SERVER_IP,
    Frame,
    Record,
    ipv4,
    ipv6,
    link_eth,
    mac_bytes,
    macs,
    merge,
    midpoints,
    pcap_bytes,
    record,
    reference_frames,
    write,
)
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw

# Link-layer header types (https://www.tcpdump.org/linktypes.html)
LINKTYPE_PPP = 9
LINKTYPE_FDDI = 10
LINKTYPE_PPP_HDLC = 50
LINKTYPE_C_HDLC = 104
LINKTYPE_IEEE802_11_RADIOTAP = 127
LINKTYPE_NFLOG = 239

TUNNEL_C, TUNNEL_S = "192.0.2.1", "192.0.2.2"
TUNNEL6 = {TUNNEL_C: "2001:db8::1", TUNNEL_S: "2001:db8::2"}
TUNNEL_MAC = {TUNNEL_C: "02:00:00:00:01:01", TUNNEL_S: "02:00:00:00:01:02"}
# The second tunnel of the nested file (Geneve inside VXLAN)
NESTED_C, NESTED_S = "198.51.100.1", "198.51.100.2"
BSSID = "02:00:00:00:00:aa"

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
ETH_VLAN, ETH_QINQ, ETH_PBB, ETH_FABRICPATH = 0x8100, 0x88A8, 0x88E7, 0x8903
ETH_MPLS, ETH_PPPOE, ETH_TEB = 0x8847, 0x8864, 0x6558
GRE_ERSPAN, GRE_ERSPAN3 = 0x88BE, 0x22EB
PPP_IPV4, PPP_IPV6 = 0x0021, 0x0057

# Where the malformed frame goes: between reference packets 5 and 6 (0-based 4 and 5)
MALFORMED_AFTER = 4


def is_client(frame: Frame) -> bool:
    return frame.src == CLIENT_IP


def ends(frame: Frame, client_end: str = TUNNEL_C, server_end: str = TUNNEL_S) -> tuple[str, str]:
    """The outer (source, destination) of a frame: the client's frames leave its side."""
    return (client_end, server_end) if is_client(frame) else (server_end, client_end)


def outer_id(frame: Frame) -> int:
    return (frame.ip_id + 0x100) & 0xFFFF


def l3_of(frame: Frame, v6: bool = False) -> bytes:
    return bytes(ipv6(frame) if v6 else ipv4(frame))


def protocol_of(l3: bytes) -> int:
    return ETH_IPV6 if l3[0] >> 4 == 6 else ETH_IPV4


def inner_eth(frame: Frame, v6: bool = False) -> bytes:
    """The reference segment as the Ethernet frame a layer-2 tunnel carries."""
    return link_eth(frame, l3_of(frame, v6))


def outer_eth(frame: Frame, ethertype: int, body: bytes, tags: bytes = b"") -> bytes:
    src, dst = ends(frame)
    return mac_bytes(TUNNEL_MAC[dst]) + mac_bytes(TUNNEL_MAC[src]) + tags + struct.pack(
        "!H", ethertype) + body


def outer_ip(frame: Frame, proto: int, body: bytes, v6: bool = False,
             ends_: tuple[str, str] | None = None) -> bytes:
    """An outer IP header (IPv4, or IPv6 when ``v6``) carrying ``body`` as protocol ``proto``."""
    src, dst = ends_ or ends(frame)
    if v6:
        return bytes(IPv6(src=TUNNEL6[src], dst=TUNNEL6[dst], nh=proto, hlim=64) / Raw(body))
    return bytes(IP(src=src, dst=dst, id=outer_id(frame), flags="DF", ttl=64, proto=proto)
                 / Raw(body))


def outer_udp(frame: Frame, ports: tuple[int, int], body: bytes,
              ends_: tuple[str, str] | None = None) -> bytes:
    """``body`` in UDP (``ports`` as the client sends; the server's frames swap them) in IPv4."""
    sport, dport = ports if is_client(frame) else (ports[1], ports[0])
    src, dst = ends_ or ends(frame)
    return bytes(IP(src=src, dst=dst, id=outer_id(frame), flags="DF", ttl=64)
                 / UDP(sport=sport, dport=dport) / Raw(body))


# --------------------------------------------------------------------------
# Link layers (no IP tunnel): the frame from its first byte
# --------------------------------------------------------------------------


def snap(ethertype: int) -> bytes:
    """802.2 LLC (DSAP AA, SSAP AA, UI) with a SNAP header (OUI 0) naming ``ethertype``."""
    return bytes([0xAA, 0xAA, 0x03, 0, 0, 0]) + struct.pack("!H", ethertype)


def fddi(frame: Frame) -> bytes:
    """FDDI (frame control 0x50: asynchronous LLC frame), addresses, LLC/SNAP, IPv4."""
    src, dst = macs(frame)
    l3 = l3_of(frame)
    return b"\x50" + mac_bytes(dst) + mac_bytes(src) + snap(ETH_IPV4) + l3


def ppp(frame: Frame) -> bytes:
    """LINKTYPE_PPP without HDLC framing: the protocol field, then IPv4 (RFC 1661)."""
    return struct.pack("!H", PPP_IPV4) + l3_of(frame)


def ppp_hdlc(frame: Frame) -> bytes:
    """PPP in HDLC-like framing (RFC 1662): address 0xFF, control 0x03, protocol."""
    return struct.pack("!BBH", 0xFF, 0x03, PPP_IPV4) + l3_of(frame)


def cisco_hdlc(frame: Frame) -> bytes:
    """Cisco HDLC: address 0x0F (unicast), control 0, an ethertype."""
    return struct.pack("!BBH", 0x0F, 0x00, ETH_IPV4) + l3_of(frame)


def pppoe(frame: Frame) -> bytes:
    """A PPPoE session frame (RFC 2516 section 4: version/type 0x11, code 0, session 0x0042,
    length of the PPP frame) on Ethernet, carrying PPP IPv4."""
    l3 = l3_of(frame)
    ppp_frame = struct.pack("!H", PPP_IPV4) + l3
    src, dst = macs(frame)
    return (mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", ETH_PPPOE)
            + struct.pack("!BBHH", 0x11, 0x00, 0x0042, len(ppp_frame)) + ppp_frame)


def nflog_tlv(kind: int, value: bytes) -> bytes:
    """An NFLOG TLV: length and type in the capturing host's byte order (little-endian
    here), the value padded to 4 bytes (linux/netfilter/nfnetlink_log.h)."""
    tlv = struct.pack("<HH", 4 + len(value), kind) + value
    return tlv + b"\x00" * (-len(tlv) % 4)


def nflog(frame: Frame) -> bytes:
    """Linux NFLOG as ``tcpdump -i nflog:5`` writes it: AF_INET, version 0, resource id 5
    (big-endian), then NFULA_PACKET_HDR (1), NFULA_PREFIX (10) and NFULA_PAYLOAD (9)."""
    packet_hdr = struct.pack("!HBB", ETH_IPV4, 3, 0)  # hw_protocol, hook 3 (OUTPUT), pad
    return (struct.pack("!BBH", 2, 0, 5) + nflog_tlv(1, packet_hdr)
            + nflog_tlv(10, b"tcptrace\x00") + nflog_tlv(9, l3_of(frame)))


RADIOTAP = struct.pack("<BBHIBB", 0, 0, 10, 0x00000006, 0x00, 0x0C)  # Flags, Rate 6 Mb/s


def wifi(frame: Frame, seq: int) -> bytes:
    """Radiotap (flags, rate) and an 802.11 data frame between a station (the client) and
    the access point in front of the server: the client's frames go to the distribution
    system (ToDS: BSSID, SA, DA), the server's come from it (FromDS: DA, BSSID, SA) as QoS
    data (a 2-byte QoS control field). Then LLC/SNAP and IPv4. No FCS."""
    src, dst = macs(frame)
    if is_client(frame):
        control = struct.pack("!BB", 0x08, 0x01)  # data, ToDS
        addresses = mac_bytes(BSSID) + mac_bytes(src) + mac_bytes(dst)
        qos = b""
    else:
        control = struct.pack("!BB", 0x88, 0x02)  # QoS data, FromDS
        addresses = mac_bytes(dst) + mac_bytes(BSSID) + mac_bytes(src)
        qos = b"\x00\x00"
    header = control + struct.pack("<H", 44) + addresses + struct.pack("<H", seq << 4) + qos
    return RADIOTAP + header + snap(ETH_IPV4) + l3_of(frame)


def wifi_encrypted(seq: int) -> bytes:
    """A protected (CCMP) data frame from the client: its payload cannot be read."""
    src, dst = MAC_OF[CLIENT_IP], MAC_OF[SERVER_IP]
    control = struct.pack("!BB", 0x08, 0x41)  # data, ToDS + Protected
    header = (control + struct.pack("<H", 44) + mac_bytes(BSSID) + mac_bytes(src)
              + mac_bytes(dst) + struct.pack("<H", seq << 4))
    ccmp = bytes([0x01, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00])  # PN 1, key id 0, ExtIV
    return RADIOTAP + header + ccmp + bytes(range(48)) + b"\x5a" * 8  # data, MIC


def pbb(frame: Frame) -> bytes:
    """802.1ah PBB: backbone addresses, B-TAG (802.1ad, VID 200), I-TAG (I-SID 0x00abcd),
    then the customer's addresses and ethertype."""
    b_tag = struct.pack("!HH", ETH_QINQ, 200)
    i_tag = struct.pack("!HI", ETH_PBB, 0x0000ABCD)
    src, dst = macs(frame)
    customer = mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", ETH_IPV4) + l3_of(frame)
    bsrc, bdst = ends(frame)
    return mac_bytes(TUNNEL_MAC[bdst]) + mac_bytes(TUNNEL_MAC[bsrc]) + b_tag + i_tag + customer


def fabricpath(frame: Frame) -> bytes:
    """Cisco FabricPath: outer switch addresses, ethertype 0x8903, FTag 1 / TTL 32, the
    original Ethernet frame, and the FabricPath frame's own FCS (CRC-32), which Wireshark's
    cfp dissector expects at the end."""
    bsrc, bdst = ends(frame)
    ftag_ttl = struct.pack("!H", 1 << 6 | 32)
    fp_frame = (mac_bytes(TUNNEL_MAC[bdst]) + mac_bytes(TUNNEL_MAC[bsrc])
                + struct.pack("!H", ETH_FABRICPATH) + ftag_ttl + inner_eth(frame))
    return fp_frame + struct.pack("<I", zlib.crc32(fp_frame))


def mpls_label(label: int, bottom: bool, ttl: int = 64) -> bytes:
    """One MPLS label stack entry (RFC 3032): label (20 bits), TC 0, S, TTL."""
    return struct.pack("!I", label << 12 | int(bottom) << 8 | ttl)


def mpls_pw(frame: Frame) -> bytes:
    """An Ethernet pseudowire (RFC 4448): one label (300, bottom of stack), the 4-byte
    control word (first nibble 0, sequence number 0), then the whole Ethernet frame."""
    src, dst = macs(frame)
    return (mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", ETH_MPLS)
            + mpls_label(300, True) + bytes(4) + inner_eth(frame))


def mpls(frame: Frame, v6: bool = False) -> bytes:
    """Two MPLS labels (100, then 200 at the bottom of the stack) on Ethernet; the payload
    type is left to its first nibble (no control word)."""
    src, dst = macs(frame)
    return (mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", ETH_MPLS)
            + mpls_label(100, False) + mpls_label(200, True) + l3_of(frame, v6))


# --------------------------------------------------------------------------
# Tunnels carried in IP
# --------------------------------------------------------------------------


@dataclass
class Sequence:
    """Per-direction GRE sequence numbers (RFC 2890), from 1."""

    client: int = 0
    server: int = 0

    def next(self, frame: Frame) -> int:
        if is_client(frame):
            self.client += 1
            return self.client
        self.server += 1
        return self.server


def ones_complement(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    data += b"\x00" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def gre_header(protocol: int, key: int | None = None, seq: int | None = None,
               checksummed: bytes | None = None) -> bytes:
    """GRE version 0 (RFC 2784, RFC 2890): the C, K and S flags with their fields; with
    ``checksummed`` (the payload) the checksum covers the GRE header and that payload."""
    flags = ((0x80 if checksummed is not None else 0) | (0x20 if key is not None else 0)
             | (0x10 if seq is not None else 0))
    fields = b""
    if key is not None:
        fields += struct.pack("!I", key)
    if seq is not None:
        fields += struct.pack("!I", seq)
    if checksummed is None:
        return struct.pack("!BBH", flags, 0, protocol) + fields
    unsummed = struct.pack("!BBHHH", flags, 0, protocol, 0, 0) + fields
    checksum = ones_complement(unsummed + checksummed)
    return struct.pack("!BBHHH", flags, 0, protocol, checksum, 0) + fields


def erspan2_header(session: int, vlan: int = 0) -> bytes:
    """ERSPAN type II (draft-foschiano-erspan section 4.1): version 1, VLAN, COS/En/T,
    session id, reserved and index."""
    return struct.pack("!HHI", 1 << 12 | vlan, session & 0x3FF, 0)


def erspan3_header(session: int, timestamp: int) -> bytes:
    """ERSPAN type III (section 4.2): version 2, session id, timestamp, SGT 0, hardware id 1,
    O set: an 8-byte platform-specific subheader follows (platform id 3: port id 7 and the
    upper timestamp word)."""
    flags = 1 << 4 | 1  # hardware id 1 (bits 9..4 of the last 16-bit word), O (bit 0)
    base = struct.pack("!HHIHH", 2 << 12, session & 0x3FF, timestamp, 0, flags)
    platform = struct.pack("!II", 3 << 26 | 7, 0)
    return base + platform


def gre(frame: Frame, seqs: Sequence) -> bytes:
    """IPv4 in GRE with key 7 and a sequence number, in IPv4 on Ethernet."""
    body = gre_header(ETH_IPV4, key=7, seq=seqs.next(frame)) + l3_of(frame)
    return outer_eth(frame, ETH_IPV4, outer_ip(frame, 47, body))


def gre_teb(frame: Frame) -> bytes:
    """Transparent Ethernet bridging over GRE (protocol 0x6558) with a checksum and key 8."""
    inner = inner_eth(frame)
    body = gre_header(ETH_TEB, key=8, checksummed=inner) + inner
    return outer_eth(frame, ETH_IPV4, outer_ip(frame, 47, body))


def erspan1(frame: Frame) -> bytes:
    """ERSPAN type I: GRE protocol 0x88BE without a sequence number, then the mirrored
    Ethernet frame at once."""
    body = gre_header(GRE_ERSPAN) + inner_eth(frame)
    return outer_eth(frame, ETH_IPV4, outer_ip(frame, 47, body))


def erspan2(frame: Frame, seqs: Sequence, tags: bytes = b"", mirrored: bytes | None = None
            ) -> bytes:
    """ERSPAN type II, session 100: GRE with a sequence number, the 8-byte ERSPAN header,
    the mirrored frame."""
    inner = inner_eth(frame) if mirrored is None else mirrored
    body = gre_header(GRE_ERSPAN, seq=seqs.next(frame)) + erspan2_header(100) + inner
    return outer_eth(frame, ETH_IPV4, outer_ip(frame, 47, body), tags)


def erspan3(frame: Frame, seqs: Sequence) -> bytes:
    """ERSPAN type III, session 200, with the platform-specific subheader."""
    body = (gre_header(GRE_ERSPAN3, seq=seqs.next(frame))
            + erspan3_header(200, frame.t_us) + inner_eth(frame))
    return outer_eth(frame, ETH_IPV4, outer_ip(frame, 47, body))


def erspan_vlan(frame: Frame, seqs: Sequence) -> bytes:
    """ERSPAN type II on an 802.1Q trunk (VID 30) mirroring an 802.1Q-tagged frame (VID 10)."""
    src, dst = macs(frame)
    mirrored = (mac_bytes(dst) + mac_bytes(src) + struct.pack("!HHH", ETH_VLAN, 10, ETH_IPV4)
                + l3_of(frame))
    return erspan2(frame, seqs, struct.pack("!HH", ETH_VLAN, 30), mirrored)


def vxlan_header(vni: int, flags: int = 0x08) -> bytes:
    """VXLAN (RFC 7348 section 5): flags (I: the VNI is valid), VNI."""
    return struct.pack("!B3xI", flags, vni << 8)


VXLAN_PORTS = (51000, 4789)


def vxlan(frame: Frame, port: int = 4789) -> bytes:
    """The Ethernet frame in VXLAN VNI 42 in UDP (the sender's port picked per flow: 51000
    from the client's side, 51001 from the server's) in IPv4 on Ethernet."""
    sport = 51000 if is_client(frame) else 51001
    body = vxlan_header(42) + inner_eth(frame)
    src, dst = ends(frame)
    udp = bytes(IP(src=src, dst=dst, id=outer_id(frame), flags="DF", ttl=64)
                / UDP(sport=sport, dport=port) / Raw(body))
    return outer_eth(frame, ETH_IPV4, udp)


def geneve_header(vni: int, options: bytes = b"") -> bytes:
    """Geneve (RFC 8926 section 3.4): version 0, options length, protocol 0x6558, VNI."""
    assert len(options) % 4 == 0
    return struct.pack("!BBHI", len(options) // 4, 0, ETH_TEB, vni << 8) + options


GENEVE_OPTION = struct.pack("!HBB", 0x0102, 0x01, 1) + b"\xde\xad\xbe\xef"  # class, type, len 1


def geneve(frame: Frame) -> bytes:
    """The Ethernet frame in Geneve VNI 0x123456 with one 8-byte option, UDP 6081."""
    sport = 52000 if is_client(frame) else 52001
    body = geneve_header(0x123456, GENEVE_OPTION) + inner_eth(frame)
    src, dst = ends(frame)
    udp = bytes(IP(src=src, dst=dst, id=outer_id(frame), flags="DF", ttl=64)
                / UDP(sport=sport, dport=6081) / Raw(body))
    return outer_eth(frame, ETH_IPV4, udp)


def geneve_in_vxlan(frame: Frame) -> bytes:
    """Nesting: VXLAN VNI 42 between 192.0.2.1 and .2 carries an Ethernet frame holding
    Geneve VNI 7 between 198.51.100.1 and .2, which carries the reference frame."""
    sport = 52000 if is_client(frame) else 52001
    src, dst = ends(frame, NESTED_C, NESTED_S)
    inner_udp = bytes(IP(src=src, dst=dst, id=outer_id(frame), flags="DF", ttl=64)
                      / UDP(sport=sport, dport=6081)
                      / Raw(geneve_header(7) + inner_eth(frame)))
    middle = link_eth(frame, inner_udp)
    vsport = 51000 if is_client(frame) else 51001
    osrc, odst = ends(frame)
    outer = bytes(IP(src=osrc, dst=odst, id=outer_id(frame), flags="DF", ttl=64)
                  / UDP(sport=vsport, dport=4789) / Raw(vxlan_header(42) + middle))
    return outer_eth(frame, ETH_IPV4, outer)


def ip_in_ip(frame: Frame, inner_v6: bool, outer_v6: bool) -> bytes:
    """The reference datagram as the payload of an outer IP header (protocol 4 or 41)."""
    l3 = l3_of(frame, inner_v6)
    outer = outer_ip(frame, 41 if inner_v6 else 4, l3, v6=outer_v6)
    return outer_eth(frame, ETH_IPV6 if outer_v6 else ETH_IPV4, outer)


TEREDO_PORTS = (40001, 3544)


def teredo(frame: Frame) -> bytes:
    """IPv6 in UDP (RFC 4380): the client's side on port 40001, the relay on 3544; the
    relay's datagrams start with an origin indication (section 5.1.1: type 0, the origin's
    port and IPv4 address, each complemented)."""
    body = l3_of(frame, True)
    if not is_client(frame):
        origin = struct.pack("!HH4s", 0, 40001 ^ 0xFFFF, bytes(b ^ 0xFF for b in bytes(
            [203, 0, 113, 9])))
        body = origin + body
    return outer_eth(frame, ETH_IPV4, outer_udp(frame, TEREDO_PORTS, body))


def gtp_u(frame: Frame) -> bytes:
    """A GTP-U G-PDU (3GPP TS 29.281 section 5.1): version 1, PT 1, S set (sequence number,
    N-PDU number and next extension type 0 follow), TEID per direction, then IPv4; UDP 2152
    both ways."""
    l3 = l3_of(frame)
    teid = 0x11111111 if is_client(frame) else 0x22222222
    seq = frame.ip_id & 0xFFFF
    header = struct.pack("!BBHIHBB", 0x32, 0xFF, 4 + len(l3), teid, seq, 0, 0)
    return outer_eth(frame, ETH_IPV4, outer_udp(frame, (2152, 2152), header + l3))


# --------------------------------------------------------------------------
# Malformed frames: one per layer, each skipped for a stated reason
# --------------------------------------------------------------------------


def malformed_outer(body_proto: int, body: bytes, frame: Frame) -> bytes:
    return outer_eth(frame, ETH_IPV4, outer_ip(frame, body_proto, body))


def malformed_udp(ports: tuple[int, int], body: bytes, frame: Frame) -> bytes:
    return outer_eth(frame, ETH_IPV4, outer_udp(frame, ports, body))


# --------------------------------------------------------------------------
# The files
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Capture:
    """One Part C file: how each reference frame is rendered, the link type, the malformed
    frame (if any) and what the README says."""

    name: str
    linktype: int
    render: Callable[[Frame], bytes]
    description: str
    malformed: Callable[[Frame], bytes] | None = None


def captures() -> list[Capture]:
    gre_seq, erspan2_seq, erspan3_seq, vlan_seq = Sequence(), Sequence(), Sequence(), Sequence()
    wifi_seq = iter(range(1, 100))
    return [
        Capture("ref_fddi.pcap", LINKTYPE_FDDI, fddi,
                "FDDI (10): frame control 0x50, addresses, 802.2 LLC/SNAP (AA AA 03, OUI 0, "
                "0x0800), IPv4. Malformed: a 12-byte frame, shorter than the FDDI header "
                "(truncated_link_header).",
                lambda f: fddi(f)[:12]),
        Capture("ref_ppp.pcap", LINKTYPE_PPP, ppp,
                "PPP (9) without HDLC framing: protocol 0x0021, IPv4. Malformed: a 1-byte "
                "frame (truncated_link_header).",
                lambda f: b"\x00"),
        Capture("ref_ppp_hdlc.pcap", LINKTYPE_PPP_HDLC, ppp_hdlc,
                "PPP in HDLC-like framing (50): FF 03, protocol 0x0021, IPv4. Malformed: "
                "FF 03 and a PPP LCP frame (protocol 0xC021: not_ip).",
                lambda f: bytes.fromhex("ff03c021010100040000")),
        Capture("ref_chdlc.pcap", LINKTYPE_C_HDLC, cisco_hdlc,
                "Cisco HDLC (104): address 0x0F, control 0, ethertype 0x0800, IPv4. Malformed: "
                "a 3-byte frame (truncated_link_header).",
                lambda f: b"\x0f\x00\x08"),
        Capture("ref_pppoe.pcap", LINKTYPE_ETHERNET, pppoe,
                "PPPoE session (ethertype 0x8864, version/type 0x11, code 0, session 0x0042) "
                "carrying PPP IPv4 (0x0021). Malformed: a PPPoE header cut after 4 bytes "
                "(truncated_tunnel_header).",
                lambda f: pppoe(f)[:18]),
        Capture("ref_nflog.pcap", LINKTYPE_NFLOG, nflog,
                "Linux NFLOG (239): AF_INET, version 0, resource id 5, TLVs NFULA_PACKET_HDR, "
                "NFULA_PREFIX \"tcptrace\", NFULA_PAYLOAD (the IPv4 packet); TLV lengths "
                "little-endian. Malformed: a TLV whose length is 2 (truncated_link_header).",
                lambda f: struct.pack("!BBH", 2, 0, 5) + struct.pack("<HH", 2, 1)),
        Capture("ref_radiotap.pcap", LINKTYPE_IEEE802_11_RADIOTAP,
                lambda f: wifi(f, next(wifi_seq)),
                "Radiotap (127, 10 bytes: flags, rate) + 802.11 data frames: the client's "
                "ToDS data (BSSID 02:00:00:00:00:aa), the server's FromDS QoS data; LLC/SNAP, "
                "IPv4. Plus one protected (CCMP) data frame from the client between packets 5 "
                "and 6: counted as skipped (encrypted), its payload unreadable.",
                lambda f: wifi_encrypted(99)),
        Capture("ref_pbb.pcap", LINKTYPE_ETHERNET, pbb,
                "802.1ah PBB: backbone addresses, B-TAG 0x88a8 VID 200, I-TAG 0x88e7 I-SID "
                "0x00abcd, customer addresses, 0x0800, IPv4. Malformed: the I-TAG cut after 6 "
                "bytes (truncated_tunnel_header).",
                lambda f: pbb(f)[:24]),
        Capture("ref_fabricpath.pcap", LINKTYPE_ETHERNET, fabricpath,
                "Cisco FabricPath: outer switch addresses, ethertype 0x8903, FTag 1 TTL 32, "
                "the original Ethernet frame, then the FabricPath frame's CRC-32 FCS (Wireshark's "
                "cfp dissector takes the last 4 bytes as one; Zeek's cisco-fabric-path.pcap "
                "has none, so tshark finds its frames 4 bytes short). Malformed: the inner "
                "Ethernet header cut after 8 bytes (truncated_tunnel_header).",
                lambda f: fabricpath(f)[:24]),
        Capture("ref_mpls.pcap", LINKTYPE_ETHERNET, mpls,
                "MPLS (0x8847): labels 100 and 200 (bottom of stack), TTL 64, then IPv4 found "
                "by its first nibble. Malformed: a label stack with no bottom-of-stack label "
                "before the frame ends (truncated_tunnel_header).",
                lambda f: mpls(f)[:14] + mpls_label(100, False) + mpls_label(101, False)),
        Capture("ref_mpls6.pcap", LINKTYPE_ETHERNET, lambda f: mpls(f, v6=True),
                "As ref_mpls.pcap with IPv6 (fd00::1 -> fd00::2) under the labels, found by "
                "its first nibble 6.",
                None),
        Capture("ref_mpls_pw.pcap", LINKTYPE_ETHERNET, mpls_pw,
                "MPLS Ethernet pseudowire (RFC 4448): label 300 (bottom of stack), a control "
                "word (first nibble 0), the whole Ethernet frame. tshark: "
                "`-d mpls.label==300,pwethcw` (its heuristic reads the all-zero control "
                "word as the start of a MAC address).",
                None),
        Capture("ref_gre.pcap", LINKTYPE_ETHERNET, lambda f: gre(f, gre_seq),
                "GRE (IP protocol 47) between 192.0.2.1 and 192.0.2.2, flags K and S: key 7, "
                "sequence 1, 2, ... per direction, protocol 0x0800, IPv4. Malformed: a GRE "
                "header with the routing flag (RFC 1701 source routing: bad_tunnel_header).",
                lambda f: malformed_outer(47, struct.pack("!BBH", 0x40, 0, ETH_IPV4) + bytes(8),
                                          f)),
        Capture("ref_gre_teb.pcap", LINKTYPE_ETHERNET, gre_teb,
                "GRE with a checksum (C flag: 4 bytes), key 8 and protocol 0x6558 (transparent "
                "Ethernet bridging): the whole Ethernet frame. Malformed: GRE with the key "
                "flag whose key field is cut (truncated_tunnel_header).",
                lambda f: malformed_outer(47, struct.pack("!BBH", 0x20, 0, ETH_TEB) + b"\x00",
                                          f)),
        Capture("ref_erspan1.pcap", LINKTYPE_ETHERNET, erspan1,
                "ERSPAN type I: GRE without sequence number, protocol 0x88be, the mirrored "
                "Ethernet frame directly (no ERSPAN header; tshark: 'Encapsulated Remote "
                "Switch Packet ANalysis Type I').",
                None),
        Capture("ref_erspan2.pcap", LINKTYPE_ETHERNET, lambda f: erspan2(f, erspan2_seq),
                "ERSPAN type II: GRE with sequence number, protocol 0x88be, 8-byte ERSPAN "
                "header (version 1, session 100), the mirrored Ethernet frame. Malformed: "
                "an ERSPAN header of version 3 under 0x88be (bad_tunnel_header).",
                lambda f: malformed_outer(47, gre_header(GRE_ERSPAN, seq=0)
                                          + struct.pack("!HHI", 3 << 12, 100, 0)
                                          + inner_eth(f), f)),
        Capture("ref_erspan3.pcap", LINKTYPE_ETHERNET, lambda f: erspan3(f, erspan3_seq),
                "ERSPAN type III: GRE with sequence number, protocol 0x22eb, 12-byte ERSPAN "
                "header (version 2, session 200, timestamp, hardware id 1, O flag) and the "
                "8-byte platform-specific subheader (platform id 3), the mirrored frame. "
                "Malformed: the header cut inside its 12 bytes (truncated_tunnel_header).",
                lambda f: malformed_outer(47, gre_header(GRE_ERSPAN3, seq=0)
                                          + struct.pack("!HHI", 2 << 12, 200, 0), f)),
        Capture("ref_erspan_vlan.pcap", LINKTYPE_ETHERNET, lambda f: erspan_vlan(f, vlan_seq),
                "ERSPAN type II (session 100) on an 802.1Q trunk (outer tag VID 30), "
                "mirroring a frame tagged VID 10.",
                None),
        Capture("ref_vxlan.pcap", LINKTYPE_ETHERNET, vxlan,
                "VXLAN VNI 42 on UDP 4789 (source port 51000 from the client's side, 51001 "
                "from the server's), the Ethernet frame. Malformed: a VXLAN header without "
                "the I flag (bad_tunnel_header: RFC 7348 section 5 requires it; tshark does "
                "not check it and still shows the inner segment).",
                lambda f: malformed_udp(VXLAN_PORTS, vxlan_header(42, flags=0)
                                        + inner_eth(f), f)),
        Capture("ref_vxlan8472.pcap", LINKTYPE_ETHERNET, lambda f: vxlan(f, 8472),
                "As ref_vxlan.pcap on UDP 8472 (Linux's old VXLAN port): decoded only with "
                "`--tunnel-port vxlan=8472`; without it the 10 datagrams are UDP (not_tcp). "
                "tshark: `-d udp.port==8472,vxlan`.",
                None),
        Capture("ref_geneve.pcap", LINKTYPE_ETHERNET, geneve,
                "Geneve on UDP 6081 (source ports 52000/52001), VNI 0x123456 (1193046), "
                "one option (class 0x0102, type 0x01: not critical, 4 bytes of data; options "
                "length 2), protocol 0x6558, the Ethernet frame. Malformed: Geneve version 1 "
                "(bad_tunnel_header).",
                lambda f: malformed_udp((52000, 6081), b"\x40" + geneve_header(1)[1:]
                                        + inner_eth(f), f)),
        Capture("ref_geneve_in_vxlan.pcap", LINKTYPE_ETHERNET, geneve_in_vxlan,
                "Nesting: VXLAN VNI 42 (192.0.2.1 <-> 192.0.2.2, UDP 4789) carries an Ethernet "
                "frame with Geneve VNI 7 (198.51.100.1 <-> 198.51.100.2, UDP 6081, no options) "
                "carrying the reference frame.",
                None),
        Capture("ref_ip4in4.pcap", LINKTYPE_ETHERNET,
                lambda f: ip_in_ip(f, inner_v6=False, outer_v6=False),
                "IPv4 in IPv4 (protocol 4) between 192.0.2.1 and 192.0.2.2. Malformed: an "
                "inner IPv4 header cut after 12 bytes (truncated_ip_header).",
                lambda f: malformed_outer(4, l3_of(f)[:12], f)),
        Capture("ref_ip6in4.pcap", LINKTYPE_ETHERNET,
                lambda f: ip_in_ip(f, inner_v6=True, outer_v6=False),
                "IPv6 in IPv4 (protocol 41, as 6in4/6to4): the inner IPv6 fd00::1 -> fd00::2.",
                None),
        Capture("ref_ip4in6.pcap", LINKTYPE_ETHERNET,
                lambda f: ip_in_ip(f, inner_v6=False, outer_v6=True),
                "IPv4 in IPv6 (next header 4) between 2001:db8::1 and 2001:db8::2.",
                None),
        Capture("ref_teredo.pcap", LINKTYPE_ETHERNET, teredo,
                "Teredo: IPv6 (fd00::1 -> fd00::2) in UDP between 192.0.2.1:40001 and "
                "192.0.2.2:3544; the server side's datagrams begin with an origin indication "
                "(8 bytes: 203.0.113.9:40001, obfuscated). Malformed: a datagram on 3544 "
                "whose payload is an authentication header and no IPv6 (not_tcp: Teredo "
                "signalling).",
                lambda f: malformed_udp(TEREDO_PORTS, b"\x00\x01\x00\x00" + bytes(13), f)),
        Capture("ref_gtp.pcap", LINKTYPE_ETHERNET, gtp_u,
                "GTP-U on UDP 2152 both ways: version 1, PT 1, S flag (sequence number, "
                "N-PDU number, next extension type 0), message type 0xff (G-PDU), TEID "
                "0x11111111 from the client's side, 0x22222222 from the server's; IPv4. "
                "Malformed: a GTP header of version 2 (bad_tunnel_header).",
                lambda f: malformed_udp((2152, 2152), struct.pack("!BBHI", 0x50, 0xFF, 0, 1),
                                        f)),
    ]


def part_c() -> list[tuple[str, str]]:
    """Write every Part C file; returns (file, description) rows for the README."""
    ref = reference_frames()
    (at,) = midpoints(ref, [MALFORMED_AFTER])
    rows: list[tuple[str, str]] = []
    for capture in captures():
        records: list[Record] = [record(f.t_us, capture.render(f)) for f in ref]
        if capture.malformed is not None:
            bad = capture.malformed(ref[MALFORMED_AFTER])
            records = merge(records, [record(at, bad)])
        write(capture.name, pcap_bytes(records, capture.linktype))
        rows.append((capture.name, capture.description))
    return rows


PART_C_INTRO = [
    "## Part C - the reference connection behind link layers, layer 2.5 and tunnels",
    "",
    "Made by `pcaps/craft_tunnels.py`. The same 10 TCP segments as Part B (so the same "
    "expected result, with the endpoints [fd00::1]:40100 -> [fd00::2]:80 where the inner "
    "packet is IPv6), plus the connection's `encapsulation` for the tunnels carried in IP. "
    "Tunnel endpoints: 192.0.2.1 / 2001:db8::1 on the client's side (MAC 02:00:00:00:01:01), "
    "192.0.2.2 / 2001:db8::2 on the server's side (MAC 02:00:00:00:01:02); the client's "
    "frames leave its side, the server's come back. Where stated, one malformed frame lies "
    "between reference packets 5 and 6 (at 1700000000.025100) and is counted in "
    "`source.skipped` for the reason given. Every file was read with `tshark -r F -V` "
    "(all 10 segments found, no expert warning but on the malformed frame) and with "
    "`tcpdump -r` (tcpdump 4.99 shows ERSPAN III only as GRE protocol 0x22eb).",
]
