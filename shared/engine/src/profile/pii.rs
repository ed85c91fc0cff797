//! Detectors of personal data in column values: e-mail addresses, phone numbers, payment card
//! numbers (Luhn), US SSNs, IBANs (mod-97) and IP addresses (v4 and v6).
//!
//! [`detect`] returns a bit mask of the detectors a value matches; it is a pure function of
//! the value's text, so per-detector counts merge exactly across chunks. Cheap byte-level
//! prefilters (first bytes, length, one `memchr2` for `@`/`:`) run before any validation, so
//! the common non-matching value costs a few comparisons.

use serde::{Deserialize, Serialize};

use super::classify::Kind;

/// E-mail address.
pub(crate) const EMAIL: u8 = 1;
/// Phone number (formatted: leading `+`, or separators such as `(415) 555-2671`).
pub(crate) const PHONE: u8 = 2;
/// Payment card number (13-19 digits, optional single spaces/dashes, Luhn-valid).
pub(crate) const CARD: u8 = 4;
/// US social security number `AAA-GG-SSSS` outside the never-issued ranges.
pub(crate) const SSN: u8 = 8;
/// IBAN with a valid mod-97 checksum (print form with spaces accepted).
pub(crate) const IBAN: u8 = 16;
/// IPv4 or IPv6 address.
pub(crate) const IP: u8 = 32;

/// Exact counts of values matched by each detector. Mergeable by addition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct PiiCounts {
    pub email: u64,
    pub phone: u64,
    pub card: u64,
    pub ssn: u64,
    pub iban: u64,
    pub ip: u64,
}

impl PiiCounts {
    #[inline]
    pub(crate) fn add(&mut self, mask: u8) {
        if mask == 0 {
            return;
        }
        self.email += u64::from(mask & EMAIL != 0);
        self.phone += u64::from(mask & PHONE != 0);
        self.card += u64::from(mask & CARD != 0);
        self.ssn += u64::from(mask & SSN != 0);
        self.iban += u64::from(mask & IBAN != 0);
        self.ip += u64::from(mask & IP != 0);
    }

    pub(crate) fn merge(&mut self, o: &PiiCounts) {
        self.email += o.email;
        self.phone += o.phone;
        self.card += o.card;
        self.ssn += o.ssn;
        self.iban += o.iban;
        self.ip += o.ip;
    }

