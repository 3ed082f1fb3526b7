//! Per-direction byte streams: in-order delivery, duplicates removed, gaps recorded.
//!
//! Only what the application analyzers need is kept: the stream hands each new in-order
//! stretch to a consumer as (timestamp, length, bytes or None). Bytes are handed on only
//! while the consumer asks for them, and copied only when held out of order.

use crate::seqnum::{seq_add, seq_diff};

/// Out-of-order bytes held per direction before the stream gives up waiting for the missing
/// piece and records a gap: bounds memory whatever the peer does.
pub const MAX_PENDING_BYTES: i64 = 1 << 20;

/// Where a stream's in-order data goes.
pub trait StreamConsumer {
    /// Whether the next data should come with its bytes.
    fn wants_bytes(&self) -> bool;
    fn on_data(&mut self, ts_ns: i64, length: u32, data: Option<&[u8]>);
    fn on_gap(&mut self, ts_ns: i64, length: u32);
}

/// A segment held until the hole before it fills.
#[derive(Clone, Debug)]
struct Held {
    seq: u32,
    length: u32,
    data: Option<Box<[u8]>>,
}

/// One direction of a connection, in sequence order.
#[derive(Clone, Debug, Default)]
pub struct Stream {
    pub next_seq: Option<u32>,
    /// Bytes delivered in order (unique payload, retransmissions excluded).
    pub delivered: u64,
    /// Payload bytes seen again (retransmissions and overlaps).
    pub duplicate: u64,
    pub gap_bytes: u64,
    pub gaps: u64,
    /// Held segments in arrival order (Python's insertion-ordered dict keyed by seq).
    pending: Vec<Held>,
    pending_bytes: i64,
}

/// `data[skip..]` (Python's `data[-ahead:]` with ahead <= 0).
fn tail(data: Option<&[u8]>, skip: i64) -> Option<&[u8]> {
    data.map(|d| d.get(usize::try_from(skip).unwrap_or(0)..).unwrap_or(&[]))
}

impl Stream {
    /// First sequence number of data: ISN + 1, or the first segment seen mid-stream.
    pub fn start(&mut self, seq: u32) {
        if self.next_seq.is_none() {
            self.next_seq = Some(seq);
        }
    }

    /// Whether out-of-order segments are held.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// A segment carrying `length` (> 0) bytes at `seq`; `payload` is its bytes when all were
    /// captured (None otherwise), handed on only if the consumer wants bytes.
    pub fn segment<C: StreamConsumer>(
        &mut self,
        consumer: &mut C,
        ts_ns: i64,
        seq: u32,
        length: u32,
        payload: Option<&[u8]>,
    ) {
        let expected = *self.next_seq.get_or_insert(seq);
        if seq == expected && self.pending.is_empty() {
            // the common case: next in order
            let data = if consumer.wants_bytes() {
                payload
            } else {
                None
            };
            self.next_seq = Some(expected.wrapping_add(length));
            self.delivered += u64::from(length);
            consumer.on_data(ts_ns, length, data);
            return;
        }
        let ahead = seq_diff(seq, expected);
        if ahead > 0 {
            // out of order: hold until the hole fills
            if !self.pending.iter().any(|h| h.seq == seq) {
                let data = if consumer.wants_bytes() {
                    payload.map(Box::from)
                } else {
                    None
                };
                self.pending.push(Held { seq, length, data });
                self.pending_bytes += i64::from(length);
                if self.pending_bytes > MAX_PENDING_BYTES {
                    let nearest = self.nearest_pending(seq);
                    self.skip_to(consumer, ts_ns, nearest);
                }
            }
            return;
        }
        let length_i = i64::from(length);
        let new = length_i + ahead; // ahead <= 0: the first -ahead bytes were seen already
        self.duplicate += length_i.min(-ahead) as u64;
        if new <= 0 {
            return;
        }
        let data = if consumer.wants_bytes() {
            tail(payload, -ahead)
        } else {
            None
        };
        self.deliver(consumer, ts_ns, new as u32, data);
        self.drain(consumer, ts_ns);
    }

