//! Capture sources: the only stage that does I/O. Files are opened by content (pcap,
//! pcapng, either gzip-compressed), read a chunk at a time, and merged in time order when
//! there are several. (Owned by the sources work.)

pub mod chunks;
pub mod clock;
pub mod files;
pub mod frames;
pub mod pcap;
pub mod pcapng;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

pub use files::{display_name, FileReader, STDIN_PATH};
pub use frames::{Frame, FrameBatch, FramePlace, MergedPart, Origin, SourceStats};

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
    pending: Vec<Option<Pending>>,
    /// Files not finished, in the order given.
    live: Vec<usize>,
    done: bool,
    /// The timestamps of the frames handed on (`SourceStats::clock`).
    clock: clock::ClockCheck,
}

/// Bytes of read chunks a merge of many files holds at most (beyond `MIN_MERGE_CHUNK` a
/// file): up to 16 files keep the full `chunks::CHUNK` each.
const MERGE_BUDGET: usize = 128 << 20;
const MIN_MERGE_CHUNK: usize = 1 << 20;

impl Captures {
    /// Open every file now (so a missing file fails before anything is written). `-` is
    /// standard input, which can be read once: given twice, it is refused.
    pub fn open(paths: &[String], meter: Option<ReadMeter>) -> Result<Captures, CaptureError> {
        refuse_stdin_twice(paths)?;
        let readers = paths
            .iter()
            .map(|p| FileReader::open(p, meter.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Captures::from_readers(readers))
    }

    /// Every file opened now, each a capture of its own (`--per-file`), in the order given.
    pub fn open_each(
        paths: &[String],
        meter: Option<ReadMeter>,
    ) -> Result<Vec<Captures>, CaptureError> {
        refuse_stdin_twice(paths)?;
        paths
            .iter()
            .map(|p| Captures::open(std::slice::from_ref(p), meter.clone()))
            .collect()
    }

    pub fn from_readers(mut readers: Vec<FileReader>) -> Captures {
        // The merge holds a chunk of every file at once: with many files (a rotation of
        // 150) 8 MiB each would take gigabytes, so their chunks share MERGE_BUDGET.
        if readers.len() > MERGE_BUDGET / chunks::CHUNK {
            let chunk = merge_chunk(readers.len());
            for reader in &mut readers {
                reader.chunk = chunk;
            }
        }
        Captures {
            pending: (0..readers.len()).map(|_| None).collect(),
            live: (0..readers.len()).collect(),
            readers,
            done: false,
            clock: clock::ClockCheck::default(),
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
        match &next {
            Ok(Some(batch)) => self.clock.observe(&batch.frames, &mut stats.clock),
            _ => self.done = true,
        }
        next
    }

    /// The next piece of a batch and whether it ends its batch: a single file is read
    /// about `piece` bytes at a time where its format allows it (see
    /// `FileReader::next_piece`), so that the bytes are still in the CPU cache when they
    /// are decoded; a merge yields whole batches. The batches are the ones `next_batch`
    /// gives, cut into pieces. None when every file is done.
    pub fn next_piece(
        &mut self,
        stats: &mut SourceStats,
        piece: usize,
    ) -> Result<Option<(FrameBatch, bool)>, CaptureError> {
        if self.done {
            return Ok(None);
        }
        let next = if self.readers.len() == 1 {
            self.readers[0].next_piece(stats, piece)
        } else {
            self.merge_step(stats).map(|b| b.map(|b| (b, true)))
        };
        match &next {
            Ok(Some((batch, _))) => self.clock.observe(&batch.frames, &mut stats.clock),
            _ => self.done = true,
        }
        next
    }

    /// Hand back a piece from `next_piece` once it is fed: a single file's reader reuses
    /// its frame vector for the next piece (see `PcapReader::recycle`).
    pub fn recycle(&mut self, piece: FrameBatch) {
        if let [reader] = self.readers.as_mut_slice() {
            reader.recycle(piece);
        }
    }

    /// One round of the merge: refill the files whose pending frames ran out, then hand on
    /// every frame up to the watermark.
    fn merge_step(&mut self, stats: &mut SourceStats) -> Result<Option<FrameBatch>, CaptureError> {
        for i in self.live.clone() {
            if self.pending[i].as_ref().is_none_or(Pending::is_empty) {
                match self.readers[i].next_batch(stats)? {
                    Some(batch) => self.pending[i] = Some(Pending::of(batch)),
                    None => {
                        self.live.retain(|&j| j != i);
                        self.pending[i] = None;
                    }
                }
            }
        }
        let held: Vec<usize> = (0..self.pending.len())
            .filter(|&i| self.pending[i].as_ref().is_some_and(|p| !p.is_empty()))
            .collect();
        if held.is_empty() {
            return Ok(None);
        }
        // frames up to the watermark cannot be preceded by anything still unread
        let watermark = held
            .iter()
            .filter(|i| self.live.contains(i))
            .filter_map(|&i| self.pending[i].as_ref())
            .filter_map(|p| p.frames().iter().map(|f| f.ts_ns).max())
            .min();
        let mut parts = Vec::with_capacity(held.len());
        for &i in &held {
            let Some(pending) = self.pending[i].as_mut() else {
                continue;
            };
            let (take, keep): (Vec<Frame>, Vec<Frame>) = pending
                .frames()
                .iter()
                .partition(|f| watermark.is_none_or(|w| f.ts_ns <= w));
            pending.left = Some(keep);
            if !take.is_empty() {
                let batch = FrameBatch {
                    data: Arc::clone(&pending.data),
                    frames: take,
                    origin: Origin::Unknown,
                };
                parts.push((batch, pending.part()));
            }
        }
        let mut merged = concat(parts);
        merged.frames.sort_by_key(|f| f.ts_ns); // stable, as numpy's kind="stable"
        Ok(Some(merged))
    }
}

/// A file's batch in a merge, of which earlier rounds may have handed on some frames.
struct Pending {
    data: Arc<Vec<u8>>,
    /// The batch's frames as read (the places of the frames handed on are ranks in it).
    all: Arc<Vec<Frame>>,
    /// The frames not handed on yet (None: all of them).
    left: Option<Vec<Frame>>,
    origin: Origin,
}

impl Pending {
    fn of(batch: FrameBatch) -> Pending {
        Pending {
            data: batch.data,
            all: Arc::new(batch.frames),
            left: None,
            origin: batch.origin,
        }
    }

    fn frames(&self) -> &[Frame] {
        self.left.as_deref().unwrap_or(&self.all)
    }

    fn is_empty(&self) -> bool {
        self.frames().is_empty()
    }

    /// Where the frames of the batch are in their file (in a buffer starting at 0).
    fn part(&self) -> Option<MergedPart> {
        match self.origin {
            Origin::File { file, before } => Some(MergedPart {
                start: 0,
                file,
                before,
                frames: Arc::clone(&self.all),
            }),
            _ => None,
        }
    }
}

/// The chunk size each of `files` files is read with in a merge (a distributed run's map
/// reads each file alone, as the merge would).
pub fn merge_chunk(files: usize) -> usize {
    if files > MERGE_BUDGET / chunks::CHUNK {
        (MERGE_BUDGET / files).max(MIN_MERGE_CHUNK)
    } else {
        chunks::CHUNK
    }
}

/// Standard input can be read once.
fn refuse_stdin_twice(paths: &[String]) -> Result<(), CaptureError> {
    if paths.iter().filter(|p| *p == files::STDIN_PATH).count() > 1 {
        return Err(CaptureError(
            "standard input (-) is given more than once; it can be read only once".into(),
        ));
    }
    Ok(())
}

/// Join batches into one, their buffers back to back (as Python's `FrameBatch.concat`),
/// each with where its frames are in its file (its bytes are its file batch's whole
/// buffer, so a frame's offset in it is its offset in that batch).
fn concat(mut parts: Vec<(FrameBatch, Option<MergedPart>)>) -> FrameBatch {
    if parts.len() == 1 {
        let Some((mut batch, part)) = parts.pop() else {
            return FrameBatch::default();
        };
        batch.origin = origin_of(vec![part]);
        return batch;
    }
    let size = parts.iter().map(|(p, _)| p.data.len()).sum();
    let mut data = Vec::with_capacity(size);
    let mut frames = Vec::with_capacity(parts.iter().map(|(p, _)| p.len()).sum());
    let mut places = Vec::with_capacity(parts.len());
    for (part, place) in &parts {
        let shift = data.len();
        data.extend_from_slice(&part.data);
        frames.extend(part.frames.iter().map(|f| Frame {
            offset: f.offset + shift,
            ..*f
        }));
        places.push(place.as_ref().map(|p| MergedPart {
            start: shift,
            ..p.clone()
        }));
    }
    FrameBatch {
        data: Arc::new(data),
        frames,
        origin: origin_of(places),
    }
}

/// A merged batch's origin: its parts, when every part's is known.
fn origin_of(parts: Vec<Option<MergedPart>>) -> Origin {
    match parts.into_iter().collect::<Option<Vec<_>>>() {
        Some(parts) => Origin::Merged(Arc::new(parts)),
        None => Origin::Unknown,
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

#[cfg(test)]
mod tests {
    //! Expected values come from the Python readers (`tcptrace.sources.read_captures`).
    use super::*;
    use std::io::Write;
    use std::sync::atomic::Ordering;

    fn crafted(name: &str) -> String {
        format!("{}/pcaps/crafted/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    /// Every batch of `paths`, with the stats and the meter's count.
    fn read_all(paths: Vec<String>) -> (Vec<FrameBatch>, SourceStats, u64) {
        let meter = ReadMeter::default();
        let mut captures = Captures::open(&paths, Some(meter.clone())).unwrap();
        let mut stats = SourceStats::default();
        let mut batches = Vec::new();
        while let Some(batch) = captures.next_batch(&mut stats).unwrap() {
            batches.push(batch);
        }
        (batches, stats, meter.load(Ordering::Relaxed))
    }

    fn error_of(paths: Vec<String>) -> (String, Vec<String>) {
        let mut stats = SourceStats::default();
        let result = Captures::open(&paths, None).and_then(|mut c| loop {
            if c.next_batch(&mut stats)?.is_none() {
                return Ok(());
            }
        });
        (result.unwrap_err().0, stats.files)
    }

    fn frame(ts_ns: i64, offset: usize, caplen: u32, wirelen: u32, linktype: u32) -> Frame {
        Frame {
            ts_ns,
            offset,
            caplen,
            wirelen,
            linktype,
        }
    }

    #[test]
    fn pcap_micro_and_nano_either_byte_order() {
        for name in [
            "ref_eth_us_le.pcap",
            "ref_eth_us_be.pcap",
            "ref_eth_ns_le.pcap",
            "ref_eth_ns_be.pcap",
        ] {
            let (batches, stats, meter) = read_all(vec![crafted(name)]);
            assert_eq!(batches.len(), 1, "{name}");
            let b = &batches[0];
            assert_eq!(b.len(), 10);
            assert_eq!(b.data.len(), 926);
            assert_eq!(b.frames[0], frame(1_700_000_000_000_000_000, 16, 74, 74, 1));
            assert_eq!(
                b.frames[9],
                frame(1_700_000_000_050_100_000, 860, 66, 66, 1)
            );
            assert_eq!(stats.frames, 10);
            assert_eq!(stats.files, vec![crafted(name)]);
            assert!(stats.skipped.is_empty() && stats.warnings.is_empty());
            assert_eq!(meter, 950);
        }
    }

    #[test]
    fn truncated_pcap_keeps_complete_records_and_warns() {
        let path = crafted("ref_truncated.pcap");
        let (batches, stats, meter) = read_all(vec![path.clone()]);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].len(), 7);
        assert_eq!(batches[0].data.len(), 729);
        assert_eq!(
            batches[0].frames[6],
            frame(1_700_000_000_030_100_000, 614, 66, 66, 1)
        );
        assert_eq!(stats.skipped("truncated_record"), 1);
        assert_eq!(
            stats.warnings,
            vec![format!(
                "truncated_record: {path}: file ends inside a record at byte 704 (after frame \
                 7; 49 bytes dropped); the capture was probably cut short"
            )]
        );
        assert_eq!(meter, 753);
    }

    #[test]
    fn pcapng_interfaces_and_byte_orders() {
        let (batches, stats, meter) = read_all(vec![crafted("ref_multi_if.pcapng")]);
        assert_eq!(batches.len(), 1);
        let b = &batches[0];
        assert_eq!((b.len(), b.data.len(), meter), (10, 1484, 1484));
        assert_eq!(
            b.frames[0],
            frame(1_700_000_000_000_000_000, 256, 74, 74, 1)
        );
        assert_eq!(
            b.frames[9],
            frame(1_700_000_000_050_100_000, 1256, 66, 66, 1)
        );
        let mut linktypes: Vec<u32> = b.frames.iter().map(|f| f.linktype).collect();
        linktypes.sort_unstable();
        linktypes.dedup();
        assert_eq!(linktypes, vec![1, 101, 113]);
        assert_eq!(stats.frames, 10);

        for name in ["ref_be.pcapng", "ref_eth.pcapng", "ref_eth.pcapng.gz"] {
            let (batches, stats, _) = read_all(vec![crafted(name)]);
            assert_eq!(batches.len(), 1, "{name}");
            let b = &batches[0];
            assert_eq!((b.len(), b.data.len()), (10, 1196));
            assert_eq!(
                b.frames[0],
                frame(1_700_000_000_000_000_000, 120, 74, 74, 1)
            );
            assert_eq!(
                b.frames[9],
                frame(1_700_000_000_050_100_000, 1124, 66, 66, 1)
            );
            assert!(stats.warnings.is_empty());
        }
    }

    #[test]
    fn gzip_reads_as_the_file_it_compresses_and_meters_compressed_bytes() {
        let (plain, _, _) = read_all(vec![crafted("ref_eth_us_le.pcap")]);
        let (gz, stats, meter) = read_all(vec![crafted("ref_eth.pcap.gz")]);
        assert_eq!(gz.len(), 1);
        assert_eq!(gz[0].frames, plain[0].frames);
        assert_eq!(gz[0].data, plain[0].data);
        assert_eq!(stats.frames, 10);
        assert_eq!(meter, 410);
    }

    #[test]
    fn several_files_merge_by_watermark() {
        let paths = [crafted("ref_split_a.pcap"), crafted("ref_split_b.pcap")];
        let (batches, stats, meter) = read_all(paths.to_vec());
        let sizes: Vec<(usize, usize)> = batches.iter().map(|b| (b.len(), b.data.len())).collect();
        // the first batch joins both files' buffers (418 + 508 bytes), as Python's concat
        assert_eq!(sizes, vec![(9, 926), (1, 508)]);
        assert_eq!(
            batches[0].frames[0],
            frame(1_700_000_000_000_000_000, 16, 74, 74, 1)
        );
        assert_eq!(
            batches[0].frames[8],
            frame(1_700_000_000_050_000_000, 352, 66, 66, 1)
        );
        assert_eq!(
            batches[1].frames[0],
            frame(1_700_000_000_050_100_000, 442, 66, 66, 1)
        );
        assert!(batches[0]
            .frames
            .windows(2)
            .all(|w| w[0].ts_ns <= w[1].ts_ns));
        assert_eq!(stats.files, paths.to_vec());
        assert_eq!((stats.frames, meter), (10, 974));
    }

    fn synthetic_pcap(n: u32, size: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for i in 0..n {
            for v in [1_600_000_000 + i, i % 1_000_000, size, size + 1] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend(std::iter::repeat_n(i as u8, size as usize));
        }
        out
    }

    /// A pcap of `size`-byte frames at the given seconds.
    fn pcap_at(seconds: &[u32], size: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for &s in seconds {
            for v in [s, 0, size, size] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend(std::iter::repeat_n(s as u8, size as usize));
        }
        out
    }

    #[test]
    fn every_frame_knows_its_file_and_number_through_a_merge() {
        // a.pcap's timestamps go back: the merge reorders its frames
        let a = FileReader::from_bytes(pcap_at(&[10, 0, 20], 40), "a.pcap");
        let b = FileReader::from_bytes(pcap_at(&[5, 15], 50), "b.pcap");
        let mut captures = Captures::from_readers(vec![a, b]);
        let mut stats = SourceStats::default();
        let mut places = Vec::new();
        while let Some(batch) = captures.next_batch(&mut stats).unwrap() {
            for (i, f) in batch.frames.iter().enumerate() {
                let at = batch.place(i).unwrap();
                // the frame's bytes are its seconds: the place is the right frame
                assert_eq!(
                    u32::from(batch.bytes(i)[0]),
                    (f.ts_ns / 1_000_000_000) as u32
                );
                places.push((at.file, at.frame));
            }
        }
        assert_eq!(places, [(0, 2), (1, 1), (0, 1), (1, 2), (0, 3)]);
        assert_eq!(stats.files, ["a.pcap", "b.pcap"]);
    }

    #[test]
    fn a_single_file_numbers_its_frames_across_batches() {
        let bytes = synthetic_pcap(40000, 60);
        let (batches, _, _) = frames_of_bytes(&bytes);
        let last = batches.last().unwrap();
        let place = last.place(last.len() - 1).unwrap();
        assert_eq!((batches.len(), place.file, place.frame), (2, 0, 40000));
    }

    #[test]
    fn pcap_batches_hold_at_most_max_frames() {
        let bytes = synthetic_pcap(40000, 60);
        let (batches, stats, error) = frames_of_bytes(&bytes);
        assert!(error.is_none());
        let shape: Vec<(usize, usize, usize)> = batches
            .iter()
            .map(|b| (b.len(), b.data.len(), b.frames[0].offset))
            .collect();
        assert_eq!(
            shape,
            vec![(32768, 3_040_000, 16), (7232, 3_040_000, 2_490_384)]
        );
        assert_eq!(stats.frames, 40000);

        let (batches, stats, _) = frames_of_bytes(&bytes[..bytes.len() - 10]);
        let lens: Vec<usize> = batches.iter().map(FrameBatch::len).collect();
        assert_eq!(lens, vec![32768, 7231]);
        assert_eq!(
            stats.warnings,
            vec![
                "truncated_record: fuzz: file ends inside a record at byte 3039948 (after frame \
                  39999; 66 bytes dropped); the capture was probably cut short"
            ]
        );
    }

    #[test]
    fn a_chunk_starts_at_the_record_the_previous_one_cut() {
        let bytes = synthetic_pcap(9000, 1000);
        let (batches, _, _) = frames_of_bytes(&bytes);
        let shape: Vec<(usize, usize, usize)> = batches
            .iter()
            .map(|b| (b.len(), b.data.len(), b.frames[0].offset))
            .collect();
        assert_eq!(shape, vec![(8256, 8_388_608, 16), (744, 755_904, 16)]);

        let (batches, stats, _) = frames_of_bytes(&bytes[..bytes.len() - 10]);
        let lens: Vec<usize> = batches.iter().map(FrameBatch::len).collect();
        assert_eq!(lens, vec![8256, 743]);
        assert_eq!(
            stats.warnings,
            vec![
                "truncated_record: fuzz: file ends inside a record at byte 9143008 (after frame \
                  8999; 1006 bytes dropped); the capture was probably cut short"
            ]
        );
    }

    #[test]
    fn errors_say_what_python_says() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::File::create(&path)
                .unwrap()
                .write_all(bytes)
                .unwrap();
            path.to_str().unwrap().to_string()
        };
        let d = dir.path().to_str().unwrap().to_string();
        assert_eq!(
            error_of(vec![d.clone()]),
            (format!("{d}: is a directory, not a capture file"), vec![])
        );
        let missing = format!("{d}/missing");
        assert_eq!(
            error_of(vec![missing.clone()]),
            (
                format!("{missing}: cannot open: No such file or directory"),
                vec![]
            )
        );
        // open errors come first, before any file is read
        let empty = file("empty", b"");
        assert_eq!(
            error_of(vec![empty.clone(), missing.clone()]).1,
            Vec::<String>::new()
        );
        assert_eq!(
            error_of(vec![empty.clone()]),
            (format!("{empty}: empty file"), vec![empty])
        );
        let text = file("text", b"hello");
        assert_eq!(
            error_of(vec![text.clone()]).0,
            format!("{text}: not a pcap or pcapng capture (starts with 68656c6c)")
        );
        let short = file("short", b"\xd4\xc3\xb2\xa1\x02\x00");
        assert_eq!(
            error_of(vec![short.clone()]).0,
            format!("{short}: file ends inside the pcap header")
        );
        let badgz = file("badgz", b"\x1f\x8b\x08\x00");
        assert_eq!(
            error_of(vec![badgz.clone()]),
            (
                format!(
                    "{badgz}: damaged gzip stream: Compressed file ended before the \
                     end-of-stream marker was reached"
                ),
                vec![]
            )
        );
        let (_, files) = error_of(vec![crafted("ref_split_a.pcap"), text.clone()]);
        assert_eq!(files, vec![crafted("ref_split_a.pcap"), text]);
    }

    /// The deliberate difference from Python: a gzip stream cut short keeps the records
    /// decompressed before the cut (Python drops the whole chunk: no frames here).
    #[test]
    fn a_gzip_stream_cut_short_keeps_earlier_records() {
        let gz = std::fs::read(crafted("ref_eth.pcap.gz")).unwrap();
        let (batches, stats, error) = frames_of_bytes(&gz[..300]);
        assert!(error.is_none());
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].len(), 5);
        assert_eq!(stats.frames, 5);
        assert_eq!(stats.skipped("truncated_record"), 1);
        assert_eq!(
            stats.warnings,
            vec![
                "truncated_record: fuzz: stopped reading after frame 5: Compressed file ended \
                  before the end-of-stream marker was reached; earlier packets are kept"
            ]
        );
    }

