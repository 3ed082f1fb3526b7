//! The json document's connections: records end out of id order and the document is
//! written at the end, so each record is encoded as it comes and spooled to a temporary
//! file; memory holds 24 bytes per record (id, offset, length), as Python's `JsonWriter`.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use crate::model::ConnectionRecord;

use super::json;

/// Records are indented by 4 spaces inside `"connections": [...]`.
const RECORD_INDENT: usize = 4;

#[derive(Clone, Copy)]
struct Spooled {
    id: u64,
    offset: u64,
    len: u64,
}

/// Records spooled for the json document, written in id order by `finish`.
pub struct JsonSpool {
    file: BufWriter<File>,
    index: Vec<Spooled>,
    spooled: u64,
    buffer: Vec<u8>,
}

impl JsonSpool {
    /// A spool in a new anonymous temporary file (removed when dropped).
    pub fn new() -> io::Result<Self> {
        Ok(JsonSpool {
            file: BufWriter::with_capacity(1 << 16, tempfile::tempfile()?),
            index: Vec::new(),
            spooled: 0,
            buffer: Vec::with_capacity(4096),
        })
    }

    /// Encodes the record (orjson `OPT_INDENT_2`, indented for the document) and spools it.
    pub fn add(&mut self, record: &ConnectionRecord) -> io::Result<()> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        json::write_indented(&mut buffer, record, RECORD_INDENT);
        let result = self.spool(record.id, &buffer);
        self.buffer = buffer;
        result
    }

    /// A record already encoded with orjson's `OPT_INDENT_2` elsewhere (Python's
    /// `add_encoded`, used when records are renumbered): indented here as `finish` would.
    pub fn add_encoded(&mut self, id: u64, data: &[u8]) -> io::Result<()> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        buffer.extend_from_slice(b"    ");
        for &b in data {
            buffer.push(b);
            if b == b'\n' {
                buffer.extend_from_slice(b"    ");
            }
        }
        let result = self.spool(id, &buffer);
        self.buffer = buffer;
        result
    }

    /// A record already encoded as `add` encodes it (indented by 4: `--jobs` shards
    /// encode, the writer only renumbers).
    pub fn add_indented(&mut self, id: u64, data: &[u8]) -> io::Result<()> {
        self.spool(id, data)
    }

    fn spool(&mut self, id: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        let len = data.len() as u64;
        self.index.push(Spooled {
            id,
            offset: self.spooled,
            len,
        });
        self.spooled += len;
        Ok(())
    }

    /// Records spooled so far.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Writes the connections list from its opening bracket to the document's end, as
    /// Python does after the head: `[\n`, the records in id order separated by `,\n`, then
    /// `\n  ]\n}\n`; `[]\n}\n` when there are none.
    pub fn finish(self, out: &mut dyn Write) -> io::Result<()> {
        let JsonSpool {
            file, mut index, ..
        } = self;
        if index.is_empty() {
            return out.write_all(b"[]\n}\n");
        }
        let mut file =
            BufReader::with_capacity(1 << 16, file.into_inner().map_err(|e| e.into_error())?);
        file.rewind()?;
        index.sort_by_key(|r| r.id); // stable, as numpy's argsort(kind="stable")
        out.write_all(b"[\n")?;
        let mut buffer = Vec::new();
        let mut position = 0u64;
        let last = index.len() - 1;
        for (n, record) in index.iter().enumerate() {
            let len = usize::try_from(record.len).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, "spooled record too long")
            })?;
            buffer.resize(len, 0);
            // Records mostly end in id order: read on without a seek (which drops the buffer).
            if record.offset != position {
                file.seek(SeekFrom::Start(record.offset))?;
            }
            file.read_exact(&mut buffer)?;
            position = record.offset + record.len;
            out.write_all(&buffer)?;
            out.write_all(if n < last { b",\n" } else { b"\n" })?;
        }
        out.write_all(b"  ]\n}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writers::fixture;

    #[test]
    fn document_tail_matches_python() {
        let mut spool = JsonSpool::new().unwrap();
        for record in fixture::records() {
            spool.add(&record).unwrap();
        }
        let mut out = Vec::new();
        spool.finish(&mut out).unwrap();
        let expected = include_str!("testdata/expected_json_tail.txt");
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn pre_encoded_records_are_indented_alike() {
        let records = fixture::records();
        let mut spool = JsonSpool::new().unwrap();
        let mut encoded = Vec::new();
        for record in &records {
            encoded.clear();
            json::write_indented(&mut encoded, record, 0);
            spool.add_encoded(record.id, &encoded).unwrap();
        }
        assert_eq!(spool.len(), records.len());
        let mut out = Vec::new();
        spool.finish(&mut out).unwrap();
        assert_eq!(out, include_bytes!("testdata/expected_json_tail.txt"));
    }

    #[test]
    fn no_records() {
        let mut out = Vec::new();
        JsonSpool::new().unwrap().finish(&mut out).unwrap();
        assert_eq!(out, include_bytes!("testdata/expected_json_empty.txt"));
        assert_eq!(out, b"[]\n}\n");
    }
}
