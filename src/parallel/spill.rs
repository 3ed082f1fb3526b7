//! The scratch files of a distributed run (`--executor dask`, docs/scale-out.md): a small
//! versioned little-endian format of our own, so that the package needs no pyarrow. Every
//! file starts with an 8-byte magic naming its kind and a u16 version; integers are fixed
//! width, strings and byte runs carry a u32 length. Files are written under a unique
//! temporary name and renamed when complete (`write_atomically`): a task that Dask runs
//! again (a lost worker) replaces the file whole, never appends to a half-written one.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::decode::Segment;

/// The format version every scratch file carries (a reader refuses another); 8: a segment
/// carries `short_frame`.
pub const VERSION: u16 = 8;

/// A segment without an IP ID (IPv6), in the u32 field that holds one.
const NO_IP_ID: u32 = u32::MAX;

/// Magics: a file's first 8 bytes say what it holds.
pub const SEGMENTS_MAGIC: &[u8; 8] = b"TTSEGS\0\0";
pub const MANIFEST_MAGIC: &[u8; 8] = b"TTMANI\0\0";
pub const RECORDS_MAGIC: &[u8; 8] = b"TTRECS\0\0";
pub const TIMES_MAGIC: &[u8; 8] = b"TTTIME\0\0";
pub const CLOCK_MAGIC: &[u8; 8] = b"TTCLCK\0\0";
pub const ORDINALS_MAGIC: &[u8; 8] = b"TTORDS\0\0";

/// Appends fixed-width little-endian values to a buffer.
#[derive(Default)]
pub struct Out {
    pub buf: Vec<u8>,
}

impl Out {
    /// A buffer starting with `magic` and the version.
    pub fn new(magic: &[u8; 8]) -> Out {
        let mut out = Out { buf: Vec::new() };
        out.buf.extend_from_slice(magic);
        out.u16(VERSION);
        out
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u128(&mut self, v: u128) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
    }
    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    /// LEB128: 7 bits a byte, low first (small numbers, such as the steps between sorted
    /// timestamps, take one to three bytes).
    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// A segment and the bytes the analyzers read of it (the TCP header and the captured
    /// payload: `connection` reads nothing before `tcp_off`), its offsets made relative.
    pub fn segment(&mut self, seg: &Segment, data: &[u8]) {
        let start = seg.tcp_off.min(data.len());
        let header_end = seg.tcp_off.saturating_add(20 + seg.opt_cap as usize);
        let payload_end = seg.payload_off.saturating_add(seg.payload_cap as usize);
        let end = header_end.max(payload_end).min(data.len()).max(start);
        self.i64(seg.ts_ns);
        self.u128(seg.src);
        self.u128(seg.dst);
        self.u16(seg.sport);
        self.u16(seg.dport);
        self.u32(seg.seq);
        self.u32(seg.ack);
        self.u16(seg.flags);
        self.u16(seg.window);
        // the IPv4 ID (capture duplicates are told by it); NO_IP_ID for IPv6
        self.u32(seg.ip_id.map_or(NO_IP_ID, u32::from));
        self.u8(u8::from(seg.short_frame));
        for v in [
            seg.tcp_hlen,
            seg.opt_cap,
            seg.payload_len,
            seg.payload_cap,
            seg.ip_len,
            seg.tunnel,
        ] {
            self.u32(v);
        }
        self.u32(seg.payload_off.saturating_sub(seg.tcp_off) as u32);
        self.bytes(data.get(start..end).unwrap_or(&[]));
    }
}

/// Reads what `Out` wrote; every read is bounds-checked (a damaged or foreign file is an
/// error, never a panic).
pub struct In<'a> {
    data: &'a [u8],
    at: usize,
    what: &'a str,
}