    /// The frames of each batch, with their bytes, in order.
    type Shape = Vec<Vec<(Frame, Vec<u8>)>>;

    fn shape_of(batch: &FrameBatch) -> Vec<(Frame, Vec<u8>)> {
        (0..batch.len())
            .map(|i| {
                let f = Frame {
                    offset: 0,
                    ..batch.frames[i]
                };
                (f, batch.bytes(i).to_vec())
            })
            .collect()
    }

    /// Batches gathered from pieces of `piece` bytes, with the stats; each piece handed
    /// back when `recycle` (as the engine does).
    fn batches_from_pieces(
        bytes: &[u8],
        piece: usize,
        recycle: bool,
    ) -> (Shape, SourceStats, usize) {
        let mut captures =
            Captures::from_readers(vec![FileReader::from_bytes(bytes.to_vec(), "fuzz")]);
        let mut stats = SourceStats::default();
        let mut batches = Vec::new();
        let mut current = Vec::new();
        let mut pieces = 0;
        while let Ok(Some((piece, ends))) = captures.next_piece(&mut stats, piece) {
            pieces += 1;
            current.extend(shape_of(&piece));
            if recycle {
                captures.recycle(piece);
            }
            if ends {
                assert!(!current.is_empty(), "a batch ends that had no frames");
                batches.push(std::mem::take(&mut current));
            }
        }
        assert!(current.is_empty(), "the last batch did not end");
        (batches, stats, pieces)
    }

