//! Which connections' segment traces the HTML report embeds: a budget, spent on the
//! connections a person opens first.
//!
//! Every connection's trace would make the page as large as the capture (the 1M-packet
//! benchmark: 65 MB of HTML, 44 s to load). Every record is offered here as its connection
//! ends; five bounded heaps keep the best candidates of each kind:
//!
//! - `rst`: connections ended or refused by a RST (the earliest ids);
//! - `slow handshake`: the longest set-up (first SYN to the ACK of the SYN/ACK);
//! - `stall`: retransmissions, ranked by bytes sent again (a SYN or SYN/ACK sent again
//!   counts as a full segment): where a transfer waited for a timeout;
//! - `longest`: the longest duration;
//! - `largest`: the most unique payload bytes, both directions.
//!
//! At the end the kinds take turns (the best of each, then the second best, ...) until the
//! segment budget is spent; a connection picked by several kinds counts once. A trace's size
//! is known before it is drawn: min(packets, the run's segment limit).
//!
//! The report reads the capture once: every connection is traced while it is open (at most
//! the limit of segments each), and when it ends its trace is kept only while one of the
//! heaps holds it (`Offer::Kept`; `Offer::evicted` lists the ids no heap holds any more).
//! Memory is thus bounded by the open connections and `KINDS.len() * per_kind` traces.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use crate::model::ConnectionRecord;

/// Candidates kept per kind (more than a person opens; the budget decides the rest).
pub const PER_KIND: usize = 200;
/// A retransmitted SYN or SYN/ACK weighs as a full-size segment in the `stall` ranking.
const SYN_AS_BYTES: u64 = 1460;
/// The kinds, in the order they take turns (the page shows these names).
pub const KINDS: [&str; 5] = ["rst", "slow handshake", "stall", "longest", "largest"];

/// A candidate: higher scores first, on equal scores the smaller id.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    score: f64,
    id: u64,
    segments: u64,
}

impl Candidate {
    fn rank(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.id.cmp(&self.id))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.rank(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank(other)
    }
}

/// The record's score for each kind (higher: picked first), None where it is no candidate.
fn scores(r: &ConnectionRecord) -> [Option<f64>; 5] {
    let hs = &r.handshake;
    let retx = (r.retransmitted_bytes.client)
        .saturating_add(r.retransmitted_bytes.server)
        .saturating_add(SYN_AS_BYTES.saturating_mul(hs.syn_retransmits + hs.synack_retransmits));
    let unique = r.unique_bytes.client.saturating_add(r.unique_bytes.server);
    let nonzero = |n: u64| (n != 0).then_some(n as f64);
    [
        r.rst.as_ref().map(|_| -(r.id as f64)), // the earliest RSTs
        hs.setup_ms.or(hs.rtt_ms),
        nonzero(retx),
        Some(r.duration_ms),
        nonzero(unique),
    ]
    // + 0.0: -0.0 ranks as 0.0 (as Python compares them), not below it
    .map(|score| score.map(|s| s + 0.0))
}

/// Bounded min-heaps of candidates per kind, fed record by record.
pub struct TracePicker {
    limit: u64,
    budget: u64,
    per_kind: usize,
    heaps: [BinaryHeap<Reverse<Candidate>>; 5],
    /// Id -> how many heaps hold it.
    held: HashMap<u64, u8>,
}

/// What `offer` did with a record: whether a heap holds it now, and the ids it pushed out
/// that no heap holds any more.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Offer {
    pub kept: bool,
    pub evicted: Vec<u64>,
}

impl TracePicker {
    /// `limit`: segments traced per connection; `budget`: segments embedded in all.
    pub fn new(limit: u64, budget: u64, per_kind: usize) -> TracePicker {
        TracePicker {
            limit,
            budget,
            per_kind,
            heaps: Default::default(),
            held: HashMap::new(),
        }
    }

    /// Offer one ended connection to every kind.
    pub fn offer(&mut self, r: &ConnectionRecord) -> Offer {
        let segments = r
            .packets
            .client
            .saturating_add(r.packets.server)
            .min(self.limit);
        let mut offer = Offer::default();
        if segments == 0 || self.per_kind == 0 {
            return offer;
        }
        for (heap, score) in self.heaps.iter_mut().zip(scores(r)) {
            let Some(score) = score else { continue };
            let candidate = Candidate {
                score,
                id: r.id,
                segments,
            };
            if heap.len() >= self.per_kind {
                // the root is the weakest candidate (most records are not better)
                if heap.peek().is_none_or(|weakest| candidate <= weakest.0) {
                    continue;
                }
                if let Some(Reverse(out)) = heap.pop() {
                    if let Some(count) = self.held.get_mut(&out.id) {
                        *count -= 1;
                        if *count == 0 {
                            self.held.remove(&out.id);
                            offer.evicted.push(out.id);
                        }
                    }
                }
            }
            heap.push(Reverse(candidate));
            *self.held.entry(r.id).or_insert(0) += 1;
            offer.kept = true;
        }
        offer
    }

