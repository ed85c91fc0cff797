//! The compiled form of a rule document: [`CompiledRules`] and the pieces it is made of (checks
//! with their columns resolved to indexes, transforms, `one_of` value sets, the clean-row plan).
//! Built by `compile`, read by the per-record runtime (`run`, `clean_row`); immutable and
//! shared (`Arc`) by every chunk.
//!
//! Not here: building it (see `compile`), evaluating it (see `run`).

use std::collections::{BTreeMap, HashSet};

use regex::Regex;

use super::doc::*;
use super::mask::Tokenizer;
use super::threshold::ThresholdExceeded;
use super::value::{Parser as ValParser, Val};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    Reject,
    Flag,
    Fail,
}

#[derive(Debug)]
pub(super) enum CCheck {
    NotNull(usize),
    /// `None`: same as the column's type, use the cached parse.
    Type(usize, Option<ValParser>, String),
    Range {
        col: usize,
        lo: Option<(Val, bool)>,
        hi: Option<(Val, bool)>,
        text: String,
    },
    Length(usize, Option<u64>, Option<u64>),
    /// With the fast matcher when the pattern is in its subset (`fixed`).
    Matches(usize, Regex, Option<super::fixed::Fixed>),
    OneOf {
        col: usize,
        set: ValueSet,
        ignore_case: bool,
    },
    Unique(usize, usize),
    Compare(usize, CompareOp, usize),
}

/// The allowed values of a `one_of` rule: a short list is scanned (a few length compares beat
/// hashing a short value), a longer one is a hash set under XXH3.
#[derive(Debug)]
pub(super) enum ValueSet {
    Small(Vec<Box<str>>),
    /// A short list of values of at most 7 bytes, each as its [`short_key`].
    Tiny(Vec<u64>),
    Large(HashSet<Box<str>, xxhash_rust::xxh3::Xxh3DefaultBuilder>),
}

/// A value of 1 to 7 bytes packed in a word (bytes little-endian, length in the top byte):
/// equal keys, equal values. Two overlapping loads, no loop.
#[inline]
fn short_key(b: &[u8]) -> u64 {
    let n = b.len();
    debug_assert!((1..=7).contains(&n));
    let packed = if n >= 4 {
        let lo = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
        let hi = u32::from_le_bytes(b[n - 4..].try_into().expect("4 bytes"));
        u64::from(lo) | (u64::from(hi) << (8 * (n - 4)))
    } else {
        u64::from(b[0])
            | (u64::from(b[n / 2]) << (8 * (n / 2)))
            | (u64::from(b[n - 1]) << (8 * (n - 1)))
    };
    packed | ((n as u64) << 56)
}

impl From<Vec<Box<str>>> for ValueSet {
    fn from(mut v: Vec<Box<str>>) -> Self {
        v.sort();
        v.dedup();
        if v.len() <= 8 && v.iter().all(|x| (1..=7).contains(&x.len())) {
            ValueSet::Tiny(v.iter().map(|x| short_key(x.as_bytes())).collect())
        } else if v.len() <= 8 {
            ValueSet::Small(v)
        } else {
            ValueSet::Large(v.into_iter().collect())
        }
    }
}

impl ValueSet {
    #[inline(always)]
    pub(super) fn contains(&self, x: &str) -> bool {
        match self {
            ValueSet::Tiny(keys) => {
                (1..=7).contains(&x.len()) && {
                    let k = short_key(x.as_bytes());
                    keys.contains(&k)
                }
            }
            _ => self.contains_listed(x),
        }
    }

    #[inline(never)]
    fn contains_listed(&self, x: &str) -> bool {
        match self {
            ValueSet::Small(v) => v
                .iter()
                .any(|s| super::mask::eq_short(s.as_bytes(), x.as_bytes())),
            ValueSet::Tiny(_) => self.contains(x),
            ValueSet::Large(h) => h.contains(x),
        }
    }
}

