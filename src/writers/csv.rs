//! Records as Python's `CsvWriter` writes them: `flatten(to_dict(record))` (dotted column
//! names, lists as compact `json.dumps`), the optional sub-records' columns present even
//! when null, through `csv.DictWriter(lineterminator="\n")` with `QUOTE_MINIMAL`.

use crate::model::{ConnectionRecord, PerSide, StateChange, SynOptions, Tfo};
use crate::zeek::{ZeekConn, ZeekRecord};

use super::floats;

/// The columns, in `flatten`'s order (the record's field order).
pub const COLUMNS: [&str; 138] = [
    "id",
    "client.ip",
    "client.port",
    "server.ip",
    "server.port",
    "role_rule",
    "previous_id",
    "first_ts",
    "last_ts",
    "duration_ms",
    "outcome",
    "handshake.complete",
    "handshake.syn_to_synack_ms",
    "handshake.synack_to_ack_ms",
    "handshake.rtt_ms",
    "handshake.setup_ms",
    "handshake.syn_retransmits",
    "handshake.synack_retransmits",
    "handshake.matched_by",
    "handshake.ambiguity",
    "handshake.simultaneous_open",
    "options.client.mss",
    "options.client.wscale",
    "options.client.sack_permitted",
    "options.client.timestamps",
    "options.client.tfo",
    "options.client.data_bytes",
    "options.client.ecn",
    "options.client.rewritten",
    "options.server.mss",
    "options.server.wscale",
    "options.server.sack_permitted",
    "options.server.timestamps",
    "options.server.tfo",
    "options.server.data_bytes",
    "options.server.ecn",
    "options.server.rewritten",
    "close.initiator",
    "close.time_wait",
    "close.time_wait_ts",
    "close.time_wait_until",
    "close.fin_ts.client",
    "close.fin_ts.server",
    "half_close.side",
    "half_close.bytes_after_fin",
    "half_close.duration_ms",
    "rst.sender",
    "rst.state",
    "rst.receiver_state",
    "rst.kind",
    "rst.ts",
    "rst.count",
    "probe.kind",
    "probe.answer",
    "probe.sender",
    "keepalive.probes.client",
    "keepalive.probes.server",
    "keepalive.acks.client",
    "keepalive.acks.server",
    "keepalive.intervals_ms.client",
    "keepalive.intervals_ms.server",
    "reuse.protocol",
    "reuse.requests",
    "reuse.responses",
    "reuse.idle_gaps_ms",
    "states.client",
    "states.server",
    "final_state.client",
    "final_state.server",
    "packets.client",
    "packets.server",
    "bytes.client",
    "bytes.server",
    "unique_bytes.client",
    "unique_bytes.server",
    "retransmitted_bytes.client",
    "retransmitted_bytes.server",
    "gap_bytes.client",
    "gap_bytes.server",
    "anomalies.client",
    "anomalies.server",
    "duplicates.client",
    "duplicates.server",
    "short_frames.client",
    "short_frames.server",
    "retransmissions.client.rto.segments",
    "retransmissions.client.rto.bytes",
    "retransmissions.client.fast.segments",
    "retransmissions.client.fast.bytes",
    "retransmissions.client.tlp.segments",
    "retransmissions.client.tlp.bytes",
    "retransmissions.client.spurious.segments",
    "retransmissions.client.spurious.bytes",
    "retransmissions.client.keepalive.segments",
    "retransmissions.client.keepalive.bytes",
    "retransmissions.client.window_probe.segments",
    "retransmissions.client.window_probe.bytes",
    "retransmissions.client.lost_before_capture.segments",
    "retransmissions.client.lost_before_capture.bytes",
    "retransmissions.client.lost_after_capture.segments",
    "retransmissions.client.lost_after_capture.bytes",
    "retransmissions.server.rto.segments",
    "retransmissions.server.rto.bytes",
    "retransmissions.server.fast.segments",
    "retransmissions.server.fast.bytes",
    "retransmissions.server.tlp.segments",
    "retransmissions.server.tlp.bytes",
    "retransmissions.server.spurious.segments",
    "retransmissions.server.spurious.bytes",
    "retransmissions.server.keepalive.segments",
    "retransmissions.server.keepalive.bytes",
    "retransmissions.server.window_probe.segments",
    "retransmissions.server.window_probe.bytes",
    "retransmissions.server.lost_before_capture.segments",
    "retransmissions.server.lost_before_capture.bytes",
    "retransmissions.server.lost_after_capture.segments",
    "retransmissions.server.lost_after_capture.bytes",
    "zero_window.client.periods",
    "zero_window.client.stall_ms",
    "zero_window.client.longest_ms",
    "zero_window.client.probes",
    "zero_window.server.periods",
    "zero_window.server.stall_ms",
    "zero_window.server.longest_ms",
    "zero_window.server.probes",
    "rtt.client.samples",
    "rtt.client.p50_ms",
    "rtt.client.p90_ms",
    "rtt.client.max_ms",
    "rtt.server.samples",
    "rtt.server.p50_ms",
    "rtt.server.p90_ms",
    "rtt.server.max_ms",
    "throughput.client.duration_ms",
    "throughput.client.bits_per_s",
    "throughput.server.duration_ms",
    "throughput.server.bits_per_s",
    "encapsulation",
];

