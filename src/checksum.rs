//! `--verify-checksums`: TCP and IPv4 header checksums, and the ledger of the segments that
//! failed. A port of tcptrace/checksum.py.
//!
//! The TCP checksum (RFC 9293 section 3.1; RFC 8200 section 8.1 for IPv6) is the ones'
//! complement sum of a pseudo-header (addresses, protocol 6, TCP length) and the segment;
//! a correct segment sums to 0xFFFF (RFC 1071). A segment is verified only when all of it
//! was captured (as Zeek: `caplen >= len`); the IPv4 header checksum is verified too,
//! since Zeek drops a packet with a bad one before TCP sees it. Failing segments are left
//! out of the analysis (counted in `skipped["bad_checksum"]`); the ledger keeps them per
//! direction of a 4-tuple so the Zeek view can still write their `C`/`c` letter.

use std::collections::{HashMap, VecDeque};

use crate::decode::Segment;
use crate::model::Role;

/// Sum of the big-endian 16-bit words of `bytes` (an odd last byte padded with zero), up to
/// ones' complement folding. Summed as little-endian 64-bit words into a 128-bit total (an
/// add and an add-with-carry per 8 bytes): 2^16 = 1 modulo 0xFFFF, so a wide word is
/// congruent to the sum of its 16-bit parts; and a little-endian 16-bit word is 256 times the
/// big-endian one modulo 0xFFFF (RFC 1071 section 2, "byte order independence"; 256 * 256 =
/// 1 modulo 0xFFFF), so the folded little-endian sum times 256 folds to the big-endian sum.
fn word_sum(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut total: u128 = 0;
    for word in words.by_ref() {
        let mut wide = [0u8; 8];
        wide.copy_from_slice(word);
        total += u128::from(u64::from_le_bytes(wide));
    }
    let rest = words.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    total += u128::from(u64::from_le_bytes(last));
    // 2^64 and 2^32 are 1 modulo 0xFFFF: the halves' sums keep the total's residue
    let halves = (total >> 64) + (total & u128::from(u64::MAX));
    let quarters = (halves >> 96)
        + ((halves >> 64) & 0xFFFF_FFFF)
        + ((halves >> 32) & 0xFFFF_FFFF)
        + (halves & 0xFFFF_FFFF);
    fold(quarters as u64) << 8
}

/// Ones' complement: fold the carries back into 16 bits.
fn fold(mut total: u64) -> u64 {
    while total > 0xFFFF {
        total = (total & 0xFFFF) + (total >> 16);
    }
    total
}

/// Sum of the four 16-bit words of each half of a 128-bit address.
fn address_sum(address: u128) -> u64 {
    (0..8)
        .map(|i| ((address >> (16 * i)) & 0xFFFF) as u64)
        .sum()
}

fn is_v4(address: u128) -> bool {
    address >> 32 == 0xFFFF
}

/// True when the segment's TCP checksum (or its IPv4 header checksum) is wrong. A segment
/// not captured in full is not verifiable and counts as good; so does one whose bytes are
/// not in `data` (never, for a decoded segment: checked, not assumed).
pub fn is_bad(seg: &Segment, data: &[u8]) -> bool {
    // a short frame lacks part of what its checksum covers, as a frame cut by the snap length
    let full =
        seg.payload_cap == seg.payload_len && seg.opt_cap + 20 == seg.tcp_hlen && !seg.short_frame;
    if !full {
        return false;
    }
    let tcp_len = u64::from(seg.tcp_hlen) + u64::from(seg.payload_len);
    let Some(segment) = usize::try_from(tcp_len)
        .ok()
        .and_then(|n| data.get(seg.tcp_off..seg.tcp_off.checked_add(n)?))
    else {
        return false;
    };
    let v4 = is_v4(seg.src);
    let pseudo = if v4 {
        address_sum(seg.src & 0xFFFF_FFFF) + address_sum(seg.dst & 0xFFFF_FFFF)
    } else {
        address_sum(seg.src) + address_sum(seg.dst)
    };
    let pseudo = pseudo + 6 + (tcp_len & 0xFFFF) + (tcp_len >> 16);
    if fold(pseudo + word_sum(segment)) != 0xFFFF {
        return true;
    }
    if v4 {
        // the IPv4 header is right before the TCP header: ip_len - tcp_len is its length
        let ihl = i64::from(seg.ip_len) - tcp_len as i64;
        if (20..=60).contains(&ihl) {
            let header = seg
                .tcp_off
                .checked_sub(ihl as usize)
                .and_then(|at| data.get(at..seg.tcp_off));
            if let Some(header) = header {
                return fold(word_sum(header)) != 0xFFFF;
            }
        }
    }
    false
}

