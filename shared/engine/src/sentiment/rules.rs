//! VADER's scoring rules, ported line by line from vaderSentiment 3.3.2's
//! `SentimentIntensityAnalyzer` (`polarity_scores`, `sentiment_valence`, `scalar_inc_dec`,
//! `_negation_check`, `_special_idioms_check`, `_least_check`, `_but_check`, `score_valence`).
//! The reference's quirks are kept on purpose, since the scores must match it: each is named
//! where it happens. Floating-point operations are done in the reference's order.
//!
//! Not here: tokenising (`text.rs`) or the tables (`lexicon.rs`).

use super::lexicon::{Word, B_DECR};
use super::text::Tok;

/// Empirically derived increase for an ALL-CAPS word among mixed-case ones (`C_INCR`).
const C_INCR: f64 = 0.733;
/// The factor a negation applies (`N_SCALAR`).
const N_SCALAR: f64 = -0.74;

/// `allcap_differential`: some, but not all, tokens are ALL CAPS.
pub(crate) fn cap_differential(toks: &[Tok]) -> bool {
    let upper = toks.iter().filter(|t| t.upper).count();
    upper > 0 && upper < toks.len()
}

/// The per-token sentiments of `polarity_scores`' loop, `_but_check` applied, into `out`.
pub(crate) fn sentiments(toks: &[Tok], out: &mut Vec<f64>) {
    out.clear();
    let cap_diff = cap_differential(toks);
    for i in 0..toks.len() {
        let t = &toks[i];
        // Boosters, and `kind` before `of`, carry no valence of their own.
        if t.booster != 0.0
            || (t.word == Word::Kind && toks.get(i + 1).is_some_and(|n| n.word == Word::Of))
        {
            out.push(0.0);
            continue;
        }
        out.push(valence(toks, i, cap_diff));
    }
    but_check(toks, out);
}

/// `sentiment_valence` for token `i` (0 when it is not in the lexicon).
fn valence(toks: &[Tok], i: usize, cap_diff: bool) -> f64 {
    let item = &toks[i];
    if !item.in_lexicon() {
        return 0.0;
    }
    let w = |k: usize| toks[k].word;
    let mut valence = item.lex;
    // `no` before a lexicon word negates that word instead of counting itself.
    if item.word == Word::No && i + 1 < toks.len() && toks[i + 1].in_lexicon() {
        valence = 0.0;
    }
    if (i > 0 && w(i - 1) == Word::No)
        || (i > 1 && w(i - 2) == Word::No)
        || (i > 2 && w(i - 3) == Word::No && matches!(w(i - 1), Word::Or | Word::Nor))
    {
        valence = item.lex * N_SCALAR;
    }
    // Quirk kept: a valence of exactly 0 (`no` before a lexicon word) still takes -C_INCR.
    if item.upper && cap_diff {
        if valence > 0.0 {
            valence += C_INCR;
        } else {
            valence -= C_INCR;
        }
    }
    for start_i in 0..3 {
        if i > start_i && !toks[i - (start_i + 1)].in_lexicon() {
            let mut s = scalar_inc_dec(&toks[i - (start_i + 1)], valence, cap_diff);
            if start_i == 1 && s != 0.0 {
                s *= 0.95;
            }
            if start_i == 2 && s != 0.0 {
                s *= 0.9;
            }
            valence += s;
            valence = negation_check(valence, toks, start_i, i);
            if start_i == 2 {
                valence = special_idioms_check(valence, toks, i);
            }
        }
    }
    least_check(valence, toks, i)
}

/// `scalar_inc_dec`: the booster weight of a preceding word, signed like the valence.
fn scalar_inc_dec(word: &Tok, valence: f64, cap_diff: bool) -> f64 {
    let mut scalar = 0.0;
    if word.booster != 0.0 {
        scalar = word.booster;
        if valence < 0.0 {
            scalar *= -1.0;
        }
        if word.upper && cap_diff {
            if valence > 0.0 {
                scalar += C_INCR;
            } else {
                scalar -= C_INCR;
            }
        }
    }
    scalar
}

/// `_negation_check` for the word `start_i + 1` places before token `i`.
fn negation_check(valence: f64, toks: &[Tok], start_i: usize, i: usize) -> f64 {
    let w = |k: usize| toks[k].word;
    let so_this = |k: usize| matches!(w(k), Word::So | Word::This);
    match start_i {
        0 if toks[i - 1].negated => valence * N_SCALAR,
        1 => {
            if w(i - 2) == Word::Never && so_this(i - 1) {
                valence * 1.25
            } else if w(i - 2) == Word::Without && w(i - 1) == Word::Doubt {
                valence
            } else if toks[i - 2].negated {
                valence * N_SCALAR
            } else {
                valence
            }
        }
        2 => {
            // Quirk kept: Python's `a and b or c` makes any `so`/`this` just before the word
            // amplify it, with or without `never`.
            if (w(i - 3) == Word::Never && so_this(i - 2)) || so_this(i - 1) {
                valence * 1.25
            } else if w(i - 3) == Word::Without
                && (w(i - 2) == Word::Doubt || w(i - 1) == Word::Doubt)
            {
                valence
            } else if toks[i - 3].negated {
                valence * N_SCALAR
            } else {
                valence
            }
        }
        _ => valence,
    }
}