    /// The receiver acknowledged up to `ack`: bytes before it that we never saw are a gap.
    pub fn acked<C: StreamConsumer>(&mut self, consumer: &mut C, ts_ns: i64, ack: u32) {
        let Some(next) = self.next_seq else { return };
        if seq_diff(ack, next) > 0 {
            let mut ack = ack;
            if !self.pending.is_empty() {
                let first = self.nearest_pending(next);
                if seq_diff(first, ack) < 0 {
                    ack = first;
                }
            }
            if seq_diff(ack, next) > 0 {
                self.skip_to(consumer, ts_ns, ack);
            }
        }
    }

    /// Give up on the bytes before `seq`: a gap, then whatever held data now follows.
    pub fn skip_to<C: StreamConsumer>(&mut self, consumer: &mut C, ts_ns: i64, seq: u32) {
        let Some(next) = self.next_seq else { return };
        let missing = seq_diff(seq, next);
        if missing > 0 {
            self.gaps += 1;
            self.gap_bytes += missing as u64;
            consumer.on_gap(ts_ns, missing as u32);
            self.next_seq = Some(seq);
        }
        self.drain(consumer, ts_ns);
    }

    /// The stream ends (the connection's record is made): nothing can fill its holes any
    /// more, so each hole before held data is a gap, as an acknowledged one is, and the held
    /// data is delivered. Without it a one-sided capture (no ACK ever covers a hole) would
    /// stop counting the sender's bytes at its first hole.
    pub fn close<C: StreamConsumer>(&mut self, consumer: &mut C, ts_ns: i64) {
        while self.has_pending() {
            let held = self.pending.len();
            let Some(next) = self.next_seq else { return };
            let nearest = self.nearest_pending(next);
            self.skip_to(consumer, ts_ns, nearest);
            if self.pending.len() == held {
                return; // no progress: cannot happen (the nearest held piece delivers)
            }
        }
    }

    /// The held sequence number nearest after `from` (the first such in arrival order).
    fn nearest_pending(&self, from: u32) -> u32 {
        let mut best: Option<(i64, u32)> = None;
        for held in &self.pending {
            let d = seq_diff(held.seq, from);
            if best.is_none_or(|(b, _)| d < b) {
                best = Some((d, held.seq));
            }
        }
        best.map_or(from, |(_, s)| s)
    }

    fn deliver<C: StreamConsumer>(
        &mut self,
        consumer: &mut C,
        ts: i64,
        length: u32,
        data: Option<&[u8]>,
    ) {
        let next = self.next_seq.unwrap_or(0);
        self.next_seq = Some(seq_add(next, i64::from(length)));
        self.delivered += u64::from(length);
        consumer.on_data(ts, length, data);
    }

