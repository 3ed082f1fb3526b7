//! One side's RTT samples, bounded: exact up to `EXACT` samples, then a log-linear
//! histogram whose percentiles are within `1 / 2^(SUB_BITS + 1)` (3.1 %) of the exact ones.
//! The maximum and the count stay exact.

use crate::model::{round3, Rtt};

/// Samples kept exactly (microseconds, 4 bytes each): 1 KiB a side at most.
pub const EXACT: usize = 256;

/// Sub-buckets per power of two: 2^4 = 16. A bucket [lo, lo + w) above 2^(SUB_BITS + 1)
/// has lo >= 16 w, so its midpoint is within w / 2 <= lo / 32 of any value in it.
const SUB_BITS: u32 = 4;
const SUB: u32 = 1 << SUB_BITS;
/// Values below 2 * SUB have a bucket each; above, `SUB` buckets per power of two up to
/// 2^32 microseconds.
const BUCKETS: usize = ((32 - SUB_BITS) * SUB + SUB) as usize;

/// The samples of one side, in microseconds (the resolution of the record's milliseconds).
#[derive(Debug, Default)]
pub struct Samples {
    count: u64,
    max_us: u32,
    store: Store,
}

#[derive(Debug)]
enum Store {
    Exact(Vec<u32>),
    Histogram(Box<[u32; BUCKETS]>),
}

impl Default for Store {
    fn default() -> Self {
        Store::Exact(Vec::new())
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

impl Samples {
    /// One sample of `ns` nanoseconds (rounded to microseconds; negative ones are not
    /// taken: the connection's clock never runs back).
    pub fn add(&mut self, ns: i64) {
        let Ok(ns) = u64::try_from(ns) else {
            return;
        };
        let us = u32::try_from(ns.saturating_add(500) / 1000).unwrap_or(u32::MAX);
        self.count += 1;
        self.max_us = self.max_us.max(us);
        match &mut self.store {
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

    /// The nearest-rank percentile `p` (the summary's rule: the value at rank
    /// ceil(p / 100 * n), at least 1), in microseconds.
    fn percentile(&self, p: u64) -> Option<u32> {
        if self.count == 0 {
            return None;
        }
        let rank = (p * self.count).div_ceil(100).max(1);
        match &self.store {
            Store::Exact(values) => {
                let mut ordered = values.clone();
                ordered.sort_unstable();
                ordered.get(rank as usize - 1).copied()
            }
            Store::Histogram(counts) => {
                let mut seen = 0u64;
                let index = counts.iter().position(|&n| {
                    seen += u64::from(n);
                    seen >= rank
                })?;
                Some(midpoint(index).min(self.max_us))
            }
        }
    }

    /// The record's part: count, p50, p90 and maximum in milliseconds.
    pub fn summary(&self) -> Rtt {
        let ms = |us: u32| round3(f64::from(us) / 1000.0);
        Rtt {
            samples: self.count,
            p50_ms: self.percentile(50).map(ms),
            p90_ms: self.percentile(90).map(ms),
            max_ms: (self.count > 0).then(|| ms(self.max_us)),
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
        for ms in [5, 1, 4, 2, 3] {
            s.add(ms * 1_000_000);
        }
        let r = s.summary();
        assert_eq!(r.samples, 5);
        assert_eq!(r.p50_ms, Some(3.0)); // rank ceil(2.5) = 3
        assert_eq!(r.p90_ms, Some(5.0)); // rank ceil(4.5) = 5
        assert_eq!(r.max_ms, Some(5.0));
        s.add(1_234_567); // rounded to the microsecond
        assert_eq!(s.summary().max_ms, Some(5.0));
        let mut t = Samples::default();
        t.add(1_234_567);
        t.add(-1);
        assert_eq!(t.summary().p50_ms, Some(1.235));
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
        let r = s.summary();
        assert_eq!(r.samples, 1000);
        assert_eq!(r.max_ms, Some(1000.0));
        let p50 = r.p50_ms.unwrap();
        let p90 = r.p90_ms.unwrap();
        assert!((p50 - 500.0).abs() <= 500.0 / 32.0, "{p50}");
        assert!((p90 - 900.0).abs() <= 900.0 / 32.0, "{p90}");
        // the store is bounded: the histogram replaced the exact values
        for _ in 0..100_000 {
            s.add(7_000_000);
        }
        assert_eq!(s.summary().samples, 101_000);
        assert_eq!(s.summary().p50_ms, Some(7.04)); // 7000 us: bucket [6912, 7168)
    }
}
