//! The connection record: the documented contract of every output format (docs/output.md,
//! tcptrace/schema/output.schema.json). Field order is the JSON key order. Enums travel as
//! their name, timestamps as float seconds since the epoch, durations as float milliseconds
//! rounded to the microsecond, exactly as the Python engine computes them (`ns_to_s`,
//! `ns_to_ms`).

use std::cmp::Ordering;

use crate::states::TcpState;

mod millis;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Client = 0,
    Server = 1,
}

impl Role {
    pub fn peer(self) -> Role {
        match self {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Server => "server",
        }
    }
}

/// How the client was told apart from the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleRule {
    /// Sent the first SYN (without ACK).
    Syn,
    /// The first segment seen was a SYN/ACK: its receiver is the client.
    Synack,
    /// Capture began mid-connection: the lower (well-known) port is the server's.
    Port,
    /// Capture began mid-connection and the first payload was an HTTP request line: its
    /// sender is the client, whatever the ports say.
    Request,
    /// Capture began mid-connection and the first payload was an HTTP status line: its
    /// sender is the server.
    Response,
}

impl RoleRule {
    pub const ALL: [RoleRule; 5] = [
        RoleRule::Syn,
        RoleRule::Synack,
        RoleRule::Port,
        RoleRule::Request,
        RoleRule::Response,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RoleRule::Syn => "syn",
            RoleRule::Synack => "synack",
            RoleRule::Port => "port",
            RoleRule::Request => "request",
            RoleRule::Response => "response",
        }
    }
}

/// How a connection ended, one word each, most specific first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Closed,
    Reset,
    Refused,
    Unanswered,
    HandshakeFailed,
    HalfClosed,
    Closing,
    Open,
    /// Not closed, and the capture ends while a side advertises a zero window: the peer is
    /// stalled, waiting for it to open (analyzers/health.rs).
    Stalled,
    /// A stray probe (no SYN: NULL, FIN, Xmas, ACK, Maimon...) answered by the peer's RST,
    /// a closed port's answer (analyzers/probe.rs).
    ProbeReset,
    /// A stray probe without ACK (NULL, FIN, Xmas) nothing answered: an open port drops
    /// it, and so does a filter.
    ProbeUnanswered,
    /// A SYN answered by SYN/ACK, and the SYN's sender reset instead of completing the
    /// handshake: a SYN scan's half-open probe of an open port (nmap -sS).
    HandshakeAborted,
}

impl Outcome {
    pub const ALL: [Outcome; 12] = [
        Outcome::Closed,
        Outcome::Reset,
        Outcome::Refused,
        Outcome::Unanswered,
        Outcome::HandshakeFailed,
        Outcome::HalfClosed,
        Outcome::Closing,
        Outcome::Open,
        Outcome::Stalled,
        Outcome::ProbeReset,
        Outcome::ProbeUnanswered,
        Outcome::HandshakeAborted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Closed => "CLOSED",
            Outcome::Reset => "RESET",
            Outcome::Refused => "REFUSED",
            Outcome::Unanswered => "UNANSWERED",
            Outcome::HandshakeFailed => "HANDSHAKE_FAILED",
            Outcome::HalfClosed => "HALF_CLOSED",
            Outcome::Closing => "CLOSING",
            Outcome::Open => "OPEN",
            Outcome::Stalled => "STALLED",
            Outcome::ProbeReset => "PROBE_RESET",
            Outcome::ProbeUnanswered => "PROBE_UNANSWERED",
            Outcome::HandshakeAborted => "HANDSHAKE_ABORTED",
        }
    }
}

/// Why a RST was sent, judged from the states of both endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RstKind {
    Refused,
    Handshake,
    Abort,
    AfterClose,
    TimeWait,
    UnknownState,
}

impl RstKind {
    pub const ALL: [RstKind; 6] = [
        RstKind::Refused,
        RstKind::Handshake,
        RstKind::Abort,
        RstKind::AfterClose,
        RstKind::TimeWait,
        RstKind::UnknownState,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RstKind::Refused => "REFUSED",
            RstKind::Handshake => "HANDSHAKE",
            RstKind::Abort => "ABORT",
            RstKind::AfterClose => "AFTER_CLOSE",
            RstKind::TimeWait => "TIME_WAIT",
            RstKind::UnknownState => "UNKNOWN_STATE",
        }
    }
}

