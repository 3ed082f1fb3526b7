//! The link layer: where the IP header starts in a frame and which protocol it carries.

use super::l2::{ethernet_at, llc, ppp, ETH_MPLS};
use super::{fixed, Skip};

// LINKTYPE_* numbers (https://www.tcpdump.org/linktypes.html)
pub const NULL: u32 = 0;
pub const ETHERNET: u32 = 1;
pub const PPP: u32 = 9;
pub const FDDI: u32 = 10;
pub const RAW_OPENBSD: u32 = 12;
pub const RAW_BSD: u32 = 14;
pub const PPP_HDLC: u32 = 50;
pub const PPP_ETHER: u32 = 51;
pub const RAW: u32 = 101;
pub const C_HDLC: u32 = 104;
pub const IEEE802_11: u32 = 105;
pub const LOOP: u32 = 108;
pub const SLL: u32 = 113;
pub const IEEE802_11_RADIOTAP: u32 = 127;
/// A label stack with no link header.
pub const MPLS: u32 = 219;
pub const IPV4: u32 = 228;
pub const IPV6: u32 = 229;
pub const NFLOG: u32 = 239;
pub const SLL2: u32 = 276;

/// The link types `decode` reads; frames of any other are skipped as `unsupported_linktype`.
pub const SUPPORTED_LINKTYPES: [u32; 19] = [
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
    PPP,
    FDDI,
    PPP_HDLC,
    PPP_ETHER,
    C_HDLC,
    IEEE802_11,
    IEEE802_11_RADIOTAP,
    NFLOG,
    MPLS,
];

pub(super) const ETH_IPV4: u16 = 0x0800;
pub(super) const ETH_IPV6: u16 = 0x86DD;
/// AF_INET6 as NULL/LOOP headers write it: Linux, NetBSD/OpenBSD, FreeBSD, Darwin.
const AF_INET6_VALUES: [u32; 4] = [10, 24, 28, 30];
const AF_INET: u32 = 2;
/// NFLOG's TLV holding the packet (NFULA_PAYLOAD, linux/netfilter/nfnetlink_log.h).
const NFULA_PAYLOAD: u16 = 9;
/// TLVs read at most in an NFLOG header (it has about a dozen kinds).
const MAX_NFLOG_TLVS: usize = 32;

/// (offset of the network header in the frame, its ethertype). The ethertype of an unknown
/// protocol is whatever the link header says (0 for NULL/LOOP/raw), skipped as `not_ip`;
/// layer-2.5 headers (VLAN, PBB, FabricPath, MPLS, PPPoE) are walked to what they carry.
#[inline(always)]
pub(super) fn network_start(frame: &[u8], linktype: u32) -> Result<(usize, u16), Skip> {
    // The common case inline in the decode loop, the rest a call
    if linktype == ETHERNET {
        if let Some(header) = fixed::<14>(frame, 0) {
            let ethertype = u16::from_be_bytes([header[12], header[13]]);
            if matches!(ethertype, ETH_IPV4 | ETH_IPV6) {
                return Ok((14, ethertype));
            }
        }
    }
    any_network_start(frame, linktype)
}

