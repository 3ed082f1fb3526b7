//! Per-endpoint TCP states (RFC 793 section 3.2, RFC 9293 section 3.3.2) as data.
//!
//! A passive observer sees segments at one point between the two hosts. Each endpoint gets
//! its own machine, and an endpoint's state changes on *evidence*: what it sends proves what
//! it has done (its SYN, SYN/ACK, first ACK of the peer's SYN, first ACK of the peer's FIN,
//! FIN, RST); what reaches it is an ACK covering its SYN or FIN, or a RST.
//!
//! `TRANSITIONS` is the whole machine, each arc citing what it implements; `ANOMALIES`
//! lists every absent (state, event) pair and why. An anomaly leaves the state unchanged and
//! is counted: a passive observer must not stop because a peer misbehaved.

/// One endpoint's state as evidence on the wire shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TcpState {
    #[default]
    Closed,
    SynSent,
    SynRcvd,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl TcpState {
    pub const ALL: [TcpState; 10] = [
        TcpState::Closed,
        TcpState::SynSent,
        TcpState::SynRcvd,
        TcpState::Established,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::CloseWait,
        TcpState::Closing,
        TcpState::LastAck,
        TcpState::TimeWait,
    ];

    /// The name records carry (RFC 793's, with underscores).
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Closed => "CLOSED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRcvd => "SYN_RCVD",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait1 => "FIN_WAIT_1",
            TcpState::FinWait2 => "FIN_WAIT_2",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::Closing => "CLOSING",
            TcpState::LastAck => "LAST_ACK",
            TcpState::TimeWait => "TIME_WAIT",
        }
    }
}

/// What an endpoint is seen to do, or to receive (module docs: evidence).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Event {
    SndSyn,
    SndSynack,
    SndAckOfSyn,
    SndAckOfFin,
    SndFin,
    SndRst,
    RcvAckOfSyn,
    RcvAckOfFin,
    RcvRst,
}

impl Event {
    pub const ALL: [Event; 9] = [
        Event::SndSyn,
        Event::SndSynack,
        Event::SndAckOfSyn,
        Event::SndAckOfFin,
        Event::SndFin,
        Event::SndRst,
        Event::RcvAckOfSyn,
        Event::RcvAckOfFin,
        Event::RcvRst,
    ];

    /// The name the documentation uses (Python's `Event` member name).
    pub fn name(self) -> &'static str {
        match self {
            Event::SndSyn => "SND_SYN",
            Event::SndSynack => "SND_SYNACK",
            Event::SndAckOfSyn => "SND_ACK_OF_SYN",
            Event::SndAckOfFin => "SND_ACK_OF_FIN",
            Event::SndFin => "SND_FIN",
            Event::SndRst => "SND_RST",
            Event::RcvAckOfSyn => "RCV_ACK_OF_SYN",
            Event::RcvAckOfFin => "RCV_ACK_OF_FIN",
            Event::RcvRst => "RCV_RST",
        }
    }

    /// What the event means, in words.
    pub fn meaning(self) -> &'static str {
        match self {
            Event::SndSyn => "sends SYN",
            Event::SndSynack => "sends SYN/ACK",
            Event::SndAckOfSyn => "sends its first ACK of the peer's SYN",
            Event::SndAckOfFin => "acknowledges the peer's FIN (so received it)",
            Event::SndFin => "sends FIN",
            Event::SndRst => "sends RST",
            Event::RcvAckOfSyn => "receives an ACK of its SYN",
            Event::RcvAckOfFin => "receives an ACK of its FIN",
            Event::RcvRst => "receives an acceptable RST",
        }
    }
}

/// One arc of the machine and the RFC text (or the evidence) it implements.
#[derive(Clone, Copy, Debug)]
pub struct Transition {
    pub state: TcpState,
    pub event: Event,
    pub target: TcpState,
    pub why: &'static str,
}

/// A (state, event) pair with no arc: the machine stays put and counts an anomaly.
#[derive(Clone, Copy, Debug)]
pub struct Anomaly {
    pub state: TcpState,
    pub event: Event,
    pub why: &'static str,
}

use Event as E;
use TcpState as S;

const fn arc(state: TcpState, event: Event, target: TcpState, why: &'static str) -> Transition {
    Transition {
        state,
        event,
        target,
        why,
    }
}

