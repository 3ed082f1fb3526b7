//! Open capture files by content (not by name): pcap or pcapng, either gzip-compressed.
//!
//! The format is told from the first bytes alone, so a pipe, a FIFO, `/dev/stdin` or
//! standard input itself (`-`, as tcpdump and tshark name it) reads as a file does: a
//! regular file is rewound after the peek and read in chunks it can re-read; anything else
//! is read once, as a stream, the peeked bytes put back in front.

use std::fs::File;
use std::io::{self, BufRead, Cursor, ErrorKind, Read, Seek, SeekFrom};
use std::sync::atomic::Ordering;

use flate2::{Crc, Decompress, FlushDecompress, Status};

use super::chunks::{read_up_to, ChunkReader, Input, SeekRead};
use super::pcap::{is_pcap_magic, PcapReader};
use super::pcapng::PcapngReader;
use super::{CaptureError, FrameBatch, ReadMeter, SourceStats};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// The path that names standard input (as for tcpdump -r and tshark -r).
pub const STDIN_PATH: &str = "-";

/// How a path is named in messages: "standard input" for `-`, else the path itself.
pub fn display_name(path: &str) -> &str {
    if path == STDIN_PATH {
        "standard input"
    } else {
        path
    }
}

/// Frame batches of one capture file, opened by content at the first batch asked for (as
/// Python's generator does: the magic is checked, and the file listed, only then).
pub struct FileReader {
    /// The path as given (listed in the source report).
    path: String,
    /// The path as messages name it (see `display_name`).
    name: String,
    state: State,
    /// Bytes per read chunk (see `ChunkReader::chunk`).
    pub chunk: usize,
}

enum State {
    /// Not read yet; whether it can be rewound (a regular file, bytes in memory).
    Unopened(Box<dyn SeekRead>, bool),
    Pcap(PcapReader),
    Pcapng(PcapngReader),
    Done,
}

impl FileReader {
    /// Open `path` now; `meter`, if given, counts the bytes read from it.
    /// `-` is standard input.
    pub fn open(path: &str, meter: Option<ReadMeter>) -> Result<FileReader, CaptureError> {
        let name = display_name(path);
        let cannot_open =
            |e: io::Error| CaptureError(format!("{name}: cannot open: {}", strerror(&e)));
        let file = if path == STDIN_PATH {
            stdin_file().map_err(cannot_open)?
        } else {
            // a name that is not UTF-8 comes with its bytes escaped: open the real ones
            let fs_path = crate::names::path_of(path);
            if std::fs::metadata(&fs_path).is_ok_and(|m| m.is_dir()) {
                return Err(CaptureError(format!(
                    "{path}: is a directory, not a capture file"
                )));
            }
            File::open(&fs_path).map_err(cannot_open)?
        };
        // only a regular file is sure to seek (a FIFO, a pipe, a terminal, a socket fail
        // or, for some character devices, pretend to)
        let seekable = file.metadata().is_ok_and(|m| m.is_file());
        let raw: Box<dyn SeekRead> = match meter {
            Some(meter) => Box::new(Metered::new(file, meter)),
            None => Box::new(file),
        };
        Ok(FileReader::from_input(raw, seekable, path))
    }

    /// The same reader, listed and named in messages as `path` (a distributed run opens a
    /// file by its absolute path and reports it as the user gave it).
    pub fn named(mut self, path: &str) -> FileReader {
        self.path = path.to_string();
        self.name = display_name(path).to_string();
        self
    }

    /// A capture held in memory, named `name` in warnings and errors.
    pub fn from_bytes(bytes: Vec<u8>, name: &str) -> FileReader {
        FileReader::from_input(Box::new(Cursor::new(bytes)), true, name)
    }