    /// `(name, count)` of every detector, in report order.
    pub(crate) fn entries(&self) -> [(&'static str, u64); 6] {
        [
            ("email", self.email),
            ("phone", self.phone),
            ("card", self.card),
            ("ssn", self.ssn),
            ("iban", self.iban),
            ("ip", self.ip),
        ]
    }
}

/// Detectors matched by a value of the given kind. Numbers (as the profile classifies them)
/// can only be card numbers (13-19 digits) or phone numbers with a leading `+`; booleans,
/// dates and timestamps match nothing.
#[inline]
pub(crate) fn detect_kind(v: &str, kind: Kind) -> u8 {
    match kind {
        Kind::Str => detect(v),
        Kind::Int | Kind::Dec => {
            let b = v.as_bytes();
            if b.len() >= 13 || b.first() == Some(&b'+') {
                detect(v)
            } else {
                0
            }
        }
        _ => 0,
    }
}

/// The detectors `v` matches (a bit mask of the constants above; 0 for most values).
#[inline]
pub(crate) fn detect(v: &str) -> u8 {
    let b = v.as_bytes();
    if b.len() < 2 || b.len() > 254 {
        return 0;
    }
    let f = b[0];
    if f.is_ascii_uppercase()
        && b.len() >= 15
        && b[1].is_ascii_uppercase()
        && b[2].is_ascii_digit()
        && b[3].is_ascii_digit()
        && iban(b)
    {
        return IBAN;
    }
    match find_at_or_colon(b) {
        Some(i) if b[i] == b'@' => return if email_at(b, i) { EMAIL } else { 0 },
        Some(_) => return if ipv6(v) { IP } else { 0 },
        None => {}
    }
    if f.is_ascii_digit() {
        if b.len() <= 15 && ipv4(v) {
            return IP;
        }
        if b.len() == 11 && b[3] == b'-' && b[6] == b'-' {
            return if ssn(b) { SSN } else { 0 };
        }
        if b.len() >= 13 && card(b) {
            return CARD;
        }
        return if phone(b) { PHONE } else { 0 };
    }
    if f == b'+' || f == b'(' {
        return if phone(b) { PHONE } else { 0 };
    }
    0
}

/// First `@` or `:` in `b`. Values up to 64 bytes (nearly all) are scanned 8 bytes at a time
/// inline (the last word overlaps the previous one; earlier bytes were already found clean, so
/// the first hit in it is still the first in `b`): a `memchr2` call cost more than the scan on
/// ~10-byte values.
#[inline]
fn find_at_or_colon(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let n = b.len();
    if n > 64 {
        return memchr::memchr2(b'@', b':', b);
    }
    if n < 8 {
        return b.iter().position(|&c| c == b'@' || c == b':');
    }
    // A zero byte of `x` sets its high bit in `zero(x)`; bits above the lowest true zero
    // byte may be false positives, so only the lowest set bit is used.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut i = 0;
    loop {
        let at = if i + 8 <= n { i } else { n - 8 };
        let w = u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        let m = zero(w ^ (ONES * u64::from(b'@'))) | zero(w ^ (ONES * u64::from(b':')));
        if m != 0 {
            return Some(at + (m.trailing_zeros() / 8) as usize);
        }
        if at + 8 >= n {
            return None;
        }
        i += 8;
    }
}

/// `local@domain`: a dot-atom local part (no leading, trailing or double dots) and a domain of
/// at least two labels of letters, digits and inner hyphens, ending in a TLD of 2+ letters.
/// For callers that have not located the `@` (the grading mask); `detect` calls [`email_at`].
#[allow(dead_code)]
pub(crate) fn email(b: &[u8]) -> bool {
    match memchr::memchr(b'@', b) {
        Some(at) => email_at(b, at),
        None => false,
    }
}

/// Byte classes of [`email_at`]: allowed in a dot-atom local part, in a domain label, a letter.
const LOCAL: u8 = 1;
const LABEL: u8 = 2;
const ALPHA: u8 = 4;
static EMAIL_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic();
        let alnum = alpha || b.is_ascii_digit();
        let mut class = 0;
        if alnum {
            class |= LOCAL | LABEL;
        }
        if alpha {
            class |= ALPHA;
        }
        if b == b'-' {
            class |= LABEL;
        }
        let mut i = 0;
        let specials = b".!#$%&'*+/=?^_`{|}~-";
        while i < specials.len() {
            if specials[i] == b {
                class |= LOCAL;
            }
            i += 1;
        }
        t[c] = class;
        c += 1;
    }
    t
};

/// [`email`] with the first `@` already found at `at`: one pass over the bytes with a class
/// table (the split-and-check form cost ~35 ns per address, a tenth of the export-shaped
/// bench file's profile; the old form is the oracle of the property test below).
#[inline]
fn email_at(b: &[u8], at: usize) -> bool {
    let (local, domain) = (&b[..at], &b[at + 1..]);
    if local.is_empty() || local.len() > 64 || local[0] == b'.' || local[at - 1] == b'.' {
        return false;
    }
    let mut prev_dot = false;
    for &c in local {
        let dot = c == b'.';
        if EMAIL_CLASS[c as usize] & LOCAL == 0 || (dot && prev_dot) {
            return false;
        }
        prev_dot = dot;
    }
    // Per label: its start, whether every byte so far is a letter; a label ends at a dot or at
    // the end of the domain.
    let label_ok = |start: usize, end: usize| {
        end > start && end - start <= 63 && domain[start] != b'-' && domain[end - 1] != b'-'
    };
    let mut labels = 0;
    let mut start = 0;
    let mut alpha = true;
    for (i, &c) in domain.iter().enumerate() {
        if c == b'.' {
            if !label_ok(start, i) {
                return false;
            }
            labels += 1;
            start = i + 1;
            alpha = true;
            continue;
        }
        let class = EMAIL_CLASS[c as usize];
        if class & LABEL == 0 {
            return false;
        }
        alpha &= class & ALPHA != 0;
    }
    label_ok(start, domain.len()) && labels >= 1 && domain.len() - start >= 2 && alpha
}

