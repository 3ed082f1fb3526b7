//! Tunnels carried in IP: GRE (with ERSPAN I/II/III), IP in IP, and the UDP ones (VXLAN,
//! Geneve, Teredo, GTP-U, GRE-in-UDP, AYIYA) on their ports. Each gives the next network
//! header and the layer it crossed.

use super::encap::{TunnelKind, TunnelLayer, TunnelPorts, UdpTunnel};
use super::ip::Network;
use super::l2::{after_ethertype, ppp, ETH_TEB};
use super::link::{nibble_ethertype, ETH_IPV4, ETH_IPV6};
use super::{fixed, Skip};

const PROTO_IPIP: u8 = 4;
const PROTO_UDP: u8 = 17;
const PROTO_IPV6: u8 = 41;
const PROTO_GRE: u8 = 47;
/// GRE protocol types of ERSPAN types I/II and III.
const GRE_ERSPAN: u16 = 0x88BE;
const GRE_ERSPAN3: u16 = 0x22EB;
const GRE_PPP: u16 = 0x880B;
/// GTP-U's G-PDU message (3GPP TS 29.281 section 6.1): user data.
const GTP_GPDU: u8 = 0xFF;
/// GTP-U extension headers followed at most.
const MAX_GTP_EXTENSIONS: usize = 8;

