//! One TCP connection: two endpoint machines and the analyzers, fed segment by segment.
//!
//! For each segment the sender's and the receiver's events are derived in the order RFC 9293
//! section 3.10.7.4 processes a segment: SYN, then the ACK field, then the payload, then FIN.
//! Every state change goes through `EndpointMachine::apply`.
//!
//! Ordering with TCP timestamps: an ACK of a side's SYN or FIN is seen at the capture point
//! before it reaches that side, and in a simultaneous close it may reach it only after the
//! side has acted on the peer's FIN. When timestamps are in use, such a receive event waits
//! in the side's inbox until a segment from that side echoes its TSval (proof it arrived) and
//! is applied before that segment's own events; a segment that echoes an older TSval is
//! processed first. Without timestamps the event applies when seen.

use crate::analyzers::health::OptionBytes;
use crate::analyzers::options::{syn_offer, syn_options};
use crate::analyzers::trace::{SegmentTrace, SegmentView};
use crate::analyzers::{handshake, Analyzers, ConnEvent, Finish};
use crate::checksum::ChecksumLedger;
use crate::decode::{Segment, ACK, FIN, RST, SYN};
use crate::duplicates::RecentSegments;
use crate::model::NS_PER_S;
use crate::model::{
    ns_to_ms, ns_to_s, Close, ConnectionRecord, Endpoint, Handshake, Keepalive, Outcome, PerSide,
    Reuse, Role, RoleRule, StateChange, SynOptions,
};
use crate::reassembly::{Stream, StreamConsumer};
use crate::seqnum::{seq_add, seq_after, seq_diff};
use crate::sources::clock::JUMP_NS;
use crate::states::{synchronized, EndpointMachine, Event, TcpState};
use crate::zeek::ZeekView;

/// RFC 7323 appendix A: the recommended alignment of the timestamps option.
const NOP_NOP_TS: [u8; 4] = [1, 1, 8, 10];

fn be32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// (TSval, TSecr) from the TCP options at `tcp_off` (RFC 7323 section 3), or None.
pub fn timestamps(data: &[u8], tcp_off: usize, opt_cap: u32) -> Option<(u32, u32)> {
    let pos = tcp_off.checked_add(20)?;
    if opt_cap >= 12 && data.get(pos..pos + 4) == Some(&NOP_NOP_TS[..]) {
        // Linux's layout after the SYN
        return Some((be32(data, pos + 4)?, be32(data, pos + 8)?));
    }
    options(data, tcp_off, opt_cap).1
}

/// The window scale shift (RFC 7323 section 2.2) and (TSval, TSecr) (section 3), each None
/// when absent. One walk over the captured option bytes only (snaplen may cut them); the
/// first well-formed instance of each counts.
pub fn options(data: &[u8], tcp_off: usize, opt_cap: u32) -> (Option<u8>, Option<(u32, u32)>) {
    let mut wscale = None;
    let mut stamp = None;
    let Some(mut pos) = tcp_off.checked_add(20) else {
        return (None, None);
    };
    let stop = pos.saturating_add(opt_cap as usize);
    while pos < stop {
        let Some(&here) = data.get(pos) else { break };
        if here == 0 {
            break;
        }
        if here == 1 {
            pos += 1;
            continue;
        }
        let size = if pos + 1 < stop {
            data.get(pos + 1).copied().unwrap_or(0)
        } else {
            0
        };
        if size < 2 {
            break;
        }
        if here == 3 && size == 3 && wscale.is_none() && pos + 3 <= stop {
            if let Some(&shift) = data.get(pos + 2) {
                wscale = Some(shift.min(14)); // RFC 7323: at most 14
            }
        } else if here == 8 && size == 10 && stamp.is_none() && pos + 10 <= stop {
            if let (Some(val), Some(ecr)) = (be32(data, pos + 2), be32(data, pos + 6)) {
                stamp = Some((val, ecr));
            }
        }
        pos += usize::from(size);
    }
    (wscale, stamp)
}

/// The payload of a segment when it was fully captured (Python's `Bytes.payload`).
fn payload<'a>(data: &'a [u8], seg: &Segment) -> Option<&'a [u8]> {
    if seg.payload_cap != seg.payload_len {
        return None;
    }
    let start = seg.payload_off.min(data.len());
    let end = seg
        .payload_off
        .saturating_add(seg.payload_len as usize)
        .min(data.len());
    data.get(start..end)
}

/// What one endpoint has shown of itself.
#[derive(Debug, Default)]
struct Side {
    stream: Stream,
    machine: EndpointMachine,
    isn: Option<u32>,
    /// SND.NXT as observed: the highest sequence number used so far, plus one.
    nxt: Option<u32>,
    /// The peer has acknowledged this side's SYN.
    syn_acked: bool,
    acked_peer_syn: bool,
    /// Sequence number this side's FIN occupies.
    fin_seq: Option<u32>,
    fin_acked: bool,
    /// Took part in the connection: sent SYN, SYN/ACK or data.
    opened: bool,
    packets: u64,
    bytes: u64,
    /// Frames shorter than their IP length says (`Segment::short_frame`).
    short_frames: u32,
    /// Last window this side advertised (unscaled); -1 none yet.
    window: i32,
    /// Window scale shift from this side's SYN.
    wscale: Option<u8>,
    /// Both SYNs carried TCP timestamps (RFC 7323 section 3.2: then every segment does).
    uses_ts: bool,
    /// Receive events seen at the capture point but not yet shown to have reached this side:
    /// (sender's TSval, ts_ns, event).
    inbox: Vec<(u32, i64, Event)>,
    /// This side's last segments, to recognise a capture duplicate.
    recent: RecentSegments,
}