/// "client", "server" or "both": a side, or both sides, of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sides {
    Client,
    Server,
    Both,
}

impl Sides {
    pub fn of(client: bool, server: bool) -> Option<Sides> {
        match (client, server) {
            (true, true) => Some(Sides::Both),
            (true, false) => Some(Sides::Client),
            (false, true) => Some(Sides::Server),
            (false, false) => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Sides::Client => "client",
            Sides::Server => "server",
            Sides::Both => "both",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct PerSide<T> {
    pub client: T,
    pub server: T,
}

impl<T> PerSide<T> {
    pub fn new(client: T, server: T) -> Self {
        PerSide { client, server }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// Address text as Python's `ipaddress` writes it (IPv4-mapped addresses as IPv4).
    pub ip: String,
    pub port: u16,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StateChange {
    pub ts: f64,
    pub state: TcpState,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Handshake {
    /// A SYN, a SYN/ACK and the ACK completing the handshake were all seen.
    pub complete: bool,
    /// From the SYN that was answered to the SYN/ACK answering it.
    pub syn_to_synack_ms: Option<f64>,
    /// From that SYN/ACK to the ACK completing the handshake.
    pub synack_to_ack_ms: Option<f64>,
    /// Sum of the two: the network round trip as seen from the capture point. Summed in
    /// nanoseconds and rounded once, as `setup_ms` is: never above it, and it may differ by
    /// 0.001 from the sum of the two rounded legs.
    pub rtt_ms: Option<f64>,
    /// First SYN to completing ACK: what the application waited, timeouts included.
    pub setup_ms: Option<f64>,
    pub syn_retransmits: u64,
    pub synack_retransmits: u64,
    /// "timestamps" (TSecr echoes), "unique" (one candidate) or null.
    pub matched_by: Option<&'static str>,
    /// Why a latency is null although the handshake completed.
    pub ambiguity: Option<&'static str>,
    pub simultaneous_open: bool,
}

/// TCP Fast Open (RFC 7413 section 4.1.1) in a SYN or SYN/ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tfo {
    /// An empty cookie option: the client asks for a cookie.
    Request,
    /// A cookie: the client's to open fast, or the server's answer to a request.
    Cookie,
}

impl Tfo {
    pub fn name(self) -> &'static str {
        match self {
            Tfo::Request => "request",
            Tfo::Cookie => "cookie",
        }
    }
}

/// What one side offered in its first SYN (or SYN/ACK), as `options.client`/`.server`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SynOptions {
    /// Maximum segment size (RFC 9293 section 3.7.1).
    pub mss: Option<u16>,
    /// Window scale shift as sent (RFC 7323 section 2: 14 at most is used).
    pub wscale: Option<u8>,
    /// SACK permitted (RFC 2018).
    pub sack_permitted: bool,
    /// TCP timestamps offered (RFC 7323 section 3).
    pub timestamps: bool,
    pub tfo: Option<Tfo>,
    /// Payload carried by the SYN (TCP Fast Open data).
    pub data_bytes: u32,
    /// ECN setup (RFC 3168 section 6.1.1): ECE and CWR on a SYN, ECE alone on a SYN/ACK.
    pub ecn: bool,
    /// The options a second capture of the same SYN had otherwise, one bit each in
    /// `SynOptions::NAMES` order.
    pub rewritten: u8,
}

impl SynOptions {
    /// The options, in record order (`rewritten` names them).
    pub const NAMES: [&'static str; 7] = [
        "mss",
        "wscale",
        "sack_permitted",
        "timestamps",
        "tfo",
        "data_bytes",
        "ecn",
    ];

    /// The options `other` has otherwise, as bits in `NAMES` order.
    pub fn differences(&self, other: &SynOptions) -> u8 {
        let differ = [
            self.mss != other.mss,
            self.wscale != other.wscale,
            self.sack_permitted != other.sack_permitted,
            self.timestamps != other.timestamps,
            self.tfo != other.tfo,
            self.data_bytes != other.data_bytes,
            self.ecn != other.ecn,
        ];
        (differ.iter().enumerate()).fold(0, |bits, (i, &d)| bits | u8::from(d) << i)
    }

    /// The names of the rewritten options, in `NAMES` order.
    pub fn rewritten_names(&self) -> Vec<&'static str> {
        (Self::NAMES.iter().enumerate())
            .filter(|(i, _)| self.rewritten >> i & 1 == 1)
            .map(|(_, &name)| name)
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Close {
    /// Side that sent FIN first ("both" when the FINs crossed).
    pub initiator: Option<Sides>,
    /// Side(s) that entered TIME_WAIT: the active closer(s).
    pub time_wait: Option<Sides>,
    /// When the (first) holder entered TIME_WAIT.
    pub time_wait_ts: Option<f64>,
    /// When it leaves TIME_WAIT: time_wait_ts + 2 * MSL.
    pub time_wait_until: Option<f64>,
    pub fin_ts: PerSide<Option<f64>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HalfClose {
    /// Side that sent its FIN first and then went on receiving data.
    pub side: Role,
    /// Unique payload bytes the other side sent after that FIN.
    pub bytes_after_fin: u64,
    /// From the first FIN to the other side's FIN (or its last segment if none).
    pub duration_ms: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rst {
    pub sender: Role,
    /// The sender's state just before the RST.
    pub state: TcpState,
    pub receiver_state: TcpState,
    pub kind: RstKind,
    pub ts: f64,
    /// RST segments in the connection (retransmitted or repeated ones included).
    pub count: u64,
}

/// What a probe was, by its TCP flags, named as nmap's docs name the scans that send it
/// (nmap(1), "Port Scanning Techniques").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// SYN (-sS; a refused or unanswered connect() looks the same).
    Syn,
    /// No flag at all (-sN).
    Null,
    /// FIN alone (-sF).
    Fin,
    /// FIN, PSH and URG (-sX).
    Xmas,
    /// ACK alone (-sA, -sW).
    Ack,
    /// FIN and ACK (-sM).
    Maimon,
    /// Any other combination without SYN and RST (--scanflags).
    Other,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 7] = [
        ProbeKind::Syn,
        ProbeKind::Null,
        ProbeKind::Fin,
        ProbeKind::Xmas,
        ProbeKind::Ack,
        ProbeKind::Maimon,
        ProbeKind::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Syn => "syn",
            ProbeKind::Null => "null",
            ProbeKind::Fin => "fin",
            ProbeKind::Xmas => "xmas",
            ProbeKind::Ack => "ack",
            ProbeKind::Maimon => "maimon",
            ProbeKind::Other => "other",
        }
    }
}

/// What answered a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeAnswer {
    /// A RST as RFC 9293 section 3.10.7.1 forms it: a closed port's answer.
    Rst,
    /// A SYN/ACK: an open port's answer to a SYN.
    SynAck,
    /// Nothing.
    None,
}

impl ProbeAnswer {
    pub const ALL: [ProbeAnswer; 3] = [ProbeAnswer::Rst, ProbeAnswer::SynAck, ProbeAnswer::None];

    pub fn name(self) -> &'static str {
        match self {
            ProbeAnswer::Rst => "rst",
            ProbeAnswer::SynAck => "syn_ack",
            ProbeAnswer::None => "none",
        }
    }
}

/// A connection that was only a probe and its answer (analyzers/probe.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub kind: ProbeKind,
    pub answer: ProbeAnswer,
    /// The side that sent the probe (the server when the port rule gave the prober the
    /// lower port).
    pub sender: Role,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Keepalive {
    /// Keep-alive probes sent by each side (RFC 1122 section 4.2.3.6).
    pub probes: PerSide<u64>,
    /// ACKs each side sent in answer to the other side's probes.
    pub acks: PerSide<u64>,
    /// Time between consecutive probes of a side (the first: since its previous segment).
    pub intervals_ms: PerSide<Vec<f64>>,
}

/// A number of segments and the payload bytes they carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Tally {
    pub segments: u64,
    pub bytes: u64,
}

