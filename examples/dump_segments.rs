//! Print every TCP segment `decode` finds in a capture, and its skip counters, one line
//! each, in the format of `benchmarks/compare_decode.py` (which prints the same from the
//! Python decoder and compares).
//!
//! Usage: `cargo run --example dump_segments FILE`, where FILE is a classic pcap, or a
//! frames file the comparison script wrote (any capture Python reads, pcapng or gzip:
//! "TTFRAMES", then per frame: ts_ns i64, caplen u32, wirelen u32, linktype u32, all
//! little-endian, and the frame's bytes).
//!
//! Offsets are printed relative to the frame's start and frames are numbered over the
//! whole file, so the output does not depend on how a reader cuts the file into batches.

use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::sync::Arc;

use tcptrace_native::decode::{decode, Segment};
use tcptrace_native::sources::{Frame, FrameBatch, SourceStats};

const FRAMES_MAGIC: &[u8] = b"TTFRAMES";
// The Python pcap reader's limits (tcptrace/sources/pcap.py): a longer record ends the file
const MAX_RECORD: u32 = 1 << 20;
const MAX_SNAPLEN: u32 = 16 << 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: dump_segments FILE")?;
    let data = std::fs::read(&path)?;
    let frames = if data.starts_with(FRAMES_MAGIC) {
        read_frames_file(&data)
    } else {
        read_pcap(&data).ok_or("not a classic pcap file")?
    };
    let batch = FrameBatch {
        data: Arc::new(data),
        frames,
    };
    let mut stats = SourceStats::default();
    let mut unsupported = BTreeSet::new();
    let mut segments = Vec::new();
    decode(&batch, &mut stats, &mut unsupported, &mut segments);

    let mut out = BufWriter::new(std::io::stdout().lock());
    writeln!(out, "frames {}", batch.frames.len())?;
    for s in &segments {
        write_segment(&mut out, s, batch.frames[s.frame_index as usize].offset)?;
    }
    for (reason, n) in &stats.skipped {
        writeln!(out, "skipped {reason} {n}")?;
    }
    let linktypes: Vec<String> = unsupported.iter().map(u32::to_string).collect();
    writeln!(out, "unsupported {}", linktypes.join(","))?;
    out.flush()?;
    Ok(())
}

fn write_segment(out: &mut impl Write, s: &Segment, frame_start: usize) -> std::io::Result<()> {
    writeln!(
        out,
        "seg {} {} {:032x} {:032x} {} {} {} {} {} {} {} {} {} {} {} {} {}",
        s.frame_index,
        s.ts_ns,
        s.src,
        s.dst,
        s.sport,
        s.dport,
        s.seq,
        s.ack,
        s.flags,
        s.window,
        s.tcp_off - frame_start,
        s.tcp_hlen,
        s.opt_cap,
        s.payload_off - frame_start,
        s.payload_len,
        s.payload_cap,
        s.ip_len,
    )
}

/// The frames of a classic pcap file, read as the Python reader does: up to the first
/// damaged (too long) or incomplete record.
fn read_pcap(data: &[u8]) -> Option<Vec<Frame>> {
    let header = data.get(..24)?;
    let (big_endian, ns_per_unit) = match header[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] => (false, 1000),
        [0xa1, 0xb2, 0xc3, 0xd4] => (true, 1000),
        [0x4d, 0x3c, 0xb2, 0xa1] => (false, 1),
        [0xa1, 0xb2, 0x3c, 0x4d] => (true, 1),
        _ => return None,
    };
    let u32_at = |at: usize| -> Option<u32> {
        let bytes: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        })
    };
    let snaplen = u32_at(16)?;
    let linktype = u32_at(20)? & 0xFFFF;
    let limit = MAX_RECORD.max(snaplen.min(MAX_SNAPLEN));
    let mut frames = Vec::new();
    let mut pos = 24;
    while let (Some(sec), Some(frac), Some(caplen), Some(wirelen)) = (
        u32_at(pos),
        u32_at(pos + 4),
        u32_at(pos + 8),
        u32_at(pos + 12),
    ) {
        let after = pos + 16 + caplen as usize;
        if caplen > limit || after > data.len() {
            break;
        }
        frames.push(Frame {
            ts_ns: i64::from(sec) * 1_000_000_000 + i64::from(frac) * ns_per_unit,
            offset: pos + 16,
            caplen,
            wirelen,
            linktype,
        });
        pos = after;
    }
    Some(frames)
}

/// The frames of a frames file (see the module comment).
fn read_frames_file(data: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut pos = FRAMES_MAGIC.len();
    while let Some(header) = data.get(pos..pos + 20) {
        let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap());
        let caplen = word(8);
        frames.push(Frame {
            ts_ns: i64::from_le_bytes(header[..8].try_into().unwrap()),
            offset: pos + 20,
            caplen,
            wirelen: word(12),
            linktype: word(16),
        });
        pos += 20 + caplen as usize;
    }
    frames
}
