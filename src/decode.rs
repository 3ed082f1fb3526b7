//! Frames -> TCP segments, one frame at a time.
//!
//! A port of the Python engine's `tcptrace/decode.py`, with the same decision for every
//! frame: frames that are not TCP, are IP fragments, or are too damaged to read are counted
//! in `SourceStats::skipped` by reason and dropped; nothing here panics on bad input. Every
//! read stays inside its frame (the Python decoder may gather bytes past a frame's end, but
//! only where the value is then unused), so what follows a frame in the buffer never
//! changes a decoded value.
//!
//! Supported link types: Ethernet (802.1Q/802.1ad/QinQ tags), Linux cooked SLL and SLL2,
//! BSD NULL and LOOP, raw IP (101, 12, 14, 228, 229). IPv4 with options; IPv6 with
//! hop-by-hop, routing, destination-options, AH and atomic-fragment headers.

pub mod encap;
mod ip;
mod l2;
mod link;
#[cfg(test)]
mod tests;
mod tunnel;
mod wifi;

use std::collections::BTreeSet;

use crate::filter::Filter;
use crate::sources::{Frame, FrameBatch, FramePlace, Origin, SourceStats};

pub use encap::{Encapsulation, Path, TunnelKind, TunnelLayer, TunnelPorts, Tunnels, UdpTunnel};
pub use link::{
    C_HDLC, ETHERNET, FDDI, IEEE802_11, IEEE802_11_RADIOTAP, IPV4, IPV6, LOOP, MPLS, NFLOG, NULL,
    PPP, PPP_ETHER, PPP_HDLC, RAW, RAW_BSD, RAW_OPENBSD, SLL, SLL2, SUPPORTED_LINKTYPES,
};

const PROTO_TCP: u8 = 6;

// TCP flag bits (RFC 9293 section 3.1)
pub const FIN: u16 = 0x01;
pub const SYN: u16 = 0x02;
pub const RST: u16 = 0x04;
pub const PSH: u16 = 0x08;
pub const ACK: u16 = 0x10;
pub const URG: u16 = 0x20;
/// ECN-Echo and Congestion Window Reduced (RFC 3168 section 6.1).
pub const ECE: u16 = 0x40;
pub const CWR: u16 = 0x80;
/// The ECN nonce sum bit (RFC 3540, historic), the low bit of the data-offset byte: bit 8
/// of `Segment::flags`.
pub const NS: u16 = 0x100;

/// Skip reasons that mean damage or a capture tcptrace cannot read, with the warning given
/// once per run ("N " + text; `{linktypes}` is replaced by the unsupported link types, and
/// `{first}`, at the end unless the text places it, by the first such frame: " (first:
/// frame 17)", `SourceStats::first`).
/// Reasons not listed (`not_ip`, `not_tcp`, `ip_fragment`) are ordinary traffic that is not
/// TCP: counted in `source.skipped`, never warned about. Same keys, texts and order as the
/// Python engine's `DAMAGE_WARNINGS`.
pub const DAMAGE_WARNINGS: &[(&str, &str)] = &[
    (
        "unsupported_linktype",
        "frame(s) of unsupported link type {linktypes} not decoded",
    ),
    (
        "truncated_link_header",
        "frame(s) too short for their link-layer header skipped",
    ),
    (
        "truncated_ip_header",
        "frame(s) too short for their IP header skipped",
    ),
    (
        "bad_ip_header",
        "packet(s) with an invalid IP header skipped",
    ),
    (
        "truncated_tcp_header",
        "frame(s) too short for the 20-byte TCP header skipped",
    ),
    (
        "bad_tcp_header",
        "segment(s) with an invalid TCP data offset skipped",
    ),
    (
        "truncated_tunnel_header",
        "frame(s) too short for a layer-2.5 or tunnel header skipped",
    ),
    (
        "bad_tunnel_header",
        "frame(s) with an invalid layer-2.5 or tunnel header skipped",
    ),
    (
        "tunnel_too_deep",
        "frame(s) nested deeper than tcptrace decapsulates skipped",
    ),
    (
        "tunnel_table_full",
        "frame(s) in tunnels beyond the 262144 distinct tunnel paths tracked skipped",
    ),
    (
        "snaplen_cut",
        "segment(s) cut by the snap length{first}; analyzed without the bytes beyond the cut",
    ),
    (
        "short_frame",
        "frame(s) shorter than their IP length says (not cut by the snap length){first}: only \
         the payload present counted; short_frames in the records names their connections",
    ),
];

