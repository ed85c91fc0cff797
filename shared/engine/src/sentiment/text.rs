//! From a field's text to VADER's token list, as vaderSentiment 3.3.2's `polarity_scores` and
//! `SentiText` build it: emoji replaced by their descriptions, split on Python's whitespace,
//! leading and trailing ASCII punctuation stripped unless that leaves two characters or fewer,
//! then each token lower-cased (Python `str.lower`) and looked up once.
//!
//! Not here: any scoring rule. Python string predicates are reproduced from CPython 3.11
//! (`str.split`, `str.isupper`, `str.lower`); Rust's Unicode tables may be a version or two
//! newer than Python's, which can only matter for code points assigned since Unicode 14.

use super::lexicon::{Entry, Key, Tables, Word, MAX_KEY, NONE};

/// One token and what the rules need of it, so that no rule re-reads the text.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tok {
    /// Lexicon valence of the lower-cased token, NaN when absent.
    pub lex: f64,
    /// Booster weight of the lower-cased token, 0 when none.
    pub booster: f64,
    /// vaderSentiment's `negated([word])`: in `NEGATE` or containing `n't`.
    pub negated: bool,
    /// Python `str.isupper()` of the token as written.
    pub upper: bool,
    pub word: Word,
}

impl Tok {
    #[inline]
    fn of(e: &Entry, upper: bool, negated: bool) -> Tok {
        Tok {
            lex: e.lex(),
            booster: e.booster(),
            negated,
            upper,
            word: e.word,
        }
    }

    #[inline]
    pub fn in_lexicon(&self) -> bool {
        !self.lex.is_nan()
    }
}

/// The 31 titlecase (Lt) letters: Python's `isupper()` is false for any string holding one.
fn is_titlecase(c: char) -> bool {
    matches!(
        c,
        '\u{1c5}'
            | '\u{1c8}'
            | '\u{1cb}'
            | '\u{1f2}'
            | '\u{1f88}'..='\u{1f8f}'
            | '\u{1f98}'..='\u{1f9f}'
            | '\u{1fa8}'..='\u{1faf}'
            | '\u{1fbc}'
            | '\u{1fcc}'
            | '\u{1ffc}'
    )
}

/// Python `str.isupper()`: at least one uppercase character and none lowercase or titlecase.
pub(crate) fn py_isupper(s: &str) -> bool {
    let mut cased = false;
    for &b in s.as_bytes() {
        if b >= 0x80 {
            return py_isupper_unicode(s);
        }
        if b.is_ascii_lowercase() {
            return false;
        }
        cased |= b.is_ascii_uppercase();
    }
    cased
}

fn py_isupper_unicode(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() || is_titlecase(c) {
            return false;
        }
        cased |= c.is_uppercase();
    }
    cased
}

/// `polarity_scores`' emoji pass: every code point that is an emoji key is replaced by its
/// description, preceded by a space unless the previous character was a space (U+0020 only).
/// Returns false, writing nothing, when the text holds no emoji key.
pub(crate) fn replace_emoji(text: &str, tables: &Tables, out: &mut String) -> bool {
    let Some(at) = first_emoji(text, tables) else {
        return false;
    };
    out.clear();
    out.push_str(&text[..at]);
    let mut prev_space = at == 0 || text[..at].ends_with(' ');
    for c in text[at..].chars() {
        if let Some(desc) = tables.emoji(c) {
            if !prev_space {
                out.push(' ');
            }
            out.push_str(desc);
            prev_space = false;
        } else {
            out.push(c);
            prev_space = c == ' ';
        }
    }
    true
}

/// The ASCII bytes `py_space` accepts: tab to carriage return, U+001C..U+001F, space.
const ASCII_SPACE: [bool; 128] = {
    let mut t = [false; 128];
    let mut c = 0;
    while c < 128 {
        t[c] = matches!(c as u8, b' ' | b'\t'..=b'\r' | 0x1c..=0x1f);
        c += 1;
    }
    t
};

/// `string.punctuation` as a table over ASCII bytes (the hot loops index it).
const ASCII_PUNCT: [bool; 128] = {
    let mut t = [false; 128];
    let mut c = 0;
    while c < 128 {
        t[c] = (c as u8).is_ascii_punctuation();
        c += 1;
    }
    t
};