    /// Deliver the held segments the stream has reached, in passes over arrival order.
    fn drain<C: StreamConsumer>(&mut self, consumer: &mut C, ts_ns: i64) {
        while !self.pending.is_empty() {
            let mut progressed = false;
            let mut i = 0;
            while i < self.pending.len() {
                let next = self.next_seq.unwrap_or(0);
                let ahead = seq_diff(self.pending[i].seq, next);
                if ahead > 0 {
                    i += 1;
                    continue;
                }
                let held = self.pending.remove(i);
                let length = i64::from(held.length);
                self.pending_bytes -= length;
                let new = length + ahead;
                self.duplicate += length.min(-ahead) as u64;
                if new > 0 {
                    self.deliver(
                        consumer,
                        ts_ns,
                        new as u32,
                        tail(held.data.as_deref(), -ahead),
                    );
                }
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        chunks: Vec<(u32, Option<Vec<u8>>)>,
        gaps: Vec<u32>,
    }

    impl StreamConsumer for Recorder {
        fn wants_bytes(&self) -> bool {
            true
        }
        fn on_data(&mut self, _ts: i64, length: u32, data: Option<&[u8]>) {
            self.chunks.push((length, data.map(<[u8]>::to_vec)));
        }
        fn on_gap(&mut self, _ts: i64, length: u32) {
            self.gaps.push(length);
        }
    }

    fn stream(start: u32) -> (Stream, Recorder) {
        let mut s = Stream::default();
        s.start(start);
        (s, Recorder::default())
    }

    fn send(s: &mut Stream, rec: &mut Recorder, seq: u32, data: &[u8]) {
        s.segment(rec, 0, seq, data.len() as u32, Some(data));
    }

    fn chunk(data: &[u8]) -> (u32, Option<Vec<u8>>) {
        (data.len() as u32, Some(data.to_vec()))
    }

    #[test]
    fn in_order_and_retransmission() {
        let (mut s, mut rec) = stream(1000);
        send(&mut s, &mut rec, 1000, b"hello");
        send(&mut s, &mut rec, 1000, b"hello");
        send(&mut s, &mut rec, 1003, b"lo wor"); // overlap: only " wor" is new
        assert_eq!(rec.chunks, vec![chunk(b"hello"), chunk(b" wor")]);
        assert_eq!((s.delivered, s.duplicate), (9, 7));
    }

    #[test]
    fn out_of_order_is_held_until_the_hole_fills() {
        let (mut s, mut rec) = stream(1000);
        send(&mut s, &mut rec, 1005, b"world");
        assert!(rec.chunks.is_empty());
        send(&mut s, &mut rec, 1000, b"hello");
        assert_eq!(rec.chunks, vec![chunk(b"hello"), chunk(b"world")]);
        assert!(!s.has_pending());
    }

    #[test]
    fn acknowledged_bytes_never_seen_are_a_gap() {
        let (mut s, mut rec) = stream(1000);
        send(&mut s, &mut rec, 1000, b"ab");
        send(&mut s, &mut rec, 1010, b"xyz");
        s.acked(&mut rec, 0, 1013);
        assert_eq!((rec.gaps.clone(), s.gap_bytes), (vec![8], 8));
        assert_eq!(rec.chunks, vec![chunk(b"ab"), chunk(b"xyz")]);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let (mut s, mut rec) = stream(0xFFFF_FFFE);
        send(&mut s, &mut rec, 0xFFFF_FFFE, b"wrap");
        send(&mut s, &mut rec, 2, b"ok");
        assert_eq!(rec.chunks, vec![chunk(b"wrap"), chunk(b"ok")]);
    }

    #[test]
    fn held_overlap_is_trimmed_when_drained() {
        let (mut s, mut rec) = stream(0);
        send(&mut s, &mut rec, 4, b"efgh");
        send(&mut s, &mut rec, 2, b"cdef"); // held too: 2 is ahead of 0
        send(&mut s, &mut rec, 0, b"ab");
        // first pass: efgh is still ahead of 2, cdef delivers; second pass: efgh's "gh"
        assert_eq!(rec.chunks, vec![chunk(b"ab"), chunk(b"cdef"), chunk(b"gh")]);
        assert_eq!((s.delivered, s.duplicate), (8, 2));
    }

    #[test]
    fn closing_turns_holes_into_gaps_and_delivers_what_is_held() {
        let (mut s, mut rec) = stream(1000);
        send(&mut s, &mut rec, 1000, b"ab");
        send(&mut s, &mut rec, 1010, b"xyz");
        send(&mut s, &mut rec, 1005, b"cd"); // a second hole, 1002..1005, before it
        s.close(&mut rec, 0);
        assert_eq!(rec.gaps, vec![3, 3]);
        assert_eq!(rec.chunks, vec![chunk(b"ab"), chunk(b"cd"), chunk(b"xyz")]);
        assert_eq!((s.delivered, s.gap_bytes, s.gaps), (7, 6, 2));
        assert!(!s.has_pending());
        // nothing held: closing changes nothing
        s.close(&mut rec, 0);
        assert_eq!((s.delivered, s.gap_bytes, rec.gaps.len()), (7, 6, 2));
    }

    #[test]
    fn too_much_held_skips_to_the_nearest() {
        let (mut s, mut rec) = stream(0);
        let big = vec![7u8; 1 << 19];
        s.segment(&mut rec, 0, 100, big.len() as u32, Some(&big));
        s.segment(&mut rec, 0, 100 + (1 << 19), big.len() as u32, Some(&big));
        assert!(rec.gaps.is_empty());
        s.segment(&mut rec, 0, 100 + (1 << 20), 1, Some(b"x"));
        assert_eq!(rec.gaps, vec![100]);
        assert_eq!(s.delivered, (1 << 20) + 1);
    }
}
