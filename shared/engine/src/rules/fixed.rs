//! A matcher for the simplest `matches` patterns: anchored (`^...$`), fixed length, every
//! position an ASCII literal or an ASCII character class, e.g. `^20[0-9]{2}-[01][0-9]-[0-3][0-9]$`.
//! Such a pattern matches exactly the strings of that many bytes whose every byte is in its
//! position's set, so one length compare and one bit test per byte decide it, instead of the
//! regex engine's search machinery (a measurable share of a rule workflow's cost). Anchored at
//! the start only (`^20[0-9]{2}-`, "starts with"), it matches the strings whose first bytes do.
//!
//! Anything outside this subset (alternation, groups, flags, `.`, `\d` and other Unicode-aware
//! classes, negated classes, non-ASCII, open repetition) is left to the `regex` crate: [`Fixed::parse`]
//! returns `None` and the caller keeps using the compiled `Regex`. Tested against `regex`.

/// Per position, the accepted bytes (a 128-bit ASCII set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fixed {
    sets: Vec<u128>,
    /// For patterns of at most 64 positions: per byte value, the positions accepting it (bit
    /// `i` for position `i`), so that a byte costs one load and two bit operations.
    table: Option<Box<[u64; 256]>>,
    /// `^...` without `$`: the value's first `sets.len()` bytes decide, the rest is free.
    prefix: bool,
}

/// Longest pattern expanded (positions); longer ones stay with the regex engine.
const MAX_POSITIONS: usize = 256;

/// ASCII bytes that are literals outside a class (no regex meaning, no escape needed).
fn plain_literal(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b' ' | b'-'
                | b'_'
                | b':'
                | b'/'
                | b','
                | b'@'
                | b'%'
                | b'='
                | b'!'
                | b'\''
                | b'"'
                | b'<'
                | b'>'
                | b';'
                | b'`'
                | b'~'
                | b'&'
        )
}

/// Punctuation that may be escaped with `\` to stand for itself (outside a class).
fn escapable(c: u8) -> bool {
    matches!(
        c,
        b'.' | b'*'
            | b'+'
            | b'?'
            | b'('
            | b')'
            | b'|'
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'^'
            | b'$'
            | b'\\'
            | b'-'
            | b'/'
            | b'#'
            | b'&'
            | b'~'
    )
}

/// Bytes that stand for themselves inside a class (besides a leading or trailing `-`).
fn class_literal(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b' ' | b'_' | b':' | b'/' | b',' | b'@' | b'.' | b'+')
}

fn bit(c: u8) -> u128 {
    1u128 << c
}

impl Fixed {
    /// The matcher for `pattern`, if it is in the subset described above.
    pub(crate) fn parse(pattern: &str) -> Option<Fixed> {
        let p = pattern.as_bytes();
        let body = p.strip_prefix(b"^")?;
        // A final `$` is the end anchor unless escaped (`\$`). `^a\\$` (a backslash, then the
        // end) is read as a prefix pattern whose last `$` is no literal: refused below.
        let (inner, prefix) = match body.strip_suffix(b"$") {
            Some(inner) if !inner.ends_with(b"\\") => (inner, false),
            _ => (body, true),
        };
        let mut sets = Vec::new();
        let mut i = 0;
        while i < inner.len() {
            let (set, used) = match inner[i] {
                b'[' => Self::class(&inner[i..])?,
                b'\\' => {
                    let &c = inner.get(i + 1)?;
                    if !escapable(c) {
                        return None;
                    }
                    (bit(c), 2)
                }
                c if plain_literal(c) => (bit(c), 1),
                _ => return None,
            };
            i += used;
            let mut n = 1;
            if inner.get(i) == Some(&b'{') {
                let close = i + inner[i..].iter().position(|&c| c == b'}')?;
                let digits = &inner[i + 1..close];
                if digits.is_empty() || digits.len() > 3 || !digits.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                n = std::str::from_utf8(digits).ok()?.parse::<usize>().ok()?;
                i = close + 1;
            }
            if matches!(inner.get(i), Some(b'*' | b'+' | b'?' | b'{')) {
                return None;
            }
            if sets.len() + n > MAX_POSITIONS {
                return None;
            }
            sets.extend(std::iter::repeat_n(set, n));
        }
        // `^$` (the empty string only) is not worth a special case.
        if sets.is_empty() || sets.contains(&0) {
            return None;
        }
        let table = (sets.len() <= 64).then(|| {
            let mut t = Box::new([0u64; 256]);
            for (i, set) in sets.iter().enumerate() {
                for c in 0..128u8 {
                    if (set >> c) & 1 == 1 {
                        t[usize::from(c)] |= 1 << i;
                    }
                }
            }
            t
        });
        Some(Fixed {
            sets,
            table,
            prefix,
        })
    }

