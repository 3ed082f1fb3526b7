//! Scans and probes: a connection that was only a probe and its answer, classified where it
//! ends instead of becoming a connection in an odd state (docs/health.md, "Scans and
//! probes").
//!
//! The prober is the side whose segment came first. Its segments must all carry the same
//! flags and no payload (a repeated probe is one probe), and the other side may answer only
//! with RSTs, with a SYN/ACK to a SYN (followed by nothing from the prober but a RST), or
//! not at all; anything else makes the connection an ordinary one.
//!
//! Why the answers tell what they tell (RFC 9293 section 3.10.7.1, CLOSED state): "If the
//! ACK bit is off, sequence number zero is used, <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>;
//! if the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>". A RST of that form answers the probe: the
//! port is closed (or, for an ACK-bearing probe, unfiltered: a LISTEN port resets it too,
//! section 3.10.7.2). An open (LISTEN) port drops a segment without SYN, RST or ACK (section
//! 3.10.7.2: it "would be discarded by the ACK processing"): a NULL, FIN or Xmas probe
//! nothing answers is open or filtered, the loophole nmap's -sN/-sF/-sX use. An unanswered
//! ACK or FIN/ACK is not classified: a capture that begins with a connection's last ACK or
//! FIN looks the same.

use super::{Analyzer, ConnEvent, Finish};
use crate::decode::{ACK, FIN, PSH, RST, SYN, URG};
use crate::model::{ConnectionRecord, Outcome, Probe, ProbeAnswer, ProbeKind, Role, RstKind};

/// The flags that make a probe (ECE, CWR and NS are left out: ECN setup rides on a SYN).
const PROBE_FLAGS: u16 = FIN | SYN | RST | PSH | ACK | URG;

/// The kind of probe a first segment with `flags` is, or None when it cannot be one (a
/// SYN/ACK or a RST).
pub fn probe_kind(flags: u16) -> Option<ProbeKind> {
    Some(match flags & PROBE_FLAGS {
        SYN => ProbeKind::Syn,
        0 => ProbeKind::Null,
        FIN => ProbeKind::Fin,
        f if f == FIN | PSH | URG => ProbeKind::Xmas,
        ACK => ProbeKind::Ack,
        f if f == FIN | ACK => ProbeKind::Maimon,
        f if f & RST != 0 || f & (SYN | ACK) == SYN | ACK => return None,
        _ => ProbeKind::Other,
    })
}

/// How far the connection still looks like a probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Shape {
    /// Nothing seen yet.
    #[default]
    Empty,
    /// The probe, unanswered so far.
    Probed,
    /// Answered by a RST of the closed-port form.
    Reset,
    /// A SYN answered by SYN/ACK.
    SynAcked,
    /// ... and then reset by the prober instead of the handshake's ACK.
    Aborted,
    /// Not a probe.
    Connection,
}

/// The first segment's sender and flags, and what answered it: 8 bytes per connection.
#[derive(Debug, Default)]
pub struct ProbeAnalyzer {
    shape: Shape,
    prober: Option<Role>,
    flags: u16,
    /// The probe's ACK field: the RST answering an ACK-bearing probe carries it as its
    /// sequence number.
    ack: u32,
}

impl ProbeAnalyzer {
    /// A non-RST segment from `role`.
    fn segment(&mut self, role: Role, flags: u16, ack: u32, payload_len: u32) {
        let Some(prober) = self.prober else {
            self.shape = match probe_kind(flags) {
                Some(_) if payload_len == 0 => Shape::Probed,
                _ => Shape::Connection,
            };
            (self.prober, self.flags, self.ack) = (Some(role), flags & PROBE_FLAGS, ack);
            return;
        };
        let syn_ack = flags & PROBE_FLAGS == SYN | ACK;
        self.shape = match self.shape {
            // the probe again (nmap retries, the sequence number may differ; `hping3 -k`
            // repeats an answered one from the same port)
            shape @ (Shape::Probed | Shape::Reset)
                if role == prober && flags & PROBE_FLAGS == self.flags =>
            {
                shape
            }
            Shape::Probed | Shape::SynAcked
                if role != prober && syn_ack && self.flags == SYN && payload_len == 0 =>
            {
                Shape::SynAcked
            }
            _ => Shape::Connection,
        };
        if payload_len != 0 {
            self.shape = Shape::Connection;
        }
    }