const fn odd(state: TcpState, event: Event, why: &'static str) -> Anomaly {
    Anomaly { state, event, why }
}

const RST_SENT: &str = "RFC 9293 3.10.7.4 (fourth, RST bit): an endpoint that sends RST aborts";
const RST_RCVD: &str = "RFC 9293 3.10.7.4 (first, RST bit): an acceptable RST closes the receiver";

/// The whole machine, in the order of Python's `TRANSITIONS` (the diagram keeps it).
pub const TRANSITIONS: [Transition; 47] = [
    arc(S::Closed, E::SndSyn, S::SynSent, "RFC 793 fig. 6: active OPEN / snd SYN"),
    arc(S::Closed, E::SndSynack, S::SynRcvd, "RFC 793 fig. 6: rcv SYN / snd SYN,ACK (LISTEN is invisible on the wire)"),
    arc(S::Closed, E::SndRst, S::Closed, "RFC 9293 3.10.7.1: a CLOSED endpoint answers any segment with RST"),
    arc(S::Closed, E::RcvRst, S::Closed, "RFC 9293 3.10.7.1: a RST to a CLOSED endpoint is discarded"),
    arc(S::Closed, E::SndAckOfSyn, S::Established, "evidence: the capture missed this side's SYN exchange, but its ACK of the peer's SYN proves it was synchronized"),
    arc(S::Closed, E::RcvAckOfSyn, S::Established, "evidence: the capture missed this side's SYN/ACK, but the peer's ACK of it proves it was sent and arrived"),
    arc(S::SynSent, E::SndSyn, S::SynSent, "RFC 9293 3.8.1: retransmission of the SYN"),
    arc(S::SynSent, E::RcvAckOfSyn, S::SynSent, "RFC 9293 3.10.7.3: the SYN/ACK arrived; ESTABLISHED once this side ACKs it"),
    arc(S::SynSent, E::SndAckOfSyn, S::Established, "RFC 793 fig. 6: rcv SYN,ACK / snd ACK"),
    arc(S::SynSent, E::SndSynack, S::SynRcvd, "RFC 793 fig. 6 and fig. 8: simultaneous open, rcv SYN / snd SYN,ACK"),
    arc(S::SynSent, E::SndRst, S::Closed, RST_SENT),
    arc(S::SynSent, E::RcvRst, S::Closed, "RFC 9293 3.10.7.3: a RST acknowledging the SYN: connection refused"),
    arc(S::SynRcvd, E::SndSynack, S::SynRcvd, "RFC 9293 3.8.1: retransmission of the SYN/ACK"),
    arc(S::SynRcvd, E::SndSyn, S::SynRcvd, "RFC 9293 3.8.1: retransmission of the SYN (simultaneous open)"),
    arc(S::SynRcvd, E::RcvAckOfSyn, S::Established, "RFC 793 fig. 6: rcv ACK of SYN"),
    arc(S::SynRcvd, E::SndAckOfSyn, S::SynRcvd, "RFC 793 fig. 8: the ACK of the peer's SYN rides on the SYN/ACK already sent"),
    arc(S::SynRcvd, E::SndFin, S::FinWait1, "RFC 793 fig. 6: CLOSE / snd FIN, before the handshake completed"),
    arc(S::SynRcvd, E::SndAckOfFin, S::CloseWait, "RFC 9293 3.10.7.4 (eighth, FIN bit): SYN-RECEIVED enters CLOSE-WAIT"),
    arc(S::SynRcvd, E::SndRst, S::Closed, RST_SENT),
    arc(S::SynRcvd, E::RcvRst, S::Closed, RST_RCVD),
    arc(S::Established, E::SndFin, S::FinWait1, "RFC 793 fig. 6: CLOSE / snd FIN (active close)"),
    arc(S::Established, E::SndAckOfFin, S::CloseWait, "RFC 793 fig. 6: rcv FIN / snd ACK (passive close)"),
    arc(S::Established, E::SndSynack, S::Established, "RFC 9293 3.8.1: late retransmission of the handshake"),
    arc(S::Established, E::SndSyn, S::Established, "RFC 9293 3.8.1: late retransmission of the handshake"),
    arc(S::Established, E::SndAckOfSyn, S::Established, "evidence: a later first ACK of the peer's SYN changes nothing"),
    arc(S::Established, E::RcvAckOfSyn, S::Established, "RFC 9293 3.10.7.4 (fifth, ACK field): an ACK in ESTABLISHED"),
    arc(S::Established, E::SndRst, S::Closed, RST_SENT),
    arc(S::Established, E::RcvRst, S::Closed, RST_RCVD),
    arc(S::FinWait1, E::RcvAckOfFin, S::FinWait2, "RFC 793 fig. 6: rcv ACK of FIN"),
    arc(S::FinWait1, E::SndAckOfFin, S::Closing, "RFC 793 fig. 6 and fig. 13: simultaneous close, rcv FIN / snd ACK"),
    arc(S::FinWait1, E::RcvAckOfSyn, S::FinWait1, "RFC 9293 3.10.7.4 (fifth, ACK field): the ACK of a SYN_RCVD close"),
    arc(S::FinWait1, E::SndRst, S::Closed, RST_SENT),
    arc(S::FinWait1, E::RcvRst, S::Closed, RST_RCVD),
    arc(S::FinWait2, E::SndAckOfFin, S::TimeWait, "RFC 793 fig. 6: rcv FIN / snd ACK"),
    arc(S::FinWait2, E::SndRst, S::Closed, RST_SENT),
    arc(S::FinWait2, E::RcvRst, S::Closed, RST_RCVD),
    arc(S::Closing, E::RcvAckOfFin, S::TimeWait, "RFC 793 fig. 6: rcv ACK of FIN"),
    arc(S::Closing, E::SndRst, S::Closed, RST_SENT),
    arc(S::Closing, E::RcvRst, S::Closed, RST_RCVD),
    arc(S::CloseWait, E::SndFin, S::LastAck, "RFC 793 fig. 6: CLOSE / snd FIN"),
    arc(S::CloseWait, E::SndRst, S::Closed, RST_SENT),
    arc(S::CloseWait, E::RcvRst, S::Closed, RST_RCVD),
    arc(S::LastAck, E::RcvAckOfFin, S::Closed, "RFC 793 fig. 6: rcv ACK of FIN"),
    arc(S::LastAck, E::SndRst, S::Closed, RST_SENT),
    arc(S::LastAck, E::RcvRst, S::Closed, RST_RCVD),
    arc(S::TimeWait, E::RcvRst, S::Closed, "RFC 1337: a RST kills TIME_WAIT (Linux, net.ipv4.tcp_rfc1337 = 0)"),
    arc(S::TimeWait, E::SndRst, S::Closed, RST_SENT),
];

