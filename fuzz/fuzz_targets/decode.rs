//! Decode arbitrary bytes as frames of every link type: nothing may panic, and what follows
//! a frame in its buffer must never change what it decodes to.
//!
//! Input: byte 0 picks the link type, byte 1 how much shorter than the wire the frame was
//! captured, byte 2 the frame length, the rest is the frame (and the following frames).
#![no_main]

use std::collections::BTreeSet;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use tcptrace_native::decode::{decode, Segment, SUPPORTED_LINKTYPES};
use tcptrace_native::sources::{Frame, FrameBatch, SourceStats};

fn run(data: Vec<u8>, frames: Vec<Frame>) -> (Vec<Segment>, SourceStats, BTreeSet<u32>) {
    let batch = FrameBatch {
        data: Arc::new(data),
        frames,
    };
    let mut stats = SourceStats::default();
    let mut unsupported = BTreeSet::new();
    let mut segments = Vec::new();
    decode(&batch, &mut stats, &mut unsupported, &mut segments);
    for s in &segments {
        assert!(s.tcp_off + 20 <= batch.data.len());
        assert!(s.opt_cap + 20 <= s.tcp_hlen);
        assert!(s.payload_cap <= s.payload_len);
    }
    (segments, stats, unsupported)
}

fuzz_target!(|input: &[u8]| {
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
    let (segments, stats, unsupported) = run(rest.to_vec(), frames.clone());

    // Each frame alone at the end of its buffer decodes as within the batch (offsets aside)
    for (i, frame) in frames.iter().enumerate() {
        let bytes = rest[frame.offset..frame.offset + frame.caplen as usize].to_vec();
        let alone = Frame {
            offset: 0,
            ..*frame
        };
        let (single, _, _) = run(bytes, vec![alone]);
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
});
