//! Evaluating compiled rules per record: each chunk owns a [`RuleRunner`] with the mutable
//! scratch (typed-value cache, transform buffers, counters, unique keys) over the shared
//! [`CompiledRules`], so the per-record path allocates nothing once its buffers have grown.
//! [`RuleRunner::check`] decides a record's [`Verdict`]; the violation details and the chunk's
//! [`RuleOutcome`] are here too.
//!
//! Not here: writing the clean row (see `clean_row`), compiling (see `compile`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::compiled::{Act, CCheck, CompiledRules};
use super::doc::CompareOp;
use super::mask::Tokenizer;
use super::unique::UniqueKeys;
use super::value::{parse_dec, parse_int, Parser as ValParser, Val};
use crate::record::Record;

/// What the rules decided for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Clean (possibly flagged).
    Keep,
    /// Rejected by the rule at this index (the first `reject`/`fail` rule violated).
    Reject(usize),
}

/// One chunk's evaluator: mutable scratch over shared [`CompiledRules`].
pub struct RuleRunner {
    pub(super) rules: Arc<CompiledRules>,
    pub(super) s: Scratch,
}

/// A runner's mutable state; `clean_row` uses the transform buffers and tokenizers.
pub(super) struct Scratch {
    pub(super) counts: Vec<u64>,
    pub(super) cache: Vec<Option<Option<Val>>>,
    pub(super) violated: Vec<usize>,
    pub(super) tokenizers: Vec<Tokenizer>,
    pub(super) a: String,
    pub(super) b: String,
    pub(super) lower: String,
    pub(super) unique: Vec<Vec<(u64, u64)>>,
    /// Per `unique` slot: the repeats known from the second pass (a re-run), else `None`.
    pub(super) repeats: Vec<Option<HashSet<u64>>>,
    /// The sentiment scorer of the `derive` steps, built on the first clean row that needs it
    /// (documents without a derive step never build one).
    pub(super) analyzer: Option<crate::sentiment::Analyzer>,
    /// Byte offset of the record last passed to `check` (a model row's identity).
    pub(super) offset: u64,
    /// `model` steps hand their rows out ([`RuleRunner::collect_model_rows`]); otherwise they
    /// write an empty score and `not_graded`.
    pub(super) collect_model: bool,
    /// Rows of `model` steps written without their grade, in output order.
    pub(super) model_rows: Vec<crate::grading::ModelRow>,
    /// Per `derive` step, the score of the row last written or scored (`None`: empty text,
    /// or a `model` step's row not graded).
    pub(super) scores: Vec<Option<f64>>,
    /// Per `derive` step, whether the row last written was handed out for a model grade
    /// (its score comes with [`RuleRunner::fill_model_rows`], not in `scores`).
    pub(super) held: Vec<bool>,
}

/// What a chunk's rules produced, merged by the caller.
#[derive(Debug, Clone, Default)]
pub struct RuleOutcome {
    /// Violations per rule id (every rule present, zeros included).
    pub violations: BTreeMap<String, u64>,
    /// Keys of `unique` rules.
    pub unique_keys: Vec<UniqueKeys>,
}

impl RuleRunner {
    /// A runner for one chunk.
    pub fn new(rules: Arc<CompiledRules>) -> Self {
        let s = Scratch {
            counts: vec![0; rules.rules.len()],
            cache: vec![None; rules.columns.len()],
            violated: Vec::new(),
            tokenizers: rules.tokenizers.clone(),
            a: String::new(),
            b: String::new(),
            lower: String::new(),
            unique: vec![Vec::new(); rules.unique_count],
            repeats: vec![None; rules.unique_count],
            analyzer: None,
            offset: 0,
            collect_model: false,
            model_rows: Vec::new(),
            scores: vec![None; rules.derives.len()],
            held: vec![false; rules.derives.len()],
        };
        RuleRunner { rules, s }
    }

    /// A runner for a re-run of a chunk after the `unique` second pass: the records at the
    /// offsets in `repeats` violate their rule, every other record passes it, and no keys are
    /// emitted.
    pub fn with_repeats(rules: Arc<CompiledRules>, repeats: &super::unique::Repeats) -> Self {
        let mut runner = RuleRunner::new(rules);
        for rule in &runner.rules.rules {
            if let CCheck::Unique(_, slot) = rule.check {
                runner.s.repeats[slot] = Some(repeats.get(&rule.id).cloned().unwrap_or_default());
            }
        }
        runner
    }

    /// Clean rows of `model` steps leave their grade out and hand their text to the caller
    /// ([`model_rows`](Self::model_rows), then [`fill_model_rows`](Self::fill_model_rows)).
    /// Without this a `model` step writes an empty score and `not_graded` (a dry run).
    pub fn collect_model_rows(&mut self) {
        self.s.collect_model = true;
    }

