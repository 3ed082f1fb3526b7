//! The `--jobs` plan over files, for a distributed executor (`--executor dask`, issue 20;
//! docs/scale-out.md): `map_file` (one task per input file: decoded, split by flow into P
//! partitions, written to a scratch directory with a manifest), `reduce_partition` (one
//! task per partition: its segments of every file merged in the single run's order and
//! fed to a flow table, records encoded under local ids) and `finalize` (the client:
//! global ids and the single run's order, as `threads` does for its shards).
//!
//! The clock. A flow table sweeps (releases lingering connections, expires tombstones) at
//! the end of every feed slice of the single run, with that slice's latest timestamp; a
//! partition that swept on its own segments' time would release connections at other
//! moments, and late segments would land differently. So every reduce rebuilds the single
//! run's feed from the manifests alone (`clock`): the manifests hold, per file, each read
//! batch's latest frame timestamp and segment count and every segment's timestamp (8
//! bytes a segment); replaying `Captures::merge_step` (the watermark merge, and the stable
//! sort of each merged batch by time: ties by file order, then frame order) over them
//! gives every segment its position in the single run (its "ordinal") and every slice end
//! (the ordinal of the slice's last segment and the slice's latest timestamp). The reduce
//! then feeds its own segments in ordinal order and ends a slice (`end_slice(latest)`)
//! at each of those marks, whether or not it had segments in that slice: its table sees
//! the whole capture's clock. The ordinals also serve as `plan`'s first-segment ranks, so
//! `Renumber` and `merge_epoch` rebuild the single run's ids and order exactly as for
//! `--jobs`. Connections that span files are stitched by construction: a partition holds
//! every segment of its flows, from every file.
//!
//! The warnings about timestamps that step back or leap ahead (`time_backwards`,
//! `time_jump`) count every frame, not only the segments: the client works them out from
//! each file's own check (a run over one file) or by the same merge replayed over every
//! frame's timestamp (`scaletimes`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checksum;
use crate::decode::decode_piece;
use crate::engine::{source_report, warn_damage, warn_evictions, Options, FEED_SLICE};
use crate::flows::FlowTableStats;
use crate::model::{
    ConnectionRecord, Outcome, Probe, ProbeAnswer, ProbeKind, Role, RstKind, Sides,
};
use crate::sources::clock::{ClockCheck, ClockSteps};
use crate::sources::pcap::PcapReader;
use crate::sources::{display_name, CaptureError, FileReader, FrameBatch, FramePlace, SourceStats};
use crate::writers::summary::Entry;
use crate::writers::Value;

use super::encode::{splice, Encoder, Encoding, EpochBatch, Spans};
use super::plan::{keeps_ledger, shard_of, Cut, MappedPiece, Reducer, Renumber};
use super::scalechunks::{self, PartStart};
use super::scaleclock;
use super::scaletimes::{self, replay_merge, TimesWriter};
use super::scaletunnels::{self, Remap, Representatives, Tracker};
use super::spill::{self, Blocks, In, Out, MANIFEST_MAGIC, RECORDS_MAGIC, SEGMENTS_MAGIC};
use super::threads::add_stats;

/// What the map step learnt of one file: all the client and the reduces need of it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileManifest {
    pub path: String,
    /// The part of its file this manifest covers (0: the file's start, or the whole
    /// file); later parts follow it in the run's order (`scalechunks`).
    pub part: u32,
    /// This part's first read batch is the one the part before ended with (the part
    /// starts in the middle of a batch of the single run).
    pub continues: bool,
    /// The file could not be read (the single run's one-line error), if so.
    pub error: Option<String>,
    /// Whether the reader got as far as the file's format (the single run lists it then).
    pub opened: bool,
    /// Timestamp of the first frame (files given as a pattern are taken in this order).
    pub first_ts: Option<i64>,
    pub frames: u64,
    pub segments_total: u64,
    pub filtered_out: u64,
    pub skipped: BTreeMap<String, u64>,
    /// Per damage kind decode counts, the number of its first frame in the file.
    pub first: BTreeMap<String, u64>,
    pub unsupported: BTreeSet<u32>,
    /// The reader's warnings, each with the number of the read (0-based) that raised it.
    pub warnings: Vec<(u32, String)>,
    /// Per read batch: its latest frame timestamp and its number of segments.
    pub batches: Vec<(i64, u32)>,
    /// The single run's time sanity check over this file alone, in its order (a run over
    /// several files replays the merge from the `times` file instead: `scaletimes`).
    pub clock: ClockSteps,
    /// Every segment's timestamp, in file order.
    pub ts: Vec<i64>,
    /// The Zeek view's checksum ledger (`--zeek --verify-checksums`; else empty): per read
    /// batch, its number of bad-checksum segments ...
    pub bad_batches: Vec<u32>,
    /// ... and their timestamps, in file order (the segments go to their partition's file
    /// too, marked: `BAD`).
    pub bad_ts: Vec<i64>,
    /// Segments per partition.
    pub parts: Vec<u64>,
    /// Per tunnel path of the file (its local number - 1): where the single run meets it
    /// first (`scaletunnels`).
    pub tunnels: Vec<Option<Representatives>>,
}

/// The top bit of a segment's index in a segments file: a bad-checksum segment for the
/// Zeek view's ledger (the rest of the index counts those of its file).
const BAD: u64 = 1 << 63;

fn manifest_path(scratch: &Path, key: &str) -> PathBuf {
    scratch.join(format!("{key}.manifest"))
}

fn part_path(scratch: &Path, key: &str, partition: usize) -> PathBuf {
    scratch.join(format!("{key}.p{partition}.segments"))
}

/// The reduce step's output for a partition.
pub fn records_path(scratch: &Path, partition: usize) -> PathBuf {
    scratch.join(format!("p{partition}.records"))
}

/// What the client needs of a record besides its encoding: the json document's summary
/// entry and the table's row (`-f json`, `-f table`), shipped from the reduce.
#[derive(Clone, Debug, PartialEq)]
pub struct Digest {
    pub first_ts: f64,
    pub duration_ms: f64,
    pub client: (String, u16),
    pub server: (String, u16),
    pub outcome: Outcome,
    pub rtt_ms: Option<f64>,
    pub setup_ms: Option<f64>,
    pub rtt_p50_ms: [Option<f64>; 2],
    pub syn_retransmits: u64,
    pub ambiguous: bool,
    pub time_wait: Option<Sides>,
    pub rst: Option<(RstKind, Role)>,
    pub half_close: bool,
    pub probes: (u64, u64),
    pub protocol: Option<String>,
    pub requests: u64,
    pub reused: bool,
    pub packets: (u64, u64),
    /// The tunnels as the csv column writes them ("vxlan:42"); empty for plain traffic.
    pub tunnel: String,
    /// The table's health words (`crate::health_label`); empty when healthy.
    pub health: String,
    /// The record's probe classification (analyzers/probe.rs), for the summary's scans.
    pub probe: Option<Probe>,
}

impl Digest {
    pub fn of(r: &ConnectionRecord) -> Digest {
        let e = Entry::of(r);
        Digest {
            first_ts: r.first_ts,
            duration_ms: r.duration_ms,
            client: (r.client.ip.clone(), r.client.port),
            server: (r.server.ip.clone(), r.server.port),
            outcome: r.outcome,
            rtt_ms: e.rtt_ms,
            setup_ms: e.setup_ms,
            rtt_p50_ms: e.rtt_p50_ms,
            syn_retransmits: e.syn_retransmits,
            ambiguous: e.ambiguous,
            time_wait: e.time_wait,
            rst: r.rst.as_ref().map(|rst| (rst.kind, rst.sender)),
            half_close: e.half_close,
            probes: (r.keepalive.probes.client, r.keepalive.probes.server),
            protocol: r.reuse.protocol.map(str::to_string),
            requests: e.requests,
            reused: e.reused,
            packets: (r.packets.client, r.packets.server),
            tunnel: tunnel_label(r),
            health: crate::health_label::health_label(r),
            probe: r.probe,
        }
    }

