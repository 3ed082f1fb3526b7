//! Records encoded in the shards, under their local ids: the writer only splices the global
//! id and previous_id into the bytes (two numbers), so no format is encoded on one thread.

use crate::model::ConnectionRecord;
use crate::writers::csv::{CsvWriter, COLUMNS, ZEEK_COLUMNS};
use crate::writers::json::{write_indented, write_jsonl};
use crate::writers::zeek::write_rows;

use super::plan::{Emitted, ShardSink};

/// What the shards make of each record, by output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// One compact JSON line.
    Jsonl,
    /// Indented as the json document holds it (4 spaces), and the record for the summary.
    Json,
    /// One CSV row (the writer writes the header).
    Csv,
    /// Nothing encoded: the record itself (the summary and the table row are made from it).
    Table,
    /// `-f zeek`: the record's conn.log rows (which hold no id: nothing to splice; the
    /// writer writes the header and #close).
    Zeek,
}

/// Where the two renumbered numbers are in an encoded record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spans {
    pub id: (usize, usize),
    /// Only when the record has a previous_id (else "null" or an empty cell stays).
    pub previous: Option<(usize, usize)>,
}

/// The end of the first `needle` in `haystack` at or after `from`. Candidates are found by
/// their first byte (a plain scan the compiler vectorises; a comparison of the whole
/// needle at every position cost a `memcmp` call per byte of every record).
fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut at = from;
    loop {
        let tail = haystack.get(at..)?;
        let hit = at + tail.iter().position(|&b| b == first)?;
        let end = hit + needle.len();
        if haystack.get(hit + 1..end) == Some(rest) {
            return Some(end);
        }
        at = hit + 1;
    }
}

fn digits_from(data: &[u8], start: usize) -> (usize, usize) {
    let len = data.get(start..).map_or(0, |rest| {
        rest.iter().take_while(|b| b.is_ascii_digit()).count()
    });
    (start, start + len)
}

/// The spans of the id and previous_id in one encoded record. JSON keys are found by their
/// quoted name (a string value cannot hold an unescaped quote); in CSV the id is the first
/// cell and previous_id the seventh (the cells before it are addresses, ports and a name:
/// never quoted, never a comma).
pub fn spans(encoding: Encoding, data: &[u8], has_previous: bool) -> Option<Spans> {
    let (id_start, previous_start) = match encoding {
        Encoding::Jsonl | Encoding::Json => {
            let key: &[u8] = if encoding == Encoding::Jsonl {
                b"\"id\":"
            } else {
                b"\"id\": "
            };
            let id = find(data, key, 0)?;
            let previous = if has_previous {
                let key: &[u8] = if encoding == Encoding::Jsonl {
                    b"\"previous_id\":"
                } else {
                    b"\"previous_id\": "
                };
                Some(find(data, key, id)?)
            } else {
                None
            };
            (id, previous)
        }
        Encoding::Csv => {
            let previous = if has_previous {
                let mut commas = data.iter().enumerate().filter(|(_, &b)| b == b',');
                Some(commas.nth(5)?.0 + 1)
            } else {
                None
            };
            (0, previous)
        }
        Encoding::Table | Encoding::Zeek => return Some(Spans::default()),
    };
    Some(Spans {
        id: digits_from(data, id_start),
        previous: previous_start.map(|at| digits_from(data, at)),
    })
}

/// The CSV header line, as `CsvWriter` writes it before its first row (`zeek`: the run's
/// records carry the Zeek view, and so its columns).
pub fn csv_header(zeek: bool) -> Vec<u8> {
    let mut columns = COLUMNS.to_vec();
    if zeek {
        columns.extend_from_slice(&ZEEK_COLUMNS);
    }
    let mut out = columns.join(",").into_bytes();
    out.push(b'\n');
    out
}

/// Bytes of one block of encoded records. An epoch's records go into blocks of this size
/// taken from the shard's pool (and handed back by the writer), never into one vector per
/// epoch: that vector grew to the largest epoch (megabytes) by reallocation, copying and
/// faulting in fresh pages every time (the allocator's heap trimmed it away between
/// epochs). Blocks are allocated once and stay mapped.
pub const BLOCK: usize = 256 << 10;
/// A record starts a new block when less than this is left in the current one (a record
/// larger than what is left still fits: its block grows, which is rare and harmless).
const BLOCK_SLACK: usize = 16 << 10;