/// Digits with optional single spaces or dashes between groups, 13-19 digits, Luhn-valid,
/// not all zeros.
pub(crate) fn card(b: &[u8]) -> bool {
    if !b[0].is_ascii_digit() || !b[b.len() - 1].is_ascii_digit() {
        return false;
    }
    let mut n = 0;
    let mut sum = 0u32;
    let mut nonzero = false;
    let mut sep: Option<u8> = None;
    let mut prev_sep = false;
    // Luhn from the right: every second digit doubled.
    for &c in b.iter().rev() {
        if c.is_ascii_digit() {
            let d = u32::from(c - b'0');
            nonzero |= d != 0;
            sum += if n % 2 == 1 {
                let x = 2 * d;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            };
            n += 1;
            prev_sep = false;
        } else if (c == b' ' || c == b'-') && !prev_sep && sep.is_none_or(|s| s == c) {
            sep = Some(c);
            prev_sep = true;
        } else {
            return false;
        }
    }
    (13..=19).contains(&n) && nonzero && sum.is_multiple_of(10)
}

/// `AAA-GG-SSSS`, area not 000, 666 or 900-999, group not 00, serial not 0000.
pub(crate) fn ssn(b: &[u8]) -> bool {
    if b.len() != 11 || b[3] != b'-' || b[6] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |a, &c| {
            c.is_ascii_digit().then(|| a * 10 + u32::from(c - b'0'))
        })
    };
    let (Some(area), Some(group), Some(serial)) = (digits(0..3), digits(4..6), digits(7..11))
    else {
        return false;
    };
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// Country code (2 uppercase letters), 2 check digits, 11-30 uppercase letters or digits;
/// in print form groups of 4 separated by single spaces; `mod 97 == 1`.
pub(crate) fn iban(b: &[u8]) -> bool {
    let mut chars = [0u8; 34];
    let mut n = 0;
    let mut group_start = 0;
    for (i, &c) in b.iter().enumerate() {
        if c == b' ' {
            // Print form: a single space after every group of 4 characters.
            if n - group_start != 4 || i + 1 == b.len() {
                return false;
            }
            group_start = n;
            continue;
        }
        if !(c.is_ascii_uppercase() || c.is_ascii_digit()) || n == 34 {
            return false;
        }
        chars[n] = c;
        n += 1;
    }
    if !(15..=34).contains(&n)
        || !chars[0].is_ascii_uppercase()
        || !chars[1].is_ascii_uppercase()
        || !chars[2].is_ascii_digit()
        || !chars[3].is_ascii_digit()
    {
        return false;
    }
    // Move the first four characters to the end; letters count as 10..35.
    let mut r = 0u32;
    for &c in chars[4..n].iter().chain(&chars[..4]) {
        r = if c.is_ascii_digit() {
            (r * 10 + u32::from(c - b'0')) % 97
        } else {
            (r * 100 + u32::from(c - b'A' + 10)) % 97
        };
    }
    r == 1
}

/// Dotted quad, each part 0-255 without leading zeros.
pub(crate) fn ipv4(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() >= 7 && b.contains(&b'.') && v.parse::<std::net::Ipv4Addr>().is_ok()
}

/// Any textual IPv6 form (`::1`, `fe80::1`, `2001:db8::8a2e:370:7334`, `::ffff:192.0.2.1`).
pub(crate) fn ipv6(v: &str) -> bool {
    v.len() <= 45
        && v.bytes()
            .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        && v.parse::<std::net::Ipv6Addr>().is_ok()
}