/// The `zeek` columns (--zeek), after the others: the current Zeek connection's values,
/// then the earlier ones as one json cell.
pub const ZEEK_COLUMNS: [&str; 15] = [
    "zeek.orig",
    "zeek.ts",
    "zeek.conn_state",
    "zeek.history",
    "zeek.duration",
    "zeek.orig_bytes",
    "zeek.resp_bytes",
    "zeek.missed_bytes",
    "zeek.orig_pkts",
    "zeek.orig_ip_bytes",
    "zeek.resp_pkts",
    "zeek.resp_ip_bytes",
    "zeek.orig_state",
    "zeek.resp_state",
    "zeek.earlier",
];

/// The header row goes before the first record (with the `zeek` columns when that record
/// has a Zeek view: Python's DictWriter takes its columns from the first record).
pub struct CsvWriter {
    header_written: bool,
    cell: Vec<u8>,
}

impl Default for CsvWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvWriter {
    pub fn new() -> Self {
        CsvWriter {
            header_written: false,
            cell: Vec::with_capacity(256),
        }
    }

    /// Appends the record's row (after the header, the first time) to `out`.
    pub fn write(&mut self, record: &ConnectionRecord, out: &mut Vec<u8>) {
        if !self.header_written {
            self.header_written = true;
            let mut row = Row {
                out,
                cell: &mut self.cell,
                first: true,
            };
            for column in COLUMNS {
                row.str(column);
            }
            if record.zeek.is_some() {
                for column in ZEEK_COLUMNS {
                    row.str(column);
                }
            }
            if record.file.is_some() {
                row.str("file"); // --per-file only, last: the other columns keep their places
            }
            out.push(b'\n');
        }
        let mut row = Row {
            out,
            cell: &mut self.cell,
            first: true,
        };
        write_row(&mut row, record);
        if let Some(zeek) = &record.zeek {
            row.zeek(zeek);
        }
        if let Some(file) = &record.file {
            row.str(file);
        }
        out.push(b'\n');
    }
}

/// One row being written. Numbers go straight out (they never need quotes); lists are
/// built in `cell` first, then copied out quoted if they must be.
struct Row<'a> {
    out: &'a mut Vec<u8>,
    cell: &'a mut Vec<u8>,
    first: bool,
}

/// QUOTE_MINIMAL as Python 3.11's csv module applies it: quoted when the cell holds the
/// delimiter, the quote char or a lineterminator character. (Python 3.13 also quotes a
/// lone `\r`: records never hold one.)
fn needs_quotes(cell: &[u8]) -> bool {
    cell.iter().fold(false, |found, &b| {
        found | (b == b',') | (b == b'"') | (b == b'\n')
    })
}

