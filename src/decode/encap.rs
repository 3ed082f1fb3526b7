//! Encapsulation paths: which tunnels a segment came through, and the identity that keeps
//! the same inner 4-tuple in two tunnels apart.
//!
//! Only IP-carried tunnels (GRE, ERSPAN, VXLAN, Geneve, IP in IP, Teredo, GTP-U, AYIYA)
//! make a path, as Zeek's `tunnel_parents` do: VLAN tags, MPLS labels, PPPoE sessions and
//! the like are link-layer framing (labels and tags may differ per direction) and are
//! neither keyed nor reported.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Tunnels nested at most in one frame; deeper frames are skipped as `tunnel_too_deep`.
pub const MAX_TUNNELS: usize = 4;
/// Distinct tunnel paths a run tracks (a bound on memory against hostile captures); frames
/// of further paths are skipped as `tunnel_table_full`.
pub const MAX_PATHS: usize = 1 << 18;

/// The kind of a tunnel layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    Gre,
    Erspan,
    Vxlan,
    Geneve,
    IpInIp,
    Teredo,
    Gtp,
    Ayiya,
}

impl TunnelKind {
    /// The name records give the layer (`"type"`).
    pub fn name(self) -> &'static str {
        match self {
            TunnelKind::Gre => "gre",
            TunnelKind::Erspan => "erspan",
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
            TunnelKind::IpInIp => "ip-in-ip",
            TunnelKind::Teredo => "teredo",
            TunnelKind::Gtp => "gtp",
            TunnelKind::Ayiya => "ayiya",
        }
    }

    /// The name of the layer's identifier field in records, if it has one.
    pub fn id_name(self) -> Option<&'static str> {
        match self {
            TunnelKind::Gre => Some("key"),
            TunnelKind::Erspan => Some("session"),
            TunnelKind::Vxlan | TunnelKind::Geneve => Some("vni"),
            _ => None,
        }
    }

    fn is_udp(self) -> bool {
        matches!(
            self,
            TunnelKind::Vxlan
                | TunnelKind::Geneve
                | TunnelKind::Teredo
                | TunnelKind::Gtp
                | TunnelKind::Ayiya
        )
    }
}

/// One tunnel layer as the first segment of a connection saw it (outermost first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TunnelLayer {
    pub kind: TunnelKind,
    /// VNI, GRE key or ERSPAN session, when the layer has one (see `TunnelKind::id_name`).
    pub id: Option<u32>,
    /// The outer IP addresses (IPv4 as IPv4-mapped IPv6).
    pub src: u128,
    pub dst: u128,
    /// The outer UDP ports (0 for layers not carried in UDP).
    pub sport: u16,
    pub dport: u16,
    /// GRE carried in UDP (RFC 8086) rather than in IP.
    pub over_udp: bool,
}

impl TunnelLayer {
    /// Whether the outer header has UDP ports to report.
    pub fn has_ports(&self) -> bool {
        self.kind.is_udp() || self.over_udp
    }

    /// The same layer seen from the other direction.
    pub fn reversed(&self) -> TunnelLayer {
        TunnelLayer {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            ..*self
        }
    }

    /// What makes two layers the same tunnel in either direction: the kind, the identifier
    /// and the outer addresses unordered. UDP source ports are left out (VXLAN, Geneve and
    /// GTP-U pick them per inner flow, RFC 7348 section 5), and so are GTP TEIDs (one per
    /// direction).
    fn identity(&self) -> (TunnelKind, Option<u32>, u128, u128) {
        (
            self.kind,
            self.id,
            self.src.min(self.dst),
            self.src.max(self.dst),
        )
    }
}

/// The tunnels of one frame, outermost first (no allocation: at most `MAX_TUNNELS`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Path {
    layers: [Option<TunnelLayer>; MAX_TUNNELS],
    len: usize,
}

