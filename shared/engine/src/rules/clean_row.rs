//! Writing a record's clean row: the layout (dropped columns left out), each column's
//! transforms and masks, the `_violations` column, and the columns of `derive` steps. An
//! unquoted record's untransformed columns are copied from its source bytes, adjacent ones as
//! one slice (the compiled plan).
//!
//! Not here: deciding whether the record is clean (see `run`).

use super::compiled::{Act, CTransform, CompiledRules, OutOp};
use super::doc::SentimentEngine;
use super::mask::{partial, partial_bytes, Tokenizer};
use super::run::{RuleRunner, Scratch};
use crate::csv_write::write_field;
use crate::grading::{Grade, ModelRow};
use crate::record::Record;
use crate::sentiment::{Analyzer, Label, ScoreText};

impl RuleRunner {
    /// Writes the clean row of the record last passed to [`check`](Self::check) (transforms,
    /// layout, `_violations`), without terminator.
    pub fn write_clean(&mut self, rec: &Record<'_>, out: &mut Vec<u8>) {
        self.write_clean_raw(rec, None, out);
        self.resolve(out);
    }

    /// Fills in the tokens [`write_clean_raw`](Self::write_clean_raw) left pending in `out`
    /// (computed two at a time; see `mask::Tokenizer::token_bytes`). Call it before `out` is
    /// read or cleared, with the `out` of those calls.
    pub(crate) fn resolve(&mut self, out: &mut [u8]) {
        for t in &mut self.s.tokenizers {
            t.resolve(out);
        }
    }

    /// [`write_clean`](Self::write_clean) with the record's source bytes when they are the
    /// fields joined by `,` with no quoting (`,` delimiter, no quoted field): untransformed
    /// fields are then copied from `raw`, adjacent ones as one slice, without a scan. Tokens
    /// may be left pending: call [`resolve`](Self::resolve) before `out` is read or cleared.
    pub(crate) fn write_clean_raw(
        &mut self,
        rec: &Record<'_>,
        raw: Option<&[u8]>,
        out: &mut Vec<u8>,
    ) {
        let r = &*self.rules;
        let s = &mut self.s;
        let start = out.len();
        match raw {
            Some(raw) => {
                for (k, op) in r.plan.iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    match *op {
                        OutOp::Run(first, last) => {
                            // Field `c` starts at its text offset plus the `c` commas before it.
                            let (a, _) = rec.span(first);
                            let (_, b) = rec.span(last);
                            put(out, &raw[a + first..b + last]);
                        }
                        OutOp::Token(c, i) => {
                            let v = rec.get(c).unwrap_or("");
                            if !v.is_empty() {
                                s.tokenizers[i].token_bytes(v, out, true);
                            }
                        }
                        OutOp::Partial(c) => partial_bytes(rec.get(c).unwrap_or(""), out),
                        OutOp::Trim(c) => put(out, trim(rec.get(c).unwrap_or("")).as_bytes()),
                        OutOp::Col(c) => {
                            let v = rec.get(c).unwrap_or("");
                            write_transformed(&r.transforms[c], v, r.keeps_plain[c], s, out);
                        }
                    }
                }
            }
            None => {
                for (k, &c) in r.layout.iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    let v = rec.get(c).unwrap_or("");
                    if r.transforms[c].is_empty() {
                        write_field(out, v.as_bytes());
                    } else {
                        write_transformed(&r.transforms[c], v, false, s, out);
                    }
                }
            }
        }
        if r.flag_column {
            if !r.layout.is_empty() {
                out.push(b',');
            }
            let mut first = true;
            for &i in &s.violated {
                if r.rules[i].act == Act::Flag {
                    if !first {
                        out.push(b';');
                    }
                    first = false;
                    out.extend_from_slice(r.rules[i].id.as_bytes());
                }
            }
        }
        if !r.derives.is_empty() {
            write_derived(r, rec, s, out);
        }
        if out.len() == start && r.output_columns.len() == 1 {
            out.extend_from_slice(b"\"\"");
        }
    }
}

