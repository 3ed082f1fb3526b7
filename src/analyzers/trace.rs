//! Segment trace: every segment of selected connections, as `ladder` and `report` draw
//! them (the port of tcptrace/analyzers/trace.py, whose output it must match).
//!
//! Off by default: a connection gets a tracer only when the run asks for traces and the
//! selection picks it at creation (`TraceSelect`), so `analyze` pays one branch per segment.
//! Unlike the analyzers of `Analyzers`, a tracer is told the endpoint states after each
//! segment (`SegmentView`): it records what the core made of the segment.
//!
//! Sequence numbers are relative to each side's ISN, as Wireshark shows them (a side whose
//! SYN is not in the capture counts from the first sequence number it used, or from the
//! first ACK the peer sent it). Marks, judged from what this side had sent before:
//!
//! * `retransmission`: the segment's sequence space (payload, FIN) was all sent already; a
//!   SYN (or SYN/ACK) when this side had sent one before;
//! * `out-of-order`: below the highest sequence sent, but not all sent before;
//! * `keep-alive`: no SYN/FIN, at most one byte, seq == SND.NXT - 1 while the peer's window
//!   is open (RFC 1122 section 4.2.3.6; with a zero window the same shape is a window probe);
//! * `rst`: the RST flag.
//!
//! Memory: a trace keeps at most `limit` segments (the first ones); `total` counts all.

use crate::decode::{ACK, FIN, RST, SYN};
use crate::model::Role;
use crate::seqnum::seq_diff;
use crate::states::{EndpointMachine, TcpState};

/// Which connections are traced, decided when the flow table creates one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    All,
    /// The connection with this id (ids count connections as the table creates them).
    Id(u64),
    /// Connections whose client (or server: the role) has this address (as `address_text`
    /// writes it) and port.
    Endpoint(Role, String, u16),
    /// The connections with these ids, sorted (the HTML report traces those it embeds,
    /// chosen in a first pass without traces).
    Ids(Vec<u64>),
}

/// What a run traces: which connections, and at most how many segments of each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceSelect {
    pub selection: Selection,
    pub limit: Option<usize>,
}

impl TraceSelect {
    /// Whether the connection `id` is traced; `endpoint(role)` gives the address and port of
    /// one of its ends (only formatted when the selection is by endpoint).
    pub fn selects(&self, id: u64, endpoint: impl FnOnce(Role) -> (String, u16)) -> bool {
        match &self.selection {
            Selection::All => true,
            Selection::Id(wanted) => *wanted == id,
            Selection::Ids(sorted) => sorted.binary_search(&id).is_ok(),
            Selection::Endpoint(role, ip, port) => {
                let (eip, eport) = endpoint(*role);
                eport == *port && eip == *ip
            }
        }
    }
}

/// A mark of a segment (at most one: the checks exclude each other).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Retransmission,
    OutOfOrder,
    KeepAlive,
    Rst,
}

impl Mark {
    pub fn name(self) -> &'static str {
        match self {
            Mark::Retransmission => "retransmission",
            Mark::OutOfOrder => "out-of-order",
            Mark::KeepAlive => "keep-alive",
            Mark::Rst => "rst",
        }
    }
}

/// One segment as traced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracedSegment {
    pub ts_ns: i64,
    /// The sender.
    pub role: Role,
    pub flags: u16,
    /// Relative to the sender's ISN (the SYN is 0, the first data byte 1).
    pub seq: i64,
    /// Relative to the receiver's ISN; None when the ACK flag is clear.
    pub ack: Option<i64>,
    /// TCP payload bytes.
    pub length: u32,
    /// Advertised window in bytes: scaled by the sender's shift when both SYNs negotiated
    /// scaling (RFC 7323 section 2; a SYN's own window is never scaled).
    pub window: i64,
    /// (client, server) state after the segment.
    pub states: [TcpState; 2],
    /// How many states each side (client, server) entered since the previous segment, in
    /// order: one segment may move a side twice (an ACK of a FIN carrying its own FIN).
    /// The states are in the trace's `entered` list (`SegmentTrace::entered` reads them):
    /// one vector per trace, not two per segment.
    pub entered: [u16; 2],
    pub mark: Option<Mark>,
    /// The health analyzer's verdict (`health::verdict` bits): the per-segment flags
    /// tests/test_tshark_health.py holds against Wireshark's.
    pub verdict: u16,
}

