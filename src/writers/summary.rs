//! The capture-wide summary, accumulated record by record (tcptrace/report/summary.py).
//! Percentiles need every value: kept as packed f64/u64 vectors, as Python keeps arrays.

use std::cmp::Reverse;
use std::collections::HashMap;

use crate::model::{round3, us_to_ms, ConnectionRecord, Probe, Role, Sides};

use super::scans::{ProbeEntry, ScanSources};
use super::Value;

/// Python's `Counter` as the summary uses it: counts by key, `most_common` order (count
/// descending, ties in first-insertion order).
#[derive(Clone, Debug, Default)]
struct Counter {
    entries: Vec<(String, u64)>,
    slots: HashMap<String, usize>,
}

impl Counter {
    fn add(&mut self, key: &str) {
        match self.slots.get(key) {
            Some(&slot) => {
                if let Some(entry) = self.entries.get_mut(slot) {
                    entry.1 += 1;
                }
            }
            None => {
                self.slots.insert(key.to_owned(), self.entries.len());
                self.entries.push((key.to_owned(), 1));
            }
        }
    }

    /// `dict(counter.most_common())`.
    fn most_common(&self) -> Value {
        let mut entries: Vec<&(String, u64)> = self.entries.iter().collect();
        entries.sort_by_key(|e| Reverse(e.1)); // stable, as Python's sorted(reverse=True)
        Value::Map(
            entries
                .into_iter()
                .map(|(k, n)| (k.clone(), int(*n)))
                .collect(),
        )
    }
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Python's `max()`: the first of equal maxima (it replaces only on `>`).
fn python_max(values: &[f64]) -> Option<f64> {
    let (&first, rest) = values.split_first()?;
    Some(
        rest.iter()
            .fold(first, |best, &v| if v > best { v } else { best }),
    )
}

/// `spread(values)`: count, nearest-rank p50/p90/p99 and max, all floats.
fn spread(values: &[f64]) -> Vec<(String, Value)> {
    let mut ordered = values.to_vec();
    // Python's sorted(): stable, comparing with `<` (so -0.0 and 0.0 keep their order)
    ordered.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let percentile = |p: f64| -> Value {
        if ordered.is_empty() {
            return Value::Null;
        }
        let rank = (p / 100.0 * ordered.len() as f64).ceil().max(1.0) as usize;
        ordered
            .get(rank - 1)
            .or(ordered.last())
            .map_or(Value::Null, |v| Value::Float(*v))
    };
    vec![
        ("count".into(), int(values.len() as u64)),
        ("p50".into(), percentile(50.0)),
        ("p90".into(), percentile(90.0)),
        ("p99".into(), percentile(99.0)),
        (
            "max".into(),
            python_max(values).map_or(Value::Null, Value::Float),
        ),
    ]
}

/// What the summary takes of one record.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    pub outcome: &'a str,
    pub rtt_ms: Option<f64>,
    pub setup_ms: Option<f64>,
    /// The connection's median RTT sample on each side's data (`rtt.<side>.p50_ms`).
    pub rtt_p50_ms: [Option<f64>; 2],
    pub syn_retransmits: u64,
    /// A completed handshake whose latencies are ambiguous (not a simultaneous open).
    pub ambiguous: bool,
    pub time_wait: Option<Sides>,
    pub client_ip: &'a str,
    pub server_ip: &'a str,
    pub server_port: u16,
    /// The RST's kind and sender.
    pub rst: Option<(&'a str, &'a str)>,
    pub half_close: bool,
    /// Keep-alive probes from either side.
    pub keepalive: bool,
    pub protocol: Option<&'a str>,
    pub requests: u64,
    /// The connection reused an earlier one's 4-tuple (it has a previous_id).
    pub reused: bool,
    /// The probe the connection was (analyzers/probe.rs), and the client's port.
    pub probe: Option<(Probe, u16)>,
}

impl<'a> Entry<'a> {
    pub fn of(r: &'a ConnectionRecord) -> Entry<'a> {
        let hs = &r.handshake;
        let probes = &r.keepalive.probes;
        Entry {
            outcome: r.outcome.name(),
            rtt_ms: hs.rtt_ms,
            setup_ms: hs.setup_ms,
            rtt_p50_ms: [&r.rtt.client, &r.rtt.server]
                .map(|side| side.p50_us.map(|us| us_to_ms(us.into()))),
            syn_retransmits: hs.syn_retransmits,
            ambiguous: hs.ambiguity.is_some() && !hs.simultaneous_open,
            time_wait: r.close.time_wait,
            client_ip: &r.client.ip,
            server_ip: &r.server.ip,
            server_port: r.server.port,
            rst: r
                .rst
                .as_ref()
                .map(|rst| (rst.kind.name(), rst.sender.name())),
            half_close: r.half_close.is_some(),
            keepalive: probes.client != 0 || probes.server != 0,
            protocol: r.reuse.protocol,
            requests: r.reuse.requests,
            reused: r.previous_id.is_some(),
            probe: r.probe.map(|p| (p, r.client.port)),
        }
    }

    /// Who probed what: the prober's address, the target's address and port.
    fn probe_entry(&self) -> Option<ProbeEntry<'a>> {
        let (probe, client_port) = self.probe?;
        let (prober_ip, target_ip, target_port) = match probe.sender {
            Role::Client => (self.client_ip, self.server_ip, self.server_port),
            Role::Server => (self.server_ip, self.client_ip, client_port),
        };
        Some(ProbeEntry {
            probe,
            prober_ip,
            target_ip,
            target_port,
        })
    }
}

