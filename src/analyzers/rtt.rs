//! Round-trip times over the connection and each side's throughput (docs/health.md, "RTT
//! over the connection" and "Throughput").
//!
//! At a passive capture point a sample for data sent by side A is the time from A's data
//! segment passing the capture point to the peer's answer passing it: the leg from the
//! capture point to the peer and back (with the peer's ACK delay in it), as BSD's timer,
//! the classic tcptrace's "RTT samples" and Wireshark's `tcp.analysis.ack_rtt` measure.
//!
//! Each side has at most one timed segment at a time, as BSD TCP times one (fixed state,
//! no allocation per segment): a data segment sending new sequence space starts the timing
//! when none is running. The peer's first segment that acknowledges all of it, or that
//! acknowledges part of it and echoes its TSval in TSecr (RFC 7323 section 4.1: the echo
//! names the transmission), takes the sample. Karn and Partridge (RFC 6298 section 3): any
//! retransmission by the side, and any hole in what it sent, cancels the timing, so no
//! sample comes from a segment retransmitted or covered by a retransmission.
//!
//! Memory: 8 bytes in the connection (one pointer); a connection with payload gets a box
//! of the timing state and its samples (`samples::Samples`: exact up to a bound, then a
//! log-linear histogram), so the memory stays bounded by the live connections.

mod samples;

use super::health::OptionBytes;
use super::{Analyzer, ConnEvent, Finish};
use crate::decode::ACK;
use crate::model::{ConnectionRecord, PerSide, Throughput};
use crate::seqnum::seq_diff;
use samples::Samples;

/// One side's timing of the data it sends, and the times of its first and last data
/// segments (for the throughput).
#[derive(Debug, Default)]
struct SideRtt {
    /// It has sent data (the two times below are set).
    sent_data: bool,
    first_data_ns: i64,
    last_data_ns: i64,
    /// The timed segment: when it passed, its sequence space [start, end), and its TSval
    /// (`stamped`: it carried one).
    timed_ns: i64,
    start: u32,
    end: u32,
    tsval: u32,
    timing: bool,
    stamped: bool,
    samples: Samples,
}

/// Both sides (index: `Role::index`).
#[derive(Debug, Default)]
struct RttState {
    sides: [SideRtt; 2],
}

/// RTT samples and data times of both sides; nothing until the first payload.
#[derive(Debug, Default)]
pub struct RttAnalyzer {
    state: Option<Box<RttState>>,
    /// The box of a connection that ended, kept for this one's first payload (see
    /// `reuse_box`).
    spare: Option<Box<RttState>>,
}

impl Analyzer for RttAnalyzer {
    #[inline(always)] // see Analyzers::on
    fn on_event(&mut self, _event: &ConnEvent<'_>) {}

    fn finish(&mut self, record: &mut ConnectionRecord, _how: &Finish) {
        let Some(st) = self.state.as_deref_mut() else {
            return;
        };
        let [c, s] = &mut st.sides;
        record.rtt = PerSide::new(c.samples.summary(), s.samples.summary());
        record.throughput = PerSide::new(
            throughput(c, record.unique_bytes.client),
            throughput(s, record.unique_bytes.server),
        );
    }
}

impl RttAnalyzer {
    /// Keep the box of `old` (a connection that ended, its record made) for this one's
    /// first payload: half the connections allocated one, and freed it at the next.
    pub fn reuse_box(&mut self, old: &mut RttAnalyzer) {
        if self.spare.is_none() {
            self.spare = old.state.take().or_else(|| old.spare.take());
        }
    }
}

/// The payload bytes a side delivered in order (`unique_bytes`) over the time from its
/// first data segment to its last, in bits per second, rounded (none over no time). The
/// time is taken in whole microseconds, as the record's milliseconds show it.
fn throughput(side: &SideRtt, bytes: u64) -> Throughput {
    let span_us = u64::try_from((side.last_data_ns - side.first_data_ns + 500) / 1000);
    let span_us = span_us.unwrap_or(0);
    let bits_per_s =
        (span_us > 0 && bytes > 0).then(|| (bytes as f64 * 8e6 / span_us as f64).round() as u64);
    Throughput {
        duration_us: span_us,
        bits_per_s,
    }
}

impl RttAnalyzer {
    /// A non-RST segment from side `me` (`snd_nxt`: its SND.NXT before the segment;
    /// `peer_window`: the window the peer last advertised, -1 for none yet; `options`:
    /// the segment's option bytes, read for its timestamps only when a timing needs them).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        me: usize,
        ts_ns: i64,
        flags: u16,
        seq: u32,
        ack: u32,
        payload_len: u32,
        snd_nxt: Option<u32>,
        peer_window: i32,
        options: OptionBytes<'_>,
    ) {
        // inline only the tests most segments stop at; the rest is out of line, once a
        // round trip or less often
        let Some(st) = self.state.as_deref_mut() else {
            if payload_len != 0 {
                self.first_data(me, ts_ns, seq, payload_len, snd_nxt, peer_window, options);
            }
            return;
        };
        let timed = &mut st.sides[1 - me];
        if timed.timing && flags & ACK != 0 && seq_diff(ack, timed.start) > 0 {
            timed.answered(ts_ns, ack, options);
        }
        if payload_len != 0 {
            let side = &mut st.sides[me];
            side.last_data_ns = ts_ns;
            if snd_nxt != Some(seq) || !side.timing {
                side.data(ts_ns, seq, payload_len, snd_nxt, peer_window, options);
            }
        }
    }