impl Row<'_> {
    fn separate(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    /// A text cell, quotes doubled inside quotes.
    fn text(&mut self, cell: &[u8]) {
        self.separate();
        if needs_quotes(cell) {
            self.out.push(b'"');
            for &b in cell {
                self.out.push(b);
                if b == b'"' {
                    self.out.push(b'"');
                }
            }
            self.out.push(b'"');
        } else {
            self.out.extend_from_slice(cell);
        }
    }

    /// Ends the cell built in `self.cell`.
    fn flush(&mut self) {
        let cell = std::mem::take(self.cell);
        self.text(&cell);
        *self.cell = cell;
        self.cell.clear();
    }

    fn none(&mut self) {
        self.separate();
    }

    fn str(&mut self, value: &str) {
        self.text(value.as_bytes());
    }

    /// The tunnels as `tunnel_path` writes them (empty for plain traffic): the outer
    /// addresses are in the JSON formats only.
    fn encapsulation(&mut self, path: &[crate::decode::TunnelLayer]) {
        let mut cell = std::mem::take(self.cell);
        cell.clear();
        tunnel_path(&mut cell, path);
        self.text(&cell);
        // empty again: list cells are built in it after it (the next record's first one
        // began with this path)
        cell.clear();
        *self.cell = cell;
    }

    /// A side's SYN options, eight cells (empty when its SYN was not captured); the
    /// rewritten options as a JSON list, as the other list cells.
    fn syn_options(&mut self, options: Option<&SynOptions>) {
        let Some(o) = options else {
            for _ in 0..8 {
                self.none();
            }
            return;
        };
        match o.mss {
            Some(mss) => self.int(mss),
            None => self.none(),
        }
        match o.wscale {
            Some(shift) => self.int(shift),
            None => self.none(),
        }
        self.bool(o.sack_permitted);
        self.bool(o.timestamps);
        self.opt_str(o.tfo.map(Tfo::name));
        self.int(o.data_bytes);
        self.bool(o.ecn);
        let names: Vec<String> = (o.rewritten_names().iter())
            .map(|name| format!("\"{name}\""))
            .collect();
        self.str(&format!("[{}]", names.join(",")));
    }

    /// The health parts: each side's tallies (segments, bytes), then its zero windows.
    fn health(&mut self, r: &ConnectionRecord) {
        for side in [&r.retransmissions.client, &r.retransmissions.server] {
            for (_, tally) in super::health::tallies(side) {
                self.int(tally.segments);
                self.int(tally.bytes);
            }
        }
        for z in [&r.zero_window.client, &r.zero_window.server] {
            self.int(z.periods);
            self.float(z.stall_ms);
            self.float(z.longest_ms);
            self.int(z.probes);
        }
    }

    /// Each side's RTT samples, then each side's throughput (writers/rtt.rs).
    fn rtt(&mut self, r: &ConnectionRecord) {
        use crate::model::us_to_ms;
        let ms = |us: Option<u32>| us.map(|us| us_to_ms(us.into()));
        for rtt in [&r.rtt.client, &r.rtt.server] {
            self.int(rtt.samples);
            self.opt_float(ms(rtt.p50_us));
            self.opt_float(ms(rtt.p90_us));
            self.opt_float(ms(rtt.max_us));
        }
        for t in [&r.throughput.client, &r.throughput.server] {
            self.float(us_to_ms(t.duration_us));
            match t.bits_per_s {
                Some(bits) => self.int(bits),
                None => self.none(),
            }
        }
    }

    fn bool(&mut self, value: bool) {
        self.separate();
        self.out
            .extend_from_slice(if value { b"True" } else { b"False" });
    }

    fn int<I: itoa::Integer>(&mut self, value: I) {
        self.separate();
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn float(&mut self, value: f64) {
        self.separate();
        floats::write_repr(self.out, value);
    }

    fn opt_float(&mut self, value: Option<f64>) {
        match value {
            Some(v) => self.float(v),
            None => self.none(),
        }
    }

    fn opt_str(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.str(v),
            None => self.none(),
        }
    }

    fn counts(&mut self, pair: &PerSide<u64>) {
        self.int(pair.client);
        self.int(pair.server);
    }

    /// `json.dumps(values, separators=(",", ":"))`.
    fn float_list(&mut self, values: &[f64]) {
        self.cell.push(b'[');
        for (i, &v) in values.iter().enumerate() {
            if i > 0 {
                self.cell.push(b',');
            }
            floats::write_json_dumps(self.cell, v);
        }
        self.cell.push(b']');
        self.flush();
    }

    /// The `zeek` cells: the current connection's, then `json.dumps(earlier,
    /// separators=(",", ":"))`.
    fn zeek(&mut self, z: &ZeekRecord) {
        let c = &z.current;
        self.str(c.orig_name());
        self.float(c.ts);
        self.str(c.conn_state.name());
        self.str(&c.history);
        self.opt_float(c.duration);
        for value in [c.orig_bytes, c.resp_bytes, c.missed_bytes, c.orig_pkts] {
            self.int(value);
        }
        for value in [c.orig_ip_bytes, c.resp_pkts, c.resp_ip_bytes] {
            self.int(value);
        }
        self.str(c.orig_state.name());
        self.str(c.resp_state.name());
        self.cell.push(b'[');
        for (i, earlier) in z.earlier.iter().enumerate() {
            if i > 0 {
                self.cell.push(b',');
            }
            zeek_json_dumps(self.cell, earlier);
        }
        self.cell.push(b']');
        self.flush();
    }

    /// `json.dumps([{"ts": ..., "state": ...}, ...], separators=(",", ":"))`.
    fn state_changes(&mut self, changes: &[StateChange]) {
        self.cell.push(b'[');
        for (i, change) in changes.iter().enumerate() {
            if i > 0 {
                self.cell.push(b',');
            }
            self.cell.extend_from_slice(b"{\"ts\":");
            floats::write_json_dumps(self.cell, change.ts);
            self.cell.extend_from_slice(b",\"state\":");
            write_ascii_json_string(self.cell, change.state.name());
            self.cell.push(b'}');
        }
        self.cell.push(b']');
        self.flush();
    }
}

