//! Capture sources: the only stage that does I/O. Files are opened by content (pcap,
//! pcapng, either gzip-compressed), read a chunk at a time, and merged in time order when
//! there are several. (Owned by the sources work.)

pub mod chunks;
pub mod files;
pub mod frames;
pub mod pcap;
pub mod pcapng;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

pub use files::FileReader;
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
///
/// A single file keeps its own order even where its timestamps step backwards: that order is
/// what the capture point saw. Several files are merged by a streaming k-way merge:
/// everything up to the smallest "last timestamp read" among the files (the watermark) is
/// safe to hand on, sorted stably by time, exactly as Python's `read_captures` batches it.
pub struct Captures {
    readers: Vec<FileReader>,
    /// Each file's frames read but not handed on yet.
    pending: Vec<Option<FrameBatch>>,
    /// Files not finished, in the order given.
    live: Vec<usize>,
    done: bool,
}

impl Captures {
    /// Open every file now (so a missing file fails before anything is written).
    pub fn open(paths: &[String], meter: Option<ReadMeter>) -> Result<Captures, CaptureError> {
        let readers = paths
            .iter()
            .map(|p| FileReader::open(p, meter.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Captures::from_readers(readers))
    }

    fn from_readers(readers: Vec<FileReader>) -> Captures {
        Captures {
            pending: vec![None; readers.len()],
            live: (0..readers.len()).collect(),
            readers,
            done: false,
        }
    }

    /// The next batch in capture order, None when every file is done. After an error
    /// there are no more batches (as after a Python generator raised).
    pub fn next_batch(
        &mut self,
        stats: &mut SourceStats,
    ) -> Result<Option<FrameBatch>, CaptureError> {
        if self.done {
            return Ok(None);
        }
        let next = if self.readers.len() == 1 {
            self.readers[0].next_batch(stats)
        } else {
            self.merge_step(stats)
        };
        if !matches!(next, Ok(Some(_))) {
            self.done = true;
        }
        next
    }

    /// One round of the merge: refill the files whose pending frames ran out, then hand on
    /// every frame up to the watermark.
    fn merge_step(&mut self, stats: &mut SourceStats) -> Result<Option<FrameBatch>, CaptureError> {
        for i in self.live.clone() {
            if self.pending[i].as_ref().map_or(true, FrameBatch::is_empty) {
                match self.readers[i].next_batch(stats)? {
                    Some(batch) => self.pending[i] = Some(batch),
                    None => {
                        self.live.retain(|&j| j != i);
                        self.pending[i] = None;
                    }
                }
            }
        }
        let held: Vec<usize> = (0..self.pending.len())
            .filter(|&i| self.pending[i].as_ref().is_some_and(|b| !b.is_empty()))
            .collect();
        if held.is_empty() {
            return Ok(None);
        }
        // frames up to the watermark cannot be preceded by anything still unread
        let watermark = held
            .iter()
            .filter(|i| self.live.contains(i))
            .filter_map(|&i| self.pending[i].as_ref())
            .filter_map(|b| b.frames.iter().map(|f| f.ts_ns).max())
            .min();
        let mut parts = Vec::with_capacity(held.len());
        for &i in &held {
            let Some(batch) = self.pending[i].take() else {
                continue;
            };
            let (take, keep): (Vec<Frame>, Vec<Frame>) = batch
                .frames
                .iter()
                .partition(|f| watermark.map_or(true, |w| f.ts_ns <= w));
            if !take.is_empty() {
                parts.push(FrameBatch {
                    data: Arc::clone(&batch.data),
                    frames: take,
                });
            }
            self.pending[i] = Some(FrameBatch {
                data: batch.data,
                frames: keep,
            });
        }
        let mut merged = concat(parts);
        merged.frames.sort_by_key(|f| f.ts_ns); // stable, as numpy's kind="stable"
        Ok(Some(merged))
    }
}

/// Join batches into one, their buffers back to back (as Python's `FrameBatch.concat`).
fn concat(mut parts: Vec<FrameBatch>) -> FrameBatch {
    if parts.len() == 1 {
        return parts.pop().unwrap_or_default();
    }
    let size = parts.iter().map(|p| p.data.len()).sum();
    let mut data = Vec::with_capacity(size);
    let mut frames = Vec::with_capacity(parts.iter().map(FrameBatch::len).sum());
    for part in &parts {
        let shift = data.len();
        data.extend_from_slice(&part.data);
        frames.extend(part.frames.iter().map(|f| Frame {
            offset: f.offset + shift,
            ..*f
        }));
    }
    FrameBatch {
        data: Arc::new(data),
        frames,
    }
}

/// Every batch of a capture held in memory (named "fuzz" in warnings), with the stats and
/// the error that stopped it, if any: the fuzz target's entry.
pub fn frames_of_bytes(bytes: &[u8]) -> (Vec<FrameBatch>, SourceStats, Option<CaptureError>) {
    let mut captures = Captures::from_readers(vec![FileReader::from_bytes(bytes.to_vec(), "fuzz")]);
    let mut stats = SourceStats::default();
    let mut batches = Vec::new();
    loop {
        match captures.next_batch(&mut stats) {
            Ok(Some(batch)) => batches.push(batch),
            Ok(None) => return (batches, stats, None),
            Err(e) => return (batches, stats, Some(e)),
        }
    }
}