/// Applies an event to one side's machine and tells the analyzers about a state entered.
fn apply(
    machine: &mut EndpointMachine,
    analyzers: &mut Analyzers,
    role: Role,
    event: Event,
    ts_ns: i64,
) -> bool {
    let changed = machine.apply(event, ts_ns);
    if changed {
        analyzers.on(&ConnEvent::StateEntered {
            role,
            state: machine.state,
            ts_ns,
        });
    }
    changed
}

/// Apply the inbox events `side` has seen: all of them, or those whose TSval it echoes
/// (RFC 7323: TSecr carries the newest TSval it received).
fn flush_inbox(side: &mut Side, analyzers: &mut Analyzers, role: Role, tsecr: Option<u32>) {
    // in place, in order: the inbox keeps its buffer and the waiting events need no new one
    let mut inbox = std::mem::take(&mut side.inbox);
    inbox.retain(|&(tsval, ts_ns, event)| {
        if tsecr.is_some_and(|ecr| seq_diff(tsval, ecr) > 0) {
            return true;
        }
        let at = side
            .machine
            .history
            .last()
            .map_or(ts_ns, |&(last, _)| ts_ns.max(last));
        apply(&mut side.machine, analyzers, role, event, at);
        false
    });
    side.inbox = inbox;
}

/// The stream consumer of one direction: hands data and gaps to the analyzers.
struct Direction<'a> {
    analyzers: &'a mut Analyzers,
    role: Role,
}

impl StreamConsumer for Direction<'_> {
    fn wants_bytes(&self) -> bool {
        self.analyzers.wants_bytes(self.role)
    }
    fn on_data(&mut self, ts_ns: i64, length: u32, data: Option<&[u8]>) {
        self.analyzers.on(&ConnEvent::StreamData {
            role: self.role,
            ts_ns,
            length,
            data,
        });
    }
    fn on_gap(&mut self, ts_ns: i64, length: u32) {
        self.analyzers.on(&ConnEvent::StreamGap {
            role: self.role,
            ts_ns,
            length,
        });
    }
}