/// Up to eight bytes as a little-endian word, zero-padded.
#[inline(always)]
fn pack(chunk: &[u8]) -> u64 {
    let mut w = 0u64;
    for (k, &c) in chunk.iter().enumerate() {
        w |= u64::from(c) << (8 * k);
    }
    w
}

/// For a word of ASCII bytes: 0x80 in each byte that lies in `lo..=hi`, else 0. Adding
/// `0x80 - x` to a byte below 0x80 sets its top bit exactly when it is >= x, and never
/// carries into the next byte.
#[inline(always)]
fn ascii_range(w: u64, lo: u8, hi: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let ge_lo = w + ONES * u64::from(0x80 - lo);
    let gt_hi = w + ONES * u64::from(0x80 - (hi + 1));
    ge_lo & !gt_hi & (ONES * 0x80)
}

/// The byte offset of the first emoji key in `text`. Only code points whose UTF-8 lead byte
/// can start a key are decoded: keys are U+00A9, U+00AE, U+2000..U+33FF and U+1F000..U+1FFFF
/// (lead bytes C2, E2, E3, F0), so most letters of other scripts are skipped undecoded.
fn first_emoji(text: &str, tables: &Tables) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if matches!(b[i], 0xc2 | 0xe2 | 0xe3 | 0xf0) {
            let c = text[i..].chars().next().expect("a lead byte starts a char");
            if tables.is_emoji(c) {
                return Some(i);
            }
        }
        i += 1;
    }
    None
}

/// The length of the `py_space` character starting at `b[i]`, or 0. Reads bytes, not chars:
/// continuation bytes never start a match, so callers may step one byte at a time.
#[inline(always)]
fn space_len(b: &[u8], i: usize) -> usize {
    let next = |k: usize| b.get(i + k).copied().unwrap_or(0);
    match b[i] {
        b' ' | b'\t'..=b'\r' | 0x1c..=0x1f => 1,
        0..=0x7f => 0,
        // U+0085, U+00A0
        0xc2 if matches!(next(1), 0x85 | 0xa0) => 2,
        // U+1680
        0xe1 if next(1) == 0x9a && next(2) == 0x80 => 3,
        // U+2000..U+200A, U+2028, U+2029, U+202F, U+205F
        0xe2 if (next(1) == 0x80 && matches!(next(2), 0x80..=0x8a | 0xa8 | 0xa9 | 0xaf))
            || (next(1) == 0x81 && next(2) == 0x9f) =>
        {
            3
        }
        // U+3000
        0xe3 if next(1) == 0x80 && next(2) == 0x80 => 3,
        _ => 0,
    }
}

/// `SentiText._strip_punc_if_word`: strip `string.punctuation` from both ends, unless that
/// leaves two code points or fewer (an emoticon such as `:)`), then keep the token whole.
#[cfg(test)]
pub(crate) fn strip_punct(token: &str) -> &str {
    let (s, e) = strip_range(token.as_bytes(), 0, token.len());
    &token[s..e]
}

/// [`strip_punct`] of `b[start..end]`, as the byte range of the result.
#[inline]
fn strip_range(b: &[u8], start: usize, end: usize) -> (usize, usize) {
    let (mut s, mut e) = (start, end);
    while s < e && b[s].is_ascii_punctuation() {
        s += 1;
    }
    while e > s && b[e - 1].is_ascii_punctuation() {
        e -= 1;
    }
    let n = e - s;
    // Code points = bytes that are not continuation bytes; over 8 bytes there are at least 3.
    if n <= 2 || (n <= 8 && b[s..e].iter().filter(|&&x| x & 0xc0 != 0x80).count() <= 2) {
        (start, end)
    } else {
        (s, e)
    }
}

/// KELVIN SIGN, which Python lower-cases to ASCII `k`.
const KELVIN: char = '\u{212a}';

/// The tokeniser's reusable buffer.
#[derive(Default)]
pub(crate) struct Tokens {
    pub toks: Vec<Tok>,
}

