//! `live -w FILE`: the frames analyzed, saved as a classic pcap file with nanosecond
//! timestamps (pcap-savefile(5), magic 0xA1B23C4D), batch by batch as they are analyzed.

use std::io::{self, Write};

use crate::sources::FrameBatch;

/// pcap-savefile(5): nanosecond-resolution timestamps.
pub const MAGIC_NS: u32 = 0xA1B2_3C4D;
/// libpcap's default snap length (MAXIMUM_SNAPLEN), what the live capture asks for.
pub const SNAPLEN: u32 = 262_144;

/// A pcap file being written.
pub struct SaveFile<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> SaveFile<W> {
    /// Write the file header for frames of `linktype`.
    pub fn new(mut out: W, linktype: u32) -> io::Result<SaveFile<W>> {
        let mut head = Vec::with_capacity(24);
        head.extend_from_slice(&MAGIC_NS.to_le_bytes());
        head.extend_from_slice(&2u16.to_le_bytes());
        head.extend_from_slice(&4u16.to_le_bytes());
        head.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        head.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        head.extend_from_slice(&SNAPLEN.to_le_bytes());
        head.extend_from_slice(&linktype.to_le_bytes());
        out.write_all(&head)?;
        out.flush()?;
        Ok(SaveFile {
            out,
            buf: Vec::new(),
        })
    }

    /// Append the batch's frames and flush: the file holds every frame analyzed so far.
    pub fn write(&mut self, batch: &FrameBatch) -> io::Result<()> {
        self.buf.clear();
        for (i, f) in batch.frames.iter().enumerate() {
            // Python's divmod (floor) as the Python capture wrote them
            let sec = f.ts_ns.div_euclid(1_000_000_000) as u32;
            let nsec = f.ts_ns.rem_euclid(1_000_000_000) as u32;
            for word in [sec, nsec, f.caplen, f.wirelen] {
                self.buf.extend_from_slice(&word.to_le_bytes());
            }
            self.buf.extend_from_slice(batch.bytes(i));
        }
        self.out.write_all(&self.buf)?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::{Captures, SourceStats};

    #[test]
    fn a_saved_batch_reads_back_the_same() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/pcaps/linux/keepalive.pcap");
        let mut captures = Captures::open(&[path.to_string()], None).unwrap();
        let mut stats = SourceStats::default();
        let (batch, _) = captures.next_piece(&mut stats, 1 << 20).unwrap().unwrap();
        let dir = std::env::temp_dir().join(format!("tcptrace-save-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("copy.pcap");
        let mut save = SaveFile::new(std::fs::File::create(&copy).unwrap(), 1).unwrap();
        save.write(&batch).unwrap();
        drop(save);
        let mut again = Captures::open(&[copy.to_string_lossy().into_owned()], None).unwrap();
        let (back, _) = again.next_piece(&mut stats, 1 << 20).unwrap().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(back.len(), batch.len());
        for i in 0..batch.len() {
            assert_eq!(back.bytes(i), batch.bytes(i));
            let (a, b) = (back.frames[i], batch.frames[i]);
            assert_eq!(
                (a.ts_ns, a.caplen, a.wirelen, a.linktype),
                (b.ts_ns, b.caplen, b.wirelen, b.linktype)
            );
        }
    }
}
