//! The flow table: 4-tuples to connections, port reuse, eviction.
//!
//! A 4-tuple maps to its current connection. A SYN on a tuple whose connection has ended (or
//! holds TIME_WAIT, or was reset, or is an unanswered attempt with another ISN) ends that
//! connection and starts a new one: port reuse is reported through `previous_id`, never
//! merged. Ended connections linger a little (capture time) so that late duplicates and a
//! RST hitting TIME_WAIT still land on them; then they are emitted. The table is capped: past
//! `max_flows`, the connections idle the longest are evicted (emitted as they are) and
//! counted.
//!
//! Order is part of the contract (it decides the order records are emitted): the table keeps
//! insertion order as Python's dict does (a key deleted and added again goes to the end).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::{self, AssertUnwindSafe};

use crate::analyzers::trace::{SegmentTrace, TraceSelect};
use crate::checksum::ChecksumLedger;
use crate::connection::{address_text, Connection};
use crate::decode::encap::{lookup, SharedTunnels};
use crate::decode::{Segment, ACK, SYN};
use crate::model::{Role, RoleRule};

mod spare;

const NS: f64 = 1e9;
const WELL_KNOWN: u16 = 1024;
const SWEEP_INTERVAL_NS: i64 = 500_000_000;
/// Flows allowed over `max_flows` between two evictions.
pub const CAP_SLACK: usize = 1024;
/// Entries the index and the tombstone map are made for: a busy capture's 10-20k held
/// connections (bench.pcap: 16k, and as many tombstones) without the five or six
/// doublings that each touch a fresh table and move every entry across (14 % of a 1M run's
/// page faults). hashbrown writes only the control bytes of a new table (32 KiB here);
/// its buckets' pages are touched as entries land, so a small capture pays ~16 faults.
const INITIAL_FLOWS: usize = 16 << 10;
/// Segments per `feed` call the engine hands over at most.
pub const FEED_SLICE: usize = 8192;

/// Options of the flow table.
#[derive(Clone, Copy, Debug)]
pub struct FlowOptions {
    /// How long (capture time) an ended connection stays to catch late segments.
    pub linger_s: f64,
    pub max_flows: usize,
    /// How long a 4-tuple remembers its emitted connection (2 * MSL): late segments are
    /// counted in `after_close` instead of opening a ghost connection, and a new SYN links
    /// back to it through previous_id.
    pub tombstone_s: f64,
    /// Emit connections that have not ended but saw no segment for this long.
    pub idle_timeout_s: Option<f64>,
    /// Connections keep Zeek's view (`--zeek`).
    pub zeek: bool,
}

impl Default for FlowOptions {
    fn default() -> Self {
        FlowOptions {
            linger_s: 5.0,
            max_flows: 1_000_000,
            tombstone_s: 60.0,
            idle_timeout_s: None,
            zeek: false,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowTableStats {
    pub connections: u64,
    pub evicted_for_capacity: u64,
    pub idle_evicted: u64,
    pub port_reuse: u64,
    /// Segments that arrived after their connection was emitted (late duplicates).
    pub after_close: u64,
    /// Connections dropped because their analysis failed (a panic: a bug); see `quarantine`.
    pub failed_connections: u64,
    /// Times the clock was set back (timestamps more than `CLOCK_JUMP_NS` behind it).
    pub clock_jumps: u64,
    /// Segments recognised as capture duplicates (src/duplicates.rs).
    pub duplicates: u64,
}

/// The ids (and previous ids) waiting for their continuation on one 4-tuple (several
/// only if it is in several tunnels), oldest first.
type Continuations = VecDeque<(u64, Option<u64>)>;

/// A connection still open at the end of a run, handed on to the next (`--resume`): its
/// flow (canonical 4-tuple, as `FlowKey`), first segment's time, id and previous id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldFlow {
    pub lo: u128,
    pub hi: u128,
    pub ports: u32,
    pub first_ns: i64,
    pub id: u64,
    pub previous_id: Option<u64>,
}

/// How far behind the clock a slice's latest timestamp must be to set the clock back to
/// it: far beyond any reordering a capture or a merge of captures produces.
pub const CLOCK_JUMP_NS: i64 = 3_600 * 1_000_000_000;

/// A 4-tuple in canonical order: side 0 is the lower (address, port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub lo: u128,
    pub hi: u128,
    /// Both ports: the lower side's in the high 16 bits.
    pub ports: u32,
    /// The tunnel path (`Segment::tunnel`, 0 for plain traffic): the same 4-tuple in two
    /// tunnels is two flows.
    pub tunnel: u32,
}

impl FlowKey {
    fn endpoint(&self, side: usize) -> (u128, u16) {
        if side == 0 {
            (self.lo, (self.ports >> 16) as u16)
        } else {
            (self.hi, self.ports as u16)
        }
    }
}

/// Whether the segment's source is the lower (address, port) of its 4-tuple: the canonical
/// order both directions of a flow share.
pub fn canonical_first(seg: &Segment) -> bool {
    seg.src < seg.dst || (seg.src == seg.dst && seg.sport <= seg.dport)
}

fn flow_key(seg: &Segment, src_first: bool) -> FlowKey {
    if src_first {
        FlowKey {
            lo: seg.src,
            hi: seg.dst,
            ports: u32::from(seg.sport) << 16 | u32::from(seg.dport),
            tunnel: seg.tunnel >> 1,
        }
    } else {
        FlowKey {
            lo: seg.dst,
            hi: seg.src,
            ports: u32::from(seg.dport) << 16 | u32::from(seg.sport),
            tunnel: seg.tunnel >> 1,
        }
    }
}

/// Mid-connection: the well-known (else the lower) port is the server's.
fn client_by_port(key: &FlowKey) -> usize {
    let (a, b) = ((key.ports >> 16) as u16, key.ports as u16);
    if (a < WELL_KNOWN) != (b < WELL_KNOWN) {
        return usize::from(a < WELL_KNOWN);
    }
    usize::from(a <= b)
}

/// A fast multiplicative hasher for flow keys (attacker-chosen keys only cost time).
#[derive(Default)]
pub struct FlowHasher(u64);

impl Hasher for FlowHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
}