    /// The connection's first payload: the box.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn first_data(
        &mut self,
        me: usize,
        ts_ns: i64,
        seq: u32,
        payload_len: u32,
        snd_nxt: Option<u32>,
        peer_window: i32,
        options: OptionBytes<'_>,
    ) {
        let spare = &mut self.spare;
        let state = self.state.get_or_insert_with(|| match spare.take() {
            Some(mut spare) => {
                *spare = RttState::default();
                spare
            }
            None => Box::default(),
        });
        let side = &mut state.sides[me];
        side.last_data_ns = ts_ns;
        side.data(ts_ns, seq, payload_len, snd_nxt, peer_window, options);
    }
}

/// A segment's (TSval, TSecr) (RFC 7323 section 3), read only when a timing needs them:
/// Linux's layout (NOP, NOP, timestamps) here, any other by the options walk.
#[inline]
fn stamps(options: OptionBytes<'_>) -> Option<(u32, u32)> {
    let bytes = options.bytes();
    if let Some([1, 1, 8, 10, v0, v1, v2, v3, e0, e1, e2, e3]) = bytes.first_chunk::<12>() {
        let val = u32::from_be_bytes([*v0, *v1, *v2, *v3]);
        return Some((val, u32::from_be_bytes([*e0, *e1, *e2, *e3])));
    }
    crate::connection::timestamps(options.data, options.tcp_off, options.len)
}

impl SideRtt {
    /// A data segment of this side that is not new data while one is timed: the side's
    /// first, one that starts the timing, or one sent again or beyond a hole.
    #[inline(never)]
    fn data(
        &mut self,
        ts_ns: i64,
        seq: u32,
        payload_len: u32,
        snd_nxt: Option<u32>,
        peer_window: i32,
        options: OptionBytes<'_>,
    ) {
        if !self.sent_data {
            self.sent_data = true;
            self.first_data_ns = ts_ns;
        }
        let Some(nxt) = snd_nxt else {
            return; // data on a SYN: the handshake's RTT times it
        };
        if seq != nxt {
            // sent before (Karn), or beyond a hole the capture missed: what the peer
            // acknowledges next may wait for a retransmission
            self.timing = false;
            return;
        }
        if self.timing || peer_window == 0 {
            return; // one timed segment at a time; a persist probe waits on the window
        }
        let tsval = stamps(options).map(|(val, _)| val);
        self.timing = true;
        self.timed_ns = ts_ns;
        self.start = seq;
        self.end = seq.wrapping_add(payload_len);
        self.stamped = tsval.is_some();
        self.tsval = tsval.unwrap_or(0);
    }

    /// The peer acknowledged part of the timed segment at least: a sample if all of it,
    /// or if it echoes the segment's own TSval (RFC 7323 section 4.1). The echo counts
    /// only with an ACK into the segment: TSval clocks tick slowly (Linux: 1 ms), so an
    /// echo alone may answer an earlier segment that carried the same TSval. It serves the
    /// large segments a capture on a sender with TSO or a receiver with GRO sees, which
    /// the peer acknowledges in parts: the first part's ACK is the round trip.
    #[inline(never)]
    fn answered(&mut self, ts_ns: i64, ack: u32, options: OptionBytes<'_>) {
        let covered = seq_diff(ack, self.end) >= 0;
        if covered || (self.stamped && stamps(options).is_some_and(|(_, ecr)| ecr == self.tsval)) {
            self.timing = false;
            self.samples.add(ts_ns - self.timed_ns);
        }
    }
}

#[cfg(test)]
mod tests;