impl<'a> In<'a> {
    /// A reader of `data`, which must start with `magic` and this version.
    pub fn new(data: &'a [u8], magic: &[u8; 8], what: &'a str) -> Result<In<'a>, String> {
        let mut input = In { data, at: 0, what };
        if input.take(8)? != magic {
            return Err(format!("{what}: not a tcptrace scratch file of this kind"));
        }
        let version = input.u16()?;
        if version != VERSION {
            return Err(format!(
                "{what}: scratch format version {version}, expected {VERSION}"
            ));
        }
        Ok(input)
    }

    /// A reader of a block cut from a file whose header `new` already checked (a reduce's
    /// output is read one length-prefixed block at a time: `Blocks`).
    pub fn block(data: &'a [u8], what: &'a str) -> In<'a> {
        In { data, at: 0, what }
    }

    pub fn at_end(&self) -> bool {
        self.at >= self.data.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n);
        let got = end.and_then(|end| self.data.get(self.at..end));
        match got {
            Some(bytes) => {
                self.at += n;
                Ok(bytes)
            }
            None => Err(format!("{}: scratch file cut short", self.what)),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16, String> {
        self.array().map(u16::from_le_bytes)
    }
    pub fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_le_bytes)
    }
    pub fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }
    pub fn i64(&mut self) -> Result<i64, String> {
        self.array().map(i64::from_le_bytes)
    }
    pub fn u128(&mut self) -> Result<u128, String> {
        self.array().map(u128::from_le_bytes)
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn str(&mut self) -> Result<String, String> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }
    /// What `Out::varint` wrote; more than 64 bits is damage.
    pub fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("{}: a number longer than 64 bits", self.what))
    }
    /// A count of items each at least `min_size` bytes long: checked against what is left,
    /// so that a damaged count cannot ask for a huge allocation.
    pub fn count(&mut self, min_size: usize) -> Result<usize, String> {
        let n = self.u64()? as usize;
        let left = self.data.len().saturating_sub(self.at);
        if n.saturating_mul(min_size.max(1)) > left {
            return Err(format!("{}: scratch file cut short", self.what));
        }
        Ok(n)
    }

    /// A segment `Out::segment` wrote, its offsets pointing at its bytes in this file's
    /// buffer (no copy).
    pub fn segment(&mut self) -> Result<Segment, String> {
        let ts_ns = self.i64()?;
        let (src, dst) = (self.u128()?, self.u128()?);
        let (sport, dport) = (self.u16()?, self.u16()?);
        let (seq, ack) = (self.u32()?, self.u32()?);
        let (flags, window) = (self.u16()?, self.u16()?);
        let ip_id = u16::try_from(self.u32()?).ok();
        let short_frame = self.u8()? != 0;
        let mut v = [0u32; 7];
        for slot in &mut v {
            *slot = self.u32()?;
        }
        let [tcp_hlen, opt_cap, payload_len, payload_cap, ip_len, tunnel, payload_at] = v;
        let length = self.u32()? as usize;
        let tcp_off = self.at;
        self.take(length)?;
        Ok(Segment {
            ts_ns,
            src,
            dst,
            sport,
            dport,
            seq,
            ack,
            flags,
            window,
            tcp_off,
            tcp_hlen,
            opt_cap,
            payload_off: tcp_off + payload_at as usize,
            payload_len,
            payload_cap,
            frame_index: 0,
            ip_len,
            ip_id,
            tunnel,
            short_frame,
        })
    }

    /// Where the bytes of a segment `segment` returned end in the buffer.
    pub fn position(&self) -> usize {
        self.at
    }
}

/// Write `bytes` to `path` whole: to a temporary name unique to this process and call,
/// then renamed into place (atomic on one filesystem).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}-{call}.tmp", std::process::id()));
    let fail = |e: std::io::Error| format!("{}: cannot write: {e}", path.display());
    let mut file = fs::File::create(&tmp).map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        fail(e)
    })
}

/// Read a whole scratch file.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
}

/// A scratch file read as a stream of length-prefixed blocks (u64 length, then the block),
/// after its magic and version: the reader holds one block at a time, not the file.
pub struct Blocks {
    file: std::io::BufReader<fs::File>,
    left: u64,
    block: Vec<u8>,
    what: String,
}

impl Blocks {
    /// Open `path`, which must start with `magic` and this version.
    pub fn open(path: &Path, magic: &[u8; 8]) -> Result<Blocks, String> {
        use std::io::Read;
        let what = path.display().to_string();
        let fail = |e: std::io::Error| format!("{what}: cannot read: {e}");
        let file = fs::File::open(path).map_err(fail)?;
        let size = file.metadata().map_err(fail)?.len();
        let mut file = std::io::BufReader::with_capacity(1 << 20, file);
        let mut header = [0u8; 10];
        file.read_exact(&mut header)
            .map_err(|_| format!("{what}: scratch file cut short"))?;
        In::new(&header, magic, &what)?;
        Ok(Blocks {
            file,
            left: size.saturating_sub(header.len() as u64),
            block: Vec::new(),
            what,
        })
    }

    /// The next block, read into a buffer reused from block to block (its length is checked
    /// against the bytes left in the file before anything is allocated).
    pub fn next_block(&mut self) -> Result<In<'_>, String> {
        use std::io::Read;
        let cut = || format!("{}: scratch file cut short", self.what);
        let mut length = [0u8; 8];
        self.file.read_exact(&mut length).map_err(|_| cut())?;
        let length = u64::from_le_bytes(length);
        let left = self.left.saturating_sub(8);
        if length > left {
            return Err(cut());
        }
        self.left = left - length;
        self.block.clear();
        self.block.resize(length as usize, 0);
        self.file.read_exact(&mut self.block).map_err(|_| cut())?;
        Ok(In::block(&self.block, &self.what))
    }
}

