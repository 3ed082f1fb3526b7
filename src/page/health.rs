//! The report's health over time: when retransmissions were sent (by cause) and when
//! connections were stalled on a zero window (docs/health.md), placed on the capture's time
//! axis from the segment traces the report makes of every connection (their verdicts and
//! times). A record counts what lies beyond its trace (`--max-segments`) too; those
//! retransmissions have no time here and are counted apart (`unplaced`), so the chart never
//! claims more precision than the traces give.
//!
//! Memory: one double per traced retransmission and two per zero-window period, as the
//! handshake times keep one per connection.

use crate::analyzers::health::verdict;
use crate::analyzers::trace::{Mark, SegmentTrace};
use crate::model::{ConnectionRecord, Role};

/// The causes a retransmission has, in the chart's order, with their verdict bits.
pub const CAUSES: [(&str, u16); 3] = [
    ("rto", verdict::RTO),
    ("fast", verdict::FAST),
    ("tlp", verdict::TLP),
];

/// The verdicts other than a retransmission's, in the order a label shows them, with their
/// words (tcptrace/report/marks.py `WORDS`: the terminal ladder's, which a test holds equal).
const WORDS: [(u16, &str); 8] = [
    (verdict::SPURIOUS, "spurious"),
    (verdict::OUT_OF_ORDER, "out-of-order"),
    (verdict::KEEP_ALIVE, "keep-alive"),
    (verdict::ZERO_WINDOW_PROBE, "window-probe"),
    (verdict::DUPLICATE_ACK, "dup-ack"),
    (verdict::ZERO_WINDOW, "zero-window"),
    (verdict::LOST_SEGMENT, "lost-segment"),
    (verdict::ACK_LOST_SEGMENT, "acks-unseen"),
];

/// A drawn segment's marks: its verdicts in words (`retransmission:rto` ...), then `rst`
/// for a RST (drawn as a cross). The trace's own marks judge without the receiver's ACKs;
/// the ladder and the report draw the verdicts (docs/pictures.md).
pub fn mark_words(bits: u16, mark: Option<Mark>) -> impl Iterator<Item = &'static str> {
    let cause = if bits & verdict::RTO != 0 {
        "retransmission:rto"
    } else if bits & verdict::FAST != 0 {
        "retransmission:fast"
    } else if bits & verdict::TLP != 0 {
        "retransmission:tlp"
    } else {
        "retransmission"
    };
    let retransmission = (bits & verdict::RETRANSMISSION != 0).then_some(cause);
    let others = WORDS
        .iter()
        .filter(move |&&(bit, _)| bits & bit != 0)
        .map(|&(_, word)| word);
    let rst = (mark == Some(Mark::Rst)).then_some("rst");
    retransmission.into_iter().chain(others).chain(rst)
}

/// Retransmission times by cause and zero-window periods, fed every record with its trace.
#[derive(Default)]
pub struct HealthTimeline {
    /// Epoch seconds of each traced retransmission, per cause (`CAUSES` order).
    pub sent: [Vec<f64>; 3],
    /// Retransmissions the records count beyond their traces (or untraced): not placed.
    pub unplaced: u64,
    /// Each zero-window period: when the window shut and when it opened again (epoch s).
    pub shut: Vec<f64>,
    pub opened: Vec<f64>,
    /// The latest last packet (epoch s; 0 before any record): the chart's axis ends there,
    /// not at the last TIME_WAIT's end as the page's `t_end` does.
    pub last_packet: f64,
}

