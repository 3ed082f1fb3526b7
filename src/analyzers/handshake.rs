//! Three-way handshake latency (RFC 9293 section 3.5), matched by TCP timestamps.
//!
//! Retransmitted SYNs and SYN/ACKs make "which SYN did this SYN/ACK answer?" the classic
//! Karn ambiguity. With TCP timestamps (RFC 7323) the answer is exact: a SYN/ACK echoes the
//! TSval of the SYN it answers in TSecr, and the completing ACK echoes the SYN/ACK's.
//! Without timestamps a latency is only reported where a single candidate exists;
//! otherwise the record says it is ambiguous.

use super::{Analyzer, ConnEvent, Finish};
use crate::model::{ns_to_ms, ConnectionRecord, Handshake, Role};
use crate::sources::clock::JUMP_NS;

/// A SYN, SYN/ACK or completing ACK: when, and its TCP timestamps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sighting {
    /// When it was first captured: when it answers a segment.
    pub ts_ns: i64,
    /// When its last capture duplicate was captured (`ts_ns` when it had none): when a
    /// segment answering it is timed from.
    pub last_copy_ns: i64,
    pub tsval: Option<u32>,
    pub tsecr: Option<u32>,
}

impl Sighting {
    fn new(ts_ns: i64, stamp: Option<(u32, u32)>) -> Self {
        Sighting {
            ts_ns,
            last_copy_ns: ts_ns,
            tsval: stamp.map(|s| s.0),
            tsecr: stamp.map(|s| s.1),
        }
    }
}

/// How a segment was matched to the one it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Match {
    None,
    Timestamps,
    Unique,
    Ambiguous,
}

const AMBIGUOUS: &str = "retransmissions without TCP timestamps: the answered segment is unknown";
const SIMULTANEOUS: &str = "simultaneous open: both sides sent SYN";
const LEAPT: &str = "a timestamp leapt more than a day within the handshake (see source.warnings)";

/// Sightings kept per list: a hostile capture can repeat one SYN millions of times on one
/// 4-tuple (a 36 MB gzip of one SYN held 11.5 GB in the Python engine). Past this, SYNs and
/// SYN/ACKs are only counted (the retransmit counts stay exact); a handshake whose
/// answering segments lie past the first `MAX_SIGHTINGS` may then be reported ambiguous.
pub const MAX_SIGHTINGS: usize = 1024;

/// The client's SYNs, the server's SYN/ACKs and the ACK completing the handshake.
#[derive(Debug, Default)]
pub struct HandshakeAnalyzer {
    /// The first `MAX_SIGHTINGS` SYNs.
    pub syns: Vec<Sighting>,
    /// The first `MAX_SIGHTINGS` SYN/ACKs.
    pub synacks: Vec<Sighting>,
    /// SYNs and SYN/ACKs seen, kept or not, saturating. Narrow so that the analyzer keeps
    /// its size (a connection must stay under 1000 bytes, see connection.rs): SYN/ACKs
    /// are counted up to 65,535.
    pub syns_seen: u32,
    pub synacks_seen: u16,
    pub completing_ack: Option<Sighting>,
    pub simultaneous_open: bool,
    /// A timestamp leapt before the handshake completed: its legs are unknown.
    pub leapt: bool,
}

impl HandshakeAnalyzer {
    /// Take the sighting lists' buffers of `old` (a connection that ended, its record made)
    /// where this one has none yet: every connection filled both.
    pub fn reuse_lists(&mut self, old: &mut HandshakeAnalyzer) {
        crate::recycle::reuse_vec(&mut self.syns, &mut old.syns);
        crate::recycle::reuse_vec(&mut self.synacks, &mut old.synacks);
    }
}

/// Keep a sighting while the list is under its cap.
///
/// The first sighting gets a buffer of one: nearly every connection has one SYN and one
/// SYN/ACK, and the default first growth (four) left 192 unused bytes a connection, held
/// as long as the connection (a busy capture's peak memory; retransmissions grow as usual).
fn keep(list: &mut Vec<Sighting>, sighting: Sighting) {
    if list.len() < MAX_SIGHTINGS {
        if list.capacity() == 0 {
            list.reserve_exact(1);
        }
        list.push(sighting);
    }
}

/// A copy of the latest sighting was captured at `ts_ns`: an answer is timed from it.
fn retime_last(list: &mut [Sighting], ts_ns: i64) {
    if let Some(last) = list.last_mut() {
        last.last_copy_ns = last.last_copy_ns.max(ts_ns);
    }
}

