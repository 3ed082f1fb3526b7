//! The table format's rows, held compactly until the end of the run (the table is sorted by
//! id and its columns are as wide as their widest cell, so nothing can be written before the
//! last record): each row as about 100 bytes in one buffer, instead of a struct with two
//! heap strings (~250 bytes). Past `SPILL_BYTES` the buffer goes to a temporary file, so a
//! table of 1M rows (a SYN flood) holds 16 bytes a row in memory (its index) rather than
//! ~110; Python takes the rows `rows(start, stop)` at a time, in two passes
//! (tcptrace/table.py: the widths, then the lines).

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use super::TableRow;

/// Encoded rows kept in memory before they are appended to the spill file.
const SPILL_BYTES: usize = 8 << 20;

/// Rows further apart than this in the spill file are read separately (the rows of a slice
/// of ids are mostly near each other: connections end roughly in the order they began).
const READ_GAP: u64 = 4096;

/// An index entry packs the row's length above its offset (rows are under 1 KiB; 48 bits of
/// offset are 256 TiB of rows).
const OFFSET_BITS: u32 = 48;
const OFFSET_MASK: u64 = (1 << OFFSET_BITS) - 1;

/// Table rows in arrival order, encoded; `sort` orders them by id.
pub struct TableRows {
    /// Rows encoded since the last spill; the first of them is at offset `spilled`.
    bytes: Vec<u8>,
    /// (id, offset of the row | its length << OFFSET_BITS)
    index: Vec<(u64, u64)>,
    /// The `&'static str` cells (outcome, TIME_WAIT side, RST kind), by number.
    names: Vec<&'static str>,
    /// Rows with a tunnel (a non-empty encapsulation).
    tunnelled: usize,
    /// Rows with health words (retransmissions, zero windows, duplicates).
    unhealthy: usize,
    /// The temporary file holding the first `spilled` bytes of rows.
    file: Option<File>,
    spilled: u64,
    /// The buffer is spilled when it reaches this size.
    spill_at: usize,
    /// No temporary file could be made or written: the rows stay in memory from here (a
    /// table does not fail for want of temporary space; it only takes more memory).
    in_memory: bool,
}

impl Default for TableRows {
    fn default() -> Self {
        TableRows::spilling_at(SPILL_BYTES)
    }
}

const NONE: u8 = u8::MAX;

impl TableRows {
    /// Rows that go to a temporary file whenever `spill_at` bytes of them are in memory.
    fn spilling_at(spill_at: usize) -> Self {
        TableRows {
            bytes: Vec::new(),
            index: Vec::new(),
            names: Vec::new(),
            tunnelled: 0,
            unhealthy: 0,
            file: None,
            spilled: 0,
            spill_at,
            in_memory: false,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// How many rows came through a tunnel (the table shows a tunnel column when any did).
    pub fn tunnelled(&self) -> usize {
        self.tunnelled
    }

    /// How many rows have health words (the table shows a health column when any has).
    pub fn unhealthy(&self) -> usize {
        self.unhealthy
    }

    pub fn push(&mut self, row: &TableRow) {
        let at = self.spilled + self.bytes.len() as u64;
        let outcome = self.intern(Some(row.outcome));
        let time_wait = self.intern(row.time_wait);
        let rst = self.intern(row.rst);
        let b = &mut self.bytes;
        let start = b.len();
        for (ip, port) in [&row.client, &row.server] {
            text(b, ip);
            b.extend_from_slice(&port.to_le_bytes());
        }
        b.extend_from_slice(&[outcome, time_wait, rst, u8::from(row.http)]);
        b.extend_from_slice(&row.start.to_le_bytes());
        b.extend_from_slice(&row.duration_ms.to_le_bytes());
        for ms in [row.rtt_ms, row.setup_ms] {
            b.extend_from_slice(&ms.unwrap_or(f64::NAN).to_le_bytes());
        }
        for n in [row.probes, row.requests, row.packets.0, row.packets.1] {
            b.extend_from_slice(&n.to_le_bytes());
        }
        text(b, &row.tunnel);
        text(b, &row.health);
        let len = (b.len() - start) as u64;
        self.index.push((row.id, at | len << OFFSET_BITS));
        self.tunnelled += usize::from(!row.tunnel.is_empty());
        self.unhealthy += usize::from(!row.health.is_empty());
        if self.bytes.len() >= self.spill_at {
            self.spill_bytes();
        }
    }

    /// Append the buffer to the spill file (made on first use).
    fn spill_bytes(&mut self) {
        if self.in_memory {
            return;
        }
        if self.file.is_none() {
            self.file = tempfile::tempfile().ok();
        }
        // a failed write leaves the file's end unknown: the file keeps the rows before
        // `spilled`, and memory everything from there on
        let written = match &mut self.file {
            Some(file) => file.write_all(&self.bytes).is_ok(),
            None => false,
        };
        if written {
            self.spilled += self.bytes.len() as u64;
            self.bytes.clear();
        } else {
            self.in_memory = true;
        }
    }

    /// Order the rows by id (stable: as `Vec::sort_by_key` did).
    pub fn sort(&mut self) {
        self.index.sort_by_key(|&(id, _)| id);
    }

    /// Rows `start..stop` (in the current order). Spilled rows are read back a run of
    /// neighbours at a time, in file order.
    pub fn slice(&self, start: usize, stop: usize) -> io::Result<Vec<TableRow>> {
        let entries = self.index.get(start..stop.max(start)).unwrap_or_default();
        let mut rows: Vec<Option<TableRow>> = Vec::with_capacity(entries.len());
        rows.resize_with(entries.len(), || None);
        // (offset, length, position in the slice) of the rows in the spill file
        let mut spilled: Vec<(u64, u64, usize)> = Vec::new();
        for (i, &(id, packed)) in entries.iter().enumerate() {
            let (at, len) = (packed & OFFSET_MASK, packed >> OFFSET_BITS);
            if at >= self.spilled {
                let from = usize::try_from(at - self.spilled).unwrap_or(usize::MAX);
                rows[i] = self.bytes.get(from..).and_then(|b| self.decode(id, b));
            } else {
                spilled.push((at, len, i));
            }
        }
        if !spilled.is_empty() {
            self.read_spilled(entries, &mut spilled, &mut rows)?;
        }
        rows.into_iter()
            .map(|row| row.ok_or_else(|| io::Error::other("a table row could not be read back")))
            .collect()
    }

    fn read_spilled(
        &self,
        entries: &[(u64, u64)],
        wanted: &mut [(u64, u64, usize)],
        rows: &mut [Option<TableRow>],
    ) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Err(io::Error::other("table rows were spilled to no file"));
        };
        wanted.sort_unstable_by_key(|&(at, _, _)| at);
        let mut buffer = Vec::new();
        let mut first = 0;
        while first < wanted.len() {
            // a run: rows whose gaps are under READ_GAP, read with one call
            let mut last = first;
            while last + 1 < wanted.len()
                && wanted[last + 1].0 <= wanted[last].0 + wanted[last].1 + READ_GAP
            {
                last += 1;
            }
            let from = wanted[first].0;
            let to = wanted[first..=last]
                .iter()
                .map(|&(at, len, _)| at + len)
                .max()
                .unwrap_or(from);
            buffer.resize(usize::try_from(to - from).map_err(io::Error::other)?, 0);
            file.read_exact_at(&mut buffer, from)?;
            for &(at, _, i) in &wanted[first..=last] {
                let id = entries[i].0;
                let here = usize::try_from(at - from).unwrap_or(usize::MAX);
                rows[i] = buffer.get(here..).and_then(|b| self.decode(id, b));
            }
            first = last + 1;
        }
        Ok(())
    }

