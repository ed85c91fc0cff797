//! Typed values: parsing a field as integer, decimal, boolean, date or timestamp (with a
//! compiled strftime-style format), ordering them, and writing them in canonical form.
//! No allocation when parsing; formats are compiled once.

use std::cmp::Ordering;
use std::fmt::Write as _;

use super::doc::TypeSpec;

/// A parsed value. Integers and decimals compare with each other numerically.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val {
    /// Integer.
    Int(i64),
    /// Decimal.
    Dec(f64),
    /// Boolean.
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i32),
    /// Seconds since 1970-01-01T00:00:00Z and nanoseconds.
    Ts(i64, u32),
}

impl Val {
    /// Ordering of two values of compatible types (`None` otherwise).
    #[inline(always)]
    pub fn cmp_val(&self, other: &Val) -> Option<Ordering> {
        use Val::*;
        // The common numeric cases first, inline; the rest out of line.
        match (self, other) {
            (Dec(a), Dec(b)) => a.partial_cmp(b),
            (Dec(a), Int(b)) => a.partial_cmp(&(*b as f64)),
            (Int(a), Int(b)) => Some(a.cmp(b)),
            _ => self.cmp_other(other),
        }
    }

    #[inline(never)]
    fn cmp_other(&self, other: &Val) -> Option<Ordering> {
        use Val::*;
        match (self, other) {
            (Int(a), Int(b)) => Some(a.cmp(b)),
            (Int(a), Dec(b)) => (*a as f64).partial_cmp(b),
            (Dec(a), Int(b)) => a.partial_cmp(&(*b as f64)),
            (Dec(a), Dec(b)) => a.partial_cmp(b),
            (Bool(a), Bool(b)) => Some(a.cmp(b)),
            (Date(a), Date(b)) => Some(a.cmp(b)),
            (Ts(a, x), Ts(b, y)) => Some((a, x).cmp(&(b, y))),
            (Date(a), Ts(b, y)) => Some((i64::from(*a) * 86_400, 0).cmp(&(*b, *y))),
            (Ts(a, x), Date(b)) => Some((*a, *x).cmp(&(i64::from(*b) * 86_400, 0))),
            _ => None,
        }
    }
}

/// Which family a type belongs to for comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Integer and decimal.
    Number,
    /// Boolean.
    Boolean,
    /// Date and timestamp.
    Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Lit(u8),
    Year4,
    Year2,
    Month,
    MonthName,
    Day,
    Hour,
    Minute,
    Second,
    Frac,
    Zone,
}

/// A compiled type: parses fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Parser {
    /// Integer.
    Integer,
    /// Decimal.
    Decimal,
    /// Boolean.
    Boolean,
    /// Date with a format.
    Date(Vec<FormatItem>),
    /// Timestamp with a format (`None`: ISO 8601).
    Timestamp(Option<Vec<FormatItem>>),
}

/// One element of a compiled format (opaque).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatItem(Item);

/// Compiles a strftime-style format. Errors name the bad directive.
pub fn compile_format(f: &str) -> Result<Vec<FormatItem>, String> {
    let b = f.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            out.push(FormatItem(Item::Lit(b[i])));
            i += 1;
            continue;
        }
        let Some(&d) = b.get(i + 1) else {
            return Err("the format ends with a lone `%`".into());
        };
        match d {
            b'Y' => out.push(FormatItem(Item::Year4)),
            b'y' => out.push(FormatItem(Item::Year2)),
            b'm' => out.push(FormatItem(Item::Month)),
            b'b' => out.push(FormatItem(Item::MonthName)),
            b'd' => out.push(FormatItem(Item::Day)),
            b'H' => out.push(FormatItem(Item::Hour)),
            b'M' => out.push(FormatItem(Item::Minute)),
            b'S' => out.push(FormatItem(Item::Second)),
            b'f' => out.push(FormatItem(Item::Frac)),
            b'z' => out.push(FormatItem(Item::Zone)),
            b'T' => out.extend(
                [
                    Item::Hour,
                    Item::Lit(b':'),
                    Item::Minute,
                    Item::Lit(b':'),
                    Item::Second,
                ]
                .map(FormatItem),
            ),
            b'%' => out.push(FormatItem(Item::Lit(b'%'))),
            other => {
                return Err(format!(
                    "unsupported directive `%{}` (supported: %Y %y %m %b %d %H %M %S %f %z %T %%)",
                    other as char
                ))
            }
        }
        i += 2;
    }
    Ok(out)
}