    fn assert_pieces_make_the_batches(bytes: &[u8], what: &str) {
        let (batches, stats, error) = frames_of_bytes(bytes);
        let whole: Shape = batches.iter().map(shape_of).collect();
        for piece in [1, 17, 100, 1000, 4096, 65536, 1 << 20] {
            let (pieced, pieced_stats, _) = batches_from_pieces(bytes, piece, false);
            assert_eq!(pieced, whole, "{what}, pieces of {piece}");
            let (recycled, _, _) = batches_from_pieces(bytes, piece, true);
            assert_eq!(recycled, whole, "{what}, pieces of {piece} handed back");
            assert_eq!(pieced_stats.frames, stats.frames, "{what}");
            assert_eq!(pieced_stats.skipped, stats.skipped, "{what}");
            assert_eq!(pieced_stats.warnings, stats.warnings, "{what}");
            if error.is_some() {
                // an error ends the pieces as it ends the batches
                let mut captures =
                    Captures::from_readers(vec![FileReader::from_bytes(bytes.to_vec(), "fuzz")]);
                let mut s = SourceStats::default();
                let end = loop {
                    match captures.next_piece(&mut s, piece) {
                        Ok(Some(_)) => {}
                        other => break other.map(|_| ()),
                    }
                };
                assert_eq!(end.err(), error, "{what}");
            }
        }
    }