#[derive(Debug)]
pub(super) struct CRule {
    pub(super) id: String,
    pub(super) act: Act,
    pub(super) check: CCheck,
    pub(super) message: Option<String>,
}

/// One step of a clean row of an unquoted record.
#[derive(Debug, Clone, Copy)]
pub(super) enum OutOp {
    /// Source columns `first..=last`, all untransformed and adjacent in the layout: one copy of
    /// their source bytes, with the commas between them.
    Run(usize, usize),
    /// A column whose only transform is the token of this tokenizer (never quoted).
    Token(usize, usize),
    /// A column whose only transform is the partial mask (plain in, plain out).
    Partial(usize),
    /// A column whose only transform is `trim` (plain in, plain out).
    Trim(usize),
    /// Any other transformed column.
    Col(usize),
}

/// Whether `t` maps a value without `,` `"` CR or LF to one without them.
pub(super) fn transform_keeps_plain(t: &CTransform) -> bool {
    let plain = |s: &str| !s.bytes().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
    match t {
        // Substrings of the value; case mappings only map letters to letters; digests; the
        // canonical forms of numbers, booleans, dates and timestamps (or the value itself).
        CTransform::Trim
        | CTransform::Upper
        | CTransform::Lower
        | CTransform::Partial
        | CTransform::Token(_)
        | CTransform::Normalize(_) => true,
        CTransform::Default(d) => plain(d),
        CTransform::Redact(w) => plain(w),
        CTransform::Replace(..) => false,
    }
}

#[derive(Debug)]
pub(super) enum CTransform {
    Trim,
    Upper,
    Lower,
    Replace(Regex, String),
    Default(String),
    Normalize(ValParser),
    Redact(String),
    Partial,
    Token(usize),
}

/// A rule document compiled against one header. Immutable; share it with `Arc`.
pub struct CompiledRules {
    pub(super) doc: RuleDocument,
    pub(super) columns: Vec<String>,
    pub(super) rules: Vec<CRule>,
    pub(super) types: Vec<Option<ValParser>>,
    pub(super) typed_cols: Vec<usize>,
    pub(super) transforms: Vec<Vec<CTransform>>,
    pub(super) tokenizers: Vec<Tokenizer>,
    pub(super) layout: Vec<usize>,
    /// The clean row of an unquoted record (`,` delimiter, no quoted field) as copies of runs
    /// of adjacent untransformed columns and transformed columns (see [`OutOp`]).
    pub(super) plan: Vec<OutOp>,
    /// Per column: its transforms never put `,` `"` CR or LF into a value that had none, so in
    /// an unquoted record (whose fields have none) the result needs no quoting scan.
    pub(super) keeps_plain: Vec<bool>,
    pub(super) output_columns: Vec<String>,
    pub(super) flag_column: bool,
    /// The source columns with a sentiment `derive` step and the step's engine, in the order
    /// of their output columns (two each, after `_violations`).
    pub(super) derives: Vec<(usize, super::doc::SentimentEngine)>,
    pub(super) unique_count: usize,
    pub(super) passthrough: bool,
}

impl std::fmt::Debug for CompiledRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledRules")
            .field(
                "rules",
                &self.rules.iter().map(|r| &r.id).collect::<Vec<_>>(),
            )
            .field("output_columns", &self.output_columns)
            .finish_non_exhaustive()
    }
}

impl PartialEq for CompiledRules {
    fn eq(&self, other: &Self) -> bool {
        self.doc == other.doc && self.columns == other.columns
    }
}

/// The name of the column added to the clean output when a rule flags.
pub const VIOLATIONS_COLUMN: &str = "_violations";

impl CompiledRules {
    /// The clean output's header: source columns minus dropped ones, renamed, plus
    /// `_violations` when a rule flags, plus two columns per `derive` step.
    pub fn output_columns(&self) -> &[String] {
        &self.output_columns
    }