impl Parser {
    /// Compiles a type spec; the error says what is wrong with its format.
    pub fn new(spec: &TypeSpec) -> Result<Parser, String> {
        Ok(match spec {
            TypeSpec::Integer => Parser::Integer,
            TypeSpec::Decimal => Parser::Decimal,
            TypeSpec::Boolean => Parser::Boolean,
            TypeSpec::Date(f) => {
                let items = compile_format(f.format.as_deref().unwrap_or("%Y-%m-%d"))?;
                if !items
                    .iter()
                    .any(|i| i.0 == Item::Year4 || i.0 == Item::Year2)
                    || !items
                        .iter()
                        .any(|i| i.0 == Item::Month || i.0 == Item::MonthName)
                    || !items.iter().any(|i| i.0 == Item::Day)
                {
                    return Err("a date format needs a year, a month and a day".into());
                }
                Parser::Date(items)
            }
            TypeSpec::Timestamp(f) => match &f.format {
                None => Parser::Timestamp(None),
                Some(s) => {
                    let items = compile_format(s)?;
                    if !items
                        .iter()
                        .any(|i| i.0 == Item::Year4 || i.0 == Item::Year2)
                    {
                        return Err("a timestamp format needs at least a year".into());
                    }
                    Parser::Timestamp(Some(items))
                }
            },
        })
    }

    /// The comparison family.
    pub fn family(&self) -> Family {
        match self {
            Parser::Integer | Parser::Decimal => Family::Number,
            Parser::Boolean => Family::Boolean,
            Parser::Date(_) | Parser::Timestamp(_) => Family::Time,
        }
    }

    /// Parses one field (`None`: not a value of this type).
    #[inline]
    pub fn parse(&self, s: &str) -> Option<Val> {
        match self {
            Parser::Integer => parse_int(s).map(Val::Int),
            Parser::Decimal => parse_dec(s).map(Val::Dec),
            Parser::Boolean => parse_bool(s).map(Val::Bool),
            Parser::Date(items) => {
                let p = parse_with(items, s.as_bytes())?;
                Some(Val::Date(p.days()?))
            }
            Parser::Timestamp(None) => parse_iso_ts(s.as_bytes()).and_then(|p| p.ts()),
            Parser::Timestamp(Some(items)) => parse_with(items, s.as_bytes())?.ts(),
        }
    }

    /// Parses a range bound given as text: ISO first, then the type's own format.
    pub fn parse_bound(&self, s: &str) -> Option<Val> {
        match self {
            Parser::Date(_) => {
                let iso = Parser::Date(compile_format("%Y-%m-%d").expect("valid"));
                iso.parse(s).or_else(|| self.parse(s))
            }
            Parser::Timestamp(_) => Parser::Timestamp(None).parse(s).or_else(|| self.parse(s)),
            _ => self.parse(s),
        }
    }

