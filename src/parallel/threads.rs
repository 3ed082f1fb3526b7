//! The local executor of the plan: `--jobs N` on N+1 threads and the caller's.
//!
//! The reader thread reads, decodes and splits each piece (`Mapper`), and sends it (shared,
//! not copied) to every shard thread; shard k runs its `Reducer` over its part and encodes
//! its records in the output format under local ids (`Encoder`), each epoch in parts of a
//! few blocks sent as soon as they are full. The caller's thread is the writer: it takes
//! epoch e's first part from every shard, numbers the connections opened in it, merges the
//! records into the single run's order as the parts come and splices the global ids into
//! their bytes. Channels are bounded: memory holds a few pieces and a few parts per shard,
//! never the run nor a whole epoch.

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread;

use crate::engine::{
    panic_message, place, source_report, warn_damage, warn_evictions, Options, Progress, RunError,
    PIECE,
};
use crate::flows::FlowTableStats;
use crate::model::ConnectionRecord;
use crate::sources::{CaptureError, Captures};
use crate::writers::Value;

use super::encode::{splice, Encoder, Encoding, EpochBatch, Spans};
use super::plan::{keeps_ledger, Emitted, MappedPiece, Mapper, Reducer, Renumber, ShardSink};

/// Bytes read per piece. The single run's quarter (`engine::SERIAL_PIECE`) was tried: a
/// quarter of the bytes in flight and fewer page faults, but one thread wake-up per piece
/// and shard, four times as many (bench10m, --jobs 2: 15k -> 54k context switches, +5 %
/// CPU on a loaded machine).
const JOBS_PIECE: usize = PIECE;
/// Pieces queued per shard (8 before: each one more is a piece's buffer, frames and
/// segments more in flight, about 1.3 MB of pages faulted in).
const PIECES_AHEAD: usize = 4;
/// Epoch parts queued per shard.
const EPOCHS_AHEAD: usize = 4;

enum ToShard {
    Piece(Arc<MappedPiece>),
    /// The reader failed: stop without the close (as the single run returns at once).
    Stop,
}

enum FromShard {
    Epoch(EpochBatch),
    Done(FlowTableStats),
    Failed {
        at: String,
        message: String,
        stats: FlowTableStats,
    },
}

/// One record as the writer hands it on, under its global ids.
pub struct Output<'a> {
    pub id: u64,
    pub previous_id: Option<u64>,
    /// The shard's encoding of the record, under its local ids (nothing for the table).
    local: &'a [u8],
    /// Where the ids are in `local` (None: it holds none, as conn.log rows).
    spans: Option<&'a Spans>,
    /// Json and table runs: the record (with its shard's local ids).
    pub record: Option<&'a ConnectionRecord>,
}

impl Output<'_> {
    /// Append the encoded record under its global ids to `out` (one copy: the ids are
    /// spliced on the way).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self.spans {
            Some(spans) => splice(self.local, spans, self.id, self.previous_id, out),
            None => out.extend_from_slice(self.local),
        }
    }
}

/// The run's report parts (valid once `run` returned, failed or not).
#[derive(Debug, Default)]
pub struct Report {
    pub source_report: Option<Value>,
    pub warnings: Vec<String>,
}

/// Run the analysis of `paths` on `jobs` shard threads; `emit` receives every record in the
/// single run's order, under the single run's ids.
pub fn run<E: FnMut(Output) -> Result<(), String>>(
    paths: &[String],
    options: &Options,
    jobs: usize,
    encoding: Encoding,
    progress: &Arc<Progress>,
    emit: E,
) -> (Result<(), RunError>, Report) {
    let captures = match Captures::open(paths, Some(progress.bytes.clone())) {
        Ok(captures) => captures,
        Err(err) => return (Err(RunError::Capture(err)), Report::default()),
    };
    run_on(captures, paths, options, jobs, encoding, progress, emit)
}

