//! Classic libpcap savefiles: micro- and nanosecond, either byte order.
//!
//! Format: <https://www.tcpdump.org/manpages/pcap-savefile.5.html>. A 24-byte file header,
//! then records of a 16-byte header (ts_sec, ts_frac, incl_len, orig_len) and incl_len
//! bytes of frame. pcap-parser reads the file header and frames each record; the frames
//! themselves are never copied out of the chunk.

use std::sync::Arc;

use pcap_parser::{parse_pcap_frame, parse_pcap_frame_be, parse_pcap_header};

use super::chunks::ChunkReader;
use super::{CaptureError, Frame, FrameBatch, Origin, SourceStats};

/// The magic numbers of the four pcap variants (byte order x time unit), as file bytes.
pub const MAGICS: [[u8; 4]; 4] = [
    [0xd4, 0xc3, 0xb2, 0xa1], // microseconds, little-endian
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1], // nanoseconds
    [0xa1, 0xb2, 0x3c, 0x4d],
];

/// A record longer than this is not a packet but a damaged header (pcap's own limit for
/// DLT_USBPCAP-sized frames is 256 KiB; jumbo/TSO captures stay below 1 MiB).
pub const MAX_RECORD: u32 = 1 << 20;
/// A header may claim any snaplen (0xFFFFFFFF is common in fuzzed files): trusting it
/// beyond this would let one damaged record header make the reader buffer the whole file.
pub const MAX_SNAPLEN: u32 = 16 << 20;
/// Frames per batch: an 8 MiB chunk of 60-byte packets (a SYN flood) would be 140k frames.
pub const MAX_FRAMES: usize = 32768;

/// True when `magic` (a file's first four bytes) is one of the pcap magics.
pub fn is_pcap_magic(magic: &[u8]) -> bool {
    MAGICS.iter().any(|m| m[..] == *magic)
}

/// Frame batches of a pcap file, at most MAX_FRAMES each, several per chunk.
pub struct PcapReader {
    chunks: ChunkReader,
    name: String,
    big_endian: bool,
    ns_per_unit: i64,
    linktype: u32,
    /// Longest record accepted (longer: a damaged header).
    limit: u32,
    /// The chunk being walked and the walk's state in it.
    buf: Option<Arc<Vec<u8>>>,
    end: usize,
    /// The buffer holds the chunk up to its end (no more pieces of it to read).
    chunk_read: bool,
    /// Frames of the current batch in earlier pieces.
    batch_frames: usize,
    /// The last walk stopped at the batch's MAX_FRAMES.
    capped: bool,
    damaged: bool,
    done: bool,
    /// A frame vector handed back (`recycle`), for the next piece.
    spare_frames: Vec<Frame>,
    /// Frames of the current batch before the first chunk of a resumed reader (`resume`).
    resumed_frames: usize,
    /// The file's index in `SourceStats::files` (its batches' `Origin`).
    pub file: u32,
    /// Frames of the file handed on so far (a resumed reader: from the file's start).
    frames: u64,
}

impl PcapReader {
    /// Read the file header (the file starts with a pcap magic). A read error there leaves
    /// a reader that yields nothing and keeps the error for `take_error`.
    pub fn open(mut chunks: ChunkReader, name: &str) -> Result<PcapReader, CaptureError> {
        let header = chunks.read_exact_or_short(24);
        let mut reader = PcapReader {
            chunks,
            name: name.to_string(),
            big_endian: false,
            ns_per_unit: 1000,
            linktype: 0,
            limit: MAX_RECORD,
            buf: None,
            end: 0,
            chunk_read: false,
            batch_frames: 0,
            capped: false,
            damaged: false,
            done: true,
            spare_frames: Vec::new(),
            resumed_frames: 0,
            file: 0,
            frames: 0,
        };
        if reader.chunks.failed() {
            return Ok(reader);
        }
        if header.len() < 24 {
            return Err(CaptureError(format!(
                "{name}: file ends inside the pcap header"
            )));
        }
        let Ok((_, h)) = parse_pcap_header(&header) else {
            // unreachable: the caller checked the magic
            return Err(CaptureError(format!(
                "{name}: not a pcap or pcapng capture (starts with {})",
                super::files::hex(header.get(..4).unwrap_or_default())
            )));
        };
        reader.big_endian = h.is_bigendian();
        reader.ns_per_unit = if h.is_nanosecond_precision() { 1 } else { 1000 };
        // upper bits: FCS length and flag (libpcap LT_LINKTYPE)
        reader.linktype = (h.network.0 as u32) & 0xFFFF;
        reader.limit = MAX_RECORD.max(h.snaplen.min(MAX_SNAPLEN));
        reader.done = false;
        Ok(reader)
    }