    /// Writes the canonical form of `s` into `out`; false (and `out` untouched) if `s` does
    /// not parse.
    pub fn normalize(&self, s: &str, out: &mut String) -> bool {
        match self {
            Parser::Integer => match parse_int(s) {
                Some(v) => {
                    let _ = write!(out, "{v}");
                    true
                }
                None => false,
            },
            Parser::Decimal => normalize_decimal(s, out),
            Parser::Boolean => match parse_bool(s) {
                Some(v) => {
                    out.push_str(if v { "true" } else { "false" });
                    true
                }
                None => false,
            },
            Parser::Date(items) => match parse_with(items, s.as_bytes()) {
                Some(p) if p.days().is_some() => {
                    let _ = write!(out, "{:04}-{:02}-{:02}", p.year, p.month, p.day);
                    true
                }
                _ => false,
            },
            Parser::Timestamp(items) => {
                let p = match items {
                    None => parse_iso_ts(s.as_bytes()),
                    Some(items) => parse_with(items, s.as_bytes()),
                };
                match p {
                    Some(p) if p.ts().is_some() => {
                        let _ = write!(
                            out,
                            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                            p.year, p.month, p.day, p.hour, p.minute, p.second
                        );
                        if p.frac_digits > 0 {
                            let _ = write!(
                                out,
                                ".{:0w$}",
                                p.nanos / 10u32.pow(9 - u32::from(p.frac_digits)),
                                w = p.frac_digits as usize
                            );
                        }
                        match p.zone {
                            None => {}
                            Some(0) => out.push('Z'),
                            Some(z) => {
                                let (sign, z) = if z < 0 { ('-', -z) } else { ('+', z) };
                                let _ = write!(out, "{sign}{:02}:{:02}", z / 60, z % 60);
                            }
                        }
                        true
                    }
                    _ => false,
                }
            }
        }
    }
}

/// `[+-]?[0-9]+` within i64.
#[inline]
pub fn parse_int(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() {
        return None;
    }
    if digits.len() <= 18 {
        // At most 18 digits: below 10^18, no overflow, no checks.
        let mut m: i64 = 0;
        for &c in digits {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            m = m * 10 + i64::from(d);
        }
        return Some(if neg { -m } else { m });
    }
    // Magnitude as u64 with overflow checks; i64::MIN's magnitude is 2^63.
    let mut m: u64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        m = m.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    if neg {
        if m <= 1 << 63 {
            Some((m as i64).wrapping_neg())
        } else {
            None
        }
    } else {
        i64::try_from(m).ok()
    }
}

fn is_decimal_syntax(b: &[u8]) -> bool {
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - f;
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return false;
        }
    }
    i == b.len()
}

/// A decimal number (no `inf`/`nan`, no thousands separators).
#[inline]
pub fn parse_dec(s: &str) -> Option<f64> {
    match fast_dec(s.as_bytes()) {
        Some(v) => Some(v),
        None => parse_dec_slow(s),
    }
}