/// What the connection core shows a tracer of one segment, after processing it.
pub struct SegmentView<'a> {
    pub role: Role,
    pub ts_ns: i64,
    pub flags: u16,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub payload_len: u32,
    /// Each side's ISN (index: `Role::index`), as the core knows it now.
    pub isn: [Option<u32>; 2],
    /// Each side's window scale shift from its SYN.
    pub wscale: [Option<u8>; 2],
    pub machines: [&'a EndpointMachine; 2],
    /// The health analyzer's verdict on it (`health::verdict` bits).
    pub verdict: u16,
}

/// Holes in what a side sent kept at most: older ones are not worth memory.
const MAX_RANGES: usize = 16;

/// What one side had sent: merged [start, end) ranges of relative sequence space.
#[derive(Clone, Debug, Default)]
struct Sent {
    base: Option<u32>,
    ranges: Vec<(i64, i64)>,
    /// The window this side last advertised (-1: none yet).
    window: i64,
    /// SYN (bit 0) and SYN/ACK (bit 1) seen: in a simultaneous open the SYN/ACK re-sends
    /// the SYN's sequence number without being a retransmission.
    syns: u8,
}

impl Sent {
    fn new() -> Sent {
        Sent {
            window: -1,
            ..Sent::default()
        }
    }

    fn nxt(&self) -> Option<i64> {
        self.ranges.last().map(|r| r.1)
    }