/// One decoded TCP segment; offsets point into its batch's buffer (`FrameBatch::data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Segment {
    pub ts_ns: i64,
    /// Source address; IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), so both share one key.
    pub src: u128,
    pub dst: u128,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    /// The 8 flag bits plus NS (bit 8).
    pub flags: u16,
    pub window: u16,
    /// Offset of the TCP header in the batch buffer.
    pub tcp_off: usize,
    pub tcp_hlen: u32,
    /// Bytes of TCP options actually captured (snaplen may cut them).
    pub opt_cap: u32,
    pub payload_off: usize,
    /// Payload length on the wire: from the IP header, or the bytes the frame held on the
    /// wire when it is shorter than that (`short_frame`).
    pub payload_len: u32,
    /// Payload bytes present in the capture (fewer when snaplen cut the frame).
    pub payload_cap: u32,
    /// Position of the frame in its FrameBatch.
    pub frame_index: u32,
    /// Length of the IP datagram on the wire (IPv4 total length; IPv6 40 + payload length).
    pub ip_len: u32,
    /// The tunnel path the segment came through (`encap::TunnelRegistry`): 0 for none.
    pub tunnel: u32,
    /// The IPv4 Identification field (None for IPv6): tells a frame captured twice from a
    /// retransmission (`duplicates`). In the padding: the segment keeps its size.
    pub ip_id: Option<u16>,
    /// The frame was shorter on the wire than its IP length says (not cut by the snap
    /// length): `payload_len` counts only the payload it held. In the padding too.
    pub short_frame: bool,
}

/// Why a frame gave no segment: the key it is counted under in `SourceStats::skipped`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    UnsupportedLinktype,
    TruncatedLinkHeader,
    NotIp,
    TruncatedIpHeader,
    BadIpHeader,
    IpFragment,
    NotTcp,
    TruncatedTcpHeader,
    BadTcpHeader,
    TruncatedTunnelHeader,
    BadTunnelHeader,
    TunnelTooDeep,
    TunnelTableFull,
    /// 802.11 frames with the Protected flag: their payload cannot be read.
    Encrypted,
}

impl Skip {
    /// Every reason, in the order of `Skip as usize`.
    pub const ALL: [Skip; 14] = [
        Skip::UnsupportedLinktype,
        Skip::TruncatedLinkHeader,
        Skip::NotIp,
        Skip::TruncatedIpHeader,
        Skip::BadIpHeader,
        Skip::IpFragment,
        Skip::NotTcp,
        Skip::TruncatedTcpHeader,
        Skip::BadTcpHeader,
        Skip::TruncatedTunnelHeader,
        Skip::BadTunnelHeader,
        Skip::TunnelTooDeep,
        Skip::TunnelTableFull,
        Skip::Encrypted,
    ];

    /// Damage or a frame tcptrace cannot read (warned about, with its first frame), not
    /// ordinary traffic that is not TCP.
    pub fn is_damage(self) -> bool {
        !matches!(
            self,
            Skip::NotIp | Skip::IpFragment | Skip::NotTcp | Skip::Encrypted
        )
    }

