//! Typed values of the query engine: exact fixed-point decimals ([`Fixed`]), the borrowed value
//! of one field ([`Val`]), its owned form, the byte encoding used for group keys and distinct
//! sets, and the JSON text of every type.
//!
//! Field text is classified with the profile's scanner (`profile::classify`), so a value parses
//! here exactly when the profile counts it for that type; decimals are then read again from
//! their text into an `i128` mantissa and a scale, never through `f64`.
//!
//! Not here: nulls (a null never becomes a [`Val`] other than `Null`), aggregation.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::doc::ValueType;
use crate::profile::classify::{civil_from_days, classify, Class};

/// Most significant digits a [`Fixed`] carries (i128 holds 38 full digits).
pub const MAX_DIGITS: u32 = 38;

/// An exact decimal `m / 10^s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Fixed {
    /// The mantissa.
    pub m: i128,
    /// The scale (fraction digits).
    pub s: u8,
}

/// Powers of ten that fit an i128.
pub(crate) fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

impl Fixed {
    /// Zero at scale 0.
    pub const ZERO: Fixed = Fixed { m: 0, s: 0 };

    /// The value at scale `s` (>= self.s), or `None` on overflow.
    #[inline]
    pub fn rescale(self, s: u8) -> Option<Fixed> {
        if s == self.s {
            return Some(self);
        }
        let f = pow10(u32::from(s - self.s))?;
        Some(Fixed {
            m: self.m.checked_mul(f)?,
            s,
        })
    }

    /// Exact sum, at the larger scale; `None` on overflow.
    #[inline]
    pub fn checked_add(self, o: Fixed) -> Option<Fixed> {
        if self.s == o.s {
            return Some(Fixed {
                m: self.m.checked_add(o.m)?,
                s: self.s,
            });
        }
        let s = self.s.max(o.s);
        let a = self.rescale(s)?;
        let b = o.rescale(s)?;
        Some(Fixed {
            m: a.m.checked_add(b.m)?,
            s,
        })
    }

    /// Exact product; `None` on overflow.
    #[inline]
    pub fn checked_mul(self, o: Fixed) -> Option<Fixed> {
        Some(Fixed {
            m: self.m.checked_mul(o.m)?,
            s: self
                .s
                .checked_add(o.s)
                .filter(|&s| u32::from(s) <= MAX_DIGITS)?,
        })
    }

    /// The same value with no trailing fraction zeros (the canonical form: equal values have
    /// equal canonical forms, so they hash and encode alike).
    pub fn normalised(mut self) -> Fixed {
        while self.s > 0 && self.m % 10 == 0 {
            self.m /= 10;
            self.s -= 1;
        }
        if self.m == 0 {
            self.s = 0;
        }
        self
    }

    /// The nearest f64 (for stddev, corr and quantiles).
    pub fn to_f64(self) -> f64 {
        self.m as f64 / 10f64.powi(i32::from(self.s))
    }

