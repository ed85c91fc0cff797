//! Per-value type classification: a hand-written byte scanner that decides, in one pass and
//! without allocating, which candidate type a field's text belongs to and yields its typed
//! value (for min/max and the numeric statistics).
//!
//! Not here: null detection (see [`super::NullMatcher`]) and the column-level decision (the
//! narrowest type that all non-null values fit), which is made from the per-class counts.
//!
//! The accepted spellings are documented in `docs/profile.md`; in short:
//! - integer: `[+-]?digits`, no leading zero unless the number is `0` (`007` is a string,
//!   `-0` and `+3` are integers); values beyond i64 are decimals.
//! - decimal: `[+-]?digits?.digits?([eE][+-]?digits)?` with at least one digit, or an integer
//!   with an exponent (`1e5`); same leading-zero rule for the integer part; must be finite.
//! - boolean: `true` / `false`, any ASCII case.
//! - date: `YYYY-MM-DD`, a real calendar day.
//! - timestamp: a date, `T`/`t`/space, `HH:MM[:SS[.fraction(1-9 digits)]]`, then nothing
//!   (taken as UTC), `Z`/`z`, or an offset `±HH`, `±HHMM`, `±HH:MM`.

/// The most specific class of one non-null value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Class {
    Int(i64),
    Dec(f64),
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i32),
    /// Seconds since the Unix epoch (UTC) and nanoseconds.
    Timestamp(i64, u32),
    Str,
}

/// The payload-free class of a value: what the heavy-hitters table remembers about a value
/// (with its numeric value) so that a repeated value is not classified again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Int = 0,
    Dec = 1,
    True = 2,
    False = 3,
    Date = 4,
    Timestamp = 5,
    Str = 6,
}

impl Kind {
    /// Indexed by the discriminant (3 bits; the 8th entry is never produced).
    pub(crate) const BY_INDEX: [Kind; 8] = [
        Kind::Int,
        Kind::Dec,
        Kind::True,
        Kind::False,
        Kind::Date,
        Kind::Timestamp,
        Kind::Str,
        Kind::Str,
    ];
}

impl Class {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Class::Int(_) => Kind::Int,
            Class::Dec(_) => Kind::Dec,
            Class::Bool(true) => Kind::True,
            Class::Bool(false) => Kind::False,
            Class::Date(_) => Kind::Date,
            Class::Timestamp(..) => Kind::Timestamp,
            Class::Str => Kind::Str,
        }
    }

    /// The value as f64 for numeric classes (0 otherwise).
    pub(crate) fn num(&self) -> f64 {
        match *self {
            Class::Int(i) => i as f64,
            Class::Dec(x) => x,
            _ => 0.0,
        }
    }
}

/// Exact powers of ten as f64 (all exactly representable up to 1e22).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Classify one non-null value.
#[inline]
pub(crate) fn classify(s: &str) -> Class {
    let b = s.as_bytes();
    let Some(&first) = b.first() else {
        return Class::Str;
    };
    match first {
        b'0'..=b'9' => {
            if b.len() >= 10 && b[4] == b'-' {
                parse_date_or_timestamp(b)
            } else {
                parse_number(b, s)
            }
        }
        b'+' | b'-' | b'.' => parse_number(b, s),
        b't' | b'T' if b.len() == 4 && b.eq_ignore_ascii_case(b"true") => Class::Bool(true),
        b'f' | b'F' if b.len() == 5 && b.eq_ignore_ascii_case(b"false") => Class::Bool(false),
        _ => Class::Str,
    }
}

