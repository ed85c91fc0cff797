//! From a field's text to VADER's token list, as vaderSentiment 3.3.2's `polarity_scores` and
//! `SentiText` build it: emoji replaced by their descriptions, split on Python's whitespace,
//! leading and trailing ASCII punctuation stripped unless that leaves two characters or fewer,
//! then each token lower-cased (Python `str.lower`) and looked up once.
//!
//! Not here: any scoring rule. Python string predicates are reproduced from CPython 3.11
//! (`str.split`, `str.isupper`, `str.lower`); Rust's Unicode tables may be a version or two
//! newer than Python's, which can only matter for code points assigned since Unicode 14.

use super::lexicon::{Entry, Tables, Word};

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
    pub fn in_lexicon(&self) -> bool {
        !self.lex.is_nan()
    }
}

/// Python's `str.isspace()`, which `str.split()` splits on: Unicode White_Space plus the
/// ASCII separators U+001C..U+001F, which Rust's `char::is_whitespace` leaves out.
#[inline]
pub(crate) fn py_space(c: char) -> bool {
    matches!(c, '\u{1c}'..='\u{1f}') || c.is_whitespace()
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
    if s.is_ascii() {
        for &b in s.as_bytes() {
            if b.is_ascii_lowercase() {
                return false;
            }
            cased |= b.is_ascii_uppercase();
        }
        return cased;
    }
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
    // Every emoji key is a code point above U+00A8: ASCII text has none.
    if text.is_ascii() {
        return false;
    }
    let Some(first) = text
        .char_indices()
        .find(|&(_, c)| tables.emoji(c).is_some())
    else {
        return false;
    };
    out.clear();
    out.push_str(&text[..first.0]);
    let mut prev_space = text[..first.0].ends_with(' ') || first.0 == 0;
    for c in text[first.0..].chars() {
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

/// `SentiText._strip_punc_if_word`: strip `string.punctuation` from both ends, unless that
/// leaves two code points or fewer (an emoticon such as `:)`), then keep the token whole.
#[inline]
pub(crate) fn strip_punct(token: &str) -> &str {
    let stripped = token.trim_matches(|c: char| c.is_ascii_punctuation());
    if stripped.len() <= 2 || (stripped.len() <= 8 && stripped.chars().count() <= 2) {
        token
    } else {
        stripped
    }
}

/// Reusable buffers of the tokeniser.
#[derive(Default)]
pub(crate) struct Tokens {
    pub toks: Vec<Tok>,
    lower: String,
}

impl Tokens {
    /// Tokenises `text` into `self.toks` (cleared first).
    pub fn fill(&mut self, text: &str, tables: &Tables) {
        self.toks.clear();
        for raw in text.split(py_space) {
            if raw.is_empty() {
                continue;
            }
            let token = strip_punct(raw);
            self.lower.clear();
            if token.is_ascii() {
                // SAFETY-free fast path: ASCII lower-casing keeps the bytes valid UTF-8.
                self.lower.push_str(token);
                self.lower.make_ascii_lowercase();
            } else {
                lower_into(token, &mut self.lower);
            }
            let e: &Entry = tables.lookup(&self.lower);
            let negated = e.negate || (self.lower.len() >= 3 && self.lower.contains("n't"));
            self.toks.push(Tok {
                lex: e.lex,
                booster: e.booster,
                negated,
                upper: py_isupper(token),
                word: e.word,
            });
        }
    }
}

/// Python `str.lower()` of a non-ASCII token. Only the final-sigma context rule is not applied
/// (σ/ς): that cannot change a look-up, as every key a lowered token is compared with is
/// ASCII or holds an uppercase letter.
fn lower_into(token: &str, out: &mut String) {
    for c in token.chars() {
        out.extend(c.to_lowercase());
    }
}
