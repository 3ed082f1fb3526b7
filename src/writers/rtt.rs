//! The RTT and throughput parts of a record (analyzers/rtt.rs), for the json and jsonl
//! writers (csv.rs writes the same as cells, in `COLUMNS` order).

use crate::model::{us_to_ms, ConnectionRecord, Rtt, Throughput};

use super::floats;
use super::json::Encoder;

/// `"rtt": {...}, "throughput": {...}` as the keys of an open object.
pub(crate) fn encode(e: &mut Encoder, r: &ConnectionRecord) {
    e.per_side("rtt", &r.rtt, |e, rtt: &Rtt| {
        e.begin_object();
        e.key("samples");
        e.int(rtt.samples);
        e.key("p50_ms");
        e.opt_float(rtt.p50_us.map(|us| us_to_ms(us.into())));
        e.key("p90_ms");
        e.opt_float(rtt.p90_us.map(|us| us_to_ms(us.into())));
        e.key("max_ms");
        e.opt_float(rtt.max_us.map(|us| us_to_ms(us.into())));
        e.end_object();
    });
    e.per_side("throughput", &r.throughput, |e, t: &Throughput| {
        e.begin_object();
        e.key("duration_ms");
        e.float(us_to_ms(t.duration_us));
        e.key("bits_per_s");
        e.opt_int(t.bits_per_s);
        e.end_object();
    });
}

/// A side without samples, compact.
const NO_SAMPLES: &[u8] = br#"{"samples":0,"p50_ms":null,"p90_ms":null,"max_ms":null}"#;

