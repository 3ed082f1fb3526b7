//! Close, TIME_WAIT, half-close and the outcome, from the states each side went through.
//!
//! The active closer is the endpoint that went through FIN_WAIT_1 (it sent FIN before it had
//! received one); the TIME_WAIT holder is whoever reached TIME_WAIT. With crossing FINs
//! (simultaneous close, RFC 793 figure 13) both did both.

use super::{Analyzer, ConnEvent, Finish};
use crate::model::{
    ns_to_ms, ns_to_s, Close, ConnectionRecord, HalfClose, Outcome, PerSide, Role, RstKind, Sides,
};
use crate::states::{synchronized, TcpState};

#[derive(Debug, Default)]
struct CloseSide {
    /// States entered, as a bit set by `TcpState as u16`.
    visited: u16,
    fin_ns: Option<i64>,
    fin_acked: bool,
    last_ns: i64,
}

impl CloseSide {
    fn visited(&self, state: TcpState) -> bool {
        self.visited & (1 << state as u16) != 0
    }
}

/// FINs, TIME_WAIT, half-close data and what the handshake showed, for the outcome.
#[derive(Debug, Default)]
pub struct CloseAnalyzer {
    sides: [CloseSide; 2],
    /// When the first holder entered TIME_WAIT.
    time_wait_ns: Option<i64>,
    /// The side whose FIN came first, and the data the other side sent after it.
    first_fin: Option<Role>,
    bytes_after_fin: u64,
    syn_seen: bool,
    synack_seen: bool,
}

impl Analyzer for CloseAnalyzer {
    #[inline(always)] // see Analyzers::on
    fn on_event(&mut self, event: &ConnEvent<'_>) {
        match *event {
            ConnEvent::Arrived { role, ts_ns } => self.sides[role.index()].last_ns = ts_ns,
            ConnEvent::StateEntered { role, state, ts_ns } => {
                self.sides[role.index()].visited |= 1 << state as u16;
                if state == TcpState::TimeWait {
                    self.time_wait_ns = Some(self.time_wait_ns.map_or(ts_ns, |t| t.min(ts_ns)));
                }
            }
            ConnEvent::Syn { role, with_ack, .. } => match (role, with_ack) {
                (Role::Client, false) => self.syn_seen = true,
                (Role::Server, true) => self.synack_seen = true,
                _ => {}
            },
            ConnEvent::Fin { role, ts_ns } => {
                self.sides[role.index()].fin_ns = Some(ts_ns);
                self.first_fin.get_or_insert(role);
            }
            ConnEvent::FinAcked { role, .. } => self.sides[role.index()].fin_acked = true,
            ConnEvent::StreamData { role, length, .. }
                if self.first_fin.is_some_and(|first| first != role) =>
            {
                self.bytes_after_fin += u64::from(length);
            }
            _ => {}
        }
    }

    fn finish(&mut self, record: &mut ConnectionRecord, how: &Finish) {
        let [client, server] = &self.sides;
        let both = |state| Sides::of(client.visited(state), server.visited(state));
        let tw_s = self.time_wait_ns.map(ns_to_s);
        record.close = Close {
            initiator: both(TcpState::FinWait1),
            time_wait: both(TcpState::TimeWait),
            time_wait_ts: tw_s,
            time_wait_until: tw_s.map(|t| t + 2.0 * how.msl_s),
            fin_ts: PerSide::new(client.fin_ns.map(ns_to_s), server.fin_ns.map(ns_to_s)),
        };
        record.half_close = self.half_close();
        record.outcome = self.outcome(record.rst.as_ref().map(|r| r.kind));
    }
}

impl CloseAnalyzer {
    fn half_close(&self) -> Option<HalfClose> {
        let first = self.first_fin?;
        if self.bytes_after_fin == 0 {
            return None;
        }
        let closer = &self.sides[first.index()];
        let other = &self.sides[first.peer().index()];
        let fin_ns = closer.fin_ns?;
        let end = other.fin_ns.unwrap_or(other.last_ns);
        // capture order can put the peer's last segment a hair before the FIN it answers
        Some(HalfClose {
            side: first,
            bytes_after_fin: self.bytes_after_fin,
            duration_ms: ns_to_ms((end - fin_ns).max(0)),
        })
    }

    fn outcome(&self, rst: Option<RstKind>) -> Outcome {
        let [client, server] = &self.sides;
        let established = TcpState::ALL
            .iter()
            .any(|&s| synchronized(s) && (client.visited(s) || server.visited(s)));
        let (fin_client, fin_server) = (client.fin_ns.is_some(), server.fin_ns.is_some());
        if rst == Some(RstKind::Refused) {
            return Outcome::Refused;
        }
        if fin_client && fin_server && client.fin_acked && server.fin_acked {
            return Outcome::Closed; // a RST after both FINs were acknowledged ended nothing
        }
        if rst.is_some() && (established || self.synack_seen) {
            return Outcome::Reset;
        }
        if fin_client && fin_server {
            return Outcome::Closing;
        }
        if fin_client || fin_server {
            return Outcome::HalfClosed;
        }
        if rst.is_some() {
            return Outcome::Reset;
        }
        if established {
            return Outcome::Open;
        }
        if self.synack_seen {
            return Outcome::HandshakeFailed;
        }
        if self.syn_seen {
            Outcome::Unanswered
        } else {
            Outcome::Open
        }
    }
}
