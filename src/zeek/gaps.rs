//! Content gaps: which bytes of a side were seen, and what an acknowledgement beyond them
//! means (src/packet_analysis/protocol/tcp/TCP_Reassembler.cc, `AckReceived` and its
//! undelivered-data accounting). Zeek reports acknowledged bytes it never saw as
//! `missed_bytes` and writes a `G`/`g` history letter per hole.

use super::endpoint::{Endpoint, EndpointState};

/// Out-of-order blocks [lo, hi) beyond a side's contiguous prefix. Empty (no allocation)
/// unless segments arrive out of order.
pub type Blocks = Vec<(i64, i64)>;

/// Payload [start, start + length) seen from `end`: extend its contiguous prefix, or hold
/// an out-of-order block.
pub fn data(end: &mut Endpoint, start: i64, length: u32) {
    let stop = start + i64::from(length);
    if start <= end.contig {
        if stop > end.contig {
            end.contig = stop;
            if !end.blocks.is_empty() {
                merge(end);
            }
        }
    } else if stop > end.contig {
        end.blocks.push((start, stop));
    }
}

/// Fold the held blocks the contiguous prefix now reaches into it.
fn merge(end: &mut Endpoint) {
    end.blocks.sort_unstable();
    let mut contig = end.contig;
    end.blocks.retain(|&(lo, hi)| {
        if lo <= contig {
            contig = contig.max(hi);
            false
        } else {
            true
        }
    });
    end.contig = contig;
}

/// What an acknowledgement of `sender`'s data up to `ack` revealed: the holes (each one a
/// `G` letter, when flagged) and their bytes (already added to `sender.missed`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Revealed {
    pub holes: u32,
    pub missing: u64,
}

/// TCP_Reassembler::AckReceived: bytes of `sender` acknowledged but never seen are a gap.
/// `partial`: the session is partial (a gap of at most two right at the start is the
/// faked SYN, not data).
pub fn ack_received(sender: &mut Endpoint, ack: i64, partial: bool) -> Revealed {
    let mut upto = ack;
    if sender.fin_cnt > 0 && upto >= sender.fin_seq {
        upto = sender.fin_seq - 1; // the FIN is not data
    }
    if upto <= sender.contig {
        return Revealed::default();
    }
    if partial && upto - sender.start <= 2 {
        sender.contig = upto;
        return Revealed::default();
    }
    let mut missing = 0i64;
    let mut holes = 0u32;
    let mut pos = sender.contig;
    if !sender.blocks.is_empty() {
        sender.blocks.sort_unstable();
        for &(lo, hi) in &sender.blocks {
            if lo >= upto {
                break;
            }
            if lo > pos {
                missing += lo - pos;
                holes += 1;
            }
            pos = pos.max(hi);
        }
    }
    if pos < upto {
        missing += upto - pos;
        holes += 1;
    }
    sender.contig = pos.max(upto);
    if !sender.blocks.is_empty() {
        merge(sender);
    }
    let missing = missing.max(0) as u64;
    sender.missed += missing;
    Revealed { holes, missing }
}

/// Whether revealed holes write `G` letters: only for an acknowledgement that is not a
/// FIN's, while the acknowledging side is still open.
pub fn flags_gap(revealed: &Revealed, flag_gap: bool, acker: EndpointState) -> bool {
    flag_gap && revealed.missing > 0 && !acker.is_done()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end_at(start: i64) -> Endpoint {
        let mut end = Endpoint::new(true);
        end.init_seq(start, start + 1);
        end
    }

    #[test]
    fn in_order_data_leaves_no_gap() {
        let mut end = end_at(0);
        data(&mut end, 1, 100);
        data(&mut end, 101, 50);
        assert_eq!(end.contig, 151);
        assert_eq!(ack_received(&mut end, 151, false), Revealed::default());
        assert_eq!(end.missed, 0);
    }

    #[test]
    fn out_of_order_blocks_merge_when_the_hole_fills() {
        let mut end = end_at(0);
        data(&mut end, 201, 100);
        data(&mut end, 101, 50);
        assert_eq!(end.blocks, vec![(201, 301), (101, 151)]);
        data(&mut end, 1, 200);
        assert_eq!((end.contig, end.blocks.len()), (301, 0));
    }

    #[test]
    fn an_ack_beyond_seen_data_counts_each_hole() {
        let mut end = end_at(0);
        data(&mut end, 1, 100); // 1..101 seen
        data(&mut end, 151, 50); // 151..201 seen, 101..151 missing
        let got = ack_received(&mut end, 301, false); // 201..301 missing too
        assert_eq!(
            got,
            Revealed {
                holes: 2,
                missing: 150
            }
        );
        assert_eq!((end.contig, end.missed), (301, 150));
    }

    #[test]
    fn the_fin_is_not_data_and_partial_starts_are_not_gaps() {
        let mut end = end_at(0);
        data(&mut end, 1, 10);
        end.fin_cnt = 1;
        end.fin_seq = 12;
        assert_eq!(ack_received(&mut end, 12, false), Revealed::default());
        let mut partial = end_at(99);
        assert_eq!(ack_received(&mut partial, 101, true), Revealed::default());
        assert_eq!(partial.contig, 101);
        assert!(!flags_gap(
            &Revealed {
                holes: 1,
                missing: 5
            },
            true,
            EndpointState::Reset
        ));
        assert!(flags_gap(
            &Revealed {
                holes: 1,
                missing: 5
            },
            true,
            EndpointState::Established
        ));
        assert!(!flags_gap(
            &Revealed {
                holes: 1,
                missing: 5
            },
            false,
            EndpointState::Established
        ));
    }
}