/// `network_start` for every link type and layer 2.5.
fn any_network_start(frame: &[u8], linktype: u32) -> Result<(usize, u16), Skip> {
    match linktype {
        ETHERNET => {
            let header: &[u8; 14] = fixed(frame, 0).ok_or(Skip::TruncatedLinkHeader)?;
            // The common case first, without the layer-2.5 walk
            match u16::from_be_bytes([header[12], header[13]]) {
                ethertype @ (ETH_IPV4 | ETH_IPV6) => Ok((14, ethertype)),
                _ => ethernet_at(frame, 0),
            }
        }
        SLL => {
            // Linux cooked v1: the protocol (an ethertype) in the last 2 of 16 bytes
            let header: &[u8; 16] = fixed(frame, 0).ok_or(Skip::TruncatedLinkHeader)?;
            super::l2::after_ethertype(frame, 16, u16::from_be_bytes([header[14], header[15]]))
        }
        SLL2 => {
            // Linux cooked v2: the protocol first, 20 bytes in all
            let header: &[u8; 20] = fixed(frame, 0).ok_or(Skip::TruncatedLinkHeader)?;
            super::l2::after_ethertype(frame, 20, u16::from_be_bytes([header[0], header[1]]))
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
            Ok((4, family_ethertype(family)))
        }
        RAW | RAW_OPENBSD | RAW_BSD | IPV4 | IPV6 => {
            // No link header: the IP version nibble says which (even for 228 and 229)
            let first = *frame.first().ok_or(Skip::TruncatedLinkHeader)?;
            Ok((0, nibble_ethertype(first)))
        }
        FDDI => {
            // Frame control, destination and source addresses, then 802.2 LLC (ANSI X3.139)
            fixed::<13>(frame, 0).ok_or(Skip::TruncatedLinkHeader)?;
            llc(frame, 13)
        }
        PPP | PPP_HDLC => {
            let first: &[u8; 2] = fixed(frame, 0).ok_or(Skip::TruncatedLinkHeader)?;
            if linktype == PPP_HDLC && matches!(first[0], 0x0F | 0x8F) {
                return cisco_hdlc(frame);
            }
            ppp(frame, 0)
        }
        PPP_ETHER => super::l2::after_ethertype(frame, 0, super::l2::ETH_PPPOE),
        C_HDLC => cisco_hdlc(frame),
        NFLOG => nflog(frame),
        IEEE802_11 => super::wifi::data_frame(frame, 0),
        IEEE802_11_RADIOTAP => {
            // Radiotap: version, pad, then the little-endian length of the whole header
            let header: &[u8; 4] = fixed(frame, 0).ok_or(Skip::TruncatedLinkHeader)?;
            let len = usize::from(u16::from_le_bytes([header[2], header[3]]));
            if header[0] != 0 || len < 8 {
                return Err(Skip::TruncatedLinkHeader);
            }
            super::wifi::data_frame(frame, len)
        }
        MPLS => super::l2::after_ethertype(frame, 0, ETH_MPLS),
        _ => Err(Skip::UnsupportedLinktype),
    }
}

/// Cisco HDLC: address, control, then an ethertype.
fn cisco_hdlc(frame: &[u8]) -> Result<(usize, u16), Skip> {
    let header: &[u8; 4] = fixed(frame, 0).ok_or(Skip::TruncatedLinkHeader)?;
    super::l2::after_ethertype(frame, 4, u16::from_be_bytes([header[2], header[3]]))
}

/// Linux NFLOG (as `tcpdump -i nflog:N` writes it): family, version, resource id, then
/// TLVs (lengths in the capturing host's byte order: little-endian in practice), one of
/// which holds the packet from its IP header on.
fn nflog(frame: &[u8]) -> Result<(usize, u16), Skip> {
    let header: &[u8; 4] = fixed(frame, 0).ok_or(Skip::TruncatedLinkHeader)?;
    let family = u32::from(header[0]);
    let mut pos = 4;
    for _ in 0..MAX_NFLOG_TLVS {
        let tlv: &[u8; 4] = fixed(frame, pos).ok_or(Skip::TruncatedLinkHeader)?;
        let len = usize::from(u16::from_le_bytes([tlv[0], tlv[1]]));
        let kind = u16::from_le_bytes([tlv[2], tlv[3]]) & 0x7FFF;
        if len < 4 {
            return Err(Skip::TruncatedLinkHeader);
        }
        if kind == NFULA_PAYLOAD {
            let ethertype = match family_ethertype(family) {
                0 => nibble_ethertype(frame.get(pos + 4).copied().unwrap_or(0)),
                known => known,
            };
            return Ok((pos + 4, ethertype));
        }
        pos += (len + 3) & !3;
    }
    Err(Skip::TruncatedLinkHeader)
}

fn family_ethertype(family: u32) -> u16 {
    if family == AF_INET {
        ETH_IPV4
    } else if AF_INET6_VALUES.contains(&family) {
        ETH_IPV6
    } else {
        0
    }
}

/// The IP version nibble as an ethertype (0: neither).
pub(super) fn nibble_ethertype(first: u8) -> u16 {
    match first >> 4 {
        4 => ETH_IPV4,
        6 => ETH_IPV6,
        _ => 0,
    }
}