/// [`parse_dec`] outside the fast path's shape.
#[inline(never)]
fn parse_dec_slow(s: &str) -> Option<f64> {
    if !is_decimal_syntax(s.as_bytes()) {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Exact powers of ten as f64 (all exactly representable up to 1e22).
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// `[+-]digits[.digits]` with at most 15 digits in all and no exponent: Clinger's fast path
/// (the mantissa is exact in f64 and so is 10^frac, so one correctly rounded division gives
/// exactly what `str::parse::<f64>` gives). `None`: not of that shape (the caller falls back
/// to the full parse, which may still accept it).
#[inline]
fn fast_dec(b: &[u8]) -> Option<f64> {
    // Sign + 15 digits + dot: anything longer has too many digits or is not of this shape,
    // and up to 17 digits cannot overflow the u64 mantissa below.
    if b.len() > 17 {
        return None;
    }
    let (neg, b) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    let mut mant: u64 = 0;
    let mut i = 0;
    while i < b.len() {
        let d = b[i].wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        mant = mant * 10 + u64::from(d);
        i += 1;
    }
    let mut frac = 0;
    let dot = i < b.len();
    if dot {
        if b[i] != b'.' {
            return None;
        }
        i += 1;
        let f = i;
        while i < b.len() {
            let d = b[i].wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            mant = mant * 10 + u64::from(d);
            i += 1;
        }
        frac = i - f;
    }
    let digits = b.len() - usize::from(dot);
    if digits == 0 || digits > 15 {
        return None;
    }
    // `mant` < 10^17 < 2^63: the signed conversion (one instruction) is exact.
    let v = mant as i64 as f64 / POW10[frac];
    Some(if neg { -v } else { v })
}

fn normalize_decimal(s: &str, out: &mut String) -> bool {
    let b = s.as_bytes();
    if !is_decimal_syntax(b) {
        return false;
    }
    if b.iter().any(|&c| c == b'e' || c == b'E') {
        // Exponent form: the shortest round-trip decimal of the value.
        return match parse_dec(s) {
            Some(v) => {
                let _ = write!(out, "{v}");
                true
            }
            None => false,
        };
    }
    let (neg, body) = match b[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let zero = int.is_empty() && frac.is_empty();
    if neg && !zero {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    true
}

/// Booleans in the spellings listed on `TypeSpec::Boolean`.
pub fn parse_bool(s: &str) -> Option<bool> {
    if s.len() > 5 {
        return None;
    }
    let mut buf = [0u8; 5];
    let b = &mut buf[..s.len()];
    b.copy_from_slice(s.as_bytes());
    b.make_ascii_lowercase();
    match &*b {
        b"true" | b"t" | b"yes" | b"y" | b"1" => Some(true),
        b"false" | b"f" | b"no" | b"n" | b"0" => Some(false),
        _ => None,
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Parts {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    frac_digits: u8,
    /// Offset east of UTC in minutes.
    zone: Option<i32>,
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i32;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Parts {
    fn days(&self) -> Option<i32> {
        if self.month == 0 || self.month > 12 || self.day == 0 {
            return None;
        }
        if self.day > days_in_month(self.year, self.month) {
            return None;
        }
        Some(days_from_civil(self.year, self.month, self.day))
    }

    fn ts(&self) -> Option<Val> {
        let days = self.days()?;
        if self.hour > 23 || self.minute > 59 || self.second > 60 {
            return None;
        }
        let secs = i64::from(days) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - i64::from(self.zone.unwrap_or(0)) * 60;
        Some(Val::Ts(secs, self.nanos))
    }
}

fn digits(b: &[u8], i: &mut usize, min: usize, max: usize) -> Option<u32> {
    let start = *i;
    let mut v: u32 = 0;
    while *i < b.len() && *i - start < max && b[*i].is_ascii_digit() {
        v = v * 10 + u32::from(b[*i] - b'0');
        *i += 1;
    }
    if *i - start < min {
        None
    } else {
        Some(v)
    }
}

const MONTHS: [&[u8; 3]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

fn frac(b: &[u8], i: &mut usize, p: &mut Parts) -> Option<()> {
    let start = *i;
    let mut n: u32 = 0;
    while *i < b.len() && b[*i].is_ascii_digit() {
        if *i - start < 9 {
            n = n * 10 + u32::from(b[*i] - b'0');
        }
        *i += 1;
    }
    let k = (*i - start).min(9);
    if k == 0 {
        return None;
    }
    p.nanos = n * 10u32.pow(9 - k as u32);
    p.frac_digits = k as u8;
    Some(())
}

fn zone(b: &[u8], i: &mut usize) -> Option<i32> {
    match b.get(*i)? {
        b'Z' | b'z' => {
            *i += 1;
            Some(0)
        }
        &s @ (b'+' | b'-') => {
            *i += 1;
            let h = digits(b, i, 2, 2)?;
            if b.get(*i) == Some(&b':') {
                *i += 1;
            }
            let m = digits(b, i, 2, 2)?;
            if h > 23 || m > 59 {
                return None;
            }
            let z = (h * 60 + m) as i32;
            Some(if s == b'-' { -z } else { z })
        }
        _ => None,
    }
}

fn parse_with(items: &[FormatItem], b: &[u8]) -> Option<Parts> {
    let mut p = Parts {
        day: 1,
        month: 1,
        ..Parts::default()
    };
    let mut i = 0;
    for it in items {
        match it.0 {
            Item::Lit(c) => {
                if b.get(i) != Some(&c) {
                    return None;
                }
                i += 1;
            }
            Item::Year4 => p.year = digits(b, &mut i, 4, 4)? as i32,
            Item::Year2 => {
                let y = digits(b, &mut i, 2, 2)? as i32;
                p.year = if y < 69 { 2000 + y } else { 1900 + y };
            }
            Item::Month => p.month = digits(b, &mut i, 1, 2)?,
            Item::MonthName => {
                let m = b.get(i..i + 3)?;
                let pos = MONTHS.iter().position(|n| n.eq_ignore_ascii_case(m))?;
                p.month = pos as u32 + 1;
                i += 3;
            }
            Item::Day => p.day = digits(b, &mut i, 1, 2)?,
            Item::Hour => p.hour = digits(b, &mut i, 1, 2)?,
            Item::Minute => p.minute = digits(b, &mut i, 1, 2)?,
            Item::Second => p.second = digits(b, &mut i, 1, 2)?,
            Item::Frac => frac(b, &mut i, &mut p)?,
            Item::Zone => p.zone = Some(zone(b, &mut i)?),
        }
    }
    (i == b.len()).then_some(p)
}

fn parse_iso_ts(b: &[u8]) -> Option<Parts> {
    let mut p = Parts::default();
    let mut i = 0;
    p.year = digits(b, &mut i, 4, 4)? as i32;
    let lit = |i: &mut usize, c: u8| -> Option<()> { (b.get(*i) == Some(&c)).then(|| *i += 1) };
    lit(&mut i, b'-')?;
    p.month = digits(b, &mut i, 2, 2)?;
    lit(&mut i, b'-')?;
    p.day = digits(b, &mut i, 2, 2)?;
    if i == b.len() {
        return Some(p); // a date alone is midnight
    }
    match b[i] {
        b'T' | b't' | b' ' => i += 1,
        _ => return None,
    }
    p.hour = digits(b, &mut i, 2, 2)?;
    lit(&mut i, b':')?;
    p.minute = digits(b, &mut i, 2, 2)?;
    if b.get(i) == Some(&b':') {
        i += 1;
        p.second = digits(b, &mut i, 2, 2)?;
        if matches!(b.get(i), Some(b'.' | b',')) {
            i += 1;
            frac(b, &mut i, &mut p)?;
        }
    }
    if i < b.len() {
        p.zone = Some(zone(b, &mut i)?);
    }
    (i == b.len()).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_decimal_and_integer_parses_match_std() {
        for t in [
            "0",
            "-0",
            "+0",
            "1",
            "12.5",
            "-12.50",
            "+3.25",
            ".5",
            "5.",
            "+.5",
            "-.5",
            "0.1",
            "99999.99",
            "123456789012345",
            "1234567890.12345",
            "0.000000000000001",
            "1234567890123456",
            "12345678901234567890.5",
            "1e3",
            "-2.5E-3",
            "007.10",
            ".",
            "-",
            "+",
            "",
            "1.2.3",
            "1,5",
            "abc",
            "1 ",
            " 1",
            "--1",
            "+-1",
            "0x10",
        ] {
            let want = if is_decimal_syntax(t.as_bytes()) {
                t.parse::<f64>().ok().filter(|v| v.is_finite())
            } else {
                None
            };
            let got = parse_dec(t);
            assert_eq!(
                got.map(f64::to_bits),
                want.map(f64::to_bits),
                "decimal {t:?}"
            );
            let b = t.as_bytes();
            let digits = match b.first() {
                Some(b'+' | b'-') => &b[1..],
                _ => b,
            };
            let want = if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
                t.strip_prefix('+').unwrap_or(t).parse::<i64>().ok()
            } else {
                None
            };
            assert_eq!(parse_int(t), want, "integer {t:?}");
        }
        for t in [
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "-9223372036854775809",
            "+9223372036854775807",
            "99999999999999999999",
        ] {
            let want = t.strip_prefix('+').unwrap_or(t).parse::<i64>().ok();
            assert_eq!(parse_int(t), want, "integer {t:?}");
        }
        // Generated strings around the fast path's limits (15 digits, 17 bytes).
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 20) as usize;
            let t: String = (0..len)
                .map(|k| {
                    let r = (x >> (3 * k)) % 16;
                    match r {
                        0 => '.',
                        1 if k == 0 => '-',
                        2 if k == 0 => '+',
                        3 if k > 0 && x.is_multiple_of(7) => 'e',
                        _ => char::from(b'0' + (r % 10) as u8),
                    }
                })
                .collect();
            let want = if is_decimal_syntax(t.as_bytes()) {
                t.parse::<f64>().ok().filter(|v| v.is_finite())
            } else {
                None
            };
            assert_eq!(
                parse_dec(&t).map(f64::to_bits),
                want.map(f64::to_bits),
                "decimal {t:?}"
            );
        }
    }
    use crate::rules::doc::FormatSpec;

    fn date(f: &str) -> Parser {
        Parser::new(&TypeSpec::Date(FormatSpec {
            format: Some(f.into()),
        }))
        .unwrap()
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_int("+42"), Some(42));
        assert_eq!(parse_int("-0"), Some(0));
        assert_eq!(parse_int("4.2"), None);
        assert_eq!(parse_int("99999999999999999999"), None);
        assert_eq!(parse_dec("1e3"), Some(1000.0));
        assert_eq!(parse_dec(".5"), Some(0.5));
        for bad in ["", "-", ".", "1e", "inf", "NaN", "1,5", " 1"] {
            assert_eq!(parse_dec(bad), None, "{bad}");
        }
        let mut s = String::new();
        for (i, o) in [
            ("+007.50", "7.5"),
            ("-0.000", "0"),
            ("12", "12"),
            (".25", "0.25"),
            ("-3.10", "-3.1"),
            ("1.5e2", "150"),
        ] {
            s.clear();
            assert!(Parser::Decimal.normalize(i, &mut s));
            assert_eq!(s, o, "{i}");
        }
    }

    #[test]
    fn dates_and_timestamps() {
        let d = date("%d/%m/%Y");
        assert_eq!(d.parse("01/01/1970"), Some(Val::Date(0)));
        assert_eq!(d.parse("29/02/2024"), Some(Val::Date(19782)));
        assert_eq!(d.parse("29/02/2023"), None);
        assert_eq!(d.parse("31/04/2023"), None);
        assert_eq!(d.parse("1/2/2023x"), None);
        let mut s = String::new();
        assert!(d.normalize("5/3/2021", &mut s));
        assert_eq!(s, "2021-03-05");
        assert_eq!(date("%d %b %Y").parse("05 MAR 2021"), d.parse("05/03/2021"));
        let ts = Parser::new(&TypeSpec::Timestamp(FormatSpec::default())).unwrap();
        assert_eq!(ts.parse("1970-01-01T00:00:01Z"), Some(Val::Ts(1, 0)));
        assert_eq!(ts.parse("1970-01-01 01:00:00+01:00"), Some(Val::Ts(0, 0)));
        assert_eq!(
            ts.parse("1970-01-01T00:00:00.25"),
            Some(Val::Ts(0, 250_000_000))
        );
        assert_eq!(ts.parse("1970-01-01T24:00:00"), None);
        s.clear();
        assert!(ts.normalize("2026-11-26 10:15:00.120-05:00", &mut s));
        assert_eq!(s, "2026-11-26T10:15:00.120-05:00");
        assert!(compile_format("%Q").unwrap_err().contains("%Q"));
        assert!(Parser::new(&TypeSpec::Date(FormatSpec {
            format: Some("%Y-%m".into())
        }))
        .is_err());
        assert_eq!(
            Val::Date(1).cmp_val(&Val::Ts(86_400, 1)),
            Some(Ordering::Less)
        );
    }

    #[test]
    fn booleans() {
        for t in ["TRUE", "t", "Yes", "1", "y"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in ["false", "F", "no", "0", "N"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        assert_eq!(parse_bool("maybe"), None);
        assert_eq!(parse_bool("truest"), None);
    }
}