/// `run` over captures already opened.
pub fn run_on<E: FnMut(Output) -> Result<(), String>>(
    mut captures: Captures,
    paths: &[String],
    options: &Options,
    jobs: usize,
    encoding: Encoding,
    progress: &Arc<Progress>,
    mut emit: E,
) -> (Result<(), RunError>, Report) {
    let jobs = jobs.max(1);
    let abort = AtomicBool::new(false);
    let mut to_shards = Vec::with_capacity(jobs);
    let mut shard_inboxes = Vec::with_capacity(jobs);
    let mut from_shards = Vec::with_capacity(jobs);
    let mut shard_outboxes = Vec::with_capacity(jobs);
    let mut returns = Vec::with_capacity(jobs);
    let mut shard_returns = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        let (tx, rx) = channel::<EpochBatch>();
        returns.push(tx);
        shard_returns.push(rx);
        let (tx, rx) = sync_channel::<ToShard>(PIECES_AHEAD);
        to_shards.push(tx);
        shard_inboxes.push(rx);
        let (tx, rx) = sync_channel::<FromShard>(EPOCHS_AHEAD);
        shard_outboxes.push(tx);
        from_shards.push(rx);
    }
    thread::scope(|scope| {
        // Builder::spawn_scoped, not scope.spawn (which panics): a thread that cannot be
        // started (a process or memory limit) is a one-line error. The shards start first:
        // if one cannot, the others end on their closed inboxes before anything is read.
        let channels = shard_inboxes
            .into_iter()
            .zip(shard_outboxes)
            .zip(shard_returns);
        let mut spawned = Ok(());
        for (k, ((inbox, outbox), returned)) in channels.enumerate() {
            let abort = &abort;
            let mailbox = Mailbox {
                inbox,
                outbox,
                returned,
            };
            let started = thread::Builder::new().spawn_scoped(scope, move || {
                shard(k, options, paths, encoding, mailbox, abort)
            });
            if let Err(err) = started {
                spawned = Err(err);
                break;
            }
        }
        let reader = spawned.and_then(|()| {
            thread::Builder::new().spawn_scoped(scope, || {
                read(&mut captures, options, jobs, to_shards, progress, &abort)
            })
        });
        let reader = match reader {
            Ok(reader) => reader,
            Err(err) => {
                drop(from_shards);
                let message = format!("--jobs {jobs}: cannot start a thread: {err}");
                return (
                    Err(RunError::Capture(CaptureError(message))),
                    Report::default(),
                );
            }
        };
        let written = write(from_shards, returns, encoding, &abort, &mut emit);
        abort.store(true, Ordering::Relaxed);
        let (mut mapper, read_error) = match reader.join() {
            Ok(done) => done,
            Err(payload) => {
                let message = panic_message(&payload);
                let report = Report::default();
                let at = "the reader".to_string();
                return (Err(RunError::Panic { at, message }), report);
            }
        };
        if let Some(err) = read_error {
            return (Err(RunError::Capture(err)), Report::default());
        }
        let (result, stats) = match written {
            Ok(stats) => (Ok(()), stats),
            Err((err, stats)) => (Err(err), stats),
        };
        warn_damage(&mut mapper.source, &mapper.unsupported);
        warn_evictions(&mut mapper.source, &stats);
        let report = Report {
            source_report: Some(source_report(
                &mapper.source,
                mapper.segments_total,
                mapper.filtered_out,
                &stats,
            )),
            warnings: mapper.source.warnings.clone(),
        };
        (result, report)
    })
}

/// The reader thread: read, map, send to every shard (the end: dropping the senders).
fn read(
    captures: &mut Captures,
    options: &Options,
    jobs: usize,
    to_shards: Vec<SyncSender<ToShard>>,
    progress: &Progress,
    abort: &AtomicBool,
) -> (Mapper, Option<CaptureError>) {
    let mut mapper = Mapper::new(options, jobs);
    // with a ledger, whole batches (the ledger's order rule: see plan's comment)
    let piece_size = if keeps_ledger(options) {
        usize::MAX
    } else {
        JOBS_PIECE
    };
    // pieces sent, oldest first: one every shard dropped is the reader's again
    let mut sent: VecDeque<Arc<MappedPiece>> = VecDeque::new();
    loop {
        // a failing shard (abort), or the user (stop: the input ends here, as in one thread)
        if abort.load(Ordering::Relaxed) || progress.stop.load(Ordering::Relaxed) {
            return (mapper, None);
        }
        // before the read, so that the chunk reader finds their bytes' buffers free
        while sent.front().is_some_and(|p| Arc::strong_count(p) == 1) {
            if let Some(done) = sent.pop_front().and_then(Arc::into_inner) {
                mapper.recycle(done);
            }
        }
        let (piece, ends_batch) = match captures.next_piece(&mut mapper.source, piece_size) {
            Ok(Some(piece)) => piece,
            Ok(None) => return (mapper, None),
            Err(err) => {
                for tx in &to_shards {
                    let _ = tx.send(ToShard::Stop);
                }
                return (mapper, Some(err));
            }
        };
        let mapped = Arc::new(mapper.map(&piece, ends_batch));
        // its frame vector serves the next read (the bytes stay shared with the shards)
        captures.recycle(piece);
        progress.frames.store(mapper.frames, Ordering::Relaxed);
        for tx in &to_shards {
            if tx.send(ToShard::Piece(mapped.clone())).is_err() {
                return (mapper, None); // the shard stopped: the run is failing
            }
        }
        sent.push_back(mapped);
    }
}

