//! The pipeline for one run, as tcptrace/engine.py runs it: capture files -> frame batches
//! -> segments (decode, --filter) -> the flow table in slices -> records, emitted as
//! connections end. Batches and slices are cut where Python cuts them, because the flow
//! table sweeps at slice ends: the same cuts give the same records in the same order.

use std::collections::BTreeSet;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::analyzers::trace::{SegmentTrace, TraceSelect};
use crate::checksum::{self, ChecksumLedger};
use crate::connection::Connection;
use crate::decode::{decode_piece, Segment, Tunnels, DAMAGE_WARNINGS};
use crate::filter::Filter;
use crate::flows::{Finished, FlowOptions, FlowTable, FlowTableStats, HeldFlow};
use crate::model::ConnectionRecord;
use crate::sources::{display_name, CaptureError, Captures, FrameBatch, FramePlace, SourceStats};
use crate::writers::Value;

/// Segments per flow-table step: one read chunk can hold 100k new flows (a SYN flood), and
/// memory must stay bounded by --max-flows, not by the chunk.
pub const FEED_SLICE: usize = 8192;
/// Bytes read at a time from a plain file: a batch is decoded and fed in pieces of about
/// this size, which stay in the CPU cache between the read and the decode (the batches
/// and slices, and so the sweeps, are the same as with whole 8 MiB chunks).
pub const PIECE: usize = 1 << 20;
/// Bytes per piece on one thread without the checksum ledger: a quarter of `PIECE` keeps a
/// piece, its frames and its segments in the L2 cache from the read through the feed
/// (bench.pcap: 0.39 -> 0.38 s, 7 alternating pinned runs each). `--jobs` and the ledger,
/// which hold several pieces at once, keep `PIECE`.
const SERIAL_PIECE: usize = 256 << 10;
/// Linux holds TIME_WAIT for 60 s (TCP_TIMEWAIT_LEN) = 2 * 30 s.
pub const DEFAULT_MSL_S: f64 = 30.0;

#[derive(Clone, Debug)]
pub struct Options {
    pub filter: Option<Filter>,
    pub msl_s: f64,
    /// Capture time a finished connection keeps receiving late segments before it is emitted.
    pub linger_s: f64,
    pub max_flows: usize,
    pub idle_timeout_s: Option<f64>,
    /// Test hook: panic while the flow table handles this frame (1-based), to prove a panic
    /// reaches the user as one line with the records read so far written.
    pub panic_at_frame: Option<u64>,
    /// Records carry Zeek's view (`--zeek`, `-f zeek`).
    pub zeek: bool,
    /// Leave out segments with a bad TCP or IPv4 header checksum (counted in
    /// skipped["bad_checksum"]; the Zeek view still writes their `C`/`c` letter).
    pub verify_checksums: bool,
    /// Zeek's likely server ports (sorted) when not its default set.
    pub zeek_server_ports: Option<Vec<u16>>,
    /// The tunnel ports, and the run's registry of tunnel paths.
    pub tunnels: Tunnels,
    /// Each file a capture of its own (`--per-file`): read one after the other, each with a
    /// fresh flow table, ids continuing; records carry `file`. Else files merge by time.
    pub per_file: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            filter: None,
            msl_s: DEFAULT_MSL_S,
            linger_s: 0.5,
            max_flows: 1_000_000,
            idle_timeout_s: None,
            panic_at_frame: None,
            zeek: false,
            verify_checksums: false,
            zeek_server_ports: None,
            tunnels: Tunnels::default(),
            per_file: false,
        }
    }
}

/// Progress counters, shared with a progress bar on another thread.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes read from the capture files (compressed bytes for gzip).
    pub bytes: Arc<AtomicU64>,
    /// Frames read.
    pub frames: AtomicU64,
    /// Asked to stop (Ctrl-C, SIGTERM): the input ends before the next piece, and the
    /// connections open then are reported as they stand, so the report stays whole.
    pub stop: AtomicBool,
}

