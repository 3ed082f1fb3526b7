//! Records as orjson writes `to_dict(record)`: compact for jsonl, `OPT_INDENT_2` for the
//! json document. Written by hand, field by field in the record's order: this runs once
//! per connection.

use crate::model::{
    Close, ConnectionRecord, Endpoint, HalfClose, Handshake, Keepalive, PerSide, Reuse, Rst,
    StateChange, SynOptions, Tfo,
};

use super::floats;

/// Appends one JSON text to a byte buffer, with orjson's whitespace: none, or (indented)
/// two spaces per level after `base` spaces on every line, `": "` after keys.
pub(crate) struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    /// `Some(base)`: indented, each line starting with `base` spaces.
    indent: Option<usize>,
    depth: usize,
    /// No element written yet in the innermost open container.
    first: bool,
    /// The last floats written, as (bits, where their text is in `out`, its length): a
    /// record repeats its timestamps (first_ts in states, last_ts as time_wait_ts, both
    /// sides' state changes at one instant), and a float's text costs hundreds of
    /// instructions while a copy costs a few.
    recent: [(u64, usize, usize); RECENT_FLOATS],
    next_recent: usize,
}

/// Floats remembered per record (see `Encoder::recent`).
const RECENT_FLOATS: usize = 8;

impl<'a> Encoder<'a> {
    pub(crate) fn compact(out: &'a mut Vec<u8>) -> Self {
        Encoder {
            out,
            indent: None,
            depth: 0,
            first: true,
            recent: [(0, 0, 0); RECENT_FLOATS],
            next_recent: 0,
        }
    }

    /// `OPT_INDENT_2`, every line (the first too) prefixed by `base` spaces.
    pub(crate) fn indented(out: &'a mut Vec<u8>, base: usize) -> Self {
        out.resize(out.len() + base, b' ');
        Encoder {
            out,
            indent: Some(base),
            depth: 0,
            first: true,
            recent: [(0, 0, 0); RECENT_FLOATS],
            next_recent: 0,
        }
    }

    #[inline(always)]
    fn newline(&mut self) {
        if let Some(base) = self.indent {
            self.out.push(b'\n');
            self.out
                .resize(self.out.len() + base + 2 * self.depth, b' ');
        }
    }

    #[inline(always)]
    fn open(&mut self, bracket: u8) {
        self.out.push(bracket);
        self.depth += 1;
        self.first = true;
    }

    /// Closes a container: `[]` and `{}` when empty, as orjson writes them.
    #[inline(always)]
    fn close(&mut self, bracket: u8) {
        self.depth = self.depth.saturating_sub(1);
        if !self.first {
            self.newline();
        }
        self.out.push(bracket);
        self.first = false;
    }

    /// Before an array element or an object key.
    #[inline(always)]
    fn separate(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.newline();
        self.first = false;
    }

    #[inline(always)]
    pub(crate) fn begin_object(&mut self) {
        self.open(b'{');
    }

    #[inline(always)]
    pub(crate) fn end_object(&mut self) {
        self.close(b'}');
    }

    #[inline(always)]
    pub(crate) fn begin_array(&mut self) {
        self.open(b'[');
    }

    #[inline(always)]
    pub(crate) fn end_array(&mut self) {
        self.close(b']');
    }

    /// A key (the value follows with one of the value methods). Keys are the record's
    /// field names: plain ASCII, written without an escaping pass.
    #[inline(always)]
    pub(crate) fn key(&mut self, key: &'static str) {
        self.separate();
        debug_assert!(!needs_escape(key.as_bytes()));
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        if self.indent.is_some() {
            self.out.push(b' ');
        }
    }

    /// Before each array element.
    #[inline(always)]
    pub(crate) fn element(&mut self) {
        self.separate();
    }

    #[inline(always)]
    pub(crate) fn null(&mut self) {
        self.out.extend_from_slice(b"null");
        self.first = false;
    }

