//! Frames -> TCP segments. (Owned by the decode work.)

use std::collections::BTreeSet;

use crate::sources::{FrameBatch, SourceStats};

// TCP flag bits (RFC 9293 section 3.1)
pub const FIN: u16 = 0x01;
pub const SYN: u16 = 0x02;
pub const RST: u16 = 0x04;
pub const PSH: u16 = 0x08;
pub const ACK: u16 = 0x10;
pub const URG: u16 = 0x20;

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
    /// Payload length from the IP header: the true length on the wire.
    pub payload_len: u32,
    /// Payload bytes present in the capture (fewer when snaplen cut the frame).
    pub payload_cap: u32,
    /// Position of the frame in its FrameBatch.
    pub frame_index: u32,
    /// Length of the IP datagram on the wire (IPv4 total length; IPv6 40 + payload length).
    pub ip_len: u32,
}

/// Decode every TCP segment of `batch` into `out` (appended, in capture order); count the
/// rest in `stats.skipped` by reason, and unsupported link types in `unsupported`.
pub fn decode(
    batch: &FrameBatch,
    stats: &mut SourceStats,
    unsupported: &mut BTreeSet<u32>,
    out: &mut Vec<Segment>,
) {
    let _ = (batch, stats, unsupported, out);
    todo!("decode")
}