/// Why a run stopped early.
#[derive(Debug)]
pub enum RunError {
    /// A file cannot be opened or is not a capture (nothing wrong with the engine).
    Capture(CaptureError),
    /// The consumer of the records failed (e.g. a closed pipe): its error, passed through.
    Emit(String),
    /// A bug: the engine panicked. `at` names the file and the frame.
    Panic { at: String, message: String },
}

/// The flow-table slice being fed: segments so far, their latest timestamp, and the run's
/// first frame number of the piece its last segment came from (where a panic in the sweep
/// happened).
struct Slice {
    len: usize,
    latest: i64,
    fed_base: u64,
}

impl Default for Slice {
    fn default() -> Self {
        Slice {
            len: 0,
            latest: i64::MIN,
            fed_base: 0,
        }
    }
}

/// A piece read and decoded, waiting to be fed.
struct Held {
    piece: FrameBatch,
    segments: Vec<Segment>,
    /// Frames of the run before it.
    frames_before: u64,
}

/// One run over a list of capture files.
pub struct Engine {
    paths: Vec<String>,
    options: Options,
    pub source: SourceStats,
    table: FlowTable,
    segments_total: u64,
    filtered_out: u64,
    unsupported: BTreeSet<u32>,
    frames_fed: u64,
    pub progress: Arc<Progress>,
    /// `--per-file`: each file read so far, with the ids its connections got (first, next).
    pub file_ids: Vec<(String, u64, u64)>,
    /// `--resume` (src/resume.rs): Some asks the run to hold the connections still open at
    /// the end instead of closing them; they are here after the run.
    pub held: Option<Vec<HeldFlow>>,
    /// `--resume-max-bytes`: the bound on STATE's frames and the connections it closed.
    pub resume_cap: ResumeCap,
}

/// `--resume-max-bytes` (src/resume.rs `cap_held`): the bound on the frames STATE carries,
/// the bytes of the frames the run read (counted only with `--resume`), and the connections
/// closed early (this run's, then the earlier runs' whose continuation did not come: all
/// handed on to the next run).
#[derive(Debug, Default)]
pub struct ResumeCap {
    pub max_bytes: Option<u64>,
    read_bytes: u64,
    /// How many connections this run closed early.
    pub closed: usize,
    pub capped: Vec<HeldFlow>,
}

/// A fresh flow table for `options` (the single run's, each `--jobs` shard's, a live
/// session's: one configuration for all).
pub fn new_table(options: &Options) -> FlowTable {
    let mut table = FlowTable::new(FlowOptions {
        linger_s: options.linger_s,
        max_flows: options.max_flows,
        tombstone_s: 2.0 * options.msl_s,
        idle_timeout_s: options.idle_timeout_s,
        zeek: options.zeek,
    });
    table.zeek_server_ports = options.zeek_server_ports.clone();
    table.tunnels = Some(options.tunnels.registry.clone());
    if options.zeek && options.verify_checksums {
        table.ledger = Some(ChecksumLedger::default());
    }
    table
}

impl Engine {
    pub fn new(paths: Vec<String>, options: Options) -> Engine {
        let table = new_table(&options);
        Engine {
            paths,
            options,
            source: SourceStats::default(),
            table,
            segments_total: 0,
            filtered_out: 0,
            unsupported: BTreeSet::new(),
            frames_fed: 0,
            progress: Arc::new(Progress::default()),
            file_ids: Vec::new(),
            held: None,
            resume_cap: ResumeCap::default(),
        }
    }

    /// The run's files, options and progress counters (what `--jobs` runs with instead).
    pub fn parts(&self) -> (&[String], &Options, &Arc<Progress>) {
        (&self.paths, &self.options, &self.progress)
    }

    /// Read every file and hand each connection's record to `emit` as the connection ends.
    /// `emit` returning an error stops the run with that error.
    pub fn run<E: FnMut(ConnectionRecord) -> Result<(), String>>(
        &mut self,
        mut emit: E,
    ) -> Result<(), RunError> {
        self.run_traced(|record, _| emit(record))
    }