    /// The summary's entry, as `Entry::of` the record gives it.
    pub fn entry(&self) -> Entry<'_> {
        Entry {
            outcome: self.outcome.name(),
            rtt_ms: self.rtt_ms,
            setup_ms: self.setup_ms,
            rtt_p50_ms: self.rtt_p50_ms,
            syn_retransmits: self.syn_retransmits,
            ambiguous: self.ambiguous,
            time_wait: self.time_wait,
            client_ip: &self.client.0,
            server_ip: &self.server.0,
            server_port: self.server.1,
            rst: self.rst.map(|(kind, sender)| (kind.name(), sender.name())),
            half_close: self.half_close,
            keepalive: self.probes.0 != 0 || self.probes.1 != 0,
            protocol: self.protocol.as_deref(),
            requests: self.requests,
            reused: self.reused,
            probe: self.probe.map(|p| (p, self.client.1)),
        }
    }

    fn write(&self, out: &mut Out) {
        let option = |out: &mut Out, v: Option<f64>| {
            out.u8(u8::from(v.is_some()));
            out.u64(v.unwrap_or(0.0).to_bits());
        };
        out.u64(self.first_ts.to_bits());
        out.u64(self.duration_ms.to_bits());
        for (ip, port) in [&self.client, &self.server] {
            out.str(ip);
            out.u16(*port);
        }
        let outcome = Outcome::ALL.iter().position(|o| *o == self.outcome);
        out.u8(outcome.unwrap_or(0) as u8);
        option(out, self.rtt_ms);
        option(out, self.setup_ms);
        option(out, self.rtt_p50_ms[0]);
        option(out, self.rtt_p50_ms[1]);
        out.u64(self.syn_retransmits);
        out.u8(match self.time_wait {
            None => 0,
            Some(Sides::Client) => 1,
            Some(Sides::Server) => 2,
            Some(Sides::Both) => 3,
        });
        match self.rst {
            None => out.u8(0),
            Some((kind, sender)) => {
                let kind = RstKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
                out.u8(1 + kind as u8);
                out.u8(sender as u8);
            }
        }
        let flags = [self.ambiguous, self.half_close, self.reused];
        flags.iter().for_each(|&f| out.u8(u8::from(f)));
        for v in [self.probes.0, self.probes.1, self.requests] {
            out.u64(v);
        }
        for v in [self.packets.0, self.packets.1] {
            out.u64(v);
        }
        out.u8(u8::from(self.protocol.is_some()));
        out.str(self.protocol.as_deref().unwrap_or(""));
        out.str(&self.tunnel);
        out.str(&self.health);
        match self.probe {
            None => out.u8(0),
            Some(p) => {
                out.u8(1 + ProbeKind::ALL
                    .iter()
                    .position(|k| *k == p.kind)
                    .unwrap_or(0) as u8);
                out.u8(ProbeAnswer::ALL
                    .iter()
                    .position(|a| *a == p.answer)
                    .unwrap_or(0) as u8);
                out.u8(p.sender as u8);
            }
        }
    }

    fn read(input: &mut In) -> Result<Digest, String> {
        let option = |input: &mut In| -> Result<Option<f64>, String> {
            let has = input.u8()? != 0;
            let v = f64::from_bits(input.u64()?);
            Ok(has.then_some(v))
        };
        let first_ts = f64::from_bits(input.u64()?);
        let duration_ms = f64::from_bits(input.u64()?);
        let client = (input.str()?, input.u16()?);
        let server = (input.str()?, input.u16()?);
        let outcome = Outcome::ALL
            .get(input.u8()? as usize)
            .copied()
            .ok_or("a record's outcome is unknown")?;
        let rtt_ms = option(input)?;
        let setup_ms = option(input)?;
        let rtt_p50_ms = [option(input)?, option(input)?];
        let syn_retransmits = input.u64()?;
        let time_wait = match input.u8()? {
            1 => Some(Sides::Client),
            2 => Some(Sides::Server),
            3 => Some(Sides::Both),
            _ => None,
        };
        let rst = match input.u8()? {
            0 => None,
            k => {
                let kind = RstKind::ALL.get(k as usize - 1).copied();
                let kind = kind.ok_or("a record's RST kind is unknown")?;
                let sender = if input.u8()? == 0 {
                    Role::Client
                } else {
                    Role::Server
                };
                Some((kind, sender))
            }
        };
        let (ambiguous, half_close, reused) =
            (input.u8()? != 0, input.u8()? != 0, input.u8()? != 0);
        let probes = (input.u64()?, input.u64()?);
        let requests = input.u64()?;
        let packets = (input.u64()?, input.u64()?);
        let has_protocol = input.u8()? != 0;
        let protocol = input.str()?;
        let tunnel = input.str()?;
        let health = input.str()?;
        let probe = match input.u8()? {
            0 => None,
            k => {
                let kind = ProbeKind::ALL.get(k as usize - 1).copied();
                let answer = ProbeAnswer::ALL.get(input.u8()? as usize).copied();
                let sender = if input.u8()? == 0 {
                    Role::Client
                } else {
                    Role::Server
                };
                match (kind, answer) {
                    (Some(kind), Some(answer)) => Some(Probe {
                        kind,
                        answer,
                        sender,
                    }),
                    _ => return Err("a record's probe is unknown".into()),
                }
            }
        };
        Ok(Digest {
            first_ts,
            duration_ms,
            client,
            server,
            outcome,
            rtt_ms,
            setup_ms,
            rtt_p50_ms,
            syn_retransmits,
            ambiguous,
            time_wait,
            rst,
            half_close,
            probes,
            protocol: has_protocol.then_some(protocol),
            requests,
            reused,
            packets,
            tunnel,
            health,
            probe,
        })
    }
}

/// A record's tunnels as the csv column writes them; empty for plain traffic.
fn tunnel_label(r: &ConnectionRecord) -> String {
    let Some(path) = r.encapsulation.as_deref().filter(|p| !p.is_empty()) else {
        return String::new();
    };
    let mut label = Vec::new();
    crate::writers::csv::tunnel_path(&mut label, path);
    String::from_utf8_lossy(&label).into_owned()
}

/// The map step for one file: read it alone (chunks of `chunk` bytes, as the single run's
/// merge reads it), decode, filter, leave out bad checksums (--verify-checksums), and
/// write each partition's segments and then the manifest under `scratch` (names from
/// `key`), each file whole or not at all. `open` is where the file is (a worker may run
/// elsewhere: an absolute path), `path` how the user named it (in the report and the
/// messages). An unreadable capture is not an error here: the manifest says so (the
/// client reports it as the single run would). With `part`, only that part of a large
/// pcap file (`scalechunks`).
#[allow(clippy::too_many_arguments)]
pub fn map_file(
    open: &str,
    path: &str,
    key: &str,
    options: &Options,
    partitions: usize,
    chunk: usize,
    scratch: &Path,
    part: Option<&Part>,
) -> Result<FileManifest, String> {
    let partitions = partitions.max(1);
    // this file's own tunnel numbers (the reduce renumbers them for the run)
    let mut options = options.clone();
    options.tunnels.registry = Default::default();
    let options = &options;
    let mut tracker = Tracker::default();
    let start = part.and_then(|p| p.start.as_ref());
    let mut manifest = FileManifest {
        path: path.to_string(),
        part: part.map_or(0, |p| p.index),
        continues: start.is_some_and(|s| s.batch_frames > 0),
        parts: vec![0; partitions],
        ..FileManifest::default()
    };
    let opened = match part {
        None => FileReader::open(open, None)
            .map(|reader| {
                let mut reader = reader.named(path);
                reader.chunk = chunk;
                MapReader::File(Box::new(reader))
            })
            .map_err(|err| err.0),
        Some(p) => {
            let name = display_name(path);
            scalechunks::open_part(open, name, chunk, start, p.end).map(|reader| {
                let name = name.to_string();
                MapReader::Part(Box::new(reader), name)
            })
        }
    };
    let mut reader = match opened {
        Ok(reader) => reader,
        Err(err) => {
            let (at, given) = (display_name(open), display_name(path));
            manifest.error = Some(err.replacen(at, given, 1));
            write_manifest(scratch, key, &manifest)?;
            return Ok(manifest);
        }
    };
    let mut writers = Vec::with_capacity(partitions);
    let mut temps = Vec::with_capacity(partitions);
    for p in 0..partitions {
        let final_path = part_path(scratch, key, p);
        let tmp = final_path.with_extension(format!("{}.tmp", std::process::id()));
        let file = File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let mut writer = BufWriter::with_capacity(1 << 16, file);
        let header = Out::new(SEGMENTS_MAGIC);
        writer.write_all(&header.buf).map_err(|e| e.to_string())?;
        writers.push(writer);
        temps.push((tmp, final_path));
    }
    let mut times = TimesWriter::create(scratch, key)?;
    let mut clock = start.map_or_else(ClockCheck::default, |s| {
        ClockCheck::resume(s.frames_before, s.previous_ts)
    });
    let mut stats = SourceStats::default();
    let mut segments = Vec::new();
    let mut bad = Vec::new();
    let keep_bad = keeps_ledger(options);
    let mut out = Out::default();
    for call in start.map_or(0, |s| s.reads_before).. {
        let before = stats.warnings.len();
        let next = reader.next_batch(&mut stats);
        let raised = stats.warnings.get(before..).unwrap_or(&[]);
        manifest
            .warnings
            .extend(raised.iter().map(|w| (call, w.clone())));
        let batch = match next {
            Ok(Some(batch)) => batch,
            Ok(None) => break,
            Err(err) => {
                manifest.error = Some(err.0);
                break;
            }
        };
        manifest.first_ts = manifest.first_ts.or(batch.frames.first().map(|f| f.ts_ns));
        clock.observe(&batch.frames, &mut manifest.clock);
        times.batch(&batch.frames)?;
        segments.clear();
        manifest.filtered_out += decode_piece(
            &batch,
            options.filter.as_ref(),
            &mut stats,
            &mut manifest.unsupported,
            Some(&options.tunnels),
            &mut segments,
        );
        if options.verify_checksums && !segments.is_empty() {
            let before = segments.len();
            bad.clear();
            segments.retain(|seg| {
                let is_bad = checksum::is_bad(seg, &batch.data);
                if is_bad && keep_bad {
                    bad.push(*seg);
                }
                !is_bad
            });
            stats.skip("bad_checksum", (before - segments.len()) as u64);
        }
        let latest = batch
            .frames
            .iter()
            .map(|f| f.ts_ns)
            .max()
            .unwrap_or(i64::MIN);
        manifest.batches.push((latest, segments.len() as u32));
        tracker.note(
            call,
            &batch,
            &segments,
            manifest.ts.len() as u64,
            &options.tunnels,
        );
        for seg in &segments {
            let p = shard_of(seg, partitions);
            out.buf.clear();
            out.u64(manifest.ts.len() as u64);
            out.segment(seg, &batch.data);
            if let Some(writer) = writers.get_mut(p) {
                writer.write_all(&out.buf).map_err(|e| e.to_string())?;
            }
            if let Some(n) = manifest.parts.get_mut(p) {
                *n += 1;
            }
            manifest.ts.push(seg.ts_ns);
        }
        manifest.segments_total += segments.len() as u64;
        if keep_bad {
            manifest.bad_batches.push(bad.len() as u32);
            for seg in bad.drain(..) {
                out.buf.clear();
                out.u64(BAD | manifest.bad_ts.len() as u64);
                out.segment(&seg, &batch.data);
                if let Some(writer) = writers.get_mut(shard_of(&seg, partitions)) {
                    writer.write_all(&out.buf).map_err(|e| e.to_string())?;
                }
                manifest.bad_ts.push(seg.ts_ns);
            }
        }
    }
    manifest.opened = match part {
        None => !stats.files.is_empty(),
        // the file is listed once, by its first part (a later one: it opened before)
        Some(p) => p.index == 0,
    };
    manifest.frames = stats.frames;
    manifest.skipped = stats.skipped;
    manifest.first = (stats.first.into_iter())
        .map(|(kind, at)| (kind, at.frame))
        .collect();
    manifest.tunnels = tracker.finish();
    for (writer, (tmp, final_path)) in writers.into_iter().zip(temps) {
        let file = writer.into_inner().map_err(|e| e.to_string())?;
        drop(file);
        std::fs::rename(&tmp, &final_path).map_err(|e| format!("{}: {e}", final_path.display()))?;
    }
    times.finish()?;
    write_manifest(scratch, key, &manifest)?;
    Ok(manifest)
}

