//! Floats as text, three ways: orjson's (jsonl and json records), Python's `repr()` (csv
//! cells) and `json.dumps`'s (lists inside csv cells). All three print the shortest digits
//! that round-trip (ryu's); they differ only in where exponent notation begins, how the
//! exponent is written and what non-finite values become. ryu's own text already has
//! orjson's notation (fixed for decimal exponents -5..16), so it is reused; only repr()'s
//! exponent -5 (`1e-05`, not `0.00001`) is rebuilt from the digits.

/// The shortest round-trip decimal of a finite, non-zero float: `0.d1 d2 ... dn` shifted so
/// that the value is `d1.d2...dn * 10^exp`.
struct Decimal {
    digits: [u8; 24],
    len: usize,
    exp: i32,
}

impl Decimal {
    fn digits(&self) -> &[u8] {
        self.digits.get(..self.len).unwrap_or(&[])
    }
}

/// Shortest digits and exponent of `|x|` (finite, non-zero), read back from ryu's text
/// (`123.45`, `0.00012`, `1e16`, `1.5e-7`, ...).
fn decompose(x: f64) -> Decimal {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(x.abs()).as_bytes();
    let (mantissa, exponent) = match text.iter().position(|&b| b == b'e') {
        Some(at) => (&text[..at], parse_exponent(&text[at + 1..])),
        None => (text, 0),
    };
    let mut all = [0u8; 24];
    let mut count = 0usize;
    let mut int_digits: Option<usize> = None;
    for &b in mantissa {
        if b == b'.' {
            int_digits = Some(count);
        } else if b.is_ascii_digit() {
            if let Some(slot) = all.get_mut(count) {
                *slot = b;
                count += 1;
            }
        }
    }
    let int_digits = int_digits.unwrap_or(count);
    let all = &all[..count];
    let first = all.iter().position(|&b| b != b'0').unwrap_or(0);
    let last = all
        .iter()
        .rposition(|&b| b != b'0')
        .map_or(first, |i| i + 1);
    let significant = all.get(first..last).unwrap_or(&[]);
    let mut digits = [0u8; 24];
    digits[..significant.len()].copy_from_slice(significant);
    Decimal {
        digits,
        len: significant.len(),
        exp: int_digits as i32 - 1 - first as i32 + exponent,
    }
}

fn parse_exponent(text: &[u8]) -> i32 {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let value = digits.iter().fold(0i32, |acc, &d| {
        acc.saturating_mul(10)
            .saturating_add(d.wrapping_sub(b'0') as i32)
    });
    if negative {
        -value
    } else {
        value
    }
}

/// `d[.ddd]e<sign><exponent>`, the exponent padded to `min_exp_digits`.
fn write_scientific(out: &mut Vec<u8>, d: &Decimal, min_exp_digits: usize) {
    let digits = d.digits();
    if let Some((first, rest)) = digits.split_first() {
        out.push(*first);
        if !rest.is_empty() {
            out.push(b'.');
            out.extend_from_slice(rest);
        }
    }
    out.push(b'e');
    out.push(if d.exp < 0 { b'-' } else { b'+' });
    let mut buffer = itoa::Buffer::new();
    let exp = buffer.format(d.exp.unsigned_abs());
    if exp.len() < min_exp_digits {
        out.resize(out.len() + (min_exp_digits - exp.len()), b'0');
    }
    out.extend_from_slice(exp.as_bytes());
}

/// The float as `repr()` writes a finite value: fixed notation for exponents in `-4..16`,
/// else exponent notation with a sign and at least two digits.
fn write_finite_repr(out: &mut Vec<u8>, x: f64) {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(x).as_bytes();
    // ryu's notation is orjson's: fixed for exponents in -5..16 (`0.00001`), else `1e16`.
    let unsigned = text.strip_prefix(b"-").unwrap_or(text);
    if unsigned.starts_with(b"0.0000") && unsigned != b"0.0" {
        // exponent -5: fixed for ryu, exponent notation for repr()
        if x.is_sign_negative() {
            out.push(b'-');
        }
        write_scientific(out, &decompose(x), 2);
    } else {
        write_ryu_exponent(out, text, 2);
    }
}

