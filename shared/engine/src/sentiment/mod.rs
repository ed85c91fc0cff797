//! VADER sentiment of free text (the `lexicon` engine of the `derive: {sentiment: ...}` step):
//! a port of the reference implementation, PyPI `vadersentiment==3.3.2`, whose compound score
//! it reproduces exactly (the differential test in `tests/sentiment_vader.rs` checks that),
//! quirks included. Pure and allocation-free per call once its buffers have grown: build one
//! [`Analyzer`] per worker thread and score every row's field with it.
//!
//! - [`Analyzer::polarity_scores`]: a field's bytes (UTF-8; invalid sequences are read as
//!   U+FFFD, as Python's `bytes.decode("utf-8", "replace")` does) to VADER's four scores.
//! - [`Label::of`] and [`ScoreText::of`]: the two output columns, the label by VADER's own
//!   thresholds and the score with four fraction digits.
//!
//! Not here: the rule-language step, CSV fields, sentence splitting (VADER scores a field as
//! one text, as the reference does when handed the whole field), languages other than English.
//! Why each rule is as it is: docs/sentiment.md.

mod lexicon;
mod rules;
mod text;

use std::fmt;

pub use rules::Scores;

use lexicon::Tables;
use text::Tokens;

/// Scores texts, reusing its buffers from one call to the next.
pub struct Analyzer {
    tables: &'static Tables,
    /// The field when it is not valid UTF-8, decoded with replacement characters.
    decoded: String,
    /// The text with emoji replaced by their descriptions, when it has any.
    replaced: String,
    tokens: Tokens,
    sentiments: Vec<f64>,
}

impl Default for Analyzer {
    fn default() -> Self {
        Self::new()
    }
}

impl Analyzer {
    /// Builds the analyzer; the first one built in a process also builds the shared word
    /// table (about a millisecond).
    pub fn new() -> Analyzer {
        Analyzer {
            tables: Tables::get(),
            decoded: String::new(),
            replaced: String::new(),
            tokens: Tokens::default(),
            sentiments: Vec::new(),
        }
    }

    /// VADER's scores of a field's bytes.
    pub fn polarity_scores(&mut self, field: &[u8]) -> Scores {
        self.run(field, rules::score_valence)
    }

    /// The compound score of a field's bytes, in [-1, 1] with 4 decimals (what
    /// [`Self::polarity_scores`] gives, without computing the three proportions).
    pub fn compound(&mut self, field: &[u8]) -> f64 {
        self.run(field, rules::compound)
    }

    /// Decodes, replaces emoji, tokenises, applies the rules, and hands the sentiments and the
    /// text (where the punctuation emphasis is counted) to `finish`.
    fn run<T>(&mut self, field: &[u8], finish: fn(&[f64], &str) -> T) -> T {
        let text = if field.is_ascii() {
            // Most fields: valid UTF-8 with no emoji (every emoji key is above U+00A8).
            std::str::from_utf8(field).expect("ASCII is UTF-8")
        } else {
            let text = match simdutf8::basic::from_utf8(field) {
                Ok(s) => s,
                Err(_) => {
                    self.decoded.clear();
                    self.decoded.push_str(&String::from_utf8_lossy(field));
                    self.decoded.as_str()
                }
            };
            if text::replace_emoji(text, self.tables, &mut self.replaced) {
                self.replaced.as_str()
            } else {
                text
            }
        };
        self.tokens.fill(text, self.tables);
        rules::sentiments(&self.tokens.toks, &mut self.sentiments);
        finish(&self.sentiments, text)
    }

    /// VADER's scores of a text.
    pub fn polarity_scores_str(&mut self, text: &str) -> Scores {
        self.polarity_scores(text.as_bytes())
    }
}

/// VADER's sentiment label of a compound score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    Positive,
    Neutral,
    Negative,
}

impl Label {
    /// `positive` at 0.05 and above, `negative` at -0.05 and below, else `neutral`
    /// (the thresholds VADER's documentation gives).
    pub fn of(compound: f64) -> Label {
        if compound >= 0.05 {
            Label::Positive
        } else if compound <= -0.05 {
            Label::Negative
        } else {
            Label::Neutral
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Label::Positive => "positive",
            Label::Neutral => "neutral",
            Label::Negative => "negative",
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compound score printed with four fraction digits (`0.4404`, `-1.0000`, `0.0000`), on
/// the stack. The decimal is the one Python's `round(x, 4)` picks; -0 prints as `0.0000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScoreText {
    buf: [u8; 7],
    len: u8,
}

impl ScoreText {
    pub fn of(compound: f64) -> ScoreText {
        let k = rules::round_scaled(compound, 4);
        let mut buf = [0u8; 7];
        let mut len = 0;
        if k < 0 {
            buf[0] = b'-';
            len = 1;
        }
        let m = k.unsigned_abs().min(99_999);
        buf[len] = b'0' + (m / 10_000) as u8;
        buf[len + 1] = b'.';
        let mut frac = m % 10_000;
        for d in (0..4).rev() {
            buf[len + 2 + d] = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        ScoreText {
            buf,
            len: (len + 6) as u8,
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).expect("ASCII digits")
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

impl fmt::Display for ScoreText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