/// A part of a large pcap file to map (`scalechunks`): its number, its start (None: the
/// file's start) and the next part's first byte (None: it runs to the file's end).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Part {
    pub index: u32,
    pub start: Option<PartStart>,
    pub end: Option<u64>,
}

/// What a map reads: a whole file (any format), or a part of a pcap file.
enum MapReader {
    File(Box<FileReader>),
    Part(Box<PcapReader>, String),
}

impl MapReader {
    fn next_batch(&mut self, stats: &mut SourceStats) -> Result<Option<FrameBatch>, CaptureError> {
        match self {
            MapReader::File(reader) => reader.next_batch(stats),
            MapReader::Part(reader, name) => {
                let batch = reader.next_batch(stats);
                if batch.is_none() {
                    if let Some(reason) = reader.take_error() {
                        // as `FileReader::next_piece` says it
                        stats.skip("truncated_record", 1);
                        stats.warn_once(
                            "truncated_record",
                            &format!(
                                "{name}: stopped reading after frame {}: {reason}; earlier \
                                 packets are kept",
                                reader.frames_read()
                            ),
                        );
                    }
                }
                Ok(batch)
            }
        }
    }
}

fn write_manifest(scratch: &Path, key: &str, m: &FileManifest) -> Result<(), String> {
    let mut out = Out::new(MANIFEST_MAGIC);
    out.str(&m.path);
    out.u32(m.part);
    out.u8(u8::from(m.continues));
    out.u8(u8::from(m.error.is_some()));
    out.str(m.error.as_deref().unwrap_or(""));
    out.u8(u8::from(m.opened));
    out.u8(u8::from(m.first_ts.is_some()));
    out.i64(m.first_ts.unwrap_or(0));
    out.u64(m.frames);
    out.u64(m.segments_total);
    out.u64(m.filtered_out);
    out.u64(m.skipped.len() as u64);
    for (kind, n) in &m.skipped {
        out.str(kind);
        out.u64(*n);
    }
    out.u64(m.first.len() as u64);
    for (kind, frame) in &m.first {
        out.str(kind);
        out.u64(*frame);
    }
    out.u64(m.unsupported.len() as u64);
    m.unsupported.iter().for_each(|&l| out.u32(l));
    out.u64(m.warnings.len() as u64);
    for (call, text) in &m.warnings {
        out.u32(*call);
        out.str(text);
    }
    out.u64(m.batches.len() as u64);
    for &(latest, segments) in &m.batches {
        out.i64(latest);
        out.u32(segments);
    }
    scaletimes::write_steps(&mut out, &m.clock);
    out.u64(m.ts.len() as u64);
    m.ts.iter().for_each(|&t| out.i64(t));
    out.u64(m.bad_batches.len() as u64);
    m.bad_batches.iter().for_each(|&n| out.u32(n));
    out.u64(m.bad_ts.len() as u64);
    m.bad_ts.iter().for_each(|&t| out.i64(t));
    out.u64(m.parts.len() as u64);
    m.parts.iter().for_each(|&n| out.u64(n));
    scaletunnels::write(&mut out, &m.tunnels);
    spill::write_atomically(&manifest_path(scratch, key), &out.buf)
}

/// The manifest `map_file` wrote for `key`.
pub fn read_manifest(scratch: &Path, key: &str) -> Result<FileManifest, String> {
    let path = manifest_path(scratch, key);
    let bytes = spill::read(&path)?;
    let what = path.display().to_string();
    let mut i = In::new(&bytes, MANIFEST_MAGIC, &what)?;
    let path = i.str()?;
    let part = i.u32()?;
    let continues = i.u8()? != 0;
    let has_error = i.u8()? != 0;
    let error = i.str()?;
    let opened = i.u8()? != 0;
    let has_first = i.u8()? != 0;
    let first = i.i64()?;
    let (frames, segments_total, filtered_out) = (i.u64()?, i.u64()?, i.u64()?);
    let mut skipped = BTreeMap::new();
    for _ in 0..i.count(12)? {
        let kind = i.str()?;
        skipped.insert(kind, i.u64()?);
    }
    let mut first_frames = BTreeMap::new();
    for _ in 0..i.count(12)? {
        let kind = i.str()?;
        first_frames.insert(kind, i.u64()?);
    }
    let mut unsupported = BTreeSet::new();
    for _ in 0..i.count(4)? {
        unsupported.insert(i.u32()?);
    }
    let mut warnings = Vec::new();
    for _ in 0..i.count(8)? {
        let call = i.u32()?;
        warnings.push((call, i.str()?));
    }
    let mut batches = Vec::new();
    for _ in 0..i.count(12)? {
        let latest = i.i64()?;
        batches.push((latest, i.u32()?));
    }
    let clock = scaletimes::read_steps(&mut i)?;
    // (sized once: a reduce holds every file's, 8 bytes a segment)
    let n = i.count(8)?;
    let mut ts = Vec::with_capacity(n);
    for _ in 0..n {
        ts.push(i.i64()?);
    }
    let mut bad_batches = Vec::new();
    for _ in 0..i.count(4)? {
        bad_batches.push(i.u32()?);
    }
    let mut bad_ts = Vec::new();
    for _ in 0..i.count(8)? {
        bad_ts.push(i.i64()?);
    }
    let mut parts = Vec::new();
    for _ in 0..i.count(8)? {
        parts.push(i.u64()?);
    }
    let tunnels = scaletunnels::read(&mut i)?;
    let counted: u64 = batches.iter().map(|&(_, n)| u64::from(n)).sum();
    let bad_counted: u64 = bad_batches.iter().map(|&n| u64::from(n)).sum();
    if counted != ts.len() as u64
        || parts.iter().sum::<u64>() != counted
        || bad_counted != bad_ts.len() as u64
        || !(bad_batches.is_empty() || bad_batches.len() == batches.len())
    {
        return Err(format!("{what}: inconsistent counts"));
    }
    Ok(FileManifest {
        path,
        part,
        continues,
        error: has_error.then_some(error),
        opened,
        first_ts: has_first.then_some(first),
        frames,
        segments_total,
        filtered_out,
        skipped,
        first: first_frames,
        unsupported,
        warnings,
        batches,
        clock,
        ts,
        bad_batches,
        bad_ts,
        parts,
        tunnels,
    })
}

/// The run's files among its manifests (in the run's order): the ranges of manifests
/// that are one file's parts (a large pcap file mapped a part at a time: `scalechunks`).
pub fn files_of(manifests: &[FileManifest]) -> Vec<Range<usize>> {
    let mut files: Vec<Range<usize>> = Vec::new();
    for (i, m) in manifests.iter().enumerate() {
        match files.last_mut() {
            Some(last) if m.part > 0 => last.end = i + 1,
            _ => files.push(i..i + 1),
        }
    }
    files
}

/// The run's files' manifests, each file's parts joined into one, as a map of the whole
/// file would have written it: counters summed, batches, segment timestamps and warnings
/// in order (a batch split between two parts made one again: the parts' reads are
/// numbered as the file's), the time sanity check's steps added up (each part's check
/// went on from the frame before it, so its frame numbers are the file's). Tunnel paths
/// are left out: each part's decoder numbered its own (the reduce remaps each part's).
pub fn joined(manifests: Vec<FileManifest>) -> Vec<FileManifest> {
    let mut files: Vec<FileManifest> = Vec::new();
    for mut p in manifests {
        p.tunnels = Vec::new();
        let Some(file) = files.last_mut().filter(|_| p.part > 0) else {
            files.push(p);
            continue;
        };
        file.error = file.error.take().or(p.error);
        file.first_ts = file.first_ts.or(p.first_ts);
        file.frames += p.frames;
        file.segments_total += p.segments_total;
        file.filtered_out += p.filtered_out;
        for (kind, n) in p.skipped {
            *file.skipped.entry(kind).or_insert(0) += n;
        }
        for (kind, frame) in p.first {
            let first = file.first.entry(kind).or_insert(frame);
            *first = (*first).min(frame);
        }
        file.unsupported.extend(p.unsupported);
        file.warnings.extend(p.warnings);
        join_batches(&mut file.batches, &p.batches, p.continues);
        let mut bad = p.bad_batches.iter();
        if let (true, Some(last), Some(n)) = (p.continues, file.bad_batches.last_mut(), bad.next())
        {
            *last = last.saturating_add(*n);
        }
        file.bad_batches.extend(bad);
        file.bad_ts.extend_from_slice(&p.bad_ts);
        join_steps(&mut file.clock, &p.clock);
        file.ts.extend_from_slice(&p.ts);
        for (into, n) in file.parts.iter_mut().zip(&p.parts) {
            *into += n;
        }
    }
    files
}