/// A map keyed by flows, with `FlowHasher`.
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FlowHasher>>;

/// A tombstone's 4-tuple, small: tombstones outlive their connections by 2 * MSL, so a
/// busy capture holds several times more of them than connections (150k on the 10x
/// benchmark), in a map and a queue. An IPv4 tuple takes 12 bytes instead of the 48 of a
/// `FlowKey` (whose addresses are IPv6-sized).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum TombKey {
    /// Both addresses IPv4(-mapped): the low 32 bits of each, and the ports.
    V4([u32; 3]),
    V6(Box<FlowKey>),
}

impl TombKey {
    fn of(key: &FlowKey) -> TombKey {
        const MAPPED: u128 = 0xFFFF;
        if key.lo >> 32 == MAPPED && key.hi >> 32 == MAPPED && key.tunnel == 0 {
            TombKey::V4([key.lo as u32, key.hi as u32, key.ports])
        } else {
            TombKey::V6(Box::new(*key))
        }
    }
}

/// A 4-tuple with its current connection. At most 1000 bytes: glibc serves that from its
/// small bins, while a larger request consolidates all its fast bins first, on every new
/// connection (the 4-tuple is therefore not stored: the connection's endpoints give it).
#[derive(Debug)]
struct Slot {
    conn: Connection,
    /// Canonical side of the client (0 or 1).
    client_side: u8,
    /// The 4-tuple's tunnel path (`FlowKey::tunnel`).
    tunnel: u32,
}

impl Slot {
    fn new(key: &FlowKey, conn: Connection, client_side: usize) -> Slot {
        let slot = Slot {
            conn,
            client_side: client_side as u8,
            tunnel: key.tunnel,
        };
        debug_assert_eq!(slot.key(), *key);
        slot
    }

    /// The slot's 4-tuple: the client's endpoint on the canonical side `client_side`.
    fn key(&self) -> FlowKey {
        let client = self.conn.endpoint(Role::Client);
        let server = self.conn.endpoint(Role::Server);
        let (lo, hi) = if self.client_side == 0 {
            (client, server)
        } else {
            (server, client)
        };
        FlowKey {
            lo: lo.0,
            hi: hi.0,
            ports: u32::from(lo.1) << 16 | u32::from(hi.1),
            tunnel: self.tunnel,
        }
    }
}

/// A connection out of the table (ended, evicted, or held at the close), in its slot.
#[derive(Debug)]
pub struct Finished(Box<Slot>);

impl std::ops::Deref for Finished {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0.conn
    }
}

impl std::ops::DerefMut for Finished {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.0.conn
    }
}

/// Before a segment reaches its connection: the bad-checksum segments of its 4-tuple up
/// to that time go to the connection's Zeek view first (as the Python observer replays the
/// ledger at each segment).
fn replay_before(ledger: &mut Option<ChecksumLedger>, conn: &mut Connection, ts_ns: i64) {
    if let Some(ledger) = ledger.as_mut() {
        if !ledger.is_empty() {
            conn.replay_bad_checksums(ledger, Some(ts_ns));
        }
    }
}

/// Where the connection for a segment is.
enum Found {
    Table(usize),
    /// Emitted already (evicted the moment it opened): still fed its first segment. With
    /// the canonical side of its client.
    Ended(usize, usize),
}

/// 4-tuples to connections, in insertion order.
#[derive(Debug, Default)]
pub struct FlowTable {
    options: FlowOptions,
    pub stats: FlowTableStats,
    /// Slots in insertion order; None where one was removed (compacted at sweeps). Boxed:
    /// a connection is about 1 KB, and a hole must not cost that much.
    order: Vec<Option<Box<Slot>>>,
    index: FastMap<FlowKey, usize>,
    /// Frame (in its batch) of the segment being fed: where a failure happened.
    current_frame: u32,
    /// Finished connections awaiting the caller, in the order they finished.
    /// Their slots are moved here whole, as pointers: a sweep can end tens of thousands
    /// of connections at once, and a vector of 1 KB connections doubles as it grows. (The
    /// connection stays inline in its slot: a second box would cost every segment one more
    /// pointer to chase, a cache miss on a busy table.)
    ended: Vec<Finished>,
    /// Slots and an `ended` vector handed back by the caller (`recycle`), for reuse.
    spares: spare::Spares,
    next_id: u64,
    /// Ids (and previous ids) by 4-tuple of the connections a previous run handed on
    /// (`--resume`, `reuse_ids`): the connection the replay of their frames opens on the
    /// 4-tuple takes the id back.
    reuse: FastMap<(u128, u128, u32), Continuations>,
    /// Ids (and previous ids) by 4-tuple of the connections a previous run closed early
    /// (`--resume-max-bytes`): the next connection opened midstream on the 4-tuple, their
    /// continuation, takes the id back (`continue_capped`).
    continued: FastMap<(u128, u128, u32), Continuations>,
    pub now_ns: i64,
    tombstones: FastMap<TombKey, u64>,
    tombstone_queue: VecDeque<(i64, TombKey)>,
    swept_ns: i64,
    /// Which new connections get a segment trace (None: none, as `analyze` runs).
    pub trace: Option<TraceSelect>,
    /// With --verify-checksums and --zeek: the bad-checksum segments not yet handed to a
    /// connection's Zeek view (the engine adds them).
    pub ledger: Option<ChecksumLedger>,
    /// Zeek's likely server ports, sorted, when not its default set (the corpus test
    /// against `zeek -b` logs).
    pub zeek_server_ports: Option<Vec<u16>>,
    /// The run's tunnel paths: a connection in a tunnel takes its path from there.
    pub tunnels: Option<SharedTunnels>,
    /// 4-tuples whose connection failed: their later segments are ignored (until a new SYN),
    /// instead of opening a connection mid-stream that would fail the same way.
    failed: FastMap<TombKey, ()>,
    /// Test hook (`TCPTRACE_PANIC_IN_CONNECTION=ID`): the connection with this id panics
    /// when it opens, to prove a failure costs only its own connection.
    panic_in_connection: Option<u64>,
}