/// ryu's text with its exponent (if any) written with a sign and at least
/// `min_exp_digits` digits: `1e16` -> `1e+16`, `1e-7` -> `1e-07` (2 digits) or `1e-7`.
fn write_ryu_exponent(out: &mut Vec<u8>, text: &[u8], min_exp_digits: usize) {
    let Some(at) = text.iter().position(|&b| b == b'e') else {
        out.extend_from_slice(text);
        return;
    };
    out.extend_from_slice(&text[..=at]);
    let exponent = &text[at + 1..];
    let digits = match exponent.split_first() {
        Some((b'-', rest)) => {
            out.push(b'-');
            rest
        }
        _ => {
            out.push(b'+');
            exponent
        }
    };
    if digits.len() < min_exp_digits {
        out.resize(out.len() + (min_exp_digits - digits.len()), b'0');
    }
    out.extend_from_slice(digits);
}

/// A float as orjson writes it: `0.00001`, `1e-6`, `100.0`, `1e+16`; NaN and infinities
/// as `null`.
pub fn write_orjson(out: &mut Vec<u8>, x: f64) {
    write_orjson_reusing(out, x, &mut WholeDigits::default());
}

/// `write_orjson`, taking the whole part's digits from `whole` when it was written last
/// (and leaving this one's there): the jsonl line's timestamps share their second.
#[inline]
pub fn write_orjson_reusing(out: &mut Vec<u8>, x: f64, whole: &mut WholeDigits) {
    if let Some(n) = microsecond_decimal(x) {
        write_micros(out, x < 0.0, n, whole);
        return;
    }
    if x.is_finite() {
        let mut buffer = ryu::Buffer::new();
        let text = buffer.format_finite(x).as_bytes();
        // ryu writes an exponent only outside [1e-5, 1e16): well inside, nothing to rewrite
        // (timestamps and milliseconds, nearly every float of a record)
        if (1e-4..1e15).contains(&x.abs()) {
            out.extend_from_slice(text);
        } else {
            write_ryu_exponent(out, text, 1);
        }
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Largest magnitude whose ulp is below 1e-6 (2^32: ulp 2^-20 < 1e-6 < 2^-19).
const MICRO_GRID_MAX: f64 = 4_294_967_296.0;

/// `|x|` in millionths when x is the double nearest to a decimal with at most six fraction
/// digits (capture timestamps in seconds, rounded milliseconds: most floats of a record) and
/// 1e-5 <= |x| < 2^32. There, the decimals with six fraction digits are spaced wider than
/// x's rounding interval (ulp < 1e-6), so that decimal, trailing zeros trimmed, is the only
/// candidate and the shortest round-trip text: exactly what ryu finds and orjson prints
/// (`write_micros`). None for any other `x`.
#[inline(always)]
fn microsecond_decimal(x: f64) -> Option<u64> {
    let a = x.abs();
    if !(1e-5..MICRO_GRID_MAX).contains(&a) {
        return None;
    }
    // round half away from zero (`f64::round`, a libm call without SSE4.1) by hand: below
    // 2^53 the integer part and the fraction `t - whole` are exact
    // (signed: 0 <= t < 2^63, and x86-64 converts between doubles and i64 in one
    // instruction, u64 in several)
    let t = a * 1e6;
    let whole = t as i64;
    let n = whole + i64::from(t - whole as f64 >= 0.5);
    // n < 2^32 * 1e6 < 2^53: n and the division are exact IEEE operations, so equality
    // proves `a` is the double nearest to n / 10^6
    (n as f64 / 1e6 == a).then_some(n as u64)
}

/// `x` written by `write_micros` when `microsecond_decimal` takes it; false (nothing
/// written) otherwise.
#[cfg(test)]
fn write_microsecond_decimal(out: &mut Vec<u8>, x: f64) -> bool {
    microsecond_decimal(x)
        .map(|n| write_micros(out, x < 0.0, n, &mut WholeDigits::default()))
        .is_some()
}

/// "00", "01", ... "99": two digits per table read.
const DIGIT_PAIRS: [u8; 200] = {
    let mut pairs = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        pairs[2 * i] = b'0' + (i / 10) as u8;
        pairs[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    pairs
};

/// The two digits of `v` (< 100).
fn pair(v: u32) -> [u8; 2] {
    let i = 2 * (v as usize % 100);
    [DIGIT_PAIRS[i], DIGIT_PAIRS[i + 1]]
}

/// The digits of the last whole part `write_micros` wrote: ten digits of a timestamp's
/// second cost more than the rest of its text, and a record's timestamps share a second.
#[derive(Clone, Copy, Debug)]
pub struct WholeDigits {
    /// The whole part (u64::MAX: none yet; a whole part is below 2^32).
    whole: u64,
    /// Its digits, then filler: copied whole, cut by `len`.
    text: [u8; 16],
    len: usize,
}

impl Default for WholeDigits {
    fn default() -> Self {
        WholeDigits {
            whole: u64::MAX,
            text: [0; 16],
            len: 0,
        }
    }
}

/// The least whole part `WholeDigits` keeps: seconds since 1970 (and Zeek's 60 s timeouts
/// after them), not the milliseconds written between them, whose few digits cost little.
const REUSED_WHOLE_MIN: u64 = 1_000_000;

/// `n` millionths (n < 2^32 * 10^6) as `[-]whole.fraction`, the fraction's trailing zeros
/// trimmed (one digit at least). Built in a fixed stack buffer and appended as a whole,
/// then cut to its length: one constant-size copy instead of a `memcpy` call per part and
/// a division per trimmed zero (1.3M floats in a 1M-packet run). The whole part's digits
/// come from `last` when it holds them, and are left there.
#[inline(always)]
fn write_micros(out: &mut Vec<u8>, negative: bool, n: u64, last: &mut WholeDigits) {
    let whole = n / 1_000_000;
    let fraction = (n % 1_000_000) as u32;
    let mut text = [0u8; 24];
    let sign = usize::from(negative);
    text[0] = b'-';
    let digits = if whole == last.whole {
        text[sign..sign + 16].copy_from_slice(&last.text);
        last.len
    } else {
        let digits = whole_digits(&mut text, sign, whole as u32);
        if whole >= REUSED_WHOLE_MIN {
            // a timestamp's second; the milliseconds between them would only evict it
            last.whole = whole;
            last.text.copy_from_slice(&text[sign..sign + 16]);
            last.len = digits;
        }
        digits
    };
    let point = sign + digits;
    text[point] = b'.';
    let f = point + 1;
    text[f..f + 2].copy_from_slice(&pair(fraction / 10_000));
    text[f + 2..f + 4].copy_from_slice(&pair(fraction / 100));
    text[f + 4..f + 6].copy_from_slice(&pair(fraction));
    let mut len = f + 6;
    while len > f + 1 && text[len - 1] == b'0' {
        len -= 1;
    }
    let start = out.len();
    out.extend_from_slice(&text);
    out.truncate(start + len);
}

/// `us` microseconds as orjson writes `us_to_ms(us)` (us < 2^32 * 1000): the decimal with
/// three fraction digits, trailing zeros trimmed (one at least), as `write_micros` writes
/// millionths; false (nothing written) above the bound.
#[inline]
pub fn write_millis(out: &mut Vec<u8>, us: u64) -> bool {
    let Some((text, len)) = millis_text(us) else {
        return false;
    };
    let start = out.len();
    out.extend_from_slice(&text);
    out.truncate(start + len);
    true
}

/// `write_millis`'s text in a fixed buffer and its length, for a caller that writes it
/// more than once; None above the bound.
#[inline]
pub fn millis_text(us: u64) -> Option<([u8; 24], usize)> {
    if us >= MILLIS_MAX_US {
        return None;
    }
    let (whole, fraction) = ((us / 1000) as u32, (us % 1000) as u32);
    let mut text = [0u8; 24];
    let point = whole_digits(&mut text, 0, whole);
    text[point] = b'.';
    text[point + 1] = b'0' + (fraction / 100) as u8;
    text[point + 2..point + 4].copy_from_slice(&pair(fraction));
    let len = point
        + if fraction % 100 == 0 {
            2
        } else if fraction % 10 == 0 {
            3
        } else {
            4
        };
    Some((text, len))
}

/// The bound of `write_millis`: whole milliseconds below 2^32.
const MILLIS_MAX_US: u64 = (1 << 32) * 1000;

/// The digits of `whole` at `text[at..]` (at <= 1): how many (at most 10).
#[inline(always)]
fn whole_digits(text: &mut [u8; 24], at: usize, whole: u32) -> usize {
    let digits = whole.checked_ilog10().unwrap_or(0) as usize + 1;
    let mut end = at + digits;
    let mut v = whole;
    while v >= 100 {
        end -= 2;
        text[end..end + 2].copy_from_slice(&pair(v));
        v /= 100;
    }
    if v >= 10 {
        text[end - 2..end].copy_from_slice(&pair(v));
    } else {
        text[end - 1] = b'0' + v as u8;
    }
    digits
}

/// A float as Python's `repr()` writes it: `0.0001`, `1e-05`, `100.0`, `1e+16`, `inf`,
/// `nan`.
pub fn write_repr(out: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        write_finite_repr(out, x);
    } else if x.is_nan() {
        out.extend_from_slice(b"nan");
    } else if x > 0.0 {
        out.extend_from_slice(b"inf");
    } else {
        out.extend_from_slice(b"-inf");
    }
}

/// A float as Python's `json.dumps` writes it: `repr()`, but `NaN`, `Infinity`,
/// `-Infinity`.
pub fn write_json_dumps(out: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        write_finite_repr(out, x);
    } else if x.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if x > 0.0 {
        out.extend_from_slice(b"Infinity");
    } else {
        out.extend_from_slice(b"-Infinity");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ryu's text rewritten as orjson writes it: the reference for the decimal fast path.
    fn by_ryu(x: f64) -> String {
        let mut out = Vec::new();
        let text = ryu::Buffer::new().format_finite(x).to_string();
        if (1e-4..1e15).contains(&x.abs()) {
            out.extend_from_slice(text.as_bytes());
        } else {
            write_ryu_exponent(&mut out, text.as_bytes(), 1);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn microsecond_decimals_have_every_digit_in_place() {
        for (x, text) in [
            (0.5, "0.5"),
            (7.0, "7.0"),
            (-3.25, "-3.25"),
            (10.000001, "10.000001"),
            (99.09, "99.09"),
            (100.1, "100.1"),
            (-0.00001, "-0.00001"),
            (1_700_000_000.120_3, "1700000000.1203"),
            (4_294_967_295.999_999, "4294967295.999999"),
        ] {
            let mut out = b"x".to_vec();
            assert!(write_microsecond_decimal(&mut out, x), "{x}");
            assert_eq!(String::from_utf8(out).unwrap(), format!("x{text}"));
        }
    }

    #[test]
    fn microsecond_decimals_are_written_as_ryu_would() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut fast = 0;
        // one line's digits reused over all values (timestamps of one second in a row too)
        let mut last = WholeDigits::default();
        for i in 0..400_000u64 {
            let r = next();
            let x = match i % 6 {
                // epoch timestamps on the microsecond grid, as computed from nanoseconds
                0 => {
                    crate::model::ns_to_s(1_600_000_000_000_000_000 + (r % (1 << 50)) as i64 * 1000)
                }
                // rounded milliseconds
                1 => crate::model::ns_to_ms((r % 10_000_000_000_000) as i64),
                // any microsecond value, and its neighbours one ulp away
                2 => (r % 4_294_967_296_000_000) as f64 / 1e6,
                3 => ((r % 4_294_967_296_000_000) as f64 / 1e6).next_up(),
                // near the bounds, negative values, and arbitrary doubles
                4 => -(((r % 20_000) as f64) / 1e6 + (r % 3) as f64 * 4_294_967_295.0),
                _ => f64::from_bits(r),
            };
            if !x.is_finite() {
                continue;
            }
            let mut out = Vec::new();
            if write_microsecond_decimal(&mut out, x) {
                fast += 1;
                assert_eq!(String::from_utf8(out).unwrap(), by_ryu(x), "{x:e}");
            }
            assert_eq!(orjson(x), by_ryu(x), "{x:e}");
            for y in [x, x + 0.25, x] {
                let mut reused = Vec::new();
                write_orjson_reusing(&mut reused, y, &mut last);
                assert_eq!(String::from_utf8(reused).unwrap(), by_ryu(y), "{y:e}");
            }
        }
        assert!(fast > 200_000, "{fast}");
        for x in [
            1e-5,
            0.00001,
            0.001,
            100.0,
            4_294_967_295.999_999,
            1_795_317_888.747_063,
        ] {
            assert_eq!(orjson(x), by_ryu(x));
        }
    }

    #[test]
    fn whole_digits_reused_only_for_the_same_whole_part() {
        let values = [
            1_796_615_940.374_411,
            1_796_615_940.374_436,
            1_796_615_940.5,
            -1_796_615_940.25,
            1_796_616_000.679_623,
            1_796_615_940.0,
            0.025,
            305.212,
            5.0,
            12.5,
            f64::NAN,
            1e-7,
            1_796_615_940.000_001,
            99.5,
            99.0,
            -99.125,
        ];
        let mut last = WholeDigits::default();
        let mut reused = Vec::new();
        for x in values {
            write_orjson_reusing(&mut reused, x, &mut last);
            reused.push(b' ');
        }
        let expected: Vec<String> = values.iter().map(|&x| orjson(x)).collect();
        assert_eq!(String::from_utf8(reused).unwrap(), expected.join(" ") + " ");
        assert_eq!(
            expected[..4],
            [
                "1796615940.374411",
                "1796615940.374436",
                "1796615940.5",
                "-1796615940.25"
            ]
        );
    }

    fn orjson(x: f64) -> String {
        let mut out = Vec::new();
        write_orjson(&mut out, x);
        String::from_utf8(out).unwrap()
    }

    fn repr(x: f64) -> String {
        let mut out = Vec::new();
        write_repr(&mut out, x);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn notation_boundaries() {
        assert_eq!(orjson(1e-5), "0.00001");
        assert_eq!(repr(1e-5), "1e-05");
        assert_eq!(orjson(1e-6), "1e-6");
        assert_eq!(repr(1e-4), "0.0001");
        assert_eq!(orjson(1e16), "1e+16");
        assert_eq!(repr(1e16), "1e+16");
        assert_eq!(orjson(1e15), "1000000000000000.0");
        assert_eq!(repr(9999999999999998.0), "9999999999999998.0");
        assert_eq!(orjson(100.0), "100.0");
        assert_eq!(orjson(-0.0), "-0.0");
        assert_eq!(repr(1.5e300), "1.5e+300");
        assert_eq!(repr(5e-324), "5e-324");
        assert_eq!(orjson(f64::NAN), "null");
        assert_eq!(repr(f64::NEG_INFINITY), "-inf");
    }

    /// Lines of `bits orjson repr json.dumps`, written by testdata/gen_floats.py.
    fn check_cases(text: &str) -> usize {
        let mut checked = 0;
        for line in text.lines() {
            let parts: Vec<&str> = line.split(' ').collect();
            let x = f64::from_bits(u64::from_str_radix(parts[0], 16).unwrap());
            let mut out = Vec::new();
            write_orjson(&mut out, x);
            assert_eq!(
                std::str::from_utf8(&out).unwrap(),
                parts[1],
                "orjson {line}"
            );
            out.clear();
            write_repr(&mut out, x);
            assert_eq!(std::str::from_utf8(&out).unwrap(), parts[2], "repr {line}");
            out.clear();
            write_json_dumps(&mut out, x);
            assert_eq!(
                std::str::from_utf8(&out).unwrap(),
                parts[3],
                "json.dumps {line}"
            );
            checked += 1;
        }
        checked
    }

    #[test]
    fn matches_python_on_fixture() {
        assert_eq!(check_cases(include_str!("testdata/floats.txt")), 600);
    }

    /// A larger differential run: `python gen_floats.py 200000 2 > FILE` then
    /// `WRITERS_FLOAT_CASES=FILE cargo test -- --ignored`.
    #[test]
    #[ignore]
    fn matches_python_on_many_cases() {
        let path = std::env::var("WRITERS_FLOAT_CASES").expect("WRITERS_FLOAT_CASES");
        let text = std::fs::read_to_string(path).unwrap();
        assert!(check_cases(&text) > 0);
    }
}