/// A part's read batches after the file's so far: its first one is the file's last when
/// the part `continues` it.
fn join_batches(file: &mut Vec<(i64, u32)>, part: &[(i64, u32)], continues: bool) {
    let mut batches = part.iter();
    if continues {
        if let (Some(last), Some(&(latest, n))) = (file.last_mut(), batches.next()) {
            *last = (last.0.max(latest), last.1.saturating_add(n));
        }
    }
    file.extend(batches);
}

/// A part's time sanity steps after the file's so far (its frames numbered as the file's).
fn join_steps(file: &mut ClockSteps, part: &ClockSteps) {
    for (into, from) in [
        (&mut file.backwards, &part.backwards),
        (&mut file.jumps, &part.jumps),
    ] {
        into.count += from.count;
        into.first = into.first.or(from.first);
    }
}

/// The single run's feed, rebuilt from the manifests (see the module's comment).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Clock {
    /// Per file, per segment (file order): its position in the single run's feed.
    pub ordinals: Vec<Vec<u64>>,
    /// Per file, per bad-checksum segment of the Zeek view's ledger (file order): the
    /// ordinal of the segment it goes to the ledger before (the first of its batch, or of
    /// a later one) and its place among them.
    pub bad: Vec<Vec<(u64, u64)>>,
    /// The slice ends: the ordinal of the slice's last segment and its latest timestamp.
    pub cuts: Vec<(u64, i64)>,
    /// The reads the single run makes, in its order: (file, read number).
    pub reads: Vec<(usize, u32)>,
}

/// Cuts slices as `Mapper::map` does: FEED_SLICE segments, or the end of a batch.
#[derive(Default)]
struct Slicer {
    len: usize,
    latest: Option<i64>,
    next: u64,
    cuts: Vec<(u64, i64)>,
}

impl Slicer {
    fn push(&mut self, ts: i64) -> u64 {
        let ordinal = self.next;
        self.next += 1;
        self.len += 1;
        self.latest = Some(self.latest.map_or(ts, |l| l.max(ts)));
        if self.len == FEED_SLICE {
            self.cut();
        }
        ordinal
    }
    fn end_batch(&mut self) {
        if self.len > 0 {
            self.cut();
        }
    }
    fn cut(&mut self) {
        self.cuts
            .push((self.next - 1, self.latest.unwrap_or(i64::MIN)));
        self.len = 0;
        self.latest = None;
    }
}

/// Replay the single run's reading of `files` (in the run's order): one file is read in
/// its own order, several through `Captures::merge_step` (`scaletimes::replay_merge`).
/// The Zeek view's bad-checksum segments take no place in the feed: each goes to the
/// ledger before the first segment of its batch (a merge step) is fed, in the batch's
/// order (`Clock::bad`).
pub fn clock(files: &[FileManifest]) -> Clock {
    let mut slicer = Slicer::default();
    let mut ordinals: Vec<Vec<u64>> = files.iter().map(|f| vec![0; f.ts.len()]).collect();
    let mut bad: Vec<Vec<(u64, u64)>> =
        files.iter().map(|f| vec![(0, 0); f.bad_ts.len()]).collect();
    let mut sequence = 0u64;
    let mut reads = Vec::new();
    // each file's segments and bad ones before each of its batches
    let starts: Vec<Vec<(usize, usize)>> = (files.iter())
        .map(|f| {
            let counts = (f.batches.iter().enumerate()).map(|(r, &(_, n))| {
                (
                    n as usize,
                    f.bad_batches.get(r).copied().unwrap_or(0) as usize,
                )
            });
            counts
                .scan((0, 0), |at, (n, b)| {
                    let here = *at;
                    *at = (at.0 + n, at.1 + b);
                    Some(here)
                })
                .collect()
        })
        .collect();
    if let [file] = files {
        for (read, &(_, n)) in file.batches.iter().enumerate() {
            reads.push((0, read as u32));
            let (first, first_bad) = starts[0][read];
            let n_bad = file.bad_batches.get(read).copied().unwrap_or(0) as usize;
            for slot in bad[0].iter_mut().skip(first_bad).take(n_bad) {
                *slot = (slicer.next, sequence);
                sequence += 1;
            }
            for k in first..first + n as usize {
                if let (Some(slot), Some(&ts)) = (ordinals[0].get_mut(k), file.ts.get(k)) {
                    *slot = slicer.push(ts);
                }
            }
            slicer.end_batch();
        }
        reads.push((0, file.batches.len() as u32));
        return Clock {
            ordinals,
            bad,
            cuts: slicer.cuts,
            reads,
        };
    }
    // a read's items are its segments, then its bad ones: per file, the first item of
    // each read, to tell them apart in the merged steps
    let item_starts: Vec<Vec<u64>> = (starts.iter())
        .map(|f| f.iter().map(|&(n, b)| (n + b) as u64).collect())
        .collect();
    replay_merge(
        files.len(),
        |i, read| {
            reads.push((i, read));
            let f = &files[i];
            let &(latest, count) = f.batches.get(read as usize)?;
            let n_bad = f.bad_batches.get(read as usize).copied().unwrap_or(0) as usize;
            let (first, first_bad) = starts[i].get(read as usize).copied().unwrap_or((0, 0));
            let ts = f.ts.get(first..first + count as usize).unwrap_or(&[]);
            let bad_ts = f.bad_ts.get(first_bad..first_bad + n_bad).unwrap_or(&[]);
            Some((latest, [ts, bad_ts].concat()))
        },
        |step| {
            let first_of_step = slicer.next;
            for &(t, i, k) in step {
                // which read of file i the item is of, and where in it
                let read = item_starts[i]
                    .partition_point(|&s| s <= k)
                    .saturating_sub(1);
                let offset = (k - item_starts[i].get(read).copied().unwrap_or(0)) as usize;
                let count = files[i].batches.get(read).map_or(0, |b| b.1 as usize);
                let (first, first_bad) = starts[i].get(read).copied().unwrap_or((0, 0));
                if offset < count {
                    if let Some(slot) = ordinals[i].get_mut(first + offset) {
                        *slot = slicer.push(t);
                    }
                } else if let Some(slot) = bad[i].get_mut(first_bad + offset - count) {
                    *slot = (first_of_step, sequence);
                    sequence += 1;
                }
            }
            slicer.end_batch();
        },
    );
    Clock {
        ordinals,
        bad,
        cuts: slicer.cuts,
        reads,
    }
}

/// The frames' timestamp steps of the single run over the manifests (in the run's order,
/// with their keys; a large file's parts in turn): `scaletimes::time_steps`.
pub fn time_steps(
    scratch: &Path,
    keys: &[String],
    manifests: &[FileManifest],
) -> Result<ClockSteps, String> {
    let ranges = files_of(manifests);
    let mut own = Vec::with_capacity(ranges.len());
    let mut ends = Vec::with_capacity(ranges.len());
    let mut parts = Vec::with_capacity(ranges.len());
    for range in ranges {
        let (mut steps, mut batches, mut names) = (ClockSteps::default(), Vec::new(), Vec::new());
        for i in range {
            let (Some(m), Some(key)) = (manifests.get(i), keys.get(i)) else {
                continue;
            };
            join_steps(&mut steps, &m.clock);
            join_batches(&mut batches, &m.batches, m.continues);
            names.push((key.clone(), m.continues));
        }
        own.push(steps);
        ends.push(batches.iter().map(|&(latest, _)| latest).collect());
        parts.push(names);
    }
    scaletimes::time_steps(scratch, &parts, &own, &ends)
}

/// The `source` part of the report and the warnings, as the single run makes them: the
/// files' counters summed, their reader warnings in the order of the single run's reads
/// (one per kind), then the damage, time sanity (`clock`: `time_steps`) and flow-table
/// warnings.
pub fn source_of(
    files: &[FileManifest],
    reads: &[(usize, u32)],
    clock: ClockSteps,
    stats: &FlowTableStats,
) -> (Value, Vec<String>) {
    let mut source = SourceStats {
        clock,
        ..SourceStats::default()
    };
    let mut unsupported = BTreeSet::new();
    let (mut segments, mut filtered) = (0, 0);
    for f in files {
        if f.opened {
            source.files.push(f.path.clone());
        }
        source.frames += f.frames;
        for (kind, &n) in &f.skipped {
            source.skip(kind, n);
        }
        // each file's first frames, the file named by its place in the list
        let file = u32::try_from(source.files.len().saturating_sub(1)).unwrap_or(u32::MAX);
        for (kind, &frame) in &f.first {
            let at = FramePlace { file, frame };
            let first = source.first.entry(kind.clone()).or_insert(at);
            *first = (*first).min(at);
        }
        unsupported.extend(f.unsupported.iter().copied());
        segments += f.segments_total;
        filtered += f.filtered_out;
    }
    for &(file, read) in reads {
        let Some(f) = files.get(file) else { continue };
        for (_, text) in f.warnings.iter().filter(|(r, _)| *r == read) {
            let (kind, message) = text.split_once(": ").unwrap_or((text.as_str(), ""));
            source.warn_once(kind, message);
        }
    }
    warn_damage(&mut source, &unsupported);
    warn_evictions(&mut source, stats);
    let report = source_report(&source, segments, filtered, stats);
    (report, source.warnings)
}