    #[test]
    fn pieces_make_the_same_batches() {
        // several chunks, records cut at chunk and piece ends, batches capped at MAX_FRAMES,
        // a truncated last record, a damaged record header mid-chunk
        let small = synthetic_pcap(40000, 60);
        let large = synthetic_pcap(9000, 1000);
        let flood = synthetic_pcap(150_000, 40);
        let mut damaged = large.clone();
        let at = 24 + 5000 * 1016 + 8;
        damaged[at..at + 4].copy_from_slice(&(pcap::MAX_RECORD * 20).to_le_bytes());
        let mut damaged_late = large.clone();
        let at = 24 + 8300 * 1016 + 8;
        damaged_late[at..at + 4].copy_from_slice(&(pcap::MAX_RECORD * 20).to_le_bytes());
        let cases: Vec<(&str, &[u8])> = vec![
            ("small", &small),
            ("small cut", &small[..small.len() - 10]),
            ("large", &large),
            ("large cut", &large[..large.len() - 10]),
            ("large cut at a chunk", &large[..CHUNK_END]),
            ("flood", &flood),
            ("damaged", &damaged),
            ("damaged late", &damaged_late),
        ];
        for (what, bytes) in cases {
            assert_pieces_make_the_batches(bytes, what);
        }
        let (batches, stats, pieces) = batches_from_pieces(&damaged, 65536, true);
        let lens: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!((lens, pieces), (vec![5000], 79));
        assert_eq!(stats.skipped("corrupt_record"), 1);
        let (batches, _, pieces) = batches_from_pieces(&flood, 1 << 20, true);
        let lens: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(
            (lens, pieces),
            (vec![32768, 32768, 32768, 32768, 18_724, 204], 14)
        );
        for name in [
            "ref_eth_us_le.pcap",
            "ref_eth_ns_be.pcap",
            "ref_truncated.pcap",
            "ref_multi_if.pcapng",
            "ref_eth.pcap.gz",
        ] {
            let bytes = std::fs::read(crafted(name)).unwrap();
            assert_pieces_make_the_batches(&bytes, name);
        }
    }