impl Tally {
    /// Count one segment of `bytes` payload bytes.
    pub fn add(&mut self, bytes: u32) {
        self.segments += 1;
        self.bytes += u64::from(bytes);
    }
}

/// What one side sent again, and why (docs/health.md). `rto`, `fast` and `tlp` divide the
/// retransmissions by cause; `spurious` counts those shown unnecessary; `keepalive` and
/// `window_probe` are probes, not retransmissions; `lost_before_capture` and
/// `lost_after_capture` tell where the lost segments were lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Retransmissions {
    /// Sent again when the retransmission timer fired (RFC 6298 section 5).
    pub rto: Tally,
    /// Sent again on the receiver's duplicate ACKs or SACK blocks (RFC 5681 section 3.2,
    /// RFC 6675), during the recovery they started.
    pub fast: Tally,
    /// The last segment sent again as a tail-loss probe (RFC 8985 section 7).
    pub tlp: Tally,
    /// Retransmissions the receiver did not need: already acknowledged, reported by a
    /// D-SACK (RFC 2883), or acknowledged with the original's timestamp (RFC 3522).
    pub spurious: Tally,
    /// Keep-alive probes (RFC 1122 section 4.2.3.6).
    pub keepalive: Tally,
    /// Zero-window probes (RFC 9293 section 3.8.6.1).
    pub window_probe: Tally,
    /// Sequence space whose first transmission the capture did not see: later filled by a
    /// retransmission (lost upstream of the capture point) or acknowledged without ever
    /// being seen (segments: holes).
    pub lost_before_capture: Tally,
    /// Segments seen twice, the retransmission not spurious: lost after the capture point.
    pub lost_after_capture: Tally,
}