    #[inline(always)]
    pub(crate) fn bool(&mut self, value: bool) {
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
        self.first = false;
    }

    #[inline(always)]
    pub(crate) fn int<I: itoa::Integer>(&mut self, value: I) {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self.first = false;
    }

    #[inline(always)]
    pub(crate) fn float(&mut self, value: f64) {
        let bits = value.to_bits();
        let end = self.out.len();
        let seen = self
            .recent
            .iter()
            .find(|&&(b, at, len)| b == bits && len > 0 && at + len <= end);
        if let Some(&(_, at, len)) = seen {
            self.out.extend_from_within(at..at + len);
        } else {
            floats::write_orjson(self.out, value);
            self.recent[self.next_recent % RECENT_FLOATS] = (bits, end, self.out.len() - end);
            self.next_recent += 1;
        }
        self.first = false;
    }

    #[inline(always)]
    pub(crate) fn str(&mut self, value: &str) {
        write_string(self.out, value);
        self.first = false;
    }

    #[inline(always)]
    pub(crate) fn opt_float(&mut self, value: Option<f64>) {
        match value {
            Some(v) => self.float(v),
            None => self.null(),
        }
    }

    /// An enum's text (`name()`): plain ASCII, written without an escaping pass (as keys
    /// are).
    #[inline(always)]
    pub(crate) fn name(&mut self, value: &'static str) {
        debug_assert!(!needs_escape(value.as_bytes()), "{value:?}");
        self.out.push(b'"');
        self.out.extend_from_slice(value.as_bytes());
        self.out.push(b'"');
        self.first = false;
    }

    #[inline(always)]
    fn opt_name(&mut self, value: Option<&'static str>) {
        match value {
            Some(v) => self.name(v),
            None => self.null(),
        }
    }

    /// A free-form text field (escaped: records built by hand may hold anything).
    #[inline(always)]
    fn opt_str(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.str(v),
            None => self.null(),
        }
    }

    #[inline(always)]
    pub(crate) fn opt_int(&mut self, value: Option<u64>) {
        match value {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }

    pub(crate) fn per_side<T>(
        &mut self,
        key: &'static str,
        pair: &PerSide<T>,
        mut each: impl FnMut(&mut Self, &T),
    ) {
        self.key(key);
        self.begin_object();
        self.key("client");
        each(self, &pair.client);
        self.key("server");
        each(self, &pair.server);
        self.end_object();
    }

    fn counts(&mut self, key: &'static str, pair: &PerSide<u64>) {
        self.per_side(key, pair, |e, v| e.int(*v));
    }

    fn float_list(&mut self, values: &[f64]) {
        self.begin_array();
        for &v in values {
            self.element();
            self.float(v);
        }
        self.end_array();
    }
}

/// A string as orjson escapes it: `"` and `\`, the short escapes `\b \t \n \f \r`, other
/// control characters as `\u00XX`; everything else (DEL and non-ASCII too) as UTF-8.
pub(crate) fn write_string(out: &mut Vec<u8>, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = value.as_bytes();
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(bytes.get(start..i).unwrap_or(&[]));
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or(&[]));
    out.push(b'"');
}