    /// A RST from `role` with its sequence number and flags.
    fn rst(&mut self, role: Role, seq: u32, flags: u16) {
        let Some(prober) = self.prober else {
            // a lone RST probes nothing (nothing answers a RST)
            (self.prober, self.shape) = (Some(role), Shape::Connection);
            return;
        };
        // RFC 9293 section 3.10.7.1: <SEQ=SEG.ACK><CTL=RST> answers an ACK-bearing
        // segment, <SEQ=0><ACK=...><CTL=RST,ACK> any other
        let closed_port_answer = if self.flags & ACK != 0 {
            seq == self.ack
        } else {
            seq == 0 && flags & ACK != 0
        };
        self.shape = match self.shape {
            Shape::Probed | Shape::Reset if role != prober && closed_port_answer => Shape::Reset,
            Shape::SynAcked | Shape::Aborted if role == prober => Shape::Aborted,
            _ => Shape::Connection,
        };
    }

    /// The probe, its answer and the outcome that says so (None: not a probe).
    fn classified(&self) -> Option<(Probe, Option<Outcome>)> {
        let sender = self.prober?;
        let kind = probe_kind(self.flags)?;
        let (answer, outcome) = match (self.shape, kind) {
            // a refused or unanswered SYN keeps REFUSED and UNANSWERED
            (Shape::Reset, ProbeKind::Syn) => (ProbeAnswer::Rst, None),
            (Shape::Probed, ProbeKind::Syn) => (ProbeAnswer::None, None),
            (Shape::SynAcked, _) => (ProbeAnswer::SynAck, None),
            (Shape::Aborted, _) => (ProbeAnswer::SynAck, Some(Outcome::HandshakeAborted)),
            (Shape::Reset, _) => (ProbeAnswer::Rst, Some(Outcome::ProbeReset)),
            (Shape::Probed, _) if self.flags & ACK == 0 => {
                (ProbeAnswer::None, Some(Outcome::ProbeUnanswered))
            }
            _ => return None,
        };
        Some((
            Probe {
                kind,
                answer,
                sender,
            },
            outcome,
        ))
    }
}

impl Analyzer for ProbeAnalyzer {
    #[inline(always)] // see Analyzers::on
    fn on_event(&mut self, event: &ConnEvent<'_>) {
        if self.shape == Shape::Connection {
            return;
        }
        match *event {
            ConnEvent::Segment {
                role,
                flags,
                ack,
                payload_len,
                ..
            } => self.segment(role, flags, ack, payload_len),
            ConnEvent::Rst {
                role, seq, flags, ..
            } => self.rst(role, seq, flags),
            _ => {}
        }
    }

