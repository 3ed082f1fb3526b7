//! Layer 2 and 2.5 after a link header: Ethernet II and 802.3 with 802.2 LLC/SNAP, VLAN
//! tags (802.1Q/802.1ad/QinQ), 802.1ah PBB, Cisco FabricPath, MPLS label stacks, PPPoE
//! sessions and PPP, in any order, to the network protocol they carry.

use super::link::{nibble_ethertype, ETH_IPV4, ETH_IPV6};
use super::{fixed, Skip};

/// 802.1Q, 802.1ad and the older QinQ tag protocol identifiers.
const VLAN_TPIDS: [u16; 3] = [0x8100, 0x88A8, 0x9100];
/// 802.1ah backbone service instance tag (I-TAG).
const ETH_PBB: u16 = 0x88E7;
/// Cisco FabricPath: an outer Ethernet header whose ethertype is followed by the FTag/TTL.
const ETH_FABRICPATH: u16 = 0x8903;
pub(super) const ETH_MPLS: u16 = 0x8847;
const ETH_MPLS_MULTICAST: u16 = 0x8848;
pub(super) const ETH_PPPOE: u16 = 0x8864;
/// Transparent Ethernet bridging: an Ethernet frame follows (GRE, Geneve).
pub(super) const ETH_TEB: u16 = 0x6558;
/// Layer-2.5 headers walked at most in one frame (tags, labels, nested frames).
const MAX_STEPS: usize = 24;

/// Ethernet at `pos`: the walk from its ethertype (or its 802.3 length and LLC header).
pub(super) fn ethernet_at(frame: &[u8], pos: usize) -> Result<(usize, u16), Skip> {
    after_ethertype(frame, pos, ETH_TEB)
}

/// The network header after the header at `pos` whose protocol is `ethertype`: VLAN tags,
/// PBB, FabricPath, MPLS, PPPoE and nested Ethernet are walked; anything else is returned
/// as it is (IPv4, IPv6, or a protocol skipped as `not_ip`).
pub(super) fn after_ethertype(
    frame: &[u8],
    mut pos: usize,
    mut ethertype: u16,
) -> Result<(usize, u16), Skip> {
    for _ in 0..MAX_STEPS {
        match ethertype {
            ETH_IPV4 | ETH_IPV6 => return Ok((pos, ethertype)),
            t if VLAN_TPIDS.contains(&t) => {
                // Read only when the frame holds the whole 4-byte tag (else not_ip, as before)
                let Some(tag) = fixed::<4>(frame, pos) else {
                    return Ok((pos, ethertype));
                };
                ethertype = u16::from_be_bytes([tag[2], tag[3]]);
                pos += 4;
            }
            ETH_TEB => {
                let header: &[u8; 14] = fixed(frame, pos).ok_or(Skip::TruncatedTunnelHeader)?;
                ethertype = u16::from_be_bytes([header[12], header[13]]);
                pos += 14;
                if ethertype < 0x0600 {
                    // 802.3: a length, and 802.2 LLC follows
                    return llc(frame, pos);
                }
            }
            ETH_PBB => {
                // I-TAG (4 bytes: flags and I-SID), then the customer's addresses and
                // ethertype (IEEE 802.1ah)
                let tag: &[u8; 18] = fixed(frame, pos).ok_or(Skip::TruncatedTunnelHeader)?;
                ethertype = u16::from_be_bytes([tag[16], tag[17]]);
                pos += 18;
            }
            ETH_FABRICPATH => {
                // FTag and TTL, then the original Ethernet frame
                pos += 2;
                ethertype = ETH_TEB;
            }
            ETH_MPLS | ETH_MPLS_MULTICAST => (pos, ethertype) = mpls(frame, pos)?,
            ETH_PPPOE => {
                // Version/type, code, session id, length (RFC 2516 section 4), then PPP
                let header: &[u8; 6] = fixed(frame, pos).ok_or(Skip::TruncatedTunnelHeader)?;
                if header[0] != 0x11 || header[1] != 0 {
                    return Ok((pos, 0)); // discovery or another version: not IP
                }
                (pos, ethertype) = ppp_protocol(frame, pos + 6)?;
            }
            _ => return Ok((pos, ethertype)),
        }
    }
    Err(Skip::TunnelTooDeep)
}

/// An MPLS label stack at `pos` (RFC 3032): labels to the bottom of the stack, then the
/// payload guessed from its first nibble as Zeek and Wireshark do: 4 and 6 are IP, 0 a
/// pseudowire control word before an Ethernet frame (RFC 4448), anything else not IP.
fn mpls(frame: &[u8], mut pos: usize) -> Result<(usize, u16), Skip> {
    for _ in 0..MAX_STEPS {
        let label: &[u8; 4] = fixed(frame, pos).ok_or(Skip::TruncatedTunnelHeader)?;
        pos += 4;
        if label[2] & 1 != 0 {
            let first = *frame.get(pos).ok_or(Skip::TruncatedTunnelHeader)?;
            return match first >> 4 {
                4 | 6 => Ok((pos, nibble_ethertype(first))),
                0 => Ok((pos + 4, ETH_TEB)),
                _ => Ok((pos, 0)),
            };
        }
    }
    Err(Skip::TunnelTooDeep)
}

/// 802.2 LLC at `pos`: SNAP (AA AA 03, OUI, ethertype) carries an ethertype; any other
/// service access point is not IP.
pub(super) fn llc(frame: &[u8], pos: usize) -> Result<(usize, u16), Skip> {
    // A header too short for SNAP is not IP (as an 802.3 frame was before LLC was read)
    let Some(snap) = fixed::<8>(frame, pos) else {
        return Ok((pos, 0));
    };
    if snap[..3] != [0xAA, 0xAA, 0x03] {
        return Ok((pos, 0));
    }
    after_ethertype(frame, pos + 8, u16::from_be_bytes([snap[6], snap[7]]))
}

/// PPP at `pos` (RFC 1661/1662): the optional HDLC address and control bytes, then the
/// protocol.
pub(super) fn ppp(frame: &[u8], pos: usize) -> Result<(usize, u16), Skip> {
    let pos = match fixed::<2>(frame, pos) {
        Some([0xFF, 0x03]) => pos + 2,
        _ => pos,
    };
    ppp_protocol(frame, pos)
}

/// A PPP protocol field at `pos` (1 byte when compressed: an odd first byte, RFC 1661
/// section 6.5), mapped to its ethertype.
pub(super) fn ppp_protocol(frame: &[u8], pos: usize) -> Result<(usize, u16), Skip> {
    let first = *frame.get(pos).ok_or(Skip::TruncatedTunnelHeader)?;
    let (protocol, pos) = if first & 1 == 1 {
        (u16::from(first), pos + 1)
    } else {
        let field: &[u8; 2] = fixed(frame, pos).ok_or(Skip::TruncatedTunnelHeader)?;
        (u16::from_be_bytes(*field), pos + 2)
    };
    let ethertype = match protocol {
        0x0021 => ETH_IPV4,
        0x0057 => ETH_IPV6,
        0x0281 => return mpls(frame, pos),
        _ => 0,
    };
    Ok((pos, ethertype))
}