    /// The source column names of the `model` sentiment steps, in output order (a
    /// [`ModelRow`](crate::grading::ModelRow)'s `step` indexes this list).
    pub fn model_steps(&self) -> Vec<&str> {
        self.derives
            .iter()
            .filter(|(_, e)| *e == super::doc::SentimentEngine::Model)
            .map(|&(c, _)| self.columns[c].as_str())
            .collect()
    }

    /// The `model` sentiment steps, in output order: source column index and name, `sample`,
    /// `max_cost_usd`.
    pub fn model_specs(&self) -> Vec<(usize, &str, Option<u64>, Option<f64>)> {
        self.derives
            .iter()
            .filter(|(_, e)| *e == super::doc::SentimentEngine::Model)
            .map(|&(c, _)| {
                let name = self.columns[c].as_str();
                let spec = self
                    .doc
                    .columns
                    .get(name)
                    .and_then(|s| s.derive.as_ref())
                    .map(|d| &d.sentiment);
                (
                    c,
                    name,
                    spec.and_then(|s| s.sample),
                    spec.and_then(|s| s.max_cost_usd),
                )
            })
            .collect()
    }

    /// The derived sentiment columns, in the order of their output columns: the source column,
    /// the two names it adds to the clean output, the engine (what the profile summarises; a
    /// derived column is keyed by its score column, one per (source, engine)).
    pub fn sentiment_columns(&self) -> Vec<crate::profile::SentimentColumn> {
        let n = self.output_columns.len() - 2 * self.derives.len();
        self.derives
            .iter()
            .enumerate()
            .map(|(k, &(c, engine))| crate::profile::SentimentColumn {
                source: self.columns[c].clone(),
                score_column: self.output_columns[n + 2 * k].clone(),
                label_column: self.output_columns[n + 2 * k + 1].clone(),
                engine: engine.as_str().to_string(),
            })
            .collect()
    }

    /// The rule ids, in document order.
    pub fn rule_ids(&self) -> Vec<String> {
        self.doc.rule_ids()
    }

    /// The `unique` rules as `(id, source column index)`, in document order: the order of a
    /// chunk's `unique_keys`.
    pub fn unique_rules(&self) -> Vec<(String, usize)> {
        self.rules
            .iter()
            .filter_map(|r| match r.check {
                CCheck::Unique(c, _) => Some((r.id.clone(), c)),
                _ => None,
            })
            .collect()
    }

    /// The document this was compiled from.
    pub fn document(&self) -> &RuleDocument {
        &self.doc
    }

    /// See [`RuleDocument::threshold_exceeded`].
    pub fn threshold_exceeded(
        &self,
        total_rows: u64,
        counts: &BTreeMap<String, u64>,
    ) -> Option<ThresholdExceeded> {
        self.doc.threshold_exceeded(total_rows, counts)
    }

    /// Whether clean rows can be copied from the source unchanged (no transforms, no dropped
    /// column, no flag column, no derived column).
    pub fn passthrough(&self) -> bool {
        self.passthrough
    }
}

#[cfg(test)]
mod value_set_tests {
    use super::*;

    #[test]
    fn tiny_sets_equal_listed_ones() {
        let lists: [&[&str]; 4] = [
            &["A", "B", "C", "D"],
            &["ab", "ba", "abc", "abcd", "abcdefg", "x"],
            &["1234", "12345", "123456", "1234567"],
            &["é", "ü", "東"],
        ];
        let mut probes: Vec<String> = vec![String::new(), "abcdefgh".into(), "AB".into()];
        for l in lists {
            for v in l {
                probes.push(v.to_string());
                for cut in 0..v.len() {
                    if v.is_char_boundary(cut) {
                        probes.push(v[..cut].to_string());
                        probes.push(format!("{}x", &v[..cut]));
                    }
                }
            }
        }
        for l in lists {
            let set = ValueSet::from(l.iter().map(|s| Box::<str>::from(*s)).collect::<Vec<_>>());
            assert!(matches!(set, ValueSet::Tiny(_)));
            for p in &probes {
                assert_eq!(set.contains(p), l.contains(&p.as_str()), "{l:?} {p:?}");
            }
        }
    }
}