/// The reduce step for `partition`: its segments of every file (the manifests in the run's
/// order, with their keys; a large file's parts in turn), fed in the single run's order
/// with its slice ends; the records encoded under local ids, one batch per slice, to
/// `records_path`.
pub fn reduce_partition(
    scratch: &Path,
    keys: &[String],
    partition: usize,
    options: &Options,
    encoding: Encoding,
) -> Result<FlowTableStats, String> {
    let clock = scaleclock::read_clock(scratch)?;
    // the run's tunnel numbers, as the single run's decoder gives them
    let mut reps = Vec::with_capacity(keys.len());
    for key in keys {
        reps.push(read_manifest(scratch, key)?.tunnels);
    }
    let reps: Vec<&[Option<Representatives>]> = reps.iter().map(Vec::as_slice).collect();
    let remap = Remap::new(&reps, clock.merged, |f, index| {
        clock.representatives.get(f)?.get(&index).copied()
    })?;
    let mut options = options.clone();
    options.tunnels.registry = std::sync::Arc::clone(&remap.registry);
    let options = &options;
    // this partition's segments of every file, with their ordinals
    // (their bytes stay in the files' buffers, where the segments point)
    let mut held: Vec<(u64, usize, crate::decode::Segment, usize)> = Vec::new();
    let mut bad: Vec<((u64, u64), crate::decode::Segment)> = Vec::new();
    let mut buffers: Vec<Vec<u8>> = Vec::with_capacity(keys.len());
    for (f, key) in keys.iter().enumerate() {
        let path = part_path(scratch, key, partition);
        let bytes = spill::read(&path)?;
        let what = path.display().to_string();
        let mut input = In::new(&bytes, SEGMENTS_MAGIC, &what)?;
        // (every segment's of the file, read one file at a time: only ours are kept)
        let (ordinals, places) = scaleclock::read_ordinals(scratch, key)?;
        while !input.at_end() {
            let raw = input.u64()?;
            let index = (raw & !BAD) as usize;
            let mut seg = input.segment()?;
            if raw & BAD != 0 {
                // the ledger keys on addresses and ports only: no bytes, no tunnel
                let Some(&place) = places.get(index) else {
                    return Err(format!("{what}: bad segment {index} not in its manifest"));
                };
                bad.push((place, seg));
                continue;
            }
            seg.tunnel = remap.tunnel(f, seg.tunnel)?;
            let Some(&ordinal) = ordinals.get(index) else {
                return Err(format!("{what}: segment {index} not in its manifest"));
            };
            held.push((ordinal, f, seg, input.position()));
        }
        buffers.push(bytes);
    }
    held.sort_unstable_by_key(|&(ordinal, _, _, _)| ordinal);
    bad.sort_unstable_by_key(|&(place, _)| place);
    let mut bad_at = 0usize;
    let mut reducer = Reducer::new(0, options);
    let mut encoder = Encoder::new(encoding);
    let target = records_path(scratch, partition);
    let tmp = target.with_extension(format!("{}.tmp", std::process::id()));
    let fail = |e: std::io::Error| format!("{}: {e}", tmp.display());
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp).map_err(fail)?);
    out.write_all(&Out::new(RECORDS_MAGIC).buf).map_err(fail)?;
    let mut buf = Out::default();
    let mut at = 0usize;
    let mut base = 0u64;
    let mut piece = MappedPiece::default();
    let mut data = Vec::new();
    for &(last, latest) in &clock.cuts {
        let end = at + held[at..].partition_point(|&(o, _, _, _)| o <= last);
        data.clear();
        piece.segments.clear();
        for &(ordinal, f, seg, bytes_end) in &held[at..end] {
            let bytes = buffers.get(f).map_or(&[][..], Vec::as_slice);
            let from = seg.tcp_off.min(bytes.len());
            let to = bytes_end.min(bytes.len()).max(from);
            let at = data.len();
            data.extend_from_slice(bytes.get(from..to).unwrap_or(&[]));
            piece.segments.push(crate::decode::Segment {
                tcp_off: at + seg.tcp_off.saturating_sub(from),
                payload_off: at + seg.payload_off.saturating_sub(from),
                frame_index: (ordinal - base) as u32,
                ..seg
            });
        }
        let count = end - at;
        piece.data = Arc::new(std::mem::take(&mut data));
        piece.frame_base = base;
        piece.parts = vec![(0..count as u32).collect()];
        piece.cuts = vec![Cut {
            ends: vec![count],
            latest,
        }];
        // the ledger takes a batch's bad segments before its first segment is fed
        let bad_end = bad_at + bad[bad_at..].partition_point(|&((o, _), _)| o <= last);
        piece.bad = vec![bad[bad_at..bad_end].iter().map(|&(_, seg)| seg).collect()];
        bad_at = bad_end;
        reducer.feed(&piece, &mut encoder);
        if encoder.broken {
            return Err("a record's id was not found in its encoding".into());
        }
        data = Arc::try_unwrap(std::mem::take(&mut piece.data)).unwrap_or_default();
        for batch in encoder.done.drain(..) {
            write_epoch(&mut out, &mut buf, &batch).map_err(fail)?;
        }
        at = end;
        base = last + 1;
    }
    if bad_at < bad.len() {
        // bad segments after the last good one: in the ledger for the close
        let rest = MappedPiece {
            bad: vec![bad[bad_at..].iter().map(|&(_, seg)| seg).collect()],
            ..MappedPiece::default()
        };
        reducer.feed(&rest, &mut encoder);
    }
    reducer.close(&mut encoder);
    for batch in encoder.done.drain(..) {
        write_epoch(&mut out, &mut buf, &batch).map_err(fail)?;
    }
    let stats = reducer.stats();
    buf.buf.clear();
    buf.u8(2);
    for v in stats_fields(&stats) {
        buf.u64(v);
    }
    spill::write_block(&mut out, &buf.buf).map_err(fail)?;
    out.into_inner().map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, &target).map_err(|e| format!("{}: {e}", target.display()))?;
    Ok(stats)
}

fn stats_fields(s: &FlowTableStats) -> [u64; 8] {
    [
        s.connections,
        s.evicted_for_capacity,
        s.idle_evicted,
        s.port_reuse,
        s.after_close,
        s.failed_connections,
        s.clock_jumps,
        s.duplicates,
    ]
}

/// One epoch batch as blocks (`spill::write_block`): a header block (tag 1, the opened
/// ordinals, the number of items), then a block per item with its bytes, so that the
/// finalize holds one item of each partition at a time.
fn write_epoch(out: &mut impl Write, buf: &mut Out, batch: &EpochBatch) -> std::io::Result<()> {
    buf.buf.clear();
    buf.u8(1);
    buf.u64(batch.opened.len() as u64);
    batch.opened.iter().for_each(|&o| buf.u64(o));
    buf.u64(batch.items.len() as u64);
    spill::write_block(out, &buf.buf)?;
    for item in &batch.items {
        buf.buf.clear();
        buf.u8(item.phase);
        buf.u64(item.rank);
        buf.u64(item.local_id);
        buf.u8(u8::from(item.previous_local.is_some()));
        buf.u64(item.previous_local.unwrap_or(0));
        buf.u64(item.spans.id.0 as u64);
        buf.u64(item.spans.id.1 as u64);
        let previous = item.spans.previous;
        buf.u8(u8::from(previous.is_some()));
        buf.u64(previous.map_or(0, |p| p.0 as u64));
        buf.u64(previous.map_or(0, |p| p.1 as u64));
        buf.bytes(batch.bytes(item));
        match &item.record {
            Some(record) => {
                buf.u8(1);
                Digest::of(record).write(buf);
            }
            None => buf.u8(0),
        }
        spill::write_block(out, &buf.buf)?;
    }
    Ok(())
}

/// The start of an epoch in a reduce's output: the first ordinals of the connections it
/// opened and its number of items; or, at the end, the partition's counters.
enum EpochHead {
    Epoch { opened: Vec<u64>, items: u64 },
    End(FlowTableStats),
}

fn read_epoch_head(input: &mut In) -> Result<EpochHead, String> {
    if input.u8()? == 2 {
        let mut v = [0u64; 8];
        for slot in &mut v {
            *slot = input.u64()?;
        }
        let [connections, evicted_for_capacity, idle_evicted, port_reuse, after_close, failed_connections, clock_jumps, duplicates] =
            v;
        return Ok(EpochHead::End(FlowTableStats {
            connections,
            evicted_for_capacity,
            idle_evicted,
            port_reuse,
            after_close,
            failed_connections,
            clock_jumps,
            duplicates,
        }));
    }
    let opened = (0..input.count(8)?)
        .map(|_| input.u64())
        .collect::<Result<_, _>>()?;
    let items = input.u64()?;
    Ok(EpochHead::Epoch { opened, items })
}

/// One record of a reduce's output, read back: its merge key, ids, bytes and digest.
struct ReadItem {
    key: (u8, u64),
    local_id: u64,
    previous_local: Option<u64>,
    spans: Spans,
    bytes: Vec<u8>,
    digest: Option<Digest>,
}

fn read_item(input: &mut In) -> Result<ReadItem, String> {
    let phase = input.u8()?;
    let rank = input.u64()?;
    let local_id = input.u64()?;
    let has_previous = input.u8()? != 0;
    let previous = input.u64()?;
    let id = (input.u64()? as usize, input.u64()? as usize);
    let has_span = input.u8()? != 0;
    let span = (input.u64()? as usize, input.u64()? as usize);
    let bytes = input.bytes()?.to_vec();
    let digest = match input.u8()? {
        0 => None,
        _ => Some(Digest::read(input)?),
    };
    Ok(ReadItem {
        key: (phase, rank),
        local_id,
        previous_local: has_previous.then_some(previous),
        spans: Spans {
            id,
            previous: has_span.then_some(span),
        },
        bytes,
        digest,
    })
}

/// A partition's output being merged: its next record of the current epoch and how many
/// are left after it.
struct Stream {
    blocks: Blocks,
    head: Option<ReadItem>,
    left: u64,
}

