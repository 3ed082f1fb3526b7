//! Capture sources: the only stage that does I/O. Files are opened by content (pcap,
//! pcapng, either gzip-compressed), read a chunk at a time, and merged in time order when
//! there are several. (Owned by the sources work.)

pub mod frames;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

pub use frames::{Frame, FrameBatch, SourceStats};

/// A capture cannot be opened or is not a capture at all: one line for the user, exit 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureError(pub String);

impl std::fmt::Display for CaptureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CaptureError {}

/// Bytes read so far from the capture files (compressed bytes for gzip), for a progress bar
/// polled from another thread.
pub type ReadMeter = Arc<AtomicU64>;

/// Frame batches of every file given, merged by timestamp when there are several.
pub struct Captures {}

impl Captures {
    /// Open every file now (so a missing file fails before anything is written).
    pub fn open(paths: &[String], meter: Option<ReadMeter>) -> Result<Captures, CaptureError> {
        let _ = (paths, meter);
        todo!("sources")
    }

    /// The next batch in capture order, None when every file is done.
    pub fn next_batch(
        &mut self,
        stats: &mut SourceStats,
    ) -> Result<Option<FrameBatch>, CaptureError> {
        let _ = stats;
        todo!("sources")
    }
}