/// A shard's channels: pieces in, epoch batches out, emptied batches back from the writer.
struct Mailbox {
    inbox: Receiver<ToShard>,
    outbox: SyncSender<FromShard>,
    returned: Receiver<EpochBatch>,
}

/// A shard's sink: its streaming encoder, whose parts go to the writer as soon as they are
/// cut (an epoch of thousands of records reaches the writer while the rest is made, and
/// a few blocks go round instead of the epoch's worth).
struct Outlet<'a> {
    encoder: Encoder,
    outbox: &'a SyncSender<FromShard>,
    returned: &'a Receiver<EpochBatch>,
    /// Nothing more is sent: the writer stopped, or a record's encoding was broken.
    closed: bool,
}

impl Outlet<'_> {
    /// Batches the writer handed back, to the encoder's pools.
    fn take_returned(&mut self) {
        while let Ok(batch) = self.returned.try_recv() {
            self.encoder.reuse(batch);
        }
    }

    fn send_done(&mut self) {
        self.closed |= self.encoder.broken;
        for batch in self.encoder.done.drain(..) {
            if !self.closed && self.outbox.send(FromShard::Epoch(batch)).is_err() {
                self.closed = true;
            }
        }
    }
}

impl ShardSink for Outlet<'_> {
    fn begin_epoch(&mut self, opened: &[u64]) {
        self.encoder.begin_epoch(opened);
    }

    fn record(&mut self, emitted: Emitted) {
        if self.encoder.wants_returns() {
            self.take_returned();
        }
        self.encoder.record(emitted);
        if !self.encoder.done.is_empty() {
            self.send_done();
        }
    }

    fn end_epoch(&mut self) {
        self.encoder.end_epoch();
        self.send_done();
    }
}

/// A shard thread: reduce its part of every piece, send each epoch's batches.
fn shard(
    k: usize,
    options: &Options,
    paths: &[String],
    encoding: Encoding,
    mailbox: Mailbox,
    abort: &AtomicBool,
) {
    let Mailbox {
        inbox,
        outbox,
        returned,
    } = mailbox;
    let mut reducer = Reducer::new(k, options);
    let mut outlet = Outlet {
        encoder: Encoder::streaming(encoding),
        outbox: &outbox,
        returned: &returned,
        closed: false,
    };
    while let Ok(message) = inbox.recv() {
        let piece = match message {
            // another shard failed: stop here, and write what is held (below)
            ToShard::Piece(_) if abort.load(Ordering::Relaxed) => break,
            ToShard::Piece(piece) => piece,
            ToShard::Stop => {
                let _ = outbox.send(FromShard::Done(reducer.stats()));
                return;
            }
        };
        outlet.take_returned();
        let fed = panic::catch_unwind(AssertUnwindSafe(|| reducer.feed(&piece, &mut outlet)));
        drop(piece);
        if let Err(payload) = fed {
            abort.store(true, Ordering::Relaxed);
            let frame = options.panic_at_frame.unwrap_or(reducer.last_frame);
            let at = place(paths, frame);
            let message = panic_message(&payload);
            // the connections still held are written, each as far as it goes
            let _ = panic::catch_unwind(AssertUnwindSafe(|| reducer.close(&mut outlet)));
            outlet.send_done();
            let stats = reducer.stats();
            let _ = outbox.send(FromShard::Failed { at, message, stats });
            return;
        }
        if outlet.encoder.broken {
            abort.store(true, Ordering::Relaxed);
            let _ = outbox.send(FromShard::Failed {
                at: place(paths, reducer.last_frame),
                message: "a record's id was not found in its encoding".into(),
                stats: reducer.stats(),
            });
            return;
        }
        if outlet.closed {
            return; // the writer stopped
        }
    }
    let closed = panic::catch_unwind(AssertUnwindSafe(|| reducer.close(&mut outlet)));
    outlet.send_done();
    if outlet.closed {
        return;
    }
    let stats = reducer.stats();
    let _ = outbox.send(match closed {
        Ok(()) => FromShard::Done(stats),
        Err(payload) => FromShard::Failed {
            at: place(paths, reducer.last_frame),
            message: panic_message(&payload),
            stats,
        },
    });
}