/// The environment variable of the test hook `FlowTable::panic_in_connection`.
pub const PANIC_IN_CONNECTION: &str = "TCPTRACE_PANIC_IN_CONNECTION";

impl FlowTable {
    pub fn new(options: FlowOptions) -> Self {
        let panic_in_connection = std::env::var(PANIC_IN_CONNECTION)
            .ok()
            .and_then(|id| id.trim().parse().ok());
        let held = INITIAL_FLOWS.min(options.max_flows.saturating_add(CAP_SLACK + 1));
        FlowTable {
            options,
            next_id: 1,
            panic_in_connection,
            index: FastMap::with_capacity_and_hasher(held, Default::default()),
            tombstones: FastMap::with_capacity_and_hasher(INITIAL_FLOWS, Default::default()),
            // a slot per connection opened since the last compaction (holes included), a
            // tombstone per connection ended within `tombstone_s` (repeats included):
            // each a few times the connections held; made once, their pages touched as used
            order: Vec::with_capacity(2 * held),
            tombstone_queue: VecDeque::with_capacity(4 * INITIAL_FLOWS),
            ..FlowTable::default()
        }
    }

    /// Connections held (the --max-flows cap counts these).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The id the next new connection gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Number new connections from `id` on (`--per-file`: a file's fresh table continues
    /// the ids of the files before it).
    pub fn continue_ids_from(&mut self, id: u64) {
        self.next_id = id;
    }

    /// The batch position of the frame whose segment `feed` handles (or handled last).
    pub fn current_frame(&self) -> u32 {
        self.current_frame
    }

    /// Run every segment of one slice (at most `FEED_SLICE`, offsets into `data`) through
    /// its connection in capture order, then sweep.
    pub fn feed(&mut self, segs: &[Segment], data: &[u8]) {
        let Some(latest) = segs.iter().map(|s| s.ts_ns).max() else {
            return;
        };
        self.feed_segments(segs, data);
        self.end_slice(latest);
    }

    /// Run segments (offsets into `data`) through their connections in capture order,
    /// without sweeping: part of a slice that `end_slice` ends (a slice may span several
    /// read pieces). Nothing here keeps a reference into `data`.
    ///
    /// A panic while one segment is handled (a bug, most likely in an analyzer fed
    /// untrusted bytes) costs only that segment's connection: it is dropped and counted in
    /// `stats.failed_connections`, and the other segments go on. `catch_unwind` costs
    /// nothing until a panic, and it wraps the whole loop, not each segment.
    pub fn feed_segments(&mut self, segs: &[Segment], data: &[u8]) {
        let mut rest = segs;
        while !rest.is_empty() {
            let mut handled = 0;
            let fed = panic::catch_unwind(AssertUnwindSafe(|| {
                self.feed_unguarded(rest, data, &mut handled)
            }));
            if fed.is_ok() {
                return;
            }
            let Some(seg) = rest.get(handled) else { return };
            self.quarantine(seg);
            rest = rest.get(handled + 1..).unwrap_or(&[]);
        }
    }

    /// Drop the connection whose segment `seg` panicked, wherever it is (the table, or
    /// the connections ended but not yet taken), and remember its 4-tuple.
    fn quarantine(&mut self, seg: &Segment) {
        self.stats.failed_connections += 1;
        let key = flow_key(seg, canonical_first(seg));
        if let Some(i) = self.index.get(&key).copied() {
            if self.remove(i).is_none() {
                self.index.remove(&key);
            }
        } else if let Some(pos) = self.ended.iter().rposition(|c| c.0.key() == key) {
            self.ended.remove(pos);
        }
        self.failed.insert(TombKey::of(&key), ());
    }

    fn feed_unguarded(&mut self, segs: &[Segment], data: &[u8], handled: &mut usize) {
        for (n, seg) in segs.iter().enumerate() {
            *handled = n;
            self.current_frame = seg.frame_index;
            let src_first = canonical_first(seg);
            let side = usize::from(!src_first);
            let key = flow_key(seg, src_first);
            let at = self.index.get(&key).copied();
            let fresh_syn = seg.flags & SYN != 0 && seg.flags & ACK == 0;
            let found = match at {
                Some(i) if !fresh_syn => Found::Table(i),
                _ => match self.connection_for(key, at, side, seg) {
                    Some(found) => found,
                    None => continue,
                },
            };
            match found {
                Found::Table(i) => {
                    if let Some(slot) = self.order.get_mut(i).and_then(Option::as_mut) {
                        let role = role_of(side, usize::from(slot.client_side));
                        replay_before(&mut self.ledger, &mut slot.conn, seg.ts_ns);
                        let fed = slot.conn.segment(role, seg, data);
                        self.stats.duplicates += u64::from(fed.duplicate);
                        if fed.swapped {
                            slot.client_side = 1 - slot.client_side;
                        }
                    }
                }
                Found::Ended(pos, client_side) => {
                    // Python feeds the connection object it already emitted all the same
                    if let Some(conn) = self.ended.get_mut(pos) {
                        replay_before(&mut self.ledger, conn, seg.ts_ns);
                        // an ended connection saw a FIN or a RST: its roles stay
                        let fed = conn.segment(role_of(side, client_side), seg, data);
                        self.stats.duplicates += u64::from(fed.duplicate);
                    }
                }
            }
        }
    }