    /// A little-endian pcapng file: a section, one interface, `n` EPBs of `size` bytes
    /// (every 7th an SPB, every 11th a block too short for its type).
    fn synthetic_pcapng(n: u32, size: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let block = |out: &mut Vec<u8>, kind: u32, body: &[u8]| {
            let len = 12 + body.len().div_ceil(4) as u32 * 4;
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(body);
            out.resize(out.len() + (4 - body.len() % 4) % 4, 0);
            out.extend_from_slice(&len.to_le_bytes());
        };
        let mut shb = vec![0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0];
        shb.extend_from_slice(&[0xff; 8]);
        block(&mut out, 0x0a0d_0d0a, &shb);
        block(&mut out, 1, &[1, 0, 0, 0, 0, 0, 1, 0]);
        for i in 0..n {
            let mut body = Vec::new();
            if i % 11 == 5 {
                block(&mut out, 6, &[0; 8]);
                continue;
            }
            if i % 7 == 3 {
                body.extend_from_slice(&size.to_le_bytes());
                body.extend(std::iter::repeat_n(i as u8, size as usize));
                block(&mut out, 3, &body);
                continue;
            }
            let ts = 1_700_000_000_000_000u64 + u64::from(i);
            for v in [0, (ts >> 32) as u32, ts as u32, size, size + 4] {
                body.extend_from_slice(&v.to_le_bytes());
            }
            body.extend(std::iter::repeat_n(i as u8, size as usize));
            block(&mut out, 6, &body);
        }
        out
    }