/// One Zeek connection as `json.dumps(dict, separators=(",", ":"))`.
fn zeek_json_dumps(out: &mut Vec<u8>, z: &ZeekConn) {
    out.extend_from_slice(b"{\"orig\":");
    write_ascii_json_string(out, z.orig_name());
    out.extend_from_slice(b",\"ts\":");
    floats::write_json_dumps(out, z.ts);
    out.extend_from_slice(b",\"conn_state\":");
    write_ascii_json_string(out, z.conn_state.name());
    out.extend_from_slice(b",\"history\":");
    write_ascii_json_string(out, &z.history);
    out.extend_from_slice(b",\"duration\":");
    match z.duration {
        Some(d) => floats::write_json_dumps(out, d),
        None => out.extend_from_slice(b"null"),
    }
    let mut digits = itoa::Buffer::new();
    for (key, value) in [
        (&b",\"orig_bytes\":"[..], z.orig_bytes),
        (b",\"resp_bytes\":", z.resp_bytes),
        (b",\"missed_bytes\":", z.missed_bytes),
        (b",\"orig_pkts\":", z.orig_pkts),
        (b",\"orig_ip_bytes\":", z.orig_ip_bytes),
        (b",\"resp_pkts\":", z.resp_pkts),
        (b",\"resp_ip_bytes\":", z.resp_ip_bytes),
    ] {
        out.extend_from_slice(key);
        out.extend_from_slice(digits.format(value).as_bytes());
    }
    out.extend_from_slice(b",\"orig_state\":");
    write_ascii_json_string(out, z.orig_state.name());
    out.extend_from_slice(b",\"resp_state\":");
    write_ascii_json_string(out, z.resp_state.name());
    out.push(b'}');
}

/// A string as `json.dumps` writes it (`ensure_ascii`): `\uXXXX` for control characters,
/// DEL and everything beyond ASCII (UTF-16 surrogate pairs beyond the BMP).
fn write_ascii_json_string(out: &mut Vec<u8>, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for c in value.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            ' '..='~' => out.push(c as u8),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.extend_from_slice(b"\\u");
                    for shift in [12, 8, 4, 0] {
                        out.push(HEX[((*unit >> shift) & 0xf) as usize]);
                    }
                }
            }
        }
    }
    out.push(b'"');
}

