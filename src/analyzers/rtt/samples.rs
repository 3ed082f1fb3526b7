//! One side's RTT samples, bounded: exact up to `EXACT` samples, then a log-linear
//! histogram whose percentiles are within `1 / 2^(SUB_BITS + 1)` (3.1 %) of the exact ones.
//! The maximum and the count stay exact.

use crate::model::Rtt;

/// Samples kept exactly (microseconds, 4 bytes each): 1 KiB a side at most.
pub const EXACT: usize = 256;

/// Sub-buckets per power of two: 2^4 = 16. A bucket [lo, lo + w) above 2^(SUB_BITS + 1)
/// has lo >= 16 w, so its midpoint is within w / 2 <= lo / 32 of any value in it.
const SUB_BITS: u32 = 4;
const SUB: u32 = 1 << SUB_BITS;
/// Values below 2 * SUB have a bucket each; above, `SUB` buckets per power of two up to
/// 2^32 microseconds.
const BUCKETS: usize = ((32 - SUB_BITS) * SUB + SUB) as usize;

/// Samples kept in the connection's box before any allocation of their own: most
/// connections take fewer.
const INLINE: usize = 16;

/// The samples of one side, in microseconds (the resolution of the record's milliseconds).
#[derive(Debug, Default)]
pub struct Samples {
    count: u64,
    max_us: u32,
    store: Store,
}

#[derive(Debug)]
enum Store {
    /// The first `count` samples (at most `INLINE`).
    Inline([u32; INLINE]),
    Exact(Vec<u32>),
    Histogram(Box<[u32; BUCKETS]>),
}

impl Default for Store {
    fn default() -> Self {
        Store::Inline([0; INLINE])
    }
}

/// The bucket of a value: its top `SUB_BITS + 1` bits and its power of two.
fn bucket(us: u32) -> usize {
    if us < 2 * SUB {
        return us as usize;
    }
    let shift = 31 - us.leading_zeros() - SUB_BITS; // >= 1
    (shift * SUB + (us >> shift)) as usize
}

/// The midpoint of a bucket's values (the value itself below 2 * SUB).
fn midpoint(index: usize) -> u32 {
    let index = index as u32;
    if index < 2 * SUB {
        return index;
    }
    let shift = index / SUB - 1;
    let lo = (index - shift * SUB) << shift;
    lo + (1 << shift) / 2
}

/// Nearest rank (the summary's rule): the value at rank ceil(p / 100 * n), at least 1.
fn rank(p: u64, n: u64) -> u64 {
    (p * n).div_ceil(100).max(1)
}

impl Samples {
    /// One sample of `ns` nanoseconds (rounded to microseconds; negative ones are not
    /// taken: the connection's clock never runs back).
    #[inline]
    pub fn add(&mut self, ns: i64) {
        let Ok(ns) = u64::try_from(ns) else {
            return;
        };
        let us = u32::try_from(ns.saturating_add(500) / 1000).unwrap_or(u32::MAX);
        let n = self.count as usize;
        self.count += 1;
        self.max_us = self.max_us.max(us);
        match &mut self.store {
            Store::Inline(values) if n < INLINE => values[n] = us,
            Store::Inline(values) => {
                let mut all = Vec::with_capacity(4 * INLINE);
                all.extend_from_slice(values);
                all.push(us);
                self.store = Store::Exact(all);
            }
            Store::Exact(values) if values.len() < EXACT => values.push(us),
            Store::Exact(values) => {
                let mut counts = Box::new([0u32; BUCKETS]);
                for &v in values.iter().chain([&us]) {
                    counts[bucket(v)] += 1;
                }
                self.store = Store::Histogram(counts);
            }
            Store::Histogram(counts) => {
                let slot = &mut counts[bucket(us)];
                *slot = slot.saturating_add(1);
            }
        }
    }