/// Any byte orjson escapes (a branch-free scan: most strings have none).
fn needs_escape(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |found, &b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// The record as `orjson.dumps(to_dict(record), option=OPT_APPEND_NEWLINE)`: one jsonl
/// line.
/// (Written in literal runs by `writers::jsonl`: this per-connection line is the hot one.)
pub fn write_jsonl(out: &mut Vec<u8>, record: &ConnectionRecord) {
    super::jsonl::write_jsonl(out, record);
}

/// The record as `orjson.dumps(to_dict(record), option=OPT_INDENT_2)` with every line
/// prefixed by `base` spaces (the json document indents records by 4).
pub fn write_indented(out: &mut Vec<u8>, record: &ConnectionRecord, base: usize) {
    out.reserve(4096);
    encode_record(&mut Encoder::indented(out, base), record);
}

pub(crate) fn encode_record(e: &mut Encoder, r: &ConnectionRecord) {
    e.begin_object();
    e.key("id");
    e.int(r.id);
    if let Some(file) = &r.file {
        e.key("file"); // --per-file only: merged files give no such key
        e.str(file);
    }
    e.key("client");
    endpoint(e, &r.client);
    e.key("server");
    endpoint(e, &r.server);
    e.key("role_rule");
    e.name(r.role_rule.name());
    e.key("previous_id");
    e.opt_int(r.previous_id);
    e.key("first_ts");
    e.float(r.first_ts);
    e.key("last_ts");
    e.float(r.last_ts);
    e.key("duration_ms");
    e.float(r.duration_ms);
    e.key("outcome");
    e.name(r.outcome.name());
    e.key("handshake");
    handshake(e, &r.handshake);
    options(e, &r.options);
    e.key("close");
    close(e, &r.close);
    e.key("half_close");
    match &r.half_close {
        Some(h) => half_close(e, h),
        None => e.null(),
    }
    e.key("rst");
    match &r.rst {
        Some(rst) => reset(e, rst),
        None => e.null(),
    }
    e.key("probe");
    match &r.probe {
        Some(p) => {
            e.begin_object();
            e.key("kind");
            e.name(p.kind.name());
            e.key("answer");
            e.name(p.answer.name());
            e.key("sender");
            e.name(p.sender.name());
            e.end_object();
        }
        None => e.null(),
    }
    e.key("keepalive");
    keepalive(e, &r.keepalive);
    e.key("reuse");
    reuse(e, &r.reuse);
    e.per_side("states", &r.states, |e, changes| state_changes(e, changes));
    e.per_side("final_state", &r.final_state, |e, s| e.name(s.name()));
    e.counts("packets", &r.packets);
    e.counts("bytes", &r.bytes);
    e.counts("unique_bytes", &r.unique_bytes);
    e.counts("retransmitted_bytes", &r.retransmitted_bytes);
    e.counts("gap_bytes", &r.gap_bytes);
    e.counts("anomalies", &r.anomalies);
    e.counts("duplicates", &r.duplicates);
    e.counts("short_frames", &r.short_frames);
    super::health::encode(e, r);
    super::rtt::encode(e, r);
    e.key("encapsulation"); // [] for plain traffic
    encapsulation(
        e,
        r.encapsulation
            .as_deref()
            .map_or(&[], |path| path.as_slice()),
    );
    if let Some(zeek) = &r.zeek {
        e.key("zeek");
        super::zeek::encode_json(e, zeek);
    }
    e.end_object();
}

/// `{"client": {"mss": 1460, ..., "rewritten": []}, "server": null}`: each side's SYN options.
pub(crate) fn options(e: &mut Encoder, sides: &PerSide<Option<SynOptions>>) {
    e.per_side("options", sides, |e, side| match side {
        None => e.null(),
        Some(o) => {
            e.begin_object();
            e.key("mss");
            e.opt_int(o.mss.map(u64::from));
            e.key("wscale");
            e.opt_int(o.wscale.map(u64::from));
            e.key("sack_permitted");
            e.bool(o.sack_permitted);
            e.key("timestamps");
            e.bool(o.timestamps);
            e.key("tfo");
            e.opt_name(o.tfo.map(Tfo::name));
            e.key("data_bytes");
            e.int(o.data_bytes);
            e.key("ecn");
            e.bool(o.ecn);
            e.key("rewritten");
            e.begin_array();
            if o.rewritten != 0 {
                for name in o.rewritten_names() {
                    e.element();
                    e.name(name);
                }
            }
            e.end_array();
            e.end_object();
        }
    });
}

/// `[{"type": "vxlan", "vni": 42, "outer": {"src": .., "dst": .., "sport": .., "dport": ..}}]`
pub(crate) fn encapsulation(e: &mut Encoder, path: &[crate::decode::TunnelLayer]) {
    e.begin_array();
    for layer in path {
        e.element();
        e.begin_object();
        e.key("type");
        e.str(layer.kind.name());
        if let (Some(name), Some(id)) = (layer.kind.id_name(), layer.id) {
            e.key(name);
            e.int(id);
        }
        e.key("outer");
        e.begin_object();
        e.key("src");
        e.str(&crate::connection::address_text(layer.src));
        e.key("dst");
        e.str(&crate::connection::address_text(layer.dst));
        if layer.has_ports() {
            e.key("sport");
            e.int(layer.sport);
            e.key("dport");
            e.int(layer.dport);
        }
        e.end_object();
        e.end_object();
    }
    e.end_array();
}

fn endpoint(e: &mut Encoder, endpoint: &Endpoint) {
    e.begin_object();
    e.key("ip");
    e.str(&endpoint.ip);
    e.key("port");
    e.int(endpoint.port);
    e.end_object();
}

fn handshake(e: &mut Encoder, h: &Handshake) {
    e.begin_object();
    e.key("complete");
    e.bool(h.complete);
    e.key("syn_to_synack_ms");
    e.opt_float(h.syn_to_synack_ms);
    e.key("synack_to_ack_ms");
    e.opt_float(h.synack_to_ack_ms);
    e.key("rtt_ms");
    e.opt_float(h.rtt_ms);
    e.key("setup_ms");
    e.opt_float(h.setup_ms);
    e.key("syn_retransmits");
    e.int(h.syn_retransmits);
    e.key("synack_retransmits");
    e.int(h.synack_retransmits);
    e.key("matched_by");
    e.opt_str(h.matched_by);
    e.key("ambiguity");
    e.opt_str(h.ambiguity);
    e.key("simultaneous_open");
    e.bool(h.simultaneous_open);
    e.end_object();
}

fn close(e: &mut Encoder, c: &Close) {
    e.begin_object();
    e.key("initiator");
    e.opt_name(c.initiator.map(|s| s.name()));
    e.key("time_wait");
    e.opt_name(c.time_wait.map(|s| s.name()));
    e.key("time_wait_ts");
    e.opt_float(c.time_wait_ts);
    e.key("time_wait_until");
    e.opt_float(c.time_wait_until);
    e.per_side("fin_ts", &c.fin_ts, |e, ts| e.opt_float(*ts));
    e.end_object();
}

fn half_close(e: &mut Encoder, h: &HalfClose) {
    e.begin_object();
    e.key("side");
    e.name(h.side.name());
    e.key("bytes_after_fin");
    e.int(h.bytes_after_fin);
    e.key("duration_ms");
    e.float(h.duration_ms);
    e.end_object();
}

fn reset(e: &mut Encoder, r: &Rst) {
    e.begin_object();
    e.key("sender");
    e.name(r.sender.name());
    e.key("state");
    e.name(r.state.name());
    e.key("receiver_state");
    e.name(r.receiver_state.name());
    e.key("kind");
    e.name(r.kind.name());
    e.key("ts");
    e.float(r.ts);
    e.key("count");
    e.int(r.count);
    e.end_object();
}

fn keepalive(e: &mut Encoder, k: &Keepalive) {
    e.begin_object();
    e.counts("probes", &k.probes);
    e.counts("acks", &k.acks);
    e.per_side("intervals_ms", &k.intervals_ms, |e, v| e.float_list(v));
    e.end_object();
}

fn reuse(e: &mut Encoder, r: &Reuse) {
    e.begin_object();
    e.key("protocol");
    e.opt_str(r.protocol);
    e.key("requests");
    e.int(r.requests);
    e.key("responses");
    e.int(r.responses);
    e.key("idle_gaps_ms");
    e.float_list(&r.idle_gaps_ms);
    e.end_object();
}

fn state_changes(e: &mut Encoder, changes: &[StateChange]) {
    e.begin_array();
    for change in changes {
        e.element();
        e.begin_object();
        e.key("ts");
        e.float(change.ts);
        e.key("state");
        e.name(change.state.name());
        e.end_object();
    }
    e.end_array();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writers::fixture;

    #[test]
    fn jsonl_matches_python() {
        let mut out = Vec::new();
        for record in fixture::records() {
            write_jsonl(&mut out, &record);
        }
        let expected = include_str!("testdata/expected.jsonl");
        for (got, want) in String::from_utf8(out)
            .unwrap()
            .lines()
            .zip(expected.lines())
        {
            assert_eq!(got, want);
        }
        let mut out = Vec::new();
        for record in fixture::records() {
            write_jsonl(&mut out, &record);
        }
        assert_eq!(out, expected.as_bytes());
    }

    #[test]
    fn indented_matches_orjson() {
        // orjson.dumps(to_dict(r), option=OPT_INDENT_2) of the fixture's first record
        let record = &fixture::records()[0];
        let mut out = Vec::new();
        write_indented(&mut out, record, 0);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("{\n  \"id\": 3,\n  \"client\": {\n    \"ip\": \"10.77.0.1\",\n"));
        assert!(text.contains("\"intervals_ms\": {\n      \"client\": [],\n"));
        assert!(text.ends_with("\"bits_per_s\": null\n    }\n  },\n  \"encapsulation\": []\n}"));
    }

    #[test]
    fn strings_are_escaped_as_orjson_does() {
        let mut out = Vec::new();
        write_string(
            &mut out,
            "é😀\"\\\n\t\u{1}\u{1f}\u{7f}\u{8}\u{c}\r/\u{2028}",
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"é😀\\\"\\\\\\n\\t\\u0001\\u001f\u{7f}\\b\\f\\r/\u{2028}\""
        );
    }

    #[test]
    fn empty_containers() {
        let mut out = Vec::new();
        let mut e = Encoder::indented(&mut out, 0);
        e.begin_object();
        e.key("a");
        e.begin_array();
        e.end_array();
        e.key("b");
        e.begin_object();
        e.end_object();
        e.key("c");
        e.begin_array();
        e.element();
        e.int(1);
        e.element();
        e.begin_object();
        e.key("x");
        e.null();
        e.end_object();
        e.end_array();
        e.end_object();
        // orjson.dumps({"a": [], "b": {}, "c": [1, {"x": None}]}, option=OPT_INDENT_2)
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\n  \"a\": [],\n  \"b\": {},\n  \"c\": [\n    1,\n    {\n      \"x\": null\n    }\n  ]\n}"
        );
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    use crate::writers::{fixture, CsvWriter, Summary};

    /// `cargo test --release --lib writers::json::timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn per_record_cost() {
        let records = fixture::records();
        let rounds = 20_000;
        let count = (records.len() * rounds) as f64;
        let mut out = Vec::with_capacity(1 << 20);
        let mut time = |name: &str, f: &mut dyn FnMut(&ConnectionRecord, &mut Vec<u8>)| {
            let start = std::time::Instant::now();
            let mut bytes = 0;
            for _ in 0..rounds {
                for r in &records {
                    f(r, &mut out);
                }
                bytes += out.len();
                out.clear();
            }
            let ns = start.elapsed().as_nanos() as f64 / count;
            println!("{name}: {ns:.0} ns per record ({bytes} bytes)");
        };
        time("jsonl", &mut |r, out| write_jsonl(out, r));
        time("indented", &mut |r, out| write_indented(out, r, 4));
        let mut csv = CsvWriter::new();
        time("csv", &mut |r, out| csv.write(r, out));
        let mut summary = Summary::new();
        time("summary", &mut |r, _| summary.add(r));
    }
}