    /// The counter name, as in the Python engine's report.
    pub fn name(self) -> &'static str {
        match self {
            Skip::UnsupportedLinktype => "unsupported_linktype",
            Skip::TruncatedLinkHeader => "truncated_link_header",
            Skip::NotIp => "not_ip",
            Skip::TruncatedIpHeader => "truncated_ip_header",
            Skip::BadIpHeader => "bad_ip_header",
            Skip::IpFragment => "ip_fragment",
            Skip::NotTcp => "not_tcp",
            Skip::TruncatedTcpHeader => "truncated_tcp_header",
            Skip::BadTcpHeader => "bad_tcp_header",
            Skip::TruncatedTunnelHeader => "truncated_tunnel_header",
            Skip::BadTunnelHeader => "bad_tunnel_header",
            Skip::TunnelTooDeep => "tunnel_too_deep",
            Skip::TunnelTableFull => "tunnel_table_full",
            Skip::Encrypted => "encrypted",
        }
    }
}

/// Decode every TCP segment of `batch` into `out` (appended, in capture order); count the
/// rest in `stats.skipped` by reason, and unsupported link types in `unsupported`. Plain
/// traffic only: no tunnel is decapsulated (see `decode_tunnels`).
pub fn decode(
    batch: &FrameBatch,
    stats: &mut SourceStats,
    unsupported: &mut BTreeSet<u32>,
    out: &mut Vec<Segment>,
) {
    decode_where(batch, stats, unsupported, None, out, |_, _, _| true);
}

/// `decode`, decapsulating the tunnels `tunnels` names (their paths registered in its
/// registry, each segment numbered with its path).
pub fn decode_tunnels(
    batch: &FrameBatch,
    stats: &mut SourceStats,
    unsupported: &mut BTreeSet<u32>,
    tunnels: Option<&Tunnels>,
    out: &mut Vec<Segment>,
) {
    decode_where(batch, stats, unsupported, tunnels, out, |_, _, _| true);
}

/// `decode_tunnels` for the frames that pass `--filter` (run on the frame, before decode,
/// as libpcap would: on the outer headers of a tunnelled frame); returns how many were
/// filtered out.
pub fn decode_filtered(
    batch: &FrameBatch,
    filter: &Filter,
    stats: &mut SourceStats,
    unsupported: &mut BTreeSet<u32>,
    tunnels: Option<&Tunnels>,
    out: &mut Vec<Segment>,
) -> u64 {
    let mut cursor = filter.cursor();
    let mut dropped = 0u64;
    decode_where(
        batch,
        stats,
        unsupported,
        tunnels,
        out,
        |frame, bytes, stats| {
            let keep = cursor.keep(frame.linktype, bytes, frame.wirelen, stats);
            dropped += u64::from(!keep);
            keep
        },
    );
    dropped
}

/// A piece as every reader of the engine decodes it (one run, a `--jobs` reader, a live
/// session): `decode_filtered` under a `--filter`, else `decode_tunnels`; returns how many
/// frames the filter left out.
pub fn decode_piece(
    batch: &FrameBatch,
    filter: Option<&Filter>,
    stats: &mut SourceStats,
    unsupported: &mut BTreeSet<u32>,
    tunnels: Option<&Tunnels>,
    out: &mut Vec<Segment>,
) -> u64 {
    match filter {
        Some(filter) => decode_filtered(batch, filter, stats, unsupported, tunnels, out),
        None => {
            decode_tunnels(batch, stats, unsupported, tunnels, out);
            0
        }
    }
}