    /// End a slice whose latest segment timestamp is `latest`: the clock moves on to it
    /// and the table sweeps.
    ///
    /// The clock only moves forward, so one timestamp far ahead (a flipped bit) or a
    /// capture whose timestamps go back would stop it, and with it every release of ended
    /// connections and tombstones (200k connections: 1 GB instead of 100 MB). A slice
    /// whose latest timestamp lies more than `CLOCK_JUMP_NS` behind the clock therefore
    /// sets the clock back to it (counted in `stats.clock_jumps`); connections last seen
    /// beyond the new clock by that much are then released as if idle since.
    pub fn end_slice(&mut self, latest: i64) {
        if latest < self.now_ns.saturating_sub(CLOCK_JUMP_NS) {
            self.stats.clock_jumps += 1;
            self.now_ns = latest;
            self.swept_ns = i64::MIN; // sweep now, on the new clock
        }
        self.now_ns = self.now_ns.max(latest);
        self.sweep();
    }

    /// The connection a segment belongs to, opening one if it starts one (a SYN, or the first
    /// segment of a flow the capture joined late); None for a late duplicate.
    fn connection_for(
        &mut self,
        key: FlowKey,
        at: Option<usize>,
        side: usize,
        seg: &Segment,
    ) -> Option<Found> {
        if seg.flags & SYN != 0 && seg.flags & ACK == 0 {
            if !self.failed.is_empty() {
                self.failed.remove(&TombKey::of(&key));
            }
            if let Some(i) = at {
                let slot = self.order[i].as_mut()?;
                let role = role_of(side, usize::from(slot.client_side));
                if !slot.conn.accepts_new_syn(role, seg.seq) {
                    return Some(Found::Table(i));
                }
            }
            return Some(self.open(key, at, side, seg, RoleRule::Syn));
        }
        if at.is_some() {
            return at.map(Found::Table);
        }
        if !self.failed.is_empty() && self.failed.contains_key(&TombKey::of(&key)) {
            return None;
        }
        if !self.tombstones.is_empty() && self.tombstones.contains_key(&TombKey::of(&key)) {
            self.stats.after_close += 1;
            return None;
        }
        let rule = if seg.flags & SYN != 0 {
            RoleRule::Synack
        } else {
            RoleRule::Port
        };
        Some(self.open(key, None, side, seg, rule))
    }

    fn open(
        &mut self,
        key: FlowKey,
        at: Option<usize>,
        side: usize,
        seg: &Segment,
        rule: RoleRule,
    ) -> Found {
        let mut previous_id = if self.tombstones.is_empty() {
            None
        } else {
            self.tombstones.remove(&TombKey::of(&key))
        };
        let client_side = match rule {
            RoleRule::Syn => side,
            RoleRule::Synack => 1 - side,
            // the first payload may yet exchange them (Connection::roles_from_payload)
            RoleRule::Port | RoleRule::Request | RoleRule::Response => client_by_port(&key),
        };
        let mut continued = None;
        if !self.reuse.is_empty() {
            continued = claim(&mut self.reuse, &key);
        }
        if continued.is_none() && !self.continued.is_empty() {
            match claim(&mut self.continued, &key) {
                // a SYN without ACK opens a new connection, as on the 4-tuple of one still
                // in the table: a fresh id, the capped one as its previous id
                Some((capped, _)) if rule == RoleRule::Syn => {
                    previous_id = previous_id.or(Some(capped));
                }
                claimed => continued = claimed,
            }
        }
        let (id, reused) = match continued {
            Some((id, previous)) => {
                previous_id = previous_id.or(previous);
                (id, true)
            }
            None => (self.next_id, false),
        };
        let zeek = self.options.zeek;
        let server_ports = self.zeek_server_ports.as_deref();
        let make = |previous_id| {
            let mut conn = Connection::new(
                id,
                key.endpoint(client_side),
                key.endpoint(1 - client_side),
                rule,
                seg.ts_ns,
                previous_id,
            );
            if let Some(select) = &self.trace {
                let endpoint = |role| {
                    let side = if role == Role::Client {
                        client_side
                    } else {
                        1 - client_side
                    };
                    let (ip, port) = key.endpoint(side);
                    (address_text(ip), port)
                };
                if select.selects(id, endpoint) {
                    conn.set_trace(Box::new(SegmentTrace::new(select.limit, seg.ts_ns)));
                }
            }
            if rule != RoleRule::Syn {
                conn.start_assumed(seg.ts_ns, seg.ack);
            }
            if zeek {
                conn.enable_zeek(server_ports);
            }
            if key.tunnel != 0 {
                if let Some(tunnels) = &self.tunnels {
                    // The outer headers as the client sent them
                    let flipped = seg.tunnel & 1 == 1;
                    let reverse = side != client_side;
                    conn.set_encapsulation(lookup(tunnels, key.tunnel, flipped, reverse));
                }
            }
            conn
        };
        let i = match at.and_then(|i| {
            self.order
                .get_mut(i)
                .and_then(Option::as_mut)
                .map(|s| (i, s))
        }) {
            Some((i, slot)) => {
                // the slot stays where it is in the table's order
                previous_id = Some(slot.conn.id);
                self.stats.port_reuse += 1;
                let previous = std::mem::replace(&mut slot.conn, make(previous_id));
                let previous_side = std::mem::replace(&mut slot.client_side, client_side as u8);
                let previous = Slot::new(&key, previous, usize::from(previous_side));
                self.ended.push(Finished(self.spares.boxed(previous)));
                i
            }
            None => {
                if previous_id.is_some() {
                    self.stats.port_reuse += 1;
                }
                let slot = Slot::new(&key, make(previous_id), client_side);
                self.order.push(Some(self.spares.boxed(slot)));
                self.index.insert(key, self.order.len() - 1);
                self.order.len() - 1
            }
        };
        if !reused {
            self.next_id += 1;
        }
        self.stats.connections += 1;
        if self.panic_in_connection == Some(id) {
            panic!("forced panic in connection {id} ({PANIC_IN_CONNECTION})");
        }
        if self.index.len() > self.options.max_flows + CAP_SLACK {
            self.evict_idlest();
            if self.order.get(i).is_none_or(Option::is_none) {
                let pos = self.ended.iter().rposition(|c| c.id == id).unwrap_or(0);
                return Found::Ended(pos, client_side);
            }
        }
        Found::Table(i)
    }