/// Address text as Python's `ipaddress` writes it: IPv4-mapped addresses as dotted IPv4,
/// other IPv6 addresses compressed (the first longest run of two or more zero groups).
pub fn address_text(address: u128) -> String {
    if address >> 32 == 0xFFFF {
        // dotted quad by hand, a digit at a time: the fmt machinery costs more than the
        // whole record's numbers, and itoa's text a copy call per octet
        let mut text = String::with_capacity(15);
        for (i, octet) in (address as u32).to_be_bytes().into_iter().enumerate() {
            if i > 0 {
                text.push('.');
            }
            if octet >= 100 {
                text.push(char::from(b'0' + octet / 100));
            }
            if octet >= 10 {
                text.push(char::from(b'0' + octet / 10 % 10));
            }
            text.push(char::from(b'0' + octet % 10));
        }
        return text;
    }
    let groups: [u16; 8] = std::array::from_fn(|i| (address >> (112 - 16 * i)) as u16);
    let (mut best_start, mut best_len, mut start, mut len) = (0usize, 0usize, 0usize, 0usize);
    for (i, &g) in groups.iter().enumerate() {
        if g == 0 {
            if len == 0 {
                start = i;
            }
            len += 1;
            if len > best_len {
                best_start = start;
                best_len = len;
            }
        } else {
            len = 0;
        }
    }
    let hex = |gs: &[u16]| {
        gs.iter()
            .map(|g| format!("{g:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    if best_len > 1 {
        format!(
            "{}::{}",
            hex(&groups[..best_start]),
            hex(&groups[best_start + best_len..])
        )
    } else {
        hex(&groups)
    }
}

/// An address as its high and low 64-bit halves.
fn halves(address: u128) -> [u64; 2] {
    [(address >> 64) as u64, address as u64]
}

/// What feeding a segment did, for the flow table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fed {
    /// A capture duplicate (src/duplicates.rs).
    pub duplicate: bool,
    /// The client and the server were exchanged on evidence (`RoleRule::Request`).
    pub swapped: bool,
}

/// A connection from its first segment to its last, on one 4-tuple.
#[derive(Debug)]
pub struct Connection {
    pub id: u64,
    /// Addresses and ports of the client and of the server, apart: an (address, port) pair
    /// pads to 32 bytes, and a connection of 1 KB or more is a large chunk to malloc, whose
    /// every allocation consolidates the fast bins first (glibc). Addresses as two 64-bit
    /// halves: a `u128` would align the connection (and the flow table's slot holding it)
    /// to 16 bytes, and the slot past 1000 bytes.
    addresses: [[u64; 2]; 2],
    ports: [u16; 2],
    rule: RoleRule,
    /// Ids start at 1: a non-zero id keeps the option in 8 bytes, not 16.
    previous_id: Option<std::num::NonZeroU64>,
    pub first_ns: i64,
    pub last_ns: i64,
    sides: [Side; 2],
    analyzers: Analyzers,
    rst_seen: bool,
    /// The states were assumed: the capture began mid-connection.
    assumed: bool,
    /// The client has sent a SYN (without ACK); `Some(true)` when its latest carried TCP
    /// timestamps.
    last_syn_stamped: Option<bool>,
    simultaneous_open: bool,
    handshake_completed: bool,
    /// The first payload was looked at for evidence of the roles (`RoleRule::Request`).
    payload_seen: bool,
    /// Seconds the previous segment's timestamp lay ahead of (or behind) `last_ns`, the
    /// time it counted for (`clock`); 0 for a sane capture. Narrow: it fits the padding.
    raw_ahead_s: i32,
    /// What few connections have (trace, Zeek view, tunnels): None for plain traffic, so
    /// it pays one pointer in the slot and one branch per segment.
    extras: Option<Box<Extras>>,
}

/// The optional parts of a connection, behind one pointer: each would otherwise take 8
/// bytes of every flow-table slot, and a slot past 1000 bytes is a large chunk to glibc's
/// malloc (see `flows::tests::a_slot_is_a_small_chunk_for_malloc`).
#[derive(Debug, Default)]
struct Extras {
    /// Zeek's view (`--zeek`), inline: a --zeek run allocates once per connection.
    zeek: Option<ZeekView>,
    /// The segment trace, for the connections a run traces (`ladder`, `report`).
    trace: Option<Box<SegmentTrace>>,
    /// The tunnels the connection came through, outermost first.
    encapsulation: Option<crate::decode::Encapsulation>,
}

impl Connection {
    /// Take the heap buffers of `old`, a connection whose record is made, that this one
    /// would allocate again (see `crate::recycle`): the flow table's spare slots pass them on.
    pub fn reuse_buffers(&mut self, old: &mut Connection) {
        for (side, old_side) in self.sides.iter_mut().zip(&mut old.sides) {
            crate::recycle::reuse_vec(&mut side.inbox, &mut old_side.inbox);
        }
        self.analyzers.reuse_buffers(&mut old.analyzers);
    }

    /// The id of the connection this one followed on its 4-tuple (port reuse).
    pub fn previous_id(&self) -> Option<u64> {
        self.previous_id.map(std::num::NonZeroU64::get)
    }

    pub fn new(
        id: u64,
        client: (u128, u16),
        server: (u128, u16),
        rule: RoleRule,
        first_ns: i64,
        previous_id: Option<u64>,
    ) -> Self {
        let side = || Side {
            window: -1,
            ..Side::default()
        };
        Connection {
            id,
            addresses: [halves(client.0), halves(server.0)],
            ports: [client.1, server.1],
            rule,
            previous_id: previous_id.and_then(std::num::NonZeroU64::new),
            first_ns,
            last_ns: first_ns,
            sides: [side(), side()],
            analyzers: Analyzers::default(),
            rst_seen: false,
            assumed: rule == RoleRule::Port,
            last_syn_stamped: None,
            simultaneous_open: false,
            handshake_completed: false,
            payload_seen: false,
            raw_ahead_s: 0,
            extras: None,
        }
    }

    fn extras_mut(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// Trace this connection's segments from now on.
    pub fn set_trace(&mut self, trace: Box<SegmentTrace>) {
        self.extras_mut().trace = Some(trace);
    }

    /// The segment trace, taken out (None when the connection is not traced).
    pub fn take_trace(&mut self) -> Option<Box<SegmentTrace>> {
        self.extras.as_mut().and_then(|x| x.trace.take())
    }

    /// Record the tunnels the connection came through (nothing for plain traffic).
    pub fn set_encapsulation(&mut self, path: Option<crate::decode::Encapsulation>) {
        if path.is_some() {
            self.extras_mut().encapsulation = path;
        }
    }

    /// Give this connection Zeek's view (`--zeek`), from its first segment on.
    /// `server_ports`: Zeek's likely server ports when not its default set (sorted).
    pub fn enable_zeek(&mut self, server_ports: Option<&[u16]>) {
        let likely = crate::zeek::server_port_flags(self.ports, server_ports);
        self.extras_mut().zeek = Some(ZeekView::new(self.ports, likely));
    }

    /// Whether the connection keeps Zeek's view.
    pub fn has_zeek(&self) -> bool {
        self.extras.as_ref().is_some_and(|x| x.zeek.is_some())
    }

    /// Hand the Zeek view the bad-checksum segments of this 4-tuple up to `until_ns` (all
    /// when None), in capture order: Zeek drops them but writes their `C`/`c` letter.
    pub fn replay_bad_checksums(&mut self, ledger: &mut ChecksumLedger, until_ns: Option<i64>) {
        let ([a, b], p) = (self.endpoint_addresses(), self.ports);
        let Some(zeek) = self.extras.as_mut().and_then(|x| x.zeek.as_mut()) else {
            return;
        };
        let keys = [(a, p[0], b, p[1]), (b, p[1], a, p[0])];
        while let Some((role, ts_ns, flags)) = ledger.pop(&keys, until_ns) {
            zeek.bad_checksum(role, ts_ns, flags);
        }
    }

    /// The client's and the server's addresses.
    fn endpoint_addresses(&self) -> [u128; 2] {
        self.addresses
            .map(|[high, low]| u128::from(high) << 64 | u128::from(low))
    }

    /// A side's address and port.
    pub fn endpoint(&self, role: Role) -> (u128, u16) {
        let i = role.index();
        (self.endpoint_addresses()[i], self.ports[i])
    }

    // ---- life-cycle questions the flow table asks

    /// Both endpoints are done (CLOSED or TIME_WAIT) after something happened.
    pub fn ended(&mut self) -> bool {
        if !self.sides[0].inbox.is_empty() || !self.sides[1].inbox.is_empty() {
            self.flush();
        }
        let done = |s: &Side| matches!(s.machine.state, TcpState::Closed | TcpState::TimeWait);
        let [c, s] = &self.sides;
        done(c) && done(s) && !(c.machine.history.is_empty() && s.machine.history.is_empty())
    }

    /// Deliver every waiting receive event: nothing more will come from either side.
    pub fn flush(&mut self) {
        for role in [Role::Client, Role::Server] {
            let side = &mut self.sides[role.index()];
            if !side.inbox.is_empty() {
                flush_inbox(side, &mut self.analyzers, role, None);
            }
        }
    }

    /// True when a SYN (no ACK) from `role` with `isn` must start a new connection.
    pub fn accepts_new_syn(&mut self, role: Role, isn: u32) -> bool {
        if self.ended()
            || self
                .sides
                .iter()
                .any(|s| s.machine.state == TcpState::TimeWait)
        {
            return true;
        }
        if self.rst_seen
            && self
                .sides
                .iter()
                .any(|s| s.machine.state == TcpState::Closed && !s.machine.history.is_empty())
        {
            return true;
        }
        let (mine, peer) = (&self.sides[role.index()], &self.sides[role.peer().index()]);
        // an unanswered attempt followed by a SYN with another ISN is a new connect()
        mine.isn.is_some_and(|i| i != isn) && peer.packets == 0
    }

    /// A capture that begins after the SYN: assume what the first segment implies.
    pub fn start_assumed(&mut self, ts_ns: i64, ack: u32) {
        if self.rule == RoleRule::Synack {
            let client = &mut self.sides[Role::Client.index()];
            client.machine.start(ts_ns, TcpState::SynSent);
            client.isn = Some(seq_add(ack, -1));
            client.nxt = Some(ack);
            client.opened = true;
            client.stream.start(ack);
            self.analyzers.on(&ConnEvent::StateEntered {
                role: Role::Client,
                state: TcpState::SynSent,
                ts_ns,
            });
            return;
        }
        for role in [Role::Client, Role::Server] {
            let side = &mut self.sides[role.index()];
            side.machine.start(ts_ns, TcpState::Established);
            side.syn_acked = true;
            side.acked_peer_syn = true;
            side.opened = true;
            self.analyzers.on(&ConnEvent::StateEntered {
                role,
                state: TcpState::Established,
                ts_ns,
            });
        }
    }

    // ---- the segment path

    /// One segment from `role`; `data` is the buffer its offsets point into.
    pub fn segment(&mut self, role: Role, seg: &Segment, data: &[u8]) -> Fed {
        if !self.payload_seen && seg.payload_len != 0 {
            self.payload_seen = true;
            if self.rule == RoleRule::Port && self.roles_from_payload(role, seg, data) {
                let duplicate = self.segment_in_role(role.peer(), seg, data);
                return Fed {
                    duplicate,
                    swapped: true,
                };
            }
        }
        Fed {
            duplicate: self.segment_in_role(role, seg, data),
            swapped: false,
        }
    }

    /// The first payload of a capture that began mid-connection: an HTTP request line
    /// marks its sender as the client, a status line as the server, before the port rule
    /// (which only guessed). True when that exchanged the roles. Nothing that depends on
    /// the roles has happened yet but the assumed (symmetric) states and bare ACKs; a
    /// connection that saw a FIN or a RST keeps its roles.
    #[cold]
    fn roles_from_payload(&mut self, role: Role, seg: &Segment, data: &[u8]) -> bool {
        let Some(sender) = payload(data, seg).and_then(crate::analyzers::http::start_line_sender)
        else {
            return false;
        };
        let closing = self.rst_seen || self.sides.iter().any(|s| s.fin_seq.is_some());
        if closing {
            return false;
        }
        self.rule = if sender == Role::Client {
            RoleRule::Request
        } else {
            RoleRule::Response
        };
        if sender == role {
            return false;
        }
        self.swap_roles();
        true
    }

    /// Exchange client and server: addresses, ports, both sides' state, and the views
    /// kept by role. The analyzers start over from the assumed states: before the first
    /// payload they saw only those and bare ACKs.
    fn swap_roles(&mut self) {
        self.addresses.swap(0, 1);
        self.ports.swap(0, 1);
        self.sides.swap(0, 1);
        self.analyzers = Analyzers::default();
        for role in [Role::Client, Role::Server] {
            let side = &self.sides[role.index()];
            if let Some(&(ts_ns, state)) = side.machine.history.first() {
                self.analyzers
                    .on(&ConnEvent::StateEntered { role, state, ts_ns });
            }
        }
        if let Some(extras) = self.extras.as_deref_mut() {
            if let Some(zeek) = &mut extras.zeek {
                zeek.swap_roles();
            }
            if let Some(trace) = &mut extras.trace {
                trace.swap_roles();
            }
            if let Some(path) = &extras.encapsulation {
                // the outer headers as the (new) client sent them
                let reversed = path.iter().map(crate::decode::TunnelLayer::reversed);
                extras.encapsulation = Some(std::sync::Arc::new(reversed.collect()));
            }
        }
    }

    /// The time a segment captured at `raw_ns` counts for. The connection's clock never
    /// goes back: an earlier timestamp counts as the previous segment's time (no negative
    /// duration). A timestamp more than a day after the previous segment's (a damaged
    /// one: a flipped bit puts a frame decades ahead) does not move it either; the next
    /// segment, back to the capture's time, goes on from there, and one more than a day
    /// after the leap is taken as it is. src/sources/clock.rs warns about both.
    #[inline(always)]
    fn clock(&mut self, role: Role, raw_ns: i64) -> i64 {
        // the common case: a sane step from a segment that counted for its own time
        if self.raw_ahead_s == 0 && (0..=JUMP_NS).contains(&raw_ns.wrapping_sub(self.last_ns)) {
            return raw_ns;
        }
        self.clock_step(role, raw_ns)
    }

    /// `clock` when time went back or leapt (or the previous segment's did).
    #[cold]
    fn clock_step(&mut self, role: Role, raw_ns: i64) -> i64 {
        let previous_raw = self
            .last_ns
            .saturating_add(i64::from(self.raw_ahead_s) * NS_PER_S);
        let counted = if raw_ns.saturating_sub(previous_raw) > JUMP_NS {
            self.last_ns
        } else {
            raw_ns.max(self.last_ns)
        };
        let ahead = raw_ns.saturating_sub(counted) / NS_PER_S;
        self.raw_ahead_s = ahead.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        if counted < raw_ns.saturating_sub(JUMP_NS) {
            let ts_ns = counted;
            self.analyzers.on(&ConnEvent::ClockLeap { role, ts_ns });
        }
        counted
    }

    /// `segment` once the roles are settled. True when it is a capture duplicate
    /// (src/duplicates.rs): counted as such and left out of the rest.
    fn segment_in_role(&mut self, role: Role, seg: &Segment, data: &[u8]) -> bool {
        let (me_i, peer_i) = (role.index(), role.peer().index());
        let peer_role = role.peer();
        let ts_ns = self.clock(role, seg.ts_ns);
        let flags = seg.flags;
        let (seq, ack, plen) = (seg.seq, seg.ack, seg.payload_len);
        let previous_ns = self.last_ns;
        self.last_ns = ts_ns;
        if let Some(zeek) = self.extras.as_mut().and_then(|x| x.zeek.as_mut()) {
            // Zeek's view depends on the segment alone, not on the state below (nor on
            // the clock above: Zeek takes the capture's timestamps as they are)
            let at = seg.ts_ns;
            zeek.segment(role, at, flags, seq, ack, seg.window, plen, seg.ip_len);
        }
        if self.sides[me_i].recent.is_copy(seg, data) {
            if flags & (SYN | RST) == SYN {
                let with_ack = flags & ACK != 0;
                let options = syn_options(data, seg.tcp_off, seg.opt_cap, flags, plen);
                (self.analyzers).on(&ConnEvent::SynCopy {
                    role,
                    ts_ns,
                    with_ack,
                    options,
                });
            }
            return true;
        }
        self.analyzers.on(&ConnEvent::Arrived { role, ts_ns });
        {
            let me = &mut self.sides[me_i];
            me.packets += 1;
            me.bytes += u64::from(plen);
            me.short_frames += u32::from(seg.short_frame);
            if !me.inbox.is_empty() {
                let echo = if flags & RST == 0 {
                    timestamps(data, seg.tcp_off, seg.opt_cap)
                } else {
                    None
                };
                flush_inbox(me, &mut self.analyzers, role, echo.map(|e| e.1));
            }
        }
        if flags & RST != 0 {
            self.rst(role, ts_ns, flags, seq, ack);
            self.traced(role, seg, 0);
            return false;
        }
        let syn = flags & SYN != 0;
        let fin = flags & FIN != 0;
        let has_ack = flags & ACK != 0;

        if syn {
            let (offered, stamp) = syn_offer(data, seg.tcp_off, seg.opt_cap, flags, plen);
            let me = &mut self.sides[me_i];
            if me.wscale.is_none() {
                me.wscale = offered.wscale.map(|shift| shift.min(14)); // RFC 7323: at most 14
            }
            self.syn(role, ts_ns, seq, has_ack, stamp, offered);
            if has_ack && stamp.is_some() && self.last_syn_stamped == Some(true) {
                self.sides[0].uses_ts = true;
                self.sides[1].uses_ts = true;
            }
        }

        // the ACK covers payload of the peer's that the capture never saw
        let mut ack_unseen = false;
        if has_ack {
            let [a, b] = &mut self.sides;
            let (me, peer) = if me_i == 0 { (a, b) } else { (b, a) };
            let analyzers = &mut self.analyzers;
            if !me.acked_peer_syn {
                if peer.isn.is_none() && !syn && me.machine.state == TcpState::SynSent {
                    // the peer's SYN/ACK is not in the capture, but this ACK answers it
                    peer.isn = Some(ack.wrapping_sub(1));
                    peer.nxt = Some(ack);
                    peer.stream.start(ack);
                }
                if peer.isn.is_some_and(|isn| seq_after(ack, isn)) {
                    me.acked_peer_syn = true;
                    if !syn {
                        apply(&mut me.machine, analyzers, role, Event::SndAckOfSyn, ts_ns);
                        if role == Role::Client {
                            let stamp = timestamps(data, seg.tcp_off, seg.opt_cap);
                            analyzers.on(&ConnEvent::HandshakeCompleted { ts_ns, stamp });
                            self.handshake_completed = true;
                        }
                    }
                    if !peer.syn_acked {
                        peer.syn_acked = true;
                        deliver(
                            peer,
                            analyzers,
                            peer_role,
                            Event::RcvAckOfSyn,
                            ts_ns,
                            syn,
                            data,
                            seg,
                        );
                    }
                }
            }
            let fin_seq = peer.fin_seq;
            if let Some(fs) = fin_seq {
                if !peer.fin_acked && seq_after(ack, fs) {
                    peer.fin_acked = true;
                    analyzers.on(&ConnEvent::FinAcked {
                        role: peer_role,
                        ts_ns,
                    });
                    // proof it received the FIN
                    apply(&mut me.machine, analyzers, role, Event::SndAckOfFin, ts_ns);
                    deliver(
                        peer,
                        analyzers,
                        peer_role,
                        Event::RcvAckOfFin,
                        ts_ns,
                        syn,
                        data,
                        seg,
                    );
                }
            }
            if let Some(expected) = peer.stream.next_seq {
                if seq_after(ack, expected) {
                    // acknowledged beyond what we saw: the capture missed data (a FIN is not data)
                    let upto = match fin_seq {
                        Some(fs) if seq_diff(ack, fs) > 0 => fs,
                        _ => ack,
                    };
                    ack_unseen = seq_after(upto, expected);
                    let mut consumer = Direction {
                        analyzers,
                        role: peer_role,
                    };
                    peer.stream.acked(&mut consumer, ts_ns, upto);
                }
            }
        }
        let window_before = std::mem::replace(&mut self.sides[me_i].window, seg.window.into());
        let nxt = self.sides[me_i].nxt;
        let peer_window = self.sides[peer_i].window;
        self.analyzers.on(&ConnEvent::Segment {
            role,
            ts_ns,
            previous_ns,
            flags,
            seq,
            ack,
            payload_len: plen,
            snd_nxt: nxt,
            peer_window,
        });
        let options = OptionBytes {
            data,
            tcp_off: seg.tcp_off,
            len: seg.opt_cap,
        };
        let verdict = self.analyzers.health.segment(
            me_i,
            ts_ns,
            flags,
            seq,
            ack,
            plen,
            nxt,
            ack_unseen,
            seg.window,
            window_before,
            peer_window,
            options,
        );
        (self.analyzers.rtt).segment(
            me_i,
            ts_ns,
            flags,
            seq,
            ack,
            plen,
            nxt,
            peer_window,
            options,
        );
        if plen != 0 {
            let me = &mut self.sides[me_i];
            me.opened = true;
            let start = if syn { seq.wrapping_add(1) } else { seq };
            let mut consumer = Direction {
                analyzers: &mut self.analyzers,
                role,
            };
            me.stream
                .segment(&mut consumer, ts_ns, start, plen, payload(data, seg));
        }

        let me = &mut self.sides[me_i];
        let mut end = seq.wrapping_add(plen).wrapping_add(u32::from(syn));
        if fin {
            // A FIN the sender's state cannot send (from SYN_SENT, say) is an anomaly, counted
            // by the machine: it is not this side's close, and nothing acks it. A second FIN
            // (retransmitted or not) changes nothing.
            if me.fin_seq.is_none()
                && apply(
                    &mut me.machine,
                    &mut self.analyzers,
                    role,
                    Event::SndFin,
                    ts_ns,
                )
            {
                me.fin_seq = Some(end);
                self.analyzers.on(&ConnEvent::Fin { role, ts_ns });
            }
            end = end.wrapping_add(1);
        }
        if nxt.is_none_or(|n| seq_after(end, n)) {
            me.nxt = Some(end);
        }
        self.traced(role, seg, verdict);
        if self.simultaneous_open
            && !self.handshake_completed
            && self.last_syn_stamped.is_some()
            && self.sides.iter().all(|s| synchronized(s.machine.state))
        {
            // simultaneous open completes with the segment that synchronizes the second side
            let stamp = timestamps(data, seg.tcp_off, seg.opt_cap);
            self.analyzers
                .on(&ConnEvent::HandshakeCompleted { ts_ns, stamp });
            self.handshake_completed = true;
        }
        false
    }

    /// Show a processed segment, and the health analyzer's verdict on it, to the trace, if
    /// this connection has one. The test inline and the showing apart: as one function it
    /// was a call on every segment (18 M instructions of the 1M-packet run for a feature few
    /// runs use).
    #[inline(always)]
    fn traced(&mut self, role: Role, seg: &Segment, verdict: u16) {
        if self.extras.is_some() {
            self.show_traced(role, seg, verdict);
        }
    }

    #[cold]
    fn show_traced(&mut self, role: Role, seg: &Segment, verdict: u16) {
        if let Some(trace) = self.extras.as_mut().and_then(|x| x.trace.as_deref_mut()) {
            let [c, s] = &self.sides;
            trace.segment(&SegmentView {
                role,
                ts_ns: seg.ts_ns,
                flags: seg.flags,
                seq: seg.seq,
                ack: seg.ack,
                window: seg.window,
                payload_len: seg.payload_len,
                isn: [c.isn, s.isn],
                wscale: [c.wscale, s.wscale],
                machines: [&c.machine, &s.machine],
                verdict,
            });
        }
    }

    fn syn(
        &mut self,
        role: Role,
        ts_ns: i64,
        seq: u32,
        has_ack: bool,
        stamp: Option<(u32, u32)>,
        options: SynOptions,
    ) {
        let me = &mut self.sides[role.index()];
        if me.isn.is_none() {
            me.isn = Some(seq);
            me.nxt = Some(seq.wrapping_add(1));
            me.opened = true;
            me.stream.start(seq.wrapping_add(1));
        }
        self.analyzers.on(&ConnEvent::Syn {
            role,
            ts_ns,
            with_ack: has_ack,
            stamp,
            options,
        });
        if !has_ack {
            if role == Role::Client {
                self.last_syn_stamped = Some(stamp.is_some());
            } else {
                self.simultaneous_open = true;
            }
            apply(
                &mut me.machine,
                &mut self.analyzers,
                role,
                Event::SndSyn,
                ts_ns,
            );
            return;
        }
        apply(
            &mut me.machine,
            &mut self.analyzers,
            role,
            Event::SndSynack,
            ts_ns,
        );
        if me.syn_acked && me.machine.state == TcpState::SynRcvd {
            // Simultaneous open (RFC 793 figure 8): the peer's SYN/ACK crossed ours, so the
            // ACK of our SYN it carried takes effect now that we are in SYN_RCVD.
            apply(
                &mut me.machine,
                &mut self.analyzers,
                role,
                Event::RcvAckOfSyn,
                ts_ns,
            );
        }
    }

    fn rst(&mut self, role: Role, ts_ns: i64, flags: u16, seq: u32, ack: u32) {
        let peer_role = role.peer();
        let [a, b] = &mut self.sides;
        let (me, peer) = if role == Role::Client { (a, b) } else { (b, a) };
        // whatever reached the receiver before the RST happened before it: apply it first,
        // or a late flush would act on an endpoint the RST already closed
        if !peer.inbox.is_empty() {
            flush_inbox(peer, &mut self.analyzers, peer_role, None);
        }
        self.rst_seen = true;
        let (sender, receiver) = (me.machine.state, peer.machine.state);
        self.analyzers.on(&ConnEvent::Rst {
            role,
            ts_ns,
            sender,
            receiver,
            sender_opened: me.opened,
            assumed: self.assumed,
            seq,
            flags,
        });
        apply(
            &mut me.machine,
            &mut self.analyzers,
            role,
            Event::SndRst,
            ts_ns,
        );
        // RFC 9293 section 3.10.7.3: in SYN_SENT a RST counts only if it acknowledges the SYN
        let acceptable = receiver != TcpState::SynSent
            || (flags & ACK != 0 && peer.isn.is_some_and(|isn| ack == isn.wrapping_add(1)));
        if acceptable {
            apply(
                &mut peer.machine,
                &mut self.analyzers,
                peer_role,
                Event::RcvRst,
                ts_ns,
            );
        }
    }

    // ---- the record

    /// Reads a word of each part that `record` reads first and that lies elsewhere in
    /// memory (the state histories, the handshake's sightings, the SYN options' box), and
    /// folds them into a value the caller discards. The engine calls it on the next ended
    /// connection before recording the current one: a connection is recorded long after its
    /// last segment, all of it out of the CPU caches, and these loads then miss while other
    /// work goes on instead of one after the other in `record` (a software prefetch
    /// without `unsafe`).
    pub fn warm(&self) -> i64 {
        let first_change = |m: &EndpointMachine| m.history.first().map_or(0, |&(ts, _)| ts);
        let h = &self.analyzers.handshake;
        let first_sighting = |l: &[handshake::Sighting]| l.first().map_or(0, |s| s.ts_ns);
        let [c, s] = &self.sides;
        first_change(&c.machine)
            ^ first_change(&s.machine)
            ^ first_sighting(&h.syns)
            ^ first_sighting(&h.synacks)
            ^ (c.inbox.len() + s.inbox.len()) as i64
            ^ i64::from(self.analyzers.options.warm())
    }

    /// The connection record (`msl_s`: the maximum segment lifetime, for TIME_WAIT's end),
    /// made once, at the connection's end: the state histories move into it.
    pub fn record(&mut self, msl_s: f64) -> ConnectionRecord {
        self.flush();
        for role in [Role::Client, Role::Server] {
            let stream = &mut self.sides[role.index()].stream;
            if stream.has_pending() {
                let mut consumer = Direction {
                    analyzers: &mut self.analyzers,
                    role,
                };
                stream.close(&mut consumer, self.last_ns);
            }
        }
        let ends = [self.endpoint(Role::Client), self.endpoint(Role::Server)];
        let [c, s] = &mut self.sides;
        // converted in the history's own buffer (a (i64, state) pair and a StateChange have
        // one size and alignment: std collects a mapped `vec::IntoIter` in place), instead
        // of a new vector per side and the history's freed
        let changes = |m: &mut EndpointMachine| {
            std::mem::take(&mut m.history)
                .into_iter()
                .map(|(ts, state)| StateChange {
                    ts: ns_to_s(ts),
                    state,
                })
                .collect()
        };
        let endpoint = |(ip, port): (u128, u16)| Endpoint {
            ip: address_text(ip),
            port,
        };
        let mut record = ConnectionRecord {
            id: self.id,
            client: endpoint(ends[0]),
            server: endpoint(ends[1]),
            role_rule: self.rule,
            previous_id: self.previous_id.map(std::num::NonZeroU64::get),
            first_ts: ns_to_s(self.first_ns),
            last_ts: ns_to_s(self.last_ns),
            duration_ms: ns_to_ms(self.last_ns - self.first_ns),
            outcome: Outcome::Open,
            handshake: Handshake {
                complete: false,
                syn_to_synack_ms: None,
                synack_to_ack_ms: None,
                rtt_ms: None,
                setup_ms: None,
                syn_retransmits: 0,
                synack_retransmits: 0,
                matched_by: None,
                ambiguity: None,
                simultaneous_open: false,
            },
            options: PerSide::new(None, None),
            close: Close {
                initiator: None,
                time_wait: None,
                time_wait_ts: None,
                time_wait_until: None,
                fin_ts: PerSide::new(None, None),
            },
            half_close: None,
            rst: None,
            probe: None,
            keepalive: Keepalive::default(),
            reuse: Reuse::default(),
            states: PerSide::new(changes(&mut c.machine), changes(&mut s.machine)),
            final_state: PerSide::new(c.machine.state, s.machine.state),
            packets: PerSide::new(c.packets, s.packets),
            bytes: PerSide::new(c.bytes, s.bytes),
            unique_bytes: PerSide::new(
                c.stream.delivered + c.stream.gap_bytes,
                s.stream.delivered + s.stream.gap_bytes,
            ),
            retransmitted_bytes: PerSide::new(c.stream.duplicate, s.stream.duplicate),
            gap_bytes: PerSide::new(c.stream.gap_bytes, s.stream.gap_bytes),
            anomalies: PerSide::new(
                u64::from(c.machine.anomalies),
                u64::from(s.machine.anomalies),
            ),
            duplicates: PerSide::new(
                u64::from(c.recent.duplicates),
                u64::from(s.recent.duplicates),
            ),
            short_frames: PerSide::new(u64::from(c.short_frames), u64::from(s.short_frames)),
            retransmissions: PerSide::default(),
            zero_window: PerSide::default(),
            rtt: PerSide::default(),
            throughput: PerSide::default(),
            encapsulation: self.extras.as_ref().and_then(|x| x.encapsulation.clone()),
            file: None,
            zeek: (self.extras.as_mut())
                .and_then(|x| x.zeek.as_mut())
                .map(|z| Box::new(z.result())),
        };
        let last_ns = self.last_ns;
        self.analyzers
            .finish(&mut record, &Finish { msl_s, last_ns });
        record
    }
}

/// A receive event for `to`: now, or once `to` shows it has seen this segment.
#[allow(clippy::too_many_arguments)]
fn deliver(
    to: &mut Side,
    analyzers: &mut Analyzers,
    role: Role,
    event: Event,
    ts_ns: i64,
    syn: bool,
    data: &[u8],
    seg: &Segment,
) {
    let stamp = if to.uses_ts && !syn {
        timestamps(data, seg.tcp_off, seg.opt_cap)
    } else {
        None
    };
    match stamp {
        None => {
            apply(&mut to.machine, analyzers, role, event, ts_ns);
        }
        Some((tsval, _)) => {
            // one or two events wait at a time in a usual life (the ACK of a SYN, of a FIN):
            // a buffer of two, not the default four, held as long as the connection
            if to.inbox.capacity() == 0 {
                first_inbox(&mut to.inbox);
            }
            to.inbox.push((tsval, ts_ns, event));
        }
    }
}

/// Out of line, so that `deliver` stays small enough to be inlined.
#[cold]
#[inline(never)]
fn first_inbox(inbox: &mut Vec<(u32, i64, Event)>) {
    inbox.reserve_exact(2);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_a_small_chunk_for_malloc() {
        // glibc serves requests up to 1000 bytes from its small bins; a larger one
        // consolidates the fast bins on every allocation
        assert!(std::mem::size_of::<Connection>() <= 1000);
    }

    #[test]
    fn dotted_quads_have_every_digit() {
        let octets = [0u8, 1, 9, 10, 42, 99, 100, 101, 199, 200, 250, 255];
        for a in octets {
            for b in octets {
                let v4 = std::net::Ipv4Addr::new(a, b, 255 - a, b / 2);
                let mapped = u128::from(v4.to_ipv6_mapped());
                assert_eq!(address_text(mapped), v4.to_string());
            }
        }
    }

    #[test]
    fn addresses_are_written_as_python_does() {
        let v6 = |s: &str| u128::from(s.parse::<std::net::Ipv6Addr>().unwrap());
        assert_eq!(address_text(v6("::ffff:10.0.0.1")), "10.0.0.1");
        assert_eq!(address_text(0), "::");
        assert_eq!(address_text(1), "::1");
        assert_eq!(
            address_text(v6("2001:db8:0:0:1:0:0:1")),
            "2001:db8::1:0:0:1"
        );
        assert_eq!(
            address_text(v6("2001:db8:0:1:1:1:1:1")),
            "2001:db8:0:1:1:1:1:1"
        );
        assert_eq!(address_text(v6("fe80::")), "fe80::");
        assert_eq!(address_text(v6("::1.2.3.4")), "::102:304");
    }

    #[test]
    fn options_walk_finds_wscale_and_timestamps() {
        let mut data = vec![0u8; 20];
        // MSS, SACK permitted, TS, NOP, WS
        data.extend_from_slice(&[
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9, 1, 3, 3, 20,
        ]);
        assert_eq!(options(&data, 0, 20), (Some(14), Some((7, 9))));
        assert_eq!(timestamps(&data, 0, 20), Some((7, 9)));
        // cut by snaplen in the middle of the timestamps option
        assert_eq!(options(&data, 0, 10), (None, None));
        // NOP NOP TS layout
        let mut fast = vec![0u8; 20];
        fast.extend_from_slice(&[1, 1, 8, 10, 0, 0, 1, 0, 0, 0, 2, 0]);
        assert_eq!(timestamps(&fast, 0, 12), Some((256, 512)));
        // a zero-size option ends the walk; offsets beyond the buffer are no panic
        assert_eq!(options(&[0u8; 22], 0, 2), (None, None));
        assert_eq!(options(&data, 1000, 40), (None, None));
        assert_eq!(timestamps(&data, usize::MAX, 40), None);
    }
}