    /// `run` over captures already opened (in memory, for the fuzzer).
    pub fn run_on<E: FnMut(ConnectionRecord) -> Result<(), String>>(
        &mut self,
        captures: Captures,
        mut emit: E,
    ) -> Result<(), RunError> {
        self.run_traced_on(captures, |record, _| emit(record))
    }

    /// `--resume` (src/resume.rs): read a previous run's held frames (`resumed.frames`, a
    /// pcap file) before the files, give the connections they open its ids (in the order
    /// they opened), then number from its next id; and, with `hold`, hold this run's open
    /// connections at the end (`held`) instead of closing them (the last run of a series).
    pub fn resume_from(&mut self, resumed: Option<crate::resume::Resumed>, hold: bool) {
        if let Some(resumed) = resumed {
            let path = crate::names::display_name(&resumed.frames);
            self.paths.insert(0, path);
            self.table.reuse_ids(&resumed.ids);
            self.table.continue_capped(&resumed.capped);
            self.table.continue_ids_from(resumed.next_id);
        }
        self.held = hold.then(Vec::new);
    }

    /// The id the run's next connection would get.
    pub fn next_id(&self) -> u64 {
        self.table.next_id()
    }

    /// Trace the segments of the connections `select` picks (`ladder`, `report`): their
    /// traces come with their records from `run_traced`.
    pub fn trace(&mut self, select: TraceSelect) {
        self.table.trace = Some(select);
    }

    /// `run`, each record with its connection's segment trace (None when not traced).
    pub fn run_traced<
        E: FnMut(ConnectionRecord, Option<Box<SegmentTrace>>) -> Result<(), String>,
    >(
        &mut self,
        emit: E,
    ) -> Result<(), RunError> {
        if self.options.per_file {
            return self.run_per_file(emit);
        }
        let captures = Captures::open(&self.paths, Some(self.progress.bytes.clone()))
            .map_err(RunError::Capture)?;
        self.run_traced_on(captures, emit)
    }

    /// `--per-file`: every file opened first (an unreadable one fails before any output),
    /// then each read as a capture of its own, in the order given: a fresh flow table (and
    /// checksum ledger), whose connections all end with the file; ids continue across
    /// files, so that they stay unique in the report; each record names its file.
    fn run_per_file<E: FnMut(ConnectionRecord, Option<Box<SegmentTrace>>) -> Result<(), String>>(
        &mut self,
        mut emit: E,
    ) -> Result<(), RunError> {
        let each = Captures::open_each(&self.paths, Some(self.progress.bytes.clone()))
            .map_err(RunError::Capture)?;
        let paths = self.paths.clone();
        let mut result = Ok(());
        for (path, captures) in paths.iter().zip(each) {
            if self.progress.stop.load(Ordering::Relaxed) {
                break;
            }
            if !self.file_ids.is_empty() {
                let mut table = new_table(&self.options);
                table.trace = self.table.trace.take();
                table.stats = self.table.stats;
                table.continue_ids_from(self.table.next_id());
                self.table = table;
            }
            let first = self.table.next_id();
            let file: Arc<str> = Arc::from(path.as_str());
            result = self.feed_captures(captures, |mut record, trace| {
                record.file = Some(Arc::clone(&file));
                emit(record, trace)
            });
            self.file_ids
                .push((path.clone(), first, self.table.next_id()));
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            self.warn_damage(); // (as `run_traced_on`: after a panic, `after_panic` did)
        }
        result
    }

    fn run_traced_on<
        E: FnMut(ConnectionRecord, Option<Box<SegmentTrace>>) -> Result<(), String>,
    >(
        &mut self,
        captures: Captures,
        emit: E,
    ) -> Result<(), RunError> {
        self.feed_captures(captures, emit)?;
        self.warn_damage();
        Ok(())
    }