/// One record of an epoch batch.
#[derive(Debug)]
pub struct Item {
    pub phase: u8,
    pub rank: u64,
    pub local_id: u64,
    pub previous_local: Option<u64>,
    /// The encoded bytes: `blocks[block][start..end]` of the batch.
    pub block: usize,
    pub start: usize,
    pub end: usize,
    pub spans: Spans,
    /// Json and table: the record itself (for the summary and the rows).
    pub record: Option<Box<ConnectionRecord>>,
}

/// One shard's records of one epoch, encoded, and the first ordinals it opened then; or,
/// from a streaming encoder, one part of them (the first part holds `opened`).
#[derive(Debug, Default)]
pub struct EpochBatch {
    pub opened: Vec<u64>,
    pub blocks: Vec<Vec<u8>>,
    pub items: Vec<Item>,
    /// The epoch's last part (always, unless the encoder streams).
    pub last: bool,
}

impl EpochBatch {
    /// An item's encoded bytes.
    pub fn bytes(&self, item: &Item) -> &[u8] {
        self.blocks
            .get(item.block)
            .and_then(|b| b.get(item.start..item.end))
            .unwrap_or(&[])
    }
}

/// A streaming encoder's part ends once it holds this many blocks (full) or `PART_ITEMS`
/// records: one epoch can hold a third of a capture's connections (the sweep after a lull,
/// the close), and its records made whole before the writer takes any cost their memory
/// (88 blocks, 22 MB per shard on bench.pcap, each page faulted in) and left the writer
/// idle while they were made.
const PART_BLOCKS: usize = 4;
/// (1 in unit tests: their small captures' epochs then come in several parts.)
const PART_ITEMS: usize = if cfg!(test) { 1 } else { 1024 };

/// A shard's sink: encodes each record into the current batch; `done` batches wait for the
/// executor (`take_done`).
pub struct Encoder {
    encoding: Encoding,
    /// Cut epochs into parts (`PART_BLOCKS`) that the executor sends on at once.
    streams: bool,
    csv: CsvWriter,
    csv_primed: bool,
    current: EpochBatch,
    pub done: Vec<EpochBatch>,
    /// Emptied batches back from the writer: their vectors keep their capacity.
    spare: Vec<EpochBatch>,
    /// Empty blocks (capacity `BLOCK` or more), from batches the writer handed back.
    blocks: Vec<Vec<u8>>,
    /// A record whose spans were not found (a bug): reported by the executor.
    pub broken: bool,
}

impl Encoder {
    pub fn new(encoding: Encoding) -> Encoder {
        Encoder {
            encoding,
            streams: false,
            csv: CsvWriter::new(),
            csv_primed: false,
            current: EpochBatch::default(),
            done: Vec::new(),
            spare: Vec::new(),
            blocks: Vec::new(),
            broken: false,
        }
    }

    /// An encoder that hands on each epoch in parts of a few blocks (the executor sends
    /// `done` after every record).
    pub fn streaming(encoding: Encoding) -> Encoder {
        Encoder {
            streams: true,
            ..Encoder::new(encoding)
        }
    }

    /// A batch the writer is done with: its blocks back to the pool, the batch kept for a
    /// later epoch (a few at most).
    pub fn reuse(&mut self, mut batch: EpochBatch) {
        for mut block in batch.blocks.drain(..) {
            block.clear();
            self.blocks.push(block);
        }
        if self.spare.len() < 8 {
            batch.opened.clear();
            batch.items.clear();
            batch.last = false;
            self.spare.push(batch);
        }
    }

    /// No empty block or spare batch is left (the executor then takes the batches handed
    /// back before the next record).
    pub fn wants_returns(&self) -> bool {
        self.blocks.is_empty() || self.spare.is_empty()
    }

    /// The current batch to `done` (`last`: it ends its epoch), a spare one in its place.
    fn cut(&mut self, last: bool) {
        self.current.last = last;
        let next = self.spare.pop().unwrap_or_default();
        self.done.push(std::mem::replace(&mut self.current, next));
    }

