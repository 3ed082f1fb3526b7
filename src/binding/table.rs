//! The table format's rows, held compactly until the end of the run (the table is sorted by
//! id and its columns are as wide as their widest cell, so nothing can be written before the
//! last record): each row as about 106 bytes in one buffer, instead of a struct with two
//! heap strings (~250 bytes). 1M rows of a SYN flood: ~100 MB instead of ~250 MB, and
//! Python takes them `rows(start, stop)` at a time instead of as one list of 1M tuples.

use super::TableRow;

/// Table rows in arrival order, encoded; `sort` orders them by id.
#[derive(Default)]
pub struct TableRows {
    bytes: Vec<u8>,
    /// (id, offset of the row in `bytes`)
    index: Vec<(u64, usize)>,
    /// The `&'static str` cells (outcome, TIME_WAIT side, RST kind), by number.
    names: Vec<&'static str>,
}

const NONE: u8 = u8::MAX;

impl TableRows {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn push(&mut self, row: &TableRow) {
        self.index.push((row.id, self.bytes.len()));
        let outcome = self.intern(Some(row.outcome));
        let time_wait = self.intern(row.time_wait);
        let rst = self.intern(row.rst);
        let b = &mut self.bytes;
        for (ip, port) in [&row.client, &row.server] {
            let ip = &ip.as_bytes()[..ip.len().min(255)];
            b.push(ip.len() as u8);
            b.extend_from_slice(ip);
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
    }

    /// Order the rows by id (stable: as `Vec::sort_by_key` did).
    pub fn sort(&mut self) {
        self.index.sort_by_key(|&(id, _)| id);
    }

    /// Row `i` (in the current order).
    pub fn get(&self, i: usize) -> Option<TableRow> {
        let &(id, at) = self.index.get(i)?;
        let mut r = Reader(self.bytes.get(at..)?);
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