/// The zero windows one side advertised: its peer could not send.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct ZeroWindow {
    /// Times the side's window went to zero.
    pub periods: u64,
    /// Time the window stayed shut, all periods together (ms).
    pub stall_ms: f64,
    /// The longest period (ms).
    pub longest_ms: f64,
    /// Persist probes the peer sent into the shut window.
    pub probes: u64,
}

/// One side's round-trip times, sampled on the data it sent (analyzers/rtt.rs): from its
/// data segment at the capture point to the peer's answer at the capture point. Held in
/// whole microseconds (the samples' resolution), written as `*_ms` (`us_to_ms`).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Rtt {
    pub samples: u64,
    /// Nearest-rank percentiles and the maximum (None without samples).
    pub p50_us: Option<u32>,
    pub p90_us: Option<u32>,
    pub max_us: Option<u32>,
}

/// One side's payload rate: its `unique_bytes` over the time from its first data segment
/// to its last.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Throughput {
    /// From the side's first data segment to its last (microseconds; `duration_ms`).
    pub duration_us: u64,
    /// Bits per second, rounded (None over no time: at most one data segment).
    pub bits_per_s: Option<u64>,
}

/// Milliseconds of a whole number of microseconds: the double nearest to the decimal, as
/// `round3` gives (the quotient of two exact integers is correctly rounded).
pub fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Reuse {
    /// "http/1.1", "http/1.0", or null when the payload is not HTTP/1.x.
    pub protocol: Option<&'static str>,
    /// HTTP requests, or for other protocols the client's turns.
    pub requests: u64,
    pub responses: u64,
    /// Idle time between the end of each response and the next request.
    pub idle_gaps_ms: Vec<f64>,
}