impl Analyzer for HandshakeAnalyzer {
    #[inline(always)] // see Analyzers::on
    fn on_event(&mut self, event: &ConnEvent<'_>) {
        match *event {
            ConnEvent::Syn {
                role: Role::Client,
                ts_ns,
                with_ack: false,
                stamp,
                ..
            } => {
                self.syns_seen = self.syns_seen.saturating_add(1);
                keep(&mut self.syns, Sighting::new(ts_ns, stamp));
            }
            ConnEvent::Syn {
                role: Role::Server,
                with_ack: false,
                ..
            } => self.simultaneous_open = true,
            ConnEvent::Syn {
                role: Role::Server,
                ts_ns,
                with_ack: true,
                stamp,
                ..
            } => {
                self.synacks_seen = self.synacks_seen.saturating_add(1);
                keep(&mut self.synacks, Sighting::new(ts_ns, stamp));
            }
            // A leg is timed from the last copy of the segment it starts with, to the first
            // copy of its answer: on a forwarding host (seen coming in, then going out) the
            // time between is the network's beyond the capture point, the host's own left out
            ConnEvent::SynCopy {
                role: Role::Client,
                ts_ns,
                with_ack: false,
                ..
            } => retime_last(&mut self.syns, ts_ns),
            ConnEvent::SynCopy {
                role: Role::Server,
                ts_ns,
                with_ack: true,
                ..
            } => retime_last(&mut self.synacks, ts_ns),
            ConnEvent::ClockLeap { .. }
                if self.completing_ack.is_none()
                    && !(self.syns.is_empty() && self.synacks.is_empty()) =>
            {
                self.leapt = true
            }
            ConnEvent::HandshakeCompleted { ts_ns, stamp } if self.completing_ack.is_none() => {
                self.completing_ack = Some(Sighting::new(ts_ns, stamp));
            }
            _ => {}
        }
    }

    fn finish(&mut self, record: &mut ConnectionRecord, _how: &Finish) {
        record.handshake = self.result();
    }
}

impl HandshakeAnalyzer {
    pub fn result(&self) -> Handshake {
        let (ack, syns, synacks) = (self.completing_ack, &self.syns, &self.synacks);
        let setup_ns = match (ack, syns.first()) {
            (Some(a), Some(s)) => Some(a.ts_ns - s.ts_ns),
            _ => None,
        };
        // more than a day: a leapt timestamp, as for the legs below
        let setup = (setup_ns.filter(|&ns| ns <= JUMP_NS && !self.leapt)).map(ns_to_ms);
        let syn_retransmits = u64::from(self.syns_seen.saturating_sub(1));
        let synack_retransmits = u64::from(self.synacks_seen.saturating_sub(1));
        if self.simultaneous_open {
            // each SYN/ACK answers the other side's SYN: no request/answer legs to measure
            return Handshake {
                complete: ack.is_some(),
                syn_to_synack_ms: None,
                synack_to_ack_ms: None,
                rtt_ms: None,
                setup_ms: setup,
                syn_retransmits,
                synack_retransmits,
                matched_by: None,
                ambiguity: Some(SIMULTANEOUS),
                simultaneous_open: true,
            };
        }
        // The SYN/ACK the completing ACK answers (TSecr echo), then the SYN that SYN/ACK
        // echoes, then the *first* SYN/ACK sent in answer to that SYN: a SYN/ACK
        // retransmitted by the server's timer echoes the same SYN but is no measure of the
        // network, so each leg is measured from a segment to the first answer to it.
        let (acked, how_ack) = answered(synacks, ack);
        let (syn, how_syn) = answered(syns, acked.or_else(|| synacks.first().copied()));
        let first = first_answer(synacks, syn);
        // The legs in nanoseconds: `rtt_ms` is their sum rounded once, like `setup_ms`, so
        // that setup_ms >= rtt_ms holds whenever both exist (the legs' rounded values may
        // then sum to 0.001 more or less than rtt_ms).
        let syn_to_synack_ns = match (syn, first) {
            (Some(s), Some(f)) => Some(f.ts_ns - s.last_copy_ns),
            _ => None,
        };
        let synack_to_ack_ns = match (ack, acked) {
            (Some(a), Some(s)) => Some(a.ts_ns - s.last_copy_ns),
            _ => None,
        };
        // A leg across a timestamp that leapt a day or more is the capture's damage, not
        // the network's time (src/sources/clock.rs warns): null, and said why
        let leapt = self.leapt
            || [syn_to_synack_ns, synack_to_ack_ns]
                .iter()
                .flatten()
                .any(|&ns| ns > JUMP_NS);
        let (syn_to_synack_ns, synack_to_ack_ns) = if self.leapt {
            (None, None)
        } else {
            (syn_to_synack_ns, synack_to_ack_ns)
        };
        let (syn_to_synack_ns, synack_to_ack_ns) = (
            syn_to_synack_ns.filter(|&ns| ns <= JUMP_NS),
            synack_to_ack_ns.filter(|&ns| ns <= JUMP_NS),
        );
        let (syn_to_synack, synack_to_ack) = (
            syn_to_synack_ns.map(ns_to_ms),
            synack_to_ack_ns.map(ns_to_ms),
        );
        let ambiguity = if how_ack == Match::Ambiguous || how_syn == Match::Ambiguous {
            Some(AMBIGUOUS)
        } else {
            leapt.then_some(LEAPT)
        };
        let matched_by = if how_ack == Match::Timestamps || how_syn == Match::Timestamps {
            Some("timestamps")
        } else if syn_to_synack.is_some() || synack_to_ack.is_some() {
            Some("unique")
        } else {
            None
        };
        Handshake {
            complete: ack.is_some() && !syns.is_empty() && !synacks.is_empty(),
            syn_to_synack_ms: syn_to_synack,
            synack_to_ack_ms: synack_to_ack,
            rtt_ms: match (syn_to_synack_ns, synack_to_ack_ns) {
                (Some(a), Some(b)) => Some(ns_to_ms(a.saturating_add(b))),
                _ => None,
            },
            setup_ms: setup,
            syn_retransmits,
            synack_retransmits,
            matched_by,
            ambiguity,
            simultaneous_open: false,
        }
    }
}