    #[test]
    fn pcapng_pieces_make_the_same_batches() {
        let bytes = synthetic_pcapng(9000, 1001);
        let (batches, stats, _) = frames_of_bytes(&bytes);
        let lens: Vec<usize> = batches.iter().map(FrameBatch::len).collect();
        assert_eq!(lens, vec![8099, 83]);
        assert_eq!(stats.skipped("bad_block"), 818);
        // an impossible block length mid-chunk, then in the second chunk: the offsets of
        // block 5000 and 8500 (48 bytes of SHB and IDB; EPB 1036, SPB 1020, short 20 bytes)
        let offset = |k: u32| -> usize {
            48 + (0..k)
                .map(|i| match (i % 11 == 5, i % 7 == 3) {
                    (true, _) => 20,
                    (false, true) => 1020,
                    (false, false) => 1036,
                })
                .sum::<usize>()
        };
        let mut damaged = Vec::new();
        for k in [5000, 8500] {
            let mut d = bytes.clone();
            let at = offset(k) + 4;
            d[at..at + 4].copy_from_slice(&7u32.to_le_bytes());
            damaged.push(d);
        }
        let (_, stats, _) = frames_of_bytes(&damaged[0]);
        assert_eq!(stats.skipped("corrupt_block"), 1);
        let cases: Vec<(&str, &[u8])> = vec![
            ("pcapng", &bytes),
            ("pcapng cut", &bytes[..bytes.len() - 9]),
            ("pcapng cut after a chunk", &bytes[..CHUNK_END + 3]),
            ("pcapng damaged", &damaged[0]),
            ("pcapng damaged late", &damaged[1]),
        ];
        for (what, bytes) in cases {
            assert_pieces_make_the_batches(bytes, what);
        }
    }