fn decode_where<K: FnMut(&Frame, &[u8], &mut SourceStats) -> bool>(
    batch: &FrameBatch,
    stats: &mut SourceStats,
    unsupported: &mut BTreeSet<u32>,
    tunnels: Option<&Tunnels>,
    out: &mut Vec<Segment>,
    mut keep: K,
) {
    let data = batch.data.as_slice();
    let mut skipped = [0u64; Skip::ALL.len()];
    // per reason warned about, the frame of the batch named as its first (`skip_at`)
    let mut first = [0usize; Skip::ALL.len()];
    let mut snaplen_cut = 0u64;
    let mut short_frames = 0u64;
    let ports = tunnels.map(|t| &t.ports);
    let start = out.len();
    out.reserve(batch.frames.len());
    let mut path = Path::default();
    for (index, frame) in batch.frames.iter().enumerate() {
        if !keep(frame, frame_bytes(data, frame), stats) {
            continue;
        }
        path.clear();
        let mut result = decode_frame_in(data, frame, index as u32, ports, &mut path);
        if let (Ok(segment), Some(tunnels)) = (result.as_mut(), tunnels) {
            if !path.is_empty() {
                let id = tunnels
                    .registry
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .intern(&path);
                match id {
                    Some(id) => segment.tunnel = id,
                    None => result = Err(Skip::TunnelTableFull),
                }
            }
        }
        match result {
            Ok(segment) => {
                // Counted, still analyzed (with the bytes that were captured)
                snaplen_cut += u64::from(frame.wirelen > frame.caplen);
                short_frames += u64::from(segment.short_frame);
                out.push(segment);
            }
            Err(reason) => {
                if reason == Skip::UnsupportedLinktype {
                    unsupported.insert(frame.linktype);
                }
                let r = reason as usize;
                if reason.is_damage() && (skipped[r] == 0 || batch.places_before(index, first[r])) {
                    first[r] = index;
                }
                skipped[r] += 1;
            }
        }
    }
    for ((reason, n), at) in Skip::ALL.iter().zip(skipped).zip(first) {
        if n > 0 {
            let place = if reason.is_damage() {
                batch.place(at)
            } else {
                None
            };
            stats.skip_at(reason.name(), n, place);
        }
    }
    // the cut and short frames were counted without their place (no cost on a good frame):
    // found now among the batch's segments, unless an earlier batch of the file named one
    let segments = out.get(start..).unwrap_or_default();
    let cut = |s: &Segment| {
        (batch.frames.get(s.frame_index as usize)).is_some_and(|f| f.wirelen > f.caplen)
    };
    for (kind, n, is) in [
        (
            "snaplen_cut",
            snaplen_cut,
            &cut as &dyn Fn(&Segment) -> bool,
        ),
        ("short_frame", short_frames, &|s: &Segment| s.short_frame),
    ] {
        if n > 0 {
            let place = first_place(batch, segments, stats.first.contains_key(kind), is);
            stats.skip_at(kind, n, place);
        }
    }
}

/// The smallest place (`FramePlace`) of the segments `is` picks; None when the batch
/// cannot better `known` (a file's batches come in its order: only a merge's can).
fn first_place(
    batch: &FrameBatch,
    segments: &[Segment],
    known: bool,
    is: &dyn Fn(&Segment) -> bool,
) -> Option<FramePlace> {
    let mut picked = segments.iter().filter(|s| is(s));
    match batch.origin {
        Origin::Merged(_) => picked
            .filter_map(|s| batch.place(s.frame_index as usize))
            .min(),
        _ if known => None,
        _ => batch.place(picked.next()?.frame_index as usize),
    }
}

/// A frame's captured bytes; a frame that claims bytes beyond the buffer (which no reader
/// yields) is read as cut where the buffer ends.
fn frame_bytes<'a>(data: &'a [u8], frame: &Frame) -> &'a [u8] {
    let start = frame.offset.min(data.len());
    let end = frame
        .offset
        .saturating_add(frame.caplen as usize)
        .min(data.len());
    data.get(start..end).unwrap_or(&[])
}

/// The segment in one frame, or why there is none, with the default tunnel ports. `data`
/// is the batch buffer; a frame that claims bytes beyond it (which no reader yields) is
/// read as cut where the buffer ends.
pub fn decode_frame(data: &[u8], frame: &Frame, index: u32) -> Result<Segment, Skip> {
    let ports = TunnelPorts::default();
    decode_frame_in(data, frame, index, Some(&ports), &mut Path::default())
}

