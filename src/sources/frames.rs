//! Frame batches: many link-layer frames sharing one read chunk, as every reader yields them.

use std::collections::BTreeMap;
use std::sync::Arc;

/// One captured frame: where its bytes are in its batch's buffer and what the capture
/// header said about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Frame {
    /// Capture timestamp, nanoseconds since the epoch.
    pub ts_ns: i64,
    /// Start of the frame in `FrameBatch::data`.
    pub offset: usize,
    /// Bytes of the frame present in the capture.
    pub caplen: u32,
    /// Length of the frame on the wire (larger than caplen when snaplen cut it).
    pub wirelen: u32,
    /// Link-layer header type (LINKTYPE_* number).
    pub linktype: u32,
}

/// Frames in capture order over one shared buffer (a read chunk, or the concatenation of
/// several files' chunks in a merge). A batch with no frames is never yielded.
#[derive(Clone, Debug, Default)]
pub struct FrameBatch {
    pub data: Arc<Vec<u8>>,
    pub frames: Vec<Frame>,
    /// Where the frames are in their files (to name a damaged one).
    pub origin: Origin,
}

/// A frame as Wireshark and tshark number it: its file (the index in
/// `SourceStats::files`) and its `frame.number` there (1-based, per file). Ordered by file
/// (in the order read), then frame: the first of a kind of damage is the smallest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FramePlace {
    pub file: u32,
    pub frame: u64,
}

impl FramePlace {
    /// The `file` of a frame numbered in the run's one stream of frames rather than in a
    /// file: a live capture's (every interface, in the order analyzed, as `--write` saves
    /// them).
    pub const CAPTURE: u32 = u32::MAX;
}

/// Where a batch's frames come from. Batch-level, not per frame: a damaged frame is rare,
/// and only then is its place worked out (`FrameBatch::place`).
#[derive(Clone, Debug, Default)]
pub enum Origin {
    /// Not from a file (a batch built in memory; a live capture's until `Session::number`
    /// numbers it): no place.
    #[default]
    Unknown,
    /// One file's frames in its order: the file and the frames of it before the batch.
    File { file: u32, before: u64 },
    /// A merge of several files' batches, sorted by time: per part, in buffer order.
    Merged(Arc<Vec<MergedPart>>),
}

/// One file's batch in a merged buffer: its bytes start at `start`, and `frames` are all
/// the frames of the batch as read (file order, increasing offsets, relative to `start`),
/// of which the merge took some (a frame's rank among them is its number in the batch).
#[derive(Clone, Debug)]
pub struct MergedPart {
    pub start: usize,
    pub file: u32,
    pub before: u64,
    pub frames: Arc<Vec<Frame>>,
}

impl FrameBatch {
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The captured bytes of frame `i`.
    pub fn bytes(&self, i: usize) -> &[u8] {
        let f = &self.frames[i];
        &self.data[f.offset..f.offset + f.caplen as usize]
    }

    /// Where frame `i` of the batch is in its file, when the batch came from files.
    pub fn place(&self, i: usize) -> Option<FramePlace> {
        match &self.origin {
            Origin::Unknown => None,
            Origin::File { file, before } => Some(FramePlace {
                file: *file,
                frame: before + i as u64 + 1,
            }),
            Origin::Merged(parts) => {
                let offset = self.frames.get(i)?.offset;
                let part = parts
                    .partition_point(|p| p.start <= offset)
                    .checked_sub(1)?;
                let part = parts.get(part)?;
                let within = offset - part.start;
                let rank = part
                    .frames
                    .binary_search_by_key(&within, |f| f.offset)
                    .ok()?;
                Some(FramePlace {
                    file: part.file,
                    frame: part.before + rank as u64 + 1,
                })
            }
        }
    }

    /// Whether frame `a` comes before frame `b` in the order of `FramePlace` (in a merge,
    /// the order of the batch is by time, not by file).
    pub fn places_before(&self, a: usize, b: usize) -> bool {
        match &self.origin {
            Origin::Merged(_) => self.place(a) < self.place(b),
            _ => a < b,
        }
    }
}

/// What the sources (and decode) read and had to skip: the `source` part of the report.
#[derive(Clone, Debug, Default)]
pub struct SourceStats {
    /// Files opened, in the order given.
    pub files: Vec<String>,
    /// Frames read.
    pub frames: u64,
    /// Skipped frames or records by reason (`not_ip`, `truncated_record`, ...).
    pub skipped: BTreeMap<String, u64>,
    /// Warnings, each "kind: message", one per kind.
    pub warnings: Vec<String>,
    /// The first frame skipped for each reason decode counts, where known (`skip_at`).
    pub first: BTreeMap<String, FramePlace>,
    /// Timestamps that went back or leapt ahead (`clock`).
    pub clock: super::clock::ClockSteps,
}

impl SourceStats {
    pub fn skip(&mut self, reason: &str, n: u64) {
        if n > 0 {
            *self.skipped.entry(reason.to_string()).or_insert(0) += n;
        }
    }

    /// `skip`, with where the batch's first such frame is: the run keeps the smallest
    /// place of each reason. Called once per batch and reason, never per frame.
    pub fn skip_at(&mut self, reason: &str, n: u64, place: Option<FramePlace>) {
        if n == 0 {
            return;
        }
        self.skip(reason, n);
        if let Some(place) = place {
            match self.first.get_mut(reason) {
                Some(first) => *first = (*first).min(place),
                None => {
                    self.first.insert(reason.to_string(), place);
                }
            }
        }
    }

    pub fn skipped(&self, reason: &str) -> u64 {
        self.skipped.get(reason).copied().unwrap_or(0)
    }

    /// Record a warning; each kind of damage is warned about once, not once per packet.
    pub fn warn_once(&mut self, kind: &str, message: &str) {
        let prefix = format!("{kind}:");
        if !self.warnings.iter().any(|w| w.starts_with(&prefix)) {
            self.warnings.push(format!("{kind}: {message}"));
        }
    }
}