    /// After close and rst: the outcome and the RST's kind they gave a probe are replaced.
    fn finish(&mut self, record: &mut ConnectionRecord, _how: &Finish) {
        let Some((probe, outcome)) = self.classified() else {
            return;
        };
        record.probe = Some(probe);
        if let Some(outcome) = outcome {
            record.outcome = outcome;
        }
        if probe.answer == ProbeAnswer::Rst {
            // the closed port's answer (section 3.10.7.1), whatever states were assumed
            if let Some(rst) = &mut record.rst {
                rst.kind = RstKind::Refused;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(events: &[(Role, u16, u32, u32)]) -> Option<(Probe, Option<Outcome>)> {
        let mut a = ProbeAnalyzer::default();
        for &(role, flags, seq_or_ack, len) in events {
            let event = if flags & RST != 0 {
                ConnEvent::Rst {
                    role,
                    ts_ns: 0,
                    sender: crate::states::TcpState::Closed,
                    receiver: crate::states::TcpState::Closed,
                    sender_opened: false,
                    assumed: false,
                    seq: seq_or_ack,
                    flags,
                }
            } else {
                ConnEvent::Segment {
                    role,
                    ts_ns: 0,
                    previous_ns: 0,
                    flags,
                    seq: 7,
                    ack: seq_or_ack,
                    payload_len: len,
                    snd_nxt: None,
                    peer_window: -1,
                }
            };
            a.on_event(&event);
        }
        a.classified()
    }

    use Role::{Client as C, Server as S};

    fn probe(kind: ProbeKind, answer: ProbeAnswer, sender: Role) -> Probe {
        Probe {
            kind,
            answer,
            sender,
        }
    }

    #[test]
    fn a_connection_pays_eight_bytes() {
        assert_eq!(std::mem::size_of::<ProbeAnalyzer>(), 8);
    }

    #[test]
    fn kinds_by_flags() {
        assert_eq!(probe_kind(SYN), Some(ProbeKind::Syn));
        assert_eq!(probe_kind(SYN | 0xC0), Some(ProbeKind::Syn)); // ECN setup
        assert_eq!(probe_kind(0), Some(ProbeKind::Null));
        assert_eq!(probe_kind(FIN), Some(ProbeKind::Fin));
        assert_eq!(probe_kind(FIN | PSH | URG), Some(ProbeKind::Xmas));
        assert_eq!(probe_kind(ACK), Some(ProbeKind::Ack));
        assert_eq!(probe_kind(FIN | ACK), Some(ProbeKind::Maimon));
        assert_eq!(probe_kind(PSH), Some(ProbeKind::Other));
        assert_eq!(probe_kind(SYN | FIN), Some(ProbeKind::Other));
        assert_eq!(probe_kind(SYN | ACK), None);
        assert_eq!(probe_kind(RST | ACK), None);
    }

    #[test]
    fn closed_port_answers() {
        let fin = fed(&[(C, FIN, 0, 0), (S, RST | ACK, 0, 0)]);
        let expected = probe(ProbeKind::Fin, ProbeAnswer::Rst, C);
        assert_eq!(fin, Some((expected, Some(Outcome::ProbeReset))));
        // an ACK probe's answer carries the probe's ACK as its sequence number
        let ack = fed(&[(S, ACK, 99, 0), (C, RST, 99, 0)]);
        let expected = probe(ProbeKind::Ack, ProbeAnswer::Rst, S);
        assert_eq!(ack, Some((expected, Some(Outcome::ProbeReset))));
        // a probe repeated after its answer, answered again
        let twice = fed(&[
            (C, 0, 0, 0),
            (S, RST | ACK, 0, 0),
            (C, 0, 0, 0),
            (S, RST | ACK, 0, 0),
        ]);
        let expected = probe(ProbeKind::Null, ProbeAnswer::Rst, C);
        assert_eq!(twice, Some((expected, Some(Outcome::ProbeReset))));
        let refused = fed(&[(C, SYN, 0, 0), (S, RST | ACK, 0, 0)]);
        assert_eq!(
            refused,
            Some((probe(ProbeKind::Syn, ProbeAnswer::Rst, C), None))
        );
    }

    #[test]
    fn a_rst_of_another_form_answers_nothing() {
        assert_eq!(fed(&[(C, FIN, 0, 0), (S, RST | ACK, 5, 0)]), None);
        assert_eq!(fed(&[(C, 0, 0, 0), (S, RST, 0, 0)]), None); // no ACK flag
        assert_eq!(fed(&[(C, ACK, 99, 0), (S, RST, 98, 0)]), None);
    }

    #[test]
    fn unanswered() {
        let xmas = FIN | PSH | URG;
        let expected = probe(ProbeKind::Xmas, ProbeAnswer::None, C);
        let twice = fed(&[(C, xmas, 0, 0), (C, xmas, 0, 0)]);
        assert_eq!(twice, Some((expected, Some(Outcome::ProbeUnanswered))));
        let syn = fed(&[(C, SYN, 0, 0), (C, SYN, 0, 0)]);
        assert_eq!(
            syn,
            Some((probe(ProbeKind::Syn, ProbeAnswer::None, C), None))
        );
        // a connection's stray last ACK or FIN looks the same: not classified
        assert_eq!(fed(&[(C, ACK, 5, 0)]), None);
        assert_eq!(fed(&[(C, FIN | ACK, 5, 0)]), None);
    }

    #[test]
    fn half_open() {
        let expected = probe(ProbeKind::Syn, ProbeAnswer::SynAck, C);
        let aborted = fed(&[(C, SYN, 0, 0), (S, SYN | ACK, 1, 0), (C, RST, 1, 0)]);
        assert_eq!(aborted, Some((expected, Some(Outcome::HandshakeAborted))));
        let failed = fed(&[(C, SYN, 0, 0), (S, SYN | ACK, 1, 0)]);
        assert_eq!(failed, Some((expected, None)));
        // the handshake's ACK makes a connection
        assert_eq!(
            fed(&[(C, SYN, 0, 0), (S, SYN | ACK, 1, 0), (C, ACK, 1, 0)]),
            None
        );
    }

    #[test]
    fn connections_are_not_probes() {
        assert_eq!(fed(&[(C, ACK | PSH, 0, 10)]), None); // payload
        assert_eq!(fed(&[(C, FIN, 0, 0), (S, ACK, 0, 0)]), None); // an answer but a RST
        assert_eq!(fed(&[(C, FIN, 0, 0), (C, ACK, 0, 0)]), None); // flags changed
        assert_eq!(fed(&[(C, RST, 0, 0), (S, RST | ACK, 0, 0)]), None); // a lone RST
        assert_eq!(fed(&[(S, SYN | ACK, 0, 0), (C, RST, 0, 0)]), None); // midstream SYN/ACK
        assert_eq!(fed(&[]), None);
    }
}