/// `SPECIAL_CASES` for a run of two or three words (`badass`, a one-word key, can never be
/// built from a two- or three-word run: dead in the reference too).
fn special_case(words: &[Word]) -> Option<f64> {
    use Word::*;
    match words {
        [The, Shit] | [The, Bomb] | [To, Die, For] => Some(3.0),
        [Bad, Ass] => Some(1.5),
        [Bus, Stop] => Some(0.0),
        [Yeah, Right] => Some(-2.0),
        [Kiss, Of, Death] => Some(-1.5),
        [Beating, Heart] => Some(3.5),
        _ => None,
    }
}

/// A word of a `SPECIAL_CASES` key or of a two-word `BOOSTER_DICT` key.
fn idiom_word(w: Word) -> bool {
    use Word::*;
    matches!(
        w,
        The | Shit
            | Bomb
            | Bad
            | Ass
            | Bus
            | Stop
            | Yeah
            | Right
            | Kiss
            | Of
            | Death
            | To
            | Die
            | For
            | Beating
            | Heart
            | Kind
            | Sort
            | Just
            | Enough
    )
}

/// The two-word keys of `BOOSTER_DICT`, all dampeners.
fn booster_bigram(a: Word, b: Word) -> bool {
    matches!(
        (a, b),
        (Word::Kind, Word::Of) | (Word::Sort, Word::Of) | (Word::Just, Word::Enough)
    )
}

/// `_special_idioms_check` (reached only with `i >= 3`). `SENTIMENT_LADEN_IDIOMS` is never
/// consulted by the reference (`_sentiment_laden_idioms_check` is not called), so not here.
fn special_idioms_check(mut valence: f64, toks: &[Tok], i: usize) -> f64 {
    let w = |k: usize| toks[k].word;
    let (w3, w2, w1, w0) = (w(i - 3), w(i - 2), w(i - 1), w(i));
    // Every sequence below holds one of w2, w1, w0, and every key is made of idiom words:
    // most lexicon words have none near them, and skip the eight comparisons.
    if !(idiom_word(w2) || idiom_word(w1) || idiom_word(w0)) {
        return valence;
    }
    // onezero, twoonezero, twoone, threetwoone, threetwo: the first that matches.
    let sequences: [&[Word]; 5] = [
        &[w1, w0],
        &[w2, w1, w0],
        &[w2, w1],
        &[w3, w2, w1],
        &[w3, w2],
    ];
    if let Some(v) = sequences.iter().find_map(|s| special_case(s)) {
        valence = v;
    }
    if toks.len() - 1 > i {
        if let Some(v) = special_case(&[w0, w(i + 1)]) {
            valence = v;
        }
    }
    if toks.len() - 1 > i + 1 {
        if let Some(v) = special_case(&[w0, w(i + 1), w(i + 2)]) {
            valence = v;
        }
    }
    // n_grams threetwoone, threetwo, twoone: no three-word booster key exists.
    if booster_bigram(w3, w2) {
        valence += B_DECR;
    }
    if booster_bigram(w2, w1) {
        valence += B_DECR;
    }
    valence
}

/// `_least_check`: `least` before a word negates it, unless it reads `at least`/`very least`.
fn least_check(valence: f64, toks: &[Tok], i: usize) -> f64 {
    // `least` is not in the lexicon, so the reference's `not in lexicon` test always holds.
    if i > 0 && toks[i - 1].word == Word::Least {
        if i > 1 {
            if !matches!(toks[i - 2].word, Word::At | Word::Very) {
                return valence * N_SCALAR;
            }
            return valence;
        }
        return valence * N_SCALAR;
    }
    valence
}

/// `_but_check`, with its quirk: each sentiment is found again by value (`list.index`), so a
/// value equal to an earlier one (after that one was scaled) scales the earlier one instead.
fn but_check(toks: &[Tok], sentiments: &mut [f64]) {
    let Some(bi) = toks.iter().position(|t| t.word == Word::But) else {
        return;
    };
    for k in 0..sentiments.len() {
        let sentiment = sentiments[k];
        let si = sentiments
            .iter()
            .position(|&s| s == sentiment)
            .expect("the value was just read from the list");
        if si < bi {
            sentiments[si] = sentiment * 0.5;
        } else if si > bi {
            sentiments[si] = sentiment * 1.5;
        }
    }
}