    /// Id and the kinds that picked it, within the budget, in the order of the turns.
    pub fn picked(&self) -> Vec<(u64, Vec<&'static str>)> {
        let ranked: Vec<Vec<Candidate>> = self
            .heaps
            .iter()
            .map(|heap| {
                let mut all: Vec<Candidate> = heap.iter().map(|c| c.0).collect();
                all.sort_unstable_by(|a, b| b.cmp(a));
                all
            })
            .collect();
        let mut chosen: Vec<(u64, Vec<&'static str>)> = Vec::new();
        let mut spent = 0u64;
        let turns = ranked.iter().map(Vec::len).max().unwrap_or(0);
        for rank in 0..turns {
            for (kind, candidates) in KINDS.iter().zip(&ranked) {
                let Some(c) = candidates.get(rank) else {
                    continue;
                };
                if let Some((_, kinds)) = chosen.iter_mut().find(|(id, _)| *id == c.id) {
                    kinds.push(kind);
                } else if spent.saturating_add(c.segments) <= self.budget {
                    chosen.push((c.id, vec![kind]));
                    spent += c.segments;
                }
            }
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PerSide, Role, Rst, RstKind};
    use crate::states::TcpState;

    fn reset() -> Rst {
        Rst {
            sender: Role::Server,
            state: TcpState::Established,
            receiver_state: TcpState::Established,
            kind: RstKind::Abort,
            ts: 0.0,
            count: 1,
        }
    }

    /// A record with the fields the picker reads.
    fn record(id: u64, setup: Option<f64>, duration: f64, packets: u64) -> ConnectionRecord {
        let mut r = crate::writers::fixture::records().swap_remove(0);
        r.id = id;
        r.rst = None;
        r.handshake.syn_retransmits = 0;
        r.handshake.synack_retransmits = 0;
        r.retransmitted_bytes = PerSide::new(0, 0);
        r.unique_bytes = PerSide::new(0, 0);
        r.handshake.setup_ms = setup;
        r.handshake.rtt_ms = setup;
        r.duration_ms = duration;
        r.packets.client = packets;
        r.packets.server = 0;
        r
    }

    #[test]
    fn picks_take_turns_within_the_budget() {
        let mut picker = TracePicker::new(100, 35, 3);
        let mut rst = record(1, Some(1.0), 1.0, 10);
        rst.rst = Some(reset());
        assert!(picker.offer(&rst).kept);
        picker.offer(&record(2, Some(50.0), 1.0, 10));
        let mut stall = record(3, Some(1.0), 1.0, 10);
        stall.retransmitted_bytes.client = 3000;
        picker.offer(&stall);
        picker.offer(&record(4, Some(1.0), 900.0, 500)); // 100 segments: over the budget
        let mut large = record(5, None, 1.0, 10);
        large.unique_bytes.client = 1_000_000;
        picker.offer(&large);
        let mut empty = record(6, Some(1.0), 1.0, 0);
        empty.rst = Some(reset());
        assert_eq!(picker.offer(&empty), Offer::default()); // nothing to draw
                                                            // turn 1, each kind's best: 1 (rst), 2 (slow), 3 (stall): 30 segments; 4 (longest,
                                                            // 100 segments) and 5 (largest) do not fit. Turns 2 and 3 add kinds to those picked
                                                            // already (equal scores: the smaller id first).
        assert_eq!(
            picker.picked(),
            vec![
                (1, vec!["rst", "slow handshake", "longest"]),
                (2, vec!["slow handshake", "longest"]),
                (3, vec!["stall", "slow handshake"]),
            ]
        );
    }

    #[test]
    fn an_id_leaves_when_no_heap_holds_it() {
        let mut picker = TracePicker::new(100, 1000, 1);
        assert!(picker.offer(&record(1, Some(5.0), 5.0, 10)).kept);
        // 2 beats 1 in both kinds it is a candidate of: 1 leaves
        let offer = picker.offer(&record(2, Some(6.0), 6.0, 10));
        assert_eq!((offer.kept, offer.evicted), (true, vec![1]));
        // 3 beats 2 on duration only: 2 stays (slow handshake)
        let offer = picker.offer(&record(3, Some(1.0), 7.0, 10));
        assert_eq!((offer.kept, offer.evicted), (true, vec![]));
        // 4 is no better anywhere: not kept
        assert_eq!(
            picker.offer(&record(4, Some(1.0), 1.0, 10)),
            Offer::default()
        );
    }
}