    /// A capture read once from `stream` (no seek), named `name` in warnings and errors.
    pub fn from_stream<R: Read + Send + 'static>(stream: R, name: &str) -> FileReader {
        FileReader::from_input(Box::new(Unseekable(stream)), false, name)
    }

    fn from_input(raw: Box<dyn SeekRead>, seekable: bool, path: &str) -> FileReader {
        FileReader {
            path: path.to_string(),
            name: display_name(path).to_string(),
            state: State::Unopened(raw, seekable),
            chunk: super::chunks::CHUNK,
        }
    }

    /// The next batch of this file, None when it is done.
    pub fn next_batch(
        &mut self,
        stats: &mut SourceStats,
    ) -> Result<Option<FrameBatch>, CaptureError> {
        Ok(self.next_piece(stats, usize::MAX)?.map(|(batch, _)| batch))
    }

    /// The next piece of a batch, read about `piece` bytes at a time where the format
    /// allows it (a plain pcap file; else whole batches), and whether it ends its batch
    /// (see `PcapReader::next_piece`). None when the file is done.
    pub fn next_piece(
        &mut self,
        stats: &mut SourceStats,
        piece: usize,
    ) -> Result<Option<(FrameBatch, bool)>, CaptureError> {
        if let State::Unopened(..) = self.state {
            let State::Unopened(raw, seekable) = std::mem::replace(&mut self.state, State::Done)
            else {
                return Ok(None);
            };
            self.state = self.start(raw, seekable, stats)?;
        }
        let next = match &mut self.state {
            State::Pcap(reader) => Ok(reader.next_piece(stats, piece)),
            State::Pcapng(reader) => reader.next_piece(stats, piece),
            State::Unopened(..) | State::Done => return Ok(None),
        };
        match next {
            Ok(Some(piece)) => Ok(Some(piece)),
            Ok(None) => {
                let error = match &mut self.state {
                    State::Pcap(reader) => reader.take_error(),
                    State::Pcapng(reader) => reader.take_error(),
                    State::Unopened(..) | State::Done => None,
                };
                if let Some(reason) = error {
                    // Python loses the chunk the error is in; here every complete record
                    // before it was kept
                    let after = match &self.state {
                        State::Pcap(reader) => reader.frames_read(),
                        State::Pcapng(reader) => reader.frames_read(),
                        State::Unopened(..) | State::Done => 0,
                    };
                    stats.skip("truncated_record", 1);
                    stats.warn_once(
                        "truncated_record",
                        &format!(
                            "{}: stopped reading after frame {after}: {reason}; earlier \
                             packets are kept",
                            self.name
                        ),
                    );
                }
                self.state = State::Done;
                Ok(None)
            }
            Err(e) => {
                self.state = State::Done;
                Err(e)
            }
        }
    }

    /// Take back a piece this reader yielded (see `PcapReader::recycle`).
    pub fn recycle(&mut self, piece: FrameBatch) {
        if let State::Pcap(reader) = &mut self.state {
            reader.recycle(piece);
        }
    }

    /// Check the magic (through gzip if compressed) and start the right reader. The magic
    /// is peeked without seeking where `raw` cannot seek: its bytes go back in front.
    fn start(
        &self,
        mut raw: Box<dyn SeekRead>,
        seekable: bool,
        stats: &mut SourceStats,
    ) -> Result<State, CaptureError> {
        let name = &self.name;
        let cannot_read =
            |e: io::Error| CaptureError(format!("{name}: cannot open: {}", strerror(&e)));
        let mut magic = Vec::with_capacity(4);
        read_up_to(&mut raw, 4, &mut magic).map_err(cannot_read)?;
        let rewound = if seekable {
            raw.seek(SeekFrom::Start(0)).map_err(cannot_read)?;
            Input::Seekable(raw)
        } else {
            Input::Pipe(Box::new(Cursor::new(magic.clone()).chain(raw)))
        };
        let input = if magic.starts_with(&GZIP_MAGIC) {
            let compressed: Box<dyn Read + Send> = match rewound {
                Input::Seekable(raw) => Box::new(raw),
                Input::Stream(stream) | Input::Pipe(stream) => stream,
            };
            // Python peeks once: the magic is the first 4 bytes of the first read, however
            // short that read is (a first member of 2 bytes is not a capture)
            let mut stream = GzipStream::new(compressed);
            let mut first = vec![0u8; PEEK_SIZE];
            let n = stream.read(&mut first).map_err(|e| {
                CaptureError(format!(
                    "{name}: damaged gzip stream: {}",
                    python_os_error(&e)
                ))
            })?;
            first.truncate(n);
            magic = first.get(..n.min(4)).unwrap_or_default().to_vec();
            Input::Stream(Box::new(Cursor::new(first).chain(stream)))
        } else {
            rewound
        };
        // its frames are named by this index (`FramePlace`)
        let file = u32::try_from(stats.files.len()).unwrap_or(u32::MAX);
        stats.files.push(self.path.clone());
        if magic.is_empty() {
            return Err(CaptureError(format!("{name}: empty file")));
        }
        if is_pcap_magic(&magic) {
            let mut chunks = ChunkReader::new(input, 24, name, "record");
            chunks.chunk = self.chunk;
            let mut reader = PcapReader::open(chunks, name)?;
            reader.file = file;
            Ok(State::Pcap(reader))
        } else if magic == PCAPNG_MAGIC {
            let mut chunks = ChunkReader::new(input, 0, name, "block");
            chunks.chunk = self.chunk;
            let mut reader = PcapngReader::new(chunks, name);
            reader.file = file;
            Ok(State::Pcapng(reader))
        } else {
            Err(CaptureError(format!(
                "{name}: not a pcap or pcapng capture (starts with {})",
                hex(&magic)
            )))
        }
    }
}

