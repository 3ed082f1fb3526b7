//! The link layer: where the IP header starts in a frame and which protocol it carries.

use super::{fixed, Skip};

// LINKTYPE_* numbers (https://www.tcpdump.org/linktypes.html)
pub const NULL: u32 = 0;
pub const ETHERNET: u32 = 1;
pub const RAW_OPENBSD: u32 = 12;
pub const RAW_BSD: u32 = 14;
pub const RAW: u32 = 101;
pub const LOOP: u32 = 108;
pub const SLL: u32 = 113;
pub const IPV4: u32 = 228;
pub const IPV6: u32 = 229;
pub const SLL2: u32 = 276;

/// The link types `decode` reads; frames of any other are skipped as `unsupported_linktype`.
pub const SUPPORTED_LINKTYPES: [u32; 10] = [
    ETHERNET,
    SLL,
    SLL2,
    NULL,
    LOOP,
    RAW,
    RAW_OPENBSD,
    RAW_BSD,
    IPV4,
    IPV6,
];

pub(super) const ETH_IPV4: u16 = 0x0800;
pub(super) const ETH_IPV6: u16 = 0x86DD;
/// 802.1Q, 802.1ad and the older QinQ tag protocol identifiers.
const VLAN_TPIDS: [u16; 3] = [0x8100, 0x88A8, 0x9100];
/// Tags read at most: QinQ and friends stack two, rarely three.
const MAX_VLAN_TAGS: usize = 3;
/// AF_INET6 as NULL/LOOP headers write it: Linux, NetBSD/OpenBSD, FreeBSD, Darwin.
const AF_INET6_VALUES: [u32; 4] = [10, 24, 28, 30];
const AF_INET: u32 = 2;

/// (offset of the network header in the frame, its ethertype). The ethertype of an unknown
/// protocol is whatever the link header says (0 for NULL/LOOP/raw), skipped as `not_ip`.
#[inline]
pub(super) fn network_start(frame: &[u8], linktype: u32) -> Result<(usize, u16), Skip> {
    match linktype {
        ETHERNET => ethernet(frame),
        SLL => {
            // Linux cooked v1: the protocol (an ethertype) in the last 2 of 16 bytes
            let header: &[u8; 16] = fixed(frame, 0).ok_or(Skip::TruncatedLinkHeader)?;
            Ok((16, u16::from_be_bytes([header[14], header[15]])))
        }
        SLL2 => {
            // Linux cooked v2: the protocol first, 20 bytes in all
            let header: &[u8; 20] = fixed(frame, 0).ok_or(Skip::TruncatedLinkHeader)?;
            Ok((20, u16::from_be_bytes([header[0], header[1]])))
        }
        NULL | LOOP => {
            let header: &[u8; 4] = fixed(frame, 0).ok_or(Skip::TruncatedLinkHeader)?;
            let be = u32::from_be_bytes(*header);
            // LOOP is always big-endian; NULL is in the writer's byte order, and the small
            // reading of the two is the right one (AF_* values are below 256)
            let family = if linktype == LOOP {
                be
            } else {
                be.min(u32::from_le_bytes(*header))
            };
            let ethertype = if family == AF_INET {
                ETH_IPV4
            } else if AF_INET6_VALUES.contains(&family) {
                ETH_IPV6
            } else {
                0
            };
            Ok((4, ethertype))
        }
        RAW | RAW_OPENBSD | RAW_BSD | IPV4 | IPV6 => {
            // No link header: the IP version nibble says which (even for 228 and 229)
            let first = *frame.first().ok_or(Skip::TruncatedLinkHeader)?;
            let ethertype = match first >> 4 {
                4 => ETH_IPV4,
                6 => ETH_IPV6,
                _ => 0,
            };
            Ok((0, ethertype))
        }
        _ => Err(Skip::UnsupportedLinktype),
    }
}

/// Ethernet II with up to three VLAN tags (IEEE 802.1Q section 9), each read only when the
/// frame holds the whole 4-byte tag.
#[inline]
fn ethernet(frame: &[u8]) -> Result<(usize, u16), Skip> {
    let header: &[u8; 14] = fixed(frame, 0).ok_or(Skip::TruncatedLinkHeader)?;
    let mut ethertype = u16::from_be_bytes([header[12], header[13]]);
    let mut pos = 14;
    for _ in 0..MAX_VLAN_TAGS {
        if !VLAN_TPIDS.contains(&ethertype) {
            break;
        }
        let Some(tag) = fixed::<4>(frame, pos) else {
            break;
        };
        ethertype = u16::from_be_bytes([tag[2], tag[3]]);
        pos += 4;
    }
    Ok((pos, ethertype))
}
