//! Frames as a live capture collects them from libpcap: for each frame `pcap_next_ex`
//! returned, its `struct pcap_pkthdr` copied as it is in memory (a `struct timeval` of two
//! C longs, then caplen and len as u32, host byte order), then its caplen bytes; the
//! frames of one read back to back in one buffer. Copying two byte strings per frame is
//! all the Python capture loop does; the parsing is here.

use std::sync::Arc;

use crate::sources::{Frame, FrameBatch};

/// The frames of one read from one interface.
pub struct Records<'a> {
    /// pcap_pkthdr + frame bytes, repeated.
    pub bytes: &'a [u8],
    /// The interface's link type (pcap_datalink).
    pub linktype: u32,
    /// Nanoseconds per unit of `tv_usec`: 1 when the handle gives nanosecond timestamps,
    /// 1000 for microseconds.
    pub ns_per_unit: i64,
}

/// The layout of `struct pcap_pkthdr` on this host: the size of a C `long`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PktHdr {
    long_bytes: usize,
}

impl PktHdr {
    /// The layout for C longs of `long_bytes` bytes (4 or 8).
    pub fn new(long_bytes: usize) -> Result<PktHdr, String> {
        match long_bytes {
            4 | 8 => Ok(PktHdr { long_bytes }),
            other => Err(format!("unsupported C long size {other}")),
        }
    }

    /// Bytes of the header: the timeval, caplen, len (no padding: 4 + 4 follow 4- or 8-byte
    /// longs).
    pub fn size(&self) -> usize {
        2 * self.long_bytes + 8
    }

    fn long(&self, bytes: &[u8]) -> i64 {
        match *bytes {
            [a, b, c, d, e, f, g, h] => i64::from_ne_bytes([a, b, c, d, e, f, g, h]),
            [a, b, c, d] => i64::from(i32::from_ne_bytes([a, b, c, d])),
            _ => 0,
        }
    }

    /// (ts_ns, caplen, wirelen) of a header (`bytes` is exactly `len()` long).
    fn read(&self, bytes: &[u8], ns_per_unit: i64) -> (i64, u32, u32) {
        let l = self.long_bytes;
        let sec = self.long(&bytes[..l]);
        let frac = self.long(&bytes[l..2 * l]);
        let u32_at = |at: usize| {
            let mut word = [0u8; 4];
            word.copy_from_slice(&bytes[at..at + 4]);
            u32::from_ne_bytes(word)
        };
        // wrapping: no timestamp libpcap gives comes near; a corrupt one must not panic
        let ts = sec
            .wrapping_mul(1_000_000_000)
            .wrapping_add(frac.wrapping_mul(ns_per_unit));
        (ts, u32_at(2 * l), u32_at(2 * l + 4))
    }
}

