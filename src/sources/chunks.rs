//! A capture file read a chunk at a time, each chunk starting at the first byte the previous
//! one left unconsumed (the start of a record it did not hold whole).
//!
//! A seekable (plain) file reads that tail again, from the page cache, as the start of the
//! next chunk. A stream (gzip) cannot go back, so the tail is copied in front of the next
//! read. The readers' batches share each chunk's buffer; once they are all dropped, the
//! reader hands the buffer back (`recycle`) and the next chunk is read into it: a fresh
//! 8 MiB buffer per chunk would cost its page faults and zeroing again every time (about
//! 100k page faults and 0.1-0.2 s of system time on a 400 MB capture). Under `--jobs` the
//! shard threads still hold a piece's buffer when the reader moves on, so buffers handed
//! back wait in a small pool until the last holder drops them.

use std::io::{self, ErrorKind, Read, Seek, SeekFrom};
use std::sync::Arc;

use super::files::python_os_error;
use super::SourceStats;

/// Bytes read per chunk (a record longer than this still fits: see `ChunkReader::read`).
pub const CHUNK: usize = 8 << 20;
/// Buffers handed back and kept for reuse: more than the pieces a `--jobs` run has in
/// flight (its queues hold 8 per shard), so the reader finds one free instead of mapping
/// fresh pages.
const POOL: usize = 24;

/// Something a plain capture is read from: a file, or bytes in memory (Send: the `--jobs`
/// reader thread owns it).
pub trait SeekRead: Read + Seek + Send {}

impl<T: Read + Seek + Send> SeekRead for T {}

/// Where the chunks come from.
pub enum Input {
    /// The file itself: a chunk re-reads the previous chunk's tail.
    Seekable(Box<dyn SeekRead>),
    /// A decompressed stream: the tail is kept and prepended.
    Stream(Box<dyn Read + Send>),
    /// A plain capture that cannot seek (a pipe): read as a stream, but cut into the chunks
    /// the file itself gives (the tail and new bytes up to the seekable chunk's size), so
    /// that batches, sweeps and the order of records are those of the file.
    Pipe(Box<dyn Read + Send>),
}

/// Chunks of a capture from byte `position` on; call `consumed` after each `read`.
pub struct ChunkReader {
    input: Input,
    name: String,
    /// Names the file's records ("record", "block") in the warning about a truncated last one.
    unit: &'static str,
    /// File offset of the first byte of the next chunk.
    pub position: u64,
    /// The last chunk read reached the end of the file (or a read error).
    at_end: bool,
    /// A stream's unconsumed bytes.
    tail: Vec<u8>,
    tail_len: usize,
    /// Buffers handed back for the next reads, oldest first (each reused once no batch
    /// holds it any more).
    pool: Vec<Arc<Vec<u8>>>,
    /// Why reading stopped early (a damaged gzip stream, an I/O error), in Python's words.
    error: Option<String>,
    /// Bytes of the current chunk not read yet (piece mode, seekable input).
    chunk_left: usize,
    /// Bytes read per chunk (`CHUNK` unless many files are merged: see `Captures`).
    pub chunk: usize,
    /// Size of the chunk being read (seekable input, piece mode): `position` is its start.
    pub chunk_size: usize,
    /// A reader resumed inside a file (`resume_at`): the first chunk's size, and that the
    /// file must be sought to `position` first.
    resumed: Option<usize>,
}

impl ChunkReader {
    pub fn new(input: Input, position: u64, name: &str, unit: &'static str) -> ChunkReader {
        ChunkReader {
            input,
            name: name.to_string(),
            unit,
            position,
            at_end: false,
            tail: Vec::new(),
            tail_len: 0,
            pool: Vec::new(),
            error: None,
            chunk_left: 0,
            chunk: CHUNK,
            chunk_size: 0,
            resumed: None,
        }
    }