impl Stream {
    /// Read the next record of the epoch into `head` (None once the epoch's are all read).
    fn advance(&mut self) -> Result<(), String> {
        self.head = match self.left {
            0 => None,
            _ => {
                self.left -= 1;
                Some(read_item(&mut self.blocks.next_block()?)?)
            }
        };
        Ok(())
    }
}

/// The finalize step: the reduces' outputs (partition order), epoch by epoch, renumbered
/// and merged into the single run's order; `emit` gets each record's global id, its bytes
/// under its global ids and (json, table) its digest. Returns the flow-table counters
/// summed over the partitions.
///
/// Each output is read as a stream: within an epoch every partition's records are already
/// in the single run's order (phase, rank), so a k-way merge holds one record of each
/// partition at a time (and the global ids: 8 bytes a connection), not the outputs.
pub fn finalize<E: FnMut(u64, &[u8], Option<&Digest>) -> Result<(), String>>(
    scratch: &Path,
    partitions: usize,
    encoding: Encoding,
    mut emit: E,
) -> Result<FlowTableStats, String> {
    let mut streams: Vec<Stream> = (0..partitions)
        .map(|p| {
            let blocks = Blocks::open(&records_path(scratch, p), RECORDS_MAGIC)?;
            Ok::<_, String>(Stream {
                blocks,
                head: None,
                left: 0,
            })
        })
        .collect::<Result<_, _>>()?;
    let mut renumber = Renumber::new(partitions);
    let mut stats = FlowTableStats::default();
    let mut out = Vec::new();
    let splices = !matches!(encoding, Encoding::Zeek | Encoding::Table);
    loop {
        let mut ended = 0;
        let mut opened: Vec<Vec<u64>> = Vec::with_capacity(partitions);
        for stream in &mut streams {
            match read_epoch_head(&mut stream.blocks.next_block()?)? {
                EpochHead::Epoch { opened: o, items } => {
                    opened.push(o);
                    stream.left = items;
                }
                EpochHead::End(s) => {
                    add_stats(&mut stats, &s);
                    ended += 1;
                    opened.push(Vec::new());
                    stream.left = 0;
                }
            }
            stream.advance()?;
        }
        if ended == partitions {
            return Ok(stats);
        }
        if ended > 0 {
            return Err("the partitions' outputs do not end together".into());
        }
        let lists: Vec<&[u64]> = opened.iter().map(Vec::as_slice).collect();
        renumber.add_epoch(&lists);
        // the single run's order: the least (phase, rank) of the partitions' next records
        // (`plan::merge_epoch`, one record at a time)
        loop {
            let mut best: Option<((u8, u64), usize)> = None;
            for (k, stream) in streams.iter().enumerate() {
                if let Some(item) = &stream.head {
                    if best.is_none_or(|(b, _)| item.key < b) {
                        best = Some((item.key, k));
                    }
                }
            }
            let Some((_, k)) = best else { break };
            let Some(item) = streams[k].head.take() else {
                break;
            };
            let id = renumber.global(k, item.local_id);
            if splices {
                out.clear();
                let previous = item.previous_local.map(|p| renumber.global(k, p));
                splice(&item.bytes, &item.spans, id, previous, &mut out);
                emit(id, &out, item.digest.as_ref())?;
            } else {
                emit(id, &item.bytes, item.digest.as_ref())?;
            }
            streams[k].advance()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(batches: &[(i64, &[i64])]) -> FileManifest {
        FileManifest {
            batches: batches
                .iter()
                .map(|(latest, ts)| (*latest, ts.len() as u32))
                .collect(),
            ts: batches
                .iter()
                .flat_map(|(_, ts)| ts.iter().copied())
                .collect(),
            ..FileManifest::default()
        }
    }

    #[test]
    fn one_file_keeps_its_order_and_cuts_at_batch_ends() {
        let f = file(&[(9, &[5, 3, 9]), (12, &[]), (20, &[11, 20])]);
        let c = clock(&[f]);
        assert_eq!(c.ordinals, vec![vec![0, 1, 2, 3, 4]]);
        assert_eq!(c.cuts, vec![(2, 9), (4, 20)]);
        assert_eq!(c.reads, vec![(0, 0), (0, 1), (0, 2), (0, 3)]);
    }

    #[test]
    fn several_files_merge_by_watermark_ties_by_file_order() {
        // a: batches ending at 10 and 30; b: one batch ending at 20
        let a = file(&[(10, &[1, 10]), (30, &[25, 30])]);
        let b = file(&[(20, &[10, 15, 20])]);
        let c = clock(&[a, b]);
        // step 1 (watermark 10): a1, a10, b10 (tie: a first); step 2 (a's next batch is
        // read, watermark 20): b15, b20; step 3 (b is done: watermark 30): a25, a30
        assert_eq!(c.ordinals, vec![vec![0, 1, 5, 6], vec![2, 3, 4]]);
        assert_eq!(c.cuts, vec![(2, 10), (4, 20), (6, 30)]);
        assert_eq!(c.reads, vec![(0, 0), (1, 0), (0, 1), (1, 1), (0, 2)]);
    }

    #[test]
    fn a_merge_sorts_each_step_by_time_stably() {
        // a's timestamps step back within its batch; ties go to the file given first
        let a = file(&[(10, &[10, 1, 3])]);
        let b = file(&[(20, &[5, 3])]);
        let c = clock(&[a, b]);
        // step 1 (watermark 10): 1 (a1), 3 (a2), 3 (b1), 5 (b0), 10 (a0); step 2: none of
        // b is left but its frames up to 20 (no segment): no slice
        assert_eq!(c.ordinals, vec![vec![4, 0, 1], vec![3, 2]]);
        assert_eq!(c.cuts, vec![(4, 10)]);
    }

    #[test]
    fn a_slice_ends_every_feed_slice_segments() {
        let ts: Vec<i64> = (0..FEED_SLICE as i64 + 5).collect();
        let f = file(&[(ts[ts.len() - 1], &ts)]);
        let c = clock(&[f]);
        let last = FEED_SLICE as u64 - 1;
        assert_eq!(
            c.cuts,
            vec![(last, last as i64), (last + 5, last as i64 + 5)]
        );
    }

    use crate::parallel::testing::{assert_same_run, capture, single};

    /// The plan run by hand as the executor runs it: map each file, reduce each partition,
    /// finalize.
    fn distributed(paths: &[String], options: &Options, partitions: usize) -> (Vec<u8>, Value) {
        distributed_in_parts(paths, options, partitions, u64::MAX)
    }

    /// `distributed`, each plain pcap file larger than `part_bytes` mapped in parts.
    fn distributed_in_parts(
        paths: &[String],
        options: &Options,
        partitions: usize,
        part_bytes: u64,
    ) -> (Vec<u8>, Value) {
        let scratch = tempfile::tempdir().unwrap();
        let chunk = crate::sources::merge_chunk(paths.len());
        let mut keys: Vec<String> = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            let starts = scalechunks::plan(path, chunk, part_bytes);
            if starts.is_empty() {
                let key = format!("f{i}");
                map_file(
                    path,
                    path,
                    &key,
                    options,
                    partitions,
                    chunk,
                    scratch.path(),
                    None,
                )
                .unwrap();
                keys.push(key);
                continue;
            }
            let firsts = std::iter::once(None).chain(starts.iter().map(Some));
            let ends = starts.iter().map(|s| Some(s.position)).chain([None]);
            for (k, (start, end)) in firsts.zip(ends).enumerate() {
                let key = format!("f{i}c{k}");
                let part = Part {
                    index: k as u32,
                    start: start.copied(),
                    end,
                };
                let scratch = scratch.path();
                map_file(
                    path,
                    path,
                    &key,
                    options,
                    partitions,
                    chunk,
                    scratch,
                    Some(&part),
                )
                .unwrap();
                keys.push(key);
            }
        }
        let manifests: Vec<FileManifest> = keys
            .iter()
            .map(|k| read_manifest(scratch.path(), k).unwrap())
            .collect();
        scaleclock::plan(scratch.path(), &keys).unwrap();
        for p in 0..partitions {
            reduce_partition(scratch.path(), &keys, p, options, Encoding::Jsonl).unwrap();
        }
        let mut out = Vec::new();
        let stats = finalize(scratch.path(), partitions, Encoding::Jsonl, |_, b, _| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        let steps = time_steps(scratch.path(), &keys, &manifests).unwrap();
        let files = joined(manifests);
        let reads = scaleclock::read_clock(scratch.path()).unwrap().reads;
        assert_eq!(reads, clock(&files).reads);
        (out, source_of(&files, &reads, steps, &stats).0)
    }

    /// `path` cut into pcap files of `per_file` records each.
    fn split(path: &str, per_file: usize, dir: &Path) -> Vec<String> {
        let raw = std::fs::read(path).unwrap();
        let (header, mut at) = (&raw[..24], 24);
        let mut files = Vec::new();
        let mut current = header.to_vec();
        let mut count = 0;
        while at + 16 <= raw.len() {
            let caplen = u32::from_le_bytes(raw[at + 8..at + 12].try_into().unwrap()) as usize;
            current.extend_from_slice(&raw[at..at + 16 + caplen]);
            at += 16 + caplen;
            count += 1;
            if count == per_file {
                files.push(std::mem::replace(&mut current, header.to_vec()));
                count = 0;
            }
        }
        if count > 0 {
            files.push(current);
        }
        files
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                let p = dir.join(format!("part{i:03}.pcap"));
                std::fs::write(&p, bytes).unwrap();
                p.to_string_lossy().into_owned()
            })
            .collect()
    }

    #[test]
    fn a_distributed_run_writes_what_the_single_run_writes() {
        let paths = vec![
            capture("crafted/port_reuse.pcap"),
            capture("crafted/refused_then_ok.pcap"),
            capture("transfer/download.pcap"),
            capture("crafted/ref_with_noise.pcap"),
        ];
        let options = Options::default();
        let want = single(&paths, &options);
        assert!(want.0.len() > 1000);
        for partitions in [1, 3, 7] {
            let got = distributed(&paths, &options, partitions);
            assert_same_run(&got, &want, &format!("{partitions} partitions"));
        }
        // one file alone: its own order, no merge
        let one = vec![capture("transfer/download.pcap")];
        assert_eq!(distributed(&one, &options, 4), single(&one, &options));
    }

    #[test]
    fn the_finalize_streams_each_output_and_refuses_a_damaged_one() {
        let paths = vec![
            capture("crafted/port_reuse.pcap"),
            capture("transfer/download.pcap"),
        ];
        let options = Options::default();
        let (want, _) = single(&paths, &options);
        let scratch = tempfile::tempdir().unwrap();
        let keys = ["f0".to_string(), "f1".to_string()];
        let chunk = crate::sources::merge_chunk(paths.len());
        for (path, key) in paths.iter().zip(&keys) {
            let dir = scratch.path();
            map_file(path, path, key, &options, 3, chunk, dir, None).unwrap();
        }
        scaleclock::plan(scratch.path(), &keys).unwrap();
        for p in 0..3 {
            reduce_partition(scratch.path(), &keys, p, &options, Encoding::Jsonl).unwrap();
        }
        let run = |scratch: &Path| {
            let mut out = Vec::new();
            finalize(scratch, 3, Encoding::Jsonl, |_, b, _| {
                out.extend_from_slice(b);
                Ok(())
            })
            .map(|_| out)
        };
        assert_eq!(run(scratch.path()).unwrap(), want);
        // a partition's output cut inside its last block, then inside its first
        let path = records_path(scratch.path(), 1);
        let whole = std::fs::read(&path).unwrap();
        let what = path.display().to_string();
        let cut_short = Err(format!("{what}: scratch file cut short"));
        std::fs::write(&path, &whole[..whole.len() - 3]).unwrap();
        assert_eq!(run(scratch.path()), cut_short);
        std::fs::write(&path, &whole[..14]).unwrap();
        assert_eq!(run(scratch.path()), cut_short);
        // a block's length beyond the file (never allocated)
        let mut long = whole.clone();
        long[10..18].copy_from_slice(&u64::MAX.to_le_bytes());
        std::fs::write(&path, &long).unwrap();
        assert_eq!(run(scratch.path()), cut_short);
        // restored: the same bytes again
        std::fs::write(&path, &whole).unwrap();
        assert_eq!(run(scratch.path()).unwrap(), want);
    }

    const TUNNELLED: [&str; 14] = [
        "erspan1",
        "erspan2",
        "erspan3",
        "erspan_vlan",
        "geneve",
        "geneve_in_vxlan",
        "gre",
        "gre_teb",
        "gtp",
        "ip4in4",
        "ip4in6",
        "ip6in4",
        "teredo",
        "vxlan",
    ];

    #[test]
    fn tunnelled_captures_keep_their_paths() {
        let paths: Vec<String> = TUNNELLED
            .iter()
            .map(|name| capture(&format!("crafted/ref_{name}.pcap")))
            .chain([capture("transfer/download.pcap")])
            .collect();
        // each run its own registry (a cloned `Options` shares it)
        let (want, report) = single(&paths, &Options::default());
        let text = String::from_utf8_lossy(&want).into_owned();
        // 13: erspan2 and erspan_vlan carry one connection in one tunnel (session 100)
        assert_eq!(text.matches("\"encapsulation\":[{").count(), 13);
        for partitions in [1, 4] {
            let (got, got_report) = distributed(&paths, &Options::default(), partitions);
            assert_eq!(String::from_utf8_lossy(&got), text);
            assert_eq!(got_report, report);
        }
    }

    /// A classic pcap record: seconds, microseconds, frame.
    type Record = (u32, u32, Vec<u8>);

    /// A classic pcap's header and records.
    fn frames(path: &str) -> (Vec<u8>, Vec<Record>) {
        let raw = std::fs::read(path).unwrap();
        let mut records = Vec::new();
        let mut at = 24;
        while at + 16 <= raw.len() {
            let word = |k: usize| u32::from_le_bytes(raw[at + k..at + k + 4].try_into().unwrap());
            let caplen = word(8) as usize;
            records.push((word(0), word(4), raw[at + 16..at + 16 + caplen].to_vec()));
            at += 16 + caplen;
        }
        (raw[..24].to_vec(), records)
    }

    fn write_pcap(path: &Path, header: &[u8], records: &[Record]) -> String {
        let mut out = header.to_vec();
        for (sec, usec, frame) in records {
            for v in [*sec, *usec, frame.len() as u32, frame.len() as u32] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(frame);
        }
        std::fs::write(path, out).unwrap();
        path.to_string_lossy().into_owned()
    }

    /// Every frame's outer UDP source port moved by `by` (Ethernet, IPv4 without options,
    /// then UDP: the port is at 34).
    fn move_outer_port(records: &mut [Record], by: u16) {
        for (_, _, frame) in records {
            let port = u16::from_be_bytes([frame[34], frame[35]]).wrapping_add(by);
            frame[34..36].copy_from_slice(&port.to_be_bytes());
        }
    }

    #[test]
    fn a_tunnel_takes_the_path_of_the_frame_the_single_run_meets_first() {
        // The registered path is its first frame's, outer source port and direction
        // included (the record shows it): the reduce must meet the paths as the merge does
        let dir = tempfile::tempdir().unwrap();
        let (header, records) = frames(&capture("crafted/ref_vxlan.pcap"));
        // a: an hour later; b: earlier, other outer ports, without its SYN (the server's
        // SYN-ACK registers the path, the other way round)
        let mut later = records.clone();
        later.iter_mut().for_each(|r| r.0 += 3600);
        let a = write_pcap(&dir.path().join("a.pcap"), &header, &later);
        let mut other = records[1..].to_vec();
        move_outer_port(&mut other, 7);
        let b = write_pcap(&dir.path().join("b.pcap"), &header, &other);
        // c: its SYN-ACK (other ports) before its SYN in the file: time steps back, so a
        // merge meets the SYN first, a run over c alone the SYN-ACK
        let mut swapped = records.clone();
        swapped.swap(0, 1);
        move_outer_port(&mut swapped[..1], 100);
        let c = write_pcap(&dir.path().join("c.pcap"), &header, &swapped);
        let runs: [(&[&String], &str); 5] = [
            (&[&a, &b], "\"dport\":51008"),
            (&[&b, &a], "\"dport\":51008"),
            (&[&c], "\"dport\":51101"),
            (&[&c, &a], "\"sport\":51000"),
            (&[&a, &c], "\"sport\":51000"),
        ];
        for (files, expected) in runs {
            let paths: Vec<String> = files.iter().map(|p| p.to_string()).collect();
            let (want, _) = single(&paths, &Options::default());
            let want = String::from_utf8_lossy(&want).into_owned();
            let first = want.lines().next().unwrap_or("");
            assert!(first.contains(expected), "{files:?}: {first}");
            for partitions in [1, 3] {
                let (got, _) = distributed(&paths, &Options::default(), partitions);
                assert_eq!(String::from_utf8_lossy(&got), want, "{files:?}");
            }
        }
    }

    #[test]
    fn time_steps_are_the_merges_over_many_reads() {
        // files of many small reads whose timestamps wander back and leap ahead, within a
        // read and across reads and files: the merge replayed from the maps' `times` files
        // must find what `Captures` finds, frame numbers included
        let dir = tempfile::tempdir().unwrap();
        let (header, records) = frames(&capture("transfer/download.pcap"));
        let mut seed = 7u64;
        let mut next = |modulo: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % modulo
        };
        let paths: Vec<String> = (0..4)
            .map(|f| {
                let mut sec = 1_700_000_000u32 + f;
                let mut shifted = records.clone();
                for record in &mut shifted {
                    sec = match next(40) {
                        0 => sec - 2 - next(100) as u32,    // back a few seconds
                        1 => sec + 86_401 + next(5) as u32, // a day and more ahead
                        2 => sec - 86_401,                  // a day back
                        _ => sec + next(2) as u32,
                    };
                    (record.0, record.1) = (sec, next(1_000_000) as u32);
                }
                write_pcap(&dir.path().join(format!("t{f}.pcap")), &header, &shifted)
            })
            .collect();
        let chunk = 4096;
        let mut captures = crate::sources::Captures::from_readers(
            (paths.iter())
                .map(|p| {
                    let mut reader = FileReader::open(p, None).unwrap();
                    reader.chunk = chunk;
                    reader
                })
                .collect(),
        );
        let mut stats = SourceStats::default();
        while captures.next_batch(&mut stats).unwrap().is_some() {}
        let want = stats.clock;
        assert!(
            want.backwards.count > 10 && want.jumps.count > 10,
            "{want:?}"
        );
        let scratch = tempfile::tempdir().unwrap();
        let keys: Vec<String> = (0..paths.len()).map(|i| format!("f{i}")).collect();
        let options = Options::default();
        let manifests: Vec<FileManifest> = (paths.iter().zip(&keys))
            .map(|(p, k)| map_file(p, p, k, &options, 2, chunk, scratch.path(), None).unwrap())
            .collect();
        assert!(manifests.iter().all(|m| m.batches.len() > 5));
        assert_eq!(time_steps(scratch.path(), &keys, &manifests), Ok(want));
        // times that are not the manifest's: an error, not other warnings
        let mut foreign = manifests.clone();
        foreign[1].batches[2].0 += 1;
        let err = time_steps(scratch.path(), &keys, &foreign).unwrap_err();
        assert!(
            err.ends_with("f1.times: frame times unlike its manifest's"),
            "{err}"
        );
        // one file alone: its map's own check, in its order
        let mut alone = FileReader::open(&paths[0], None).unwrap();
        alone.chunk = chunk;
        let mut captures = crate::sources::Captures::from_readers(vec![alone]);
        let mut stats = SourceStats::default();
        while captures.next_batch(&mut stats).unwrap().is_some() {}
        let one = &manifests[..1];
        assert_eq!(time_steps(scratch.path(), &keys[..1], one), Ok(stats.clock));
        assert_ne!(stats.clock, want);
    }

    #[test]
    fn rotated_files_stitch_connections_cut_between_them() {
        let dir = tempfile::tempdir().unwrap();
        let whole = capture("transfer/download.pcap");
        let parts = split(&whole, 37, dir.path());
        assert!(parts.len() > 3);
        let options = Options::default();
        let (whole_records, _) = single(std::slice::from_ref(&whole), &options);
        let merged = single(&parts, &options);
        // the single run over the rotation writes the records of the whole file
        assert_eq!(merged.0, whole_records);
        for partitions in [1, 5] {
            let got = distributed(&parts, &options, partitions);
            assert_same_run(&got, &merged, &format!("{partitions} partitions"));
        }
    }

    /// `records` with every frame's client address (`from`, IPv4 over Ethernet, either
    /// direction) set to `to` and `seconds` added to its time.
    fn moved(records: &[Record], from: [u8; 4], to: [u8; 4], seconds: u32) -> Vec<Record> {
        let mut out = records.to_vec();
        for (sec, _, frame) in &mut out {
            *sec += seconds;
            for at in [26, 30] {
                if frame.get(at..at + 4) == Some(&from[..]) {
                    frame[at..at + 4].copy_from_slice(&to);
                    // the IP and TCP checksums follow (RFC 1624, eqn. 3)
                    for sum_at in [24, 50] {
                        let mut sum =
                            u32::from(!u16::from_be_bytes([frame[sum_at], frame[sum_at + 1]]));
                        for k in [0, 2] {
                            sum += u32::from(!u16::from_be_bytes([from[k], from[k + 1]]));
                            sum += u32::from(u16::from_be_bytes([to[k], to[k + 1]]));
                        }
                        while sum > 0xFFFF {
                            sum = (sum & 0xFFFF) + (sum >> 16);
                        }
                        frame[sum_at..sum_at + 2].copy_from_slice(&(!(sum as u16)).to_be_bytes());
                    }
                }
            }
        }
        out
    }

    /// A capture of about 13 MB and 50,160 frames: 2,200 copies of port_reuse.pcap (small
    /// frames: its first 8 MiB chunk holds more than a read batch's 32,768 frames), then
    /// 40 of download.pcap (two more chunks), each copy its own client and a second
    /// later; a step back of 5 s and a jump of two days among them.
    fn large_capture(dir: &Path) -> (Vec<u8>, Vec<Record>) {
        let (header, small) = frames(&capture("crafted/port_reuse.pcap"));
        let (_, large) = frames(&capture("transfer/download.pcap"));
        let mut records = Vec::new();
        for i in 0..2200u32 {
            let to = [10, 1 + (i >> 8) as u8, i as u8, 1];
            records.extend(moved(&small, [10, 0, 0, 1], to, i));
        }
        records[30_000].0 -= 5;
        for i in 0..40u32 {
            let jump = if i >= 20 { 2 * 86_400 } else { 0 };
            let to = [10, 200, i as u8, 1];
            records.extend(moved(&large, [10, 77, 0, 1], to, 2200 + i + jump));
        }
        let path = dir.join("large.pcap");
        write_pcap(&path, &header, &records);
        (std::fs::read(path).unwrap(), records)
    }

    /// The warnings of a source report.
    fn warnings_of(report: &Value) -> Vec<String> {
        let Value::Map(entries) = report else {
            return Vec::new();
        };
        let warnings = entries.iter().find(|(k, _)| k == "warnings");
        let Some((_, Value::List(list))) = warnings else {
            return Vec::new();
        };
        (list.iter())
            .filter_map(|v| match v {
                Value::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_large_file_mapped_in_parts_writes_what_the_single_run_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, _) = large_capture(dir.path());
        let path = dir.path().join("large.pcap").to_string_lossy().into_owned();
        let chunk = crate::sources::merge_chunk(1);
        // parts inside one read batch, parts across batches and chunks
        let starts = scalechunks::plan(&path, chunk, 1_000_000);
        assert_eq!(starts.len(), 12);
        assert!(starts.iter().any(|s| s.batch_frames > 0));
        assert!(starts.iter().any(|s| s.reads_before > 1));
        let paths = vec![path.clone()];
        let options = Options::default();
        let want = single(&paths, &options);
        assert_eq!(
            String::from_utf8_lossy(&want.0).lines().count(),
            2200 * 2 + 40
        );
        let warnings = warnings_of(&want.1);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("time_backwards: "), "{warnings:?}");
        assert!(warnings[1].starts_with("time_jump: "), "{warnings:?}");
        for (part_bytes, partitions) in
            [(1_000_000, 3), (4_000_000, 1), (bytes.len() as u64 / 2, 4)]
        {
            let got = distributed_in_parts(&paths, &options, partitions, part_bytes);
            assert_same_run(&got, &want, &format!("parts of {part_bytes} bytes"));
        }
        // merged with another file: the split batches merge again in the time replay
        let paths = vec![path, capture("transfer/download.pcap")];
        let got = distributed_in_parts(&paths, &options, 3, 1_500_000);
        assert_same_run(&got, &single(&paths, &options), "merged");
    }

    #[test]
    fn a_damaged_large_file_mapped_in_parts_warns_as_the_single_run() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, records) = large_capture(dir.path());
        // garbage in the middle: records that parse (random lengths below the limit),
        // then a header whose length is impossible; and the file cut inside a record
        let at = 24
            + records[..50_000]
                .iter()
                .map(|r| 16 + r.2.len())
                .sum::<usize>();
        let mut damaged = bytes[..at].to_vec();
        for k in 0..200u32 {
            let len = (k * 7919) % 1400;
            for v in [1_800_000_000 + k, 0, len, len] {
                damaged.extend_from_slice(&v.to_le_bytes());
            }
            damaged.extend((0..len).map(|i| (i * 31 + k) as u8));
        }
        let cut = bytes.len() - 700;
        let middle = damaged.clone();
        damaged.extend_from_slice(&bytes[at..cut]);
        let truncated = dir.path().join("truncated.pcap");
        std::fs::write(&truncated, &damaged).unwrap();
        let mut broken = middle;
        broken.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]);
        broken.extend_from_slice(&bytes[at..]);
        let corrupt = dir.path().join("corrupt.pcap");
        std::fs::write(&corrupt, &broken).unwrap();
        let options = Options::default();
        for (file, kind) in [(truncated, "truncated_record"), (corrupt, "corrupt_record")] {
            let paths = vec![file.to_string_lossy().into_owned()];
            let want = single(&paths, &options);
            let warnings = warnings_of(&want.1);
            assert!(warnings.iter().any(|w| w.starts_with(kind)), "{warnings:?}");
            let got = distributed_in_parts(&paths, &options, 3, 900_000);
            assert_same_run(&got, &want, kind);
        }
    }

    #[test]
    fn tunnelled_captures_mapped_in_parts_keep_their_paths() {
        // parts of a few hundred bytes: every path is met in several parts
        for name in TUNNELLED {
            let paths = vec![capture(&format!("crafted/ref_{name}.pcap"))];
            let chunk = crate::sources::merge_chunk(1);
            assert!(
                scalechunks::plan(&paths[0], chunk, 300).len() >= 3,
                "{name}"
            );
            let want = single(&paths, &Options::default());
            let got = distributed_in_parts(&paths, &Options::default(), 2, 300);
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn the_checksum_ledger_is_the_single_runs() {
        // large_capture with a bad TCP checksum in every 97th frame (Ethernet, IPv4 without
        // options: the checksum is at 50), alone, in parts, and merged with another file
        let dir = tempfile::tempdir().unwrap();
        let (bytes, records) = large_capture(dir.path());
        let header = &bytes[..24];
        let mut damaged = records.clone();
        for (_, _, frame) in damaged.iter_mut().step_by(97) {
            if frame.len() > 51 && frame[23] == 6 {
                frame[50] ^= 0x5A;
            }
        }
        let path = write_pcap(&dir.path().join("bad.pcap"), header, &damaged);
        let options = Options {
            zeek: true,
            verify_checksums: true,
            ..Options::default()
        };
        let paths = vec![path.clone()];
        let (want, report) = single(&paths, &options);
        let text = String::from_utf8_lossy(&want).into_owned();
        assert!(format!("{report:?}").contains("bad_checksum"), "{report:?}");
        // the ledger's letters (C: the originator's bad checksum, c: the responder's)
        let lettered = (text.split("\"history\":\"").skip(1))
            .filter(|h| h.split('"').next().is_some_and(|h| h.contains(['C', 'c'])))
            .count();
        assert!(lettered > 100, "{lettered}");
        let want = (want, report);
        assert_same_run(&distributed(&paths, &options, 3), &want, "whole");
        let got = distributed_in_parts(&paths, &options, 3, 1_000_000);
        assert_same_run(&got, &want, "in parts");
        let paths = vec![path, capture("transfer/download.pcap")];
        let got = distributed_in_parts(&paths, &options, 2, 1_500_000);
        assert_same_run(&got, &single(&paths, &options), "merged");
    }
}