/// The summary of a run, fed every record (`add`), read at the end (`as_dict`).
#[derive(Clone, Debug, Default)]
pub struct Summary {
    connections: u64,
    outcomes: Counter,
    rtt_ms: Vec<f64>,
    setup_ms: Vec<f64>,
    /// Each side's per-connection median RTT sample.
    rtt_p50_ms: [Vec<f64>; 2],
    syn_retransmits: u64,
    ambiguous_handshakes: u64,
    time_wait_sides: Counter,
    time_wait_endpoints: Counter,
    rst_kinds: Counter,
    rst_senders: Counter,
    half_closes: u64,
    keepalive_connections: u64,
    protocols: Counter,
    requests: Vec<u64>,
    port_reuse: u64,
    scans: ScanSources,
    /// Reused for the TIME_WAIT endpoint key (no allocation per record once seen).
    key: String,
}

impl Summary {
    pub fn new() -> Self {
        Self::default()
    }

    /// Connections added so far.
    pub fn connections(&self) -> u64 {
        self.connections
    }

    pub fn add(&mut self, r: &ConnectionRecord) {
        self.add_entry(&Entry::of(r));
    }

    /// A record's part of the summary (what `add` takes of it; a distributed run ships
    /// entries from its workers).
    pub fn add_entry(&mut self, e: &Entry) {
        self.connections += 1;
        self.outcomes.add(e.outcome);
        if let Some(rtt) = e.rtt_ms {
            self.rtt_ms.push(rtt);
        }
        if let Some(setup) = e.setup_ms {
            self.setup_ms.push(setup);
        }
        for (values, p50) in self.rtt_p50_ms.iter_mut().zip(e.rtt_p50_ms) {
            values.extend(p50);
        }
        self.syn_retransmits = self.syn_retransmits.saturating_add(e.syn_retransmits);
        self.ambiguous_handshakes += u64::from(e.ambiguous);
        if let Some(tw) = e.time_wait {
            self.time_wait_sides.add(tw.name());
            if matches!(tw, Sides::Client | Sides::Both) {
                self.key.clear();
                push_host(&mut self.key, e.client_ip);
                self.key.push_str(":*");
                self.time_wait_endpoints.add(&self.key);
            }
            if matches!(tw, Sides::Server | Sides::Both) {
                self.key.clear();
                push_host(&mut self.key, e.server_ip);
                self.key.push(':');
                self.key.push_str(itoa::Buffer::new().format(e.server_port));
                self.time_wait_endpoints.add(&self.key);
            }
        }
        if let Some((kind, sender)) = e.rst {
            self.rst_kinds.add(kind);
            self.rst_senders.add(sender);
        }
        self.half_closes += u64::from(e.half_close);
        self.keepalive_connections += u64::from(e.keepalive);
        // `protocol or "other"`: an empty name counts as none, as in Python
        let protocol = e.protocol.filter(|p| !p.is_empty());
        self.protocols.add(protocol.unwrap_or("other"));
        if e.requests != 0 {
            self.requests.push(e.requests);
        }
        self.port_reuse += u64::from(e.reused);
        if let Some(probe) = e.probe_entry() {
            self.scans.add(&probe);
        }
    }

    /// The warning when the scan sources' memory cap was reached.
    pub fn warning(&self) -> Option<String> {
        self.scans.warning()
    }

