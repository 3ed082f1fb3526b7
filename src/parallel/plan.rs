//! A run split by flow, as plain functions over plain data (the design of tcptrace/plan.py):
//! `Mapper::map` (a read piece -> its segments split into shards, with the cuts of the
//! single run's feed slices), `Reducer` (one shard's flow table fed in time order, records
//! out with their emission keys), and `finalize` (`Renumber`: global ids, and the single
//! run's emission order rebuilt by merging the shards' epochs). Any executor can run them:
//! `threads` is the local one.
//!
//! Why the output is the single run's: a connection only sees its own 4-tuple, port reuse
//! stays within a 4-tuple, and both directions hash alike, so a shard's flow table sees
//! every segment of its connections. Each shard's table is given the single run's clock at
//! every slice end (`end_slice(latest of the whole slice)`), so it sweeps at the same
//! moments with the same horizon. Ids of the single run follow the connections' first
//! segments: the global id is the rank of the first segment's ordinal (the run's frame
//! number). The single run emits, per drain ("epoch"), first the connections ended by port
//! reuse (in the order of the segments that reused their 4-tuple), then the swept ones in
//! table order (the order their 4-tuple joined the table: the first ordinal of the oldest
//! connection of its in-place reuse chain): the key (epoch, phase, rank) rebuilds it.
//!
//! Identity holds while no shard's flow table reaches --max-flows (each shard has the whole
//! cap; the single run would evict earlier, and eviction order is the whole table's).
//!
//! --verify-checksums: the mapper checks each segment before the slices are cut (the
//! single run leaves bad segments out before it slices). With the Zeek view the bad ones
//! go to their shard's ledger (the ledger is per 4-tuple, so per shard): the reader then
//! maps whole batches, and a shard adds a batch's bad segments to its ledger before it
//! feeds any good one of it, as the single run does.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::checksum;
use crate::decode::{decode_piece, Segment, Tunnels};
use crate::engine::{record_of, Options, FEED_SLICE};
use crate::filter::Filter;
use crate::flows::{Finished, FlowTable, FlowTableStats};
use crate::model::ConnectionRecord;
use crate::sources::{FrameBatch, SourceStats};

// splitmix64's finaliser (Steele, Lea, Flood 2014): cheap and well mixed
fn mix(mut h: u64) -> u64 {
    h ^= h >> 30;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// A 64-bit hash of the segment's 4-tuple, alike in both directions: the two addresses and
/// the two ports are combined by XOR, which is symmetric without putting the ends in order
/// (the reader hashes every segment: ordering two 128-bit addresses and folding five words
/// cost 1 % of a `--jobs 2` run's instructions more than this), then mixed once. Flows whose
/// XORs agree share a shard: that only touches the balance, and client ports differ.
pub fn flow_hash(seg: &Segment) -> u64 {
    let addresses = seg.src ^ seg.dst;
    let ports = u64::from(seg.sport ^ seg.dport);
    // the ports in the low 16 bits, an IPv4 pair's XOR above them
    mix((addresses >> 64) as u64 ^ (addresses as u64).rotate_left(16) ^ ports)
}

/// The shard (0 .. shards-1) of the segment's flow.
pub fn shard_of(seg: &Segment, shards: usize) -> usize {
    (flow_hash(seg) % shards.max(1) as u64) as usize
}

/// Where one feed slice of the single run ends within a mapped piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Per shard: the number of the shard's segment indices of this piece before the cut.
    pub ends: Vec<usize>,
    /// The latest timestamp of the whole slice (all shards): the clock the tables sweep at.
    pub latest: i64,
}

/// One read piece, decoded, filtered and split by shard: the segments stay in one vector,
/// each shard gets the indices of its own (4 bytes a segment, not a copy of 96).
#[derive(Debug, Default)]
pub struct MappedPiece {
    /// The piece's frame bytes: the segments' offsets point into them.
    pub data: Arc<Vec<u8>>,
    /// Frames of the run before this piece: a segment's ordinal is `frame_base +
    /// frame_index` (one segment per frame at most, so ordinals follow the capture order).
    pub frame_base: u64,
    /// The piece's segments (after --filter), in capture order.
    pub segments: Vec<Segment>,
    /// Each shard's segments: indices into `segments`, increasing.
    pub parts: Vec<Vec<u32>>,
    /// The slice ends within this piece, in order.
    pub cuts: Vec<Cut>,
    /// --verify-checksums with the Zeek view: each shard's bad-checksum segments of this
    /// piece (a whole batch then), in capture order, for its ledger.
    pub bad: Vec<Vec<Segment>>,
}

