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
    /// Timestamps that went back or leapt ahead (`clock`).
    pub clock: super::clock::ClockSteps,
}

impl SourceStats {
    pub fn skip(&mut self, reason: &str, n: u64) {
        if n > 0 {
            *self.skipped.entry(reason.to_string()).or_insert(0) += n;
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