    /// The 50th and 90th percentiles in microseconds (the exact samples get sorted).
    fn percentiles(&mut self) -> Option<(u32, u32)> {
        let n = self.count;
        if n == 1 {
            // most sides of short connections: the one sample is every percentile
            return Some((self.max_us, self.max_us));
        }
        let (r50, r90) = (rank(50, n), rank(90, n));
        let ordered = match &mut self.store {
            _ if n == 0 => return None,
            Store::Inline(values) => &mut values[..n as usize],
            Store::Exact(values) => values.as_mut_slice(),
            Store::Histogram(counts) => {
                let (mut seen, mut p50, mut p90) = (0u64, None, None);
                for (index, &c) in counts.iter().enumerate() {
                    seen += u64::from(c);
                    if p50.is_none() && seen >= r50 {
                        p50 = Some(midpoint(index).min(self.max_us));
                    }
                    if seen >= r90 {
                        p90 = Some(midpoint(index).min(self.max_us));
                        break;
                    }
                }
                return p50.zip(p90);
            }
        };
        if ordered.len() > 1 {
            ordered.sort_unstable();
        }
        let at = |r: u64| ordered.get(r as usize - 1).copied();
        at(r50).zip(at(r90))
    }

    /// The record's part: count, p50, p90 and maximum.
    pub fn summary(&mut self) -> Rtt {
        let percentiles = self.percentiles();
        Rtt {
            samples: self.count,
            p50_us: percentiles.map(|(p50, _)| p50),
            p90_us: percentiles.map(|(_, p90)| p90),
            max_us: (self.count > 0).then_some(self.max_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_midpoints_within_a_32nd() {
        let mut previous = 0;
        for us in (0..5_000u32).chain([u32::MAX / 3, u32::MAX - 1, u32::MAX]) {
            let b = bucket(us);
            assert!(b < BUCKETS && b >= previous, "{us}");
            previous = b;
            let mid = f64::from(midpoint(b));
            assert!((mid - f64::from(us)).abs() <= f64::from(us) / 32.0, "{us}");
        }
        assert_eq!(bucket(31), 31);
        assert_eq!(bucket(32), 32);
        assert_eq!(bucket(u32::MAX), BUCKETS - 1);
    }

    #[test]
    fn exact_percentiles_by_nearest_rank() {
        let mut s = Samples::default();
        assert_eq!(s.summary(), Rtt::default());
        assert!(matches!(s.store, Store::Inline(_)));
        for ms in [5, 1, 4, 2, 3] {
            s.add(ms * 1_000_000);
        }
        let r = s.summary();
        assert_eq!(r.samples, 5);
        assert_eq!(r.p50_us, Some(3000)); // rank ceil(2.5) = 3
        assert_eq!(r.p90_us, Some(5000)); // rank ceil(4.5) = 5
        assert_eq!(r.max_us, Some(5000));
        s.add(1_234_567); // rounded to the microsecond
        assert_eq!(s.summary().max_us, Some(5000));
        let mut t = Samples::default();
        t.add(1_234_567);
        t.add(-1);
        assert_eq!(t.summary().p50_us, Some(1235));
        assert_eq!(t.summary().samples, 1);
    }

    #[test]
    fn past_the_exact_bound_percentiles_stay_within_the_stated_error() {
        let mut s = Samples::default();
        // 1000 samples: 1 ms, 2 ms, ..., 1000 ms
        for ms in 1..=1000i64 {
            s.add(ms * 1_000_000);
        }
        assert!(matches!(s.store, Store::Histogram(_)));
        assert_eq!(s.count, 1000);
        let r = s.summary();
        assert_eq!(r.samples, 1000);
        assert_eq!(r.max_us, Some(1_000_000));
        let p50 = f64::from(r.p50_us.unwrap());
        let p90 = f64::from(r.p90_us.unwrap());
        assert!((p50 - 500e3).abs() <= 500e3 / 32.0, "{p50}");
        assert!((p90 - 900e3).abs() <= 900e3 / 32.0, "{p90}");
        // the store is bounded: the histogram replaced the exact values
        for _ in 0..100_000 {
            s.add(7_000_000);
        }
        assert_eq!(s.summary().samples, 101_000);
        assert_eq!(s.summary().p50_us, Some(7040)); // 7000 us: bucket [6912, 7168)
    }
}