    /// `self / n` rounded half-even to `digits` fraction digits; `None` on overflow.
    pub fn div_round(self, n: u64, digits: u8) -> Option<Fixed> {
        let n = i128::from(n);
        if n == 0 {
            return None;
        }
        // q = m * 10^(digits - s) / n, with the scale difference applied first.
        let (num, den) = if digits >= self.s {
            (self.m.checked_mul(pow10(u32::from(digits - self.s))?)?, n)
        } else {
            (self.m, n.checked_mul(pow10(u32::from(self.s - digits))?)?)
        };
        let q = num / den;
        let r = num % den;
        let twice = r.unsigned_abs() * 2;
        let den_abs = den.unsigned_abs();
        let away = match twice.cmp(&den_abs) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => q % 2 != 0,
        };
        let q = if away {
            if num < 0 {
                q - 1
            } else {
                q + 1
            }
        } else {
            q
        };
        Some(Fixed { m: q, s: digits })
    }

    /// Exact comparison.
    pub fn cmp_exact(self, o: Fixed) -> Ordering {
        let s = self.s.max(o.s);
        match (self.rescale(s), o.rescale(s)) {
            (Some(a), Some(b)) => a.m.cmp(&b.m),
            // Only reachable near the i128 limit; the f64 order is right there.
            _ => self
                .to_f64()
                .partial_cmp(&o.to_f64())
                .unwrap_or(Ordering::Equal),
        }
    }

    /// The exact decimal text, canonical (no trailing fraction zeros).
    pub fn text(self) -> String {
        let f = self.normalised();
        let digits = f.m.unsigned_abs().to_string();
        let s = usize::from(f.s);
        let sign = if f.m < 0 { "-" } else { "" };
        if s == 0 {
            return format!("{sign}{digits}");
        }
        let padded = if digits.len() <= s {
            format!("{}{digits}", "0".repeat(s + 1 - digits.len()))
        } else {
            digits
        };
        let (i, fr) = padded.split_at(padded.len() - s);
        format!("{sign}{i}.{fr}")
    }

    /// Parses the decimal text the profile accepts (`[+-]?digits?.digits?([eE][+-]?digits)?`);
    /// `None` when it is not one or needs more than [`MAX_DIGITS`] digits.
    pub fn parse(t: &str) -> Option<Fixed> {
        let b = t.as_bytes();
        let mut i = 0;
        let neg = match b.first()? {
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
        // The profile's rule: no leading zero in an integer part of two or more digits
        // (`007` and `00.5` are identifiers, not numbers).
        let int_len = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if int_len > 1 && b[i] == b'0' {
            return None;
        }
        let mut m: i128 = 0;
        let mut digits = 0u32;
        let mut scale: i32 = 0;
        let mut seen_point = false;
        let mut any = false;
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_digit() {
                any = true;
                if m != 0 || c != b'0' {
                    digits += 1;
                }
                if digits > MAX_DIGITS {
                    return None;
                }
                m = m * 10 + i128::from(c - b'0');
                if seen_point {
                    scale += 1;
                }
            } else if c == b'.' && !seen_point {
                seen_point = true;
            } else {
                break;
            }
            i += 1;
        }
        if !any {
            return None;
        }
        if i < b.len() {
            if b[i] | 0x20 != b'e' {
                return None;
            }
            let e: i32 = t.get(i + 1..)?.parse().ok()?;
            scale = scale.checked_sub(e)?;
        }
        if scale < 0 {
            m = m.checked_mul(pow10(scale.unsigned_abs())?)?;
            scale = 0;
        }
        if scale > MAX_DIGITS as i32 {
            return None;
        }
        Some(
            Fixed {
                m: if neg { -m } else { m },
                s: scale as u8,
            }
            .normalised(),
        )
    }
}

/// One field's typed value, borrowed from the record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val<'a> {
    Null,
    Int(i64),
    Dec(Fixed),
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i32),
    /// Seconds since the epoch (UTC) and nanoseconds.
    Ts(i64, u32),
    Str(&'a str),
}

/// The null spellings (besides the empty string), as in the profile's defaults.
pub use crate::profile::DEFAULT_NULL_TOKENS;

/// True for the texts read as null: the empty string and [`DEFAULT_NULL_TOKENS`].
#[inline]
pub fn is_null(t: &str) -> bool {
    // Every default token starts with one of these bytes: most values leave at one compare.
    match t.as_bytes().first() {
        None => true,
        Some(b'N' | b'n' | b'<' | b'#') => t.len() <= 4 && DEFAULT_NULL_TOKENS.contains(&t),
        Some(_) => false,
    }
}

/// Reads a non-null field as `ty`; `None` when the text does not parse as it (unparsed).
#[inline]
pub fn parse_as(ty: ValueType, t: &str) -> Option<Val<'_>> {
    match ty {
        ValueType::String => Some(Val::Str(t)),
        ValueType::Integer => match classify(t) {
            Class::Int(i) => Some(Val::Int(i)),
            _ => None,
        },
        // The same spellings as the profile's decimal class (tested against it), read
        // exactly in one pass.
        ValueType::Decimal => Fixed::parse(t).map(Val::Dec),
        ValueType::Boolean => match classify(t) {
            Class::Bool(b) => Some(Val::Bool(b)),
            _ => None,
        },
        ValueType::Date => match classify(t) {
            Class::Date(d) => Some(Val::Date(d)),
            _ => None,
        },
        ValueType::Timestamp => match classify(t) {
            Class::Date(d) => Some(Val::Ts(i64::from(d) * 86_400, 0)),
            Class::Timestamp(s, n) => Some(Val::Ts(s, n)),
            _ => None,
        },
    }
}