const NO_FIN_YET: &str = "no FIN was sent: nothing can acknowledge it";
const NOT_SYNCHRONIZED_FIN: &str =
    "RFC 9293 3.10.4: CLOSE in this state sends no FIN (a FIN here is not this side's close)";
const NO_PEER_FIN: &str = "no FIN came from an unsynchronized peer: RFC 9293 3.10.7.3 ignores it";
const NEW_SYN_AFTER_CLOSE: &str =
    "RFC 9293 3.10.7.4 (fourth, SYN bit): a SYN after this side closed is not part of this connection";
const FIN_ALREADY_SENT: &str = "this side sent its FIN already: a second, different one is invalid";
const FIN_ALREADY_ACKED: &str = "the peer's FIN was acknowledged already: there is no second one";
const SYN_ACKED_LONG_AGO: &str =
    "the SYN was acknowledged before this state: a new ACK of it is stale";

/// Every (state, event) pair absent from `TRANSITIONS`, and why it is an anomaly.
pub const ANOMALIES: [Anomaly; 43] = [
    odd(S::Closed, E::SndAckOfFin, NO_PEER_FIN),
    odd(S::Closed, E::SndFin, NOT_SYNCHRONIZED_FIN),
    odd(S::Closed, E::RcvAckOfFin, NO_FIN_YET),
    odd(S::SynSent, E::SndAckOfFin, NO_PEER_FIN),
    odd(S::SynSent, E::SndFin, NOT_SYNCHRONIZED_FIN),
    odd(S::SynSent, E::RcvAckOfFin, NO_FIN_YET),
    odd(S::SynRcvd, E::RcvAckOfFin, NO_FIN_YET),
    odd(S::Established, E::RcvAckOfFin, NO_FIN_YET),
    odd(S::FinWait1, E::SndSyn, NEW_SYN_AFTER_CLOSE),
    odd(S::FinWait1, E::SndSynack, NEW_SYN_AFTER_CLOSE),
    odd(S::FinWait1, E::SndAckOfSyn, "RFC 793 fig. 6: FIN_WAIT_1 is entered synchronized (the peer's SYN was ACKed)"),
    odd(S::FinWait1, E::SndFin, FIN_ALREADY_SENT),
    odd(S::FinWait2, E::SndSyn, NEW_SYN_AFTER_CLOSE),
    odd(S::FinWait2, E::SndSynack, NEW_SYN_AFTER_CLOSE),
    odd(S::FinWait2, E::SndAckOfSyn, "RFC 793 fig. 6: FIN_WAIT_2 is entered synchronized"),
    odd(S::FinWait2, E::SndFin, FIN_ALREADY_SENT),
    odd(S::FinWait2, E::RcvAckOfSyn, SYN_ACKED_LONG_AGO),
    odd(S::FinWait2, E::RcvAckOfFin, "the FIN was acknowledged already (that is how FIN_WAIT_2 is entered)"),
    odd(S::Closing, E::SndSyn, NEW_SYN_AFTER_CLOSE),
    odd(S::Closing, E::SndSynack, NEW_SYN_AFTER_CLOSE),
    odd(S::Closing, E::SndAckOfSyn, "RFC 793 fig. 6: CLOSING is entered synchronized"),
    odd(S::Closing, E::SndAckOfFin, FIN_ALREADY_ACKED),
    odd(S::Closing, E::SndFin, FIN_ALREADY_SENT),
    odd(S::Closing, E::RcvAckOfSyn, SYN_ACKED_LONG_AGO),
    odd(S::CloseWait, E::SndSyn, NEW_SYN_AFTER_CLOSE),
    odd(S::CloseWait, E::SndSynack, NEW_SYN_AFTER_CLOSE),
    odd(S::CloseWait, E::SndAckOfSyn, "RFC 793 fig. 6: CLOSE_WAIT is entered synchronized"),
    odd(S::CloseWait, E::SndAckOfFin, FIN_ALREADY_ACKED),
    odd(S::CloseWait, E::RcvAckOfSyn, SYN_ACKED_LONG_AGO),
    odd(S::CloseWait, E::RcvAckOfFin, NO_FIN_YET),
    odd(S::LastAck, E::SndSyn, NEW_SYN_AFTER_CLOSE),
    odd(S::LastAck, E::SndSynack, NEW_SYN_AFTER_CLOSE),
    odd(S::LastAck, E::SndAckOfSyn, "RFC 793 fig. 6: LAST_ACK is entered synchronized"),
    odd(S::LastAck, E::SndAckOfFin, FIN_ALREADY_ACKED),
    odd(S::LastAck, E::SndFin, FIN_ALREADY_SENT),
    odd(S::LastAck, E::RcvAckOfSyn, SYN_ACKED_LONG_AGO),
    odd(S::TimeWait, E::SndSyn, "RFC 9293 3.10.7.4: a new SYN in TIME_WAIT belongs to a new connection (the flow table opens one)"),
    odd(S::TimeWait, E::SndSynack, NEW_SYN_AFTER_CLOSE),
    odd(S::TimeWait, E::SndAckOfSyn, "RFC 793 fig. 6: TIME_WAIT is entered synchronized"),
    odd(S::TimeWait, E::SndAckOfFin, "RFC 9293 3.10.7.4: the only thing TIME_WAIT does is re-ACK a retransmitted FIN, already counted"),
    odd(S::TimeWait, E::SndFin, FIN_ALREADY_SENT),
    odd(S::TimeWait, E::RcvAckOfSyn, SYN_ACKED_LONG_AGO),
    odd(S::TimeWait, E::RcvAckOfFin, "the FIN was acknowledged before TIME_WAIT; a duplicate ACK changes nothing"),
];