/// One connection, from its first segment to its last, as every output format carries it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionRecord {
    pub id: u64,
    pub client: Endpoint,
    pub server: Endpoint,
    pub role_rule: RoleRule,
    /// An earlier connection on the same 4-tuple (port reuse), if any.
    pub previous_id: Option<u64>,
    pub first_ts: f64,
    pub last_ts: f64,
    pub duration_ms: f64,
    pub outcome: Outcome,
    pub handshake: Handshake,
    /// What each side offered in its first SYN or SYN/ACK (None: not captured).
    pub options: PerSide<Option<SynOptions>>,
    pub close: Close,
    pub half_close: Option<HalfClose>,
    pub rst: Option<Rst>,
    /// The probe the connection was, with its answer (None: not a probe).
    pub probe: Option<Probe>,
    pub keepalive: Keepalive,
    pub reuse: Reuse,
    pub states: PerSide<Vec<StateChange>>,
    pub final_state: PerSide<TcpState>,
    pub packets: PerSide<u64>,
    /// TCP payload bytes seen, retransmissions included.
    pub bytes: PerSide<u64>,
    /// Payload bytes in sequence space: retransmissions excluded, capture gaps included.
    pub unique_bytes: PerSide<u64>,
    pub retransmitted_bytes: PerSide<u64>,
    /// Bytes the capture missed (acknowledged but never seen).
    pub gap_bytes: PerSide<u64>,
    /// Segments the state table did not expect for that side.
    pub anomalies: PerSide<u64>,
    /// Frames of that side captured twice (src/duplicates.rs): each copy after the first is
    /// counted here and left out of every other count.
    pub duplicates: PerSide<u64>,
    /// Frames of that side shorter than their IP length says, not cut by the snap length
    /// (src/decode.rs `short_frame`): only the payload they held is counted.
    pub short_frames: PerSide<u64>,
    /// Each side's retransmissions by cause, and its probes (analyzers/health.rs).
    pub retransmissions: PerSide<Retransmissions>,
    /// The zero windows each side advertised.
    pub zero_window: PerSide<ZeroWindow>,
    /// Round-trip times sampled on each side's data.
    pub rtt: PerSide<Rtt>,
    /// Each side's payload rate.
    pub throughput: PerSide<Throughput>,
    /// The tunnels the connection came through, outermost first, the outer headers as the
    /// client sent them (None for plain traffic: the key is then left out).
    pub encapsulation: Option<crate::decode::Encapsulation>,
    /// The capture file the connection is in (`--per-file` only; None when files merge).
    pub file: Option<std::sync::Arc<str>>,
    /// Zeek's view of the connection (`--zeek`), the record's last key when present.
    pub zeek: Option<Box<crate::zeek::ZeekRecord>>,
}

pub const NS_PER_S: i64 = 1_000_000_000;
pub const NS_PER_MS: i64 = 1_000_000;

/// `ns / 1e9` as Python computes `ns / 1_000_000_000` on ints: the exact quotient, correctly
/// rounded to the nearest double (a plain `ns as f64 / 1e9` rounds twice: epoch
/// nanoseconds are beyond 2^53).
pub fn ns_to_s(ns: i64) -> f64 {
    match epoch_ns_to_s(ns) {
        Some(s) => s,
        None => div_round(ns as i128, NS_PER_S as i128),
    }
}

/// `ns / 1e9` correctly rounded, in 64-bit integers, for the common case of at least 2^19
/// whole seconds (every epoch timestamp): `div_round` then takes its slow exact path, as
/// `ns` is beyond 2^53. With s = ns / 10^9 in [2^p, 2^(p+1)), the quotient lies in the same
/// binade, so its 53-bit mantissa is ns * 2^k / 10^9 with k = 52 - p, rounded half to
/// even: (s << k) plus (r << k) / 10^9 for the remainder r < 10^9 < 2^30, which fits 64
/// bits while k < 34 (p > 18). None outside that range.
fn epoch_ns_to_s(ns: i64) -> Option<f64> {
    const MIN_SECONDS: u64 = 1 << 19;
    const D: u64 = NS_PER_S as u64;
    let ns = u64::try_from(ns).ok()?;
    let (s, r) = (ns / D, ns % D);
    if s < MIN_SECONDS {
        return None;
    }
    let p = 63 - s.leading_zeros(); // 19..=33: ns < 2^63
    let k = 52 - p;
    let scaled = r << k; // < 2^30 * 2^33
    let (q, rem) = (scaled / D, scaled % D);
    let mut m = (s << k) + q; // < 2^53
    let twice = 2 * rem;
    if twice > D || (twice == D && m & 1 == 1) {
        m += 1; // may reach 2^53, still exact
    }
    // m * 2^-k: both exact, so the product is exact (m <= 2^53 converted signed: one
    // instruction on x86-64, an unsigned u64 takes several)
    Some(m as i64 as f64 * f64::from_bits(((1023 - k) as u64) << 52))
}

/// Python's `round(ns / 1_000_000, 3)`: milliseconds, correctly rounded, then rounded to
/// three decimals (round-half-even on the double's exact value, as Python does).
/// Inline: the common case is a few instructions (`millis::rounded_micros`), less than a call.
#[inline]
pub fn ns_to_ms(ns: i64) -> f64 {
    match millis::rounded_micros(ns) {
        Some(ms) => ms,
        None => round3(div_round(ns as i128, NS_PER_MS as i128)),
    }
}