/// Where the next network header is after the IP payload `net` (its position, its
/// ethertype, the layer crossed), or None when the payload is no tunnel.
pub(super) fn decapsulate(
    frame: &[u8],
    net: &Network,
    ports: &TunnelPorts,
) -> Result<Option<(usize, u16, TunnelLayer)>, Skip> {
    let mut layer = TunnelLayer {
        kind: TunnelKind::IpInIp,
        id: None,
        src: net.src,
        dst: net.dst,
        sport: 0,
        dport: 0,
        over_udp: false,
    };
    let (pos, ethertype) = match net.proto {
        PROTO_IPIP => (net.l4, ETH_IPV4),
        PROTO_IPV6 => (net.l4, ETH_IPV6),
        PROTO_GRE => gre(frame, net.l4, &mut layer)?,
        PROTO_UDP => {
            let Some(udp) = fixed::<8>(frame, net.l4) else {
                return Ok(None);
            };
            layer.sport = u16::from_be_bytes([udp[0], udp[1]]);
            layer.dport = u16::from_be_bytes([udp[2], udp[3]]);
            let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
            let Some(tunnel) = ports
                .of(layer.sport, layer.dport)
                .or_else(|| teredo_heuristic(frame, net.l4 + 8, udp_len))
            else {
                return Ok(None);
            };
            let pos = net.l4 + 8;
            match udp_tunnel(frame, pos, tunnel, &mut layer)? {
                Some(next) => next,
                None => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some((pos, ethertype, layer)))
}

/// The tunnel inside a UDP datagram whose payload starts at `pos`; None when the payload
/// is the tunnel protocol's signalling (Teredo bubbles without IPv6, GTP echo).
fn udp_tunnel(
    frame: &[u8],
    pos: usize,
    tunnel: UdpTunnel,
    layer: &mut TunnelLayer,
) -> Result<Option<(usize, u16)>, Skip> {
    Ok(Some(match tunnel {
        UdpTunnel::Vxlan => {
            // RFC 7348 section 5: flags (I set), reserved, VNI, reserved; then Ethernet
            let header: &[u8; 8] = fixed(frame, pos).ok_or(Skip::TruncatedTunnelHeader)?;
            if header[0] & 0x08 == 0 {
                return Err(Skip::BadTunnelHeader);
            }
            layer.kind = TunnelKind::Vxlan;
            layer.id = Some(u32::from_be_bytes([0, header[4], header[5], header[6]]));
            after_ethertype(frame, pos + 8, ETH_TEB)?
        }
        UdpTunnel::Geneve => {
            // RFC 8926 section 3.4: version and options length, flags, protocol, VNI
            let header: &[u8; 8] = fixed(frame, pos).ok_or(Skip::TruncatedTunnelHeader)?;
            if header[0] >> 6 != 0 {
                return Err(Skip::BadTunnelHeader);
            }
            layer.kind = TunnelKind::Geneve;
            layer.id = Some(u32::from_be_bytes([0, header[4], header[5], header[6]]));
            let options = usize::from(header[0] & 0x3F) * 4;
            let protocol = u16::from_be_bytes([header[2], header[3]]);
            after_ethertype(frame, pos + 8 + options, protocol)?
        }
        UdpTunnel::Teredo => {
            // RFC 4380 section 5.1.1: an optional authentication and origin indication,
            // then IPv6; anything else is Teredo's own signalling
            let mut at = pos;
            if let Some([0x00, 0x01, id_len, auth_len]) = fixed::<4>(frame, at).copied() {
                at += 4 + usize::from(id_len) + usize::from(auth_len) + 9;
            }
            if let Some([0x00, 0x00]) = fixed::<2>(frame, at).copied() {
                at += 8;
            }
            match frame.get(at) {
                Some(first) if first >> 4 == 6 && fixed::<40>(frame, at).is_some() => {
                    layer.kind = TunnelKind::Teredo;
                    (at, ETH_IPV6)
                }
                _ => return Ok(None),
            }
        }
        UdpTunnel::Gtp => {
            // 3GPP TS 29.281 section 5.1: version 1, protocol type GTP, message type
            let header: &[u8; 8] = fixed(frame, pos).ok_or(Skip::TruncatedTunnelHeader)?;
            if header[0] >> 5 != 1 || header[0] & 0x10 == 0 {
                return Err(Skip::BadTunnelHeader);
            }
            if header[1] != GTP_GPDU {
                return Ok(None);
            }
            layer.kind = TunnelKind::Gtp;
            let mut at = pos + 8;
            if header[0] & 0x07 != 0 {
                // Sequence number, N-PDU number, next extension header type
                let more: &[u8; 4] = fixed(frame, at).ok_or(Skip::TruncatedTunnelHeader)?;
                at += 4;
                let mut next = more[3];
                if header[0] & 0x04 != 0 {
                    for _ in 0..MAX_GTP_EXTENSIONS {
                        if next == 0 {
                            break;
                        }
                        // Length in 4-byte units, the next type in its last byte
                        let units = usize::from(*frame.get(at).ok_or(Skip::TruncatedTunnelHeader)?);
                        if units == 0 {
                            return Err(Skip::BadTunnelHeader);
                        }
                        at += units * 4;
                        next = *frame.get(at - 1).ok_or(Skip::TruncatedTunnelHeader)?;
                    }
                    if next != 0 {
                        return Err(Skip::TunnelTooDeep);
                    }
                }
            }
            let first = *frame.get(at).ok_or(Skip::TruncatedTunnelHeader)?;
            (at, nibble_ethertype(first))
        }
        UdpTunnel::Gre => {
            layer.over_udp = true;
            gre(frame, pos, layer)?
        }
        UdpTunnel::Ayiya => {
            // Identity length (log2) and type, signature length (4-byte units) and hash,
            // authentication and opcode, next header, epoch; then identity and signature
            let header: &[u8; 8] = fixed(frame, pos).ok_or(Skip::TruncatedTunnelHeader)?;
            if header[2] & 0x0F != 1 {
                return Ok(None); // not "forward": AYIYA's own signalling
            }
            layer.kind = TunnelKind::Ayiya;
            let at = pos + 8 + (1usize << (header[0] >> 4)) + usize::from(header[1] >> 4) * 4;
            match header[3] {
                PROTO_IPIP => (at, ETH_IPV4),
                PROTO_IPV6 => (at, ETH_IPV6),
                _ => return Ok(None),
            }
        }
    }))
}

/// Teredo off its port (a client and a relay talk on the ports their NATs chose), as
/// Wireshark's heuristic finds it: a UDP payload that is exactly one IPv6 packet.
fn teredo_heuristic(frame: &[u8], pos: usize, udp_len: usize) -> Option<UdpTunnel> {
    let header: &[u8; 40] = fixed(frame, pos)?;
    let payload = usize::from(u16::from_be_bytes([header[4], header[5]]));
    (header[0] >> 4 == 6 && udp_len == 8 + 40 + payload).then_some(UdpTunnel::Teredo)
}

/// GRE at `pos` (RFC 2784 and 2890; version 1, the enhanced GRE of PPTP, RFC 2637), with
/// ERSPAN types I, II and III (draft-foschiano-erspan) behind it.
fn gre(frame: &[u8], pos: usize, layer: &mut TunnelLayer) -> Result<(usize, u16), Skip> {
    let header: &[u8; 4] = fixed(frame, pos).ok_or(Skip::TruncatedTunnelHeader)?;
    let (flags, version) = (header[0], header[1] & 0x07);
    let protocol = u16::from_be_bytes([header[2], header[3]]);
    let (checksum, routing, key, sequence) = (
        flags & 0x80 != 0,
        flags & 0x40 != 0,
        flags & 0x20 != 0,
        flags & 0x10 != 0,
    );
    layer.kind = TunnelKind::Gre;
    let mut at = pos + 4;
    match version {
        0 => {
            if routing {
                return Err(Skip::BadTunnelHeader); // source routing (RFC 1701), deprecated
            }
            if checksum {
                at += 4;
            }
            if key {
                let field: &[u8; 4] = fixed(frame, at).ok_or(Skip::TruncatedTunnelHeader)?;
                layer.id = Some(u32::from_be_bytes(*field));
                at += 4;
            }
            if sequence {
                at += 4;
            }
        }
        1 => {
            // Key (payload length, call id) always; sequence and acknowledgment optional
            if !key || protocol != GRE_PPP {
                return Err(Skip::BadTunnelHeader);
            }
            at += 4 + 4 * usize::from(sequence) + 4 * usize::from(header[1] & 0x80 != 0);
            fixed::<0>(frame, at).ok_or(Skip::TruncatedTunnelHeader)?;
            return ppp(frame, at);
        }
        _ => return Err(Skip::BadTunnelHeader),
    }
    fixed::<0>(frame, at).ok_or(Skip::TruncatedTunnelHeader)?;
    match protocol {
        GRE_ERSPAN if !sequence => {
            // Type I: no ERSPAN header, the mirrored Ethernet frame at once
            layer.kind = TunnelKind::Erspan;
            layer.id = None;
            after_ethertype(frame, at, ETH_TEB)
        }
        GRE_ERSPAN | GRE_ERSPAN3 => {
            // Type II: 8 bytes (version 1); type III: 12 (version 2), and an 8-byte
            // platform subheader when the O flag is set
            let header: &[u8; 8] = fixed(frame, at).ok_or(Skip::TruncatedTunnelHeader)?;
            let version = header[0] >> 4;
            layer.kind = TunnelKind::Erspan;
            layer.id = Some(u32::from(
                u16::from_be_bytes([header[2], header[3]]) & 0x03FF,
            ));
            let len = match (protocol, version) {
                (GRE_ERSPAN, 1) => 8,
                (GRE_ERSPAN3, 2) => {
                    let last = *frame.get(at + 11).ok_or(Skip::TruncatedTunnelHeader)?;
                    12 + 8 * usize::from(last & 0x01)
                }
                _ => return Err(Skip::BadTunnelHeader),
            };
            after_ethertype(frame, at + len, ETH_TEB)
        }
        _ => after_ethertype(frame, at, protocol),
    }
}