    /// The rows waiting for a grade, in the order of the output they were written to.
    pub fn model_rows(&self) -> &[crate::grading::ModelRow] {
        &self.s.model_rows
    }

    /// Puts `grades` (one per [`model_rows`](Self::model_rows) entry, same order) into `out`,
    /// the output those rows were written to (pending tokens resolved first), and forgets the
    /// rows.
    pub fn fill_model_rows(&mut self, grades: &[crate::grading::Grade], out: &mut Vec<u8>) {
        assert_eq!(grades.len(), self.s.model_rows.len(), "one grade per row");
        self.resolve(out);
        if grades.is_empty() {
            return;
        }
        let mut filled = Vec::with_capacity(out.len() + grades.len() * 16);
        let mut at = 0;
        for (row, g) in self.s.model_rows.iter().zip(grades) {
            filled.extend_from_slice(&out[at..row.at]);
            g.write(&mut filled);
            at = row.at;
        }
        filled.extend_from_slice(&out[at..]);
        *out = filled;
        self.s.model_rows.clear();
    }

    /// The compiled rules.
    pub fn rules(&self) -> &CompiledRules {
        &self.rules
    }

    /// Evaluates every rule on a well-formed record starting at byte `offset`.
    pub fn check(&mut self, rec: &Record<'_>, offset: u64) -> Verdict {
        let r = &*self.rules;
        let s = &mut self.s;
        s.offset = offset;
        for &c in &r.typed_cols {
            s.cache[c] = None;
        }
        s.violated.clear();
        let mut reject = None;
        for (i, rule) in r.rules.iter().enumerate() {
            let ok = eval(r, s, &rule.check, rec, offset);
            if !ok {
                s.counts[i] += 1;
                s.violated.push(i);
                if rule.act != Act::Flag && reject.is_none() {
                    reject = Some(i);
                }
            }
        }
        match reject {
            Some(i) => Verdict::Reject(i),
            None => Verdict::Keep,
        }
    }

    /// The id of rule `i`.
    pub fn rule_id(&self, i: usize) -> &str {
        &self.rules.rules[i].id
    }

    /// A human-readable reason for rule `i` on `rec`, plus the other violated rules' ids.
    pub fn detail(&self, i: usize, rec: &Record<'_>) -> String {
        let r = &self.rules.rules[i];
        let cols = &self.rules.columns;
        let q = |c: usize| {
            let v = rec.get(c).unwrap_or("");
            let cut: String = v.chars().take(80).collect();
            if cut.len() < v.len() {
                format!("{cut:?}...")
            } else {
                format!("{cut:?}")
            }
        };
        let mut d = match (&r.message, &r.check) {
            (Some(m), _) => m.clone(),
            (None, CCheck::NotNull(c)) => format!("`{}` is empty", cols[*c]),
            (None, CCheck::Type(c, _, what)) => {
                format!("`{}`: {} is not a {what}", cols[*c], q(*c))
            }
            (None, CCheck::Range { col, text, .. }) => {
                format!("`{}`: {} is outside {text}", cols[*col], q(*col))
            }
            (None, CCheck::Length(c, min, max)) => format!(
                "`{}`: {} characters, allowed {}..{}",
                cols[*c],
                rec.get(*c).unwrap_or("").chars().count(),
                min.map_or(String::new(), |m| m.to_string()),
                max.map_or(String::new(), |m| m.to_string())
            ),
            (None, CCheck::Matches(c, re, _)) => {
                format!("`{}`: {} does not match /{}/", cols[*c], q(*c), re.as_str())
            }
            (None, CCheck::OneOf { col, .. }) => {
                format!(
                    "`{}`: {} is not one of the allowed values",
                    cols[*col],
                    q(*col)
                )
            }
            (None, CCheck::Unique(c, _)) => {
                format!("`{}`: {} repeats an earlier record", cols[*c], q(*c))
            }
            (None, CCheck::Compare(l, op, rr)) => format!(
                "`{}` {} `{}` is false ({} vs {})",
                cols[*l],
                op.symbol(),
                cols[*rr],
                q(*l),
                q(*rr)
            ),
        };
        let others: Vec<&str> = self
            .s
            .violated
            .iter()
            .filter(|&&j| j != i)
            .map(|&j| self.rules.rules[j].id.as_str())
            .collect();
        if !others.is_empty() {
            d.push_str(&format!(" (also violated: {})", others.join(", ")));
        }
        d
    }

