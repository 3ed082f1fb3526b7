//! The jsonl line of a record, `orjson.dumps(to_dict(record), option=OPT_APPEND_NEWLINE)`,
//! written in literal runs: a record's layout is fixed, so each key comes with the
//! punctuation around it (`,"last_ts":`) as one constant copy, instead of the generic
//! encoder's separator, quote, key and colon one push at a time with its `first` and indent
//! checks. The jsonl line is written once per connection and was a quarter of a run's
//! instructions. `json::encode_record` (the indented json document) writes the same fields
//! in the same order; tests/golden and `writers::json`'s fixture test hold both to orjson.

use crate::model::{ConnectionRecord, PerSide, StateChange, SynOptions, Tfo};
use crate::states::TcpState;

use super::floats;
use super::json::{write_string, Encoder};

/// Floats remembered per line: a record repeats its timestamps (first_ts in the states,
/// last_ts as time_wait_ts, both sides' state changes at one instant), and a float's text
/// costs a hundred instructions and more where a copy costs a few. The slots are direct
/// mapped by the float's bits: one compare per float, where a search of the last few
/// written cost more than half a float's text.
const RECENT: usize = 32;
// a power of two (the slot is the hash's top bits), each slot a bit of `Line::filled`
const _: () = assert!(RECENT.is_power_of_two() && RECENT <= u32::BITS as usize);

/// The slot of a float's bits (Fibonacci hashing: the top bits of the product mix all of
/// them, the low mantissa bits where a line's timestamps differ included).
#[inline(always)]
fn recent_slot(bits: u64) -> usize {
    (bits.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - RECENT.trailing_zeros())) as usize
}