    /// Go on from byte `position` of a seekable file, inside a chunk of another reader
    /// that ends `first_size` bytes further: the first chunk read ends where that one
    /// does, so the chunks after it are the other reader's (a distributed run maps a large
    /// file a part at a time: `parallel::scalechunks`).
    pub fn resume_at(&mut self, position: u64, first_size: usize) {
        self.position = position;
        self.resumed = Some(first_size);
    }

    /// The unconsumed bytes and about CHUNK more; empty once the file is done.
    ///
    /// Unlike Python, whose read raises and loses the whole chunk, a read error keeps every
    /// byte read before it: the chunk ends there and `take_error` says why.
    pub fn read(&mut self) -> Vec<u8> {
        if self.error.is_some() {
            self.at_end = true;
            return std::mem::take(&mut self.tail);
        }
        let mut buf = self.free_buffer_of(0); // the longest free one
        let more = match self.input {
            // a pipe's chunk is the file's: from the tail on, as the seekable branch reads
            Input::Pipe(_) => self.chunk.max(2 * self.tail.len()) - self.tail.len(),
            _ => self.chunk,
        };
        match &mut self.input {
            Input::Seekable(f) => {
                // a record longer than a chunk still fits in the next one
                let size = self.chunk.max(2 * self.tail_len);
                let mut result = Ok(());
                if self.tail_len > 0 {
                    result = f.seek(SeekFrom::Start(self.position)).map(|_| ());
                }
                if result.is_ok() {
                    result = fill(f, &mut buf, 0, size);
                } else {
                    buf.clear();
                }
                // a regular file reads short only at its end
                self.at_end = buf.len() < size;
                if let Err(e) = result {
                    self.error = Some(python_os_error(&e));
                    self.at_end = true;
                }
                buf
            }
            Input::Stream(f) | Input::Pipe(f) => {
                let before = self.tail.len();
                if buf.len() < before {
                    buf.resize(before, 0);
                }
                buf[..before].copy_from_slice(&self.tail);
                self.tail.clear();
                let result = fill(f, &mut buf, before, more);
                self.at_end = buf.len() == before;
                if let Err(e) = result {
                    self.error = Some(python_os_error(&e));
                    self.at_end = true;
                }
                buf
            }
        }
    }

    /// The first piece of the next chunk: at most `piece` of its bytes (a stream's whole
    /// chunk, as `read` gives it), and whether that is the whole chunk. The chunk is the
    /// same as `read` would give (the unconsumed tail and about CHUNK more); only the reads
    /// are smaller, so that a piece stays in the CPU cache while it is decoded.
    pub fn first_piece(&mut self, piece: usize) -> (Vec<u8>, bool) {
        if matches!(self.input, Input::Stream(_) | Input::Pipe(_)) || self.error.is_some() {
            return (self.read(), true);
        }
        let mut buf = self.free_buffer_of(piece);
        // a record longer than a chunk still fits in the next one
        self.chunk_left = self.chunk.max(2 * self.tail_len);
        let resumed = self.resumed.take();
        if let Some(first_size) = resumed {
            self.chunk_left = first_size;
        }
        self.chunk_size = self.chunk_left;
        if self.tail_len > 0 || resumed.is_some() {
            if let Input::Seekable(f) = &mut self.input {
                if let Err(e) = f.seek(SeekFrom::Start(self.position)) {
                    buf.clear();
                    self.error = Some(python_os_error(&e));
                    self.at_end = true;
                    return (buf, true);
                }
            }
        }
        let done = self.fill_piece(&mut buf, 0, piece);
        (buf, done)
    }