/// `,"rtt":{...},"throughput":{...}` for a jsonl line, in literal runs as jsonl.rs writes
/// the rest of the line (the generic encoder's per-key checks cost more than the values).
pub fn write_jsonl(out: &mut Vec<u8>, r: &ConnectionRecord) {
    out.extend_from_slice(br#","rtt":{"client":"#);
    side_rtt(out, &r.rtt.client);
    out.extend_from_slice(br#","server":"#);
    side_rtt(out, &r.rtt.server);
    out.extend_from_slice(br#"},"throughput":{"client":"#);
    side_rate(out, &r.throughput.client);
    out.extend_from_slice(br#","server":"#);
    side_rate(out, &r.throughput.server);
    out.push(b'}');
}

fn side_rtt(out: &mut Vec<u8>, rtt: &Rtt) {
    if *rtt == Rtt::default() {
        out.extend_from_slice(NO_SAMPLES);
        return;
    }
    out.extend_from_slice(br#"{"samples":"#);
    small_int(out, rtt.samples);
    if let Some((text, len)) = same_three(rtt) {
        // one sample (most sides of short connections): one text, three fixed-size copies
        for key in [&br#","p50_ms":"#[..], br#","p90_ms":"#, br#","max_ms":"#] {
            out.extend_from_slice(key);
            let start = out.len();
            out.extend_from_slice(&text);
            out.truncate(start + len);
        }
        out.push(b'}');
        return;
    }
    out.extend_from_slice(br#","p50_ms":"#);
    let p50 = out.len();
    opt_ms(out, rtt.p50_us);
    let p50 = p50..out.len();
    out.extend_from_slice(br#","p90_ms":"#);
    let p90 = out.len();
    if rtt.p90_us == rtt.p50_us {
        out.extend_from_within(p50); // few samples: often the same value
    } else {
        opt_ms(out, rtt.p90_us);
    }
    let p90 = p90..out.len();
    out.extend_from_slice(br#","max_ms":"#);
    if rtt.max_us == rtt.p90_us {
        out.extend_from_within(p90);
    } else {
        opt_ms(out, rtt.max_us);
    }
    out.push(b'}');
}

/// The text of p50, p90 and maximum when they are one value (below `millis_text`'s bound).
fn same_three(rtt: &Rtt) -> Option<([u8; 24], usize)> {
    let us = rtt
        .max_us
        .filter(|_| rtt.p50_us == rtt.max_us && rtt.p90_us == rtt.max_us)?;
    floats::millis_text(us.into())
}

/// An integer, one digit without itoa and its copy of unknown length (a `memcpy` call).
#[inline(always)]
fn small_int(out: &mut Vec<u8>, n: u64) {
    if n < 10 {
        out.push(b'0' + n as u8);
    } else {
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }
}

/// A side that sent no data, or one segment of it, compact.
const NO_SPAN: &[u8] = br#"{"duration_ms":0.0,"bits_per_s":null}"#;

fn side_rate(out: &mut Vec<u8>, t: &Throughput) {
    if t.duration_us == 0 && t.bits_per_s.is_none() {
        out.extend_from_slice(NO_SPAN);
        return;
    }
    out.extend_from_slice(br#"{"duration_ms":"#);
    ms(out, t.duration_us);
    out.extend_from_slice(br#","bits_per_s":"#);
    match t.bits_per_s {
        Some(bits) => small_int(out, bits),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

fn opt_ms(out: &mut Vec<u8>, us: Option<u32>) {
    match us {
        Some(us) => ms(out, us.into()),
        None => out.extend_from_slice(b"null"),
    }
}

/// Microseconds as orjson writes their milliseconds (`us_to_ms`): the shortest text of the
/// double nearest to a decimal with three fraction digits is that decimal, trailing zeros
/// trimmed (below 2^53 / 1000 ms, where doubles are finer than 0.001), written from the
/// integers without the float formatter (`floats::write_millis`, below 2^32 ms).
fn ms(out: &mut Vec<u8>, us: u64) {
    if floats::write_millis(out, us) {
        return;
    }
    if us >= 1 << 50 {
        floats::write_orjson(out, us_to_ms(us));
        return;
    }
    let (whole, fraction) = (us / 1000, (us % 1000) as u32);
    small_int(out, whole);
    let digits = [
        b'.',
        b'0' + (fraction / 100) as u8,
        b'0' + (fraction / 10 % 10) as u8,
        b'0' + (fraction % 10) as u8,
    ];
    let keep = if fraction % 100 == 0 {
        2
    } else if fraction % 10 == 0 {
        3
    } else {
        4
    };
    out.extend_from_slice(&digits[..keep]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(r: &ConnectionRecord) -> String {
        let mut out = vec![b','];
        encode(&mut Encoder::compact(&mut out), r);
        String::from_utf8(out).unwrap()
    }

    fn line(r: &ConnectionRecord) -> String {
        let mut out = Vec::new();
        write_jsonl(&mut out, r);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_literal_runs_are_what_the_encoder_writes() {
        let mut record = crate::writers::fixture::records().remove(0);
        assert_eq!(line(&record), encoded(&record));
        for samples in [0, 1, 12345] {
            for p in [
                None,
                Some(0),
                Some(4),
                Some(1500),
                Some(42_150_123),
                Some(u32::MAX),
            ] {
                record.rtt.client = Rtt {
                    samples,
                    p50_us: p,
                    p90_us: p.map(|v| v / 2),
                    max_us: p,
                };
                record.rtt.server = Rtt {
                    samples,
                    p50_us: p,
                    p90_us: p,
                    max_us: p,
                };
                record.throughput.server = Throughput {
                    duration_us: p.map_or(0, |v| u64::from(v) * 1000),
                    bits_per_s: p.map(|v| u64::from(v) * 1000),
                };
                assert_eq!(line(&record), encoded(&record));
            }
        }
    }

    #[test]
    fn milliseconds_are_written_as_orjson_writes_them() {
        let far = [
            u64::from(u32::MAX),
            (1 << 32) * 1000 - 1,
            (1 << 32) * 1000,
            (1 << 32) * 1000 + 1,
            999_999_999_999,
            1 << 40,
            (1 << 50) - 1,
            1 << 50,
            u64::MAX,
        ];
        for us in (0..3000u64)
            .chain((1..40u32).map(|k| 7u64.pow(k / 2) * u64::from(k)))
            .chain(far)
        {
            let (mut fast, mut general) = (Vec::new(), Vec::new());
            ms(&mut fast, us);
            floats::write_orjson(&mut general, us_to_ms(us));
            assert_eq!(fast, general, "{us}");
        }
    }

    #[test]
    fn samples_and_rates_are_written_with_their_units() {
        let mut record = crate::writers::fixture::records().remove(0);
        record.rtt.client = Rtt {
            samples: 3,
            p50_us: Some(1500),
            p90_us: Some(2250),
            max_us: Some(2250),
        };
        record.throughput.server = Throughput {
            duration_us: 10_000,
            bits_per_s: Some(800_000),
        };
        assert_eq!(
            line(&record),
            concat!(
                r#","rtt":{"client":{"samples":3,"p50_ms":1.5,"p90_ms":2.25,"max_ms":2.25},"#,
                r#""server":{"samples":0,"p50_ms":null,"p90_ms":null,"max_ms":null}},"#,
                r#""throughput":{"client":{"duration_ms":0.0,"bits_per_s":null},"#,
                r#""server":{"duration_ms":10.0,"bits_per_s":800000}}"#,
            )
        );
    }
}
