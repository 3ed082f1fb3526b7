//! The HTML report's data, made as the records come (`tcptrace report`; the page itself is
//! assembled in Python, tcptrace/report/html.py): each record becomes one table row of JSON
//! text, its strings interned in one table, written straight to the run's output (a
//! temporary file the page copies); the charts' inputs are running aggregates (handshake
//! times, TIME_WAIT enter/leave times per holder, the time span; the TIME_WAIT sweep at
//! the end); `picks` chooses the connections whose traces the page embeds: a trace is kept
//! while a pick heap holds its connection, and only the embedded ones become the page's
//! rows text (`write_trace_rows`). One pass over the captures, memory bounded as for
//! `analyze` plus a few doubles per connection and the candidates' traces.
//!
//! Every text here is what Python's `json.dumps(..., separators=(",", ":"))` made of the
//! same values when the page was built in Python (the golden views hold the pages to it).

pub mod health;
pub mod picks;

use std::collections::HashMap;

use crate::analyzers::trace::SegmentTrace;
use crate::model::{ConnectionRecord, Role, Rtt, Sides, Throughput};
use crate::writers::floats::{write_json_dumps, write_orjson};

/// An embedded trace: the connection, why it was picked, its trace.
pub struct PickedTrace<'a> {
    pub id: u64,
    pub why: Vec<&'static str>,
    pub trace: &'a SegmentTrace,
}

/// When each TIME_WAIT holder entered and left it, grouped as the summary groups holders:
/// a server by host:port, clients by host:* (their ephemeral ports are what runs out); key
/// "all" is the total.
#[derive(Default)]
pub struct TimeWaitEvents {
    /// (key, enter times, leave times), in order of first appearance.
    pub series: Vec<(String, Vec<f64>, Vec<f64>)>,
    index: HashMap<String, usize>,
    key: String,
}

impl TimeWaitEvents {
    fn add(&mut self, r: &ConnectionRecord) {
        let c = &r.close;
        let (Some(side), Some(enter), Some(leave)) =
            (c.time_wait, c.time_wait_ts, c.time_wait_until)
        else {
            return;
        };
        self.key.clear();
        self.key.push_str("all");
        self.push(enter, leave);
        if side != Sides::Server {
            self.key.clear();
            push_host(&mut self.key, &r.client.ip);
            self.key.push_str(":*");
            self.push(enter, leave);
        }
        if side != Sides::Client {
            self.key.clear();
            push_host(&mut self.key, &r.server.ip);
            self.key.push(':');
            self.key.push_str(itoa::Buffer::new().format(r.server.port));
            self.push(enter, leave);
        }
    }

    fn push(&mut self, enter: f64, leave: f64) {
        let at = match self.index.get(self.key.as_str()) {
            Some(&at) => at,
            None => {
                self.index.insert(self.key.clone(), self.series.len());
                self.series.push((self.key.clone(), Vec::new(), Vec::new()));
                self.series.len() - 1
            }
        };
        if let Some((_, enters, leaves)) = self.series.get_mut(at) {
            enters.push(enter);
            leaves.push(leave);
        }
    }
}

/// The TIME_WAIT timeline's points per series, about (tcptrace/report/html.py draws them).
pub const TIME_WAIT_POINTS: usize = 1200;

/// One holder's TIME_WAIT series: its most at once, and the steps `(t, level)` (t in
/// seconds since `t0`, not yet rounded: Python rounds the few it draws).
pub struct Swept<'a> {
    pub key: &'a str,
    pub peak: i64,
    pub steps: Vec<(f64, i64)>,
}

impl TimeWaitEvents {
    /// Every holder's series (html.py keeps the total and those with the highest peaks).
    pub fn swept(&self, t0: f64) -> Vec<Swept<'_>> {
        self.series
            .iter()
            .map(|(key, enter, leave)| {
                let (steps, peak) = sweep(enter, leave, t0);
                Swept { key, peak, steps }
            })
            .collect()
    }
}