    fn remove(&mut self, i: usize) -> Option<Box<Slot>> {
        let slot = self.order.get_mut(i)?.take()?;
        self.index.remove(&slot.key());
        Some(slot)
    }

    /// Emit connections that ended more than `linger_s` ago; enforce the cap. A sweep visits
    /// every connection, so it runs at most once per SWEEP_INTERVAL of capture time, unless
    /// the table is over its cap.
    fn sweep(&mut self) {
        if self.now_ns.saturating_sub(self.swept_ns) < SWEEP_INTERVAL_NS
            && self.len() <= self.options.max_flows
        {
            return;
        }
        self.swept_ns = self.now_ns;
        // Python's int(linger_s * NS): the float product truncated toward zero
        let horizon = self.now_ns - (self.options.linger_s * NS) as i64;
        let idle = self
            .options
            .idle_timeout_s
            .map(|s| self.now_ns - (s * NS) as i64);
        // last seen far beyond the clock: before the clock was set back (see end_slice)
        let beyond = self.now_ns.saturating_add(CLOCK_JUMP_NS);
        let mut done: Vec<(usize, bool)> = Vec::new();
        for (i, slot) in self.order.iter_mut().enumerate() {
            let Some(slot) = slot else { continue };
            let conn = &mut slot.conn;
            if (conn.last_ns < horizon || conn.last_ns > beyond) && conn.ended() {
                done.push((i, true));
            } else if idle.is_some_and(|idle| conn.last_ns < idle) {
                done.push((i, conn.ended()));
            }
        }
        for (i, ended) in done {
            let Some(slot) = self.remove(i) else { continue };
            if ended {
                let key = TombKey::of(&slot.key());
                self.tombstones.insert(key.clone(), slot.conn.id);
                self.tombstone_queue.push_back((self.now_ns, key));
            } else {
                self.stats.idle_evicted += 1;
            }
            self.ended.push(Finished(slot));
        }
        let expired = self.now_ns - (self.options.tombstone_s * NS) as i64;
        while self
            .tombstone_queue
            .front()
            .is_some_and(|&(ns, _)| ns < expired || ns > beyond)
        {
            if let Some((_, key)) = self.tombstone_queue.pop_front() {
                self.tombstones.remove(&key);
            }
        }
        if self.len() > self.options.max_flows {
            self.evict_idlest();
        }
        self.compact();
    }

