//! Capture duplicates: the same frame captured twice.
//!
//! A SPAN port mirroring both directions of a link, `tcpdump -i any` on a host that forwards
//! (the frame is seen coming in and going out), or the same connection in two capture files
//! merged by time all show one frame twice, microseconds apart. Counted as a second
//! segment, it becomes a phantom retransmission (and a SYN seen twice an ambiguous
//! handshake). The classic tcptrace warns about such "hardware duplicates".
//!
//! A copy is a segment from the same side with the same IPv4 Identification, sequence and
//! acknowledgment numbers, flags, window, payload length and TCP checksum (which covers the
//! payload and the options, TCP timestamps included), captured soon after that side's
//! previous segment. A SYN's window and checksum are left out: a middlebox between two
//! capture points may rewrite its options (MSS clamping), which analyzers/options.rs
//! reports. The time allowed depends on how telling the fields are:
//!
//! - an IPv4 Identification other than 0: a sender gives each datagram a new one (Linux per
//!   socket, Windows and the BSDs per host or at random), so a retransmission has another;
//!   copies up to `WITH_ID_NS` apart (two capture points whose clocks differ) count;
//! - IPv6 has no Identification outside fragments, and RFC 6864 lets IPv4 senders put 0 in
//!   atomic datagrams: then everything else must match within `WITHOUT_ID_NS`, far below any
//!   retransmission timer (RFC 6298: at least 1 s; Linux 200 ms). A segment without payload,
//!   SYN or FIN is never taken for a copy there: back-to-back duplicate ACKs without SACK
//!   blocks or a changed TCP timestamp are identical, so an IPv6 capture seen twice still
//!   counts its bare ACKs twice.
//!
//! Only the side's previous segment is remembered, as a 32-bit fingerprint and a 32-bit
//! time, 12 bytes per side with the count (a connection must stay under the 1,000 bytes
//! glibc serves from its small bins, see connection.rs): a copy must follow its original
//! before the next segment from that side. That holds for a SPAN port, `-i any` and the
//! same capture read twice; two capture points merged, whose copies of a flight interleave
//! (a1 a2 a1' a2'), are not recognised. A fingerprint collision (1 in 2^32) must also fall
//! within the time allowed.

use crate::decode::{Segment, FIN, RST, SYN};

/// How far apart two copies with a telling IPv4 Identification may be captured.
pub const WITH_ID_NS: i64 = 1_000_000_000;

/// How far apart two copies may be captured when nothing but the TCP fields tell them.
pub const WITHOUT_ID_NS: i64 = 1_000_000;

/// Times are kept in units of 1,024 ns (wrapping every 73 minutes, far beyond a window).
const TIME_SHIFT: u32 = 10;

/// The previous segment one side sent, as a fingerprint.
#[derive(Debug, Default)]
pub struct RecentSegments {
    print: u32,
    time: u32,
    /// Copies seen (left out of every other count).
    pub duplicates: u32,
}

/// 32 bits of a multiplicative hash (Fibonacci hashing): the high half of the product
/// depends on every bit of the input, in one multiplication per segment.
fn fold(x: u64) -> u32 {
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
}

/// The TCP checksum field (RFC 9293 section 3.1), 0 when not captured.
fn tcp_checksum(data: &[u8], tcp_off: usize) -> u16 {
    match data.get(tcp_off.saturating_add(16)..tcp_off.saturating_add(18)) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => 0,
    }
}