    /// A class `[...]` at the start of `s`: its set and its length in bytes.
    fn class(s: &[u8]) -> Option<(u128, usize)> {
        let close = s.iter().position(|&c| c == b']')?;
        let body = &s[1..close];
        if body.is_empty() || body[0] == b'^' {
            return None;
        }
        let mut set = 0u128;
        let mut j = 0;
        while j < body.len() {
            let c = body[j];
            let edge = j == 0 || j + 1 == body.len();
            if c == b'-' && edge {
                set |= bit(b'-');
                j += 1;
            } else if body.get(j + 1) == Some(&b'-') && j + 2 < body.len() {
                let hi = body[j + 2];
                if !c.is_ascii_alphanumeric() || !hi.is_ascii_alphanumeric() || hi < c {
                    return None;
                }
                for x in c..=hi {
                    set |= bit(x);
                }
                j += 3;
            } else if class_literal(c) {
                set |= bit(c);
                j += 1;
            } else {
                return None;
            }
        }
        Some((set, close + 1))
    }

    /// Whether `v` matches (the whole of it, or its start for a pattern without `$`).
    #[inline]
    pub(crate) fn is_match(&self, v: &str) -> bool {
        let mut b = v.as_bytes();
        if self.prefix && b.len() > self.sets.len() {
            b = &b[..self.sets.len()];
        }
        if b.len() != self.sets.len() {
            return false;
        }
        match &self.table {
            Some(t) => {
                // Positions whose byte is refused; bytes >= 128 are refused everywhere.
                let mut bad = 0u64;
                for (i, &c) in b.iter().enumerate() {
                    bad |= !t[usize::from(c)] & (1 << i);
                }
                bad == 0
            }
            None => b
                .iter()
                .zip(&self.sets)
                .all(|(&c, &s)| c < 128 && (s >> c) & 1 == 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    const PATTERNS: &[&str] = &[
        r"^20[0-9]{2}-[01][0-9]-[0-3][0-9]$",
        r"^[A-Z]{2}[0-9]{4}$",
        r"^[a-z_-]{3}$",
        r"^[-a-c]x[c-]$",
        r"^abc$",
        r"^a\.b\-c$",
        r"^[0-9]{3}-[0-9]{2}-[0-9]{4}$",
        r"^[A-Za-z0-9]{8}$",
        r"^x{0}y$",
        r"^[.+]{2}$",
        // Anchored at the start only.
        r"^abc",
        r"^20[0-9]{2}-[01][0-9]-[0-3][0-9]T",
        r"^[a-z]{2}",
        r"^a\$",
        r"^a\\",
        // Outside the subset: must be left to the regex engine.
        r"^x{0}",
        r"^\d{4}$",
        r"^a.c$",
        r"^[^a]b$",
        r"^a{2,3}$",
        r"^a+$",
        r"^(?i)abc$",
        r"^(a|b)$",
        r"abc",
        r"^a\\$",
        r"^é$",
        r"^\w$",
        r"^[a-z]{1000}$",
        r"^$",
    ];

    fn strings() -> Vec<String> {
        let mut v: Vec<String> = [
            "",
            "2024-01-31",
            "2024-13-31",
            "1999-01-01",
            "2024-1-31",
            "2024-01-31\n",
            "AB1234",
            "ab1234",
            "a_-",
            "abc",
            "ABC",
            "a.b-c",
            "a-b-c",
            "axb",
            "-x-",
            "cxc",
            "bx-",
            "123-45-6789",
            "12345678",
            "aZ09bY18",
            "y",
            "xy",
            "..",
            "++",
            ".+",
            "é",
            "a",
            "aa",
            "aaa",
            "2024-01-3é",
            "٣٣٣٣",
            "1234",
            "abcd",
            "abc\n",
            "2024-01-31T10:00:00Z",
            "2024-01-31 10:00:00",
            "2024-01-31T",
            "a$",
            "a$b",
            "a\\",
            "a\\b",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut x = 7u64;
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 12) as usize;
            let alphabet = b"0129-aAbcxyzZ._+ \n";
            let s: String = (0..len)
                .map(|k| alphabet[((x >> (k * 5)) % alphabet.len() as u64) as usize] as char)
                .collect();
            v.push(s);
        }
        v
    }

    #[test]
    fn agrees_with_regex() {
        let strings = strings();
        let mut fast = 0;
        for p in PATTERNS {
            let re = Regex::new(p).unwrap_or_else(|e| panic!("{p}: {e}"));
            let Some(f) = Fixed::parse(p) else { continue };
            fast += 1;
            for s in &strings {
                assert_eq!(f.is_match(s), re.is_match(s), "pattern {p} on {s:?}");
            }
        }
        assert_eq!(fast, 15, "patterns in the subset");
    }

    #[test]
    fn outside_the_subset_is_refused() {
        for p in [
            r"^\d{4}$",
            r"^a.c$",
            r"^[^a]b$",
            r"^a{2,3}$",
            r"^a+$",
            r"^(?i)abc$",
            "abc",
            r"^é$",
            "^$",
        ] {
            assert!(Fixed::parse(p).is_none(), "{p}");
        }
    }
}