/// Python's `round(x, 3)`: correctly rounded to three decimals. Rust's `{:.3}` formats the
/// exact binary value with round-half-even, as Python's dtoa does.
pub fn round3(x: f64) -> f64 {
    round_decimals(x, 1000)
}

/// Python's `round(x, 6)` (the Zeek view's durations).
pub fn round6(x: f64) -> f64 {
    round_decimals(x, 1_000_000)
}

/// Python's `round(x, n)` for `scale` = 10^n (n <= 6): correctly rounded to n decimals.
fn round_decimals(x: f64, scale: u128) -> f64 {
    if !x.is_finite() {
        return x;
    }
    // Exactly, in integers: x = m * 2^e, so x * scale = m * scale / 2^-e, rounded half to
    // even; then the nearest double to that many units (what parsing the text gives).
    let (m, e) = decompose(x.abs());
    if e >= 0 {
        return x; // an integer already
    }
    let shift = e.unsigned_abs();
    let units = if shift >= 100 {
        0 // m * scale < 2^73: less than half a unit
    } else {
        let scaled = m * scale;
        let (q, r) = (scaled >> shift, scaled & ((1u128 << shift) - 1));
        let half = 1u128 << (shift - 1);
        q + u128::from(r > half || (r == half && q & 1 == 1))
    };
    let y = div_round(units as i128, scale as i128);
    if x.is_sign_negative() {
        -y
    } else {
        y
    }
}

/// n / d (d > 0) correctly rounded to f64, ties to even.
pub fn div_round(n: i128, d: i128) -> f64 {
    debug_assert!(d > 0);
    if n < 0 {
        return -div_round(-n, d);
    }
    let (n, d) = (n as u128, d as u128);
    if n <= EXACT && d <= EXACT {
        // both exact as doubles: IEEE division rounds the exact quotient once, to even
        return to_f64(n) / to_f64(d);
    }
    let x = to_f64(n) / to_f64(d);
    if !x.is_finite() || x == 0.0 && n == 0 {
        return x;
    }
    if let Some(exact) = settle(n, d, x) {
        return exact;
    }
    walk_to_nearest(n, d, x)
}

/// From an estimate `x` of n/d (within a few ulps), the double nearest to n/d, ties to even:
/// step to the neighbour while n/d lies beyond the midpoint towards it.
fn walk_to_nearest(n: u128, d: u128, mut x: f64) -> f64 {
    for _ in 0..4 {
        let up = x.next_up();
        match cmp_midpoint(n, d, x, up) {
            Ordering::Greater => {
                x = up;
                continue;
            }
            Ordering::Equal => {
                if mantissa_odd(x) {
                    x = up;
                }
                break;
            }
            Ordering::Less => {}
        }
        let down = x.next_down();
        match cmp_midpoint(n, d, down, x) {
            Ordering::Less => x = down,
            Ordering::Equal => {
                if mantissa_odd(x) {
                    x = down;
                }
                break;
            }
            Ordering::Greater => break,
        }
    }
    x
}

/// Integers up to 2^53 are exact as doubles.
const EXACT: u128 = 1 << 53;

/// `n as f64` through u64 where it fits (u128 to f64 is a long software routine).
fn to_f64(n: u128) -> f64 {
    match u64::try_from(n) {
        Ok(small) => small as f64,
        Err(_) => n as f64,
    }
}

