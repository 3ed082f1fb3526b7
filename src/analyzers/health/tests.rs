use super::*;
use crate::model::Role;

const C: u32 = 1000; // the client's ISN
const S: u32 = 5000; // the server's

/// Feeds Segment events as the connection core would, keeping each side's SND.NXT and
/// window.
struct Feed {
    health: HealthAnalyzer,
    nxt: [Option<u32>; 2],
    window: [i32; 2],
    ts_ns: i64,
}

impl Feed {
    fn new() -> Feed {
        Feed {
            health: HealthAnalyzer::default(),
            nxt: [None, None],
            window: [-1, -1],
            ts_ns: 0,
        }
    }

    /// One segment `ms` after the previous one; its verdict.
    #[allow(clippy::too_many_arguments)]
    fn seg(
        &mut self,
        ms: i64,
        role: Role,
        flags: u16,
        seq: u32,
        ack: u32,
        len: u32,
        window: u16,
        options: &[u8],
    ) -> u16 {
        self.ts_ns += ms * 1_000_000;
        let (me, peer) = (role.index(), role.peer().index());
        if flags & SYN != 0 && self.nxt[me].is_none() {
            self.nxt[me] = Some(seq.wrapping_add(1));
        }
        // the options after a 20-byte header, as a segment's buffer holds them
        let padded = [&[0u8; 20][..], options].concat();
        let window_before = std::mem::replace(&mut self.window[me], i32::from(window));
        let verdict = self.health.segment(
            me,
            self.ts_ns,
            flags,
            seq,
            ack,
            len,
            self.nxt[me],
            flags & ACK != 0 && self.nxt[peer].is_some_and(|n| seq_after(ack, n)),
            window,
            window_before,
            self.window[peer],
            OptionBytes {
                data: &padded,
                tcp_off: 0,
                len: options.len() as u32,
            },
        );
        let end = seq
            .wrapping_add(len)
            .wrapping_add(u32::from(flags & (SYN | FIN) != 0));
        if self.nxt[me].is_none_or(|n| seq_after(end, n)) {
            self.nxt[me] = Some(end);
        }
        verdict
    }

    /// A handshake and `n` segments of 100 bytes from the server, each acknowledged.
    fn established() -> Feed {
        let mut f = Feed::new();
        f.seg(0, Role::Client, SYN, C, 0, 0, 64240, &[]);
        f.seg(10, Role::Server, SYN | ACK, S, C + 1, 0, 65160, &[]);
        f.seg(10, Role::Client, ACK, C + 1, S + 1, 0, 502, &[]);
        f
    }

    fn record(&mut self) -> ConnectionRecord {
        let mut record = crate::writers::fixture::records().remove(0);
        record.outcome = Outcome::Open;
        let last_ns = self.ts_ns;
        self.health.finish(
            &mut record,
            &Finish {
                msl_s: 60.0,
                last_ns,
            },
        );
        record
    }
}

fn data(f: &mut Feed, ms: i64, seq_rel: u32, len: u32) -> u16 {
    f.seg(ms, Role::Server, ACK, S + seq_rel, C + 1, len, 509, &[])
}

fn ack(f: &mut Feed, ms: i64, ack_rel: u32, options: &[u8]) -> u16 {
    f.seg(ms, Role::Client, ACK, C + 1, S + ack_rel, 0, 502, options)
}

/// NOP NOP SACK with the given blocks (absolute sequence numbers).
fn sack(blocks: &[(u32, u32)]) -> Vec<u8> {
    let mut o = vec![1, 1, 5, (2 + 8 * blocks.len()) as u8];
    for &(l, r) in blocks {
        o.extend_from_slice(&l.to_be_bytes());
        o.extend_from_slice(&r.to_be_bytes());
    }
    o
}

/// NOP NOP TS.
fn ts(val: u32, ecr: u32) -> Vec<u8> {
    let mut o = vec![1, 1, 8, 10];
    o.extend_from_slice(&val.to_be_bytes());
    o.extend_from_slice(&ecr.to_be_bytes());
    o
}

use verdict::*;

#[test]
fn a_clean_transfer_gets_no_verdict_and_no_box() {
    let mut f = Feed::established();
    for i in 0..10 {
        assert_eq!(data(&mut f, 1, 1 + 100 * i, 100), 0);
        assert_eq!(ack(&mut f, 1, 101 + 100 * i, &[]), 0);
    }
    assert!(f.health.state.is_none());
    let r = f.record();
    assert_eq!(r.retransmissions, PerSide::default());
    assert_eq!(r.outcome, Outcome::Open);
}