    /// Every piece of `captures` through the flow table, then its connections closed.
    fn feed_captures<
        E: FnMut(ConnectionRecord, Option<Box<SegmentTrace>>) -> Result<(), String>,
    >(
        &mut self,
        mut captures: Captures,
        mut emit: E,
    ) -> Result<(), RunError> {
        let mut slice = Slice::default();
        // Pieces decoded but not fed yet, and segment vectors to decode the next ones into.
        // The Zeek view takes a batch's bad-checksum segments before any of its good ones
        // (as Python's ledger does): with the ledger, a batch's pieces are all decoded and
        // checked (the ledger filled) before the first is fed; otherwise each piece is fed
        // as it comes. Either way every read stays a piece, decoded while in the CPU cache.
        let mut held: Vec<Held> = Vec::new();
        let mut spare: Vec<Vec<Segment>> = Vec::new();
        let whole_batches = self.table.ledger.is_some();
        let piece_size = if whole_batches { PIECE } else { SERIAL_PIECE };
        loop {
            if self.progress.stop.load(Ordering::Relaxed) {
                break;
            }
            let (piece, ends_batch) = match captures.next_piece(&mut self.source, piece_size) {
                Ok(Some(piece)) => piece,
                Ok(None) => break,
                Err(err) => return Err(RunError::Capture(err)),
            };
            // frames of the run before this piece, in the order the engine sees them (a
            // merge of several files reads ahead of it)
            let frames_before = self.frames_fed;
            self.frames_fed += piece.len() as u64;
            self.progress
                .frames
                .store(self.frames_fed, Ordering::Relaxed);
            if self.held.is_some() {
                self.resume_cap.read_bytes += piece
                    .frames
                    .iter()
                    .map(|f| 16 + u64::from(f.caplen))
                    .sum::<u64>();
            }
            let mut segments = spare.pop().unwrap_or_else(|| Vec::with_capacity(32768));
            self.segments_of(&piece, &mut segments);
            held.push(Held {
                piece,
                segments,
                frames_before,
            });
            if whole_batches && !ends_batch {
                continue;
            }
            let last = held.len() - 1;
            for (k, mut part) in held.drain(..).enumerate() {
                let ends = ends_batch && k == last;
                self.feed_piece(&part, ends, &mut slice, &mut emit)?;
                part.segments.clear();
                spare.push(part.segments);
                captures.recycle(part.piece);
            }
        }
        let msl_s = self.options.msl_s;
        let ended = match self.held {
            Some(_) => self.hold_open()?,
            None => self.table.close(),
        };
        for mut conn in ended {
            let record = record_of(&mut self.table.ledger, &mut conn, msl_s);
            emit(record, conn.take_trace()).map_err(RunError::Emit)?;
        }
        Ok(())
    }

    /// `--resume`: hold the connections still in the table (`held`), but for those
    /// `--resume-max-bytes` closes (returned after the finished ones, to be written).
    fn hold_open(&mut self) -> Result<Vec<Finished>, RunError> {
        let (mut done, open) = self.table.hold();
        let cap = &mut self.resume_cap;
        let stopped = self.progress.stop.load(Ordering::Relaxed); // (no STATE is written)
        let max_bytes = cap.max_bytes.filter(|_| !stopped).unwrap_or(u64::MAX);
        let inputs = (self.paths.as_slice(), &self.options.tunnels.ports);
        let split = crate::resume::cap_held(inputs, open, max_bytes, cap.read_bytes)
            .map_err(|e| RunError::Capture(CaptureError(e)))?;
        cap.closed = split.closed.len();
        cap.capped = self.table.unclaimed_continuations();
        cap.capped.extend(split.capped);
        self.held = Some(split.held);
        done.extend(split.closed);
        Ok(done)
    }

