//! Analyzers: each watches one aspect of a connection, fed typed events by the connection
//! core, and fills its part of the record. An analyzer never reads the connection: all it
//! needs comes in the events. Adding one is one file, one line in `analyzers!` below, and
//! its part of the record. Dispatch is static (one struct of all analyzers per connection,
//! no boxing).

pub mod close;
pub mod handshake;
pub mod health;
pub mod http;
pub mod keepalive;
pub mod options;
pub mod probe;
pub mod reuse;
pub mod rst;
pub mod rtt;
pub mod trace;

use crate::model::{ConnectionRecord, Role, SynOptions};
use crate::states::TcpState;

/// What the connection core tells the analyzers, in the order it happens.
#[derive(Clone, Copy, Debug)]
pub enum ConnEvent<'a> {
    /// A segment from `role` arrived (every segment, RST ones included), before any other
    /// event it causes.
    Arrived { role: Role, ts_ns: i64 },
    /// An endpoint entered a state (assumed at the start of a mid-connection capture, or by
    /// a transition of the table).
    StateEntered {
        role: Role,
        state: TcpState,
        ts_ns: i64,
    },
    /// A SYN from `role`, with the ACK flag or not, its TCP timestamps (TSval, TSecr) and
    /// the options it offered.
    Syn {
        role: Role,
        ts_ns: i64,
        with_ack: bool,
        stamp: Option<(u32, u32)>,
        options: SynOptions,
    },
    /// The client's first ACK of the server's SYN, or the segment that synchronized the
    /// second side of a simultaneous open; with its TCP timestamps.
    HandshakeCompleted {
        ts_ns: i64,
        stamp: Option<(u32, u32)>,
    },
    /// A non-RST segment, after its ACK field was processed and before its payload:
    /// `snd_nxt` is the sender's SND.NXT before the segment, `peer_window` the window the
    /// peer last advertised (-1: none yet), `previous_ns` the connection's previous segment.
    /// (The health analyzer is told more, `health::Seg`, by a call of its own.)
    Segment {
        role: Role,
        ts_ns: i64,
        previous_ns: i64,
        flags: u16,
        seq: u32,
        ack: u32,
        payload_len: u32,
        snd_nxt: Option<u32>,
        peer_window: i32,
    },
    /// `role` sent its FIN (the first one its state allowed).
    Fin { role: Role, ts_ns: i64 },
    /// The peer acknowledged the FIN of `role`.
    FinAcked { role: Role, ts_ns: i64 },
    /// A RST from `role`; the states of sender and receiver just before it, its sequence
    /// number and flags.
    Rst {
        role: Role,
        ts_ns: i64,
        sender: TcpState,
        receiver: TcpState,
        sender_opened: bool,
        assumed: bool,
        seq: u32,
        flags: u16,
    },
    /// New in-order stream data from `role` (`data`: its bytes, when captured and wanted).
    StreamData {
        role: Role,
        ts_ns: i64,
        length: u32,
        data: Option<&'a [u8]>,
    },
    /// Bytes from `role` missing from the capture.
    StreamGap { role: Role, ts_ns: i64, length: u32 },
    /// A segment's timestamp leapt more than a day ahead of the connection's previous one
    /// (a damaged timestamp): it counts for the previous segment's time (connection.rs).
    ClockLeap { role: Role, ts_ns: i64 },
    /// A capture duplicate of a recent segment from `role` (src/duplicates.rs), left out of
    /// every other event; only SYN ones are told (the handshake is timed from the last copy).
    SynCopy {
        role: Role,
        ts_ns: i64,
        with_ack: bool,
        options: SynOptions,
    },
}

/// What a record is being finished with.
#[derive(Clone, Copy, Debug)]
pub struct Finish {
    /// Maximum segment lifetime: TIME_WAIT lasts 2 * MSL.
    pub msl_s: f64,
    /// The connection's last segment (a window still shut is shut until then).
    pub last_ns: i64,
}

/// One aspect of a connection.
pub trait Analyzer {
    fn on_event(&mut self, event: &ConnEvent<'_>);

    /// Whether the stream of `role` should hand over the bytes of its next data.
    fn wants_bytes(&self, role: Role) -> bool {
        let _ = role;
        false
    }

    /// Fill this analyzer's part of the record. Analyzers finish in declaration order, so
    /// one may read a part an earlier one filled (close reads rst).
    fn finish(&mut self, record: &mut ConnectionRecord, how: &Finish);
}

macro_rules! analyzers {
    ($($field:ident: $ty:ty),* $(,)?) => {
        /// Every analyzer of one connection.
        #[derive(Debug, Default)]
        pub struct Analyzers {
            $(pub $field: $ty,)*
        }

        impl Analyzers {
            /// Inlined at every call site, which builds one known variant: the other
            /// analyzers' matches fold away (a segment's `Arrived` is one store), whatever
            /// the inliner's budget decides elsewhere.
            #[inline(always)]
            pub fn on(&mut self, event: &ConnEvent<'_>) {
                $(self.$field.on_event(event);)*
            }

            #[inline]
            pub fn wants_bytes(&self, role: Role) -> bool {
                false $(|| self.$field.wants_bytes(role))*
            }

            pub fn finish(&mut self, record: &mut ConnectionRecord, how: &Finish) {
                $(self.$field.finish(record, how);)*
            }
        }
    };
}

analyzers! {
    handshake: handshake::HandshakeAnalyzer,
    rst: rst::RstAnalyzer,
    close: close::CloseAnalyzer,
    probe: probe::ProbeAnalyzer,
    keepalive: keepalive::KeepaliveAnalyzer,
    reuse: reuse::ReuseAnalyzer,
    options: options::OptionsAnalyzer,
    health: health::HealthAnalyzer,
    rtt: rtt::RttAnalyzer,
}

impl Analyzers {
    /// Take the buffers of `old` (a connection that ended, its record made) that these
    /// analyzers fill again, instead of allocating them anew (see `crate::recycle`).
    pub fn reuse_buffers(&mut self, old: &mut Analyzers) {
        self.handshake.reuse_lists(&mut old.handshake);
        self.rtt.reuse_box(&mut old.rtt);
        self.options.reuse_box(&mut old.options);
        self.reuse.reuse_box(&mut old.reuse);
    }
}