pub(crate) fn add_stats(total: &mut FlowTableStats, s: &FlowTableStats) {
    total.connections += s.connections;
    total.evicted_for_capacity += s.evicted_for_capacity;
    total.idle_evicted += s.idle_evicted;
    total.port_reuse += s.port_reuse;
    total.after_close += s.after_close;
    total.duplicates += s.duplicates;
    total.failed_connections += s.failed_connections;
    total.clock_jumps = total.clock_jumps.max(s.clock_jumps); // every shard sees each jump
}

type Written = Result<FlowTableStats, (RunError, FlowTableStats)>;

/// The shards as the writer sees them: their outboxes, and what ended them.
struct Shards<'a> {
    from: Vec<Receiver<FromShard>>,
    live: Vec<bool>,
    stats: FlowTableStats,
    failure: Option<RunError>,
    abort: &'a AtomicBool,
}

impl Shards<'_> {
    /// Shard k's next batch (None: it is done, failed or died).
    fn next(&mut self, k: usize) -> Option<EpochBatch> {
        if !self.live.get(k).copied().unwrap_or(false) {
            return None;
        }
        let jobs = self.from.len();
        let message = self.from.get(k).map(Receiver::recv);
        if let Some(live) = self.live.get_mut(k) {
            *live = matches!(message, Some(Ok(FromShard::Epoch(_))));
        }
        match message {
            Some(Ok(FromShard::Epoch(batch))) => return Some(batch),
            Some(Ok(FromShard::Done(s))) => add_stats(&mut self.stats, &s),
            Some(Ok(FromShard::Failed {
                at,
                message,
                stats: s,
            })) => {
                add_stats(&mut self.stats, &s);
                self.abort.store(true, Ordering::Relaxed);
                self.failure.get_or_insert(RunError::Panic { at, message });
            }
            Some(Err(_)) | None => {
                self.abort.store(true, Ordering::Relaxed);
                self.failure.get_or_insert(RunError::Panic {
                    at: format!("shard {k} of --jobs {jobs}"),
                    message: "the shard thread died".into(),
                });
            }
        }
        None
    }
}

/// One shard's part of the epoch being merged, and its next record in it.
#[derive(Default)]
struct Head {
    part: Option<EpochBatch>,
    at: usize,
}

impl Head {
    /// The (phase, rank) of the next record, if this part holds one.
    fn key(&self) -> Option<(u8, u64)> {
        let item = self.part.as_ref()?.items.get(self.at)?;
        Some((item.phase, item.rank))
    }
}

