//! Replays scripts of `AppTracker` calls from stdin and prints each one's result and internal
//! counters: the Rust side of a differential test against `tcptrace.analyzers.reuse`.
//!
//! `benchmarks/http_reuse_diff.py` writes the scripts and compares. One call a line: `D <client 0|1> <ts_ns> <length> <hex bytes or ->` (data), `G <client>`
//! (gap), `W <client>` (print wants), `E` (end of script: print the result and state).

use std::io::{self, BufRead, Write};

use tcptrace_native::analyzers::http::AppTracker;

fn hex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn main() {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut tracker = AppTracker::default();
    let mut wants = String::new();
    for line in stdin.lock().lines() {
        let line = line.expect("stdin");
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["D", client, ts, length, bytes] => {
                let payload = if *bytes == "-" {
                    None
                } else {
                    Some(hex(bytes).expect("hex"))
                };
                tracker.data(
                    *client == "1",
                    ts.parse().expect("ts"),
                    length.parse().expect("length"),
                    payload.as_deref(),
                );
            }
            ["G", client] => tracker.gap(*client == "1"),
            ["W", client] => wants.push(if tracker.wants(*client == "1") {
                'T'
            } else {
                'F'
            }),
            ["E"] => {
                let r = tracker.result();
                let gaps: Vec<String> = r
                    .idle_gaps_ms
                    .iter()
                    .map(|x| (x.to_bits() as i64).to_string())
                    .collect();
                writeln!(
                    out,
                    "{:?} {} {} [{}] wants={} {}",
                    r.protocol,
                    r.requests,
                    r.responses,
                    gaps.join(","),
                    wants,
                    tracker.describe_state()
                )
                .expect("stdout");
                tracker = AppTracker::default();
                wants.clear();
            }
            _ => panic!("bad line: {line}"),
        }
    }
}