/// The correctly rounded n/d from an estimate `x` (positive, normal) a few ulps off at
/// most, exactly: with x = m * 2^e, diff = n * 2^-e - m * d is (n/d - x) in units of
/// 2^e / d, so half an ulp is d / 2 and a step of one ulp moves diff by d. None when the
/// numbers do not fit or a power of two is near (its ulp below is half the one above):
/// then the general walk.
fn settle(n: u128, d: u128, x: f64) -> Option<f64> {
    const LOW: u128 = 1 << 52;
    const HIGH: u128 = 1 << 53;
    let (mut m, e) = decompose(x);
    if e >= 0 || m == LOW {
        return None;
    }
    let shift = e.unsigned_abs();
    // n * 2^shift below 2^125 and d below 2^64 (m < 2^53): nothing below can overflow,
    // and the products are plain 64 x 64 bit multiplications
    if n.leading_zeros() < shift + 3 || d > u128::from(u64::MAX) {
        return None;
    }
    let lhs = (n << shift) as i128;
    let rhs = (m * d) as i128;
    let mut twice = 2 * (lhs - rhs);
    let d = d as i128;
    // the estimate (n and d rounded to doubles, then divided) is off by an ulp or two
    for _ in 0..3 {
        if twice > d {
            m += 1;
            twice -= 2 * d;
        } else if twice < -d {
            m -= 1;
            twice += 2 * d;
        } else {
            break;
        }
    }
    if m <= LOW || m >= HIGH - 1 {
        return None;
    }
    // m in (2^52, 2^53 - 1): x and both neighbours share the exponent e
    let x = f64::from_bits(((e + 1075) as u64) << 52 | (m - LOW) as u64);
    if twice.abs() < d {
        return Some(x);
    }
    if twice == d {
        return Some(if mantissa_odd(x) { x.next_up() } else { x });
    }
    if twice == -d {
        return Some(if mantissa_odd(x) { x.next_down() } else { x });
    }
    None
}

fn mantissa_odd(x: f64) -> bool {
    x.to_bits() & 1 == 1
}

/// Compare n/d with the midpoint of two adjacent non-negative doubles a < b.
fn cmp_midpoint(n: u128, d: u128, a: f64, b: f64) -> Ordering {
    // midpoint = (a + b) / 2 = (ma * 2^ea + mb * 2^eb) / 2, written as m * 2^e exactly
    let (ma, ea) = decompose(a);
    let (mb, eb) = decompose(b);
    let e = ea.min(eb);
    let m = (ma << (ea - e)) + (mb << (eb - e)); // midpoint = m * 2^(e-1)
    cmp_fraction(n, d, m, e - 1)
}

/// (mantissa, exponent) with x = mantissa * 2^exponent, for finite x >= 0.
fn decompose(x: f64) -> (u128, i32) {
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = (bits & ((1u64 << 52) - 1)) as u128;
    if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u128 << 52), exp - 1075)
    }
}