    /// Every batch of one reader, with the stats and the error that stopped it.
    fn read_reader(reader: FileReader) -> (Shape, SourceStats, Option<CaptureError>) {
        let mut captures = Captures::from_readers(vec![reader]);
        let mut stats = SourceStats::default();
        let mut batches = Vec::new();
        loop {
            match captures.next_batch(&mut stats) {
                Ok(Some(batch)) => batches.push(shape_of(&batch)),
                Ok(None) => return (batches, stats, None),
                Err(e) => return (batches, stats, Some(e)),
            }
        }
    }

    /// A stream (a pipe: no seek) reads as the same bytes in a file do, every format, cut
    /// short or not, in reads of any size.
    #[test]
    fn a_stream_reads_as_the_file() {
        /// Hands out at most `step` bytes per read, as a pipe does.
        struct Trickle(Cursor<Vec<u8>>, usize);
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(self.1);
                self.0.read(&mut buf[..n])
            }
        }
        use std::io::{Cursor, Read};
        let mut cases: Vec<(String, Vec<u8>)> = [
            "ref_eth_us_le.pcap",
            "ref_eth_ns_be.pcap",
            "ref_truncated.pcap",
            "ref_multi_if.pcapng",
            "ref_eth.pcap.gz",
            "ref_eth.pcapng.gz",
        ]
        .iter()
        .map(|n| (n.to_string(), std::fs::read(crafted(n)).unwrap()))
        .collect();
        let large = synthetic_pcap(9000, 1000);
        cases.push(("large cut".into(), large[..large.len() - 10].to_vec()));
        cases.push(("pcapng".into(), synthetic_pcapng(9000, 1001)));
        cases.push(("empty".into(), Vec::new()));
        cases.push(("text".into(), b"hello".to_vec()));
        cases.push(("two bytes".into(), vec![0xd4, 0xc3]));
        // three chunks and more: each chunk cut where the file's is (batches, and so the
        // sweeps and the order of records, as from the file)
        let long = synthetic_pcap(30000, 1000);
        cases.push(("three chunks".into(), long[..long.len() - 10].to_vec()));
        for (what, bytes) in cases {
            let file = read_reader(FileReader::from_bytes(bytes.clone(), "x"));
            let steps: &[usize] = if bytes.len() > 1 << 20 {
                &[65536, usize::MAX]
            } else {
                &[1, 3, 4096, usize::MAX]
            };
            for &step in steps {
                let stream = Trickle(Cursor::new(bytes.clone()), step);
                let piped = read_reader(FileReader::from_stream(stream, "x"));
                assert_eq!(piped.0, file.0, "{what}, reads of {step}");
                assert_eq!(piped.1.frames, file.1.frames, "{what}");
                assert_eq!(piped.1.files, file.1.files, "{what}");
                assert_eq!(piped.1.warnings, file.1.warnings, "{what}");
                assert_eq!(piped.2, file.2, "{what}");
            }
        }
    }

    #[test]
    fn standard_input_is_named_so_and_read_once() {
        assert_eq!(display_name("-"), "standard input");
        assert_eq!(display_name("a.pcap"), "a.pcap");
        let bytes = std::fs::read(crafted("ref_truncated.pcap")).unwrap();
        let reader = FileReader::from_stream(std::io::Cursor::new(bytes), "-");
        let (batches, stats, error) = read_reader(reader);
        assert_eq!((batches.len(), batches[0].len(), error), (1, 7, None));
        assert_eq!(stats.files, vec!["-"]);
        assert_eq!(
            stats.warnings,
            vec![
                "truncated_record: standard input: file ends inside a record at byte 704 (after \
                 frame 7; 49 bytes dropped); the capture was probably cut short"
            ]
        );
        let twice = vec!["-".to_string(), crafted("ref_eth.pcap.gz"), "-".to_string()];
        assert_eq!(
            Captures::open(&twice, None).err().map(|e| e.0),
            Some("standard input (-) is given more than once; it can be read only once".into())
        );
    }

    /// A file that ends exactly where its first chunk does.
    const CHUNK_END: usize = chunks::CHUNK;

    #[test]
    fn no_panic_on_damaged_prefixes() {
        for name in [
            "ref_multi_if.pcapng",
            "ref_be.pcapng",
            "ref_eth.pcapng.gz",
            "ref_sll.pcap",
        ] {
            let bytes = std::fs::read(crafted(name)).unwrap();
            for cut in 0..bytes.len() {
                let mut damaged = bytes[..cut].to_vec();
                if let Some(b) = damaged.get_mut(cut / 2) {
                    *b ^= 0x5a;
                }
                let _ = frames_of_bytes(&bytes[..cut]);
                let _ = frames_of_bytes(&damaged);
            }
        }
    }
}