    /// Python's `Summary.as_dict()`: same keys, order, and ints where Python has ints,
    /// floats where it has floats (requests go through `array("d")`: their percentiles,
    /// max and mean are floats).
    pub fn as_dict(&self) -> Value {
        let requests: Vec<f64> = self.requests.iter().map(|&n| n as f64).collect();
        let mut per_connection = spread(&requests);
        let mean = if requests.is_empty() {
            Value::Null
        } else {
            // sum() of floats, left to right (exact: the values are integers)
            let sum = requests.iter().fold(0.0, |acc, v| acc + v);
            Value::Float(round3(sum / requests.len() as f64))
        };
        per_connection.push(("mean".into(), mean));
        let reused = self.requests.iter().filter(|&&n| n > 1).count();
        per_connection.push(("reused".into(), int(reused as u64)));
        map(vec![
            ("connections", int(self.connections)),
            ("outcomes", self.outcomes.most_common()),
            (
                "handshake",
                map(vec![
                    ("rtt_ms", Value::Map(spread(&self.rtt_ms))),
                    ("setup_ms", Value::Map(spread(&self.setup_ms))),
                    ("syn_retransmits", int(self.syn_retransmits)),
                    ("ambiguous", int(self.ambiguous_handshakes)),
                ]),
            ),
            (
                "rtt_p50_ms",
                map(vec![
                    ("client", Value::Map(spread(&self.rtt_p50_ms[0]))),
                    ("server", Value::Map(spread(&self.rtt_p50_ms[1]))),
                ]),
            ),
            (
                "time_wait",
                map(vec![
                    ("by_side", self.time_wait_sides.most_common()),
                    ("by_endpoint", self.time_wait_endpoints.most_common()),
                ]),
            ),
            (
                "rst",
                map(vec![
                    ("by_kind", self.rst_kinds.most_common()),
                    ("by_sender", self.rst_senders.most_common()),
                ]),
            ),
            ("half_closes", int(self.half_closes)),
            ("keepalive_connections", int(self.keepalive_connections)),
            ("port_reuse", int(self.port_reuse)),
            (
                "reuse",
                map(vec![
                    ("protocols", self.protocols.most_common()),
                    ("requests_per_connection", Value::Map(per_connection)),
                ]),
            ),
            ("scans", self.scans.as_value()),
        ])
    }

    /// True when no record was added.
    pub fn is_empty(&self) -> bool {
        self.connections == 0
    }
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

/// `_host(ip)`: IPv6 addresses in brackets.
fn push_host(out: &mut String, ip: &str) {
    if ip.contains(':') {
        out.push('[');
        out.push_str(ip);
        out.push(']');
    } else {
        out.push_str(ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writers::{fixture, floats};

    /// `json.dumps(value)` (default separators, ensure_ascii), for comparing with Python.
    fn dumps(value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Value::Float(x) => floats::write_json_dumps(out, *x),
            Value::Str(s) => dumps_str(s, out),
            Value::List(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    dumps(item, out);
                }
                out.push(b']');
            }
            Value::Map(entries) => {
                out.push(b'{');
                for (i, (key, item)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    dumps_str(key, out);
                    out.extend_from_slice(b": ");
                    dumps(item, out);
                }
                out.push(b'}');
            }
        }
    }

    fn dumps_str(s: &str, out: &mut Vec<u8>) {
        assert!(s
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\'));
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }

    fn dumped(summary: &Summary) -> String {
        let mut out = Vec::new();
        dumps(&summary.as_dict(), &mut out);
        out.push(b'\n');
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn matches_python() {
        let mut summary = Summary::new();
        for record in fixture::records() {
            summary.add(&record);
        }
        assert_eq!(
            dumped(&summary),
            include_str!("testdata/expected_summary.json")
        );
        assert_eq!(summary.connections(), 54);
    }

    #[test]
    fn each_sides_median_rtts_spread_over_the_connections() {
        let mut summary = Summary::new();
        for (i, mut record) in fixture::records().into_iter().take(4).enumerate() {
            record.rtt.client.p50_us = Some(1000 * (i as u32 + 1)); // 1, 2, 3, 4 ms
            record.rtt.server.p50_us = (i == 0).then_some(250);
            summary.add(&record);
        }
        let text = dumped(&summary);
        assert!(text.contains(concat!(
            r#""rtt_p50_ms": {"client": {"count": 4, "p50": 2.0, "p90": 4.0, "p99": 4.0, "#,
            r#""max": 4.0}, "server": {"count": 1, "p50": 0.25, "p90": 0.25, "p99": 0.25, "#,
            r#""max": 0.25}}"#
        )));
    }

    #[test]
    fn empty() {
        let summary = Summary::new();
        assert!(summary.is_empty());
        assert_eq!(
            dumped(&summary),
            include_str!("testdata/expected_summary_empty.json")
        );
    }

    #[test]
    fn nearest_rank_percentiles_and_first_maximum() {
        let values = [3.0, -0.0, 0.0, 1.0];
        let spread = spread(&values);
        assert_eq!(spread[0].1, Value::Int(4));
        assert_eq!(spread[1].1, Value::Float(0.0)); // p50: rank 2 of [-0.0, 0.0, 1.0, 3.0]
        assert_eq!(spread[2].1, Value::Float(3.0)); // p90: rank 4
        let max = python_max(&[-0.0, 0.0]).unwrap();
        assert!(max.is_sign_negative()); // max([-0.0, 0.0]) is -0.0 in Python
        assert_eq!(python_max(&[]), None);
    }
}
