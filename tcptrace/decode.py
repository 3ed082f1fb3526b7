"""Frames -> TCP segments, for a whole batch at once.

Every header field is gathered with numpy fancy indexing over the batch buffer,
so the cost per packet is a handful of vector operations rather than a Python
object per layer. Frames that are not TCP, are IP fragments, or are too damaged
to read are counted in `skipped` by reason and dropped; nothing here raises on
bad input.

Supported link types: Ethernet (802.1Q/802.1ad/QinQ tags), Linux cooked SLL and
SLL2, BSD NULL and LOOP, raw IP (101, 12, 14, 228, 229). IPv4 with options;
IPv6 with hop-by-hop, routing, destination-options, AH and atomic-fragment headers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields, replace

import numpy as np
import numpy.typing as npt

from tcptrace.sources.batch import FrameBatch

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
BOOL = npt.NDArray[np.bool_]

ETHERNET, NULL, RAW_OPENBSD, RAW_BSD, RAW, LOOP, SLL, SLL2, IPV4, IPV6 = (
    1, 0, 12, 14, 101, 108, 113, 276, 228, 229,
)
SUPPORTED_LINKTYPES = (ETHERNET, SLL, SLL2, NULL, LOOP, RAW, RAW_OPENBSD, RAW_BSD, IPV4, IPV6)
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
AF_INET6_VALUES = (10, 24, 28, 30)  # Linux, NetBSD/OpenBSD, FreeBSD, Darwin
IPV6_EXT = {0: "hop", 43: "routing", 60: "dstopts", 51: "ah", 44: "fragment"}
MAPPED_V4 = np.uint64(0x0000FFFF00000000)  # ::ffff:a.b.c.d keeps IPv4 and IPv6 in one key

# TCP flag bits (RFC 9293 section 3.1)
FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


# Skip reasons that mean damage or a capture tcptrace cannot read, with the warning given
# once per run ("N " + text). Reasons not listed (not_ip, not_tcp, ip_fragment) are
# ordinary traffic that is not TCP: counted in source.skipped, never warned about.
DAMAGE_WARNINGS = {
    "unsupported_linktype": "frame(s) of unsupported link type {linktypes} not decoded",
    "truncated_link_header": "frame(s) too short for their link-layer header skipped",
    "truncated_ip_header": "frame(s) too short for their IP header skipped",
    "bad_ip_header": "packet(s) with an invalid IP header skipped",
    "truncated_tcp_header": "frame(s) too short for the 20-byte TCP header skipped",
    "bad_tcp_header": "segment(s) with an invalid TCP data offset skipped",
    "snaplen_cut": "segment(s) cut by the snap length; analyzed without the bytes beyond the cut",
}


def unsupported_linktypes(linktype: I64) -> set[int]:
    """The link types in `linktype` that decode does not read."""
    return {int(x) for x in np.unique(linktype[~np.isin(linktype, SUPPORTED_LINKTYPES)])}


@dataclass(slots=True)
class SegmentBatch:
    """TCP segments in capture order; one entry per segment in every array."""

    data: npt.NDArray[np.uint8]
    ts_ns: I64
    src_hi: U64
    src_lo: U64
    dst_hi: U64
    dst_lo: U64
    sport: I64
    dport: I64
    seq: I64
    ack: I64
    flags: I64
    window: I64
    tcp_off: I64
    """Offset of the TCP header in `data`."""
    tcp_hlen: I64
    opt_cap: I64
    """Bytes of TCP options actually captured (snaplen may cut them)."""
    payload_off: I64
    payload_len: I64
    """Payload length from the IP header: the true length on the wire."""
    payload_cap: I64
    """Payload bytes present in the capture (less when snaplen cut the frame)."""
    frame_index: I64
    """Position of the frame in its FrameBatch (to write the packet back out)."""
    ip_len: I64
    """Length of the IP datagram on the wire (IPv4 total length; IPv6 40 + payload length)."""
    ordinal: I64 | None = None
    """Position of each segment among all segments of the run (set by the engine, or by the
    map step of a parallel plan). Connection ids follow the ordinal of a first segment."""
    origin: tuple[str, int, int] | None = None
    """(file, byte offset, length) of the frames `data` was made of (FrameBatch.origin); the
    64 bytes of padding after them are zeros."""

    def __len__(self) -> int:
        return len(self.ts_ns)

    def slice(self, start: int, stop: int) -> SegmentBatch:
        """Segments start..stop as views (no copy)."""
        if start == 0 and stop >= len(self):
            return self
        columns = {f.name: getattr(self, f.name)[start:stop] for f in fields(self)
                   if f.name not in NOT_COLUMNS and getattr(self, f.name) is not None}
        return replace(self, **columns)

    def select(self, keep: BOOL) -> SegmentBatch:
        """The segments where `keep` is true (the buffer is shared, not copied)."""
        index = np.flatnonzero(keep)
        columns = {f.name: getattr(self, f.name)[index] for f in fields(self)
                   if f.name not in NOT_COLUMNS and getattr(self, f.name) is not None}
        return replace(self, **columns)


NOT_COLUMNS = ("data", "origin")
PAD = 64  # bytes a gather may read past a clipped position (an IPv6 address is 16)


def _u16(d: npt.NDArray[np.uint8], at: I64) -> I64:
    return (d[at].astype(np.int64) << 8) | d[at + 1]


def _u32(d: npt.NDArray[np.uint8], at: I64) -> I64:
    return (_u16(d, at) << 16) | _u16(d, at + 2)


def _be_words(d: npt.NDArray[np.uint8], at: I64, nbytes: int) -> npt.NDArray[np.uint64]:
    """Big-endian 64-bit words at `at` (nbytes = 4, 8 or 16): shape (n, nbytes // 8 or 1)."""
    rows = d[at[:, None] + np.arange(nbytes)]
    if nbytes == 4:
        weights = np.uint64(1) << np.arange(24, -1, -8, dtype=np.uint64)
        words: npt.NDArray[np.uint64] = rows.astype(np.uint64) @ weights
        return words
    wide: npt.NDArray[np.uint64] = np.ascontiguousarray(rows).view(">u8").astype(np.uint64)
    return wide


def decode(frames: FrameBatch, skipped: Counter[str]) -> SegmentBatch:
    """Decode every TCP segment in `frames`; count the rest in `skipped` by reason."""
    d = frames.data
    n = len(frames)
    start, cap, link = frames.offset, frames.caplen, frames.linktype
    end = start + cap
    # Fixed-width gathers must never run off the buffer: they start at most at cap_limit,
    # with at least PAD bytes after it. Positions past a frame's end are clipped, and
    # lengths are checked against `end` before any gathered value is trusted, so what the
    # slack holds never matters. A read chunk usually has the start of the next record
    # there already; otherwise (the end of a file) the buffer is copied with zeros added.
    if n == 0 or len(d) - int(end.max()) < PAD:
        d = np.concatenate([d, np.zeros(PAD, dtype=np.uint8)])
    cap_limit = len(d) - PAD - 1

    def clip(at: I64) -> I64:
        return np.minimum(at, cap_limit)

    l3 = np.full(n, -1, dtype=np.int64)
    ethertype = np.zeros(n, dtype=np.int64)

    eth = link == ETHERNET
    if eth.any():
        i = np.flatnonzero(eth & (cap >= 14))
        et = _u16(d, clip(start[i] + 12))
        pos = start[i] + 14
        for _ in range(3):  # up to three stacked tags (QinQ and friends)
            tagged = np.isin(et, VLAN_TPIDS) & (pos + 4 <= end[i])
            if not tagged.any():
                break
            et = np.where(tagged, _u16(d, clip(pos + 2)), et)
            pos = np.where(tagged, pos + 4, pos)
        l3[i], ethertype[i] = pos, et
    for lt, link_hlen, proto_at in ((SLL, 16, 14), (SLL2, 20, 0)):
        sel = link == lt
        if sel.any():
            i = np.flatnonzero(sel & (cap >= link_hlen))
            l3[i], ethertype[i] = start[i] + link_hlen, _u16(d, clip(start[i] + proto_at))
    for lt in (NULL, LOOP):
        sel = link == lt
        if sel.any():
            i = np.flatnonzero(sel & (cap >= 4))
            words = d[clip(start[i])[:, None] + np.arange(4)].astype(np.int64)
            le = words[:, 0] | words[:, 1] << 8 | words[:, 2] << 16 | words[:, 3] << 24
            be = words[:, 3] | words[:, 2] << 8 | words[:, 1] << 16 | words[:, 0] << 24
            # NULL is in the writer's byte order: the small value is the right reading
            af = be if lt == LOOP else np.minimum(le, be)
            ethertype[i] = np.where(af == 2, ETH_IPV4, np.where(np.isin(af, AF_INET6_VALUES),
                                                                 ETH_IPV6, 0))
            l3[i] = start[i] + 4
    raw = np.isin(link, (RAW, RAW_OPENBSD, RAW_BSD, IPV4, IPV6))
    if raw.any():
        i = np.flatnonzero(raw & (cap >= 1))
        version = d[clip(start[i])] >> 4
        ethertype[i] = np.where(version == 4, ETH_IPV4, np.where(version == 6, ETH_IPV6, 0))
        l3[i] = start[i]

    known = np.isin(link, SUPPORTED_LINKTYPES)
    skipped["unsupported_linktype"] += int((~known).sum())
    skipped["truncated_link_header"] += int((known & (l3 < 0)).sum())
    have_l3 = l3 >= 0
    skipped["not_ip"] += int((have_l3 & ~np.isin(ethertype, (ETH_IPV4, ETH_IPV6))).sum())

    # ---- network layer: find the TCP header and the IP payload length
    l4 = np.full(n, -1, dtype=np.int64)
    l4len = np.zeros(n, dtype=np.int64)
    iplen = np.zeros(n, dtype=np.int64)
    src = np.zeros((n, 2), dtype=np.uint64)
    dst = np.zeros((n, 2), dtype=np.uint64)

    v4 = np.flatnonzero(have_l3 & (ethertype == ETH_IPV4))
    if len(v4):
        short = l3[v4] + 20 > end[v4]
        skipped["truncated_ip_header"] += int(short.sum())
        v4 = v4[~short]
        p = l3[v4]
        ver_ihl = d[p].astype(np.int64)
        ihl = (ver_ihl & 0x0F) * 4
        total = _u16(d, p + 2)
        frag = _u16(d, p + 6)
        proto = d[p + 9]
        bad = ((ver_ihl >> 4) != 4) | (ihl < 20) | ((total < ihl) & (total != 0))
        fragment = ((frag & 0x2000) != 0) | ((frag & 0x1FFF) != 0)
        skipped["bad_ip_header"] += int(bad.sum())
        skipped["ip_fragment"] += int((~bad & fragment).sum())
        skipped["not_tcp"] += int((~bad & ~fragment & (proto != 6)).sum())
        ok = ~bad & ~fragment & (proto == 6)
        v4, p, ihl, total = v4[ok], p[ok], ihl[ok], total[ok]
        # total == 0 happens for TSO super-packets captured on the sending host
        total = np.where(total == 0, end[v4] - p, total)
        l4[v4] = p + ihl
        l4len[v4] = total - ihl
        iplen[v4] = total
        src[v4, 1] = MAPPED_V4 | _be_words(d, p + 12, 4)
        dst[v4, 1] = MAPPED_V4 | _be_words(d, p + 16, 4)

    v6 = np.flatnonzero(have_l3 & (ethertype == ETH_IPV6))
    if len(v6):
        short = l3[v6] + 40 > end[v6]
        skipped["truncated_ip_header"] += int(short.sum())
        v6 = v6[~short]
        p = l3[v6]
        bad = (d[p] >> 4) != 6
        skipped["bad_ip_header"] += int(bad.sum())
        v6, p = v6[~bad], p[~bad]
        nh = d[p + 6].astype(np.int64)
        plen = _u16(d, p + 4)
        plen = np.where(plen == 0, end[v6] - p - 40, plen)  # jumbogram / TSO: trust the capture
        pos = p + 40
        fragment = np.zeros(len(v6), dtype=bool)
        for _ in range(8):  # extension header chain; 8 is more than any real packet carries
            ext = np.isin(nh, list(IPV6_EXT)) & (pos + 8 <= end[v6])
            if not ext.any():
                break
            is_frag = ext & (nh == 44)
            frag_field = _u16(d, clip(pos + 2))
            fragment |= is_frag & (((frag_field & 0xFFF8) != 0) | ((frag_field & 1) != 0))
            length_field = d[clip(pos + 1)].astype(np.int64)
            ext_len = np.where(nh == 44, 8,
                               np.where(nh == 51, (length_field + 2) * 4, (length_field + 1) * 8))
            nh = np.where(ext, d[clip(pos)], nh)
            pos = np.where(ext, pos + ext_len, pos)
        skipped["ip_fragment"] += int(fragment.sum())
        skipped["not_tcp"] += int((~fragment & (nh != 6)).sum())
        ok = ~fragment & (nh == 6)
        v6, p, pos, plen = v6[ok], p[ok], pos[ok], plen[ok]
        l4[v6] = pos
        l4len[v6] = p + 40 + plen - pos
        iplen[v6] = 40 + plen
        src[v6] = _be_words(d, p + 8, 16)
        dst[v6] = _be_words(d, p + 24, 16)

    # ---- transport layer
    tcp = np.flatnonzero(l4 >= 0)
    short = l4[tcp] + 20 > end[tcp]
    skipped["truncated_tcp_header"] += int(short.sum())
    tcp = tcp[~short]
    t = l4[tcp]
    hlen = (d[t + 12].astype(np.int64) >> 4) * 4
    payload_len = l4len[tcp] - hlen
    bad = (hlen < 20) | (payload_len < 0)
    skipped["bad_tcp_header"] += int(bad.sum())
    tcp, t, hlen, payload_len = tcp[~bad], t[~bad], hlen[~bad], payload_len[~bad]
    payload_off = t + hlen
    frame_end = end[tcp]
    skipped_snap = (frames.wirelen[tcp] > cap[tcp])
    skipped["snaplen_cut"] += int(skipped_snap.sum())  # counted, still analyzed
    return SegmentBatch(
        data=d,
        ts_ns=frames.ts_ns[tcp],
        src_hi=src[tcp, 0],
        src_lo=src[tcp, 1],
        dst_hi=dst[tcp, 0],
        dst_lo=dst[tcp, 1],
        sport=_u16(d, t),
        dport=_u16(d, t + 2),
        seq=_u32(d, t + 4),
        ack=_u32(d, t + 8),
        flags=d[t + 13].astype(np.int64) | ((d[t + 12].astype(np.int64) & 1) << 8),
        window=_u16(d, t + 14),
        tcp_off=t,
        tcp_hlen=hlen,
        opt_cap=np.clip(np.minimum(payload_off, frame_end) - t - 20, 0, None),
        payload_off=payload_off,
        payload_len=payload_len,
        payload_cap=np.clip(np.minimum(payload_off + payload_len, frame_end) - payload_off, 0,
                            None),
        frame_index=tcp.astype(np.int64),
        ip_len=iplen[tcp],
        origin=(frames.origin[0], frames.origin[1], len(frames.data))
        if frames.origin is not None else None,
    )