    /// Back to `max_flows`: emit the connections idle the longest (a stable sort by last
    /// activity over the table's order).
    fn evict_idlest(&mut self) {
        let excess = self.len().saturating_sub(self.options.max_flows);
        if excess == 0 {
            return;
        }
        let mut live: Vec<(i64, usize)> = self
            .order
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (s.conn.last_ns, i)))
            .collect();
        live.sort_by_key(|&(last, _)| last); // stable
        for &(_, i) in live.iter().take(excess) {
            if let Some(slot) = self.remove(i) {
                self.ended.push(Finished(slot));
                self.stats.evicted_for_capacity += 1;
            }
        }
    }

    /// Drop the holes removals left, once they outnumber the slots.
    fn compact(&mut self) {
        let live = self.index.len();
        if self.order.len() < 64 || self.order.len() - live <= live {
            return;
        }
        self.order.retain(Option::is_some);
        for (i, slot) in self.order.iter().flatten().enumerate() {
            self.index.insert(slot.key(), i);
        }
    }

    /// Advance the clock without traffic (live capture): lets idle and lingering connections
    /// be emitted on time.
    pub fn tick(&mut self, now_ns: i64) {
        self.now_ns = self.now_ns.max(now_ns);
        self.sweep();
    }

    /// Connections finished so far, in the order they finished.
    pub fn drain(&mut self) -> Vec<Finished> {
        let empty = self.spares.ended();
        std::mem::replace(&mut self.ended, empty)
    }

    /// Hand back connections from `drain` once their records are made: their slots (and
    /// the vector) are reused for new connections instead of freed (see `spare`).
    pub fn recycle(&mut self, done: Vec<Finished>) {
        self.spares.keep(done);
    }

    /// The end of a run that hands its open connections on (`--resume`, src/resume.rs):
    /// the finished ones, then those still in the table (open, lingering, idle), in its
    /// order, each as the flow to carry with its connection (written instead if the run
    /// cannot carry it: `--resume-max-bytes`).
    pub fn hold(&mut self) -> (Vec<Finished>, Vec<(HeldFlow, Finished)>) {
        self.tombstones.clear();
        self.tombstone_queue.clear();
        let done = self.drain();
        let held = self
            .order
            .drain(..)
            .flatten()
            .map(|slot| {
                let key = slot.key();
                let flow = HeldFlow {
                    lo: key.lo,
                    hi: key.hi,
                    ports: key.ports,
                    first_ns: slot.conn.first_ns,
                    id: slot.conn.id,
                    previous_id: slot.conn.previous_id(),
                };
                (flow, Finished(slot))
            })
            .collect();
        self.index.clear();
        (done, held)
    }

    /// `--resume-max-bytes`: the connections a previous run closed early (their 4-tuples,
    /// ids and previous ids): the next connection opened midstream on one of these
    /// 4-tuples is its continuation and takes its id back, so that no other connection's
    /// id moves from the single run's.
    pub fn continue_capped(&mut self, capped: &[HeldFlow]) {
        wait(&mut self.continued, capped);
    }

    /// The capped connections whose continuation did not come (`continue_capped`), and
    /// any handed-on id no replayed frame took back (`reuse_ids`): handed on again.
    pub fn unclaimed_continuations(&mut self) -> Vec<HeldFlow> {
        let mut flows: Vec<HeldFlow> = self
            .continued
            .drain()
            .chain(self.reuse.drain())
            .flat_map(|((lo, hi, ports), ids)| {
                ids.into_iter().map(move |(id, previous_id)| HeldFlow {
                    lo,
                    hi,
                    ports,
                    first_ns: 0,
                    id,
                    previous_id,
                })
            })
            .collect();
        flows.sort_unstable_by_key(|f| f.id);
        flows
    }

    /// The connections a previous run handed on (`--resume`): the next connection opened
    /// on each one's 4-tuple (by the replay of its frames) takes its id and previous id.
    pub fn reuse_ids(&mut self, held: &[HeldFlow]) {
        wait(&mut self.reuse, held);
    }

    /// Every connection: the finished ones, then those still in the table in its order.
    pub fn close(&mut self) -> Vec<Finished> {
        self.tombstones.clear();
        self.tombstone_queue.clear();
        let mut all = self.drain();
        all.extend(self.order.drain(..).flatten().map(Finished));
        self.index.clear();
        all
    }
}

/// The ids (and previous ids) of `flows` put in `ids` to wait for a connection on their
/// 4-tuple, in their order.
fn wait(ids: &mut FastMap<(u128, u128, u32), Continuations>, flows: &[HeldFlow]) {
    for flow in flows {
        ids.entry((flow.lo, flow.hi, flow.ports))
            .or_default()
            .push_back((flow.id, flow.previous_id));
    }
}

/// The id (and previous id) waiting in `ids` for the next connection on `key`, taken.
fn claim(
    ids: &mut FastMap<(u128, u128, u32), Continuations>,
    key: &FlowKey,
) -> Option<(u64, Option<u64>)> {
    let tuple = (key.lo, key.hi, key.ports);
    let waiting = ids.get_mut(&tuple)?;
    let claimed = waiting.pop_front();
    if waiting.is_empty() {
        ids.remove(&tuple);
    }
    claimed
}

