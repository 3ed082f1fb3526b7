//! The RTT and throughput parts of a record (analyzers/rtt.rs), for the json and jsonl
//! writers (csv.rs writes the same as cells, in `COLUMNS` order).

use crate::model::{ConnectionRecord, Rtt, Throughput};

use super::json::Encoder;

/// `"rtt": {...}, "throughput": {...}` as the keys of an open object.
pub(crate) fn encode(e: &mut Encoder, r: &ConnectionRecord) {
    e.per_side("rtt", &r.rtt, |e, rtt: &Rtt| {
        e.begin_object();
        e.key("samples");
        e.int(rtt.samples);
        e.key("p50_ms");
        e.opt_float(rtt.p50_ms);
        e.key("p90_ms");
        e.opt_float(rtt.p90_ms);
        e.key("max_ms");
        e.opt_float(rtt.max_ms);
        e.end_object();
    });
    e.per_side("throughput", &r.throughput, |e, t: &Throughput| {
        e.begin_object();
        e.key("duration_ms");
        e.float(t.duration_ms);
        e.key("bits_per_s");
        e.opt_int(t.bits_per_s);
        e.end_object();
    });
}

/// Both parts of a connection without payload, compact.
const NO_DATA_COMPACT: &[u8] = concat!(
    r#","rtt":{"client":{"samples":0,"p50_ms":null,"p90_ms":null,"max_ms":null},"#,
    r#""server":{"samples":0,"p50_ms":null,"p90_ms":null,"max_ms":null}},"#,
    r#""throughput":{"client":{"duration_ms":0.0,"bits_per_s":null},"#,
    r#""server":{"duration_ms":0.0,"bits_per_s":null}}"#,
)
.as_bytes();

/// `,"rtt":{...},"throughput":{...}` for a jsonl line.
pub fn write_jsonl(out: &mut Vec<u8>, r: &ConnectionRecord) {
    if r.rtt == Default::default() && r.throughput == Default::default() {
        out.extend_from_slice(NO_DATA_COMPACT);
        return;
    }
    out.push(b',');
    encode(&mut Encoder::compact(out), r);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PerSide;

    fn compact(r: &ConnectionRecord) -> String {
        let mut out = Vec::new();
        out.push(b',');
        encode(&mut Encoder::compact(&mut out), r);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_no_data_literal_is_what_the_encoder_writes() {
        let mut record = crate::writers::fixture::records().remove(0);
        record.rtt = PerSide::default();
        record.throughput = PerSide::default();
        assert_eq!(
            compact(&record),
            String::from_utf8(NO_DATA_COMPACT.to_vec()).unwrap()
        );
    }

    #[test]
    fn samples_and_rates_are_written_with_their_units() {
        let mut record = crate::writers::fixture::records().remove(0);
        record.rtt.client = Rtt {
            samples: 3,
            p50_ms: Some(1.5),
            p90_ms: Some(2.25),
            max_ms: Some(2.25),
        };
        record.throughput.server = Throughput {
            duration_ms: 10.0,
            bits_per_s: Some(800_000),
        };
        let mut out = Vec::new();
        write_jsonl(&mut out, &record);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                r#","rtt":{"client":{"samples":3,"p50_ms":1.5,"p90_ms":2.25,"max_ms":2.25},"#,
                r#""server":{"samples":0,"p50_ms":null,"p90_ms":null,"max_ms":null}},"#,
                r#""throughput":{"client":{"duration_ms":0.0,"bits_per_s":null},"#,
                r#""server":{"duration_ms":10.0,"bits_per_s":800000}}"#,
            )
        );
    }
}