    /// Streaming, the current part is full: the next record starts a new one.
    fn part_is_full(&self) -> bool {
        let blocks = &self.current.blocks;
        self.streams
            && (self.current.items.len() >= PART_ITEMS
                || blocks.len() >= PART_BLOCKS
                    && blocks
                        .last()
                        .is_some_and(|b| b.capacity() - b.len() < BLOCK_SLACK))
    }
}

/// The block of `batch` the next record goes into, with room for it (from `pool`).
fn block<'a>(batch: &'a mut EpochBatch, pool: &mut Vec<Vec<u8>>) -> (usize, &'a mut Vec<u8>) {
    let blocks = &mut batch.blocks;
    let full = blocks
        .last()
        .is_none_or(|b| b.capacity() - b.len() < BLOCK_SLACK);
    if full {
        blocks.push(pool.pop().unwrap_or_else(|| Vec::with_capacity(BLOCK)));
    }
    let at = blocks.len() - 1;
    (at, &mut blocks[at])
}

impl ShardSink for Encoder {
    fn begin_epoch(&mut self, opened: &[u64]) {
        self.current.opened.extend_from_slice(opened);
    }

    fn record(&mut self, emitted: Emitted) {
        if self.part_is_full() {
            self.cut(false);
        }
        let Emitted {
            phase,
            rank,
            record,
        } = emitted;
        let encoding = self.encoding;
        let csv = &mut self.csv;
        let csv_primed = &mut self.csv_primed;
        let mut nothing = Vec::new();
        let (block, bytes) = match encoding {
            Encoding::Table => (0, &mut nothing),
            _ => block(&mut self.current, &mut self.blocks),
        };
        let start = bytes.len();
        match encoding {
            Encoding::Jsonl => write_jsonl(bytes, &record),
            Encoding::Json => write_indented(bytes, &record, 4),
            Encoding::Csv => {
                csv.write(&record, bytes);
                if !*csv_primed {
                    // the writer's header goes out once, from the writer
                    *csv_primed = true;
                    let header = bytes
                        .get(start..)
                        .and_then(|b| b.iter().position(|&c| c == b'\n'))
                        .map_or(0, |n| n + 1);
                    bytes.drain(start..start + header);
                }
            }
            Encoding::Zeek => write_rows(&record, bytes),
            Encoding::Table => {}
        }
        let end = bytes.len();
        let found = spans(
            encoding,
            bytes.get(start..end).unwrap_or(&[]),
            record.previous_id.is_some(),
        );
        self.broken |= found.is_none();
        let keep = matches!(encoding, Encoding::Json | Encoding::Table);
        self.current.items.push(Item {
            phase,
            rank,
            local_id: record.id,
            previous_local: record.previous_id,
            block,
            start,
            end,
            spans: found.unwrap_or_default(),
            record: keep.then(|| Box::new(record)),
        });
    }

    fn end_epoch(&mut self) {
        self.cut(true);
    }
}