/// The level after each event, from the enter and leave times (sorted here; a leave first
/// when both fall on the same instant), reduced by `envelope`; and the peak.
fn sweep(enter: &[f64], leave: &[f64], t0: f64) -> (Vec<(f64, i64)>, i64) {
    let sorted = |values: &[f64]| {
        let mut v = values.to_vec();
        v.sort_unstable_by(f64::total_cmp);
        v
    };
    let (enter, leave) = (sorted(enter), sorted(leave));
    let mut steps = Vec::with_capacity(1 + enter.len() + leave.len());
    steps.push((0.0, 0));
    let (mut level, mut peak) = (0i64, 0i64);
    let (mut i, mut j) = (0, 0);
    loop {
        let next_leave = leave.get(j).copied();
        let next_enter = enter.get(i).copied();
        match (next_enter, next_leave) {
            (None, None) => break,
            (e, Some(l)) if e.is_none_or(|e| l <= e) => {
                j += 1;
                level -= 1;
                steps.push((l - t0, level));
            }
            (Some(e), _) => {
                i += 1;
                level += 1;
                peak = peak.max(level);
                steps.push((e - t0, level));
            }
            (None, Some(_)) => break, // (the guard above takes it)
        }
    }
    (envelope(steps), peak)
}

/// Steps as they are; beyond 2 * TIME_WAIT_POINTS of them, per slice of the time axis the
/// level it started with and the most at once within it (the peaks stay: a 60 s TIME_WAIT
/// in a capture of years stays visible).
fn envelope(steps: Vec<(f64, i64)>) -> Vec<(f64, i64)> {
    if steps.len() <= 2 * TIME_WAIT_POINTS {
        return steps;
    }
    let last = steps.last().map_or(0.0, |s| s.0);
    let span = if 1e-9 > last { 1e-9 } else { last };
    let width = span / TIME_WAIT_POINTS as f64;
    let mut out: Vec<(f64, i64)> = Vec::new();
    let (mut level, mut i) = (0i64, 0usize);
    for b in 0..=TIME_WAIT_POINTS {
        let (start, end) = (b as f64 * width, (b + 1) as f64 * width);
        let mut most = level;
        while let Some(&(t, n)) = steps.get(i) {
            if t >= end {
                break;
            }
            level = n;
            most = most.max(n);
            i += 1;
        }
        if out.last().is_none_or(|o| o.1 != most) {
            out.push((start, most));
        }
        if most != level {
            out.push((if span < end { span } else { end }, level));
        }
    }
    out
}

fn push_host(key: &mut String, ip: &str) {
    if ip.contains(':') {
        key.push('[');
        key.push_str(ip);
        key.push(']');
    } else {
        key.push_str(ip);
    }
}

/// The page's data, fed every record (`add`), read at the end.
pub struct PageData {
    /// The interned strings, by index (addresses, outcomes, states, kinds).
    pub strings: Vec<String>,
    index: HashMap<String, u32>,
    /// Rows written.
    pub rows: u64,
    /// The earliest first packet (infinity before any record).
    pub t0: f64,
    /// The latest last packet or TIME_WAIT end (-infinity before any record).
    pub t_end: f64,
    /// Handshake round trips, in record order (the histogram's values).
    pub rtt_ms: Vec<f64>,
    pub time_wait: TimeWaitEvents,
    /// Retransmissions and zero-window stalls over time (from the traces).
    pub health: health::HealthTimeline,
    picker: picks::TracePicker,
    /// The traces of the connections a pick heap holds (as traced: only the few embedded
    /// become text, `write_trace_rows`).
    traces: HashMap<u64, Box<SegmentTrace>>,
}

impl PageData {
    /// `limit`: segments traced per connection; `budget`: segments embedded in all.
    pub fn new(limit: u64, budget: u64) -> PageData {
        PageData {
            strings: Vec::new(),
            index: HashMap::new(),
            rows: 0,
            t0: f64::INFINITY,
            t_end: f64::NEG_INFINITY,
            rtt_ms: Vec::new(),
            time_wait: TimeWaitEvents::default(),
            health: health::HealthTimeline::default(),
            picker: picks::TracePicker::new(limit, budget, picks::PER_KIND),
            traces: HashMap::new(),
        }
    }

    /// One record (with its trace, if traced): its row appended to `out` (a comma before
    /// every row but the first), the aggregates and the picks updated.
    pub fn add(
        &mut self,
        r: &ConnectionRecord,
        trace: Option<Box<SegmentTrace>>,
        out: &mut Vec<u8>,
    ) {
        if self.rows > 0 {
            out.push(b',');
        }
        self.write_row(r, out);
        self.rows += 1;
        if let Some(rtt) = r.handshake.rtt_ms {
            self.rtt_ms.push(rtt);
        }
        // as Python's min() and max(): the first argument unless another is smaller (larger)
        if r.first_ts < self.t0 {
            self.t0 = r.first_ts;
        }
        for end in [r.last_ts, r.close.time_wait_until.unwrap_or(0.0)] {
            if end > self.t_end {
                self.t_end = end;
            }
        }
        self.time_wait.add(r);
        self.health.add(r, trace.as_deref());
        let offer = self.picker.offer(r);
        for id in offer.evicted {
            self.traces.remove(&id);
        }
        if let (true, Some(trace)) = (offer.kept, trace) {
            self.traces.insert(r.id, trace);
        }
    }

