//! The health parts of a record (analyzers/health.rs): each side's retransmissions by cause
//! and the zero windows it advertised, for the json and jsonl writers (csv.rs writes the
//! same as cells, in `COLUMNS` order).

use crate::model::{ConnectionRecord, PerSide, Retransmissions, Tally, ZeroWindow};

use super::json::Encoder;

/// The tallies of `Retransmissions`, in the record's key order.
pub fn tallies(r: &Retransmissions) -> [(&'static str, Tally); 8] {
    [
        ("rto", r.rto),
        ("fast", r.fast),
        ("tlp", r.tlp),
        ("spurious", r.spurious),
        ("keepalive", r.keepalive),
        ("window_probe", r.window_probe),
        ("lost_before_capture", r.lost_before_capture),
        ("lost_after_capture", r.lost_after_capture),
    ]
}

/// Both parts of a clean connection, compact: nearly every record, written as one copy.
const CLEAN_COMPACT: &[u8] = concat!(
    "\"retransmissions\":{\"client\":",
    r#"{"rto":{"segments":0,"bytes":0},"fast":{"segments":0,"bytes":0},"tlp":{"segments":0,"bytes":0},"spurious":{"segments":0,"bytes":0},"keepalive":{"segments":0,"bytes":0},"window_probe":{"segments":0,"bytes":0},"lost_before_capture":{"segments":0,"bytes":0},"lost_after_capture":{"segments":0,"bytes":0}}"#,
    ",\"server\":",
    r#"{"rto":{"segments":0,"bytes":0},"fast":{"segments":0,"bytes":0},"tlp":{"segments":0,"bytes":0},"spurious":{"segments":0,"bytes":0},"keepalive":{"segments":0,"bytes":0},"window_probe":{"segments":0,"bytes":0},"lost_before_capture":{"segments":0,"bytes":0},"lost_after_capture":{"segments":0,"bytes":0}}"#,
    "},\"zero_window\":{\"client\":",
    r#"{"periods":0,"stall_ms":0.0,"longest_ms":0.0,"probes":0}"#,
    ",\"server\":",
    r#"{"periods":0,"stall_ms":0.0,"longest_ms":0.0,"probes":0}"#,
    "}"
)
.as_bytes();

/// Whether a record's health parts are all zero.
pub fn clean(r: &ConnectionRecord) -> bool {
    r.retransmissions == PerSide::default() && r.zero_window == PerSide::default()
}

/// `"retransmissions": {...}, "zero_window": {...}` as the keys of an open object.
pub(crate) fn encode(e: &mut Encoder, r: &ConnectionRecord) {
    e.per_side("retransmissions", &r.retransmissions, |e, side| {
        e.begin_object();
        for (key, tally) in tallies(side) {
            e.key(key);
            e.begin_object();
            e.key("segments");
            e.int(tally.segments);
            e.key("bytes");
            e.int(tally.bytes);
            e.end_object();
        }
        e.end_object();
    });
    e.per_side("zero_window", &r.zero_window, |e, z: &ZeroWindow| {
        e.begin_object();
        e.key("periods");
        e.int(z.periods);
        e.key("stall_ms");
        e.float(z.stall_ms);
        e.key("longest_ms");
        e.float(z.longest_ms);
        e.key("probes");
        e.int(z.probes);
        e.end_object();
    });
}

/// `,"retransmissions":{...},"zero_window":{...}` for a jsonl line.
pub fn write_jsonl(out: &mut Vec<u8>, r: &ConnectionRecord) {
    out.push(b',');
    if clean(r) {
        out.extend_from_slice(CLEAN_COMPACT);
        return;
    }
    encode(&mut Encoder::compact(out), r);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clean_literal_is_what_the_encoder_writes() {
        let mut record = crate::writers::fixture::records().remove(0);
        record.retransmissions = PerSide::default();
        record.zero_window = PerSide::default();
        let mut encoded = Vec::new();
        encode(&mut Encoder::compact(&mut encoded), &record);
        assert_eq!(
            String::from_utf8(encoded).unwrap(),
            String::from_utf8(CLEAN_COMPACT.to_vec()).unwrap()
        );
    }
}
