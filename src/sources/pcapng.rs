//! pcapng files: sections, several interfaces with their own link types and clocks.
//!
//! Spec: draft-ietf-opsawg-pcapng. Only the blocks that carry packets or describe interfaces
//! matter here (SHB, IDB, EPB, SPB and the obsolete PB); every other block (name resolution,
//! statistics, custom, unknown) is skipped by its length, as the spec requires of readers
//! (section 3.1).
//!
//! The blocks are parsed by hand rather than with pcap-parser's block parsers: those reject
//! a block as a whole (trailing length differing from the leading one, options that do not
//! parse, a captured length past the block) where this reader must tell damage apart as the
//! Python reader does (a block too short for its type or a packet overrunning its block is
//! skipped and counted as `bad_block`; an impossible block length stops the file as
//! `corrupt_block`), and they do not give the timestamp as floor-divided nanoseconds
//! clamped to i64.

use std::sync::Arc;

use super::chunks::ChunkReader;
use super::{CaptureError, Frame, FrameBatch, Origin, SourceStats};

const SHB_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const IDB: u32 = 0x0000_0001;
/// The obsolete Packet Block.
const PB: u32 = 0x0000_0002;
const SPB: u32 = 0x0000_0003;
const EPB: u32 = 0x0000_0006;
/// Longest block accepted (longer: a damaged length).
pub const MAX_BLOCK: u32 = 16 << 20;

/// Smallest total length of each block type that has fixed fields (12 = type, length,
/// trailer): a shorter block cannot be unpacked and is skipped as a bad block.
fn min_block(block_type: u32) -> u32 {
    match block_type {
        EPB | PB => 32,
        SPB => 16,
        IDB => 20,
        _ => 12,
    }
}

/// One interface of a section: its link type and clock.
#[derive(Clone, Copy, Debug)]
struct Interface {
    linktype: u32,
    snaplen: u32,
    /// if_tsresol as a power: 10^exponent (or 2^exponent) units per second.
    resolution_exponent: u8,
    resolution_binary: bool,
    /// if_tsoffset, seconds added to every timestamp.
    offset_seconds: i64,
}