/// The record's bytes under its global ids, appended to `out`.
pub fn splice(data: &[u8], spans: &Spans, id: u64, previous: Option<u64>, out: &mut Vec<u8>) {
    let mut ids = itoa::Buffer::new();
    let (id_start, id_end) = spans.id;
    out.extend_from_slice(data.get(..id_start).unwrap_or(&[]));
    out.extend_from_slice(ids.format(id).as_bytes());
    match (spans.previous, previous) {
        (Some((p_start, p_end)), Some(previous)) => {
            out.extend_from_slice(data.get(id_end..p_start).unwrap_or(&[]));
            out.extend_from_slice(ids.format(previous).as_bytes());
            out.extend_from_slice(data.get(p_end..).unwrap_or(&[]));
        }
        _ => out.extend_from_slice(data.get(id_end..).unwrap_or(&[])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_gives_the_end_of_the_first_match() {
        let text = b"{\"idx\":1,\"id\":22,\"previous_id\":3}";
        assert_eq!(find(text, b"\"id\":", 0), Some(14));
        assert_eq!(find(text, b"\"previous_id\":", 14), Some(31));
        assert_eq!(find(text, b"\"id\":", 15), None);
        assert_eq!(find(text, b"}", 34), None);
        assert_eq!(find(b"\"i", b"\"id", 0), None); // a needle cut by the end
        assert_eq!(find(text, b"", 0), None);
    }

    #[test]
    fn a_streaming_encoder_cuts_epochs_into_parts() {
        let base = crate::writers::fixture::records().remove(0);
        let emitted = |id: u64| Emitted {
            phase: 1,
            rank: id,
            record: ConnectionRecord { id, ..base.clone() },
        };
        let mut encoder = Encoder::streaming(Encoding::Jsonl);
        encoder.begin_epoch(&[10, 20, 30, 40, 50]);
        (1..=5).for_each(|id| encoder.record(emitted(id)));
        encoder.end_epoch();
        encoder.begin_epoch(&[]);
        encoder.end_epoch();
        let parts: Vec<(Vec<u64>, Vec<u64>, bool)> = (encoder.done.iter())
            .map(|p| {
                let ids = p.items.iter().map(|i| i.local_id).collect();
                (p.opened.clone(), ids, p.last)
            })
            .collect();
        assert_eq!(
            parts,
            vec![
                (vec![10, 20, 30, 40, 50], vec![1], false),
                (vec![], vec![2], false),
                (vec![], vec![3], false),
                (vec![], vec![4], false),
                (vec![], vec![5], true),
                (vec![], vec![], true),
            ]
        );
        // each part's bytes are its own records'
        let second = &encoder.done[1];
        let mut line = Vec::new();
        write_jsonl(&mut line, &emitted(2).record);
        assert!(second.bytes(&second.items[0]) == &line[..]);
        // a batch encoder keeps an epoch whole
        let mut whole = Encoder::new(Encoding::Jsonl);
        whole.begin_epoch(&[10]);
        (1..=5).for_each(|id| whole.record(emitted(id)));
        whole.end_epoch();
        assert_eq!(whole.done.len(), 1);
        assert_eq!(whole.done[0].items.len(), 5);
    }

    #[test]
    fn csv_header_is_the_writers() {
        let record = crate::writers::fixture::records().remove(0);
        let mut out = Vec::new();
        CsvWriter::new().write(&record, &mut out);
        assert!(record.zeek.is_none());
        assert!(out.starts_with(&csv_header(false)));
        // with the Zeek view, its columns follow (the records format test holds them to
        // CsvWriter's through the command line: tests/test_jobs.py)
        let plain = csv_header(false);
        let zeek = csv_header(true);
        assert_eq!(zeek[..plain.len() - 1], plain[..plain.len() - 1]);
        assert!(zeek.ends_with(b",zeek.orig_state,zeek.resp_state,zeek.earlier\n"));
    }

    #[test]
    fn ids_are_spliced_in_every_format() {
        let base = crate::writers::fixture::records().remove(0);
        let record = ConnectionRecord {
            id: 7,
            previous_id: Some(3),
            ..base.clone()
        };
        let renumbered = ConnectionRecord {
            id: 1234,
            previous_id: Some(99),
            ..base
        };
        let encode = |encoding: Encoding, r: &ConnectionRecord| -> Vec<u8> {
            let mut out = Vec::new();
            match encoding {
                Encoding::Jsonl => write_jsonl(&mut out, r),
                Encoding::Json => write_indented(&mut out, r, 4),
                _ => {
                    CsvWriter::new().write(r, &mut out);
                    out.drain(..csv_header(r.zeek.is_some()).len());
                }
            }
            out
        };
        for encoding in [Encoding::Jsonl, Encoding::Json, Encoding::Csv] {
            let local = encode(encoding, &record);
            let found = spans(encoding, &local, true).unwrap();
            let mut out = Vec::new();
            splice(&local, &found, 1234, Some(99), &mut out);
            assert_eq!(out, encode(encoding, &renumbered), "{encoding:?}");
            // no previous: "null" / the empty cell stays
            let alone = ConnectionRecord {
                previous_id: None,
                ..record.clone()
            };
            let local = encode(encoding, &alone);
            let found = spans(encoding, &local, false).unwrap();
            let mut out = Vec::new();
            splice(&local, &found, 1234, None, &mut out);
            let expected = ConnectionRecord {
                previous_id: None,
                ..renumbered.clone()
            };
            assert_eq!(out, encode(encoding, &expected), "{encoding:?}");
        }
    }
}