impl RecentSegments {
    /// Whether `seg` is a copy of this side's previous segment; otherwise remember it. A
    /// copy is counted and not remembered (a third copy matches the first).
    #[inline]
    pub fn is_copy(&mut self, seg: &Segment, data: &[u8]) -> bool {
        let id = seg.ip_id.filter(|&id| id != 0);
        if id.is_none() && seg.payload_len == 0 && seg.flags & (SYN | FIN | RST) == 0 {
            self.print = 0; // a bare ACK between two copies: they are not adjacent
            return false;
        }
        let window = if id.is_some() {
            WITH_ID_NS
        } else {
            WITHOUT_ID_NS
        };
        // A SYN's copy may have been rewritten on its way between two capture points (MSS
        // clamping, a window changed): its checksum and window are left out, and the
        // options analyzer tells what changed (analyzers/options.rs)
        let rewritable = if seg.flags & SYN == 0 {
            u64::from(seg.window) << 16 | u64::from(tcp_checksum(data, seg.tcp_off)) << 32
        } else {
            0
        };
        let tcp = u64::from(seg.flags) | rewritable | u64::from(id.unwrap_or(0)) << 48;
        // seq and ack apart in the high and low halves, the rest rotated across both
        let numbers = u64::from(seg.seq) << 32 | u64::from(seg.ack);
        let rest = tcp ^ u64::from(seg.payload_len) << 3;
        // never 0: 0 marks "nothing remembered"
        let print = fold(numbers ^ rest.rotate_left(21)).max(1);
        let time = (seg.ts_ns >> TIME_SHIFT) as u32;
        let after = time.wrapping_sub(self.time);
        if print == self.print && i64::from(after) < window >> TIME_SHIFT {
            self.duplicates = self.duplicates.saturating_add(1);
            return true;
        }
        self.print = print;
        self.time = time;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ACK;

    const MS: i64 = 1_000_000;

    fn seg(ms: i64, seq: u32, len: u32, ip_id: Option<u16>) -> Segment {
        Segment {
            ts_ns: 1_700_000_000_000 * MS + ms * MS,
            seq,
            ack: 7,
            flags: ACK,
            window: 500,
            payload_len: len,
            ip_id,
            ..Segment::default()
        }
    }

    #[test]
    fn a_copy_with_the_same_id_is_recognised_within_a_second() {
        let mut r = RecentSegments::default();
        assert!(!r.is_copy(&seg(0, 1, 100, Some(9)), &[]));
        assert!(r.is_copy(&seg(0, 1, 100, Some(9)), &[]));
        assert!(r.is_copy(&seg(999, 1, 100, Some(9)), &[]));
        assert!(!r.is_copy(&seg(1000, 1, 100, Some(9)), &[]));
        // a retransmission carries another Identification
        assert!(!r.is_copy(&seg(1002, 1, 100, Some(10)), &[]));
        // time going back is no copy
        assert!(!r.is_copy(&seg(1000, 1, 100, Some(10)), &[]));
        assert_eq!(r.duplicates, 2);
    }

    #[test]
    fn without_an_id_only_a_millisecond_and_never_bare_acks() {
        let mut r = RecentSegments::default();
        assert!(!r.is_copy(&seg(0, 1, 100, None), &[]));
        assert!(!r.is_copy(&seg(2, 1, 100, None), &[])); // 2 ms: a retransmission
        assert!(r.is_copy(&seg(2, 1, 100, Some(0)), &[])); // 0 tells nothing either
        assert!(!r.is_copy(&seg(3, 101, 0, None), &[]));
        assert!(!r.is_copy(&seg(3, 101, 0, None), &[]));
        assert_eq!(r.duplicates, 1);
    }

    #[test]
    fn only_the_previous_segment_is_remembered() {
        let mut r = RecentSegments::default();
        let (a, b) = (seg(0, 1, 100, Some(1)), seg(0, 101, 100, Some(2)));
        assert!(!r.is_copy(&a, &[]) && !r.is_copy(&b, &[]));
        assert!(!r.is_copy(&a, &[])); // interleaved: taken for a retransmission
                                      // the payload's checksum tells two segments with equal numbers apart
        let mut data = vec![0u8; 20];
        data[16] = 1;
        assert!(!r.is_copy(&a, &data));
        assert!(r.is_copy(&a, &data));
    }

    #[test]
    fn a_syn_rewritten_on_its_way_is_still_a_copy() {
        let mut r = RecentSegments::default();
        let syn = Segment {
            flags: SYN,
            ..seg(0, 1, 0, Some(5))
        };
        let mut data = vec![0u8; 20];
        assert!(!r.is_copy(&syn, &data));
        data[16] = 9; // another checksum: the options changed
        let clamped = Segment {
            window: 1000,
            ..syn
        };
        assert!(r.is_copy(&clamped, &data));
    }
}