    /// The next batch, None at the end of the file or at a damaged record header.
    pub fn next_batch(&mut self, stats: &mut SourceStats) -> Option<FrameBatch> {
        // pieces as large as a chunk: every piece is a whole batch
        self.next_piece(stats, usize::MAX).map(|(batch, _)| batch)
    }

    /// The next piece of a batch, read at most `piece` bytes at a time (more when a record
    /// is longer), and whether it ends its batch; None at the end of the file or at a
    /// damaged record header. Chunks and batches are the same whatever the piece size: a
    /// chunk holds the records that end within it, a batch at most MAX_FRAMES of them. A
    /// piece that ends a batch may be empty (the batch's last frames came in an earlier
    /// piece).
    pub fn next_piece(
        &mut self,
        stats: &mut SourceStats,
        piece: usize,
    ) -> Option<(FrameBatch, bool)> {
        if self.done {
            return None;
        }
        loop {
            let buf = match &self.buf {
                Some(buf) => Arc::clone(buf),
                None => {
                    let (buf, whole) = self.chunks.first_piece(piece);
                    if buf.is_empty() {
                        self.done = true;
                        return None;
                    }
                    self.end = 0;
                    self.batch_frames = std::mem::take(&mut self.resumed_frames);
                    self.chunk_read = whole;
                    self.damaged = false;
                    let buf = Arc::new(buf);
                    self.buf = Some(Arc::clone(&buf));
                    buf
                }
            };
            if !self.damaged {
                let frames = self.walk(&buf);
                if !frames.is_empty() {
                    stats.frames += frames.len() as u64;
                    let origin = Origin::File {
                        file: self.file,
                        before: self.frames,
                    };
                    self.frames += frames.len() as u64;
                    let ends = self.capped || self.damaged || self.chunk_read;
                    self.batch_frames = if ends {
                        0
                    } else {
                        self.batch_frames + frames.len()
                    };
                    let batch = FrameBatch {
                        data: buf,
                        frames,
                        origin,
                    };
                    return Some((batch, ends));
                }
                self.spare_frames = frames; // (a piece's tail: kept for the next walk)
            }
            if (self.damaged || self.chunk_read) && self.batch_frames > 0 {
                // the batch's last frames came in an earlier piece
                self.batch_frames = 0;
                let empty = FrameBatch {
                    data: buf,
                    ..FrameBatch::default()
                };
                return Some((empty, true));
            }
            self.buf = None;
            if self.damaged {
                stats.skip("corrupt_record", 1);
                stats.warn_once(
                    "corrupt_record",
                    &format!(
                        "{}: record header at byte {} (after frame {}) is damaged (length > \
                         {}); the rest of the file was not read",
                        self.name,
                        self.chunks.position + self.end as u64,
                        self.frames,
                        self.limit
                    ),
                );
                self.done = true;
                return None;
            }
            if !self.chunk_read {
                // the rest of the chunk, from the record the piece cut on
                let rest = buf.get(self.end..).unwrap_or_default();
                let record = if rest.len() >= 16 {
                    16 + self.incl_len(rest) as usize
                } else {
                    16
                };
                let (next, whole) = self.chunks.next_piece(buf, self.end, piece.max(record));
                self.end = 0;
                self.chunk_read = whole;
                self.buf = Some(Arc::new(next));
                continue;
            }
            let done = self.chunks.consumed(&buf, self.end, self.frames, stats);
            self.chunks.recycle(buf);
            if done {
                self.done = true;
                return None;
            }
        }
    }

