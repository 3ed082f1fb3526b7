use super::*;
use crate::model::Rtt;

const MS: i64 = 1_000_000;

/// A TCP header (20 bytes, unread) and its options: NOP, NOP, timestamps (Linux's layout),
/// or none.
fn header(stamp: Option<(u32, u32)>) -> Vec<u8> {
    let mut bytes = vec![0; 20];
    if let Some((val, ecr)) = stamp {
        bytes.extend([1, 1, 8, 10]);
        bytes.extend(val.to_be_bytes());
        bytes.extend(ecr.to_be_bytes());
    }
    bytes
}

fn options(bytes: &[u8]) -> OptionBytes<'_> {
    OptionBytes {
        data: bytes,
        tcp_off: 0,
        len: bytes.len() as u32 - 20,
    }
}
const C: usize = 0;
const S: usize = 1;

/// A segment without timestamps.
fn seg(a: &mut RttAnalyzer, me: usize, ms: i64, seq: u32, ack: u32, len: u32, nxt: u32) {
    a.segment(
        me,
        ms * MS,
        ACK,
        seq,
        ack,
        len,
        Some(nxt),
        65535,
        options(&header(None)),
    );
}

fn summary(a: &mut RttAnalyzer, side: usize) -> Rtt {
    a.state.as_mut().unwrap().sides[side].samples.summary()
}

#[test]
fn a_data_segment_and_the_ack_covering_it_give_one_sample() {
    let mut a = RttAnalyzer::default();
    seg(&mut a, S, 0, 500, 1000, 0, 500); // a pure ACK: nothing boxed
    assert!(a.state.is_none());
    seg(&mut a, C, 10, 1000, 500, 100, 1000);
    seg(&mut a, C, 11, 1100, 500, 100, 1100); // not timed: one at a time
    seg(&mut a, S, 30, 500, 1100, 0, 500); // covers the timed one: 20 ms
    seg(&mut a, S, 31, 500, 1200, 0, 500); // covers the second, untimed
    assert_eq!(
        summary(&mut a, C),
        Rtt {
            samples: 1,
            p50_us: Some(20_000),
            p90_us: Some(20_000),
            max_us: Some(20_000),
        }
    );
    assert_eq!(summary(&mut a, S).samples, 0);
}

#[test]
fn an_ack_short_of_the_timed_segment_takes_no_sample() {
    let mut a = RttAnalyzer::default();
    seg(&mut a, C, 0, 1000, 500, 100, 1000);
    seg(&mut a, S, 5, 500, 1050, 0, 500); // half of it, no timestamps
    seg(&mut a, S, 8, 500, 1100, 0, 500);
    assert_eq!(summary(&mut a, C).p50_us, Some(8000));
}

#[test]
fn a_retransmission_cancels_the_timing_karn() {
    let mut a = RttAnalyzer::default();
    seg(&mut a, C, 0, 1000, 500, 100, 1000);
    seg(&mut a, C, 200, 1000, 500, 100, 1100); // sent again
    seg(&mut a, S, 210, 500, 1100, 0, 500);
    assert_eq!(summary(&mut a, C).samples, 0);
    // a new segment is timed again afterwards
    seg(&mut a, C, 220, 1100, 500, 100, 1100);
    seg(&mut a, S, 235, 500, 1200, 0, 500);
    assert_eq!(summary(&mut a, C).p50_us, Some(15000));
}

#[test]
fn a_retransmission_of_older_data_cancels_the_timing_of_newer() {
    let mut a = RttAnalyzer::default();
    seg(&mut a, C, 0, 1000, 500, 100, 1000);
    seg(&mut a, S, 10, 500, 1100, 0, 500); // sample 10 ms
    seg(&mut a, C, 20, 1100, 500, 100, 1100); // timed
    seg(&mut a, C, 21, 1200, 500, 100, 1200);
    seg(&mut a, C, 300, 1100, 500, 100, 1300); // the timed one's range again
    seg(&mut a, S, 310, 500, 1300, 0, 500);
    assert_eq!(summary(&mut a, C).samples, 1);
}

#[test]
fn data_beyond_a_hole_is_not_timed() {
    let mut a = RttAnalyzer::default();
    seg(&mut a, C, 0, 1100, 500, 100, 1000); // 1000..1100 missed by the capture
    seg(&mut a, S, 50, 500, 1200, 0, 500);
    assert_eq!(summary(&mut a, C).samples, 0);
}

#[test]
fn a_byte_into_a_shut_window_is_not_timed() {
    let mut a = RttAnalyzer::default();
    a.segment(
        C,
        0,
        ACK,
        1000,
        500,
        1,
        Some(1000),
        0,
        options(&header(None)),
    );
    seg(&mut a, S, 3000, 500, 1001, 0, 500);
    assert_eq!(summary(&mut a, C).samples, 0);
}

#[test]
fn a_partial_ack_echoing_the_timed_tsval_takes_the_sample() {
    let mut a = RttAnalyzer::default();
    // a 3000-byte segment as a capture on a TSO sender sees it, TSval 77
    a.segment(
        C,
        0,
        ACK,
        1000,
        500,
        3000,
        Some(1000),
        65535,
        options(&header(Some((77, 5)))),
    );
    // an echo of 77 acknowledging nothing of it: no sample
    a.segment(
        S,
        MS,
        ACK,
        500,
        1000,
        0,
        Some(500),
        65535,
        options(&header(Some((9, 77)))),
    );
    // a partial ACK echoing an older TSval: no sample
    a.segment(
        S,
        2 * MS,
        ACK,
        500,
        1500,
        0,
        Some(500),
        65535,
        options(&header(Some((9, 76)))),
    );
    assert_eq!(summary(&mut a, C).samples, 0);
    // a partial ACK echoing 77: the first part's round trip
    a.segment(
        S,
        3 * MS,
        ACK,
        500,
        2000,
        0,
        Some(500),
        65535,
        options(&header(Some((9, 77)))),
    );
    a.segment(
        S,
        9 * MS,
        ACK,
        500,
        4000,
        0,
        Some(500),
        65535,
        options(&header(Some((9, 77)))),
    );
    assert_eq!(summary(&mut a, C).samples, 1);
    assert_eq!(summary(&mut a, C).max_us, Some(3000));
}

#[test]
fn both_directions_are_timed_apart() {
    let mut a = RttAnalyzer::default();
    seg(&mut a, C, 0, 1000, 500, 100, 1000); // request
    seg(&mut a, S, 40, 500, 1100, 1400, 500); // response, acknowledging it
    seg(&mut a, C, 42, 1100, 1900, 0, 1100);
    assert_eq!(summary(&mut a, C).p50_us, Some(40000));
    assert_eq!(summary(&mut a, S).p50_us, Some(2000));
}

#[test]
fn throughput_is_unique_bytes_over_first_to_last_data() {
    let mut a = RttAnalyzer::default();
    seg(&mut a, C, 1000, 1000, 500, 1000, 1000);
    seg(&mut a, C, 1250, 2000, 500, 1000, 2000);
    seg(&mut a, C, 1500, 3000, 500, 500, 3000);
    seg(&mut a, S, 1600, 500, 3500, 10, 500);
    let st = a.state.as_ref().unwrap();
    let t = throughput(&st.sides[C], 2500);
    assert_eq!(t.duration_us, 500_000);
    assert_eq!(t.bits_per_s, Some(40_000)); // 2500 B * 8 / 0.5 s
    let one = throughput(&st.sides[S], 10);
    assert_eq!((one.duration_us, one.bits_per_s), (0, None));
}