#[test]
fn three_duplicate_acks_then_the_retransmission_is_fast() {
    let mut f = Feed::established();
    for i in 0..5 {
        data(&mut f, 1, 1 + 100 * i, 100); // 1..501, the first lost after the capture point
    }
    for _ in 0..3 {
        assert_eq!(
            ack(&mut f, 1, 1, &sack(&[(S + 101, S + 501)])),
            DUPLICATE_ACK
        );
    }
    assert_eq!(data(&mut f, 1, 1, 100), RETRANSMISSION | FAST);
    ack(&mut f, 1, 501, &[]);
    let r = f.record();
    let server = r.retransmissions.server;
    assert_eq!(
        server.fast,
        Tally {
            segments: 1,
            bytes: 100
        }
    );
    assert_eq!(
        server.lost_after_capture,
        Tally {
            segments: 1,
            bytes: 100
        }
    );
    assert_eq!(
        (server.rto, server.spurious),
        (Tally::default(), Tally::default())
    );
}

#[test]
fn the_timer_resends_the_first_unacknowledged_and_a_probe_the_last() {
    let mut f = Feed::established();
    data(&mut f, 1, 1, 100);
    data(&mut f, 1, 101, 100);
    // 300 ms of silence: the first unacknowledged segment again, on the timer
    assert_eq!(data(&mut f, 300, 1, 100), RETRANSMISSION | RTO);
    ack(&mut f, 1, 101, &[]);
    data(&mut f, 1, 201, 100);
    data(&mut f, 1, 301, 100);
    // the last segment again while earlier ones are outstanding: a tail-loss probe
    assert_eq!(data(&mut f, 20, 301, 100), RETRANSMISSION | TLP);
    let server = f.record().retransmissions.server;
    assert_eq!((server.rto.segments, server.tlp.segments), (1, 1));
}

#[test]
fn spurious_when_already_acknowledged_reported_by_dsack_or_by_the_echo() {
    let mut f = Feed::established();
    data(&mut f, 1, 1, 100);
    ack(&mut f, 1, 101, &[]);
    // already acknowledged when sent (Wireshark's rule)
    assert_eq!(data(&mut f, 300, 1, 100), RETRANSMISSION | RTO | SPURIOUS);
    // D-SACK: the receiver got 101..201 twice
    data(&mut f, 1, 101, 100);
    assert_eq!(data(&mut f, 300, 101, 100), RETRANSMISSION | RTO);
    ack(&mut f, 1, 201, &[]);
    ack(&mut f, 1, 201, &sack(&[(S + 101, S + 201)]));
    // Eifel: the ACK of the retransmission echoes the original's TSval
    f.seg(1, Role::Server, ACK, S + 201, C + 1, 100, 509, &ts(7, 1));
    assert_eq!(
        f.seg(300, Role::Server, ACK, S + 201, C + 1, 100, 509, &ts(9, 1)),
        RETRANSMISSION | RTO
    );
    ack(&mut f, 1, 301, &ts(2, 7));
    let server = f.record().retransmissions.server;
    assert_eq!(
        server.rto,
        Tally {
            segments: 3,
            bytes: 300
        }
    );
    assert_eq!(
        server.spurious,
        Tally {
            segments: 3,
            bytes: 300
        }
    );
    assert_eq!(server.lost_after_capture, Tally::default());
}

#[test]
fn a_hole_filled_after_duplicate_acks_was_lost_before_the_capture_point() {
    let mut f = Feed::established();
    data(&mut f, 1, 1, 100);
    assert_eq!(data(&mut f, 1, 201, 100), LOST_SEGMENT); // 101..201 never passed
                                                         // overtaken on the way: out of order at once
    let mut g = Feed::established();
    data(&mut g, 1, 1, 100);
    data(&mut g, 1, 201, 100);
    assert_eq!(data(&mut g, 1, 101, 100), OUT_OF_ORDER);
    // reported lost twice, then sent again
    ack(&mut f, 1, 101, &[]);
    ack(&mut f, 1, 101, &[]);
    assert_eq!(ack(&mut f, 1, 101, &[]), DUPLICATE_ACK);
    assert_eq!(data(&mut f, 1, 101, 100), RETRANSMISSION | FAST);
    let server = f.record().retransmissions.server;
    assert_eq!(
        server.lost_before_capture,
        Tally {
            segments: 1,
            bytes: 100
        }
    );
    assert_eq!(server.lost_after_capture, Tally::default());
}

