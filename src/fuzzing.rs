//! The fuzz targets' checks, in the library so that `cargo test` replays every crasher kept
//! in fuzz/regressions/<target>/ (fuzz/fuzz_targets/*.rs only call these). Each takes
//! arbitrary bytes; a failed assertion or a panic is a bug.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::decode::{decode_tunnels, Segment, Tunnels, SUPPORTED_LINKTYPES};
use crate::engine::{Engine, Options, RunError};
use crate::resume::{copy_frames, read_header, Resumed};
use crate::sources::{frames_of_bytes, Captures, FileReader, Frame, FrameBatch, SourceStats};
use crate::writers::{write_jsonl, CsvWriter, Summary, Value};

/// Arbitrary bytes as a capture file (opened by content: pcap, pcapng, either
/// gzip-compressed) through the readers. Errors are fine; a panic, an out-of-bounds frame or
/// a frame count that disagrees with the stats is a bug.
pub fn readers(data: &[u8]) {
    let (batches, stats, _error) = frames_of_bytes(data);
    let mut frames = 0u64;
    for batch in &batches {
        assert!(!batch.is_empty(), "an empty batch was yielded");
        for frame in &batch.frames {
            let end = frame.offset.checked_add(frame.caplen as usize);
            assert!(
                end.is_some_and(|end| end <= batch.data.len()),
                "frame outside its buffer"
            );
        }
        frames += batch.len() as u64;
    }
    assert_eq!(frames, stats.frames);
}