#[inline(always)]
fn parse_number(b: &[u8], s: &str) -> Class {
    let len = b.len();
    let mut i = 0;
    let neg = match b[0] {
        b'-' => {
            i = 1;
            true
        }
        b'+' => {
            i = 1;
            false
        }
        _ => false,
    };
    let int_start = i;
    let mut mant: u64 = 0;
    while i < len {
        let d = b[i].wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        // Wrapping is fine: the value is only used when the digit count proves it exact.
        mant = mant.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    let int_digits = i - int_start;
    if int_digits > 1 && b[int_start] == b'0' {
        return Class::Str; // leading zero: an identifier such as a zip code, not a number
    }
    if i == len {
        if int_digits == 0 {
            return Class::Str;
        }
        if int_digits <= 18 {
            let v = mant as i64;
            return Class::Int(if neg { -v } else { v });
        }
        return match s.parse::<i64>() {
            Ok(v) => Class::Int(v),
            Err(_) => match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Class::Dec(v),
                _ => Class::Str,
            },
        };
    }
    let mut frac_digits = 0;
    if b[i] == b'.' {
        i += 1;
        while i < len {
            let d = b[i].wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            mant = mant.wrapping_mul(10).wrapping_add(u64::from(d));
            i += 1;
            frac_digits += 1;
        }
    }
    if int_digits + frac_digits == 0 {
        return Class::Str;
    }
    let mut has_exp = false;
    if i < len && (b[i] | 0x20) == b'e' {
        has_exp = true;
        i += 1;
        if i < len && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < len && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return Class::Str;
        }
    }
    if i != len {
        return Class::Str;
    }
    if !has_exp && int_digits + frac_digits <= 15 {
        // Clinger's fast path: mantissa < 2^53 and 10^frac exact, so one correctly rounded
        // division gives exactly what `str::parse::<f64>` would.
        let v = mant as f64 / POW10[frac_digits];
        return Class::Dec(if neg { -v } else { v });
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Class::Dec(v),
        _ => Class::Str,
    }
}

#[inline]
fn d2(b: &[u8], i: usize) -> Option<u32> {
    let a = b.get(i)?.wrapping_sub(b'0');
    let c = b.get(i + 1)?.wrapping_sub(b'0');
    if a > 9 || c > 9 {
        return None;
    }
    Some(u32::from(a) * 10 + u32::from(c))
}

#[inline]
fn parse_date_or_timestamp(b: &[u8]) -> Class {
    match parse_date_or_timestamp_opt(b) {
        Some(c) => c,
        None => Class::Str,
    }
}

#[inline(always)]
fn parse_date_or_timestamp_opt(b: &[u8]) -> Option<Class> {
    let y = d2(b, 0)? * 100 + d2(b, 2)?;
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let m = d2(b, 5)?;
    let d = d2(b, 8)?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    let days = days_from_civil(i64::from(y), m, d);
    let len = b.len();
    if len == 10 {
        return Some(Class::Date(days as i32));
    }
    if !matches!(b[10], b'T' | b't' | b' ') || len < 16 || b[13] != b':' {
        return None;
    }
    let hh = d2(b, 11)?;
    let mi = d2(b, 14)?;
    if hh > 23 || mi > 59 {
        return None;
    }
    let mut i = 16;
    let mut sec = 0;
    let mut nanos = 0u32;
    if i < len && b[i] == b':' {
        sec = d2(b, i + 1)?;
        if sec > 59 {
            return None;
        }
        i += 3;
        if i < len && b[i] == b'.' {
            i += 1;
            let start = i;
            while i < len && b[i].is_ascii_digit() {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
                i += 1;
            }
            let n = i - start;
            if n == 0 || n > 9 {
                return None;
            }
            nanos *= 10u32.pow((9 - n) as u32);
        }
    }
    let mut offset: i64 = 0;
    if i < len {
        match b[i] {
            b'Z' | b'z' if i + 1 == len => {}
            sign @ (b'+' | b'-') => {
                let oh = d2(b, i + 1)?;
                let mut j = i + 3;
                let mut om = 0;
                if j < len {
                    if b[j] == b':' {
                        j += 1;
                    }
                    om = d2(b, j)?;
                    j += 2;
                }
                if j != len || oh > 23 || om > 59 {
                    return None;
                }
                offset = i64::from(oh * 3600 + om * 60);
                if sign == b'-' {
                    offset = -offset;
                }
            }
            _ => return None,
        }
    }
    let secs = days * 86_400 + i64::from(hh * 3600 + mi * 60 + sec) - offset;
    Some(Class::Timestamp(secs, nanos))
}

