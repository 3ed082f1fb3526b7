//! The fuzz targets' checks, in the library so that `cargo test` replays every crasher kept
//! in fuzz/regressions/<target>/ (fuzz/fuzz_targets/*.rs only call these). Each takes
//! arbitrary bytes; a failed assertion or a panic is a bug.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::decode::{decode_tunnels, Segment, Tunnels, SUPPORTED_LINKTYPES};
use crate::engine::{Engine, Options, RunError};
use crate::sources::{frames_of_bytes, Captures, FileReader, Frame, FrameBatch, SourceStats};
use crate::writers::{write_jsonl, CsvWriter, Summary};

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
        .filter(|(k, _)| k.as_str() != "snaplen_cut")
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
    let mut engine = Engine::new(vec!["fuzz".into()], options);
    let mut out = Vec::new();
    let mut csv = CsvWriter::new();
    let mut summary = Summary::new();
    let result = engine.run_on(captures, |record| {
        write_jsonl(&mut out, &record);
        csv.write(&record, &mut out);
        summary.add(&record);
        out.clear();
        Ok(())
    });
    if let Err(RunError::Panic { at, message }) = result {
        panic!("the engine panicked at {at}: {message}");
    }
    let _ = summary.as_dict();
    let _ = engine.source_report();
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every input the fuzzers ever found a bug with stays fixed.
    #[test]
    fn regressions_replay() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
        type Check = fn(&[u8]);
        let targets: [(&str, Check); 3] = [
            ("readers", super::readers),
            ("decode", super::decode),
            ("engine", super::engine),
        ];
        let mut replayed = 0;
        for (target, check) in targets {
            let Ok(entries) = std::fs::read_dir(root.join(target)) else {
                continue;
            };
            for entry in entries.flatten() {
                let data = std::fs::read(entry.path()).expect("a regression input");
                check(&data);
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