/// `TRANSITIONS` compiled for lookup by (state, event) position.
const TABLE: [[Option<TcpState>; 9]; 10] = {
    let mut table = [[None; 9]; 10];
    let mut i = 0;
    while i < TRANSITIONS.len() {
        let t = TRANSITIONS[i];
        table[t.state as usize][t.event as usize] = Some(t.target);
        i += 1;
    }
    table
};

/// The target of `event` in `state`, or None: an anomaly.
#[inline]
pub fn next_state(state: TcpState, event: Event) -> Option<TcpState> {
    TABLE[state as usize][event as usize]
}

/// The states in which both sequence spaces are synchronized (RFC 9293 section 3.5).
#[inline]
pub fn synchronized(state: TcpState) -> bool {
    !matches!(state, S::Closed | S::SynSent | S::SynRcvd)
}

/// One endpoint's state, every change it went through, and the anomalies it saw.
#[derive(Clone, Debug, Default)]
pub struct EndpointMachine {
    pub state: TcpState,
    /// (timestamp in ns, state entered), in order.
    pub history: Vec<(i64, TcpState)>,
    /// Narrow: with the state it fits where a u64 took 8 more bytes of every side.
    pub anomalies: u32,
}

impl EndpointMachine {
    /// Assume a state without an event: a capture that begins mid-connection.
    pub fn start(&mut self, ts_ns: i64, state: TcpState) {
        self.state = state;
        self.enter(ts_ns, state);
    }