    /// The next piece of the current chunk: `buf` (the last piece) without its first
    /// `keep` bytes (done with; `position` moves past them), then up to `piece` bytes in
    /// all; and whether the chunk is now read whole.
    pub fn next_piece(&mut self, buf: Arc<Vec<u8>>, keep: usize, piece: usize) -> (Vec<u8>, bool) {
        let keep = keep.min(buf.len());
        let kept = buf.len() - keep;
        // the kept bytes move to the front; the rest of the buffer is overwritten in place
        let mut buf = match Arc::try_unwrap(buf) {
            Ok(own) if self.ends_chunk_short(&own, kept, piece) => {
                // the chunk's last piece would cut this full-length buffer short, and the next
                // chunk's first piece would grow it back with zeroes: that piece goes to
                // another buffer (one the chunk ends used before), this one waits full
                let mut last = self.free_buffer_shortest();
                if last.len() < kept {
                    last.resize(kept, 0);
                }
                last[..kept].copy_from_slice(&own[keep..]);
                self.recycle(Arc::new(own));
                last
            }
            Ok(mut own) => {
                own.copy_within(keep.., 0);
                own
            }
            Err(shared) => {
                // a --jobs shard still reads it: the kept bytes go to a free buffer, the
                // shortest when this piece ends its chunk short (as above: a long one cut
                // short would be grown back with zeroes later)
                let rest = shared.get(keep..).unwrap_or_default();
                let mut own = if self.ends_chunk_short(&shared, kept, piece) {
                    self.free_buffer_shortest()
                } else {
                    self.free_buffer_of(piece)
                };
                if own.len() < rest.len() {
                    own.resize(rest.len(), 0);
                }
                own[..rest.len()].copy_from_slice(rest);
                self.recycle(shared);
                own
            }
        };
        self.position += keep as u64;
        let done = self.fill_piece(&mut buf, kept, piece);
        (buf, done)
    }

    /// The next piece, read into `buf` after `kept` bytes, is the current chunk's last and
    /// ends before `buf` does (seekable input: a stream has no pieces).
    fn ends_chunk_short(&self, buf: &[u8], kept: usize, piece: usize) -> bool {
        let want = piece.saturating_sub(kept).max(1);
        matches!(self.input, Input::Seekable(_))
            && self.chunk_left < want
            && kept + self.chunk_left < buf.len()
    }

    /// Read into `buf` from index `start` on (it ends after the last byte read), up to
    /// `piece` bytes in all and not past the chunk's end: true when the chunk is read whole
    /// (its end, the file's end or a read error).
    fn fill_piece(&mut self, buf: &mut Vec<u8>, start: usize, piece: usize) -> bool {
        let Input::Seekable(f) = &mut self.input else {
            buf.truncate(start);
            return true; // streams are read a whole chunk at a time (`first_piece`)
        };
        let want = piece.saturating_sub(start).max(1).min(self.chunk_left);
        // room for the whole piece at once: grown by doubling from 64 KiB, a new buffer
        // was moved four times and about twice its size faulted in (the pages a read
        // does not reach stay untouched either way)
        buf.reserve((start + want).saturating_sub(buf.len()));
        let result = fill(f, buf, start, want);
        let got = buf.len() - start;
        self.chunk_left -= got;
        // a regular file reads short only at its end
        if got < want {
            self.at_end = true;
        }
        if let Err(e) = result {
            self.error = Some(python_os_error(&e));
            self.at_end = true;
        }
        self.at_end || self.chunk_left == 0
    }

    /// Hand back a buffer read into, once the reader is done with it: a later read reuses it
    /// once nothing else holds it.
    pub fn recycle(&mut self, buf: Arc<Vec<u8>>) {
        if self.pool.len() >= POOL {
            self.pool.remove(0);
        }
        self.pool.push(buf);
    }

    /// A buffer of the pool that nothing holds any more and that holds `len` bytes (its
    /// bytes are overwritten in place: no zeroing, no fresh pages), the longest; else a new
    /// empty one. Not a shorter one (a chunk's last piece): it would be grown back with
    /// zeroes and cut short again at a later chunk's end (with --jobs, whose shards hold
    /// most buffers, that was 53 MB of zeroes on bench.pcap); a new one is zeroed once and
    /// kept.
    fn free_buffer_of(&mut self, len: usize) -> Vec<u8> {
        let free = (self.pool.iter().enumerate())
            .filter(|(_, b)| Arc::strong_count(b) == 1 && b.len() >= len)
            .max_by_key(|(at, b)| (b.len(), std::cmp::Reverse(*at)))
            .map(|(at, _)| at);
        self.take_free(free)
    }