fn write_row(row: &mut Row, r: &ConnectionRecord) {
    row.int(r.id);
    row.str(&r.client.ip);
    row.int(r.client.port);
    row.str(&r.server.ip);
    row.int(r.server.port);
    row.str(r.role_rule.name());
    match r.previous_id {
        Some(id) => row.int(id),
        None => row.none(),
    }
    row.float(r.first_ts);
    row.float(r.last_ts);
    row.float(r.duration_ms);
    row.str(r.outcome.name());

    let h = &r.handshake;
    row.bool(h.complete);
    row.opt_float(h.syn_to_synack_ms);
    row.opt_float(h.synack_to_ack_ms);
    row.opt_float(h.rtt_ms);
    row.opt_float(h.setup_ms);
    row.int(h.syn_retransmits);
    row.int(h.synack_retransmits);
    row.opt_str(h.matched_by);
    row.opt_str(h.ambiguity);
    row.bool(h.simultaneous_open);
    for side in [&r.options.client, &r.options.server] {
        row.syn_options(side.as_ref());
    }

    let c = &r.close;
    row.opt_str(c.initiator.map(|s| s.name()));
    row.opt_str(c.time_wait.map(|s| s.name()));
    row.opt_float(c.time_wait_ts);
    row.opt_float(c.time_wait_until);
    row.opt_float(c.fin_ts.client);
    row.opt_float(c.fin_ts.server);

    match &r.half_close {
        Some(h) => {
            row.str(h.side.name());
            row.int(h.bytes_after_fin);
            row.float(h.duration_ms);
        }
        None => (0..3).for_each(|_| row.none()),
    }
    match &r.rst {
        Some(rst) => {
            row.str(rst.sender.name());
            row.str(rst.state.name());
            row.str(rst.receiver_state.name());
            row.str(rst.kind.name());
            row.float(rst.ts);
            row.int(rst.count);
        }
        None => (0..6).for_each(|_| row.none()),
    }
    match &r.probe {
        Some(p) => {
            row.str(p.kind.name());
            row.str(p.answer.name());
            row.str(p.sender.name());
        }
        None => (0..3).for_each(|_| row.none()),
    }

    let k = &r.keepalive;
    row.counts(&k.probes);
    row.counts(&k.acks);
    row.float_list(&k.intervals_ms.client);
    row.float_list(&k.intervals_ms.server);

    let u = &r.reuse;
    row.opt_str(u.protocol);
    row.int(u.requests);
    row.int(u.responses);
    row.float_list(&u.idle_gaps_ms);

    row.state_changes(&r.states.client);
    row.state_changes(&r.states.server);
    row.str(r.final_state.client.name());
    row.str(r.final_state.server.name());
    row.counts(&r.packets);
    row.counts(&r.bytes);
    row.counts(&r.unique_bytes);
    row.counts(&r.retransmitted_bytes);
    row.counts(&r.gap_bytes);
    row.counts(&r.anomalies);
    row.counts(&r.duplicates);
    row.counts(&r.short_frames);
    row.health(r);
    row.rtt(r);
    row.encapsulation(
        r.encapsulation
            .as_deref()
            .map_or(&[], |path| path.as_slice()),
    );
}

/// The tunnels, outermost first, as `kind[:id]` joined by `>` ("vxlan:42>gre:7"; nothing
/// for plain traffic): the csv column and the table's tunnel column.
pub(crate) fn tunnel_path(out: &mut Vec<u8>, path: &[crate::decode::TunnelLayer]) {
    for (i, layer) in path.iter().enumerate() {
        if i > 0 {
            out.push(b'>');
        }
        out.extend_from_slice(layer.kind.name().as_bytes());
        if let (Some(_), Some(id)) = (layer.kind.id_name(), layer.id) {
            out.push(b':');
            out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writers::fixture;

    #[test]
    fn csv_matches_python() {
        let mut writer = CsvWriter::new();
        let mut out = Vec::new();
        for record in fixture::records() {
            writer.write(&record, &mut out);
        }
        let expected = include_str!("testdata/expected.csv");
        let got = String::from_utf8(out).unwrap();
        for (got, want) in got.split('\n').zip(expected.split('\n')) {
            assert_eq!(got, want);
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn a_tunnel_stays_in_its_own_row() {
        use crate::decode::{TunnelKind, TunnelLayer};
        let records = fixture::records();
        let mut tunnelled = records[0].clone();
        tunnelled.encapsulation = Some(std::sync::Arc::new(vec![TunnelLayer {
            kind: TunnelKind::Vxlan,
            id: Some(42),
            src: 1,
            dst: 2,
            sport: 51000,
            dport: 4789,
            over_udp: false,
        }]));
        let row = |r: &ConnectionRecord| {
            let mut out = Vec::new();
            let mut alone = CsvWriter::new();
            alone.write(r, &mut out);
            String::from_utf8(out).unwrap()
        };
        let mut writer = CsvWriter::new();
        let mut out = Vec::new();
        writer.write(&tunnelled, &mut out);
        writer.write(&records[1], &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("vxlan:42").count(), 1);
        let second = row(&records[1]);
        assert_eq!(text.lines().nth(2), second.lines().nth(1));
    }

    #[test]
    fn ensure_ascii_strings() {
        let mut out = Vec::new();
        write_ascii_json_string(&mut out, "é\u{7f}😀\"\n");
        // json.dumps("é\x7f😀\"\n")
        assert_eq!(out, b"\"\\u00e9\\u007f\\ud83d\\ude00\\\"\\n\"");
    }
}