impl MappedPiece {
    /// The run's ordinal of one of this piece's segments.
    pub fn ordinal(&self, seg: &Segment) -> u64 {
        self.frame_base + u64::from(seg.frame_index)
    }
}

/// The map step: reads nothing itself; decodes, filters and splits the pieces it is given
/// in read order, cutting the feed slices exactly where `Engine::run_on` cuts them.
pub struct Mapper {
    filter: Option<Filter>,
    shards: usize,
    /// --verify-checksums: leave out segments with a bad checksum.
    verify_checksums: bool,
    /// ... and keep them for the shards' ledgers (the Zeek view).
    keep_bad: bool,
    /// Counters of the reader and the decoder (`Captures::next_piece` adds to it too).
    pub source: SourceStats,
    pub unsupported: BTreeSet<u32>,
    pub segments_total: u64,
    pub filtered_out: u64,
    /// Frames mapped so far.
    pub frames: u64,
    slice_len: usize,
    slice_latest: i64,
    /// Pieces the shards are done with, their vectors reused (no allocation per piece).
    spare: Vec<MappedPiece>,
    tunnels: Tunnels,
}

impl Mapper {
    pub fn new(options: &Options, shards: usize) -> Mapper {
        Mapper {
            filter: options.filter.clone(),
            shards: shards.max(1),
            verify_checksums: options.verify_checksums,
            keep_bad: keeps_ledger(options),
            source: SourceStats::default(),
            unsupported: BTreeSet::new(),
            segments_total: 0,
            filtered_out: 0,
            frames: 0,
            slice_len: 0,
            slice_latest: i64::MIN,
            spare: Vec::new(),
            tunnels: options.tunnels.clone(),
        }
    }

    /// Hand back a piece every shard is done with: its vectors serve a later `map`.
    pub fn recycle(&mut self, mut piece: MappedPiece) {
        piece.data = Arc::default(); // the reader may reuse the bytes' buffer now
        self.spare.push(piece);
    }

    /// Map the next piece (`ends_batch`: it is the last piece of its batch, where a slice
    /// ends whatever its length).
    pub fn map(&mut self, piece: &FrameBatch, ends_batch: bool) -> MappedPiece {
        let frame_base = self.frames;
        self.frames += piece.len() as u64;
        let mut mapped = self.spare.pop().unwrap_or_default();
        let segments = &mut mapped.segments;
        segments.clear();
        self.filtered_out += decode_piece(
            piece,
            self.filter.as_ref(),
            &mut self.source,
            &mut self.unsupported,
            Some(&self.tunnels),
            segments,
        );
        let bad = &mut mapped.bad;
        bad.resize_with(self.shards, Vec::new);
        bad.iter_mut().for_each(Vec::clear);
        if self.verify_checksums && !segments.is_empty() {
            let before = segments.len();
            let (shards, keep_bad) = (self.shards, self.keep_bad);
            segments.retain(|seg| {
                let is_bad = checksum::is_bad(seg, &piece.data);
                if is_bad && keep_bad {
                    if let Some(list) = bad.get_mut(shard_of(seg, shards)) {
                        list.push(*seg);
                    }
                }
                !is_bad
            });
            self.source
                .skip("bad_checksum", (before - segments.len()) as u64);
        }
        self.segments_total += segments.len() as u64;
        let parts = &mut mapped.parts;
        parts.resize_with(self.shards, Vec::new);
        parts.iter_mut().for_each(Vec::clear);
        let cuts = &mut mapped.cuts;
        cuts.clear();
        let mut rest = segments.as_slice();
        let mut index = 0u32;
        while !rest.is_empty() || (ends_batch && self.slice_len > 0) {
            let take = (FEED_SLICE - self.slice_len).min(rest.len());
            let (run, after) = rest.split_at(take);
            rest = after;
            for seg in run {
                self.slice_latest = self.slice_latest.max(seg.ts_ns);
                if let Some(part) = parts.get_mut(shard_of(seg, self.shards)) {
                    part.push(index);
                }
                index += 1;
            }
            self.slice_len += take;
            if self.slice_len == FEED_SLICE || (rest.is_empty() && ends_batch) {
                cuts.push(Cut {
                    ends: parts.iter().map(Vec::len).collect(),
                    latest: self.slice_latest,
                });
                self.slice_len = 0;
                self.slice_latest = i64::MIN;
            }
        }
        mapped.data = piece.data.clone();
        mapped.frame_base = frame_base;
        mapped
    }
}