/// One direction of a 4-tuple: source address and port, destination address and port.
pub type DirectedKey = (u128, u16, u128, u16);

/// Bad-checksum segments per direction of a 4-tuple: (capture time, TCP flags), in capture
/// order. The engine adds a batch's bad segments before it feeds the good ones; the
/// connection hands its Zeek view the entries of its own 4-tuple as it goes (`pop`).
#[derive(Debug, Default)]
pub struct ChecksumLedger {
    entries: HashMap<DirectedKey, VecDeque<(i64, u16)>>,
}

impl ChecksumLedger {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn add(&mut self, seg: &Segment) {
        self.entries
            .entry((seg.src, seg.sport, seg.dst, seg.dport))
            .or_default()
            .push_back((seg.ts_ns, seg.flags));
    }

    /// The earliest entry of the connection whose client and server directions are `keys`
    /// (the client's first on a tie), at or before `until_ns` (any time when None): its
    /// sender's role, time and flags, taken out of the ledger.
    pub fn pop(
        &mut self,
        keys: &[DirectedKey; 2],
        until_ns: Option<i64>,
    ) -> Option<(Role, i64, u16)> {
        let head = |key: &DirectedKey| {
            self.entries
                .get(key)
                .and_then(|q| q.front())
                .map(|e| e.0)
                .filter(|&ts| until_ns.is_none_or(|until| ts <= until))
        };
        let pick = match (head(&keys[0]), head(&keys[1])) {
            (None, None) => return None,
            (Some(_), None) => 0,
            (None, Some(_)) => 1,
            (Some(a), Some(b)) => usize::from(b < a),
        };
        let queue = self.entries.get_mut(&keys[pick])?;
        let (ts, flags) = queue.pop_front()?;
        if queue.is_empty() {
            self.entries.remove(&keys[pick]);
        }
        let role = if pick == 0 {
            Role::Client
        } else {
            Role::Server
        };
        Some((role, ts, flags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> u128 {
        0xFFFF_0000_0000 | u128::from(u32::from_be_bytes(a))
    }

    /// An IPv4 + TCP packet with correct checksums (computed here, RFC 1071 style), the
    /// segment's fields pointing into it.
    fn packet(payload: &[u8]) -> (Vec<u8>, Segment) {
        let tcp_len = 20 + payload.len();
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
        let sum = !(fold(word_sum(&ip)) as u16);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&1234u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x18;
        tcp.extend_from_slice(payload);
        let pseudo = address_sum(0x0a00_0001) + address_sum(0x0a00_0002) + 6 + tcp_len as u64;
        let sum = !(fold(pseudo + word_sum(&tcp)) as u16);
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());
        let mut data = ip;
        data.extend_from_slice(&tcp);
        let seg = Segment {
            src: v4([10, 0, 0, 1]),
            dst: v4([10, 0, 0, 2]),
            sport: 1234,
            dport: 80,
            tcp_off: 20,
            tcp_hlen: 20,
            opt_cap: 0,
            payload_off: 40,
            payload_len: payload.len() as u32,
            payload_cap: payload.len() as u32,
            ip_len: (20 + tcp_len) as u32,
            ..Segment::default()
        };
        (data, seg)
    }

    #[test]
    fn ones_complement_arithmetic() {
        // RFC 1071 section 3's example: 0001 f203 f4f5 f6f7 sums to ddf2 after folding
        assert_eq!(
            fold(word_sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])),
            0xddf2
        );
        // an odd length is padded with a zero byte
        assert_eq!(fold(word_sum(&[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
        assert_eq!(fold(word_sum(&[0x80])), 0x8000);
        assert_eq!(word_sum(&[]), 0);
        // the little-endian wide words fold to what big-endian 16-bit words give, at every
        // length and start (odd starts: a segment's offset in its frame)
        let bytes: Vec<u8> = (0..=255u8)
            .cycle()
            .take(1001)
            .map(|b| b.wrapping_mul(37))
            .collect();
        for start in 0..4 {
            for end in start..bytes.len() {
                let part = &bytes[start..end];
                let by_words: u64 = part
                    .chunks(2)
                    .map(|w| u64::from(w[0]) << 8 | u64::from(*w.get(1).unwrap_or(&0)))
                    .sum();
                assert_eq!(fold(word_sum(part)), fold(by_words), "{start}..{end}");
            }
        }
        assert_eq!(fold(word_sum(&[0xFF; 16])), 0xFFFF);
        assert_eq!(fold(0x1_FFFF), 1);
    }

    #[test]
    fn ipv4_segments_even_and_odd() {
        for payload in [&b""[..], b"abc", b"abcd", b"hello, world!"] {
            let (mut data, seg) = packet(payload);
            assert!(!is_bad(&seg, &data), "{payload:?}");
            let last = data.len() - 1;
            data[last] ^= 1;
            assert!(is_bad(&seg, &data), "{payload:?}");
        }
        // a damaged IPv4 header checksum alone
        let (mut data, seg) = packet(b"xy");
        data[10] ^= 0x10;
        assert!(is_bad(&seg, &data));
    }

    #[test]
    fn ipv6_pseudo_header() {
        let src: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0001;
        let dst: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0002;
        let mut tcp = vec![0u8; 20];
        tcp[12] = 5 << 4;
        tcp.extend_from_slice(b"odd");
        let pseudo = address_sum(src) + address_sum(dst) + 6 + tcp.len() as u64;
        let sum = !(fold(pseudo + word_sum(&tcp)) as u16);
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());
        let mut data = vec![0u8; 40]; // the IPv6 header (not summed)
        data.extend_from_slice(&tcp);
        let seg = Segment {
            src,
            dst,
            tcp_off: 40,
            tcp_hlen: 20,
            payload_len: 3,
            payload_cap: 3,
            ip_len: 63,
            ..Segment::default()
        };
        assert!(!is_bad(&seg, &data));
        let swapped = Segment {
            src: dst ^ 4,
            ..seg
        };
        assert!(is_bad(&swapped, &data));
    }

    #[test]
    fn snapped_segments_are_not_verified() {
        let (mut data, mut seg) = packet(b"abcdef");
        data.truncate(data.len() - 2);
        seg.payload_cap = 4;
        assert!(!is_bad(&seg, &data));
        // options cut by the snap length: not verified either
        let (data, mut seg) = packet(b"abcdef");
        seg.tcp_hlen = 24;
        seg.opt_cap = 0;
        assert!(!is_bad(&seg, &data));
    }

    #[test]
    fn ledger_hands_entries_in_time_order_client_first_on_ties() {
        let mut ledger = ChecksumLedger::default();
        let c = (1u128, 1000u16, 2u128, 80u16);
        let s = (2u128, 80u16, 1u128, 1000u16);
        let seg = |key: DirectedKey, ts| Segment {
            src: key.0,
            sport: key.1,
            dst: key.2,
            dport: key.3,
            ts_ns: ts,
            flags: ts as u16,
            ..Segment::default()
        };
        for (key, ts) in [(s, 5), (c, 5), (c, 9), (s, 7)] {
            ledger.add(&seg(key, ts));
        }
        let keys = [c, s];
        assert_eq!(ledger.pop(&keys, Some(5)), Some((Role::Client, 5, 5)));
        assert_eq!(ledger.pop(&keys, Some(5)), Some((Role::Server, 5, 5)));
        assert_eq!(ledger.pop(&keys, Some(6)), None);
        assert_eq!(ledger.pop(&keys, None), Some((Role::Server, 7, 7)));
        assert_eq!(ledger.pop(&keys, None), Some((Role::Client, 9, 9)));
        assert_eq!(ledger.pop(&keys, None), None);
        assert!(ledger.is_empty());
    }
}