    /// The traces to embed, in the order of the picks' turns.
    pub fn picked(&self) -> Vec<PickedTrace<'_>> {
        self.picker
            .picked()
            .into_iter()
            .filter_map(|(id, why)| {
                let trace = self.traces.get(&id)?;
                Some(PickedTrace { id, why, trace })
            })
            .collect()
    }

    fn intern(&mut self, text: &str) -> u32 {
        if let Some(&at) = self.index.get(text) {
            return at;
        }
        let at = self.strings.len() as u32;
        self.strings.push(text.to_owned());
        self.index.insert(text.to_owned(), at);
        at
    }

    /// The row of tcptrace/report/html.py `ROW_FIELDS`; strings interned in the order
    /// Python's list display evaluated them.
    fn write_row(&mut self, r: &ConnectionRecord, out: &mut Vec<u8>) {
        let mut s = |text: Option<&str>| text.map(|t| self.intern(t));
        let client_ip = s(Some(&r.client.ip));
        let server_ip = s(Some(&r.server.ip));
        let outcome = s(Some(r.outcome.name()));
        let time_wait = s(r.close.time_wait.map(Sides::name));
        let rst_kind = s(r.rst.as_ref().map(|x| x.kind.name()));
        let rst_sender = s(r.rst.as_ref().map(|x| x.sender.name()));
        let protocol = s(r.reuse.protocol);
        let final_c = s(Some(r.final_state.client.name()));
        let final_s = s(Some(r.final_state.server.name()));
        let half = s(r.half_close.as_ref().map(|h| h.side.name()));
        let label = crate::health_label::health_label(r);
        let health = s((!label.is_empty()).then_some(label.as_str()));
        // one interned text, "kind answer sender" (few distinct): a row without a probe
        // pays one null
        let probe_words = r
            .probe
            .map(|p| format!("{} {} {}", p.kind.name(), p.answer.name(), p.sender.name()));
        let probe = s(probe_words.as_deref());
        let zero_window = &r.zero_window;
        let probes = r.keepalive.probes.client + r.keepalive.probes.server;
        let mut w = Row::new(out);
        w.int(r.id);
        w.opt_int(client_ip);
        w.int(r.client.port);
        w.opt_int(server_ip);
        w.int(r.server.port);
        w.float(Some(r.first_ts));
        w.float(Some(r.duration_ms));
        w.opt_int(outcome);
        w.float(r.handshake.rtt_ms);
        w.float(r.handshake.setup_ms);
        w.opt_int(time_wait);
        w.opt_int(rst_kind);
        w.opt_int(rst_sender);
        w.int(probes);
        w.int(r.reuse.requests);
        w.opt_int(protocol);
        for pair in [&r.packets, &r.unique_bytes, &r.retransmitted_bytes] {
            w.int(pair.client);
            w.int(pair.server);
        }
        w.opt_int(final_c);
        w.opt_int(final_s);
        w.opt_int(half);
        w.opt_int(health);
        w.float(Some(
            zero_window.client.stall_ms + zero_window.server.stall_ms,
        ));
        for rtt in [&r.rtt.client, &r.rtt.server] {
            w.rtt(rtt);
        }
        for throughput in [&r.throughput.client, &r.throughput.server] {
            w.throughput(throughput);
        }
        w.opt_int(probe);
        w.end();
    }
}