/// The writer (the caller's thread): epoch by epoch, every shard's batches, renumbered and
/// merged into the single run's order as they come (a shard streams an epoch in parts).
fn write<E: FnMut(Output) -> Result<(), String>>(
    from_shards: Vec<Receiver<FromShard>>,
    returns: Vec<Sender<EpochBatch>>,
    encoding: Encoding,
    abort: &AtomicBool,
    emit: &mut E,
) -> Written {
    let jobs = from_shards.len();
    let mut shards = Shards {
        from: from_shards,
        live: vec![true; jobs],
        stats: FlowTableStats::default(),
        failure: None,
        abort,
    };
    let mut renumber = Renumber::new(jobs);
    let mut heads: Vec<Head> = (0..jobs).map(|_| Head::default()).collect();
    // conn.log rows hold no id: the shard's bytes as they are
    let splices = !matches!(encoding, Encoding::Zeek | Encoding::Table);
    // a part read through that does not end its epoch: back to its shard, and the next
    let refill = |k: usize, heads: &mut [Head], shards: &mut Shards, renumber: &mut Renumber| {
        let Some(head) = heads.get_mut(k) else { return };
        while let Some(part) = &head.part {
            if head.at < part.items.len() || part.last {
                return;
            }
            if let (Some(done), Some(back)) = (head.part.take(), returns.get(k)) {
                let _ = back.send(done);
            }
            head.at = 0;
            head.part = shards.next(k);
            // (the first part holds the epoch's opened; later ones none, but if they did)
            if let Some(part) = head.part.as_ref().filter(|p| !p.opened.is_empty()) {
                let mut opened: Vec<&[u64]> = vec![&[]; jobs];
                opened[k] = &part.opened;
                renumber.add_epoch(&opened);
            }
        }
    };
    loop {
        let mut any = false;
        for (k, head) in heads.iter_mut().enumerate() {
            head.part = shards.next(k);
            head.at = 0;
            any |= head.part.is_some();
        }
        if !any {
            if shards.live.iter().any(|&l| l) {
                continue;
            }
            break;
        }
        let opened: Vec<&[u64]> = heads
            .iter()
            .map(|h| h.part.as_ref().map_or(&[][..], |p| p.opened.as_slice()))
            .collect();
        renumber.add_epoch(&opened);
        for k in 0..jobs {
            refill(k, &mut heads, &mut shards, &mut renumber);
        }
        // the single run's order: the least (phase, rank) of the shards' next records
        // (`plan::merge_epoch`, one record at a time; a tie goes to the lower shard)
        loop {
            let mut best: Option<((u8, u64), usize)> = None;
            for (k, head) in heads.iter().enumerate() {
                if let Some(key) = head.key() {
                    if best.is_none_or(|(b, _)| key < b) {
                        best = Some((key, k));
                    }
                }
            }
            let Some((_, k)) = best else { break };
            let Some(head) = heads.get(k) else { break };
            let Some(part) = head.part.as_ref() else {
                break;
            };
            let Some(item) = part.items.get(head.at) else {
                break;
            };
            let id = renumber.global(k, item.local_id);
            let previous_id = item.previous_local.map(|p| renumber.global(k, p));
            let out = Output {
                id,
                previous_id,
                local: part.bytes(item),
                spans: splices.then_some(&item.spans),
                record: item.record.as_deref(),
            };
            if let Err(message) = emit(out) {
                abort.store(true, Ordering::Relaxed);
                // dropping the receivers stops the shards, which stops the reader
                drop(shards.from);
                return Err((RunError::Emit(message), shards.stats));
            }
            if let Some(head) = heads.get_mut(k) {
                head.at += 1;
            }
            refill(k, &mut heads, &mut shards, &mut renumber);
        }
        // emptied, the parts' vectors go back to their shards for later epochs
        for (head, back) in heads.iter_mut().zip(&returns) {
            if let Some(part) = head.part.take() {
                let _ = back.send(part);
            }
        }
    }
    match shards.failure {
        Some(err) => Err((err, shards.stats)),
        None => Ok(shards.stats),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::testing::{assert_same_run, capture, single};

    /// jsonl of the single run, and of `jobs` shards, with their source reports.
    fn both(paths: &[String], options: &Options, jobs: usize) -> [(Vec<u8>, Value); 2] {
        let mut sharded = Vec::new();
        let progress = Arc::new(Progress::default());
        let (result, report) = run(paths, options, jobs, Encoding::Jsonl, &progress, |out| {
            out.write_to(&mut sharded);
            Ok(())
        });
        result.unwrap();
        [
            single(paths, options),
            (sharded, report.source_report.unwrap()),
        ]
    }

    #[test]
    fn shards_write_what_the_single_run_writes() {
        let paths = vec![
            capture("crafted/port_reuse.pcap"),
            capture("crafted/refused_then_ok.pcap"),
            capture("transfer/download.pcap"),
            capture("crafted/ref_with_noise.pcap"),
        ];
        for jobs in 1..=4 {
            let [single, sharded] = both(&paths, &Options::default(), jobs);
            assert!(single.0.len() > 1000);
            assert_same_run(&sharded, &single, &format!("{jobs} jobs"));
        }
    }

    #[test]
    fn a_failing_writer_stops_every_thread() {
        let paths = vec![
            capture("crafted/refused_then_ok.pcap"),
            capture("transfer/download.pcap"),
        ];
        let progress = Arc::new(Progress::default());
        let mut calls = 0;
        let (result, _) = run(
            &paths,
            &Options::default(),
            3,
            Encoding::Csv,
            &progress,
            |_| {
                calls += 1;
                Err("closed pipe".into())
            },
        );
        assert!(matches!(result, Err(RunError::Emit(m)) if m == "closed pipe"));
        assert_eq!(calls, 1);
    }
}