    /// A piece's segments: decoded, filtered (--filter), and without the bad-checksum ones
    /// (--verify-checksums), which go to the ledger for the Zeek view.
    fn segments_of(&mut self, piece: &FrameBatch, segments: &mut Vec<Segment>) {
        self.filtered_out += decode_piece(
            piece,
            self.options.filter.as_ref(),
            &mut self.source,
            &mut self.unsupported,
            Some(&self.options.tunnels),
            segments,
        );
        if self.options.verify_checksums && !segments.is_empty() {
            let before = segments.len();
            let ledger = &mut self.table.ledger;
            segments.retain(|seg| {
                let bad = checksum::is_bad(seg, &piece.data);
                if bad {
                    if let Some(ledger) = ledger.as_mut() {
                        ledger.add(seg);
                    }
                }
                !bad
            });
            self.source
                .skip("bad_checksum", (before - segments.len()) as u64);
        }
        self.segments_total += segments.len() as u64;
    }

    /// Feed a piece's segments to the flow table in slices of `FEED_SLICE` (a slice may
    /// span pieces; `ends_batch` ends one), emitting the connections each slice's sweep
    /// ends.
    fn feed_piece<E: FnMut(ConnectionRecord, Option<Box<SegmentTrace>>) -> Result<(), String>>(
        &mut self,
        part: &Held,
        ends_batch: bool,
        slice: &mut Slice,
        emit: &mut E,
    ) -> Result<(), RunError> {
        let msl_s = self.options.msl_s;
        let panic_at = self.options.panic_at_frame;
        let (piece, frames_before) = (&part.piece, part.frames_before);
        let mut rest = part.segments.as_slice();
        while !rest.is_empty() || (ends_batch && slice.len > 0) {
            let take = (FEED_SLICE - slice.len).min(rest.len());
            let (run, after) = rest.split_at(take);
            rest = after;
            let table = &mut self.table;
            let slice_latest = slice.latest;
            let latest = run.iter().map(|s| s.ts_ns).fold(slice_latest, i64::max);
            let slice_ends = slice.len + take == FEED_SLICE || (rest.is_empty() && ends_batch);
            let before_run = slice.len;
            let fed = panic::catch_unwind(AssertUnwindSafe(|| {
                if let Some(frame) = panic_at {
                    let at = run
                        .iter()
                        .position(|s| frames_before + s.frame_index as u64 + 1 == frame);
                    if let Some(at) = at {
                        // the frames before it are handled, as a real failure there would
                        table.feed_segments(&run[..at], &piece.data);
                        if before_run + at > 0 {
                            let latest = run[..at]
                                .iter()
                                .map(|s| s.ts_ns)
                                .fold(slice_latest, i64::max);
                            table.end_slice(latest);
                        }
                        panic!("forced panic at frame {frame} (TCPTRACE_PANIC_AT_FRAME)");
                    }
                }
                table.feed_segments(run, &piece.data);
            }));
            if !run.is_empty() {
                slice.fed_base = frames_before;
            }
            let fed = fed.and_then(|()| {
                if slice_ends {
                    let table = &mut self.table;
                    panic::catch_unwind(AssertUnwindSafe(|| table.end_slice(latest)))
                } else {
                    Ok(())
                }
            });
            if let Err(payload) = fed {
                let frame = match panic_at {
                    Some(frame) => frame,
                    None => slice.fed_base + self.table.current_frame() as u64 + 1,
                };
                let at = self.place(frame);
                return Err(self.after_panic(at, payload, emit));
            }
            slice.len += take;
            slice.latest = latest;
            if slice_ends {
                *slice = Slice {
                    fed_base: slice.fed_base,
                    ..Slice::default()
                };
                let mut ended = self.table.drain();
                for i in 0..ended.len() {
                    // the next connection's cold parts start loading (see Connection::warm)
                    if let Some(next) = ended.get(i + 1) {
                        std::hint::black_box(next.warm());
                    }
                    let Some(conn) = ended.get_mut(i) else { break };
                    let record = record_of(&mut self.table.ledger, conn, msl_s);
                    emit(record, conn.take_trace()).map_err(RunError::Emit)?;
                }
                self.table.recycle(ended);
            }
        }
        Ok(())
    }