/// Writes the derived columns (after the layout and `_violations`): per `derive` step, the
/// compound score with 4 fraction digits and the label, both never quoted; both empty when the
/// text is empty (not scored: an absent text is not a neutral one). The score is of the
/// source field as read (unquoted), before the column's transforms: a `redact` or `token` mask
/// would leave nothing to score, and a score and a label leak none of the text. The scores are
/// kept for [`RuleRunner::derived_scores`] (the profile). A `model` step's pair is left out and
/// its text handed out (`ModelRow`, its place noted) when the runner collects model rows; else
/// it is an empty score and `not_graded`. An empty text is not scored by either engine.
#[inline(never)]
fn write_derived(r: &CompiledRules, rec: &Record<'_>, s: &mut Scratch, out: &mut Vec<u8>) {
    let mut step = 0u16;
    for (k, &(c, engine)) in r.derives.iter().enumerate() {
        if k > 0 || !r.layout.is_empty() || r.flag_column {
            out.push(b',');
        }
        let text = rec.get(c).unwrap_or("");
        s.held[k] = false;
        match engine {
            SentimentEngine::Lexicon => {
                let analyzer = s.analyzer.get_or_insert_with(Analyzer::new);
                let score = (!text.is_empty()).then(|| analyzer.compound(text.as_bytes()));
                s.scores[k] = score;
                if let Some(compound) = score {
                    out.extend_from_slice(ScoreText::of(compound).as_bytes());
                    out.push(b',');
                    out.extend_from_slice(Label::of(compound).as_str().as_bytes());
                } else {
                    out.push(b',');
                }
            }
            SentimentEngine::Model => {
                s.scores[k] = None;
                if text.is_empty() {
                    out.push(b',');
                } else if s.collect_model {
                    s.held[k] = true;
                    s.model_rows.push(ModelRow {
                        offset: s.offset,
                        step,
                        derive: k,
                        text: text.to_string(),
                        at: out.len(),
                    });
                } else {
                    Grade::NotGraded.write(out);
                }
                step += 1;
            }
        }
    }
}

/// Scores each `lexicon` derive step's source field into `s.scores` (`None` for an empty
/// field; `model` steps are not graded without a written row: `None`).
fn score_derived(r: &CompiledRules, rec: &Record<'_>, s: &mut Scratch) {
    for (k, &(c, engine)) in r.derives.iter().enumerate() {
        s.held[k] = false;
        let text = rec.get(c).unwrap_or("");
        s.scores[k] = match engine {
            SentimentEngine::Lexicon if !text.is_empty() => {
                let analyzer = s.analyzer.get_or_insert_with(Analyzer::new);
                Some(analyzer.compound(text.as_bytes()))
            }
            _ => None,
        };
    }
}

impl RuleRunner {
    /// Per `derive` step (in the order of their output columns), the score of the clean row
    /// last written by [`write_clean`](Self::write_clean) or scored by
    /// [`score_derived`](Self::score_derived); `None` when its text was empty (or a model
    /// step's row was not graded). Steps whose row was handed out for a model grade
    /// ([`derived_held`](Self::derived_held)) have their grade given at
    /// [`fill_model_rows`](Self::fill_model_rows) instead. Empty without derive steps.
    pub fn derived_scores(&self) -> &[Option<f64>] {
        &self.s.scores
    }

    /// Per `derive` step, whether the row last written waits for a model grade.
    pub fn derived_held(&self) -> &[bool] {
        &self.s.held
    }

    /// Scores the derive steps of a clean record without writing its row (a run that writes
    /// no outputs still profiles the scores).
    pub fn score_derived(&mut self, rec: &Record<'_>) {
        if !self.rules.derives.is_empty() {
            score_derived(&self.rules, rec, &mut self.s);
        }
    }
}

/// Writes the transformed `v` as a CSV field. `plain`: the result is known to need no quotes
/// (an unquoted record's field under transforms that keep it plain). The common single
/// transforms write straight into `out`.
#[inline]
fn write_transformed(ts: &[CTransform], v: &str, plain: bool, s: &mut Scratch, out: &mut Vec<u8>) {
    match ts {
        // Tokens are hex or base64url: never quoted.
        [CTransform::Token(i)] => {
            if !v.is_empty() {
                s.tokenizers[*i].token_bytes(v, out, true);
            }
        }
        [CTransform::Partial] if plain => partial_bytes(v, out),
        [CTransform::Trim] => {
            let t = trim(v);
            if plain {
                put(out, t.as_bytes());
            } else {
                write_field(out, t.as_bytes());
            }
        }
        _ => {
            let t = transform(ts, v, s);
            if plain {
                out.extend_from_slice(t.as_bytes());
            } else {
                write_field(out, t.as_bytes());
            }
        }
    }
}

