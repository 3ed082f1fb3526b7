"""Random TCP traffic as a classic pcap, drawn from a seeded generator: up to three
connections (two share a 4-tuple: port reuse), any flags, seq/ack near the ISNs or anywhere,
HTTP pieces or other bytes, TCP timestamps or not, right or wrong checksums, and gaps from
microseconds to minutes (linger, sweeps, tombstones). The same seed gives the same bytes, so
the records of each are pinned in tests/golden/records (recorded with the Python engine as
the reference, while it existed)."""

from __future__ import annotations

import random
import struct

HTTP_PIECES = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HEAD /x HTTP/1.0\r\n\r\n",
    b"POST /p HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.0 200 OK\r\n\r\nuntil close",
    b"1a;x\r\n", b"\r\n", b"GET /split", b" HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x05hello",
]
GAPS_US = [0, 1, 40, 1000, 300_000, 700_000, 5_000_000, 70_000_000]


def ones_complement(data: bytes) -> int:
    """RFC 1071: the 16-bit ones' complement of the ones' complement sum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_frame(src: int, dst: int, sport: int, dport: int, seq: int, ack: int, flags: int,
              payload: bytes, stamps: tuple[int, int] | None, checksums: bool = False) -> bytes:
    """An Ethernet frame; its TCP and IPv4 header checksums are right with `checksums`, else
    zero (wrong, for --verify-checksums)."""
    options = b"" if stamps is None else b"\x01\x01\x08\x0a" + struct.pack("!II", *stamps)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      (5 + len(options) // 4) << 4, flags, 512, 0, 0) + options + payload
    addresses = bytes([10, 0, 0, src]) + bytes([10, 0, 0, dst])
    if checksums:
        pseudo = addresses + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", ones_complement(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0) + addresses
    if checksums:
        ip = ip[:10] + struct.pack("!H", ones_complement(ip)) + ip[12:]
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp


def random_capture(seed: int) -> bytes:
    rng = random.Random(seed)
    conns = rng.randint(1, 3)
    isn = [(rng.randrange(2**32), rng.randrange(2**32)) for _ in range(conns)]
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    t_us = 0
    for _ in range(rng.randint(1, 40)):
        c = rng.randrange(conns)
        client = rng.random() < 0.5
        flags = sum(f for f in (0x01, 0x02, 0x04, 0x08, 0x10) if rng.random() < 0.4)
        seq = rng.randint(-2, 400) if rng.random() < 0.8 else rng.randrange(2**32)
        ack = rng.randint(-2, 400) if rng.random() < 0.8 else rng.randrange(2**32)
        payload = (rng.choice(HTTP_PIECES) if rng.random() < 0.6
                   else rng.randbytes(rng.randint(0, 30)))
        stamps = None if rng.random() < 0.5 else (rng.randint(0, 50), rng.randint(0, 50))
        mine, theirs = isn[c] if client else isn[c][::-1]
        sport = 40000 + min(c, 1)  # connections 1 and 2 share a 4-tuple
        ends = (1, 2, sport, 80) if client else (2, 1, 80, sport)
        data = tcp_frame(*ends, mine + seq, theirs + ack, flags, payload, stamps,
                         checksums=rng.randint(0, 3) > 0)
        t_us += rng.choice(GAPS_US)
        out += struct.pack("<IIII", 1_700_000_000 + t_us // 1_000_000, t_us % 1_000_000,
                           len(data), len(data)) + data
    return bytes(out)