    /// After a panic: write the connections still held (each may fail on its own), then
    /// report the panic.
    fn after_panic<E: FnMut(ConnectionRecord, Option<Box<SegmentTrace>>) -> Result<(), String>>(
        &mut self,
        at: String,
        payload: Box<dyn std::any::Any + Send>,
        emit: &mut E,
    ) -> RunError {
        let message = panic_message(&payload);
        let msl_s = self.options.msl_s;
        let table = &mut self.table;
        if let Ok(held) = panic::catch_unwind(AssertUnwindSafe(|| table.close())) {
            for mut conn in held {
                if let Ok(record) = panic::catch_unwind(AssertUnwindSafe(|| conn.record(msl_s))) {
                    if emit(record, conn.take_trace()).is_err() {
                        break;
                    }
                }
            }
        }
        self.warn_damage();
        RunError::Panic { at, message }
    }

    /// Where frame `frame` (1-based, in the order the engine saw them) is, for a user.
    fn place(&self, frame: u64) -> String {
        place(&self.paths, frame)
    }

    /// One warning per kind of decode damage, with its count (after the whole run).
    fn warn_damage(&mut self) {
        warn_damage(&mut self.source, &self.unsupported);
        warn_evictions(&mut self.source, &self.table.stats);
    }

    /// The `source` part of the report, as tcptrace/engine.py `source_report` builds it.
    pub fn source_report(&self) -> Value {
        source_report(
            &self.source,
            self.segments_total,
            self.filtered_out,
            &self.table.stats,
        )
    }
}

/// One warning per kind of decode damage, with its count and its first frame where known
/// (after the whole run; `unsupported`: the link types met). Shared with the `--jobs`
/// reader, which decodes for its shards.
pub fn warn_damage(source: &mut SourceStats, unsupported: &BTreeSet<u32>) {
    let files = &source.files;
    let place = if files.len() == 1 {
        format!("{}: ", display_name(&files[0]))
    } else {
        String::new()
    };
    let linktypes: Vec<String> = unsupported.iter().map(|&l| linktype_label(l)).collect();
    let linktypes = linktypes.join(", ");
    for (kind, text) in DAMAGE_WARNINGS {
        let count = source.skipped(kind);
        if count > 0 {
            let first = source.first.get(*kind).map_or(String::new(), |at| {
                format!(" (first: {})", first_frame(&source.files, at))
            });
            let mut text = text.replace("{linktypes}", &linktypes);
            if !text.contains("{first}") {
                text.push_str("{first}");
            }
            let message = format!("{place}{count} {}", text.replace("{first}", &first));
            source.warn_once(kind, &message);
        }
    }
}

/// A damaged frame as Wireshark numbers it ("frame 17"), with its file when several are
/// read ("b.pcap frame 17"): where to look with `tshark -r FILE -Y frame.number==17`.
fn first_frame(files: &[String], at: &FramePlace) -> String {
    match files.get(at.file as usize) {
        Some(file) if files.len() > 1 => format!("{} frame {}", display_name(file), at.frame),
        // one file, or the frames of a live capture (`FramePlace::CAPTURE`)
        _ => format!("frame {}", at.frame),
    }
}

/// A link type as a person knows it, with its number ("10 (FDDI)"): the LINKTYPE_* names of
/// https://www.tcpdump.org/linktypes.html for the types met in practice that `decode` lacks.
fn linktype_label(linktype: u32) -> String {
    let name = match linktype {
        6 => "Token Ring",
        7 => "ARCNET",
        8 => "SLIP",
        100 => "ATM RFC 1483",
        107 => "Frame Relay",
        147..=162 => "user-defined",
        187 => "Bluetooth HCI",
        195 => "802.15.4",
        220 => "USB Linux mmapped",
        _ => return linktype.to_string(),
    };
    format!("{linktype} ({name})")
}