/// `,"state":"NAME"}` of each `TcpState` (by `TcpState as usize`), padded to one size: a
/// state change's tail is a constant-size copy, not a `memcpy` call and two pushes (half
/// a million state changes in a 1M-packet run).
const STATE_TAILS: [([u8; STATE_TAIL], usize); 10] = [
    padded(br#","state":"CLOSED"}"#),
    padded(br#","state":"SYN_SENT"}"#),
    padded(br#","state":"SYN_RCVD"}"#),
    padded(br#","state":"ESTABLISHED"}"#),
    padded(br#","state":"FIN_WAIT_1"}"#),
    padded(br#","state":"FIN_WAIT_2"}"#),
    padded(br#","state":"CLOSE_WAIT"}"#),
    padded(br#","state":"CLOSING"}"#),
    padded(br#","state":"LAST_ACK"}"#),
    padded(br#","state":"TIME_WAIT"}"#),
];
const STATE_TAIL: usize = 24;
/// Where the quoted name begins in a `STATE_TAILS` entry (after `,"state":`).
const STATE_NAME_AT: usize = 9;

const fn padded(text: &[u8]) -> ([u8; STATE_TAIL], usize) {
    let mut out = [b' '; STATE_TAIL];
    let mut i = 0;
    while i < text.len() {
        out[i] = text[i];
        i += 1;
    }
    (out, text.len())
}

/// One line being written into `out`.
struct Line<'a> {
    out: &'a mut Vec<u8>,
    /// Floats written in this line, by `recent_slot`: their bits and where their text is
    /// in `out` (start, end).
    recent_bits: [u64; RECENT],
    recent_at: [(usize, usize); RECENT],
    /// The slots in use (bit i: slot i).
    filled: u32,
    /// The digits of the last whole part written (the line's timestamps share a second).
    whole: floats::WholeDigits,
}

impl Line<'_> {
    #[inline(always)]
    fn lit(&mut self, text: &'static [u8]) {
        self.out.extend_from_slice(text);
    }

    /// Most of a record's integers are counts of 0 to 9: one byte, no itoa and no copy of
    /// a text of unknown length (a `memcpy` call).
    #[inline(always)]
    fn int(&mut self, value: u64) {
        if value < 10 {
            self.out.push(b'0' + value as u8);
        } else {
            self.out
                .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        }
    }

    #[inline(always)]
    fn opt_int(&mut self, value: Option<u64>) {
        match value {
            Some(v) => self.int(v),
            None => self.lit(b"null"),
        }
    }

    #[inline(always)]
    fn bool(&mut self, value: bool) {
        self.lit(if value { b"true" } else { b"false" });
    }

    #[inline(always)]
    fn float(&mut self, value: f64) {
        let bits = value.to_bits();
        let slot = recent_slot(bits); // < RECENT: the index cannot fail
        if self.filled & (1 << slot) != 0 && self.recent_bits[slot] == bits {
            // the text was written earlier in this line (`out` only grows while it is)
            let (start, end) = self.recent_at[slot];
            self.out.extend_from_within(start..end);
        } else {
            let start = self.out.len();
            floats::write_orjson_reusing(self.out, value, &mut self.whole);
            self.recent_bits[slot] = bits;
            self.recent_at[slot] = (start, self.out.len());
            self.filled |= 1 << slot;
        }
    }

    #[inline(always)]
    fn opt_float(&mut self, value: Option<f64>) {
        match value {
            Some(v) => self.float(v),
            None => self.lit(b"null"),
        }
    }

    /// An enum's text: plain ASCII, no escaping pass.
    #[inline(always)]
    fn name(&mut self, value: &'static str) {
        self.out.push(b'"');
        self.out.extend_from_slice(value.as_bytes());
        self.out.push(b'"');
    }

    #[inline(always)]
    fn opt_name(&mut self, value: Option<&'static str>) {
        match value {
            Some(v) => self.name(v),
            None => self.lit(b"null"),
        }
    }

    /// A side's SYN options (`json::options` writes the same for the other formats).
    fn syn_options(&mut self, options: Option<&SynOptions>) {
        let Some(o) = options else {
            return self.lit(b"null");
        };
        self.lit(b"{\"mss\":");
        self.opt_int(o.mss.map(u64::from));
        self.lit(b",\"wscale\":");
        self.opt_int(o.wscale.map(u64::from));
        // the flags and the common tail as whole literals: a literal push each costs more
        // than the bytes it copies, and every SYN has these
        self.lit(match (o.sack_permitted, o.timestamps) {
            (true, true) => b",\"sack_permitted\":true,\"timestamps\":true,\"tfo\":",
            (true, false) => b",\"sack_permitted\":true,\"timestamps\":false,\"tfo\":",
            (false, true) => b",\"sack_permitted\":false,\"timestamps\":true,\"tfo\":",
            (false, false) => b",\"sack_permitted\":false,\"timestamps\":false,\"tfo\":",
        });
        self.opt_name(o.tfo.map(Tfo::name));
        match (o.data_bytes, o.ecn, o.rewritten) {
            (0, false, 0) => return self.lit(b",\"data_bytes\":0,\"ecn\":false,\"rewritten\":[]}"),
            (0, true, 0) => return self.lit(b",\"data_bytes\":0,\"ecn\":true,\"rewritten\":[]}"),
            _ => {}
        }
        self.lit(b",\"data_bytes\":");
        self.int(u64::from(o.data_bytes));
        self.lit(b",\"ecn\":");
        self.bool(o.ecn);
        self.lit(b",\"rewritten\":[");
        if o.rewritten != 0 {
            for (i, name) in o.rewritten_names().into_iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                self.name(name);
            }
        }
        self.lit(b"]}");
    }

    /// A free-form text field, escaped (records built by hand may hold anything).
    #[inline(always)]
    fn opt_str(&mut self, value: Option<&str>) {
        match value {
            Some(v) => write_string(self.out, v),
            None => self.lit(b"null"),
        }
    }

    /// `<key>{"client":N,"server":M}`, `key` being `,"name":`.
    #[inline(always)]
    fn counts(&mut self, key: &'static [u8], pair: &PerSide<u64>) {
        self.lit(key);
        self.lit(b"{\"client\":");
        self.int(pair.client);
        self.lit(b",\"server\":");
        self.int(pair.server);
        self.out.push(b'}');
    }

    fn float_list(&mut self, values: &[f64]) {
        self.out.push(b'[');
        for (i, &v) in values.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.float(v);
        }
        self.out.push(b']');
    }

    /// `"NAME"` of a state: the quoted name inside its `STATE_TAILS` entry, copied at a
    /// fixed size and cut to its length.
    #[inline(always)]
    fn state_name(&mut self, state: TcpState) {
        let (text, len) = &STATE_TAILS[state as usize];
        let quoted = &text[STATE_NAME_AT..];
        let start = self.out.len();
        self.out.extend_from_slice(quoted);
        self.out.truncate(start + len - STATE_NAME_AT - 1);
    }

    fn state_changes(&mut self, changes: &[StateChange]) {
        self.out.push(b'[');
        for (i, change) in changes.iter().enumerate() {
            self.lit(if i > 0 { b",{\"ts\":" } else { b"{\"ts\":" });
            self.float(change.ts);
            // `,"state":"NAME"}` as one copy of a fixed size, cut to its length
            let (text, len) = &STATE_TAILS[change.state as usize];
            let start = self.out.len();
            self.out.extend_from_slice(text);
            self.out.truncate(start + len);
        }
        self.out.push(b']');
    }
}

/// The record as one jsonl line, newline included.
pub fn write_jsonl(out: &mut Vec<u8>, r: &ConnectionRecord) {
    out.reserve(2048);
    let mut w = Line {
        out,
        recent_bits: [0; RECENT],
        recent_at: [(0, 0); RECENT],
        filled: 0,
        whole: floats::WholeDigits::default(),
    };
    w.lit(b"{\"id\":");
    w.int(r.id);
    if let Some(file) = &r.file {
        w.lit(b",\"file\":"); // --per-file only
        write_string(w.out, file);
    }
    w.lit(b",\"client\":{\"ip\":");
    write_string(w.out, &r.client.ip);
    w.lit(b",\"port\":");
    w.int(u64::from(r.client.port));
    w.lit(b"},\"server\":{\"ip\":");
    write_string(w.out, &r.server.ip);
    w.lit(b",\"port\":");
    w.int(u64::from(r.server.port));
    w.lit(b"},\"role_rule\":");
    w.name(r.role_rule.name());
    w.lit(b",\"previous_id\":");
    w.opt_int(r.previous_id);
    w.lit(b",\"first_ts\":");
    w.float(r.first_ts);
    w.lit(b",\"last_ts\":");
    w.float(r.last_ts);
    w.lit(b",\"duration_ms\":");
    w.float(r.duration_ms);
    w.lit(b",\"outcome\":");
    w.name(r.outcome.name());

    let h = &r.handshake;
    w.lit(b",\"handshake\":{\"complete\":");
    w.bool(h.complete);
    w.lit(b",\"syn_to_synack_ms\":");
    w.opt_float(h.syn_to_synack_ms);
    w.lit(b",\"synack_to_ack_ms\":");
    w.opt_float(h.synack_to_ack_ms);
    w.lit(b",\"rtt_ms\":");
    w.opt_float(h.rtt_ms);
    w.lit(b",\"setup_ms\":");
    w.opt_float(h.setup_ms);
    w.lit(b",\"syn_retransmits\":");
    w.int(h.syn_retransmits);
    w.lit(b",\"synack_retransmits\":");
    w.int(h.synack_retransmits);
    w.lit(b",\"matched_by\":");
    w.opt_str(h.matched_by);
    w.lit(b",\"ambiguity\":");
    w.opt_str(h.ambiguity);
    w.lit(b",\"simultaneous_open\":");
    w.bool(h.simultaneous_open);
    w.lit(b"},\"options\":{\"client\":");
    w.syn_options(r.options.client.as_ref());
    w.lit(b",\"server\":");
    w.syn_options(r.options.server.as_ref());
    w.out.push(b'}');

    let c = &r.close;
    w.lit(b",\"close\":{\"initiator\":");
    w.opt_name(c.initiator.map(|s| s.name()));
    w.lit(b",\"time_wait\":");
    w.opt_name(c.time_wait.map(|s| s.name()));
    w.lit(b",\"time_wait_ts\":");
    w.opt_float(c.time_wait_ts);
    w.lit(b",\"time_wait_until\":");
    w.opt_float(c.time_wait_until);
    w.lit(b",\"fin_ts\":{\"client\":");
    w.opt_float(c.fin_ts.client);
    w.lit(b",\"server\":");
    w.opt_float(c.fin_ts.server);

    w.lit(b"}},\"half_close\":");
    match &r.half_close {
        Some(h) => {
            w.lit(b"{\"side\":");
            w.name(h.side.name());
            w.lit(b",\"bytes_after_fin\":");
            w.int(h.bytes_after_fin);
            w.lit(b",\"duration_ms\":");
            w.float(h.duration_ms);
            w.out.push(b'}');
        }
        None => w.lit(b"null"),
    }
    w.lit(b",\"rst\":");
    match &r.rst {
        Some(rst) => {
            w.lit(b"{\"sender\":");
            w.name(rst.sender.name());
            w.lit(b",\"state\":");
            w.name(rst.state.name());
            w.lit(b",\"receiver_state\":");
            w.name(rst.receiver_state.name());
            w.lit(b",\"kind\":");
            w.name(rst.kind.name());
            w.lit(b",\"ts\":");
            w.float(rst.ts);
            w.lit(b",\"count\":");
            w.int(rst.count);
            w.out.push(b'}');
        }
        None => w.lit(b"null"),
    }
    match &r.probe {
        Some(p) => {
            w.lit(b",\"probe\":{\"kind\":");
            w.name(p.kind.name());
            w.lit(b",\"answer\":");
            w.name(p.answer.name());
            w.lit(b",\"sender\":");
            w.name(p.sender.name());
            w.out.push(b'}');
        }
        None => w.lit(b",\"probe\":null"),
    }

    let k = &r.keepalive;
    w.counts(b",\"keepalive\":{\"probes\":", &k.probes);
    w.counts(b",\"acks\":", &k.acks);
    w.lit(b",\"intervals_ms\":{\"client\":");
    w.float_list(&k.intervals_ms.client);
    w.lit(b",\"server\":");
    w.float_list(&k.intervals_ms.server);

    let u = &r.reuse;
    w.lit(b"}},\"reuse\":{\"protocol\":");
    w.opt_str(u.protocol);
    w.lit(b",\"requests\":");
    w.int(u.requests);
    w.lit(b",\"responses\":");
    w.int(u.responses);
    w.lit(b",\"idle_gaps_ms\":");
    w.float_list(&u.idle_gaps_ms);

    w.lit(b"},\"states\":{\"client\":");
    w.state_changes(&r.states.client);
    w.lit(b",\"server\":");
    w.state_changes(&r.states.server);
    w.lit(b"},\"final_state\":{\"client\":");
    w.state_name(r.final_state.client);
    w.lit(b",\"server\":");
    w.state_name(r.final_state.server);
    w.out.push(b'}');

    w.counts(b",\"packets\":", &r.packets);
    w.counts(b",\"bytes\":", &r.bytes);
    w.counts(b",\"unique_bytes\":", &r.unique_bytes);
    w.counts(b",\"retransmitted_bytes\":", &r.retransmitted_bytes);
    w.counts(b",\"gap_bytes\":", &r.gap_bytes);
    w.counts(b",\"anomalies\":", &r.anomalies);
    w.counts(b",\"duplicates\":", &r.duplicates);
    w.counts(b",\"short_frames\":", &r.short_frames);
    super::health::write_jsonl(w.out, r);
    super::rtt::write_jsonl(w.out, r);
    match &r.encapsulation {
        Some(path) => {
            w.lit(b",\"encapsulation\":");
            super::json::encapsulation(&mut Encoder::compact(w.out), path);
        }
        None => w.lit(b",\"encapsulation\":[]"),
    }
    if let Some(zeek) = &r.zeek {
        w.lit(b",\"zeek\":");
        super::zeek::encode_json(&mut Encoder::compact(w.out), zeek);
    }
    w.lit(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writers::fixture;
    use crate::writers::json::encode_record;

    /// The literal runs give what the generic encoder (the json document's, compact) gives,
    /// for every record of the fixture (Zeek views, resets, half closes, keep-alive
    /// intervals, escaped texts included).
    #[test]
    fn state_tails_name_every_state_in_order() {
        for state in crate::states::TcpState::ALL {
            let (text, len) = &STATE_TAILS[state as usize];
            let expected = format!(",\"state\":\"{}\"}}", state.name());
            assert_eq!(std::str::from_utf8(&text[..*len]).unwrap(), expected);
            let mut out = Vec::new();
            let mut line = Line {
                out: &mut out,
                recent_bits: [0; RECENT],
                recent_at: [(0, 0); RECENT],
                filled: 0,
                whole: floats::WholeDigits::default(),
            };
            line.state_name(state);
            assert_eq!(out, format!("\"{}\"", state.name()).as_bytes());
        }
    }

    #[test]
    fn lines_match_the_generic_encoder() {
        for record in fixture::records() {
            let mut generic = Vec::new();
            encode_record(&mut Encoder::compact(&mut generic), &record);
            generic.push(b'\n');
            let mut line = Vec::new();
            write_jsonl(&mut line, &record);
            assert_eq!(
                String::from_utf8(line).unwrap(),
                String::from_utf8(generic).unwrap()
            );
        }
    }

    /// Every combination of the SYN option flags and tails the whole literals stand for.
    #[test]
    fn syn_options_match_the_generic_encoder_in_every_combination() {
        let mut record = fixture::records().swap_remove(0);
        for bits in 0..64u32 {
            let offer = SynOptions {
                mss: (bits & 1 != 0).then_some(1460),
                sack_permitted: bits & 2 != 0,
                timestamps: bits & 4 != 0,
                ecn: bits & 8 != 0,
                data_bytes: if bits & 16 != 0 { 12 } else { 0 },
                rewritten: if bits & 32 != 0 { 0b101 } else { 0 },
                tfo: (bits & 3 == 3).then_some(crate::model::Tfo::Cookie),
                ..SynOptions::default()
            };
            record.options =
                crate::model::PerSide::new(Some(offer), (bits & 1 == 0).then_some(offer));
            let mut generic = Vec::new();
            encode_record(&mut Encoder::compact(&mut generic), &record);
            generic.push(b'\n');
            let mut line = Vec::new();
            write_jsonl(&mut line, &record);
            assert_eq!(
                String::from_utf8(line).unwrap(),
                String::from_utf8(generic).unwrap()
            );
        }
    }
}