/// The candidate (sent before `answer`) that `answer` responds to, and how we know.
fn answered(candidates: &[Sighting], answer: Option<Sighting>) -> (Option<Sighting>, Match) {
    let Some(answer) = answer else {
        return (None, Match::None);
    };
    if let [only] = candidates {
        if only.ts_ns > answer.ts_ns {
            return (None, Match::None);
        }
        if answer.tsecr.is_some() && only.tsval == answer.tsecr {
            return (Some(*only), Match::Timestamps);
        }
        return (Some(*only), Match::Unique);
    }
    let mut earlier = candidates.iter().filter(|c| c.ts_ns <= answer.ts_ns);
    let count = earlier.clone().count();
    if answer.tsecr.is_some() && count > 0 && earlier.clone().all(|c| c.tsval.is_some()) {
        if let Some(echoed) = earlier.clone().find(|c| c.tsval == answer.tsecr) {
            // equal TSvals: same tick, the first went out first
            return (Some(*echoed), Match::Timestamps);
        }
    }
    match count {
        1 => (earlier.next().copied(), Match::Unique),
        0 => (None, Match::None),
        _ => (None, Match::Ambiguous),
    }
}

/// The first of `answers` sent in reply to `request`.
fn first_answer(answers: &[Sighting], request: Option<Sighting>) -> Option<Sighting> {
    let request = request?;
    if let [only] = answers {
        return (only.ts_ns >= request.ts_ns).then_some(*only);
    }
    let later = answers.iter().filter(|a| a.ts_ns >= request.ts_ns);
    if request.tsval.is_some() {
        if let Some(echoing) = later.clone().find(|a| a.tsecr == request.tsval) {
            return Some(*echoing);
        }
    }
    later.clone().next().copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SynOptions;

    const MS: i64 = 1_000_000;

    fn syn(a: &mut HandshakeAnalyzer, ms: i64, stamp: Option<(u32, u32)>) {
        a.on_event(&ConnEvent::Syn {
            role: Role::Client,
            ts_ns: ms * MS,
            with_ack: false,
            stamp,
            options: SynOptions::default(),
        });
    }
    fn synack(a: &mut HandshakeAnalyzer, ms: i64, stamp: Option<(u32, u32)>) {
        a.on_event(&ConnEvent::Syn {
            role: Role::Server,
            ts_ns: ms * MS,
            with_ack: true,
            stamp,
            options: SynOptions::default(),
        });
    }
    fn ack(a: &mut HandshakeAnalyzer, ms: i64, stamp: Option<(u32, u32)>) {
        a.on_event(&ConnEvent::HandshakeCompleted {
            ts_ns: ms * MS,
            stamp,
        });
    }

    #[test]
    fn sightings_past_the_cap_are_counted_not_kept() {
        let mut a = HandshakeAnalyzer::default();
        for ms in 0..3000 {
            syn(&mut a, ms, None);
            synack(&mut a, ms, None);
        }
        ack(&mut a, 3000, None);
        assert_eq!(
            (a.syns.len(), a.synacks.len()),
            (MAX_SIGHTINGS, MAX_SIGHTINGS)
        );
        let h = a.result();
        assert_eq!((h.syn_retransmits, h.synack_retransmits), (2999, 2999));
        assert_eq!((h.complete, h.setup_ms), (true, Some(3000.0)));
    }

    #[test]
    fn plain_handshake_is_unique() {
        let mut a = HandshakeAnalyzer::default();
        syn(&mut a, 0, None);
        synack(&mut a, 10, None);
        ack(&mut a, 15, None);
        let h = a.result();
        assert!(h.complete);
        assert_eq!(
            (h.syn_to_synack_ms, h.synack_to_ack_ms, h.rtt_ms),
            (Some(10.0), Some(5.0), Some(15.0))
        );
        assert_eq!(
            (h.matched_by, h.ambiguity, h.setup_ms),
            (Some("unique"), None, Some(15.0))
        );
    }

    #[test]
    fn retransmitted_syn_matched_by_timestamps() {
        let mut a = HandshakeAnalyzer::default();
        syn(&mut a, 0, Some((100, 0)));
        syn(&mut a, 1000, Some((200, 0)));
        synack(&mut a, 1010, Some((900, 200)));
        ack(&mut a, 1012, Some((201, 900)));
        let h = a.result();
        assert_eq!(
            (h.syn_to_synack_ms, h.synack_to_ack_ms, h.rtt_ms),
            (Some(10.0), Some(2.0), Some(12.0))
        );
        assert_eq!(
            (h.matched_by, h.syn_retransmits, h.setup_ms),
            (Some("timestamps"), 1, Some(1012.0))
        );
    }

    #[test]
    fn retransmitted_syn_without_timestamps_is_ambiguous() {
        let mut a = HandshakeAnalyzer::default();
        syn(&mut a, 0, None);
        syn(&mut a, 1000, None);
        synack(&mut a, 1010, None);
        ack(&mut a, 1012, None);
        let h = a.result();
        assert_eq!((h.syn_to_synack_ms, h.synack_to_ack_ms), (None, Some(2.0)));
        assert_eq!(
            (h.matched_by, h.ambiguity),
            (Some("unique"), Some(AMBIGUOUS))
        );
    }

    #[test]
    fn retransmitted_synack_measures_from_the_first_answer() {
        let mut a = HandshakeAnalyzer::default();
        syn(&mut a, 0, Some((100, 0)));
        synack(&mut a, 10, Some((900, 100)));
        synack(&mut a, 1010, Some((1900, 100)));
        ack(&mut a, 1012, Some((101, 1900)));
        let h = a.result();
        assert_eq!(
            (h.syn_to_synack_ms, h.synack_to_ack_ms),
            (Some(10.0), Some(2.0))
        );
        assert_eq!(h.synack_retransmits, 1);
    }

    /// A handshake with legs of `leg_ns` each, without timestamps.
    fn legs_of(leg_ns: i64) -> Handshake {
        let mut a = HandshakeAnalyzer::default();
        let (stamp, ts_ns) = (None, 0);
        let role = Role::Client;
        a.on_event(&ConnEvent::Syn {
            role,
            ts_ns,
            with_ack: false,
            stamp,
            options: SynOptions::default(),
        });
        let (role, ts_ns) = (Role::Server, leg_ns);
        a.on_event(&ConnEvent::Syn {
            role,
            ts_ns,
            with_ack: true,
            stamp,
            options: SynOptions::default(),
        });
        a.on_event(&ConnEvent::HandshakeCompleted {
            ts_ns: 2 * leg_ns,
            stamp,
        });
        a.result()
    }

    #[test]
    fn rtt_is_rounded_once_and_never_above_setup() {
        // legs of 0.0004 ms: each rounds to 0.0, the round trip (0.0008) to 0.001 as setup
        let h = legs_of(400);
        assert_eq!(
            (h.syn_to_synack_ms, h.synack_to_ack_ms),
            (Some(0.0), Some(0.0))
        );
        assert_eq!((h.rtt_ms, h.setup_ms), (Some(0.001), Some(0.001)));
        // legs of 0.0006 ms: each rounds up to 0.001 (summed: 0.002, above setup's 0.001)
        let h = legs_of(600);
        assert_eq!(
            (h.syn_to_synack_ms, h.synack_to_ack_ms),
            (Some(0.001), Some(0.001))
        );
        assert_eq!((h.rtt_ms, h.setup_ms), (Some(0.001), Some(0.001)));
    }

    #[test]
    fn simultaneous_open_has_no_legs() {
        let mut a = HandshakeAnalyzer::default();
        syn(&mut a, 0, None);
        a.on_event(&ConnEvent::Syn {
            role: Role::Server,
            ts_ns: MS,
            with_ack: false,
            stamp: None,
            options: SynOptions::default(),
        });
        ack(&mut a, 3, None);
        let h = a.result();
        assert!(h.complete && h.simultaneous_open);
        assert_eq!(
            (h.setup_ms, h.rtt_ms, h.ambiguity),
            (Some(3.0), None, Some(SIMULTANEOUS))
        );
    }
}
