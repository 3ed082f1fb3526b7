//! The network layer: where the TCP header starts and how long the IP payload is.

use super::{fixed, Skip};

/// ::ffff:0:0/96 (RFC 4291 section 2.5.5.2) keeps IPv4 and IPv6 addresses in one key.
const MAPPED_V4: u128 = 0xFFFF_0000_0000;
/// Extension headers walked at most: more than any real packet carries.
const MAX_EXTENSION_HEADERS: usize = 8;
const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const AH: u8 = 51;
const DESTINATION_OPTIONS: u8 = 60;

/// What the IP header says about its TCP segment.
pub(super) struct Network {
    /// Offset of the transport header in the frame (may lie past the frame's end).
    pub l4: usize,
    /// IP payload length from the header, less the extension headers (may be negative when
    /// the header lies; then the segment is `bad_tcp_header`).
    pub l4_len: i64,
    /// Length of the datagram on the wire.
    pub ip_len: i64,
    pub src: u128,
    pub dst: u128,
    /// The upper-layer protocol (IPv4's protocol, IPv6's last next header).
    pub proto: u8,
    /// IPv4's Identification field (RFC 791); IPv6 has none outside fragments.
    pub ip_id: Option<u16>,
}

/// IPv4 (RFC 791 section 3.1) at `l3`: options are skipped by the header length; fragments
/// are not reassembled.
#[inline]
pub(super) fn ipv4(frame: &[u8], l3: usize) -> Result<Network, Skip> {
    let header: &[u8; 20] = fixed(frame, l3).ok_or(Skip::TruncatedIpHeader)?;
    let ihl = i64::from(header[0] & 0x0F) * 4;
    let total = i64::from(u16::from_be_bytes([header[2], header[3]]));
    let fragment = u16::from_be_bytes([header[6], header[7]]);
    if header[0] >> 4 != 4 || ihl < 20 || (total < ihl && total != 0) {
        return Err(Skip::BadIpHeader);
    }
    // More fragments, or a nonzero offset: any piece of a fragmented datagram
    if fragment & 0x3FFF != 0 {
        return Err(Skip::IpFragment);
    }
    // A total length of 0 happens for TSO super-packets captured on the sending host:
    // trust the capture
    let total = if total == 0 {
        (frame.len() - l3) as i64
    } else {
        total
    };
    let address = |at: usize| {
        MAPPED_V4
            | u128::from(u32::from_be_bytes([
                header[at],
                header[at + 1],
                header[at + 2],
                header[at + 3],
            ]))
    };
    Ok(Network {
        l4: l3 + ihl as usize,
        l4_len: total - ihl,
        ip_len: total,
        src: address(12),
        dst: address(16),
        proto: header[9],
        ip_id: Some(u16::from_be_bytes([header[4], header[5]])),
    })
}

/// IPv6 (RFC 8200 section 3) at `l3`, walking its extension headers (section 4) to the
/// upper-layer header.
#[inline]
pub(super) fn ipv6(frame: &[u8], l3: usize) -> Result<Network, Skip> {
    let header: &[u8; 40] = fixed(frame, l3).ok_or(Skip::TruncatedIpHeader)?;
    if header[0] >> 4 != 6 {
        return Err(Skip::BadIpHeader);
    }
    let mut next = header[6];
    let payload_len = match u16::from_be_bytes([header[4], header[5]]) {
        // A jumbogram (RFC 2675) or a TSO super-packet: trust the capture
        0 => (frame.len() - l3 - 40) as i64,
        n => i64::from(n),
    };
    let mut pos = l3 + 40;
    let mut fragment = false;
    for _ in 0..MAX_EXTENSION_HEADERS {
        if !matches!(
            next,
            HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS | AH | FRAGMENT
        ) {
            break;
        }
        // Each header's first 8 bytes must be captured to be followed
        let Some(ext) = fixed::<8>(frame, pos) else {
            break;
        };
        let length = usize::from(ext[1]);
        let ext_len = match next {
            FRAGMENT => {
                // Offset or M flag set; an atomic fragment (RFC 6946) is a whole datagram
                let field = u16::from_be_bytes([ext[2], ext[3]]);
                fragment |= field & 0xFFF9 != 0;
                8
            }
            // AH counts 4-byte units less 2 (RFC 4302 section 2.2)
            AH => (length + 2) * 4,
            _ => (length + 1) * 8,
        };
        next = ext[0];
        pos += ext_len;
    }
    if fragment {
        return Err(Skip::IpFragment);
    }
    let address = |at: usize| {
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&header[at..at + 16]);
        u128::from_be_bytes(bytes)
    };
    Ok(Network {
        l4: pos,
        l4_len: (l3 + 40) as i64 + payload_len - pos as i64,
        ip_len: 40 + payload_len,
        src: address(8),
        dst: address(24),
        proto: next,
        ip_id: None,
    })
}