fn is_leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
#[inline]
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The `YYYY-MM-DD` text of a day count (inverse of [`days_from_civil`]).
pub(crate) fn civil_from_days(z: i64) -> String {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> (i64, u32) {
        match classify(s) {
            Class::Timestamp(a, b) => (a, b),
            other => panic!("{s:?} -> {other:?}"),
        }
    }

    #[test]
    fn integers() {
        assert_eq!(classify("0"), Class::Int(0));
        assert_eq!(classify("-0"), Class::Int(0));
        assert_eq!(classify("+3"), Class::Int(3));
        assert_eq!(classify("-42"), Class::Int(-42));
        assert_eq!(classify("9223372036854775807"), Class::Int(i64::MAX));
        assert_eq!(classify("-9223372036854775808"), Class::Int(i64::MIN));
        assert_eq!(
            classify("9223372036854775808"),
            Class::Dec(9_223_372_036_854_775_808.0)
        );
        assert_eq!(
            classify("123456789012345678"),
            Class::Int(123_456_789_012_345_678)
        );
    }

    #[test]
    fn leading_zeros_are_strings() {
        assert_eq!(classify("007"), Class::Str);
        assert_eq!(classify("00"), Class::Str);
        assert_eq!(classify("-01"), Class::Str);
        assert_eq!(classify("00.5"), Class::Str);
        assert_eq!(classify("0.5"), Class::Dec(0.5));
    }

    #[test]
    fn decimals() {
        assert_eq!(classify("1e5"), Class::Dec(100000.0));
        assert_eq!(classify("1.5E-3"), Class::Dec(0.0015));
        assert_eq!(classify("-2.25"), Class::Dec(-2.25));
        assert_eq!(classify(".5"), Class::Dec(0.5));
        assert_eq!(classify("5."), Class::Dec(5.0));
        assert_eq!(classify("+.5"), Class::Dec(0.5));
        assert!(matches!(classify("-0.0"), Class::Dec(v) if v == 0.0 && v.is_sign_negative()));
        assert_eq!(
            classify("123.4567890123456789"),
            Class::Dec(123.456_789_012_345_68)
        );
        for bad in [
            ".", "-", "+", "1e", "1e+", "1.2.3", "1,000", " 1", "1 ", "inf", "NaN", "1e999",
            "0x10", "--1", "e5",
        ] {
            assert_eq!(classify(bad), Class::Str, "{bad:?}");
        }
    }

    #[test]
    fn decimal_fast_path_matches_std_parse() {
        for s in [
            "0.1",
            "0.3",
            "123.45",
            "99999999.9999999",
            "-7.000001",
            "3.14159265358979",
            "0.000000000000001",
        ] {
            assert_eq!(classify(s), Class::Dec(s.parse().unwrap()), "{s}");
        }
    }

    #[test]
    fn booleans() {
        assert_eq!(classify("true"), Class::Bool(true));
        assert_eq!(classify("FALSE"), Class::Bool(false));
        assert_eq!(classify("True"), Class::Bool(true));
        for s in ["yes", "no", "t", "f", "1x", "truee"] {
            assert_eq!(classify(s), Class::Str, "{s}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(classify("1970-01-01"), Class::Date(0));
        assert_eq!(classify("2024-02-29"), Class::Date(19_782));
        assert_eq!(classify("2023-02-29"), Class::Str);
        assert_eq!(classify("1900-02-29"), Class::Str);
        assert_eq!(classify("2000-02-29"), Class::Date(11_016));
        assert_eq!(classify("2024-13-01"), Class::Str);
        assert_eq!(classify("2024-1-01"), Class::Str);
        assert_eq!(classify("2024/01/01"), Class::Str);
        assert_eq!(classify("2024-01-00"), Class::Str);
        assert_eq!(classify("1969-12-31"), Class::Date(-1));
        for days in [-719_000, -1, 0, 1, 19_782, 2_932_896] {
            let text = civil_from_days(days);
            assert_eq!(classify(&text), Class::Date(days as i32), "{text}");
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(ts("1970-01-01T00:00:00Z"), (0, 0));
        assert_eq!(ts("1970-01-01 00:00:01"), (1, 0));
        assert_eq!(ts("1970-01-01T00:01"), (60, 0));
        assert_eq!(ts("1970-01-01T01:00:00+01:00"), (0, 0));
        assert_eq!(ts("1970-01-01T01:00:00+0100"), (0, 0));
        assert_eq!(ts("1970-01-01T01:00:00+01"), (0, 0));
        assert_eq!(ts("1969-12-31T23:00:00-01:00"), (0, 0));
        assert_eq!(ts("1970-01-01T00:00:00.5Z"), (0, 500_000_000));
        assert_eq!(ts("1970-01-01T00:00:00.123456789"), (0, 123_456_789));
        assert_eq!(ts("2024-06-30t12:34:56z"), (1_719_750_896, 0));
        for bad in [
            "1970-01-01T24:00:00",
            "1970-01-01T00:60:00",
            "1970-01-01T00:00:60",
            "1970-01-01T00:00:00.",
            "1970-01-01T00:00:00.1234567890",
            "1970-01-01X00:00:00",
            "1970-01-01T00:00:00Zx",
            "1970-01-01T00:00:00+1",
            "1970-01-01T00:00:00 UTC",
            "1970-01-01T0:00",
        ] {
            assert_eq!(classify(bad), Class::Str, "{bad:?}");
        }
    }
}