impl Tokens {
    /// Tokenises `text` into `self.toks` (cleared first): Python's `str.split()`.
    pub fn fill(&mut self, text: &str, tables: &Tables) {
        self.toks.clear();
        if text.is_ascii() {
            return self.fill_ascii(text, tables);
        }
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let w = space_len(b, i);
            if w > 0 {
                i += w;
                continue;
            }
            let start = i;
            let mut ascii = b[i] < 0x80;
            i += 1;
            while i < b.len() {
                let c = b[i];
                let sep = if c < 0x80 {
                    ASCII_SPACE[usize::from(c)]
                } else {
                    space_len(b, i) > 0
                };
                if sep {
                    break;
                }
                ascii &= c < 0x80;
                i += 1;
            }
            if ascii {
                self.push_ascii(b, start, i, tables);
            } else {
                self.push(text, start, i, tables);
            }
        }
    }

    /// [`Self::fill`] for ASCII text: token ends are found eight bytes at a time.
    fn fill_ascii(&mut self, text: &str, tables: &Tables) {
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if ASCII_SPACE[usize::from(b[i])] {
                i += 1;
                continue;
            }
            let start = i;
            loop {
                if i + 8 <= b.len() {
                    let m = separators(load8(b, i));
                    if m != 0 {
                        i += (m.trailing_zeros() / 8) as usize;
                        break;
                    }
                    i += 8;
                } else {
                    while i < b.len() && !ASCII_SPACE[usize::from(b[i])] {
                        i += 1;
                    }
                    break;
                }
            }
            self.push_ascii(b, start, i, tables);
        }
    }

    /// [`Self::push`] for a token of ASCII text, eight bytes at a time: read as words, then
    /// lower-cased and classified (SWAR) without leaving registers.
    #[inline]
    fn push_ascii(&mut self, b: &[u8], start: usize, end: usize, tables: &Tables) {
        let (mut s, mut e) = (start, end);
        while s < e && ASCII_PUNCT[usize::from(b[s])] {
            s += 1;
        }
        while e > s && ASCII_PUNCT[usize::from(b[e - 1])] {
            e -= 1;
        }
        // ASCII: code points are bytes.
        if e - s <= 2 {
            (s, e) = (start, end);
        }
        let len = e - s;
        if len > MAX_KEY {
            let tb = &b[s..e];
            let upper = py_isupper(std::str::from_utf8(tb).expect("ASCII"));
            return self.toks.push(Tok::of(&NONE, upper, has_nt_lower(tb)));
        }
        // Tokens of up to eight bytes (most) take one word and no loop.
        let w0 = word_at(b, s, len);
        let (w1, w2) = if len > 8 {
            (
                word_at(b, s + 8, len - 8),
                if len > 16 {
                    word_at(b, s + 16, len - 16)
                } else {
                    0
                },
            )
        } else {
            (0, 0)
        };
        let (mut up, mut low, mut apostrophe) = (0u64, 0u64, 0u64);
        let mut words = [w0, w1, w2];
        for w in &mut words {
            let (u, l) = (ascii_range(*w, b'A', b'Z'), ascii_range(*w, b'a', b'z'));
            up |= u;
            low |= l;
            apostrophe |= ascii_range(*w, b'\'', b'\'');
            *w |= u >> 2;
        }
        let entry = tables.lookup(&Key { words, len });
        let negated = entry.negate || (apostrophe != 0 && has_nt_lower(&b[s..e]));
        self.toks.push(Tok::of(entry, up != 0 && low == 0, negated));
    }

    /// Adds the token `text[start..end]` (a whitespace-free run holding non-ASCII).
    fn push(&mut self, text: &str, start: usize, end: usize, tables: &Tables) {
        let b = text.as_bytes();
        let (s, e) = strip_range(b, start, end);
        let tb = &b[s..e];
        let token = &text[s..e];
        // Python lower-cases the token first, but keys are ASCII and the only non-ASCII code
        // points whose lower case holds ASCII are U+0130 (`i` + U+0307, still non-ASCII) and
        // KELVIN SIGN (`k`): any other non-ASCII letter rules a key out, and none lower-cases
        // to `n`, `'` or `t`.
        let kelvin = tb.windows(3).any(|w| w == "\u{212a}".as_bytes());
        let e = if kelvin && token.chars().all(|c| c.is_ascii() || c == KELVIN) {
            kelvin_key(token).map_or(&NONE, |k| tables.lookup(&k))
        } else {
            &NONE
        };
        let (upper, negated) = (py_isupper(token), e.negate || has_nt_lower(tb));
        self.toks.push(Tok::of(e, upper, negated));
    }
}