/// Whether the run keeps a bad-checksum ledger (the Zeek view of --verify-checksums): the
/// reader then maps whole batches (see the module's comment).
pub fn keeps_ledger(options: &Options) -> bool {
    options.zeek && options.verify_checksums
}

/// A record as one shard emits it, with what finalize needs to place it.
#[derive(Debug)]
pub struct Emitted {
    /// 0: ended by port reuse within the drain; 1: swept (or evicted, or held at the close).
    pub phase: u8,
    /// Order within the phase: the ordinal of the reusing segment (phase 0), or of the
    /// first segment of the oldest connection of the 4-tuple's table slot (phase 1).
    pub rank: u64,
    /// The record, with the shard's local id and previous_id.
    pub record: ConnectionRecord,
}

/// What a reducer hands its records to.
pub trait ShardSink {
    /// The start of a drain (epoch), before its records: `opened` are the first ordinals
    /// of the connections the shard opened during it, in local id order (known before any
    /// record is made, so a merge can number the epoch's records as they come).
    fn begin_epoch(&mut self, opened: &[u64]);
    /// A record, in the shard's emission order.
    fn record(&mut self, emitted: Emitted);
    /// The end of the epoch.
    fn end_epoch(&mut self);
}

const NOT_PHASE0: u32 = u32::MAX;

/// The reduce step: one shard's flow table, fed its part of every slice in time order.
pub struct Reducer {
    shard: usize,
    msl_s: f64,
    panic_at: Option<u64>,
    pub table: FlowTable,
    epoch: u32,
    /// By local id - 1: first ordinal, epoch of the first segment, rank in table order,
    /// and the epoch in which it was ended by port reuse (NOT_PHASE0 otherwise).
    first_ordinal: Vec<u64>,
    open_epoch: Vec<u32>,
    joined: Vec<u64>,
    phase0_epoch: Vec<u32>,
    /// Local ids opened before the current epoch.
    reported: usize,
    /// The frame number (1-based, in the run) of the last segment fed: where a panic was.
    pub last_frame: u64,
    /// Connections ended by port reuse in this epoch, with the reusing segment's ordinal:
    /// their records are made at the epoch's end, as the single run makes them at the
    /// slice end (the Zeek view takes what is left of the ledger then, after the new
    /// connection on the same 4-tuple took its own).
    reused: Vec<(u64, Finished)>,
}

impl Reducer {
    pub fn new(shard: usize, options: &Options) -> Reducer {
        let table = crate::engine::new_table(options);
        Reducer {
            shard,
            msl_s: options.msl_s,
            panic_at: options.panic_at_frame,
            table,
            epoch: 0,
            first_ordinal: Vec::new(),
            open_epoch: Vec::new(),
            joined: Vec::new(),
            phase0_epoch: Vec::new(),
            reported: 0,
            last_frame: 0,
            reused: Vec::new(),
        }
    }

    /// Feed this shard's part of a mapped piece; every cut ends an epoch.
    pub fn feed<S: ShardSink>(&mut self, piece: &MappedPiece, sink: &mut S) {
        let segs = piece.parts.get(self.shard).map_or(&[][..], Vec::as_slice);
        if let (Some(ledger), Some(bad)) = (self.table.ledger.as_mut(), piece.bad.get(self.shard)) {
            bad.iter().for_each(|seg| ledger.add(seg));
        }
        let mut start = 0;
        for cut in &piece.cuts {
            let end = cut
                .ends
                .get(self.shard)
                .copied()
                .unwrap_or(start)
                .max(start);
            self.feed_run(segs.get(start..end).unwrap_or(&[]), piece);
            start = end;
            self.table.end_slice(cut.latest);
            self.end_epoch(sink);
        }
        self.feed_run(segs.get(start..).unwrap_or(&[]), piece);
    }

    /// Segments one at a time: an open gives the connection its first ordinal, and the
    /// connection a port reuse ended is set aside (phase 0), ranked by the reusing segment.
    fn feed_run(&mut self, run: &[u32], piece: &MappedPiece) {
        for &index in run {
            let Some(seg) = piece.segments.get(index as usize) else {
                continue;
            };
            let ordinal = piece.ordinal(seg);
            self.last_frame = ordinal + 1;
            if self.panic_at == Some(ordinal + 1) {
                panic!(
                    "forced panic at frame {} (TCPTRACE_PANIC_AT_FRAME)",
                    ordinal + 1
                );
            }
            let opened = self.table.stats.connections;
            self.table
                .feed_segments(std::slice::from_ref(seg), &piece.data);
            if self.table.stats.connections == opened {
                continue;
            }
            self.first_ordinal.push(ordinal);
            self.open_epoch.push(self.epoch);
            self.joined.push(ordinal);
            self.phase0_epoch.push(NOT_PHASE0);
            let mut ended = self.table.drain();
            self.reused
                .extend(ended.drain(..).map(|conn| (ordinal, conn)));
            // the (empty) vector goes back: the table's next drain takes it again
            self.table.recycle(ended);
        }
    }