/// One batch of the records of several reads, in the order given; with `merge` (several
/// interfaces) sorted by timestamp, stable (equal timestamps keep their arrival order), as
/// tcptrace/sources/live.py merged them. A record that claims more bytes than follow is an
/// error (the capture loop never writes one).
pub fn batch_of(reads: &[Records<'_>], header: PktHdr, merge: bool) -> Result<FrameBatch, String> {
    let total: usize = reads.iter().map(|r| r.bytes.len()).sum();
    let mut data = Vec::with_capacity(total);
    let mut frames = Vec::new();
    let hlen = header.size();
    for read in reads {
        let mut rest = read.bytes;
        while !rest.is_empty() {
            let (head, after) = rest
                .split_at_checked(hlen)
                .ok_or("a frame record shorter than its header")?;
            let (ts_ns, caplen, wirelen) = header.read(head, read.ns_per_unit);
            let (bytes, after) = after
                .split_at_checked(caplen as usize)
                .ok_or("a frame record shorter than its caplen")?;
            frames.push(Frame {
                ts_ns,
                offset: data.len(),
                caplen,
                wirelen,
                linktype: read.linktype,
            });
            data.extend_from_slice(bytes);
            rest = after;
        }
    }
    if merge {
        frames.sort_by_key(|f| f.ts_ns); // stable
    }
    Ok(FrameBatch {
        data: Arc::new(data),
        frames,
        ..FrameBatch::default()
    })
}

/// The records of `batch` in this layout (tests and the fuzzer build their input so).
pub fn records_of(batch: &FrameBatch, header: PktHdr, ns_per_unit: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(batch.data.len() + batch.len() * header.size());
    let long = |out: &mut Vec<u8>, v: i64| {
        if header.long_bytes == 8 {
            out.extend_from_slice(&v.to_ne_bytes());
        } else {
            out.extend_from_slice(&(v as i32).to_ne_bytes());
        }
    };
    let unit = ns_per_unit.max(1);
    for (i, f) in batch.frames.iter().enumerate() {
        long(&mut out, f.ts_ns.div_euclid(1_000_000_000));
        long(&mut out, f.ts_ns.rem_euclid(1_000_000_000) / unit);
        out.extend_from_slice(&f.caplen.to_ne_bytes());
        out.extend_from_slice(&f.wirelen.to_ne_bytes());
        out.extend_from_slice(batch.bytes(i));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(ts_ns: i64, bytes: &[u8], linktype: u32) -> FrameBatch {
        FrameBatch {
            data: Arc::new(bytes.to_vec()),
            frames: vec![Frame {
                ts_ns,
                offset: 0,
                caplen: bytes.len() as u32,
                wirelen: bytes.len() as u32 + 10,
                linktype,
            }],
            ..FrameBatch::default()
        }
    }

    #[test]
    fn records_round_trip_in_both_layouts() {
        for long in [4, 8] {
            let header = PktHdr::new(long).unwrap();
            let b = one(1_700_000_000_123_456_789, b"abcdef", 1);
            let raw = records_of(&b, header, 1);
            assert_eq!(raw.len(), header.size() + 6);
            let reads = [Records {
                bytes: &raw,
                linktype: 1,
                ns_per_unit: 1,
            }];
            let back = batch_of(&reads, header, false).unwrap();
            assert_eq!(back.frames, b.frames);
            assert_eq!(back.bytes(0), b"abcdef");
        }
    }

    #[test]
    fn microsecond_handles_scale_the_fraction() {
        let header = PktHdr::new(8).unwrap();
        let raw = records_of(&one(5_000_123_000, b"x", 1), header, 1000);
        let reads = [Records {
            bytes: &raw,
            linktype: 1,
            ns_per_unit: 1000,
        }];
        assert_eq!(
            batch_of(&reads, header, false).unwrap().frames[0].ts_ns,
            5_000_123_000
        );
    }

    #[test]
    fn merge_orders_by_time_and_keeps_ties_in_arrival_order() {
        let header = PktHdr::new(8).unwrap();
        let a = [
            records_of(&one(30, b"a1", 1), header, 1),
            records_of(&one(10, b"a2", 1), header, 1),
        ]
        .concat();
        let b = records_of(&one(10, b"b1", 113), header, 1);
        let reads = [
            Records {
                bytes: &a,
                linktype: 1,
                ns_per_unit: 1,
            },
            Records {
                bytes: &b,
                linktype: 113,
                ns_per_unit: 1,
            },
        ];
        let merged = batch_of(&reads, header, true).unwrap();
        let got: Vec<(&[u8], u32)> = (0..3)
            .map(|i| (merged.bytes(i), merged.frames[i].linktype))
            .collect();
        assert_eq!(got, [(&b"a2"[..], 1), (&b"b1"[..], 113), (&b"a1"[..], 1)]);
    }

    #[test]
    fn short_records_are_errors_not_panics() {
        let header = PktHdr::new(8).unwrap();
        let raw = records_of(&one(1, b"abcdef", 1), header, 1);
        for cut in 1..raw.len() {
            let reads = [Records {
                bytes: &raw[..cut],
                linktype: 1,
                ns_per_unit: 1,
            }];
            assert!(batch_of(&reads, header, false).is_err(), "cut at {cut}");
        }
        assert!(PktHdr::new(2).is_err());
    }
}