/// Compare n/d with m * 2^e, exactly (saturating where a side cannot fit: then it is far
/// larger than the other).
fn cmp_fraction(n: u128, d: u128, m: u128, e: i32) -> Ordering {
    if e >= 0 {
        // n vs m * d * 2^e
        let rhs = m.checked_mul(d).and_then(|v| {
            if e >= 127 {
                None
            } else {
                v.checked_mul(1u128 << e)
            }
        });
        match rhs {
            Some(r) => n.cmp(&r),
            None => Ordering::Less,
        }
    } else {
        // n * 2^-e vs m * d
        let shift = (-e) as u32;
        let lhs = if shift >= 127 {
            None
        } else {
            n.checked_mul(1u128 << shift)
        };
        let rhs = m.checked_mul(d);
        match (lhs, rhs) {
            (Some(l), Some(r)) => l.cmp(&r),
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (None, None) => Ordering::Equal,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn epoch_seconds_match_the_exact_division() {
        let mut n: u64 = 11;
        let check = |ns: i64| {
            let exact = div_round(i128::from(ns), i128::from(NS_PER_S));
            assert_eq!(ns_to_s(ns).to_bits(), exact.to_bits(), "{ns}");
        };
        for ns in [
            0,
            -1,
            i64::MIN,
            i64::MAX,
            (1 << 19) * NS_PER_S - 1,
            (1 << 19) * NS_PER_S,
            (1 << 33) * NS_PER_S,
            (1 << 33) * NS_PER_S - 1,
            1_700_000_000_000_000_000,
            1_700_000_000_123_456_789,
        ] {
            check(ns);
        }
        for _ in 0..200_000 {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            check((n >> 1) as i64); // anywhere in i64
            check(1_600_000_000_000_000_000 + (n >> 4) as i64 % 200_000_000_000_000_000);
            // remainders near a power of two's half ulp (no exact ties: k >= 19)
            let s = (1u64 << 19) + (n >> 35);
            let k = 52 - (63 - s.leading_zeros());
            let half = NS_PER_S as u64 >> (k + 1).min(9);
            check((s * NS_PER_S as u64 + half) as i64);
            check((s * NS_PER_S as u64 + (n >> 34) % NS_PER_S as u64) as i64);
        }
    }
    use super::*;

    #[test]
    fn division_is_correctly_rounded() {
        // values checked against Python: int / int
        assert_eq!(ns_to_s(1_700_000_000_123_456_789), 1700000000.1234567);
        assert_eq!(ns_to_s(0), 0.0);
        assert_eq!(ns_to_s(1), 1e-9);
        assert_eq!(ns_to_s(-1_500_000_000), -1.5);
        assert_eq!(ns_to_ms(1_234_567), 1.235);
        assert_eq!(ns_to_ms(40_492_000), 40.492);
    }

    /// The reference: Rust's exact formatting, parsed back.
    fn round3_by_text(x: f64) -> f64 {
        format!("{x:.3}").parse().unwrap_or(x)
    }

    #[test]
    fn round6_matches_python() {
        // values from Python: round(x, 6)
        assert_eq!(round6(7e-6), 7e-6);
        assert_eq!(round6(1.2345675), 1.234568);
        assert_eq!(round6(0.0000005), 0.0); // the double is just below the tie
        assert_eq!(round6(0.0000015), 0.000002);
        assert_eq!(round6(123.4567891), 123.456789);
        assert_eq!(round6(1e-300), 0.0);
    }

    #[test]
    fn round3_matches_rounding_through_text() {
        for x in [
            0.0,
            -0.0,
            0.0625,
            0.0005,
            0.0015,
            0.0025,
            -0.0625,
            1.2345,
            2.5e-4,
            5e-4,
            1e-300,
            -1e-300,
            123456.7895,
            4503599627370495.5,
            1e300,
            0.1,
            0.3,
            40.4925,
        ] {
            let (a, b) = (round3(x), round3_by_text(x));
            assert_eq!(a.to_bits(), b.to_bits(), "{x}");
        }
        let mut n: u64 = 7;
        for _ in 0..50000 {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let ms = div_round(i128::from(n >> 24), 1_000_000); // up to ~1e13 ns
            assert_eq!(round3(ms).to_bits(), round3_by_text(ms).to_bits(), "{ms}");
            let tie = (n >> 40) as f64 / 2048.0; // many exact ties at the 4th decimal
            assert_eq!(
                round3(tie).to_bits(),
                round3_by_text(tie).to_bits(),
                "{tie}"
            );
            let any = f64::from_bits(n);
            if any.is_finite() {
                assert_eq!(
                    round3(any).to_bits(),
                    round3_by_text(any).to_bits(),
                    "{any}"
                );
            }
        }
    }

    /// The general walk alone, for comparison with the shortcuts.
    fn div_by_walk(n: u128, d: u128) -> f64 {
        walk_to_nearest(n, d, n as f64 / d as f64)
    }

    #[test]
    fn epoch_division_matches_the_general_walk() {
        let mut n: u64 = 3;
        for _ in 0..50000 {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let ns = u128::from(n >> 3); // epoch nanoseconds and far beyond
            for d in [1_000_000_000u128, 1_000_000, 3, 1000] {
                assert_eq!(
                    div_round(ns as i128, d as i128),
                    div_by_walk(ns, d),
                    "{ns}/{d}"
                );
            }
        }
        // exact ties: m + 1/2 for m just below 2^53 (odd and even) needs 54 bits
        for m in [(1u128 << 53) - 3, (1u128 << 53) - 2] {
            let n = (2 * m + 1) * 1_000_000_000;
            assert_eq!(
                div_round(n as i128, 2_000_000_000),
                div_by_walk(n, 2_000_000_000)
            );
        }
        assert_eq!(
            div_round(((1i128 << 53) - 3) * 2 + 1, 2),
            9007199254740990.0
        );
    }

    #[test]
    fn division_matches_exact_rounding_on_many_values() {
        // For n < 2^53 a double division is already correctly rounded: compare there.
        let mut n: i64 = 1;
        for _ in 0..20000 {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = (n >> 12).abs();
            assert_eq!(div_round(v as i128, 1_000_000_000), v as f64 / 1e9);
            assert_eq!(div_round(v as i128, 1_000_000), v as f64 / 1e6);
        }
    }
}