/// One warning when the flow table's cap (`--max-flows`) evicted connections: each was
/// reported early, as it stood, and its later segments start a new connection, so the
/// results differ from an uncapped run (issue 18: no silent change of results).
pub fn warn_evictions(source: &mut SourceStats, stats: &FlowTableStats) {
    let evicted = stats.evicted_for_capacity;
    if evicted > 0 {
        let s = if evicted == 1 { "" } else { "s" };
        let message = format!(
            "{evicted} connection{s} evicted by the --max-flows cap before their end \
             (reported as they stood; raise --max-flows for whole connections)"
        );
        source.warn_once("evicted_for_capacity", &message);
    }
    let failed = stats.failed_connections;
    if failed > 0 {
        let s = if failed == 1 { "" } else { "s" };
        let message = format!(
            "{failed} connection{s} left out after an internal error in their analysis \
             (a tcptrace bug: please report it with the capture); the other connections \
             are complete"
        );
        source.warn_once("internal_error", &message);
    }
    let copies = stats.duplicates;
    if copies > 0 {
        let s = if copies == 1 { "" } else { "s" };
        let message = format!(
            "{copies} segment{s} captured twice (the same IP ID, sequence and acknowledgment \
             numbers, flags, window and checksum, moments apart: a SPAN port, -i any on a \
             forwarding host, or one connection in two merged files): each copy is counted \
             in duplicates and left out of every other count"
        );
        source.warn_once("duplicates", &message);
    }
    warn_clock(source);
    let jumps = stats.clock_jumps;
    if jumps > 0 {
        let s = if jumps == 1 { "" } else { "s" };
        let message = format!(
            "timestamps went back more than an hour behind the latest seen {jumps} time{s} \
             (a damaged timestamp, or captures of different times): connections were \
             released on the later clock; a duration across the jump is meaningless"
        );
        source.warn_once("clock_jump", &message);
    }
}

/// One warning per kind of timestamp step (src/sources/clock.rs), with where the first was.
fn warn_clock(source: &mut SourceStats) {
    let clock = source.clock;
    let kinds = [
        (
            "time_backwards",
            clock.backwards,
            "earlier than",
            "more than a second",
        ),
        ("time_jump", clock.jumps, "later than", "more than a day"),
    ];
    for (kind, steps, direction, threshold) in kinds {
        let Some((frame, size_ns)) = steps.first else {
            continue;
        };
        let count = steps.count;
        let s = if count == 1 { "" } else { "s" };
        let seconds = crate::model::ns_to_s(size_ns);
        let message = format!(
            "{}: timestamp {seconds} s {direction} the frame before ({threshold}; \
             {count} time{s} in all): a damaged timestamp, a clock set while capturing, or \
             captures of different times; each connection's clock never goes back, and a \
             handshake time across such a step is left null",
            place(&source.files, frame)
        );
        source.warn_once(kind, &message);
    }
}

/// The `source` part of the report, as tcptrace/engine.py `source_report` builds it, from
/// the reader's counters and the flow-table counters (summed over the shards of `--jobs`).
pub fn source_report(
    source: &SourceStats,
    segments_total: u64,
    filtered_out: u64,
    stats: &FlowTableStats,
) -> Value {
    let mut skipped: Vec<(String, Value)> = source
        .skipped
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(k, &n)| (k.clone(), Value::Int(n as i64)))
        .collect();
    if filtered_out > 0 {
        skipped.push(("filtered_out".into(), Value::Int(filtered_out as i64)));
        skipped.sort_by(|a, b| a.0.cmp(&b.0));
    }
    let strings = |v: &[String]| Value::List(v.iter().map(|s| Value::Str(s.clone())).collect());
    let mut report = Value::Map(vec![
        ("files".into(), strings(&source.files)),
        ("packets".into(), Value::Int(source.frames as i64)),
        ("tcp_segments".into(), Value::Int(segments_total as i64)),
        ("skipped".into(), Value::Map(skipped)),
        ("warnings".into(), strings(&source.warnings)),
        ("connections".into(), Value::Int(stats.connections as i64)),
        ("port_reuse".into(), Value::Int(stats.port_reuse as i64)),
        (
            "evicted_for_capacity".into(),
            Value::Int(stats.evicted_for_capacity as i64),
        ),
        ("idle_evicted".into(), Value::Int(stats.idle_evicted as i64)),
        ("after_close".into(), Value::Int(stats.after_close as i64)),
    ]);
    // only when it happened: the report of a run without a failure stays as it was
    if stats.failed_connections > 0 {
        if let Value::Map(fields) = &mut report {
            fields.push((
                "failed_connections".into(),
                Value::Int(stats.failed_connections as i64),
            ));
        }
    }
    report
}