/// Standard input as a file of its own (a duplicate of descriptor 0): a regular file
/// redirected with `<` is then still read in chunks it can re-read.
#[cfg(unix)]
fn stdin_file() -> io::Result<File> {
    use std::os::fd::AsFd;
    Ok(File::from(io::stdin().as_fd().try_clone_to_owned()?))
}

#[cfg(windows)]
fn stdin_file() -> io::Result<File> {
    use std::os::windows::io::AsHandle;
    Ok(File::from(io::stdin().as_handle().try_clone_to_owned()?))
}

/// A reader that cannot seek (`from_stream`): every seek fails, as on a pipe.
struct Unseekable<R>(R);

impl<R: Read> Read for Unseekable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R> Seek for Unseekable<R> {
    fn seek(&mut self, _: SeekFrom) -> io::Result<u64> {
        Err(io::Error::from(ErrorKind::Unsupported))
    }
}

/// Lowercase hex of `bytes`, as Python's `bytes.hex()`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OS error's text alone, as Python's `OSError.strerror` ("No such file or directory").
pub(crate) fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) if e.raw_os_error().is_some() => text[..at].to_string(),
        _ => text,
    }
}

/// An error as Python's `str(exc)` gives it: "[Errno 5] Input/output error" for an OS
/// error, the message itself for a damaged gzip stream.
pub fn python_os_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("[Errno {code}] {}", strerror(e)),
        None => e
            .get_ref()
            .map_or_else(|| e.to_string(), |inner| inner.to_string()),
    }
}

/// A file that adds to a ReadMeter each byte read for the first time (the magic number is
/// read twice, a chunk's tail again with the next chunk).
struct Metered<R> {
    inner: R,
    meter: ReadMeter,
    at: u64,
    seen: u64,
}

impl<R> Metered<R> {
    fn new(inner: R, meter: ReadMeter) -> Metered<R> {
        Metered {
            inner,
            meter,
            at: 0,
            seen: 0,
        }
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.at += n as u64;
        if self.at > self.seen {
            self.meter.fetch_add(self.at - self.seen, Ordering::Relaxed);
            self.seen = self.at;
        }
        Ok(n)
    }
}

impl<R: Seek> Seek for Metered<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.at = self.inner.seek(pos)?;
        Ok(self.at)
    }
}

/// Compressed bytes handed to each inflate call, as Python's `_GzipReader` reads them
/// (`io.DEFAULT_BUFFER_SIZE`): where inside a damaged stream an error shows depends on it.
const INPUT_WINDOW: usize = 8192;
/// Decompressed bytes of the first read, the one whose bytes are the magic number (Python
/// peeks through a BufferedReader of this size).
pub const PEEK_SIZE: usize = 8192;
const RAW_READ: usize = 1 << 16;

/// A reader with its own buffer, whose `window` tops the buffered bytes up to a length (as
/// Python's `_PaddedFile` does); `BufRead` for the small header reads.
struct Padded<R> {
    raw: R,
    buf: Vec<u8>,
    pos: usize,
}

impl<R: Read> Padded<R> {
    fn new(raw: R) -> Padded<R> {
        Padded {
            raw,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// Read more from the file; false at its end.
    fn refill(&mut self, at_least: usize) -> io::Result<bool> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let before = self.buf.len();
        read_up_to(&mut self.raw, at_least.max(RAW_READ), &mut self.buf)?;
        Ok(self.buf.len() > before)
    }

    /// The next `n` bytes (fewer only at the end of the file), not consumed.
    fn window(&mut self, n: usize) -> io::Result<&[u8]> {
        while self.buf.len() - self.pos < n {
            let missing = n - (self.buf.len() - self.pos);
            if !self.refill(missing)? {
                break;
            }
        }
        let end = self.buf.len().min(self.pos + n);
        Ok(self.buf.get(self.pos..end).unwrap_or_default())
    }
}

impl<R: Read> Read for Padded<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Padded<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.buf.len() {
            self.refill(RAW_READ)?;
        }
        Ok(self.buf.get(self.pos..).unwrap_or_default())
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }
}

const EOF_MESSAGE: &str = "Compressed file ended before the end-of-stream marker was reached";

/// gzip (RFC 1952) members one after another, decompressed as Python's `gzip` module reads
/// them: zero bytes between members are padding; anything else must start a member. Errors
/// carry Python's messages.
struct GzipStream<R> {
    inner: Padded<R>,
    inflate: Decompress,
    crc: Crc,
    member: Member,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Member {
    /// A member header (or the end of the file) comes next.
    Header,
    Body,
    /// The deflate stream ended: CRC and length come next.
    Trailer,
    Done,
}

fn gzip_error(message: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, message)
}

fn eof_error() -> io::Error {
    io::Error::new(ErrorKind::UnexpectedEof, EOF_MESSAGE)
}