/// `out.extend_from_slice(b)` with the copy inline for up to 16 bytes (two overlapping word
/// copies instead of a `memcpy` call: clean rows are mostly short slices).
#[inline(always)]
fn put(out: &mut Vec<u8>, b: &[u8]) {
    let n = b.len();
    if n > 16 {
        out.extend_from_slice(b);
        return;
    }
    out.reserve(n);
    // SAFETY: `reserve` made room for `n` bytes past `len`. Every write below is within
    // `dst..dst + n` and every read within `src..src + n` (the cases bound `n`); the two
    // overlapping copies write the same bytes twice. `b` cannot overlap `out`'s spare capacity.
    unsafe {
        let end = out.len();
        let dst = out.as_mut_ptr().add(end);
        let src = b.as_ptr();
        match n {
            0 => {}
            1..=3 => {
                *dst = *src;
                *dst.add(n / 2) = *src.add(n / 2);
                *dst.add(n - 1) = *src.add(n - 1);
            }
            4..=7 => {
                let x = src.cast::<u32>().read_unaligned();
                let y = src.add(n - 4).cast::<u32>().read_unaligned();
                dst.cast::<u32>().write_unaligned(x);
                dst.add(n - 4).cast::<u32>().write_unaligned(y);
            }
            _ => {
                let x = src.cast::<u64>().read_unaligned();
                let y = src.add(n - 8).cast::<u64>().read_unaligned();
                dst.cast::<u64>().write_unaligned(x);
                dst.add(n - 8).cast::<u64>().write_unaligned(y);
            }
        }
        out.set_len(end + n);
    }
}

/// `str::trim`, deciding from the first and last bytes when they are ASCII and not whitespace
/// (`char::is_whitespace` of an ASCII byte: tab, LF, vertical tab, form feed, CR, space).
#[inline]
fn trim(v: &str) -> &str {
    let ws = |b: u8| b >= 0x80 || matches!(b, b'\t'..=b'\r' | b' ');
    match (v.as_bytes().first(), v.as_bytes().last()) {
        (Some(&f), Some(&l)) if ws(f) || ws(l) => v.trim(),
        _ => v,
    }
}

/// Applies a column's transforms to `v`. `trim` and `default` borrow (no copy); the others
/// write from the current value into a scratch string, alternating between two.
fn transform<'a>(ts: &'a [CTransform], v: &'a str, s: &'a mut Scratch) -> &'a str {
    // `None`: the value is `cur`; `Some((x, y))`: the value is `s.a[x..y]`.
    let mut cur: &str = v;
    let mut in_a: Option<(usize, usize)> = None;
    for t in ts {
        match t {
            CTransform::Trim => match &mut in_a {
                None => cur = trim(cur),
                Some((x, y)) => {
                    let full = &s.a[*x..*y];
                    let lead = full.len() - full.trim_start().len();
                    let t = full.trim();
                    *x += lead;
                    *y = *x + t.len();
                }
            },
            CTransform::Default(d) => {
                let empty = match in_a {
                    None => cur.is_empty(),
                    Some((x, y)) => x == y,
                };
                if empty {
                    cur = d;
                    in_a = None;
                }
            }
            _ => {
                s.b.clear();
                match in_a {
                    None => apply(t, cur, &mut s.b, &mut s.tokenizers),
                    Some((x, y)) => apply(t, &s.a[x..y], &mut s.b, &mut s.tokenizers),
                }
                std::mem::swap(&mut s.a, &mut s.b);
                in_a = Some((0, s.a.len()));
            }
        }
    }
    match in_a {
        None => cur,
        Some((x, y)) => &s.a[x..y],
    }
}

fn apply(t: &CTransform, a: &str, b: &mut String, tokenizers: &mut [Tokenizer]) {
    match t {
        CTransform::Trim => b.push_str(a.trim()),
        CTransform::Upper => {
            if a.is_ascii() {
                b.push_str(a);
                b.make_ascii_uppercase();
            } else {
                b.extend(a.chars().flat_map(char::to_uppercase));
            }
        }
        CTransform::Lower => {
            if a.is_ascii() {
                b.push_str(a);
                b.make_ascii_lowercase();
            } else {
                b.extend(a.chars().flat_map(char::to_lowercase));
            }
        }
        CTransform::Replace(re, with) => b.push_str(&re.replace_all(a, with.as_str())),
        CTransform::Default(d) => b.push_str(if a.is_empty() { d } else { a }),
        CTransform::Normalize(p) => {
            if a.is_empty() || !p.normalize(a, b) {
                b.push_str(a);
            }
        }
        CTransform::Redact(w) => {
            if !a.is_empty() {
                b.push_str(w);
            }
        }
        CTransform::Partial => partial(a, b),
        CTransform::Token(i) => {
            if !a.is_empty() {
                tokenizers[*i].token(a, b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_appends_exactly() {
        let src: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for pre in [0usize, 1, 7, 100] {
            for n in 0..=src.len() {
                let mut out = vec![b'#'; pre];
                out.shrink_to_fit();
                put(&mut out, &src[..n]);
                put(&mut out, &src[src.len() - n..]);
                let mut want = vec![b'#'; pre];
                want.extend_from_slice(&src[..n]);
                want.extend_from_slice(&src[src.len() - n..]);
                assert_eq!(out, want, "{pre} {n}");
            }
        }
    }
}