    /// The complete records of `buf` from `self.end` on, up to the batch's MAX_FRAMES; sets
    /// `end` past them, `damaged` at an impossible length, and `capped` when the cap
    /// stopped the walk.
    fn walk(&mut self, buf: &[u8]) -> Vec<Frame> {
        let cap = MAX_FRAMES.saturating_sub(self.batch_frames);
        // every record takes at least its 16-byte header: no regrowth while walking
        let room = buf.len().saturating_sub(self.end) / 16 + 1;
        let mut frames = std::mem::take(&mut self.spare_frames);
        frames.clear();
        frames.reserve(room.min(cap));
        let mut pos = self.end;
        self.capped = false;
        for _ in 0..cap {
            let rest = buf.get(pos..).unwrap_or_default();
            let parsed = if self.big_endian {
                parse_pcap_frame_be(rest)
            } else {
                parse_pcap_frame(rest)
            };
            let record = match parsed {
                Ok((_, record)) => record,
                Err(_) => {
                    // incomplete: a damaged length is damage even where the file ends
                    self.damaged = rest.len() >= 16 && self.incl_len(rest) > self.limit;
                    self.end = pos;
                    return frames;
                }
            };
            if record.caplen > self.limit {
                self.damaged = true;
                self.end = pos;
                return frames;
            }
            frames.push(Frame {
                ts_ns: i64::from(record.ts_sec) * 1_000_000_000
                    + i64::from(record.ts_usec) * self.ns_per_unit,
                offset: pos + 16,
                caplen: record.caplen,
                wirelen: record.origlen,
                linktype: self.linktype,
            });
            pos += 16 + record.caplen as usize;
        }
        self.end = pos;
        self.capped = true;
        frames
    }

    /// Take back a piece once it is fed: its frame vector serves the next piece. A piece's
    /// vector is sized for the most records its bytes could hold (hundreds of KB), and
    /// freeing it next to free memory makes glibc consolidate its fast bins
    /// (`malloc_consolidate`), as allocating the next one does: twice a piece.
    pub fn recycle(&mut self, piece: FrameBatch) {
        let FrameBatch {
            data, mut frames, ..
        } = piece;
        drop(data);
        if frames.capacity() > self.spare_frames.capacity() {
            frames.clear();
            self.spare_frames = frames;
        }
    }

    fn incl_len(&self, record: &[u8]) -> u32 {
        let mut field = [0u8; 4];
        field.copy_from_slice(record.get(8..12).unwrap_or(&[0; 4]));
        if self.big_endian {
            u32::from_be_bytes(field)
        } else {
            u32::from_le_bytes(field)
        }
    }

    /// Go on from the record at byte `position`, as the reader that walked the file from
    /// its start would: inside its chunk that ends `chunk_left` bytes further, with
    /// `batch_frames` frames of its batch before this record (a part of a large file,
    /// `parallel::scalechunks`). Call before the first batch.
    /// `frames_before` frames of the file come before it.
    pub fn resume(
        &mut self,
        position: u64,
        chunk_left: usize,
        batch_frames: usize,
        frames_before: u64,
    ) {
        self.chunks.resume_at(position, chunk_left);
        self.resumed_frames = batch_frames;
        self.frames = frames_before;
    }

    /// Frames of the file handed on so far (the last good one's number).
    pub fn frames_read(&self) -> u64 {
        self.frames
    }

    /// The chunk being walked: its first byte in the file and its size (batches read
    /// whole: `next_batch`).
    pub fn chunk_now(&self) -> (u64, usize) {
        (self.chunks.position, self.chunks.chunk_size)
    }

    /// Why reading stopped before the end of the file (a damaged gzip stream), once.
    pub fn take_error(&mut self) -> Option<String> {
        self.chunks.take_error()
    }
}