fn role_of(side: usize, client_side: usize) -> Role {
    if side == client_side {
        Role::Client
    } else {
        Role::Server
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{FIN, RST};
    use crate::model::{Outcome, RoleRule};

    #[test]
    fn a_slot_is_a_small_chunk_for_malloc() {
        // glibc serves requests up to 1000 bytes (chunks under 1 KiB) from its small bins;
        // a larger one consolidates the fast bins on every allocation
        assert!(
            std::mem::size_of::<Slot>() <= 1000,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }

    #[test]
    fn a_slot_gives_back_its_key_from_either_side() {
        let key = FlowKey {
            lo: 0xFFFF_0A00_0001,
            hi: 0x2001_0db8_0000_0000_0000_0000_0000_0002,
            ports: 80 << 16 | 40000,
            tunnel: 7,
        };
        for client_side in [0, 1] {
            let conn = Connection::new(
                1,
                key.endpoint(client_side),
                key.endpoint(1 - client_side),
                RoleRule::Syn,
                0,
                None,
            );
            assert_eq!(Slot::new(&key, conn, client_side).key(), key);
        }
    }

    const MS: i64 = 1_000_000;
    const CLIENT: u128 = 0xffff_0a00_0001;
    const SERVER: u128 = 0xffff_0a00_0002;

    fn seg(ms: i64, from_client: bool, flags: u16, seq: u32, ack: u32) -> Segment {
        let (src, dst, sport, dport) = if from_client {
            (CLIENT, SERVER, 40000, 80)
        } else {
            (SERVER, CLIENT, 80, 40000)
        };
        Segment {
            ts_ns: ms * MS,
            src,
            dst,
            sport,
            dport,
            seq,
            ack,
            flags,
            window: 100,
            ..Segment::default()
        }
    }

    fn full_connection(t: i64, isn: u32) -> Vec<Segment> {
        vec![
            seg(t, true, SYN, isn, 0),
            seg(t + 1, false, SYN | ACK, 5000, isn + 1),
            seg(t + 2, true, ACK, isn + 1, 5001),
            seg(t + 3, true, FIN | ACK, isn + 1, 5001),
            seg(t + 4, false, FIN | ACK, 5001, isn + 2),
            seg(t + 5, true, ACK, isn + 2, 5002),
        ]
    }

    fn table() -> FlowTable {
        FlowTable::new(FlowOptions {
            linger_s: 0.5,
            tombstone_s: 60.0,
            ..FlowOptions::default()
        })
    }

    /// A connection with data one way, acknowledged (it fills the RTT, options and HTTP
    /// boxes, the inboxes and the handshake lists), from client port `port`.
    fn data_connection(t: i64, isn: u32, port: u16) -> Vec<Segment> {
        let mut data = seg(t + 3, true, ACK, isn + 1, 5001);
        data.payload_len = 10;
        let segs = vec![
            seg(t, true, SYN, isn, 0),
            seg(t + 1, false, SYN | ACK, 5000, isn + 1),
            seg(t + 2, true, ACK, isn + 1, 5001),
            data,
            seg(t + 4, false, ACK, 5001, isn + 11),
            seg(t + 5, true, FIN | ACK, isn + 11, 5001),
            seg(t + 6, false, FIN | ACK, 5001, isn + 12),
            seg(t + 7, true, ACK, isn + 12, 5002),
        ];
        let on_port = |mut s: Segment| {
            if s.sport == 40000 {
                s.sport = port;
            } else {
                s.dport = port;
            }
            s
        };
        segs.into_iter().map(on_port).collect()
    }

    /// The capped connection of `continue_capped`'s tests: the client's 4-tuple, id 7.
    fn capped(previous_id: Option<u64>) -> HeldFlow {
        HeldFlow {
            lo: CLIENT,
            hi: SERVER,
            ports: 40000 << 16 | 80,
            first_ns: 0,
            id: 7,
            previous_id,
        }
    }

    #[test]
    fn a_capped_connections_continuation_takes_its_id_back() {
        let mut t = table();
        t.continue_ids_from(10);
        t.continue_capped(&[capped(Some(3))]);
        // another 4-tuple first: the next id
        t.feed(&data_connection(0, 100, 40001), &[]);
        // then the capped one's, picked up midstream
        t.feed(&[seg(100, true, ACK, 500, 900)], &[]);
        let ids: Vec<_> = t.close().iter().map(|c| (c.id, c.previous_id())).collect();
        assert_eq!(ids, vec![(10, None), (7, Some(3))]);
        assert_eq!(t.next_id(), 11);
        assert!(t.unclaimed_continuations().is_empty());
    }

    #[test]
    fn a_syn_on_a_capped_tuple_is_a_new_connection_after_it() {
        let mut t = table();
        t.continue_ids_from(10);
        t.continue_capped(&[capped(None)]);
        t.feed(&full_connection(0, 100)[..1], &[]);
        let ids: Vec<_> = t.close().iter().map(|c| (c.id, c.previous_id())).collect();
        assert_eq!(ids, vec![(10, Some(7))]);
        assert_eq!(t.stats.port_reuse, 1);
    }

    #[test]
    fn a_continuation_that_did_not_come_is_handed_on() {
        let mut t = table();
        t.continue_capped(&[capped(Some(3))]);
        t.feed(&data_connection(0, 100, 40001), &[]);
        assert_eq!(t.unclaimed_continuations(), vec![capped(Some(3))]);
        assert!(t.unclaimed_continuations().is_empty());
    }

    #[test]
    fn a_connection_in_a_recycled_slot_records_as_one_in_a_new_slot() {
        let second = data_connection(100_000, 900, 40001);
        let mut fresh = table();
        fresh.feed(&second, &[]);
        let expected = fresh.close().remove(0).record(30.0);
        assert_eq!(expected.rtt.client.samples, 1);

        let mut t = table();
        t.feed(&data_connection(0, 100, 40000), &[]);
        t.tick(50_000 * MS); // past the linger: emitted
        let mut done = t.drain();
        assert_eq!(done.len(), 1);
        let first = done[0].record(30.0);
        assert_eq!(first.rtt.client.samples, 1);
        t.recycle(done);
        t.feed(&second, &[]);
        let mut got = t.close().remove(0).record(30.0);
        assert_eq!(got.id, 2);
        got.id = expected.id;
        assert_eq!(got, expected);
    }

    #[test]
    fn a_new_syn_on_a_closed_tuple_opens_a_new_connection() {
        let mut t = table();
        let mut segs = full_connection(0, 100);
        segs.extend(full_connection(10, 900));
        t.feed(&segs, &[]);
        let ended: Vec<_> = t.drain();
        assert_eq!(ended.len(), 1);
        let mut rest = t.close();
        assert_eq!(rest.len(), 1);
        let first = ended.into_iter().next().map(|mut c| c.record(30.0));
        let second = rest.remove(0).record(30.0);
        let first = first.expect("one ended");
        assert_eq!(
            (first.id, first.outcome, first.previous_id),
            (1, Outcome::Closed, None)
        );
        assert_eq!(
            (second.id, second.previous_id, second.role_rule),
            (2, Some(1), RoleRule::Syn)
        );
        assert_eq!(second.client.ip, "10.0.0.1");
        assert_eq!((t.stats.connections, t.stats.port_reuse), (2, 1));
    }

    #[test]
    fn tombstones_count_late_segments_and_link_the_next_connection() {
        let mut t = table();
        t.feed(&full_connection(0, 100), &[]);
        // linger passes: the connection is emitted and its tuple tombstoned
        t.tick(2_000 * MS);
        t.feed(&[seg(2_000, false, ACK, 5002, 102)], &[]);
        assert_eq!(t.stats.after_close, 1);
        assert_eq!(t.drain().len(), 1);
        t.feed(&full_connection(3_000, 700), &[]);
        let mut rest = t.close();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].record(30.0).previous_id, Some(1));
        assert_eq!(t.stats.port_reuse, 1);
    }

    #[test]
    fn midstream_segments_take_roles_by_port_and_rst_refuses() {
        let mut t = table();
        let mut refused = [seg(1, true, SYN, 50, 0), seg(2, false, RST | ACK, 0, 51)];
        refused[0].sport = 40001;
        refused[1].dport = 40001;
        t.feed(&[seg(0, false, ACK, 1, 1), refused[0], refused[1]], &[]);
        let mut all = t.close();
        assert_eq!(all.len(), 2);
        let first = all[0].record(30.0);
        assert_eq!(
            (first.role_rule, first.client.port),
            (RoleRule::Port, 40000)
        );
        assert_eq!(first.states.client.len(), 1);
        let second = all[1].record(30.0);
        assert_eq!(
            (second.outcome, second.client.port),
            (Outcome::Refused, 40001)
        );
        let rst = second.rst.expect("a RST");
        assert_eq!((rst.kind, rst.count), (crate::model::RstKind::Refused, 1));
    }

    #[test]
    fn over_the_cap_the_idlest_go_first() {
        let mut t = FlowTable::new(FlowOptions {
            max_flows: 2,
            ..FlowOptions::default()
        });
        let mut segs = Vec::new();
        for i in 0..(2 + CAP_SLACK as u16 + 1) {
            let mut s = seg(i64::from(i), true, ACK, 1, 1);
            s.sport = 1025 + i;
            segs.push(s);
        }
        t.feed(&segs, &[]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.stats.evicted_for_capacity, CAP_SLACK as u64 + 1);
        let ended = t.drain();
        let ids: Vec<u64> = ended.iter().map(|c| c.id).take(3).collect();
        assert_eq!(ids, vec![1, 2, 3]);
    }

    #[test]
    fn tombstone_keys_are_short_for_ipv4_and_exact_for_both() {
        let v4 = FlowKey {
            lo: CLIENT,
            hi: SERVER,
            ports: 40000 << 16 | 80,
            tunnel: 0,
        };
        assert_eq!(
            TombKey::of(&v4),
            TombKey::V4([0x0a00_0001, 0x0a00_0002, v4.ports])
        );
        // an IPv6 address whose low 32 bits equal an IPv4 one's is another tuple
        let v6 = FlowKey {
            lo: 0x0a00_0001,
            ..v4
        };
        assert_eq!(TombKey::of(&v6), TombKey::V6(Box::new(v6)));
        assert_ne!(TombKey::of(&v6), TombKey::of(&v4));
        // late segments of an IPv6 flow after its emission count as after_close
        let mut t = table();
        let to_v6 = |mut s: Segment| {
            s.src &= 0xFFFF_FFFF;
            s.dst &= 0xFFFF_FFFF;
            s
        };
        let segs: Vec<Segment> = full_connection(0, 100).into_iter().map(to_v6).collect();
        t.feed(&segs, &[]);
        t.tick(2_000 * MS);
        t.feed(&[to_v6(seg(2_000, false, ACK, 5002, 102))], &[]);
        assert_eq!(t.stats.after_close, 1);
    }

    #[test]
    fn a_panic_in_one_connection_costs_only_that_connection() {
        let mut t = table();
        t.panic_in_connection = Some(2);
        let mut segs = Vec::new();
        for (n, port) in [40000u16, 40001, 40002].into_iter().enumerate() {
            for mut s in full_connection(n as i64 * 10, 100) {
                if s.sport == 40000 {
                    s.sport = port;
                } else {
                    s.dport = port;
                }
                segs.push(s);
            }
        }
        // a later segment of the failed tuple: ignored, not a new mid-stream connection
        let mut late = seg(100, false, ACK, 5002, 102);
        late.dport = 40001;
        segs.push(late);
        let hook = panic::take_hook();
        panic::set_hook(Box::new(|_| {}));
        t.feed(&segs, &[]);
        panic::set_hook(hook);
        let mut all = t.drain();
        all.extend(t.close());
        let kept: Vec<(u64, u16)> = all
            .iter_mut()
            .map(|c| {
                let r = c.record(30.0);
                (r.id, r.client.port)
            })
            .collect();
        assert_eq!(kept, vec![(1, 40000), (3, 40002)]);
        assert_eq!((t.stats.connections, t.stats.failed_connections), (3, 1));
    }

    #[test]
    fn a_timestamp_far_ahead_does_not_stop_the_release_of_ended_connections() {
        const YEARS_30_MS: i64 = 30 * 365 * 24 * 3_600 * 1_000;
        let on_port = |segs: Vec<Segment>, port: u16| -> Vec<Segment> {
            segs.into_iter()
                .map(|mut s| {
                    if s.sport == 40000 {
                        s.sport = port;
                    } else {
                        s.dport = port;
                    }
                    s
                })
                .collect()
        };
        let mut t = table();
        t.feed(&full_connection(0, 100), &[]);
        let mut stray = seg(YEARS_30_MS, true, ACK, 7, 7);
        stray.sport = 50000;
        t.feed(&[stray], &[]); // the clock leaps 30 years: connection 1 is released
        assert_eq!(t.drain().len(), 1);
        t.feed(&on_port(full_connection(10, 300), 40001), &[]);
        assert_eq!(t.stats.clock_jumps, 1); // the clock came back to the capture's time
        t.tick(3_000 * MS);
        let ids: Vec<u64> = t.drain().iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![3]); // released on the clock that came back
        t.feed(&on_port(full_connection(4_000, 500), 40002), &[]);
        assert_eq!(t.stats.clock_jumps, 1);
        assert_eq!(t.len(), 2); // the stray (not ended) and the last connection (lingering)
    }

    #[test]
    fn address_keys_are_canonical() {
        let a = seg(0, true, ACK, 0, 0);
        let b = seg(0, false, ACK, 0, 0);
        assert!(canonical_first(&a) && !canonical_first(&b));
        assert_eq!(flow_key(&a, true), flow_key(&b, false));
        let key = flow_key(&a, true);
        assert_eq!(client_by_port(&key), 0);
    }
}