impl Interface {
    /// Nanoseconds of a raw timestamp, floor-divided as Python does and clamped to i64 (a
    /// 64-bit timestamp in µs, or an if_tsoffset, can exceed int64 nanoseconds).
    fn nanoseconds(self, raw: u64) -> i64 {
        let scaled = u128::from(raw) * 1_000_000_000; // < 2^94
        let units = if self.resolution_binary {
            1u128.checked_shl(u32::from(self.resolution_exponent))
        } else {
            10u128.checked_pow(u32::from(self.resolution_exponent))
        };
        // more units per second than fit in u128: the quotient is 0
        let ns = units.map_or(0, |u| scaled / u) as i128;
        let ns = ns + i128::from(self.offset_seconds) * 1_000_000_000;
        ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

/// Byte order and interfaces of the current section.
struct Section {
    big_endian: bool,
    interfaces: Vec<Interface>,
}

impl Section {
    fn u16_at(&self, buf: &[u8], at: usize) -> u16 {
        let b = [byte(buf, at), byte(buf, at + 1)];
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32_at(&self, buf: &[u8], at: usize) -> u32 {
        let b = [
            byte(buf, at),
            byte(buf, at + 1),
            byte(buf, at + 2),
            byte(buf, at + 3),
        ];
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn i64_at(&self, buf: &[u8], at: usize) -> i64 {
        let mut b = [0u8; 8];
        for (i, v) in b.iter_mut().enumerate() {
            *v = byte(buf, at + i);
        }
        if self.big_endian {
            i64::from_be_bytes(b)
        } else {
            i64::from_le_bytes(b)
        }
    }

    fn interface(&self, index: u32) -> Option<Interface> {
        self.interfaces.get(index as usize).copied()
    }
}

/// A byte the caller has bounds-checked; 0 past the end rather than a panic.
fn byte(buf: &[u8], at: usize) -> u8 {
    buf.get(at).copied().unwrap_or(0)
}

/// Frame batches of a pcapng file, one per chunk.
pub struct PcapngReader {
    chunks: ChunkReader,
    name: String,
    section: Option<Section>,
    /// Timestamp of the last timestamped packet: an SPB carries none.
    last_ts: i64,
    /// The piece being read (of the current chunk) and how far its blocks were walked.
    buf: Option<Arc<Vec<u8>>>,
    end: usize,
    /// The piece holds the chunk up to its end (no more pieces of it to read).
    chunk_read: bool,
    /// The piece's blocks were walked (and its frames handed on).
    walked: bool,
    /// Damage that stops the file where the walk stopped ("" if none).
    damage: String,
    /// Frames of the current batch in earlier pieces.
    batch_frames: usize,
    done: bool,
    /// The file's index in `SourceStats::files` (its batches' `Origin`).
    pub file: u32,
    /// Frames of the file handed on so far.
    frames: u64,
}

impl PcapngReader {
    pub fn new(chunks: ChunkReader, name: &str) -> PcapngReader {
        PcapngReader {
            chunks,
            name: name.to_string(),
            section: None,
            last_ts: 0,
            buf: None,
            end: 0,
            chunk_read: false,
            walked: false,
            damage: String::new(),
            batch_frames: 0,
            done: false,
            file: 0,
            frames: 0,
        }
    }

    /// Frames of the file handed on so far (the last good one's number).
    pub fn frames_read(&self) -> u64 {
        self.frames
    }

    /// The next batch, None at the end of the file or at a damaged block.
    pub fn next_batch(
        &mut self,
        stats: &mut SourceStats,
    ) -> Result<Option<FrameBatch>, CaptureError> {
        // pieces as large as a chunk: every piece is a whole batch
        Ok(self.next_piece(stats, usize::MAX)?.map(|(batch, _)| batch))
    }

    /// The next piece of a batch (a chunk), read at most `piece` bytes at a time (more when
    /// a block is longer), and whether it ends its batch; None at the end of the file or at
    /// a damaged block. The batches are the same whatever the piece size; a piece that ends
    /// a batch may be empty (the batch's last frames came in an earlier piece).
    pub fn next_piece(
        &mut self,
        stats: &mut SourceStats,
        piece: usize,
    ) -> Result<Option<(FrameBatch, bool)>, CaptureError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let buf = match &self.buf {
                Some(buf) => Arc::clone(buf),
                None => {
                    let (buf, whole) = self.chunks.first_piece(piece);
                    if buf.is_empty() {
                        self.done = true;
                        return Ok(None);
                    }
                    self.end = 0;
                    self.chunk_read = whole;
                    self.walked = false;
                    self.batch_frames = 0;
                    let buf = Arc::new(buf);
                    self.buf = Some(Arc::clone(&buf));
                    buf
                }
            };
            if !self.walked {
                self.walked = true;
                let mut frames = Vec::new();
                let position = self.chunks.position;
                let (pos, damage) = self.walk(&buf, position, &mut frames, stats)?;
                self.end = pos;
                self.damage = damage;
                let ends = self.chunk_read || !self.damage.is_empty();
                if !frames.is_empty() || (ends && self.batch_frames > 0) {
                    stats.frames += frames.len() as u64;
                    let origin = Origin::File {
                        file: self.file,
                        before: self.frames,
                    };
                    self.frames += frames.len() as u64;
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
                    return Ok(Some((batch, ends)));
                }
            }
            // Python does this when asked for the next batch, so warnings come in the
            // same order
            self.buf = None;
            if !self.damage.is_empty() {
                stats.skip("corrupt_block", 1);
                stats.warn_once(
                    "corrupt_block",
                    &format!(
                        "{}: {}; the rest of the file was not read",
                        self.name, self.damage
                    ),
                );
                self.done = true;
                continue;
            }
            if !self.chunk_read {
                // the rest of the chunk, from the block the piece cut
                let block = self.pending_block_len(buf.get(self.end..).unwrap_or_default());
                let (next, whole) = self.chunks.next_piece(buf, self.end, piece.max(block));
                self.end = 0;
                self.chunk_read = whole;
                self.walked = false;
                self.buf = Some(Arc::new(next));
                continue;
            }
            if self.chunks.consumed(&buf, self.end, self.frames, stats) {
                self.done = true;
            }
            self.chunks.recycle(buf);
        }
    }

    /// The length of the block `rest` starts with, as far as its first 12 bytes tell it
    /// (a piece must hold it whole).
    fn pending_block_len(&self, rest: &[u8]) -> usize {
        let (Some(head), Some(length)) = (rest.get(..4), rest.get(4..8)) else {
            return 12;
        };
        let big_endian = if head == SHB_MAGIC {
            rest.get(8..12) == Some(&[0x1a, 0x2b, 0x3c, 0x4d][..])
        } else {
            self.section.as_ref().is_some_and(|s| s.big_endian)
        };
        let mut field = [0u8; 4];
        field.copy_from_slice(length);
        let blen = if big_endian {
            u32::from_be_bytes(field)
        } else {
            u32::from_le_bytes(field)
        };
        blen.clamp(12, MAX_BLOCK) as usize
    }

    /// Walk the blocks of `buf` (which starts at file offset `position`), appending its
    /// packets to `frames`: (bytes consumed, damage that stops the file or "").
    fn walk(
        &mut self,
        buf: &[u8],
        position: u64,
        frames: &mut Vec<Frame>,
        stats: &mut SourceStats,
    ) -> Result<(usize, String), CaptureError> {
        let n = buf.len();
        let mut pos = 0usize;
        while pos + 12 <= n {
            let at = position + pos as u64;
            let is_shb = buf.get(pos..pos + 4) == Some(&SHB_MAGIC[..]);
            if self.section.is_none() || is_shb {
                if !is_shb {
                    return Err(CaptureError(format!(
                        "{}: not a pcapng file (no section header)",
                        self.name
                    )));
                }
                let big_endian = match buf.get(pos + 8..pos + 12) {
                    Some([0x4d, 0x3c, 0x2b, 0x1a]) => false,
                    Some([0x1a, 0x2b, 0x3c, 0x4d]) => true,
                    _ => {
                        let after = self.frames + frames.len() as u64;
                        let damage = format!(
                            "section header at byte {at} (after frame {after}) has a bad \
                             byte-order magic"
                        );
                        return Ok((pos, damage));
                    }
                };
                self.section = Some(Section {
                    big_endian,
                    interfaces: Vec::new(),
                });
            }
            let Some(section) = self.section.as_mut() else {
                return Ok((pos, String::new())); // unreachable: set just above
            };
            let block_type = section.u32_at(buf, pos);
            let blen = section.u32_at(buf, pos + 4);
            if blen < 12 || blen % 4 != 0 || blen > MAX_BLOCK {
                let after = self.frames + frames.len() as u64;
                let damage = format!(
                    "block at byte {at} (after frame {after}) has an impossible length {blen}"
                );
                return Ok((pos, damage));
            }
            let blen_usize = blen as usize;
            if pos + blen_usize > n {
                break;
            }
            let body = pos + 8;
            // (after frame N: the packets read before it; Wireshark stops at such a block)
            let overrun = |stats: &mut SourceStats, name: &str, after: u64| {
                stats.skip("bad_block", 1);
                stats.warn_once(
                    "bad_block",
                    &format!(
                        "{name}: packet block at byte {at} (after frame {after}) names an \
                         unknown interface or overruns"
                    ),
                );
            };
            if blen < min_block(block_type) {
                stats.skip("bad_block", 1);
                stats.warn_once(
                    "bad_block",
                    &format!(
                        "{}: block at byte {at} (after frame {}) is too short ({blen} bytes) \
                         for its type {block_type:#x}",
                        self.name,
                        self.frames + frames.len() as u64
                    ),
                );
            } else if block_type == EPB || block_type == PB {
                // EPB: interface u32; PB: interface u16, drops u16. Then the same fields.
                let iface_id = if block_type == EPB {
                    section.u32_at(buf, body)
                } else {
                    u32::from(section.u16_at(buf, body))
                };
                let hi = section.u32_at(buf, body + 4);
                let lo = section.u32_at(buf, body + 8);
                let incl = section.u32_at(buf, body + 12);
                let orig = section.u32_at(buf, body + 16);
                match section.interface(iface_id) {
                    Some(iface) if 20 + u64::from(incl) <= u64::from(blen) - 12 => {
                        self.last_ts = iface.nanoseconds((u64::from(hi) << 32) | u64::from(lo));
                        frames.push(Frame {
                            ts_ns: self.last_ts,
                            offset: body + 20,
                            caplen: incl,
                            wirelen: orig,
                            linktype: iface.linktype,
                        });
                    }
                    _ => overrun(stats, &self.name, self.frames + frames.len() as u64),
                }
            } else if block_type == SPB {
                let orig = section.u32_at(buf, body);
                match section.interface(0) {
                    Some(iface) => {
                        let snap = if iface.snaplen == 0 {
                            orig
                        } else {
                            iface.snaplen
                        };
                        let incl = orig.min(blen - 16).min(snap);
                        // SPB carries no timestamp: keep capture order
                        frames.push(Frame {
                            ts_ns: self.last_ts,
                            offset: body + 4,
                            caplen: incl,
                            wirelen: orig,
                            linktype: iface.linktype,
                        });
                    }
                    None => overrun(stats, &self.name, self.frames + frames.len() as u64),
                }
            } else if block_type == IDB {
                let iface = parse_idb(buf, body, blen_usize, section);
                section.interfaces.push(iface);
            }
            // any other block (NRB, ISB, DSB, custom, unknown) carries no packet: skip it
            pos += blen_usize;
        }
        Ok((pos, String::new()))
    }

    /// Why reading stopped before the end of the file (a damaged gzip stream), once.
    pub fn take_error(&mut self) -> Option<String> {
        self.chunks.take_error()
    }
}

/// An Interface Description Block (section 4.2) from its body at `body`: link type,
/// snaplen, and the options if_tsresol (9) and if_tsoffset (14).
fn parse_idb(buf: &[u8], body: usize, blen: usize, section: &Section) -> Interface {
    let mut iface = Interface {
        linktype: u32::from(section.u16_at(buf, body)),
        snaplen: section.u32_at(buf, body + 4),
        resolution_exponent: 6,
        resolution_binary: false,
        offset_seconds: 0,
    };
    let mut pos = body + 8;
    let end = body + blen - 12;
    while pos + 4 <= end {
        let code = section.u16_at(buf, pos);
        let length = usize::from(section.u16_at(buf, pos + 2));
        let value = pos + 4;
        if code == 0 || value + length > end {
            break; // end of options, or an option overrunning
        }
        if code == 9 && length >= 1 {
            let resol = byte(buf, value);
            iface.resolution_exponent = resol & 0x7F;
            iface.resolution_binary = resol & 0x80 != 0;
        } else if code == 14 && length >= 8 {
            iface.offset_seconds = section.i64_at(buf, value);
        }
        pos = value + length.div_ceil(4) * 4;
    }
    iface
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(exponent: u8, binary: bool, offset_seconds: i64) -> Interface {
        Interface {
            linktype: 1,
            snaplen: 0,
            resolution_exponent: exponent,
            resolution_binary: binary,
            offset_seconds,
        }
    }

    #[test]
    fn timestamps_floor_divide_and_clamp_as_python() {
        assert_eq!(
            iface(6, false, 0).nanoseconds(1_700_000_000_000_001),
            1_700_000_000_000_001_000
        );
        assert_eq!(iface(9, true, 0).nanoseconds(513), 1_001_953_125); // 513 * 1e9 // 512
        assert_eq!(iface(127, false, 7).nanoseconds(u64::MAX), 7_000_000_000);
        assert_eq!(iface(127, true, 0).nanoseconds(u64::MAX), 0);
        assert_eq!(iface(6, false, -5).nanoseconds(0), -5_000_000_000);
        assert_eq!(iface(6, false, 0).nanoseconds(u64::MAX), i64::MAX);
        assert_eq!(iface(6, false, i64::MIN).nanoseconds(0), i64::MIN);
    }

    #[test]
    fn idb_options_resolution_offset_and_overrun() {
        let section = Section {
            big_endian: false,
            interfaces: Vec::new(),
        };
        // IDB body: linktype 101, snaplen 96; if_tsresol 2^-10; if_tsoffset 3; an option
        // overrunning the block ends the options
        let mut block = vec![1, 0, 0, 0, 0, 0, 0, 0];
        block.extend_from_slice(&[101, 0, 0, 0, 96, 0, 0, 0]);
        block.extend_from_slice(&[9, 0, 1, 0, 0x8a, 0, 0, 0]);
        block.extend_from_slice(&[14, 0, 8, 0, 3, 0, 0, 0, 0, 0, 0, 0]);
        block.extend_from_slice(&[2, 0, 200, 0]);
        block.extend_from_slice(&[0, 0, 0, 0]);
        let blen = block.len();
        let parsed = parse_idb(&block, 8, blen, &section);
        assert_eq!((parsed.linktype, parsed.snaplen), (101, 96));
        assert_eq!(
            (parsed.resolution_exponent, parsed.resolution_binary),
            (10, true)
        );
        assert_eq!(parsed.offset_seconds, 3);
    }
}
