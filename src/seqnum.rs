//! Sequence-number arithmetic modulo 2^32 (RFC 9293 section 3.4).

/// `a - b` as a signed distance in sequence space: in [-2^31, 2^31).
#[inline]
pub fn seq_diff(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

/// `a + n` modulo 2^32 (`n` may be negative).
#[inline]
pub fn seq_add(a: u32, n: i64) -> u32 {
    (i64::from(a).wrapping_add(n) & 0xFFFF_FFFF) as u32
}

/// `0 < a - b < 2^31`: `a` lies strictly after `b` (the test the segment path writes
/// inline as `0 < (a - b) & MASK < HALF`).
#[inline]
pub fn seq_after(a: u32, b: u32) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 1 << 31
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_signed_and_wrap() {
        assert_eq!(seq_diff(5, 3), 2);
        assert_eq!(seq_diff(3, 5), -2);
        assert_eq!(seq_diff(2, 0xFFFF_FFFE), 4);
        assert_eq!(seq_diff(0xFFFF_FFFE, 2), -4);
        // exactly half way counts as behind, as Python's `d - MOD if d >= HALF`
        assert_eq!(seq_diff(1 << 31, 0), -(1i64 << 31));
        assert_eq!(seq_diff((1 << 31) - 1, 0), (1i64 << 31) - 1);
    }

    #[test]
    fn addition_wraps_both_ways() {
        assert_eq!(seq_add(0xFFFF_FFFF, 1), 0);
        assert_eq!(seq_add(0, -1), 0xFFFF_FFFF);
        assert_eq!(seq_add(10, 5), 15);
    }

    #[test]
    fn after_is_strict_and_half_open() {
        assert!(seq_after(1, 0));
        assert!(!seq_after(0, 0));
        assert!(seq_after(0, 0xFFFF_FFFF));
        assert!(!seq_after(1 << 31, 0));
        assert!(seq_after((1 << 31) - 1, 0));
    }
}