    fn decode(&self, id: u64, bytes: &[u8]) -> Option<TableRow> {
        let mut r = Reader(bytes);
        let client = (r.text()?, r.u16()?);
        let server = (r.text()?, r.u16()?);
        let [outcome, time_wait, rst, http] = r.array::<4>()?;
        let start = f64::from_le_bytes(r.array()?);
        let duration_ms = f64::from_le_bytes(r.array()?);
        let ms = |x: f64| (!x.is_nan()).then_some(x);
        let rtt_ms = ms(f64::from_le_bytes(r.array()?));
        let setup_ms = ms(f64::from_le_bytes(r.array()?));
        let name = |n: u8| self.names.get(usize::from(n)).copied();
        Some(TableRow {
            id,
            start,
            duration_ms,
            client,
            server,
            outcome: name(outcome)?,
            rtt_ms,
            setup_ms,
            time_wait: name(time_wait),
            rst: name(rst),
            probes: r.u64()?,
            requests: r.u64()?,
            http: http != 0,
            packets: (r.u64()?, r.u64()?),
            tunnel: r.text()?,
            health: r.text()?,
        })
    }

    fn intern(&mut self, name: Option<&'static str>) -> u8 {
        let Some(name) = name else { return NONE };
        if let Some(i) = self.names.iter().position(|&n| n == name) {
            return i as u8;
        }
        self.names.push(name);
        (self.names.len() - 1).min(usize::from(NONE - 1)) as u8
    }
}

/// Text of up to 255 bytes, after its length (longer text is cut: addresses and tunnel
/// paths are far shorter).
fn text(b: &mut Vec<u8>, s: &str) {
    let s = &s.as_bytes()[..s.len().min(255)];
    b.push(s.len() as u8);
    b.extend_from_slice(s);
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    fn text(&mut self) -> Option<String> {
        let [len] = self.array::<1>()?;
        let (text, rest) = self.0.split_at_checked(usize::from(len))?;
        self.0 = rest;
        Some(String::from_utf8_lossy(text).into_owned())
    }
}

/// The record's tunnels as the csv column writes them ("gre:7>vxlan:1"); empty (and no
/// allocation) for plain traffic.
pub fn tunnel_label(r: &crate::model::ConnectionRecord) -> String {
    let Some(path) = r.encapsulation.as_deref().filter(|p| !p.is_empty()) else {
        return String::new();
    };
    let mut label = Vec::new();
    crate::writers::csv::tunnel_path(&mut label, path);
    String::from_utf8_lossy(&label).into_owned()
}