/// Eight bytes of `b` from `i` (which has eight bytes left) as a little-endian word.
#[inline(always)]
fn load8(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().expect("eight bytes"))
}

/// The `len.min(8)` bytes of `b` at `i` as a zero-padded word: one load when the text has
/// eight bytes there, byte by byte at its very end.
#[inline(always)]
fn word_at(b: &[u8], i: usize, len: usize) -> u64 {
    if len >= 8 {
        load8(b, i)
    } else if i + 8 <= b.len() {
        load8(b, i) & ((1u64 << (8 * len)) - 1)
    } else {
        pack(&b[i..i + len])
    }
}

/// 0x80 in each byte of an ASCII word that `py_space` accepts (U+0009..U+000D, U+001C..U+0020).
#[inline(always)]
fn separators(w: u64) -> u64 {
    ascii_range(w, 0x09, 0x0d) | ascii_range(w, 0x1c, 0x20)
}

/// The lower-cased key of a token of ASCII and KELVIN SIGN, if short enough.
fn kelvin_key(token: &str) -> Option<Key> {
    let mut lower = [0u8; MAX_KEY];
    let mut n = 0;
    for c in token.chars() {
        if n == MAX_KEY {
            return None;
        }
        lower[n] = if c == KELVIN {
            b'k'
        } else {
            (c as u8).to_ascii_lowercase()
        };
        n += 1;
    }
    Key::new(&lower[..n])
}

/// `"n't" in word.lower()`: non-ASCII letters never lower-case to `n`, `'` or `t`, so only
/// ASCII bytes can make the match.
fn has_nt_lower(w: &[u8]) -> bool {
    w.windows(3).any(|x| {
        x[0].eq_ignore_ascii_case(&b'n') && x[1] == b'\'' && x[2].eq_ignore_ascii_case(&b't')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code point Python 3.11's `str.isspace()` accepts (what `str.split()` splits on),
    /// listed by `[hex(c) for c in range(0x110000) if chr(c).isspace()]`.
    const PY_SPACES: [u32; 29] = [
        0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001,
        0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029,
        0x202f, 0x205f, 0x3000,
    ];

    #[test]
    fn space_len_is_pythons_isspace_for_every_code_point() {
        let mut buf = [0u8; 4];
        for c in (0..=0x10ffffu32).filter_map(char::from_u32) {
            let enc = c.encode_utf8(&mut buf).as_bytes();
            let want = if PY_SPACES.contains(&(c as u32)) {
                enc.len()
            } else {
                0
            };
            assert_eq!(space_len(enc, 0), want, "U+{:04X}", c as u32);
            // A continuation byte never starts a match.
            for i in 1..enc.len() {
                assert_eq!(space_len(enc, i), 0, "U+{:04X} byte {i}", c as u32);
            }
        }
    }

    #[test]
    fn punctuation_is_stripped_unless_two_characters_or_fewer_remain() {
        assert_eq!(strip_punct("(good)!"), "good");
        assert_eq!(strip_punct(":)"), ":)");
        assert_eq!(strip_punct("gd!"), "gd!");
        assert_eq!(strip_punct("'éé'"), "'éé'");
        assert_eq!(strip_punct("'ééé'"), "ééé");
        assert_eq!(strip_punct("!!!"), "!!!");
    }

    #[test]
    fn isupper_follows_python() {
        for (s, want) in [
            ("GOOD", true),
            ("GOOD!", true),
            ("Good", false),
            ("123", false),
            (":D", true),
            ("ÉNORME", true),
            ("ÉNORMe", false),
            ("\u{1c5}A", false),
            ("\u{24b6}", true),
            ("STRAẞE", true),
            ("ß", false),
        ] {
            assert_eq!(py_isupper(s), want, "{s:?}");
        }
    }
}