/// `_punctuation_emphasis`: up to four `!` add 0.292 each; two or three `?` add 0.18 each,
/// more add 0.96.
pub(crate) fn punctuation_emphasis(text: &str) -> f64 {
    // Most texts hold none or a few: find them with memchr rather than test every byte.
    let (mut ep, mut qm) = (0usize, 0usize);
    for i in memchr::memchr2_iter(b'!', b'?', text.as_bytes()) {
        if text.as_bytes()[i] == b'!' {
            ep += 1;
        } else {
            qm += 1;
        }
    }
    let ep_amplifier = ep.min(4) as f64 * 0.292;
    let qm_amplifier = match qm {
        0 | 1 => 0.0,
        2 | 3 => qm as f64 * 0.18,
        _ => 0.96,
    };
    ep_amplifier + qm_amplifier
}

/// vaderSentiment's four scores, rounded as it rounds them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scores {
    pub neg: f64,
    pub neu: f64,
    pub pos: f64,
    /// Normalised sum in [-1, 1], rounded to 4 decimals.
    pub compound: f64,
}

/// The first half of `score_valence`: the sum of the sentiments (Python 3.11's `sum`, plain
/// left-to-right addition), pushed away from 0 by the punctuation emphasis, and that emphasis.
fn emphasised_sum(sentiments: &[f64], text: &str) -> (f64, f64) {
    let mut sum_s = 0.0;
    for &s in sentiments {
        sum_s += s;
    }
    let punct = punctuation_emphasis(text);
    if sum_s > 0.0 {
        sum_s += punct;
    } else if sum_s < 0.0 {
        sum_s -= punct;
    }
    (sum_s, punct)
}

/// `score_valence`'s compound score alone.
pub(crate) fn compound(sentiments: &[f64], text: &str) -> f64 {
    // All zero (no lexicon word, the common case of short fields): normalize(0) is 0.
    if sentiments.iter().all(|&s| s == 0.0) {
        return 0.0;
    }
    py_round(normalize(emphasised_sum(sentiments, text).0), 4)
}

/// `score_valence`.
pub(crate) fn score_valence(sentiments: &[f64], text: &str) -> Scores {
    if sentiments.is_empty() {
        return Scores {
            neg: 0.0,
            neu: 0.0,
            pos: 0.0,
            compound: 0.0,
        };
    }
    let (sum_s, punct) = emphasised_sum(sentiments, text);
    let compound = normalize(sum_s);
    let (mut pos_sum, mut neg_sum, mut neu_count) = (0.0f64, 0.0f64, 0u32);
    for &s in sentiments {
        if s > 0.0 {
            pos_sum += s + 1.0;
        }
        if s < 0.0 {
            neg_sum += s - 1.0;
        }
        if s == 0.0 {
            neu_count += 1;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += punct;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= punct;
    }
    let total = pos_sum + neg_sum.abs() + f64::from(neu_count);
    Scores {
        neg: py_round((neg_sum / total).abs(), 3),
        neu: py_round((f64::from(neu_count) / total).abs(), 3),
        pos: py_round((pos_sum / total).abs(), 3),
        compound: py_round(compound, 4),
    }
}

/// `normalize` with alpha 15, clamped to [-1, 1].
fn normalize(score: f64) -> f64 {
    (score / (score * score + 15.0).sqrt()).clamp(-1.0, 1.0)
}

/// Python's `round(x, digits)` for |x| <= 1 and digits 3 or 4: the decimal nearest the exact
/// binary value, ties to even, then the double nearest that decimal.
pub(crate) fn py_round(x: f64, digits: i32) -> f64 {
    let scale = if digits == 3 { 1e3 } else { 1e4 };
    (round_scaled(x, digits) as f64) / scale
}

/// `x * 10^digits` rounded exactly (ties to even), as an integer. The product in floating
/// point is off by at most half an ulp; only when it lands near a half is the exact binary
/// value compared with the midpoint.
pub(crate) fn round_scaled(x: f64, digits: i32) -> i64 {
    let scale: u32 = if digits == 3 { 1000 } else { 10_000 };
    let y = x * f64::from(scale);
    let a = y.abs();
    if a >= 4e15 {
        return y as i64; // not a value this module rounds (scores lie in [-1, 1])
    }
    // `as` truncates, which is floor for a >= 0 (and needs no libm call).
    let k = a as i64;
    let frac = a - k as f64;
    if (frac - 0.5).abs() > 1e-9 {
        let r = k + i64::from(frac > 0.5);
        return if x < 0.0 { -r } else { r };
    }
    // |x| = mant * 2^e exactly; compare |x| * 2 * scale with 2k + 1, both scaled by 2^-e.
    let bits = x.abs().to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let mant = u128::from((bits & ((1u64 << 52) - 1)) | (1u64 << 52));
    let shift = 1075 - exp;
    if exp == 0 || !(1..=100).contains(&shift) {
        return y as i64; // subnormal or huge: as above
    }
    let lhs = mant * u128::from(2 * scale);
    let mid = (2 * k as u128 + 1) << shift;
    let r = match lhs.cmp(&mid) {
        std::cmp::Ordering::Less => k,
        std::cmp::Ordering::Greater => k + 1,
        std::cmp::Ordering::Equal => k + (k & 1),
    };
    if x < 0.0 {
        -r
    } else {
        r
    }
}