    /// One allocation for a whole life: a side that opens and closes goes through five
    /// states (the default growth, 4 then 8, took two).
    fn enter(&mut self, ts_ns: i64, state: TcpState) {
        if self.history.capacity() == 0 {
            self.history.reserve_exact(6);
        }
        self.history.push((ts_ns, state));
    }

    /// Apply `event`; true when the state changed. Unexpected events are counted.
    pub fn apply(&mut self, event: Event, ts_ns: i64) -> bool {
        match next_state(self.state, event) {
            None => {
                self.anomalies = self.anomalies.saturating_add(1);
                false
            }
            Some(target) if target == self.state => false,
            Some(target) => {
                self.state = target;
                self.enter(ts_ns, target);
                true
            }
        }
    }

    pub fn visited(&self, state: TcpState) -> bool {
        self.history.iter().any(|&(_, s)| s == state)
    }
}

/// The transition table as a Mermaid state diagram (self-loops left out).
pub fn mermaid_diagram() -> String {
    let mut out = String::from("stateDiagram-v2\n    [*] --> CLOSED\n");
    for t in TRANSITIONS.iter().filter(|t| t.target != t.state) {
        out.push_str(&format!(
            "    {} --> {}: {}\n",
            t.state.name(),
            t.target.name(),
            t.event.name()
        ));
    }
    out
}

/// Heading where the generated part of docs/states.md begins; the prose before it is kept.
pub const GENERATED_FROM: &str = "## Events\n";