impl Val<'_> {
    /// The numeric value as a [`Fixed`] (integers and decimals).
    #[inline]
    pub fn fixed(&self) -> Option<Fixed> {
        match *self {
            Val::Int(i) => Some(Fixed {
                m: i128::from(i),
                s: 0,
            }),
            Val::Dec(f) => Some(f),
            _ => None,
        }
    }

    /// Appends the value's encoding: a tag byte, then a fixed-size payload (a length-prefixed
    /// one for strings), so that equal values, and only they, encode alike.
    #[inline]
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Val::Null => out.push(0),
            Val::Int(i) => {
                out.push(1);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Val::Dec(f) => {
                let f = f.normalised();
                out.push(2);
                out.extend_from_slice(&f.m.to_le_bytes());
                out.push(f.s);
            }
            Val::Bool(b) => out.extend_from_slice(&[3, u8::from(b)]),
            Val::Date(d) => {
                out.push(4);
                out.extend_from_slice(&d.to_le_bytes());
            }
            Val::Ts(s, n) => {
                out.push(5);
                out.extend_from_slice(&s.to_le_bytes());
                out.extend_from_slice(&n.to_le_bytes());
            }
            Val::Str(t) => {
                out.push(6);
                out.extend_from_slice(&(t.len() as u32).to_le_bytes());
                out.extend_from_slice(t.as_bytes());
            }
        }
    }

    /// Total order within one type (nulls first; the caller puts them last where it must).
    pub fn cmp_same(&self, o: &Val<'_>) -> Ordering {
        match (self, o) {
            (Val::Null, Val::Null) => Ordering::Equal,
            (Val::Null, _) => Ordering::Less,
            (_, Val::Null) => Ordering::Greater,
            (Val::Int(a), Val::Int(b)) => a.cmp(b),
            (Val::Bool(a), Val::Bool(b)) => a.cmp(b),
            (Val::Date(a), Val::Date(b)) => a.cmp(b),
            (Val::Ts(a, x), Val::Ts(b, y)) => (a, x).cmp(&(b, y)),
            (Val::Str(a), Val::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
            (a, b) => match (a.fixed(), b.fixed()) {
                (Some(x), Some(y)) => x.cmp_exact(y),
                _ => Ordering::Equal,
            },
        }
    }

    /// The owned copy.
    pub fn to_owned_val(self) -> OwnedVal {
        match self {
            Val::Null => OwnedVal::Null,
            Val::Int(i) => OwnedVal::Int(i),
            Val::Dec(f) => OwnedVal::Dec(f.normalised()),
            Val::Bool(b) => OwnedVal::Bool(b),
            Val::Date(d) => OwnedVal::Date(d),
            Val::Ts(s, n) => OwnedVal::Ts(s, n),
            Val::Str(t) => OwnedVal::Str(t.to_string()),
        }
    }

    /// The result JSON: integers and booleans as JSON values, decimals as exact strings,
    /// dates `YYYY-MM-DD`, timestamps `YYYY-MM-DDTHH:MM:SS[.fffffffff]Z`.
    pub fn to_json(self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Val::Null => J::Null,
            Val::Int(i) => J::from(i),
            Val::Dec(f) => J::String(f.text()),
            Val::Bool(b) => J::Bool(b),
            Val::Date(d) => J::String(civil_from_days(i64::from(d))),
            Val::Ts(s, n) => J::String(timestamp_text(s, n)),
            Val::Str(t) => J::String(t.to_string()),
        }
    }
}

/// The owned form of a [`Val`], kept in aggregate states (min/max) and results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OwnedVal {
    Null,
    Int(i64),
    Dec(Fixed),
    Bool(bool),
    Date(i32),
    Ts(i64, u32),
    Str(String),
}