    /// The shortest free buffer of the pool (a chunk's last piece: the one the last chunk
    /// ended in), or a new empty one.
    fn free_buffer_shortest(&mut self) -> Vec<u8> {
        let free = (self.pool.iter().enumerate())
            .filter(|(_, b)| Arc::strong_count(b) == 1)
            .min_by_key(|(at, b)| (b.len(), *at))
            .map(|(at, _)| at);
        self.take_free(free)
    }

    fn take_free(&mut self, at: Option<usize>) -> Vec<u8> {
        at.and_then(|at| Arc::try_unwrap(self.pool.remove(at)).ok())
            .unwrap_or_default()
    }

    /// `n` bytes of `buf` (the last chunk read) are done with. True at the end of the file,
    /// after warning about the bytes left over there (a record cut short after the file's
    /// `frames` frames).
    pub fn consumed(&mut self, buf: &[u8], n: usize, frames: u64, stats: &mut SourceStats) -> bool {
        self.position += n as u64;
        self.tail_len = buf.len().saturating_sub(n);
        if let Input::Stream(_) | Input::Pipe(_) = self.input {
            self.tail.clear();
            self.tail
                .extend_from_slice(buf.get(n..).unwrap_or_default());
        }
        if !self.at_end {
            return false;
        }
        // after a read error, the error is the warning (see `take_error`)
        if self.tail_len > 0 && self.error.is_none() {
            stats.skip("truncated_record", 1);
            stats.warn_once(
                "truncated_record",
                &format!(
                    "{}: file ends inside a {} at byte {} (after frame {}; {} bytes dropped); \
                     the capture was probably cut short",
                    self.name, self.unit, self.position, frames, self.tail_len
                ),
            );
        }
        true
    }

    /// Read `n` bytes (fewer at the end of the file) outside the chunks: the pcap header.
    pub fn read_exact_or_short(&mut self, n: usize) -> Vec<u8> {
        let mut buf = Vec::with_capacity(n);
        let result = match &mut self.input {
            Input::Seekable(f) => read_up_to(f, n, &mut buf),
            Input::Stream(f) | Input::Pipe(f) => read_up_to(f, n, &mut buf),
        };
        if let Err(e) = result {
            self.error = Some(python_os_error(&e));
        }
        buf
    }

    /// Why reading stopped before the end of the file, once.
    pub fn take_error(&mut self) -> Option<String> {
        self.error.take()
    }

    /// A read error happened (the chunks end where it did).
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }
}

