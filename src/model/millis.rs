//! `ns_to_ms` without its two exact divisions, where they cannot change the result.
//!
//! `ns_to_ms` is Python's `round(ns / 1_000_000, 3)`: the quotient rounded to a double,
//! then that double's exact value rounded to three decimals (half to even), then the
//! nearest double to those thousandths. A record computes about ten such durations, each
//! two calls of `div_round` and the exact rounding between them (~110 instructions).

use super::NS_PER_MS;

/// Below 2^33 ms (99 days), rounding the quotient to a double first cannot move it across
/// a half microsecond (see `rounded_micros`).
const LIMIT_NS: u64 = (1 << 33) * NS_PER_MS as u64;

/// `ns_to_ms(ns)` for 0 <= ns < 2^33 ms whose nanoseconds are not exactly half a
/// microsecond past one (`ns % 1000 != 500`, so every capture timestamp in microseconds);
/// None otherwise.
///
/// With q = ns / 10^6 in [2^k, 2^(k+1)), the double x nearest to q is within 2^(k-53) of
/// it, so x * 1000 is within 1000 * 2^(k-53) < 10^-3 of ns / 1000 (k <= 32). Unless
/// ns % 1000 = 500, ns / 1000 lies at least 10^-3 from the nearest half-integer, so x * 1000
/// rounds to the same integer as ns / 1000: (ns + 500) / 1000 microseconds. The result is
/// the nearest double to that many thousandths: one IEEE division of two exact doubles
/// (both below 2^53), as `div_round` does for them.
#[inline]
pub(super) fn rounded_micros(ns: i64) -> Option<f64> {
    let ns = u64::try_from(ns).ok().filter(|&ns| ns < LIMIT_NS)?;
    if ns % 1000 == 500 {
        return None; // a tie in ns / 1000: x's own side of it decides (the exact path)
    }
    let micros = (ns + 500) / 1000; // < 2^43
    Some(micros as i64 as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::super::{div_round, round3, NS_PER_MS};
    use super::*;

    /// The exact path: `round3(div_round(ns, 10^6))`.
    fn exact(ns: i64) -> f64 {
        round3(div_round(i128::from(ns), i128::from(NS_PER_MS)))
    }

    fn check(ns: i64) {
        if let Some(fast) = rounded_micros(ns) {
            assert_eq!(fast.to_bits(), exact(ns).to_bits(), "{ns}");
        }
    }

    #[test]
    fn taken_where_it_applies_and_only_there() {
        assert_eq!(rounded_micros(0), Some(0.0));
        assert_eq!(rounded_micros(1_234_567), Some(1.235));
        assert_eq!(rounded_micros(40_492_000), Some(40.492));
        assert_eq!(rounded_micros(1_234_499), Some(1.234));
        assert_eq!(rounded_micros(1_234_501), Some(1.235));
        assert_eq!(rounded_micros(1_234_500), None); // a tie
        assert_eq!(rounded_micros(-1), None);
        assert_eq!(rounded_micros(i64::MIN), None);
        assert_eq!(rounded_micros(i64::MAX), None);
        assert_eq!(rounded_micros(LIMIT_NS as i64), None);
        assert!(rounded_micros(LIMIT_NS as i64 - 1).is_some());
    }

    #[test]
    fn matches_the_exact_path() {
        for ns in [
            0,
            1,
            499,
            501,
            999,
            1000,
            1_499_999,
            1_500_001,
            999_999_999,
            LIMIT_NS as i64 - 1,
            LIMIT_NS as i64 - 501,
            LIMIT_NS as i64 - 499,
        ] {
            check(ns);
        }
        let mut n: u64 = 5;
        for _ in 0..300_000 {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // anywhere below the limit; small durations (< 2^34 ns); whole microseconds,
            // as captures give
            check((n >> 11) as i64 % LIMIT_NS as i64);
            check((n >> 30) as i64);
            check((n >> 20) as i64 / 1000 * 1000);
            // next to a half microsecond, in every binade up to the limit
            let binade = 1i64 << (n % 53);
            let near = (binade.min(LIMIT_NS as i64) / 1000) * 1000 + 500;
            for ns in [near, near - 1, near + 1, near - 2, near + 2] {
                check(ns);
            }
        }
    }
}