    /// Ends the chunk.
    pub fn finish(self) -> RuleOutcome {
        let r = &*self.rules;
        let violations = r
            .rules
            .iter()
            .zip(&self.s.counts)
            .map(|(rule, &n)| (rule.id.clone(), n))
            .collect();
        let mut unique_keys = Vec::new();
        let mut entries = self.s.unique.into_iter();
        for rule in &r.rules {
            if let CCheck::Unique(c, _) = rule.check {
                unique_keys.push(UniqueKeys {
                    rule: rule.id.clone(),
                    column: c,
                    entries: entries.next().unwrap_or_default(),
                });
            }
        }
        RuleOutcome {
            violations,
            unique_keys,
        }
    }
}

#[inline(always)]
fn typed(r: &CompiledRules, s: &mut Scratch, rec: &Record<'_>, c: usize) -> Option<Val> {
    if let Some(v) = s.cache[c] {
        return v;
    }
    let f = rec.get(c).unwrap_or("");
    let v = match &r.types[c] {
        // The common numeric types inline; the rest through the type's parser.
        Some(ValParser::Integer) => parse_int(f).map(Val::Int),
        Some(ValParser::Decimal) => parse_dec(f).map(Val::Dec),
        Some(p) => p.parse(f),
        None => None,
    };
    s.cache[c] = Some(v);
    v
}

fn in_bounds(v: &Val, lo: &Option<(Val, bool)>, hi: &Option<(Val, bool)>) -> bool {
    use std::cmp::Ordering::*;
    if let Some((b, incl)) = lo {
        match v.cmp_val(b) {
            Some(Greater) => {}
            Some(Equal) if *incl => {}
            _ => return false,
        }
    }
    if let Some((b, incl)) = hi {
        match v.cmp_val(b) {
            Some(Less) => {}
            Some(Equal) if *incl => {}
            _ => return false,
        }
    }
    true
}

#[inline]
fn eval(r: &CompiledRules, s: &mut Scratch, check: &CCheck, rec: &Record<'_>, offset: u64) -> bool {
    let get = |c: usize| rec.get(c).unwrap_or("");
    match check {
        CCheck::NotNull(c) => !get(*c).is_empty(),
        CCheck::Type(c, own, _) => {
            let v = get(*c);
            v.is_empty()
                || match own {
                    Some(p) => p.parse(v).is_some(),
                    None => typed(r, s, rec, *c).is_some(),
                }
        }
        CCheck::Range { col, lo, hi, .. } => {
            get(*col).is_empty() || typed(r, s, rec, *col).is_some_and(|v| in_bounds(&v, lo, hi))
        }
        CCheck::Length(c, min, max) => {
            let v = get(*c);
            if v.is_empty() {
                return true;
            }
            // A UTF-8 character is 1 to 4 bytes: decide from the byte length when it can.
            let (most, least) = (v.len() as u64, v.len().div_ceil(4) as u64);
            if min.is_none_or(|m| least >= m) && max.is_none_or(|m| most <= m) {
                return true;
            }
            let n = if v.is_ascii() {
                v.len()
            } else {
                v.chars().count()
            } as u64;
            min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)
        }
        CCheck::Matches(c, re, fixed) => {
            let v = get(*c);
            v.is_empty()
                || match fixed {
                    Some(f) => f.is_match(v),
                    None => re.is_match(v),
                }
        }
        CCheck::OneOf {
            col,
            set,
            ignore_case,
        } => {
            let v = get(*col);
            if v.is_empty() {
                return true;
            }
            if *ignore_case {
                s.lower.clear();
                s.lower.extend(v.chars().flat_map(char::to_lowercase));
                set.contains(s.lower.as_str())
            } else {
                set.contains(v)
            }
        }
        CCheck::Unique(c, slot) => {
            if let Some(known) = &s.repeats[*slot] {
                return !known.contains(&offset);
            }
            let v = get(*c);
            if !v.is_empty() {
                s.unique[*slot].push((xxhash_rust::xxh3::xxh3_64(v.as_bytes()), offset));
            }
            true // decided after all chunks (see `unique`)
        }
        CCheck::Compare(l, op, rr) => {
            if get(*l).is_empty() || get(*rr).is_empty() {
                return true;
            }
            let (Some(a), Some(b)) = (typed(r, s, rec, *l), typed(r, s, rec, *rr)) else {
                return false;
            };
            let Some(o) = a.cmp_val(&b) else {
                return false;
            };
            use std::cmp::Ordering::*;
            match op {
                CompareOp::Eq => o == Equal,
                CompareOp::Ne => o != Equal,
                CompareOp::Lt => o == Less,
                CompareOp::Le => o != Greater,
                CompareOp::Gt => o == Greater,
                CompareOp::Ge => o != Less,
            }
        }
    }
}