impl HealthTimeline {
    /// One connection: its traced retransmissions and zero-window periods. A period still
    /// open when the trace ends lasts until the connection's last packet, as the record's
    /// `zero_window` counts it.
    pub fn add(&mut self, r: &ConnectionRecord, trace: Option<&SegmentTrace>) {
        let counted: u64 = [&r.retransmissions.client, &r.retransmissions.server]
            .iter()
            .map(|t| t.rto.segments + t.fast.segments + t.tlp.segments)
            .sum();
        self.last_packet = self.last_packet.max(r.last_ts);
        let Some(trace) = trace else {
            self.unplaced += counted;
            return;
        };
        let mut placed = 0u64;
        // when each side's window shut (index: Role::index), while it is shut
        let mut shut_at: [Option<f64>; 2] = [None, None];
        for s in &trace.segments {
            let at = s.ts_ns as f64 / 1e9;
            if s.verdict & verdict::RETRANSMISSION != 0 {
                if let Some(i) = CAUSES.iter().position(|&(_, bit)| s.verdict & bit != 0) {
                    self.sent[i].push(at);
                    placed += 1;
                }
            }
            let side = match s.role {
                Role::Client => 0,
                Role::Server => 1,
            };
            if s.verdict & verdict::ZERO_WINDOW != 0 {
                shut_at[side].get_or_insert(at);
            } else if s.window > 0 {
                if let Some(start) = shut_at[side].take() {
                    self.shut.push(start);
                    self.opened.push(at);
                }
            }
        }
        for start in shut_at.into_iter().flatten() {
            self.shut.push(start);
            self.opened.push(r.last_ts.max(start));
        }
        self.unplaced += counted.saturating_sub(placed);
    }

    /// The connections stalled at once over time: steps `(t since t0, how many)` reduced
    /// as the TIME_WAIT timeline's are (`super::sweep`), and the most at once.
    pub fn stalled(&self, t0: f64) -> (Vec<(f64, i64)>, i64) {
        super::sweep(&self.shut, &self.opened, t0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::trace::TracedSegment;
    use crate::states::TcpState;

    fn segment(
        ms: i64,
        role: Role,
        window: i64,
        verdict: u16,
    ) -> (TracedSegment, [Vec<TcpState>; 2]) {
        let segment = TracedSegment {
            ts_ns: 1_000_000_000_000 + ms * 1_000_000,
            role,
            flags: 0x10,
            seq: 0,
            ack: None,
            length: 0,
            window,
            states: [TcpState::Established, TcpState::Established],
            entered: [0, 0],
            mark: None,
            verdict,
        };
        (segment, [vec![], vec![]])
    }

    #[test]
    fn retransmissions_are_placed_by_cause_and_the_rest_counted_apart() {
        let mut r = crate::writers::fixture::records().swap_remove(0);
        r.retransmissions = Default::default();
        for _ in 0..3 {
            r.retransmissions.server.rto.add(100);
        }
        r.retransmissions.client.fast.add(100);
        r.last_ts = 1000.5;
        let rtx = verdict::RETRANSMISSION;
        let trace = SegmentTrace::of(
            1_000_000_000_000,
            vec![
                segment(10, Role::Server, 100, rtx | verdict::RTO),
                segment(
                    20,
                    Role::Client,
                    100,
                    rtx | verdict::FAST | verdict::SPURIOUS,
                ),
                // the client's window shuts twice; the server's once, until the end
                segment(30, Role::Client, 0, verdict::ZERO_WINDOW),
                segment(40, Role::Client, 0, verdict::ZERO_WINDOW),
                segment(50, Role::Server, 100, verdict::ZERO_WINDOW_PROBE),
                segment(60, Role::Client, 500, 0),
                segment(70, Role::Server, 0, verdict::ZERO_WINDOW),
            ],
        );
        let mut timeline = HealthTimeline::default();
        timeline.add(&r, Some(&trace));
        assert_eq!(timeline.sent, [vec![1000.01], vec![1000.02], vec![]]);
        assert_eq!(timeline.unplaced, 2); // two of the server's three RTOs not traced
        assert_eq!(timeline.shut, [1000.03, 1000.07]);
        assert_eq!(timeline.opened, [1000.06, 1000.5]);
        assert_eq!(timeline.last_packet, 1000.5);
        let (steps, peak) = timeline.stalled(1000.0);
        assert_eq!(peak, 1);
        assert_eq!(steps.len(), 5);
        // untraced: everything counted apart
        timeline.add(&r, None);
        assert_eq!(timeline.unplaced, 6);
    }
}