/// Append `block` to `out` as `Blocks` reads it: its length (u64), then its bytes.
pub fn write_block(out: &mut impl Write, block: &[u8]) -> std::io::Result<()> {
    out.write_all(&(block.len() as u64).to_le_bytes())?;
    out.write_all(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_round_trips_with_its_bytes() {
        // link and IP headers (not kept), the TCP header, 8 bytes of options, the payload
        let mut data = vec![0xEE; 14 + 20];
        data.extend_from_slice(&[0x11; 20]);
        data.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        data.extend_from_slice(b"payload");
        let seg = Segment {
            ts_ns: -5,
            src: 0xffff_0a00_0001,
            dst: 0x2001 << 112,
            sport: 40000,
            dport: 443,
            seq: 7,
            ack: 9,
            flags: 0x18,
            window: 512,
            tcp_off: 14 + 20,
            tcp_hlen: 28,
            opt_cap: 8,
            payload_off: 14 + 20 + 28,
            payload_len: 10,
            payload_cap: 7,
            frame_index: 3,
            ip_len: 60,
            ip_id: Some(0xBEEF),
            tunnel: 4,
            short_frame: true,
        };
        let mut out = Out::new(SEGMENTS_MAGIC);
        out.segment(&seg, &data);
        let mut input = In::new(&out.buf, SEGMENTS_MAGIC, "t").unwrap();
        let got = input.segment().unwrap();
        assert!(input.at_end());
        let back = &out.buf;
        let start = back.len() - (28 + 7);
        assert_eq!(
            (got.tcp_off, got.payload_off, got.frame_index),
            (start, start + 28, 0)
        );
        assert_eq!(&back[got.payload_off..], b"payload");
        assert_eq!(
            &back[got.tcp_off + 20..got.tcp_off + 28],
            &[1, 2, 3, 4, 5, 6, 7, 8]
        );
        let same = Segment {
            tcp_off: seg.tcp_off,
            payload_off: seg.payload_off,
            frame_index: seg.frame_index,
            ..got
        };
        assert_eq!(format!("{same:?}"), format!("{seg:?}"));
    }

    #[test]
    fn varints_round_trip_and_overlong_ones_are_errors() {
        let values = [0, 1, 127, 128, 300, 1 << 35, u64::MAX];
        let mut out = Out::new(TIMES_MAGIC);
        values.iter().for_each(|&v| out.varint(v));
        assert_eq!(out.buf.len(), 10 + 1 + 1 + 1 + 2 + 2 + 6 + 10);
        let mut input = In::new(&out.buf, TIMES_MAGIC, "t").unwrap();
        for v in values {
            assert_eq!(input.varint().unwrap(), v);
        }
        assert!(input.at_end());
        let mut long = Out::new(TIMES_MAGIC);
        long.buf.extend_from_slice(&[0x80; 11]);
        let mut input = In::new(&long.buf, TIMES_MAGIC, "t").unwrap();
        assert_eq!(
            input.varint().unwrap_err(),
            "t: a number longer than 64 bits".to_string()
        );
        let mut cut = Out::new(TIMES_MAGIC);
        cut.buf.push(0x80);
        let mut input = In::new(&cut.buf, TIMES_MAGIC, "t").unwrap();
        assert!(input.varint().is_err());
    }

    #[test]
    fn damaged_files_are_errors() {
        let mut out = Out::new(MANIFEST_MAGIC);
        out.u64(1 << 40); // a count far beyond the file
        assert!(In::new(&out.buf, SEGMENTS_MAGIC, "x").is_err());
        let mut input = In::new(&out.buf, MANIFEST_MAGIC, "x").unwrap();
        assert_eq!(
            input.count(8).unwrap_err(),
            "x: scratch file cut short".to_string()
        );
        let mut other = out.buf.clone();
        other[8] = 9;
        assert!(In::new(&other, MANIFEST_MAGIC, "x")
            .err()
            .is_some_and(|e| e.contains("version 9")));
        assert!(In::new(&out.buf[..5], MANIFEST_MAGIC, "x").is_err());
    }

    #[test]
    fn blocks_are_read_one_at_a_time_and_checked() {
        let dir = std::env::temp_dir().join(format!("tt-blocks-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p0.records");
        let mut file = Out::new(RECORDS_MAGIC).buf;
        write_block(&mut file, &[1, 2, 3]).unwrap();
        write_block(&mut file, &[]).unwrap();
        write_block(&mut file, &7u64.to_le_bytes()).unwrap();
        fs::write(&path, &file).unwrap();
        let mut blocks = Blocks::open(&path, RECORDS_MAGIC).unwrap();
        let mut first = blocks.next_block().unwrap();
        assert_eq!([first.u8(), first.u8(), first.u8()], [Ok(1), Ok(2), Ok(3)]);
        assert!(first.at_end());
        assert!(blocks.next_block().unwrap().at_end());
        assert_eq!(blocks.next_block().unwrap().u64(), Ok(7));
        let what = path.display().to_string();
        assert_eq!(
            blocks.next_block().err(),
            Some(format!("{what}: scratch file cut short"))
        );
        // a length beyond the file is refused before it is allocated
        let mut long = Out::new(RECORDS_MAGIC).buf;
        long.extend_from_slice(&(1u64 << 60).to_le_bytes());
        long.extend_from_slice(&[0; 16]);
        fs::write(&path, &long).unwrap();
        let mut blocks = Blocks::open(&path, RECORDS_MAGIC).unwrap();
        assert_eq!(
            blocks.next_block().err(),
            Some(format!("{what}: scratch file cut short"))
        );
        assert!(Blocks::open(&path, MANIFEST_MAGIC).is_err());
        fs::write(&path, b"TTRE").unwrap();
        assert!(Blocks::open(&path, RECORDS_MAGIC).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