impl Path {
    /// Empty again, for the next frame (cheaper than a new one: no 200 bytes to zero).
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Add the next inner layer; false when the path is full (public for a distributed
    /// run's reduce, which interns the paths its maps met: parallel::scaletunnels).
    pub fn push(&mut self, layer: TunnelLayer) -> bool {
        match self.layers.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(layer);
                self.len += 1;
                true
            }
            None => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn layers(&self) -> impl Iterator<Item = &TunnelLayer> {
        self.layers.iter().take(self.len).flatten()
    }
}

/// A connection's encapsulation: its tunnels, outermost first.
pub type Encapsulation = Arc<Vec<TunnelLayer>>;

type Identity = Vec<(TunnelKind, Option<u32>, u128, u128)>;

/// Tunnel paths met in a run, numbered from 1 in order of first appearance (0 is plain
/// traffic): `Segment::tunnel` carries the number, the flow table keys on it and gives the
/// connection its path. Shared by the decoder and the flow tables (`--jobs` shards).
#[derive(Debug, Default)]
pub struct TunnelRegistry {
    ids: HashMap<Identity, u32>,
    paths: Vec<Encapsulation>,
}

/// The registry as the decoder and the flow tables share it.
pub type SharedTunnels = Arc<Mutex<TunnelRegistry>>;

impl TunnelRegistry {
    /// `Segment::tunnel` for `path` (non-empty): its number, registering it when new,
    /// shifted left by one, with the low bit set when the frame went the other way than
    /// the registered path (its outer source is the registered destination). None when
    /// the registry is full.
    pub fn intern(&mut self, path: &Path) -> Option<u32> {
        let identity: Identity = path.layers().map(TunnelLayer::identity).collect();
        let id = match self.ids.get(&identity) {
            Some(&id) => id,
            None => {
                if self.paths.len() >= MAX_PATHS {
                    return None;
                }
                self.paths.push(Arc::new(path.layers().copied().collect()));
                let id = self.paths.len() as u32;
                self.ids.insert(identity, id);
                id
            }
        };
        let outer = |p: Option<&TunnelLayer>| p.map(|l| l.src);
        let registered = self.paths.get(id as usize - 1).and_then(|p| p.first());
        let flipped = outer(path.layers().next()) != outer(registered);
        Some(id << 1 | u32::from(flipped))
    }

    /// The path numbered `id` (None for 0, plain traffic).
    pub fn path(&self, id: u32) -> Option<Encapsulation> {
        self.paths.get((id as usize).checked_sub(1)?).cloned()
    }

    /// Whether any tunnel was met.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

/// The path numbered `id` in a shared registry, turned to go the way of a segment whose
/// `Segment::tunnel` flip bit is `flipped`, reversed again when `reverse` (a poisoned lock
/// still reads: the registry is only ever appended to).
pub fn lookup(
    tunnels: &SharedTunnels,
    id: u32,
    flipped: bool,
    reverse: bool,
) -> Option<Encapsulation> {
    let path = tunnels
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .path(id)?;
    Some(if flipped != reverse {
        Arc::new(path.iter().map(TunnelLayer::reversed).collect())
    } else {
        path
    })
}

/// UDP ports that carry tunnels: the well-known ones plus the user's (`--tunnel-port`).
#[derive(Clone, Debug)]
pub struct TunnelPorts {
    ports: Vec<(u16, UdpTunnel)>,
}

/// The tunnels tcptrace finds inside UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpTunnel {
    Vxlan,
    Geneve,
    Teredo,
    Gtp,
    Gre,
    Ayiya,
}

impl UdpTunnel {
    /// The names `--tunnel-port` takes.
    pub const NAMES: [(&'static str, UdpTunnel); 6] = [
        ("vxlan", UdpTunnel::Vxlan),
        ("geneve", UdpTunnel::Geneve),
        ("teredo", UdpTunnel::Teredo),
        ("gtp", UdpTunnel::Gtp),
        ("gre", UdpTunnel::Gre),
        ("ayiya", UdpTunnel::Ayiya),
    ];

    pub fn from_name(name: &str) -> Option<UdpTunnel> {
        Self::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, t)| t)
    }
}

impl Default for TunnelPorts {
    /// IANA's ports: VXLAN 4789 (RFC 7348), Geneve 6081 (RFC 8926), Teredo 3544 (RFC 4380),
    /// GTP-U 2152 (3GPP TS 29.281), GRE-in-UDP 4754 (RFC 8086), AYIYA 5072.
    fn default() -> Self {
        TunnelPorts {
            ports: vec![
                (4789, UdpTunnel::Vxlan),
                (6081, UdpTunnel::Geneve),
                (3544, UdpTunnel::Teredo),
                (2152, UdpTunnel::Gtp),
                (4754, UdpTunnel::Gre),
                (5072, UdpTunnel::Ayiya),
            ],
        }
    }
}

impl TunnelPorts {
    /// Also decode `tunnel` on UDP port `port`, instead of what the port carried before
    /// (a user's `--tunnel-port` overrides a default: VXLAN on 6081 is then VXLAN).
    pub fn add(&mut self, port: u16, tunnel: UdpTunnel) {
        match self.ports.iter_mut().find(|(p, _)| *p == port) {
            Some(entry) => entry.1 = tunnel,
            None => self.ports.push((port, tunnel)),
        }
    }

    /// The tunnel a UDP datagram between these ports carries (the destination port first).
    #[inline]
    pub fn of(&self, sport: u16, dport: u16) -> Option<UdpTunnel> {
        let find = |port| {
            self.ports
                .iter()
                .find(|&&(p, _)| p == port)
                .map(|&(_, t)| t)
        };
        find(dport).or_else(|| find(sport))
    }
}

/// What the decoder needs besides the frames: the tunnel ports and the shared registry.
#[derive(Clone, Debug, Default)]
pub struct Tunnels {
    pub ports: TunnelPorts,
    pub registry: SharedTunnels,
}