/// A JSON array written value by value, compact.
struct Row<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Row<'a> {
    fn new(out: &'a mut Vec<u8>) -> Row<'a> {
        out.push(b'[');
        Row { out, first: true }
    }
    fn next(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
    }
    fn int<I: itoa::Integer>(&mut self, value: I) {
        self.next();
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }
    fn opt_int<I: itoa::Integer>(&mut self, value: Option<I>) {
        match value {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }
    fn null(&mut self) {
        self.next();
        self.out.extend_from_slice(b"null");
    }
    fn float(&mut self, value: Option<f64>) {
        match value {
            Some(v) => {
                self.next();
                // orjson's text is json.dumps's where neither uses an exponent, and is
                // written without ryu for the usual timestamps and milliseconds
                if v == 0.0 || (1e-4..1e15).contains(&v.abs()) {
                    write_orjson(self.out, v);
                } else {
                    write_json_dumps(self.out, v);
                }
            }
            None => self.null(),
        }
    }
    /// A side's RTT as `[samples, p50_us, p90_us, max_us]` (whole microseconds, as the
    /// record holds them: exact and short), null without samples.
    fn rtt(&mut self, rtt: &Rtt) {
        let (Some(p50), Some(p90), Some(max)) = (rtt.p50_us, rtt.p90_us, rtt.max_us) else {
            return self.null();
        };
        self.next();
        let mut inner = Row::new(self.out);
        inner.int(rtt.samples);
        inner.int(p50);
        inner.int(p90);
        inner.int(max);
        inner.end();
    }
    /// A side's throughput as `[bits_per_s, duration_us]`, null when it has no rate (at
    /// most one data segment).
    fn throughput(&mut self, throughput: &Throughput) {
        let Some(bits) = throughput.bits_per_s else {
            return self.null();
        };
        self.next();
        let mut inner = Row::new(self.out);
        inner.int(bits);
        inner.int(throughput.duration_us);
        inner.end();
    }
    /// An ASCII text (state and mark names), quoted.
    fn names<'n>(&mut self, names: impl Iterator<Item = &'n str>, sep: u8) {
        self.next();
        self.out.push(b'"');
        for (i, name) in names.enumerate() {
            if i > 0 {
                self.out.push(sep);
            }
            self.out.extend_from_slice(name.as_bytes());
        }
        self.out.push(b'"');
    }
    fn end(self) {
        self.out.push(b']');
    }
}

/// The page's form of a trace: one row of ten values per segment, time in ms since the
/// connection's first segment (from the exact nanoseconds: never -0.000), as
/// `json.dumps` wrote the rows Python made of the trace dicts; the last value is the marks
/// drawn (`health::mark_words`: the verdicts in words, `rst`), joined by commas.
pub fn write_trace_rows(out: &mut Vec<u8>, trace: &SegmentTrace) {
    out.push(b'[');
    for (i, (s, entered)) in trace.with_entered().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let mut w = Row::new(out);
        w.float(Some(ms_since(s.ts_ns, trace.first_ns)));
        w.int(u8::from(s.role != Role::Client));
        w.int(s.flags);
        w.int(s.seq);
        w.opt_int(s.ack);
        w.int(s.length);
        w.int(s.window);
        for side in entered {
            w.names(side.iter().map(|state| state.name()), b'>');
        }
        w.names(health::mark_words(s.verdict, s.mark), b',');
        w.end();
    }
    out.push(b']');
}