/// Read up to `n` bytes of `f` into `buf` from index `start` on, stopping early only at the
/// end of the file or at an error; `buf` ends after the last byte read. The buffer's own
/// bytes are overwritten in place; it grows (zeroed) only as reads fill it, doubling from
/// 64 KiB, so a small file costs no 8 MiB of zeroes (`read_to_end` on a reader without its
/// own `read_buf`, such as the metered file, zeroes all the spare capacity every time).
fn fill<R: Read + ?Sized>(f: &mut R, buf: &mut Vec<u8>, start: usize, n: usize) -> io::Result<()> {
    const FIRST_GROWTH: usize = 64 << 10;
    let end = start.saturating_add(n);
    let mut filled = start;
    let mut result = Ok(());
    while filled < end {
        if buf.len() <= filled {
            let grow = (filled - start).max(FIRST_GROWTH);
            buf.resize(filled.saturating_add(grow).min(end), 0);
        }
        let stop = buf.len().min(end);
        match f.read(&mut buf[filled..stop]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    buf.truncate(filled);
    result
}

/// Append up to `n` bytes of `f` to `buf`, stopping early only at the end of the file or
/// at an error (the bytes read before the error stay in `buf`).
pub fn read_up_to<R: Read + ?Sized>(f: &mut R, n: usize, buf: &mut Vec<u8>) -> io::Result<()> {
    Read::take(&mut *f, n as u64).read_to_end(buf).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn a_buffer_still_held_elsewhere_is_reused_once_dropped() {
        let data: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let input = Input::Seekable(Box::new(Cursor::new(data.clone())));
        let mut reader = ChunkReader::new(input, 0, "t.pcap", "record");
        let (first, whole) = reader.first_piece(1024);
        assert!(!whole);
        assert_eq!(first[..], data[..1024]);
        let first = Arc::new(first);
        let held = Arc::clone(&first); // a --jobs shard still reads it
        let first_at = held.as_ptr();
        // 24 bytes kept (a record the piece cut), then the piece is filled up again
        let (second, _) = reader.next_piece(first, 1000, 1024);
        assert_eq!(second[..], data[1000..2024]);
        assert_ne!(second.as_ptr(), first_at);
        drop(held);
        let second = Arc::new(second);
        let held = Arc::clone(&second);
        let (third, _) = reader.next_piece(second, 1024, 1024);
        assert_eq!(third[..], data[2024..3048]);
        assert_eq!(
            third.as_ptr(),
            first_at,
            "the first buffer, free again, is reused"
        );
        drop(held);
    }

    #[test]
    fn a_chunks_short_last_piece_leaves_the_full_buffer_whole() {
        let data: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let input = Input::Seekable(Box::new(Cursor::new(data.clone())));
        let mut reader = ChunkReader::new(input, 0, "t.pcap", "record");
        reader.chunk = 1500;
        let mut stats = SourceStats::default();
        let (first, whole) = reader.first_piece(1024);
        assert!(!whole);
        let full_at = first.as_ptr();
        // 24 bytes kept, then the chunk's last 476: a piece of 500 bytes, in another buffer
        let (last, whole) = reader.next_piece(Arc::new(first), 1000, 1024);
        assert!(whole);
        assert_eq!(last[..], data[1000..1500]);
        assert_ne!(last.as_ptr(), full_at);
        assert!(!reader.consumed(&last, 500, 0, &mut stats));
        reader.recycle(Arc::new(last));
        // the next chunk's first piece is read into the full buffer, not the short one
        let (next, whole) = reader.first_piece(1024);
        assert!(!whole);
        assert_eq!(next[..], data[1500..2524]);
        assert_eq!(next.as_ptr(), full_at);
    }

    #[test]
    fn pieces_held_by_shards_leave_the_short_buffer_short() {
        let data: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let input = Input::Seekable(Box::new(Cursor::new(data.clone())));
        let mut reader = ChunkReader::new(input, 0, "t.pcap", "record");
        reader.chunk = 1500;
        let mut stats = SourceStats::default();
        // --jobs: a shard holds every full piece while the next one is read
        let (first, _) = reader.first_piece(1024);
        let first = Arc::new(first);
        let held_first = Arc::clone(&first);
        let (last, whole) = reader.next_piece(first, 1000, 1024);
        assert!(whole);
        assert_eq!(last[..], data[1000..1500]);
        assert!(!reader.consumed(&last, 500, 0, &mut stats));
        let short_at = last.as_ptr();
        // done with: free, but short
        reader.recycle(Arc::new(last));
        // the next chunk's first piece goes to a new buffer, not the short one grown
        let (next, _) = reader.first_piece(1024);
        assert_eq!(next[..], data[1500..2524]);
        let next = Arc::new(next);
        let held_next = Arc::clone(&next);
        // so that chunk's short last piece finds the short buffer as it was
        let (last, whole) = reader.next_piece(next, 1000, 1024);
        assert!(whole);
        assert_eq!(last[..], data[2500..3000]);
        assert_eq!(last.as_ptr(), short_at);
        drop((held_first, held_next));
    }
}