/// docs/states.md: `prose` (the file up to `GENERATED_FROM`), then the events, the diagram,
/// the transitions and the anomalies, all generated from the tables above.
pub fn states_markdown(prose: &str) -> String {
    let mut out = String::from(prose);
    out.push_str(GENERATED_FROM);
    out.push_str("\n| event | meaning |\n|---|---|\n");
    for e in Event::ALL {
        out.push_str(&format!("| `{}` | {} |\n", e.name(), e.meaning()));
    }
    out.push_str("\n## Diagram\n\nTransitions that change the state (self-loops left out):\n\n");
    out.push_str("```mermaid\n");
    out.push_str(&mermaid_diagram());
    out.push_str(
        "```\n\n## The table\n\n| state | event | next state | why |\n|---|---|---|---|\n",
    );
    for t in TRANSITIONS {
        let stays = if t.target == t.state { " (stays)" } else { "" };
        out.push_str(&format!(
            "| {} | {} | {}{} | {} |\n",
            t.state.name(),
            t.event.name(),
            t.target.name(),
            stays,
            t.why
        ));
    }
    out.push_str(
        "\n## Anomalies\n\nEvery pair the table leaves out, and why it is not expected. The machine \
         stays where it is and counts it.\n\n| state | event | why it is an anomaly |\n|---|---|---|\n",
    );
    for a in ANOMALIES {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            a.state.name(),
            a.event.name(),
            a.why
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(events: &[Event]) -> Vec<&'static str> {
        let mut machine = EndpointMachine::default();
        for (ts, &event) in events.iter().enumerate() {
            machine.apply(event, ts as i64);
        }
        assert_eq!(machine.anomalies, 0);
        machine.history.iter().map(|&(_, s)| s.name()).collect()
    }

    #[test]
    fn the_two_tables_are_total_and_disjoint() {
        let mut seen = [[0u32; 9]; 10];
        for t in TRANSITIONS {
            seen[t.state as usize][t.event as usize] += 1;
        }
        for a in ANOMALIES {
            seen[a.state as usize][a.event as usize] += 1;
        }
        for state in TcpState::ALL {
            for event in Event::ALL {
                assert_eq!(
                    seen[state as usize][event as usize], 1,
                    "{state:?} {event:?}"
                );
            }
        }
        for (i, state) in TcpState::ALL.into_iter().enumerate() {
            assert_eq!(state as usize, i);
        }
        for (i, event) in Event::ALL.into_iter().enumerate() {
            assert_eq!(event as usize, i);
        }
    }

    #[test]
    fn every_state_is_reachable_and_a_rst_closes_it() {
        let mut seen = vec![S::Closed];
        let mut frontier = vec![S::Closed];
        while let Some(state) = frontier.pop() {
            for t in TRANSITIONS.iter().filter(|t| t.state == state) {
                if !seen.contains(&t.target) {
                    seen.push(t.target);
                    frontier.push(t.target);
                }
            }
        }
        assert_eq!(seen.len(), 10);
        for state in TcpState::ALL {
            assert_eq!(next_state(state, E::RcvRst), Some(S::Closed));
            assert_eq!(next_state(state, E::SndRst), Some(S::Closed));
        }
    }

    #[test]
    fn rfc793_paths() {
        use Event::*;
        let cases: &[(&[Event], &[&str])] = &[
            (
                &[
                    SndSyn,
                    RcvAckOfSyn,
                    SndAckOfSyn,
                    SndFin,
                    RcvAckOfFin,
                    SndAckOfFin,
                ],
                &[
                    "SYN_SENT",
                    "ESTABLISHED",
                    "FIN_WAIT_1",
                    "FIN_WAIT_2",
                    "TIME_WAIT",
                ],
            ),
            (
                &[SndSynack, RcvAckOfSyn, SndAckOfFin, SndFin, RcvAckOfFin],
                &[
                    "SYN_RCVD",
                    "ESTABLISHED",
                    "CLOSE_WAIT",
                    "LAST_ACK",
                    "CLOSED",
                ],
            ),
            (
                &[SndSyn, SndSynack, RcvAckOfSyn],
                &["SYN_SENT", "SYN_RCVD", "ESTABLISHED"],
            ),
            (
                &[SndSynack, RcvAckOfSyn, SndFin, SndAckOfFin, RcvAckOfFin],
                &[
                    "SYN_RCVD",
                    "ESTABLISHED",
                    "FIN_WAIT_1",
                    "CLOSING",
                    "TIME_WAIT",
                ],
            ),
            (&[SndSyn, RcvRst], &["SYN_SENT", "CLOSED"]),
            (
                &[
                    SndSyn,
                    SndAckOfSyn,
                    SndFin,
                    RcvAckOfFin,
                    SndAckOfFin,
                    RcvRst,
                ],
                &[
                    "SYN_SENT",
                    "ESTABLISHED",
                    "FIN_WAIT_1",
                    "FIN_WAIT_2",
                    "TIME_WAIT",
                    "CLOSED",
                ],
            ),
            (&[SndSynack, SndFin], &["SYN_RCVD", "FIN_WAIT_1"]),
            (&[SndSyn, SndSyn, SndAckOfSyn], &["SYN_SENT", "ESTABLISHED"]),
        ];
        for (events, path) in cases {
            assert_eq!(walk(events), *path);
        }
    }

    #[test]
    fn unexpected_event_is_counted_not_raised() {
        let mut machine = EndpointMachine::default();
        assert!(!machine.apply(E::RcvAckOfFin, 1));
        assert_eq!((machine.state, machine.anomalies), (S::Closed, 1));
        assert!(machine.history.is_empty());
        machine.start(5, S::Established);
        assert_eq!(machine.history, vec![(5, S::Established)]);
        assert!(machine.visited(S::Established));
    }

    #[test]
    fn docs_states_md_is_generated_from_the_tables() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/states.md");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let prose = text.split(GENERATED_FROM).next().unwrap_or_default();
        let want = states_markdown(prose);
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(path, &want).expect("write docs/states.md");
            return;
        }
        assert!(
            text == want,
            "docs/states.md is stale: run `UPDATE_DOCS=1 cargo test docs_states_md`"
        );
    }
}