/// Python's `round((ts_ns - base) / 1e6, 6)`.
fn ms_since(ts_ns: i64, base: i64) -> f64 {
    let ms = (i128::from(ts_ns) - i128::from(base)) as f64 / 1e6;
    // Below 2^32 ms the ulp is under 1e-6: the six-decimal value nearest to `ms` is the
    // exact quotient, whose nearest double `ms` already is; round() changes nothing.
    if ms.abs() < 4_294_967_296.0 || !ms.is_finite() {
        return ms;
    }
    format!("{ms:.6}").parse().unwrap_or(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::health::verdict::{RETRANSMISSION, RTO, SPURIOUS};
    use crate::analyzers::trace::{Mark, TracedSegment};
    use crate::states::TcpState;

    #[test]
    fn rows_are_json_dumps_text_with_interned_strings() {
        let records = crate::writers::fixture::records();
        let mut page = PageData::new(10, 100);
        let mut out = Vec::new();
        page.add(&records[0], None, &mut out);
        page.add(&records[0], None, &mut out);
        // (Python: json.dumps of the fixture's floats; CLOSED is interned once)
        let row = "[3,0,42150,1,8080,1795317888.747063,0.322,2,0.042,0.042,3,null,null,0,1,\
                   null,6,4,5,5,0,0,4,2,null,null,0.0,null,null,null,null,null]";
        assert_eq!(String::from_utf8(out).unwrap(), format!("{row},{row}"));
        assert_eq!(
            page.strings,
            ["10.77.0.1", "10.77.0.2", "CLOSED", "client", "TIME_WAIT"]
        );
        assert_eq!((page.rows, page.rtt_ms.len()), (2, 2));
        let keys: Vec<&str> = page.time_wait.series.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(keys, ["all", "10.77.0.1:*"]);
    }

    #[test]
    fn rows_carry_rtt_throughput_and_probe() {
        use crate::model::{Probe, ProbeAnswer, ProbeKind};
        let mut record = crate::writers::fixture::records().remove(0);
        record.rtt.server = Rtt {
            samples: 7,
            p50_us: Some(1500),
            p90_us: Some(2250),
            max_us: Some(40_000),
        };
        record.throughput.client = Throughput {
            duration_us: 10_000,
            bits_per_s: Some(800_000),
        };
        record.probe = Some(Probe {
            kind: ProbeKind::Xmas,
            answer: ProbeAnswer::Rst,
            sender: Role::Client,
        });
        let mut page = PageData::new(10, 100);
        let mut out = Vec::new();
        page.add(&record, None, &mut out);
        let row = String::from_utf8(out).unwrap();
        assert!(
            row.ends_with(",0.0,null,[7,1500,2250,40000],[800000,10000],null,5]"),
            "{row}"
        );
        assert_eq!(&page.strings[5..], ["xmas rst client"]);
    }

    #[test]
    fn trace_rows_are_the_pages_form() {
        let segment = |ts_ns, role, mark, verdict, entered: [Vec<TcpState>; 2]| {
            let segment = TracedSegment {
                ts_ns,
                role,
                flags: 0x12,
                seq: 0,
                ack: None,
                length: 0,
                window: 65535,
                states: [TcpState::SynSent, TcpState::SynRcvd],
                entered: [0, 0],
                mark,
                verdict,
            };
            (segment, entered)
        };
        let trace = SegmentTrace::of(
            1_000,
            vec![
                segment(
                    1_000,
                    Role::Client,
                    None,
                    0,
                    [vec![TcpState::SynSent], vec![]],
                ),
                segment(
                    1_500_500,
                    Role::Server,
                    Some(Mark::Retransmission),
                    RETRANSMISSION | RTO | SPURIOUS,
                    [vec![], vec![TcpState::SynRcvd, TcpState::Established]],
                ),
            ],
        );
        let mut out = Vec::new();
        write_trace_rows(&mut out, &trace);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[[0.0,0,18,0,null,0,65535,\"SYN_SENT\",\"\",\"\"],\
             [1.4995,1,18,0,null,0,65535,\"\",\"SYN_RCVD>ESTABLISHED\",\
             \"retransmission:rto,spurious\"]]"
        );
    }

    #[test]
    fn the_time_wait_envelope_keeps_the_peak() {
        // one TIME_WAIT a second, each 0.5 s; one burst of 7 at once
        let mut enter: Vec<f64> = (0..10_000).map(f64::from).collect();
        let mut leave: Vec<f64> = (0..10_000).map(|i| f64::from(i) + 0.5).collect();
        enter.extend([5000.6; 7]);
        leave.extend([5000.7; 7]);
        let (steps, peak) = sweep(&enter, &leave, 0.0);
        assert!(steps.len() <= 2 * TIME_WAIT_POINTS + 2);
        assert_eq!((peak, steps.iter().map(|s| s.1).max()), (7, Some(7)));
        // a few steps stay as they are; a leave before an enter at the same instant
        let (steps, peak) = sweep(&[1.0, 2.0], &[2.0, 3.0], 0.5);
        assert_eq!(peak, 1);
        assert_eq!(steps, [(0.0, 0), (0.5, 1), (1.5, 0), (1.5, 1), (2.5, 0)]);
    }

    #[test]
    fn floats_are_json_dumps_text() {
        let mut out = Vec::new();
        let mut w = Row::new(&mut out);
        for v in [
            0.0,
            -0.0,
            1e-5,
            0.0001,
            0.1,
            1.5,
            100.0,
            1795317888.747063,
            1e15,
            1e16,
        ] {
            w.float(Some(v));
        }
        w.float(Some(f64::NAN));
        w.end();
        let text = String::from_utf8(out).unwrap();
        // (Python: json.dumps of the same list)
        let want = "[0.0,-0.0,1e-05,0.0001,0.1,1.5,100.0,1795317888.747063,1000000000000000.0,\
                    1e+16,NaN]";
        assert_eq!(text, want);
    }

    #[test]
    fn times_round_to_six_decimals_as_python_does() {
        assert_eq!(ms_since(5, 5).to_bits(), 0.0f64.to_bits()); // never -0.0
        assert_eq!(ms_since(0, 1), -1e-6);
        // 2^33 ms and a bit: round(x, 6) == x still (the decimal is exact), via the slow path
        let far = 8_589_934_592_000_001i64;
        assert_eq!(ms_since(far, 0), 8_589_934_592.000001);
    }
}