    /// The records of the connections port reuse ended, in the order they ended.
    fn emit_reused<S: ShardSink>(&mut self, sink: &mut S) {
        let mut reused = std::mem::take(&mut self.reused);
        for (ordinal, mut conn) in reused.drain(..) {
            let record = record_of(&mut self.table.ledger, &mut conn, self.msl_s);
            self.emit(0, ordinal, record, sink);
        }
        self.reused = reused; // its capacity kept
    }

    /// The records of swept (or closed) connections, in table order: as the single run's
    /// slice end, the next connection's cold parts are loaded while one is recorded (see
    /// `Connection::warm`).
    fn emit_swept<S: ShardSink>(&mut self, ended: &mut [Finished], sink: &mut S) {
        for i in 0..ended.len() {
            if let Some(next) = ended.get(i + 1) {
                std::hint::black_box(next.warm());
            }
            let Some(conn) = ended.get_mut(i) else { break };
            let record = record_of(&mut self.table.ledger, conn, self.msl_s);
            self.emit(1, 0, record, sink);
        }
    }

    /// The connections opened since the last epoch, to the sink (once: a panic while the
    /// epoch's records are made leaves them reported, and the close adds none again).
    fn begin_epoch<S: ShardSink>(&mut self, sink: &mut S) {
        sink.begin_epoch(self.first_ordinal.get(self.reported..).unwrap_or(&[]));
        self.reported = self.first_ordinal.len();
    }

    fn end_epoch<S: ShardSink>(&mut self, sink: &mut S) {
        self.begin_epoch(sink);
        self.emit_reused(sink);
        let mut ended = self.table.drain();
        self.emit_swept(&mut ended, sink);
        // the connections are freed here, only the vector goes back to the table: their
        // slots kept for reuse (`FlowTable::recycle` with them, as the single run does)
        // cost a shard more than they saved (bench10m, --jobs 2: 3.9 -> 4.3 s of CPU,
        // the kept slots cold by the time a new connection takes one)
        ended.clear();
        self.table.recycle(ended);
        sink.end_epoch();
        self.epoch += 1;
    }

    fn emit<S: ShardSink>(&mut self, phase: u8, rank: u64, record: ConnectionRecord, sink: &mut S) {
        let at = (record.id as usize).wrapping_sub(1);
        // the slot's rank in table order: its predecessor's, when that one left by port
        // reuse in the drain this connection opened in (the slot stayed in place)
        let inherited = record.previous_id.and_then(|p| {
            let p = (p as usize).wrapping_sub(1);
            let same = self.phase0_epoch.get(p)? == self.open_epoch.get(at)?;
            if same {
                self.joined.get(p).copied()
            } else {
                None
            }
        });
        let own = self.first_ordinal.get(at).copied().unwrap_or(0);
        let joined = inherited.unwrap_or(own);
        if let Some(slot) = self.joined.get_mut(at) {
            *slot = joined;
        }
        if phase == 0 {
            if let Some(slot) = self.phase0_epoch.get_mut(at) {
                *slot = self.epoch;
            }
        }
        let rank = if phase == 0 { rank } else { joined };
        sink.record(Emitted {
            phase,
            rank,
            record,
        });
    }

    /// The end of the run: every connection still held, as the last epoch.
    pub fn close<S: ShardSink>(&mut self, sink: &mut S) {
        self.begin_epoch(sink);
        self.emit_reused(sink);
        let mut held = self.table.close();
        self.emit_swept(&mut held, sink);
        sink.end_epoch();
        self.epoch += 1;
    }

    /// The flow-table counters (summed over the shards for the source report).
    pub fn stats(&self) -> FlowTableStats {
        self.table.stats
    }
}

/// The finalize step's ids: global id = rank of the first ordinal over all shards, fed one
/// epoch at a time (an epoch's opens all precede its slice end, so ids are final per epoch).
#[derive(Debug, Default)]
pub struct Renumber {
    /// By shard, by local id - 1: the global id.
    ids: Vec<Vec<u64>>,
    next: u64,
}

impl Renumber {
    pub fn new(shards: usize) -> Renumber {
        Renumber {
            ids: vec![Vec::new(); shards],
            next: 1,
        }
    }