/// Formatted phone numbers: digits with `+` (first only), spaces, dashes, dots and one pair
/// of parentheses; 10-15 digits (8-15 after a `+`); a leading `+` or at least one separator
/// (a bare run of digits is an id as often as a phone number; a single dot alone is a
/// decimal); ends with a digit.
pub(crate) fn phone(b: &[u8]) -> bool {
    let plus = b[0] == b'+';
    let mut digits = 0;
    let mut seps = 0;
    let mut open = 0;
    let mut parens = 0;
    let mut dots = 0;
    let mut prev_sep = false;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                digits += 1;
                prev_sep = false;
            }
            b'+' if i == 0 => {}
            b' ' | b'-' | b'.' => {
                if prev_sep {
                    return false;
                }
                prev_sep = true;
                seps += 1;
                dots += usize::from(c == b'.');
            }
            b'(' => {
                if open != 0 || parens != 0 {
                    return false;
                }
                open = 1;
            }
            b')' => {
                if open != 1 {
                    return false;
                }
                open = 0;
                parens = 1;
                seps += 1;
                prev_sep = false;
            }
            _ => return false,
        }
    }
    let min = if plus { 8 } else { 10 };
    // A single dot and nothing else is a decimal number.
    open == 0
        && (plus || seps > 0)
        && !(seps == 1 && dots == 1)
        && (min..=15).contains(&digits)
        && b[b.len() - 1].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The e-mail check as first written (split and check): the oracle of [`email_at`].
    fn email_oracle(b: &[u8]) -> bool {
        let Some(at) = memchr::memchr(b'@', b) else {
            return false;
        };
        let (local, domain) = (&b[..at], &b[at + 1..]);
        let is_local_char =
            |c: u8| c.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&c);
        if local.is_empty()
            || local.len() > 64
            || local[0] == b'.'
            || local[local.len() - 1] == b'.'
            || !local.iter().all(|&c| is_local_char(c))
            || local.windows(2).any(|w| w == b"..")
        {
            return false;
        }
        let mut labels = 0;
        let mut last: &[u8] = &[];
        for l in domain.split(|&c| c == b'.') {
            if l.is_empty()
                || l.len() > 63
                || l[0] == b'-'
                || l[l.len() - 1] == b'-'
                || !l.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
            {
                return false;
            }
            labels += 1;
            last = l;
        }
        labels >= 2 && last.len() >= 2 && last.iter().all(u8::is_ascii_alphabetic)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]
        /// Strings over the characters that matter to the check (letters, digits, the
        /// local-part specials, dots, hyphens, `@`, a space, a non-ASCII letter).
        #[test]
        fn email_matches_the_oracle(v in "[a-zA-Z0-9.@_+'-]{0,12}[@.]?[a-z0-9.é -]{0,12}(\\.[a-z]{0,3})?") {
            proptest::prop_assert_eq!(email(v.as_bytes()), email_oracle(v.as_bytes()), "{:?}", v);
        }

        #[test]
        fn email_matches_the_oracle_on_long_parts(local in "[a-z.]{60,70}", label in "[a-z-]{60,66}") {
            for v in [format!("{local}@x.com"), format!("a@{label}.com"), format!("a@b.{label}")] {
                proptest::prop_assert_eq!(email(v.as_bytes()), email_oracle(v.as_bytes()), "{:?}", v);
            }
        }
    }

    #[test]
    fn email_addresses() {
        for v in [
            "JANE.DOE@EXAMPLE.COM",
            "jane.doe@example.com",
            "a@b.co",
            "x+tag@mail.example.org",
            "o'neil@x-y.de",
        ] {
            assert_eq!(detect(v), EMAIL, "{v}");
        }
        for v in [
            "@example.com",
            "jane@",
            "jane@example",
            "jane@@example.com",
            "jane@.example.com",
            "jane..doe@example.com",
            ".jane@example.com",
            "jane@example.c",
            "jane@ex_ample.com",
            "jane@-example.com",
            "jane doe@example.com",
            "jane@example.com.",
            "a@b@c.com",
        ] {
            assert_eq!(detect(v), 0, "{v}");
        }
    }

    #[test]
    fn card_numbers_need_luhn() {
        for v in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5500005555555559",
            "378282246310005",
            "6011000990139424",
            "4222222222222",
        ] {
            assert_eq!(detect(v), CARD, "{v}");
        }
        for v in [
            "4111111111111112",     // Luhn fails
            "4111 1111-1111 1111",  // mixed separators
            "4111  1111 1111 1111", // double space
            "411111111111",         // 12 digits
            "41111111111111111111", // 20 digits
            "0000000000000000",     // all zeros
            "4111 1111 1111 111a",
        ] {
            assert_eq!(detect(v) & CARD, 0, "{v}");
        }
        assert_eq!(detect_kind("4111111111111111", Kind::Int), CARD);
        assert_eq!(detect_kind("1234", Kind::Int), 0);
    }

    #[test]
    fn inline_scan_finds_the_first_at_or_colon() {
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for n in 0..80 {
            for pos in 0..n {
                for c in [b'@', b':'] {
                    let mut v = vec![b'a'; n];
                    v[pos] = c;
                    cases.push(v.clone());
                    if pos + 3 < n {
                        v[pos + 3] = if c == b'@' { b':' } else { b'@' };
                        cases.push(v);
                    }
                }
            }
            cases.push(vec![b'x'; n]);
            cases.push((0..n as u8).map(|i| i.wrapping_mul(37) | 0x80).collect());
        }
        for v in cases {
            assert_eq!(
                find_at_or_colon(&v),
                memchr::memchr2(b'@', b':', &v),
                "{v:?}"
            );
        }
    }

    #[test]
    fn ssns_exclude_invalid_ranges() {
        for v in ["123-45-6789", "001-01-0001", "899-99-9999", "665-12-3456"] {
            assert_eq!(detect(v), SSN, "{v}");
        }
        for v in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "999-99-9999",
            "123-00-4567",
            "123-45-0000",
            "123456789",
            "12-345-6789",
            "123-45-678a",
        ] {
            assert_eq!(detect(v) & SSN, 0, "{v}");
        }
    }

    #[test]
    fn ibans_need_mod_97() {
        for v in [
            "DE89370400440532013000",
            "DE89 3704 0044 0532 0130 00",
            "GB82WEST12345698765432",
            "GB82 WEST 1234 5698 7654 32",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
        ] {
            assert_eq!(detect(v), IBAN, "{v}");
        }
        for v in [
            "DE89370400440532013001",     // checksum
            "GB82WEST12345698765431",     // checksum
            "DE89 37040044 0532 0130 00", // bad grouping
            "DE89  3704 0044 0532 0130 00",
            "DE8937040044053201300",  // checksum (digit missing)
            "de89370400440532013000", // lowercase
            "DEXX370400440532013000",
        ] {
            assert_eq!(detect(v), 0, "{v}");
        }
    }

    #[test]
    fn ip_addresses() {
        for v in [
            "192.168.1.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "2001:db8::8a2e:370:7334",
            "2001:0db8:0000:0000:0000:ff00:0042:8329",
            "::ffff:192.0.2.1",
        ] {
            assert_eq!(detect(v), IP, "{v}");
        }
        for v in [
            "256.1.1.1",
            "1.2.3",
            "01.2.3.4",
            "1.2.3.4.5",
            "10:30:00",
            "12:30",
            "2001:db8:::1",
            "00:1A:2B:3C:4D:5E",
            "1.5",
            "2024-01-15T10:00:00Z",
            "gggg::1",
        ] {
            assert_eq!(detect(v), 0, "{v}");
        }
    }

    #[test]
    fn phone_numbers() {
        for v in [
            "+14155552671",
            "(415) 555-2671",
            "415-555-2671",
            "415.555.2671",
            "+44 20 7946 0958",
            "+33 1 42 68 53 00",
        ] {
            assert_eq!(detect(v), PHONE, "{v}");
        }
        assert_eq!(detect_kind("+14155552671", Kind::Int), PHONE);
        for v in [
            "4155552671",     // bare digits: not counted
            "555-2671",       // too few digits
            "2024-01-15",     // a date
            "10.100.100.100", // an IP
            "415--555-2671",
            "(415 555-2671",
            "415-555-2671 ext",
            "+1 (415) 555-2671 (home)",
            "1234567.89",
            "12345678901.25",
        ] {
            assert_eq!(detect(v) & PHONE, 0, "{v}");
        }
        assert_eq!(detect_kind("1234567890.5", Kind::Dec), 0);
        assert_eq!(detect("1234567890.5"), 0);
    }

    #[test]
    fn ordinary_values_match_nothing() {
        for v in [
            "",
            "a",
            "hello world",
            "Zürich",
            "東京",
            "12",
            "-5",
            "3.25",
            "2024-01-15",
            "NULL",
        ] {
            assert_eq!(detect(v), 0, "{v}");
        }
    }
}