impl OwnedVal {
    /// The borrowed view.
    pub fn as_val(&self) -> Val<'_> {
        match self {
            OwnedVal::Null => Val::Null,
            OwnedVal::Int(i) => Val::Int(*i),
            OwnedVal::Dec(f) => Val::Dec(*f),
            OwnedVal::Bool(b) => Val::Bool(*b),
            OwnedVal::Date(d) => Val::Date(*d),
            OwnedVal::Ts(s, n) => Val::Ts(*s, *n),
            OwnedVal::Str(t) => Val::Str(t),
        }
    }

    /// Decodes one value written by [`Val::encode`] from the front of `b`; returns it and the
    /// bytes after it, or `None` for bytes that no `encode` wrote.
    pub fn decode(b: &[u8]) -> Option<(OwnedVal, &[u8])> {
        let (&tag, rest) = b.split_first()?;
        let take = |n: usize| (rest.len() >= n).then(|| rest.split_at(n));
        Some(match tag {
            0 => (OwnedVal::Null, rest),
            1 => {
                let (a, r) = take(8)?;
                (OwnedVal::Int(i64::from_le_bytes(a.try_into().ok()?)), r)
            }
            2 => {
                let (a, r) = take(17)?;
                let m = i128::from_le_bytes(a[..16].try_into().ok()?);
                (OwnedVal::Dec(Fixed { m, s: a[16] }), r)
            }
            3 => {
                let (a, r) = take(1)?;
                (OwnedVal::Bool(a[0] != 0), r)
            }
            4 => {
                let (a, r) = take(4)?;
                (OwnedVal::Date(i32::from_le_bytes(a.try_into().ok()?)), r)
            }
            5 => {
                let (a, r) = take(12)?;
                let s = i64::from_le_bytes(a[..8].try_into().ok()?);
                let n = u32::from_le_bytes(a[8..].try_into().ok()?);
                (OwnedVal::Ts(s, n), r)
            }
            6 => {
                let (a, r) = take(4)?;
                let n = u32::from_le_bytes(a.try_into().ok()?) as usize;
                if r.len() < n {
                    return None;
                }
                let (t, r) = r.split_at(n);
                (OwnedVal::Str(String::from_utf8(t.to_vec()).ok()?), r)
            }
            _ => return None,
        })
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, the fraction without trailing zeros.
pub fn timestamp_text(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (h, m, s) = (sod / 3600, sod / 60 % 60, sod % 60);
    let mut out = format!("{}T{h:02}:{m:02}:{s:02}", civil_from_days(days));
    if nanos > 0 {
        let f = format!("{nanos:09}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_parse_and_text() {
        for (t, want) in [
            ("12.50", "12.5"),
            ("-0.0", "0"),
            ("1e3", "1000"),
            ("1.5E-3", "0.0015"),
            (".5", "0.5"),
            ("5.", "5"),
            ("-7.10", "-7.1"),
        ] {
            assert_eq!(Fixed::parse(t).unwrap().text(), want, "{t}");
        }
        assert!(Fixed::parse("1e300").is_none());
        assert!(Fixed::parse("abc").is_none());
    }

    #[test]
    fn decimal_spellings_are_the_profile_s() {
        for t in [
            "0",
            "-0",
            "+3",
            "007",
            "00",
            "-01",
            "00.5",
            "0.5",
            "1e5",
            "1.5E-3",
            "-2.25",
            ".5",
            "5.",
            "+.5",
            "-0.0",
            ".",
            "-",
            "+",
            "1e",
            "1e+",
            "1.2.3",
            "1,000",
            " 1",
            "1 ",
            "inf",
            "NaN",
            "0x10",
            "--1",
            "e5",
            "12abc",
            "9223372036854775808",
            "1e-5",
            "0e0",
        ] {
            let profile = matches!(classify(t), Class::Int(_) | Class::Dec(_));
            assert_eq!(Fixed::parse(t).is_some(), profile, "{t:?}");
        }
    }

    #[test]
    fn null_spellings() {
        for t in DEFAULT_NULL_TOKENS.iter().chain(&[""]) {
            assert!(is_null(t), "{t:?}");
        }
        for t in ["Nulls", "none!", "0", "n", "#N/B", " "] {
            assert!(!is_null(t), "{t:?}");
        }
        let firsts: Vec<u8> = DEFAULT_NULL_TOKENS
            .iter()
            .map(|t| t.as_bytes()[0])
            .collect();
        assert!(
            firsts.iter().all(|b| b"Nn<#".contains(b)),
            "update is_null's fast path"
        );
    }

    #[test]
    fn div_round_is_half_even() {
        let f = |m, s| Fixed { m, s };
        assert_eq!(f(5, 1).div_round(1, 0).unwrap().m, 0); // 0.5 -> 0
        assert_eq!(f(15, 1).div_round(1, 0).unwrap().m, 2); // 1.5 -> 2
        assert_eq!(f(-25, 1).div_round(1, 0).unwrap().m, -2); // -2.5 -> -2
        assert_eq!(f(-35, 1).div_round(1, 0).unwrap().m, -4);
        assert_eq!(f(2, 0).div_round(3, 12).unwrap().text(), "0.666666666667");
        assert_eq!(f(-1, 0).div_round(3, 12).unwrap().text(), "-0.333333333333");
    }

    #[test]
    fn encoding_round_trips() {
        let vals = [
            Val::Null,
            Val::Int(-3),
            Val::Dec(Fixed { m: 125, s: 2 }),
            Val::Bool(true),
            Val::Date(19000),
            Val::Ts(-5, 7),
            Val::Str("a,\"b\"\n"),
        ];
        let mut buf = Vec::new();
        for v in &vals {
            v.encode(&mut buf);
        }
        let mut rest = &buf[..];
        for v in &vals {
            let (o, r) = OwnedVal::decode(rest).unwrap();
            assert_eq!(o.as_val(), *v);
            rest = r;
        }
        assert!(rest.is_empty());
        assert_eq!(
            timestamp_text(86_400 + 61, 500_000_000),
            "1970-01-02T00:01:01.5Z"
        );
    }
}