    fn covered(&self, start: i64, end: i64) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= start && end <= hi)
    }

    fn add(&mut self, start: i64, end: i64) {
        // In-order data (nearly every segment) extends the last range or opens a hole after
        // it: what sorting and merging would make, without a new vector per segment.
        match self.ranges.last_mut() {
            Some(last) if last.0 <= start && start <= last.1 => {
                last.1 = last.1.max(end);
                return;
            }
            Some(last) if start > last.1 => {
                self.ranges.push((start, end));
                if self.ranges.len() > MAX_RANGES {
                    self.ranges.remove(0);
                }
                return;
            }
            _ => {}
        }
        self.ranges.push((start, end));
        self.ranges.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(self.ranges.len());
        for &(lo, hi) in &self.ranges {
            match merged.last_mut() {
                Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        let cut = merged.len().saturating_sub(MAX_RANGES);
        merged.drain(..cut);
        self.ranges = merged;
    }
}

/// The trace of one connection: its kept segments and the count of all.
#[derive(Clone, Debug)]
pub struct SegmentTrace {
    limit: Option<usize>,
    pub segments: Vec<TracedSegment>,
    /// The states the segments entered, segment after segment, client's before server's.
    entered: Vec<TcpState>,
    /// Segments of the connection, kept or not.
    pub total: u64,
    pub first_ns: i64,
    sent: [Sent; 2],
    /// Length of each side's state history at the previous segment.
    seen: [usize; 2],
}

impl SegmentTrace {
    /// The roles changed on evidence (connection.rs `swap_roles`): client and server
    /// exchanged in every traced segment.
    pub fn swap_roles(&mut self) {
        for segment in &mut self.segments {
            segment.role = segment.role.peer();
            segment.states.swap(0, 1);
            segment.entered.swap(0, 1);
        }
        self.sent.swap(0, 1);
        self.seen.swap(0, 1);
    }

    pub fn new(limit: Option<usize>, first_ns: i64) -> SegmentTrace {
        SegmentTrace {
            limit,
            segments: Vec::new(),
            entered: Vec::new(),
            total: 0,
            first_ns,
            sent: [Sent::new(), Sent::new()],
            seen: [0, 0],
        }
    }

    /// Each kept segment with the states it entered (client, server), in order.
    pub fn with_entered(&self) -> impl Iterator<Item = (&TracedSegment, [&[TcpState]; 2])> {
        let mut at = 0usize;
        self.segments.iter().map(move |s| {
            let client_end = at + usize::from(s.entered[0]);
            let server_end = client_end + usize::from(s.entered[1]);
            let client = self.entered.get(at..client_end).unwrap_or(&[]);
            let server = self.entered.get(client_end..server_end).unwrap_or(&[]);
            at = server_end;
            (s, [client, server])
        })
    }

    /// A trace of the given segments and the states each entered (tests of its readers).
    #[cfg(test)]
    pub(crate) fn of(first_ns: i64, segments: Vec<(TracedSegment, [Vec<TcpState>; 2])>) -> Self {
        let mut trace = SegmentTrace::new(None, first_ns);
        for (mut segment, entered) in segments {
            segment.entered = entered.each_ref().map(|side| side.len() as u16);
            trace.entered.extend(entered.iter().flatten());
            trace.segments.push(segment);
            trace.total += 1;
        }
        trace
    }

    /// Some segments were not kept.
    pub fn truncated(&self) -> bool {
        self.limit.is_some_and(|limit| self.total > limit as u64)
    }

    /// One segment, after the core processed it.
    pub fn segment(&mut self, v: &SegmentView<'_>) {
        self.total += 1;
        let (me_i, peer_i) = (v.role.index(), v.role.peer().index());
        let flags = v.flags;
        if self.sent[me_i].base.is_none() {
            self.sent[me_i].base = Some(v.isn[me_i].unwrap_or(v.seq));
        }
        if self.sent[peer_i].base.is_none() && flags & ACK != 0 {
            self.sent[peer_i].base = Some(v.isn[peer_i].unwrap_or(v.ack));
        }
        let rseq = seq_diff(v.seq, self.sent[me_i].base.unwrap_or(v.seq));
        let rack = match self.sent[peer_i].base {
            Some(base) if flags & ACK != 0 => Some(seq_diff(v.ack, base)),
            _ => None,
        };
        let peer_window = self.sent[peer_i].window;
        let me = &mut self.sent[me_i];
        let mut mark = None;
        if flags & RST != 0 {
            mark = Some(Mark::Rst);
        } else {
            let end = rseq
                + i64::from(v.payload_len)
                + i64::from(flags & SYN != 0)
                + i64::from(flags & FIN != 0);
            let nxt = me.nxt();
            let probe = flags & (SYN | FIN) == 0 && v.payload_len <= 1 && peer_window != 0;
            if probe && nxt.is_some_and(|n| rseq == n - 1) {
                mark = Some(Mark::KeepAlive);
            } else if flags & SYN != 0 {
                let bit = if flags & ACK != 0 { 2 } else { 1 };
                if me.syns & bit != 0 {
                    mark = Some(Mark::Retransmission);
                }
                me.syns |= bit;
            } else if end > rseq && nxt.is_some() && me.covered(rseq, end) {
                mark = Some(Mark::Retransmission);
            } else if end > rseq && nxt.is_some_and(|n| rseq < n) {
                mark = Some(Mark::OutOfOrder);
            }
            if end > rseq && mark != Some(Mark::KeepAlive) {
                me.add(rseq, end);
            } else if nxt.is_none() {
                me.add(rseq, rseq);
            }
        }
        me.window = i64::from(v.window);
        let entered = [0, 1].map(|i| {
            let history = &v.machines[i].history;
            let new = history.get(self.seen[i]..).unwrap_or(&[]);
            self.seen[i] = history.len();
            new
        });
        if self.limit.is_some_and(|limit| self.segments.len() >= limit) {
            return;
        }
        let mut window = i64::from(v.window);
        if let (Some(shift), Some(_)) = (v.wscale[me_i], v.wscale[peer_i]) {
            if flags & SYN == 0 {
                window <<= shift;
            }
        }
        self.segments.push(TracedSegment {
            ts_ns: v.ts_ns,
            role: v.role,
            flags,
            seq: rseq,
            ack: rack,
            length: v.payload_len,
            window,
            states: [v.machines[0].state, v.machines[1].state],
            // (a side enters a few states per segment: u16 cannot overflow in practice, and
            // the count and the states kept agree even if it did)
            entered: entered.map(|new| {
                let new = new.get(..usize::from(u16::MAX)).unwrap_or(new);
                self.entered.extend(new.iter().map(|&(_, s)| s));
                new.len() as u16
            }),
            mark,
            verdict: v.verdict,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::PSH;

    const ISN_C: u32 = 1000;
    const ISN_S: u32 = 5000;

    /// Feeds segments to one trace with both ISNs known, no scaling, machines as given.
    struct Feed {
        trace: SegmentTrace,
        machines: [EndpointMachine; 2],
        wscale: [Option<u8>; 2],
    }

    impl Feed {
        fn new(limit: Option<usize>) -> Feed {
            Feed {
                trace: SegmentTrace::new(limit, 7),
                machines: [EndpointMachine::default(), EndpointMachine::default()],
                wscale: [None, None],
            }
        }

        fn seg(&mut self, role: Role, flags: u16, seq: u32, ack: u32, len: u32, window: u16) {
            let view = SegmentView {
                role,
                ts_ns: 7 + i64::from(self.trace.total as u32),
                flags,
                seq,
                ack,
                window,
                payload_len: len,
                isn: [Some(ISN_C), Some(ISN_S)],
                wscale: self.wscale,
                machines: [&self.machines[0], &self.machines[1]],
                verdict: 0,
            };
            self.trace.segment(&view);
        }

        fn last(&self) -> &TracedSegment {
            self.trace.segments.last().expect("a segment")
        }

        /// A handshake, then `data` bytes from the client: its SND.NXT is then 1 + data.
        fn established(data: u32) -> Feed {
            let mut f = Feed::new(None);
            f.seg(Role::Client, SYN, ISN_C, 0, 0, 64240);
            f.seg(Role::Server, SYN | ACK, ISN_S, ISN_C + 1, 0, 65160);
            f.seg(Role::Client, ACK, ISN_C + 1, ISN_S + 1, 0, 502);
            if data > 0 {
                f.seg(Role::Client, PSH | ACK, ISN_C + 1, ISN_S + 1, data, 502);
            }
            f
        }
    }

    #[test]
    fn sequence_numbers_are_relative_to_each_isn() {
        let f = Feed::established(100);
        let got: Vec<(i64, Option<i64>)> =
            f.trace.segments.iter().map(|s| (s.seq, s.ack)).collect();
        assert_eq!(
            got,
            vec![(0, None), (0, Some(1)), (1, Some(1)), (1, Some(1))]
        );
        assert_eq!(f.last().length, 100);
        assert!(f.trace.segments.iter().all(|s| s.mark.is_none()));
    }

    #[test]
    fn a_side_without_its_syn_counts_from_its_first_sequence_number() {
        let mut t = SegmentTrace::new(None, 0);
        let machines = [EndpointMachine::default(), EndpointMachine::default()];
        let view = |seq, ack| SegmentView {
            role: Role::Server,
            ts_ns: 0,
            flags: ACK,
            seq,
            ack,
            window: 1,
            payload_len: 10,
            isn: [None, None],
            wscale: [None, None],
            machines: [&machines[0], &machines[1]],
            verdict: 0,
        };
        t.segment(&view(9000, 300));
        t.segment(&view(9010, 300));
        let got: Vec<(i64, Option<i64>)> = t.segments.iter().map(|s| (s.seq, s.ack)).collect();
        assert_eq!(got, vec![(0, Some(0)), (10, Some(0))]);
    }

    #[test]
    fn data_sent_again_is_a_retransmission_and_so_is_a_second_syn() {
        let mut f = Feed::established(100);
        f.seg(Role::Client, PSH | ACK, ISN_C + 1, ISN_S + 1, 100, 502);
        assert_eq!(f.last().mark, Some(Mark::Retransmission));
        f.seg(Role::Client, PSH | ACK, ISN_C + 51, ISN_S + 1, 10, 502); // inside what was sent
        assert_eq!(f.last().mark, Some(Mark::Retransmission));
        f.seg(Role::Client, SYN, ISN_C, 0, 0, 64240);
        assert_eq!(f.last().mark, Some(Mark::Retransmission));
        f.seg(Role::Server, SYN | ACK, ISN_S, ISN_C + 1, 0, 65160);
        assert_eq!(f.last().mark, Some(Mark::Retransmission));
    }

    #[test]
    fn a_simultaneous_open_synack_is_not_a_retransmission() {
        let mut f = Feed::new(None);
        f.seg(Role::Client, SYN, ISN_C, 0, 0, 100);
        f.seg(Role::Client, SYN | ACK, ISN_C, ISN_S + 1, 0, 100);
        assert_eq!(f.last().mark, None);
    }

    #[test]
    fn filling_a_hole_is_out_of_order() {
        let mut f = Feed::established(100); // bytes 1..101
        f.seg(Role::Client, ACK, ISN_C + 201, ISN_S + 1, 100, 502); // 201..301: a hole before
        assert_eq!(f.last().mark, None);
        f.seg(Role::Client, ACK, ISN_C + 101, ISN_S + 1, 100, 502); // 101..201 fills it
        assert_eq!((f.last().seq, f.last().mark), (101, Some(Mark::OutOfOrder)));
        f.seg(Role::Client, ACK, ISN_C + 150, ISN_S + 1, 100, 502); // all sent by now
        assert_eq!(f.last().mark, Some(Mark::Retransmission));
    }

    #[test]
    fn keepalive_is_one_below_snd_nxt_while_the_peer_window_is_open() {
        let mut f = Feed::established(100); // SND.NXT = 101
        f.seg(Role::Server, ACK, ISN_S + 1, ISN_C + 101, 0, 509);
        f.seg(Role::Client, ACK, ISN_C + 100, ISN_S + 1, 0, 502);
        assert_eq!((f.last().seq, f.last().mark), (100, Some(Mark::KeepAlive)));
        f.seg(Role::Client, ACK, ISN_C + 100, ISN_S + 1, 1, 502); // with its garbage byte
        assert_eq!(f.last().mark, Some(Mark::KeepAlive));
        // a zero window: the same shape is a window probe, no mark
        f.seg(Role::Server, ACK, ISN_S + 1, ISN_C + 101, 0, 0);
        assert_eq!(f.last().mark, None);
        f.seg(Role::Client, ACK, ISN_C + 100, ISN_S + 1, 0, 502);
        assert_eq!(f.last().mark, None);
    }

    #[test]
    fn rst_is_marked_and_judges_nothing_else() {
        let mut f = Feed::established(100);
        f.seg(Role::Server, RST | ACK, ISN_S + 1, ISN_C + 101, 0, 0);
        assert_eq!((f.last().seq, f.last().mark), (1, Some(Mark::Rst)));
        assert_eq!(Mark::Rst.name(), "rst");
    }

    #[test]
    fn windows_scale_when_both_syns_negotiated_it_but_never_on_a_syn() {
        let mut f = Feed::new(None);
        f.wscale = [Some(7), Some(2)];
        f.seg(Role::Client, SYN, ISN_C, 0, 0, 64240);
        f.seg(Role::Client, ACK, ISN_C + 1, ISN_S + 1, 0, 502);
        f.seg(Role::Server, ACK, ISN_S + 1, ISN_C + 1, 0, 502);
        let windows: Vec<i64> = f.trace.segments.iter().map(|s| s.window).collect();
        assert_eq!(windows, vec![64240, 502 << 7, 502 << 2]);
        f.wscale = [Some(7), None];
        f.seg(Role::Client, ACK, ISN_C + 1, ISN_S + 1, 0, 502);
        assert_eq!(f.last().window, 502);
    }

    #[test]
    fn entered_states_are_those_since_the_previous_segment() {
        let mut f = Feed::new(None);
        f.machines[0].start(1, TcpState::SynSent);
        f.seg(Role::Client, SYN, ISN_C, 0, 0, 1);
        f.seg(Role::Client, SYN, ISN_C, 0, 0, 1);
        f.machines[1].start(2, TcpState::SynRcvd);
        f.machines[1].start(2, TcpState::Established);
        f.seg(Role::Server, SYN | ACK, ISN_S, ISN_C + 1, 0, 1);
        let entered: Vec<[Vec<TcpState>; 2]> = f
            .trace
            .with_entered()
            .map(|(_, e)| e.map(<[TcpState]>::to_vec))
            .collect();
        assert_eq!(
            entered,
            vec![
                [vec![TcpState::SynSent], vec![]],
                [vec![], vec![]],
                [vec![], vec![TcpState::SynRcvd, TcpState::Established]],
            ]
        );
        assert_eq!(f.last().states, [TcpState::SynSent, TcpState::Established]);
    }

    #[test]
    fn a_limit_keeps_the_first_segments_and_counts_all() {
        let mut f = Feed::new(Some(2));
        for _ in 0..5 {
            f.seg(Role::Client, SYN, ISN_C, 0, 0, 1);
        }
        assert_eq!((f.trace.segments.len(), f.trace.total), (2, 5));
        assert!(f.trace.truncated());
    }

    #[test]
    fn selection_by_id_endpoint_or_all() {
        let all = TraceSelect {
            selection: Selection::All,
            limit: None,
        };
        let id = TraceSelect {
            selection: Selection::Id(3),
            limit: None,
        };
        let client = TraceSelect {
            selection: Selection::Endpoint(Role::Client, "fd77::1".into(), 40008),
            limit: None,
        };
        let server = TraceSelect {
            selection: Selection::Endpoint(Role::Server, "fd77::2".into(), 80),
            limit: None,
        };
        let ids = TraceSelect {
            selection: Selection::Ids(vec![2, 5, 9]),
            limit: None,
        };
        // a connection from fd77::1 port 40008 to fd77::2 port 80
        let fd77 = |role| match role {
            Role::Client => ("fd77::1".to_string(), 40008),
            Role::Server => ("fd77::2".to_string(), 80),
        };
        assert!(all.selects(1, fd77) && id.selects(3, fd77) && !id.selects(4, fd77));
        assert!(ids.selects(5, fd77) && ids.selects(9, fd77) && !ids.selects(4, fd77));
        assert!(client.selects(9, fd77) && server.selects(9, fd77));
        assert!(!client.selects(9, |_| ("fd77::1".to_string(), 40009)));
        assert!(!server.selects(9, |_| ("fd77::1".to_string(), 40008)));
    }
}