    /// The connections each shard opened during one epoch (first ordinals, increasing).
    pub fn add_epoch(&mut self, opened: &[&[u64]]) {
        let mut at = vec![0usize; opened.len()];
        loop {
            let mut best: Option<(u64, usize)> = None;
            for (k, list) in opened.iter().enumerate() {
                if let Some(&o) = list.get(at[k]) {
                    if best.is_none_or(|(b, _)| o < b) {
                        best = Some((o, k));
                    }
                }
            }
            let Some((_, k)) = best else { break };
            at[k] += 1;
            if let Some(ids) = self.ids.get_mut(k) {
                ids.push(self.next);
            }
            self.next += 1;
        }
    }

    /// The global id of a shard's local id (0 if unknown, which a correct plan never asks).
    pub fn global(&self, shard: usize, local: u64) -> u64 {
        self.ids
            .get(shard)
            .and_then(|ids| ids.get((local as usize).wrapping_sub(1)))
            .copied()
            .unwrap_or(0)
    }
}

/// The single run's order of one epoch's records: `keys[k]` are shard k's (phase, rank) in
/// its emission order (already sorted); the result lists (shard, index) in global order.
pub fn merge_epoch(keys: &[Vec<(u8, u64)>]) -> Vec<(usize, usize)> {
    let mut at = vec![0usize; keys.len()];
    let total = keys.iter().map(Vec::len).sum();
    let mut order = Vec::with_capacity(total);
    loop {
        let mut best: Option<((u8, u64), usize)> = None;
        for (k, list) in keys.iter().enumerate() {
            if let Some(&key) = list.get(at[k]) {
                if best.is_none_or(|(b, _)| key < b) {
                    best = Some((key, k));
                }
            }
        }
        let Some((_, k)) = best else { break };
        order.push((k, at[k]));
        at[k] += 1;
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(src: u128, sport: u16, dst: u128, dport: u16) -> Segment {
        Segment {
            src,
            dst,
            sport,
            dport,
            ..Segment::default()
        }
    }

    #[test]
    fn both_directions_hash_alike() {
        let tuples = [
            (0xffff_0a00_0001, 40000, 0xffff_0a00_0002, 80),
            (0xffff_0a00_0002, 80, 0xffff_0a00_0001, 40000),
            (1, 5, 1, 7), // same address: the ports decide the canonical order
            (0x2001_0db8 << 96 | 1, 443, 0x2001_0db8 << 96 | 2, 50000),
        ];
        for (a, pa, b, pb) in tuples {
            let forward = seg(a, pa, b, pb);
            let backward = seg(b, pb, a, pa);
            assert_eq!(flow_hash(&forward), flow_hash(&backward));
            for shards in 1..8 {
                assert_eq!(shard_of(&forward, shards), shard_of(&backward, shards));
            }
        }
        // and different flows spread out
        let a = seg(0xffff_0a00_0001, 40000, 0xffff_0a00_0002, 80);
        let b = seg(0xffff_0a00_0001, 40001, 0xffff_0a00_0002, 80);
        assert_ne!(flow_hash(&a), flow_hash(&b));
        let spread: BTreeSet<usize> = (0..64u16)
            .map(|p| shard_of(&seg(1, 1000 + p, 2, 80), 4))
            .collect();
        assert_eq!(spread.len(), 4);
    }

    #[test]
    fn global_ids_are_ranks_of_first_ordinals() {
        let mut renumber = Renumber::new(3);
        renumber.add_epoch(&[&[4, 9], &[1, 5], &[]]);
        renumber.add_epoch(&[&[], &[20], &[12]]);
        // epoch 1: 1 (shard 1), 4 (0), 5 (1), 9 (0); epoch 2: 12 (2), 20 (1)
        assert_eq!(renumber.global(1, 1), 1);
        assert_eq!(renumber.global(0, 1), 2);
        assert_eq!(renumber.global(1, 2), 3);
        assert_eq!(renumber.global(0, 2), 4);
        assert_eq!(renumber.global(2, 1), 5);
        assert_eq!(renumber.global(1, 3), 6);
        assert_eq!(renumber.global(2, 9), 0); // never opened
    }

    #[test]
    fn an_epoch_merges_reuse_first_then_table_order() {
        let keys = vec![vec![(0, 7), (1, 2), (1, 30)], vec![(0, 3), (1, 10)]];
        assert_eq!(
            merge_epoch(&keys),
            vec![(1, 0), (0, 0), (0, 1), (1, 1), (0, 2)]
        );
    }
}