#[test]
fn probes_are_not_retransmissions() {
    let mut f = Feed::established();
    data(&mut f, 1, 1, 100);
    ack(&mut f, 1, 101, &[]);
    assert_eq!(data(&mut f, 1000, 100, 0), KEEP_ALIVE);
    assert_eq!(data(&mut f, 1000, 100, 1), KEEP_ALIVE);
    // the answer repeats the ACK: not a duplicate ACK
    assert_eq!(ack(&mut f, 1, 101, &[]), 0);
    // the client's window shuts: zero-window probes, new byte (BSD) or one below (Linux)
    assert_eq!(
        f.seg(1, Role::Client, ACK, C + 1, S + 101, 0, 0, &[]),
        ZERO_WINDOW
    );
    assert_eq!(data(&mut f, 200, 101, 1), ZERO_WINDOW_PROBE);
    assert_eq!(data(&mut f, 400, 101, 1), ZERO_WINDOW_PROBE);
    assert_eq!(data(&mut f, 800, 101, 0), ZERO_WINDOW_PROBE);
    assert_eq!(
        f.seg(1, Role::Client, ACK, C + 1, S + 102, 0, 0, &[]),
        ZERO_WINDOW
    );
    // the window opens 600 ms after it shut; the probe's byte goes again with new data
    f.seg(199, Role::Client, ACK, C + 1, S + 102, 0, 502, &[]);
    assert_eq!(data(&mut f, 1, 101, 100), 0);
    let r = f.record();
    let server = r.retransmissions.server;
    assert_eq!(
        server.keepalive,
        Tally {
            segments: 2,
            bytes: 1
        }
    );
    assert_eq!(
        server.window_probe,
        Tally {
            segments: 3,
            bytes: 2
        }
    );
    assert_eq!(server.rto, Tally::default());
    let zero = r.zero_window.client;
    assert_eq!((zero.periods, zero.probes), (1, 3));
    assert_eq!((zero.stall_ms, zero.longest_ms), (1600.0, 1600.0));
    assert_eq!(r.outcome, Outcome::Open);
}

#[test]
fn a_connection_ending_on_a_zero_window_is_stalled() {
    let mut f = Feed::established();
    data(&mut f, 1, 1, 100);
    f.seg(1, Role::Client, ACK, C + 1, S + 101, 0, 0, &[]);
    f.seg(5, Role::Client, ACK, C + 1, S + 101, 0, 502, &[]);
    f.seg(5, Role::Client, ACK, C + 1, S + 101, 0, 0, &[]);
    data(&mut f, 200, 101, 0);
    f.ts_ns += 300_000_000; // the connection's last segment, 300 ms later
    let r = f.record();
    let zero = r.zero_window.client;
    assert_eq!(
        (zero.periods, zero.stall_ms, zero.longest_ms),
        (2, 505.0, 500.0)
    );
    assert_eq!(r.outcome, Outcome::Stalled);
}

#[test]
fn acknowledging_what_was_never_seen_is_flagged() {
    let mut f = Feed::established();
    data(&mut f, 1, 1, 100);
    assert_eq!(ack(&mut f, 1, 301, &[]), ACK_LOST_SEGMENT);
}

#[test]
fn a_second_syn_is_a_retransmission_but_a_simultaneous_synack_is_not() {
    let mut f = Feed::new();
    assert_eq!(f.seg(0, Role::Client, SYN, C, 0, 0, 100, &[]), 0);
    assert_eq!(
        f.seg(1000, Role::Client, SYN, C, 0, 0, 100, &[]),
        RETRANSMISSION | RTO
    );
    assert_eq!(f.seg(1, Role::Client, SYN | ACK, C, S + 1, 0, 100, &[]), 0);
    assert_eq!(f.record().retransmissions.client.rto.segments, 1);
}

#[test]
fn option_walks_stop_at_the_captured_bytes() {
    assert_eq!(stamps(&ts(7, 9)), Some((7, 9)));
    assert_eq!(stamps(&ts(7, 9)[..8]), None);
    assert_eq!(
        sack_blocks(&sack(&[(1, 2), (3, 4)])).collect::<Vec<_>>(),
        vec![(1, 2), (3, 4)]
    );
    assert_eq!(dsack(&sack(&[(1, 2)]), 5), Some((1, 2)));
    assert_eq!(dsack(&sack(&[(6, 7), (5, 9)]), 2), Some((6, 7)));
    assert_eq!(dsack(&sack(&[(6, 7), (8, 9)]), 2), None);
    assert_eq!(option(&[1, 9, 0], 5), None); // a size past the end
    let mut holes = vec![(10, 20), (30, 40)];
    assert_eq!(fill_holes(&mut holes, 12, 15), 3);
    assert_eq!(holes, vec![(10, 12), (30, 40), (15, 20)]);
    assert_eq!(fill_holes(&mut holes, 5, 13), 2); // the left part of (10, 12)
    assert_eq!(holes, vec![(30, 40), (15, 20)]);
    assert_eq!(fill_holes(&mut holes, 35, 50), 5);
    assert_eq!(fill_holes(&mut holes, 14, 16), 1);
    assert_eq!(holes, vec![(30, 35), (16, 20)]);
    assert_eq!(fill_holes(&mut holes, 0, 10), 0);
}