impl<R: Read> GzipStream<R> {
    fn new(raw: R) -> GzipStream<R> {
        GzipStream {
            inner: Padded::new(raw),
            inflate: Decompress::new(false),
            crc: Crc::new(),
            member: Member::Header,
        }
    }

    /// `n` bytes, or Python's end-of-stream error.
    fn read_exact_vec(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; n];
        self.inner.read_exact(&mut buf).map_err(|e| {
            if e.kind() == ErrorKind::UnexpectedEof {
                eof_error()
            } else {
                e
            }
        })?;
        Ok(buf)
    }

    /// Skip a zero-terminated header string (the end of the file ends it too).
    fn skip_string(&mut self) -> io::Result<()> {
        loop {
            let mut b = [0u8; 1];
            if self.inner.read(&mut b)? == 0 || b[0] == 0 {
                return Ok(());
            }
        }
    }

    /// Read a member header (RFC 1952 section 2.3); false at the end of the file.
    fn read_header(&mut self) -> io::Result<bool> {
        let mut magic = Vec::with_capacity(2);
        read_up_to(&mut self.inner, 2, &mut magic)?;
        if magic.is_empty() {
            return Ok(false);
        }
        if magic != GZIP_MAGIC {
            return Err(gzip_error(format!(
                "Not a gzipped file ({})",
                python_bytes_repr(&magic)
            )));
        }
        let fixed = self.read_exact_vec(8)?;
        if fixed.first() != Some(&8) {
            return Err(gzip_error("Unknown compression method".to_string()));
        }
        let flags = fixed.get(1).copied().unwrap_or(0);
        if flags & 4 != 0 {
            let len = self.read_exact_vec(2)?;
            let extra = u16::from_le_bytes([len[0], len[1]]);
            self.read_exact_vec(usize::from(extra))?;
        }
        if flags & 8 != 0 {
            self.skip_string()?; // FNAME
        }
        if flags & 16 != 0 {
            self.skip_string()?; // FCOMMENT
        }
        if flags & 2 != 0 {
            self.read_exact_vec(2)?; // FHCRC, not checked (as Python)
        }
        Ok(true)
    }

    /// Check the member's CRC-32 and length, then skip zero padding.
    fn read_trailer(&mut self) -> io::Result<()> {
        let trailer = self.read_exact_vec(8)?;
        let stored_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let stored_len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        if stored_crc != self.crc.sum() {
            return Err(gzip_error(format!(
                "CRC check failed {stored_crc:#x} != {:#x}",
                self.crc.sum()
            )));
        }
        if stored_len != self.crc.amount() {
            return Err(gzip_error("Incorrect length of data produced".to_string()));
        }
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            let zeros = buf.iter().take_while(|&&b| b == 0).count();
            let all = zeros == buf.len();
            self.inner.consume(zeros);
            if !all {
                return Ok(());
            }
        }
    }

    fn read_some(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.member {
                Member::Done => return Ok(0),
                Member::Trailer => {
                    self.read_trailer()?;
                    self.member = Member::Header;
                }
                Member::Header => {
                    if !self.read_header()? {
                        self.member = Member::Done;
                        return Ok(0);
                    }
                    self.inflate.reset(false);
                    self.crc.reset();
                    self.member = Member::Body;
                }
                Member::Body => {
                    let input = self.inner.window(INPUT_WINDOW)?;
                    let ended = input.is_empty();
                    let (before_in, before_out) =
                        (self.inflate.total_in(), self.inflate.total_out());
                    let status = self
                        .inflate
                        .decompress(input, out, FlushDecompress::None)
                        .map_err(|e| {
                            gzip_error(format!(
                                "Error -3 while decompressing data: {}",
                                e.message().unwrap_or("invalid compressed data")
                            ))
                        })?;
                    let consumed = (self.inflate.total_in() - before_in) as usize;
                    let produced = (self.inflate.total_out() - before_out) as usize;
                    self.inner.consume(consumed);
                    let data = out.get(..produced).unwrap_or_default();
                    self.crc.update(data);
                    if status == Status::StreamEnd {
                        self.member = Member::Trailer;
                    }
                    if produced > 0 {
                        return Ok(produced);
                    }
                    if ended && status != Status::StreamEnd {
                        return Err(eof_error());
                    }
                }
            }
        }
    }
}

impl<R: Read> Read for GzipStream<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let result = self.read_some(out);
        if result.is_err() {
            self.member = Member::Done; // one error ends the stream
        }
        result
    }
}

/// Python's `repr()` of a bytes object, for gzip's "Not a gzipped file (b'..')".
fn python_bytes_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut s = format!("b{quote}");
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            _ if b == quote as u8 => {
                s.push('\\');
                s.push(quote);
            }
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push(quote);
    s
}
