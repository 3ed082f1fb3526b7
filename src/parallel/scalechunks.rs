//! A large plain pcap file mapped a part at a time (`--executor dask`, docs/scale-out.md).
//!
//! A pcap file has no marks a reader could resynchronise on: a record is found only by
//! walking the records before it (a damaged header, or garbage that parses as records,
//! changes every boundary after it). So `plan` walks the file once with the single run's
//! own reader (`PcapReader`, the chunks of the run's size, nothing decoded) and notes,
//! about every `part_bytes`, the state that reader is in at a record: its byte, the chunk
//! it is in (so that a part's reader reads the same chunks from there on, and its batches
//! end where the single run's do), the frames of its batch before it, the frames and reads
//! before it, the timestamp of the frame before it. Each part is then mapped alone
//! (`open_part`: a reader resumed in that state, reading up to the next part's first
//! byte), and the parts' manifests are joined (`scaleout::join`). A part that starts in
//! the middle of a read batch ends its first batch where the single run's ends; the part
//! before it ends with that batch's first frames, and the join makes them one batch again.
//!
//! pcapng is mapped whole: its records are blocks whose meaning depends on the interface
//! and section blocks before them (link type, time resolution, byte order), state a part
//! would have to carry. A compressed file is a stream: it cannot be resumed in the middle.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use crate::sources::chunks::{read_up_to, ChunkReader, Input};
use crate::sources::pcap::{is_pcap_magic, PcapReader};
use crate::sources::SourceStats;

/// Where a part of a file starts: the single run's reader's state at its first record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartStart {
    /// The first byte of the part's first record.
    pub position: u64,
    /// Bytes from there to the end of the single run's chunk it is in.
    pub chunk_left: u64,
    /// Frames of the single run's read batch before this record (0: a batch starts here).
    pub batch_frames: u64,
    /// Frames of the file before the part.
    pub frames_before: u64,
    /// The single run's reads of the file before the part's first batch (the number of its
    /// first read batch).
    pub reads_before: u32,
    /// The timestamp of the frame before the part (its time sanity check goes on from it).
    pub previous_ts: Option<i64>,
}

/// The starts of the parts after the first (empty: the file is mapped whole) of the file
/// at `open`, read in chunks of `chunk` bytes as the single run reads it, cut about every
/// `part_bytes`. Only a plain pcap file larger than `part_bytes` is cut; any other, or a
/// file that cannot be read, is mapped whole (its map reports the single run's error).
pub fn plan(open: &str, chunk: usize, part_bytes: u64) -> Vec<PartStart> {
    let part_bytes = part_bytes.max(1);
    let Ok(mut file) = File::open(crate::names::path_of(open)) else {
        return Vec::new();
    };
    let size = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    if size.is_none_or(|size| size <= part_bytes) {
        return Vec::new();
    }
    let mut magic = Vec::with_capacity(4);
    if read_up_to(&mut file, 4, &mut magic).is_err() || !is_pcap_magic(&magic) {
        return Vec::new();
    }
    let Ok(mut reader) = reader_of(file, open, chunk, u64::MAX) else {
        return Vec::new();
    };
    let mut stats = SourceStats::default();
    let mut starts = Vec::new();
    let (mut frames, mut reads, mut previous) = (0u64, 0u32, None);
    let mut next_cut = part_bytes;
    while let Some(batch) = reader.next_batch(&mut stats) {
        let (chunk_start, chunk_size) = reader.chunk_now();
        for (i, f) in batch.frames.iter().enumerate() {
            // a frame's record header is the 16 bytes before it
            let at = chunk_start + (f.offset as u64).saturating_sub(16);
            if at >= next_cut {
                starts.push(PartStart {
                    position: at,
                    chunk_left: (chunk_start + chunk_size as u64).saturating_sub(at),
                    batch_frames: i as u64,
                    frames_before: frames,
                    reads_before: reads,
                    previous_ts: previous,
                });
                next_cut = at.saturating_add(part_bytes);
            }
            frames += 1;
            previous = Some(f.ts_ns);
        }
        reads = reads.saturating_add(1);
        reader.recycle(batch);
    }
    starts
}

/// The reader of a part of the pcap file at `open` (named `name` in messages): from
/// `start` (None: the file's start) up to byte `end` (the next part's first byte; None:
/// the file's end), in the chunks of `chunk` bytes the single run reads it in.
pub fn open_part(
    open: &str,
    name: &str,
    chunk: usize,
    start: Option<&PartStart>,
    end: Option<u64>,
) -> Result<PcapReader, String> {
    let file = File::open(crate::names::path_of(open)).map_err(|e| {
        format!(
            "{name}: cannot open: {}",
            crate::sources::files::strerror(&e)
        )
    })?;
    let mut reader = reader_of(file, name, chunk, end.unwrap_or(u64::MAX))?;
    if let Some(s) = start {
        let left = usize::try_from(s.chunk_left).unwrap_or(usize::MAX);
        let frames = usize::try_from(s.batch_frames).unwrap_or(usize::MAX);
        reader.resume(s.position, left, frames, s.frames_before);
    }
    Ok(reader)
}

fn reader_of(mut file: File, name: &str, chunk: usize, end: u64) -> Result<PcapReader, String> {
    file.seek(SeekFrom::Start(0))
        .map_err(|e| format!("{name}: {e}"))?;
    let window = Window {
        inner: file,
        at: 0,
        end,
    };
    let mut chunks = ChunkReader::new(Input::Seekable(Box::new(window)), 24, name, "record");
    chunks.chunk = chunk;
    PcapReader::open(chunks, name).map_err(|e| e.0)
}

/// A file that ends at byte `end` (the next part's first byte) for its reader.
struct Window {
    inner: File,
    at: u64,
    end: u64,
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.at);
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let got = self.inner.read(&mut buf[..n])?;
        self.at += got as u64;
        Ok(got)
    }
}

impl Seek for Window {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.at = self.inner.seek(pos)?;
        Ok(self.at)
    }
}