/// Where frame `frame` (1-based, in the order the engine saw them) is, for a user.
pub fn place(paths: &[String], frame: u64) -> String {
    match paths {
        [one] => format!("{}, frame {frame}", display_name(one)),
        many => format!("frame {frame} of {} files merged by time", many.len()),
    }
}

/// A connection's record; the Zeek view first takes what is left of its 4-tuple's
/// bad-checksum segments (Python's observer replays the whole ledger entry at `result`).
pub fn record_of(
    ledger: &mut Option<ChecksumLedger>,
    conn: &mut Connection,
    msl_s: f64,
) -> ConnectionRecord {
    if let Some(ledger) = ledger.as_mut() {
        if !ledger.is_empty() {
            conn.replay_bad_checksums(ledger, None);
        }
    }
    conn.record(msl_s)
}

pub fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// download.pcap forty times over, each copy 100 s after the previous: 10,560 frames
    /// (more than a feed slice: connections end before the input does) in 8 MiB.
    fn repeated_download(dir: &std::path::Path) -> (String, u64) {
        let raw = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/pcaps/transfer/download.pcap"
        ))
        .unwrap();
        let mut out = raw[..24].to_vec();
        let mut frames = 0;
        for copy in 0..COPIES {
            let mut at = 24;
            while at + 16 <= raw.len() {
                let caplen = u32::from_le_bytes(raw[at + 8..at + 12].try_into().unwrap()) as usize;
                let sec = u32::from_le_bytes(raw[at..at + 4].try_into().unwrap()) + 100 * copy;
                out.extend_from_slice(&sec.to_le_bytes());
                out.extend_from_slice(&raw[at + 4..at + 16 + caplen]);
                at += 16 + caplen;
                frames += 1;
            }
        }
        let path = dir.join("repeated.pcap");
        std::fs::write(&path, out).unwrap();
        (path.to_string_lossy().into_owned(), frames)
    }

    const COPIES: u32 = 40;

    #[test]
    fn stop_ends_the_input_and_reports_what_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let (path, total) = repeated_download(dir.path());
        let mut whole = Engine::new(vec![path.clone()], Options::default());
        let mut all = 0;
        whole
            .run(|_| {
                all += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!((all, whole.source.frames), (COPIES, total));

        // stopped at the first record: the input ends at the next piece, the rest is closed
        let mut engine = Engine::new(vec![path], Options::default());
        let progress = engine.progress.clone();
        let mut records = Vec::new();
        engine
            .run(|record| {
                progress.stop.store(true, Ordering::Relaxed);
                records.push(record);
                Ok(())
            })
            .unwrap();
        assert!(
            engine.source.frames < total,
            "{} of {total}",
            engine.source.frames
        );
        assert!(!records.is_empty() && records.len() < COPIES as usize);
        let ids: Vec<u64> = records.iter().map(|r| r.id).collect();
        assert_eq!(ids, (1..=records.len() as u64).collect::<Vec<_>>());

        // stopped before it began: nothing read, an empty report
        let mut engine = Engine::new(
            vec![dir.path().join("repeated.pcap").to_string_lossy().into()],
            Options::default(),
        );
        engine.progress.stop.store(true, Ordering::Relaxed);
        engine.run(|_| panic!("no record")).unwrap();
        assert_eq!(engine.source.frames, 0);
    }
}