/// The segment in one frame, decapsulating the UDP tunnels on `ports` (no tunnel at all
/// when None); the tunnels crossed go to `path`, outermost first.
#[inline(always)]
pub fn decode_frame_in(
    data: &[u8],
    frame: &Frame,
    index: u32,
    ports: Option<&TunnelPorts>,
    path: &mut Path,
) -> Result<Segment, Skip> {
    let start = frame.offset.min(data.len());
    let bytes = frame_bytes(data, frame);
    let (mut l3, mut ethertype) = link::network_start(bytes, frame.linktype)?;
    let net = loop {
        let net = match ethertype {
            link::ETH_IPV4 => ip::ipv4(bytes, l3)?,
            link::ETH_IPV6 => ip::ipv6(bytes, l3)?,
            _ => return Err(Skip::NotIp),
        };
        if net.proto == PROTO_TCP {
            break net;
        }
        let Some(ports) = ports else {
            return Err(Skip::NotTcp);
        };
        match tunnel::decapsulate(bytes, &net, ports)? {
            Some((next, next_type, layer)) => {
                if !path.push(layer) {
                    return Err(Skip::TunnelTooDeep);
                }
                (l3, ethertype) = (next, next_type);
            }
            None => return Err(Skip::NotTcp),
        }
    };
    let tcp = net.l4;
    let header: &[u8; 20] = fixed(bytes, tcp).ok_or(Skip::TruncatedTcpHeader)?;
    let hlen = usize::from(header[12] >> 4) * 4;
    let payload_len = net.l4_len - hlen as i64;
    if hlen < 20 || payload_len < 0 {
        return Err(Skip::BadTcpHeader);
    }
    let payload_off = tcp + hlen;
    // Both bounded by the frame: snaplen may cut the options and the payload
    let opt_cap = payload_off.min(bytes.len()).saturating_sub(tcp + 20);
    let payload_end = payload_off.saturating_add(payload_len as usize);
    let payload_cap = payload_end.min(bytes.len()).saturating_sub(payload_off);
    // A frame shorter on the wire than its IP length (not cut by the snap length: the bytes
    // beyond a cut were on the wire) carries only the payload it holds. Wireshark compares
    // the IP length with the frame's length on the wire and then dissects the bytes present
    // (packet-ip.c, expert info ip.bogus_ip_length "IPv4 total length exceeds packet
    // length"; tshark's tcp.len is then the bytes present); Zeek compares the same lengths
    // and drops the packet (packet_analysis/protocol/ip/IP.cc, weird truncated_IP).
    let on_wire = (frame.wirelen as usize).max(bytes.len());
    let short_frame = payload_end > on_wire;
    let payload_len = if short_frame {
        on_wire.saturating_sub(payload_off)
    } else {
        payload_len as usize
    };
    Ok(Segment {
        ts_ns: frame.ts_ns,
        src: net.src,
        dst: net.dst,
        sport: u16::from_be_bytes([header[0], header[1]]),
        dport: u16::from_be_bytes([header[2], header[3]]),
        seq: u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
        ack: u32::from_be_bytes([header[8], header[9], header[10], header[11]]),
        flags: u16::from(header[13]) | (u16::from(header[12] & 1) << 8),
        window: u16::from_be_bytes([header[14], header[15]]),
        tcp_off: start + tcp,
        tcp_hlen: hlen as u32,
        opt_cap: opt_cap as u32,
        payload_off: start + payload_off,
        // Both bounded by the frame's length or 65535 + 40 (see `ip`): they fit
        payload_len: payload_len as u32,
        payload_cap: payload_cap as u32,
        frame_index: index,
        ip_len: net.ip_len as u32,
        tunnel: 0,
        ip_id: net.ip_id,
        short_frame,
    })
}

/// The `N` bytes at `at`, or None when the frame ends before them.
#[inline]
fn fixed<const N: usize>(bytes: &[u8], at: usize) -> Option<&[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}