/// Decode arbitrary bytes as frames of every link type: nothing may panic, and what follows
/// a frame in its buffer must never change what it decodes to.
///
/// Input: byte 0 picks the link type, byte 1 how much shorter than the wire the frame was
/// captured, byte 2 the frame length, the rest is the frame (and the following frames).
pub fn decode(input: &[u8]) {
    let [pick, short, len, rest @ ..] = input else {
        return;
    };
    // Every supported link type, and one that is not
    let linktype = SUPPORTED_LINKTYPES
        .get(usize::from(*pick) % (SUPPORTED_LINKTYPES.len() + 1))
        .copied()
        .unwrap_or(147);
    // The first frame, then the rest of the input cut into frames of the same link type
    let mut frames = Vec::new();
    let mut at = 0;
    let mut size = usize::from(*len).min(rest.len());
    loop {
        frames.push(Frame {
            ts_ns: frames.len() as i64,
            offset: at,
            caplen: size as u32,
            wirelen: (size + usize::from(*short)) as u32,
            linktype,
        });
        at += size;
        if at >= rest.len() {
            break;
        }
        size = (rest.len() - at).min(usize::from(*len).max(1));
    }
    // Tunnels decapsulated on their default ports; one registry, so that a path has the
    // same number in the batch and alone
    let tunnels = Tunnels::default();
    let (segments, stats, unsupported) = run(rest.to_vec(), frames.clone(), &tunnels);

    // Each frame alone at the end of its buffer decodes as within the batch (offsets aside)
    for (i, frame) in frames.iter().enumerate() {
        let bytes = rest[frame.offset..frame.offset + frame.caplen as usize].to_vec();
        let alone = Frame {
            offset: 0,
            ..*frame
        };
        let (single, _, _) = run(bytes, vec![alone], &tunnels);
        let within: Vec<Segment> = segments
            .iter()
            .filter(|s| s.frame_index as usize == i)
            .map(|s| Segment {
                tcp_off: s.tcp_off - frame.offset,
                payload_off: s.payload_off - frame.offset,
                frame_index: 0,
                ..*s
            })
            .collect();
        assert_eq!(single, within);
    }
    let counted: u64 = stats
        .skipped
        .iter()
        // counted, still analyzed
        .filter(|(k, _)| !matches!(k.as_str(), "snaplen_cut" | "short_frame"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(counted + segments.len() as u64, frames.len() as u64);
    assert_eq!(unsupported.is_empty(), linktype != 147);
}

fn run(
    data: Vec<u8>,
    frames: Vec<Frame>,
    tunnels: &Tunnels,
) -> (Vec<Segment>, SourceStats, BTreeSet<u32>) {
    let batch = FrameBatch {
        data: Arc::new(data),
        frames,
        ..FrameBatch::default()
    };
    let mut stats = SourceStats::default();
    let mut unsupported = BTreeSet::new();
    let mut segments = Vec::new();
    decode_tunnels(
        &batch,
        &mut stats,
        &mut unsupported,
        Some(tunnels),
        &mut segments,
    );
    for s in &segments {
        assert!(s.tcp_off + 20 <= batch.data.len());
        assert!(s.opt_cap + 20 <= s.tcp_hlen);
        assert!(s.payload_cap <= s.payload_len);
    }
    (segments, stats, unsupported)
}

/// Arbitrary bytes as a capture file through the whole engine (readers, decode, flow table,
/// both endpoints' machines, analyzers) and every writer: the engine may report a capture
/// error, never a panic.
pub fn engine(data: &[u8]) {
    let captures = Captures::from_readers(vec![FileReader::from_bytes(data.to_vec(), "fuzz")]);
    let options = Options {
        max_flows: 4,
        linger_s: 0.0,
        ..Options::default()
    };
    run_through_writers(captures, options, None);
}

/// Whether a run's `source` report counts connections left out after a panic in their
/// analysis (caught per connection, so a fuzzer would not see it as a crash).
fn failed_connections(report: &Value) -> i64 {
    match report {
        Value::Map(fields) => fields
            .iter()
            .find(|(k, _)| k == "failed_connections")
            .map_or(0, |(_, v)| if let Value::Int(n) = v { *n } else { 0 }),
        _ => 0,
    }
}

/// The link types `frames` builds its capture with, and where the IP header starts in each.
const FRAME_LINKTYPES: [(u32, usize); 4] = [(1, 14), (101, 0), (113, 16), (276, 20)];

/// The frames of a real capture, mutated: the input is a list of frames rather than a file,
/// so the fuzzer's mutations land in the link, IP and TCP headers and the payloads (HTTP
/// included) of connections the engine follows, not in the file format. The frames are
/// written as a pcap and run through the whole engine as `engine` does; a panic, even one
/// caught for its connection alone, is a bug.
///
/// Input: byte 0 holds the options: bits 0-1 the link type (`FRAME_LINKTYPES`), bit 2
/// `--zeek`, bit 3 `--verify-checksums`, bit 4 "fit the IP length fields to the frame"
/// (so that payload mutations that change a frame's size still decode), bits 5-7 the
/// flow-table cap (1-8). Then frames: a 2-byte big-endian length, a signed time step in
/// milliseconds (clocks may go backwards), the frame bytes.
pub fn frames(input: &[u8]) {
    let Some((file, options)) = frames_capture(input) else {
        return;
    };
    let captures = Captures::from_readers(vec![FileReader::from_bytes(file, "fuzz")]);
    run_through_writers(captures, options, None);
}

/// `frames`' input as a pcap file and the run's options.
fn frames_capture(input: &[u8]) -> Option<(Vec<u8>, Options)> {
    let [options, rest @ ..] = input else {
        return None;
    };
    let (linktype, ip_at) = FRAME_LINKTYPES[usize::from(options & 3)];
    let mut file = Vec::with_capacity(input.len() * 2 + 24);
    for word in [0xA1B2_C3D4u32, 0x0004_0002, 0, 0, 65535, linktype] {
        file.extend_from_slice(&word.to_le_bytes());
    }
    file[4..8].copy_from_slice(&[2, 0, 4, 0]);
    let mut ts_us: i64 = 1_700_000_000_000_000;
    let mut at = rest;
    while let [hi, lo, step, tail @ ..] = at {
        let len = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
        let (frame, after) = tail.split_at(len);
        at = after;
        ts_us += i64::from(*step as i8) * 1000;
        let mut frame = frame.to_vec();
        if options & 0x10 != 0 {
            fit_ip_length(&mut frame, ip_at);
        }
        let (sec, usec) = (ts_us / 1_000_000, ts_us % 1_000_000);
        for word in [sec as u32, usec as u32, len as u32, len as u32] {
            file.extend_from_slice(&word.to_le_bytes());
        }
        file.extend_from_slice(&frame);
    }
    let options = Options {
        max_flows: usize::from(options >> 5) + 1,
        linger_s: 0.0,
        zeek: options & 0x04 != 0,
        verify_checksums: options & 0x08 != 0,
        ..Options::default()
    };
    Some((file, options))
}

/// `frames`' input through the single run and through `--jobs`: the same jsonl and the
/// same source report, the promise of `--jobs` (docs/performance.md). A difference, or a
/// panic in either run, is a bug. The options byte's cap bits mean other things here (the
/// shards apply the cap apart): bits 5-6 give 2 to 5 shards, bit 7 `--linger 0.5` (the
/// default; `frames` runs with 0), so that ended connections wait for sweeps that every
/// shard must make when the single run makes them.
pub fn jobs(input: &[u8]) {
    let Some((file, options)) = frames_capture(input) else {
        return;
    };
    let bits = input.first().copied().unwrap_or(0) >> 5;
    let shards = usize::from(bits & 3) + 2;
    let options = Options {
        max_flows: Options::default().max_flows,
        linger_s: if bits & 4 != 0 { 0.5 } else { 0.0 },
        ..options
    };
    let paths = vec!["fuzz".to_string()];
    let open =
        |file: &[u8]| Captures::from_readers(vec![FileReader::from_bytes(file.to_vec(), "fuzz")]);
    let mut engine = Engine::new(paths.clone(), options.clone());
    let mut single = Vec::new();
    let result = engine.run_on(open(&file), |record| {
        write_jsonl(&mut single, &record);
        Ok(())
    });
    if let Err(RunError::Panic { at, message }) = result {
        panic!("the single run panicked at {at}: {message}");
    }
    // a run of its own: a cloned `Options` shares the tunnel registry
    let mut sharded_options = options.clone();
    sharded_options.tunnels.registry = Default::default();
    let progress = Arc::new(crate::engine::Progress::default());
    let mut sharded = Vec::new();
    let (result, report) = crate::parallel::run_on(
        open(&file),
        &paths,
        &sharded_options,
        shards,
        crate::parallel::Encoding::Jsonl,
        &progress,
        |out| {
            out.write_to(&mut sharded);
            Ok(())
        },
    );
    if let Err(RunError::Panic { at, message }) = result {
        panic!("--jobs {shards} panicked at {at}: {message}");
    }
    assert_eq!(
        String::from_utf8_lossy(&sharded),
        String::from_utf8_lossy(&single),
        "--jobs {shards} wrote other records than the single run"
    );
    assert_eq!(
        report.source_report,
        Some(engine.source_report()),
        "--jobs {shards} reported another source"
    );
}

/// Set the IPv4 total length or IPv6 payload length at `ip_at` to what the frame holds.
fn fit_ip_length(frame: &mut [u8], ip_at: usize) {
    let Some(ip) = frame.get_mut(ip_at..) else {
        return;
    };
    let len = ip.len();
    match ip.first().map(|b| b >> 4) {
        Some(4) if len >= 20 => {
            let total = len.min(0xFFFF) as u16;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
        }
        Some(6) if len >= 40 => {
            let payload = (len - 40).min(0xFFFF) as u16;
            ip[4..6].copy_from_slice(&payload.to_be_bytes());
        }
        _ => {}
    }
}

/// Arbitrary bytes as a `--resume` STATE: read as a run reads it (its lengths and ids
/// checked), and, when accepted, its frames run through the engine with the ids it hands on
/// (the held connections' and the capped ones' continuations, by 4-tuple), the run holding
/// its open connections at the end as a resumed run does. A refusal is fine; a panic, or
/// an id a run would never give, is a bug.
pub fn state(data: &[u8]) {
    let name = Path::new("STATE");
    let mut input = data;
    let Ok(header) = read_header(&mut input, data.len() as u64, name) else {
        return;
    };
    let mut frames = Vec::new();
    if copy_frames(&mut input, &mut frames, header.pcap_length).is_err() {
        return;
    }
    let next_id = header.next_id;
    let resumed = Resumed {
        next_id,
        ids: header.ids,
        capped: header.capped,
        frames: PathBuf::from("STATE.frames.pcap"),
    };
    let captures = Captures::from_readers(vec![FileReader::from_bytes(frames, "STATE")]);
    let options = Options {
        max_flows: 4,
        linger_s: 0.0,
        ..Options::default()
    };
    let (engine, ids) = run_through_writers(captures, options, Some(resumed));
    assert!(engine.next_id() >= next_id);
    assert!(
        ids.iter().all(|&id| id < engine.next_id()),
        "an id past the next"
    );
}

/// `captures` through the engine and every writer (`resumed`: as a `--resume` run, holding
/// its open connections at the end): a panic anywhere (the run's, or one a connection's
/// failure was caught for) fails the fuzz case. The engine after the run, and the ids of
/// the records written.
fn run_through_writers(
    captures: Captures,
    options: Options,
    resumed: Option<Resumed>,
) -> (Engine, Vec<u64>) {
    let mut engine = Engine::new(vec!["fuzz".into()], options);
    if resumed.is_some() {
        engine.resume_from(resumed, true);
    }
    let mut ids = Vec::new();
    let mut out = Vec::new();
    let mut csv = CsvWriter::new();
    let mut summary = Summary::new();
    let result = engine.run_on(captures, |record| {
        write_jsonl(&mut out, &record);
        csv.write(&record, &mut out);
        summary.add(&record);
        out.clear();
        ids.push(record.id);
        Ok(())
    });
    if let Err(RunError::Panic { at, message }) = result {
        panic!("the engine panicked at {at}: {message}");
    }
    let _ = summary.as_dict();
    let failed = failed_connections(&engine.source_report());
    assert_eq!(failed, 0, "a connection's analysis panicked");
    (engine, ids)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The `state` seeds are STATE files real runs wrote (held connections, tunnels, a
    /// bound of 0 that closed every connection): each is accepted, so the replay reaches
    /// the engine and not only the header checks.
    #[test]
    fn the_state_seeds_are_read_as_a_run_reads_them() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/state");
        let (mut held, mut capped) = (0, 0);
        for entry in std::fs::read_dir(&root).expect("the state seeds").flatten() {
            let data = std::fs::read(entry.path()).expect("a seed");
            let header = super::read_header(&mut data.as_slice(), data.len() as u64, &root)
                .unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
            held += header.ids.len();
            capped += header.capped.len();
        }
        assert!(held > 0 && capped > 0, "{held} held, {capped} capped");
    }

    /// Every input the fuzzers ever found a bug with stays fixed.
    #[test]
    fn regressions_replay() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
        type Check = fn(&[u8]);
        // `jobs` takes `frames`' input: the frames seeds (real captures) check it too, also
        // with --linger 0.5 (the seeds' cap bits leave bit 7 off)
        let lingering: Check = |data| {
            let mut data = data.to_vec();
            if let Some(options) = data.first_mut() {
                *options |= 0x80;
            }
            super::jobs(&data);
        };
        let targets: [(&str, &[Check]); 6] = [
            ("readers", &[super::readers]),
            ("state", &[super::state]),
            ("decode", &[super::decode]),
            ("engine", &[super::engine]),
            ("frames", &[super::frames, super::jobs, lingering]),
            ("jobs", &[super::jobs]),
        ];
        let mut replayed = 0;
        for (target, checks) in targets {
            let Ok(entries) = std::fs::read_dir(root.join(target)) else {
                continue;
            };
            for entry in entries.flatten() {
                let data = std::fs::read(entry.path()).expect("a regression input");
                for check in checks {
                    check(&data);
                }
                replayed += 1;
            }
        }
        assert!(
            replayed > 0,
            "no regression inputs under {}",
            root.display()
        );
    }
}
