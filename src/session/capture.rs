//! Frames collected straight from libpcap's `pcap_dispatch` callback (src/binding/capture.rs)
//! into the engine's own batch layout: the callback appends each frame's bytes to one
//! buffer and a `Frame` for it, so a batch reaches the engine with one copy per frame and
//! no Python object per frame. Frames of several interfaces share the buffer in the order
//! they were read; `take` orders them by time when there are several (as `batch_of` does).

use std::sync::Arc;

use crate::sources::{Frame, FrameBatch};

/// What the callback of one interface knows about its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tap {
    /// The interface's link type (pcap_datalink).
    pub linktype: u32,
    /// Nanoseconds per unit of `tv_usec`: 1 for a nanosecond handle, 1000 for microseconds.
    pub ns_per_unit: i64,
}

/// The frames captured since the last `take`.
#[derive(Debug, Default)]
pub struct CaptureBuffer {
    data: Vec<u8>,
    frames: Vec<Frame>,
}

impl CaptureBuffer {
    /// Frames held.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// No frame held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Append one frame as libpcap describes it: `struct timeval` (seconds, fraction in
    /// the tap's unit), the wire length, the captured bytes (`caplen` of them).
    pub fn push(&mut self, tap: Tap, sec: i64, frac: i64, wirelen: u32, bytes: &[u8]) {
        // wrapping: no timestamp libpcap gives comes near; a corrupt one must not panic
        // (this runs inside a C callback, where a panic aborts the process)
        let ts_ns = sec
            .wrapping_mul(1_000_000_000)
            .wrapping_add(frac.wrapping_mul(tap.ns_per_unit));
        self.frames.push(Frame {
            ts_ns,
            offset: self.data.len(),
            // a frame over 4 GiB cannot exist: libpcap's caplen is a u32
            caplen: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
            wirelen,
            linktype: tap.linktype,
        });
        self.data.extend_from_slice(bytes);
    }

    /// The frames held, as one batch (by time, stable, with `merge`), leaving the buffer
    /// empty with room for a batch as large (the next one is likely alike).
    pub fn take(&mut self, merge: bool) -> FrameBatch {
        let room = (self.data.len(), self.frames.len());
        let data = std::mem::replace(&mut self.data, Vec::with_capacity(room.0));
        let mut frames = std::mem::replace(&mut self.frames, Vec::with_capacity(room.1));
        if merge {
            frames.sort_by_key(|f| f.ts_ns); // stable: equal timestamps keep arrival order
        }
        FrameBatch {
            data: Arc::new(data),
            frames,
            ..FrameBatch::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::libpcap::{batch_of, records_of, PktHdr, Records};

    const ETH: Tap = Tap {
        linktype: 1,
        ns_per_unit: 1,
    };
    const SLL_US: Tap = Tap {
        linktype: 113,
        ns_per_unit: 1000,
    };

    #[test]
    fn frames_are_appended_back_to_back_with_their_headers() {
        let mut buf = CaptureBuffer::default();
        assert!(buf.is_empty());
        buf.push(ETH, 1_700_000_000, 123_456_789, 60, b"abcdef");
        buf.push(SLL_US, 1_700_000_001, 5, 1514, b"xyz");
        assert_eq!(buf.len(), 2);
        let batch = buf.take(false);
        assert!(buf.is_empty());
        assert_eq!(*batch.data, b"abcdefxyz");
        assert_eq!(
            batch.frames,
            [
                Frame {
                    ts_ns: 1_700_000_000_123_456_789,
                    offset: 0,
                    caplen: 6,
                    wirelen: 60,
                    linktype: 1,
                },
                Frame {
                    ts_ns: 1_700_000_001_000_005_000,
                    offset: 6,
                    caplen: 3,
                    wirelen: 1514,
                    linktype: 113,
                },
            ]
        );
        assert_eq!(batch.bytes(1), b"xyz");
    }

    #[test]
    fn merge_orders_by_time_and_keeps_ties_in_arrival_order() {
        let mut buf = CaptureBuffer::default();
        buf.push(ETH, 0, 30, 2, b"a1");
        buf.push(ETH, 0, 10, 2, b"a2");
        buf.push(SLL_US, 0, 0, 2, b"b0");
        buf.push(ETH, 0, 10, 2, b"a3");
        let batch = buf.take(true);
        let got: Vec<&[u8]> = (0..batch.len()).map(|i| batch.bytes(i)).collect();
        assert_eq!(got, [&b"b0"[..], b"a2", b"a3", b"a1"]);
        let unmerged = {
            buf.push(ETH, 0, 30, 2, b"a1");
            buf.push(ETH, 0, 10, 2, b"a2");
            buf.take(false)
        };
        assert_eq!(unmerged.bytes(0), b"a1");
    }

    #[test]
    fn same_batch_as_the_records_of_a_read() {
        // the callback path and the byte-records path (`feed`) give the engine one batch
        let mut buf = CaptureBuffer::default();
        buf.push(ETH, 12, 999_999_999, 100, b"hello");
        buf.push(ETH, 13, 0, 0, b"");
        let batch = buf.take(false);
        let header = PktHdr::new(8).unwrap();
        let raw = records_of(&batch, header, 1);
        let reads = [Records {
            bytes: &raw,
            linktype: 1,
            ns_per_unit: 1,
        }];
        let back = batch_of(&reads, header, false).unwrap();
        assert_eq!(back.frames, batch.frames);
        assert_eq!(back.data, batch.data);
    }

    #[test]
    fn corrupt_timestamps_wrap_instead_of_panicking() {
        let mut buf = CaptureBuffer::default();
        buf.push(SLL_US, i64::MAX, i64::MIN, 0, b"");
        assert_eq!(buf.len(), 1);
    }
}
