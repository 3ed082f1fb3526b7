//! A connection's health in a few words, for the table's `health` column (docs/output.md):
//! the retransmissions by cause, the spurious ones among them, the zero-window periods and
//! the frames captured twice, both sides together; empty for a healthy connection.

use std::fmt::Write;

use crate::model::{ConnectionRecord, Retransmissions};

/// How one word of the label is counted from a record.
type Count = fn(&ConnectionRecord) -> u64;

/// The words in the order the label writes them, with how each is counted.
const WORDS: [(&str, Count); 6] = [
    ("rto", |r| both(r, |t| t.rto.segments)),
    ("fast", |r| both(r, |t| t.fast.segments)),
    ("tlp", |r| both(r, |t| t.tlp.segments)),
    ("spur", |r| both(r, |t| t.spurious.segments)),
    ("zw", |r| {
        r.zero_window.client.periods + r.zero_window.server.periods
    }),
    ("dup", |r| r.duplicates.client + r.duplicates.server),
];

fn both(r: &ConnectionRecord, count: fn(&Retransmissions) -> u64) -> u64 {
    count(&r.retransmissions.client) + count(&r.retransmissions.server)
}

/// E.g. "rto:2 fast:1 zw:1"; empty (and no allocation) when every count is zero.
pub fn health_label(r: &ConnectionRecord) -> String {
    let mut label = String::new();
    for (word, count) in WORDS {
        let n = count(r);
        if n > 0 {
            let space = if label.is_empty() { "" } else { " " };
            // writing to a String cannot fail
            let _ = write!(label, "{space}{word}:{n}");
        }
    }
    label
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthy_connection_has_no_label_and_the_counts_add_both_sides() {
        let mut r = crate::writers::fixture::records().swap_remove(0);
        r.retransmissions = Default::default();
        r.zero_window = Default::default();
        r.duplicates = Default::default();
        assert_eq!(health_label(&r), "");
        r.retransmissions.client.rto.add(100);
        r.retransmissions.server.rto.add(0);
        r.retransmissions.server.fast.add(10);
        r.zero_window.client.periods = 2;
        r.duplicates.server = 3;
        assert_eq!(health_label(&r), "rto:2 fast:1 zw:2 dup:3");
    }
}
