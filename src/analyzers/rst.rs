//! The first RST of a connection, classified by the states of its sender and receiver, and
//! how many RSTs there were.

use super::{Analyzer, ConnEvent, Finish};
use crate::model::{ns_to_s, ConnectionRecord, Role, Rst, RstKind};
use crate::states::TcpState;

/// The kind of a RST sent from state `sender` to an endpoint in state `receiver`.
///
/// `sender_opened`: the sender had taken part in the connection (sent SYN, SYN/ACK or data);
/// `assumed`: the states were assumed because the capture began mid-connection.
pub fn rst_kind(
    sender: TcpState,
    receiver: TcpState,
    sender_opened: bool,
    assumed: bool,
) -> RstKind {
    use TcpState as S;
    if sender == S::TimeWait || receiver == S::TimeWait {
        return RstKind::TimeWait;
    }
    if sender == S::Closed && !sender_opened {
        // RFC 9293 section 3.10.7.1: a CLOSED endpoint answers with RST
        return if receiver == S::SynSent {
            RstKind::Refused
        } else {
            RstKind::AfterClose
        };
    }
    match sender {
        S::SynSent | S::SynRcvd => RstKind::Handshake,
        S::Established if assumed => RstKind::UnknownState,
        S::Established | S::CloseWait => RstKind::Abort,
        _ => RstKind::AfterClose,
    }
}

/// The first RST (sender, states, kind, time) and the count of all.
#[derive(Debug, Default)]
pub struct RstAnalyzer {
    first: Option<(Role, TcpState, TcpState, RstKind, i64)>,
    count: u64,
}

impl Analyzer for RstAnalyzer {
    #[inline(always)] // see Analyzers::on
    fn on_event(&mut self, event: &ConnEvent<'_>) {
        if let ConnEvent::Rst {
            role,
            ts_ns,
            sender,
            receiver,
            sender_opened,
            assumed,
            ..
        } = *event
        {
            self.count += 1;
            if self.first.is_none() {
                let kind = rst_kind(sender, receiver, sender_opened, assumed);
                self.first = Some((role, sender, receiver, kind, ts_ns));
            }
        }
    }

    fn finish(&mut self, record: &mut ConnectionRecord, _how: &Finish) {
        record.rst = self
            .first
            .map(|(sender, state, receiver_state, kind, ts_ns)| Rst {
                sender,
                state,
                receiver_state,
                kind,
                ts: ns_to_s(ts_ns),
                count: self.count,
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TcpState as S;

    #[test]
    fn kinds() {
        assert_eq!(
            rst_kind(S::Closed, S::SynSent, false, false),
            RstKind::Refused
        );
        assert_eq!(
            rst_kind(S::Closed, S::Established, false, false),
            RstKind::AfterClose
        );
        assert_eq!(
            rst_kind(S::Established, S::TimeWait, true, false),
            RstKind::TimeWait
        );
        assert_eq!(
            rst_kind(S::SynRcvd, S::SynSent, true, false),
            RstKind::Handshake
        );
        assert_eq!(
            rst_kind(S::Established, S::Established, true, true),
            RstKind::UnknownState
        );
        assert_eq!(
            rst_kind(S::CloseWait, S::FinWait2, true, true),
            RstKind::Abort
        );
        assert_eq!(
            rst_kind(S::LastAck, S::Closed, true, false),
            RstKind::AfterClose
        );
        assert_eq!(
            rst_kind(S::Closed, S::Established, true, false),
            RstKind::AfterClose
        );
    }
}
