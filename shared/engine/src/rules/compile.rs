//! Compiling a rule document against a file's header (columns resolved to indexes, regexes and
//! formats compiled, reference lists loaded, rule ids fixed) and evaluating it per record.
//!
//! [`CompiledRules`] is immutable and shared (`Arc`) by every chunk; each chunk owns a
//! [`RuleRunner`] with the mutable scratch (typed-value cache, transform buffers, counters,
//! unique keys), so the per-record path allocates nothing once its buffers have grown.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use regex::Regex;

use super::doc::*;
use super::mask::{partial, partial_bytes, Tokenizer};
use super::unique::UniqueKeys;
use super::validate::{seg, ValidationError};
use super::value::{parse_dec, parse_int, Family, Parser as ValParser, Val};
use crate::csv_write::write_field;
use crate::record::Record;

/// Reference lists the caller loaded for `one_of` rules with a `ref`, keyed by the ref.
#[derive(Debug, Clone, Default)]
pub struct ResolvedRefs {
    /// The values of each referenced column.
    pub values: HashMap<RefSpec, Vec<String>>,
}

impl ResolvedRefs {
    /// No references.
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds the values of one reference.
    pub fn insert(&mut self, r: RefSpec, values: Vec<String>) {
        self.values.insert(r, values);
    }
}

impl RuleDocument {
    /// Every reference the document names (the caller loads them before compiling).
    pub fn references(&self) -> Vec<RefSpec> {
        let mut v: Vec<RefSpec> = self
            .rules
            .iter()
            .filter_map(|r| match &r.check {
                Check::OneOf(o) => o.reference.clone(),
                _ => None,
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Whether a transform needs the token key.
    pub fn needs_mask_key(&self) -> bool {
        self.columns.values().any(|c| {
            c.transforms
                .iter()
                .any(|t| matches!(t, Transform::Mask(MaskSpec::Token(_))))
        })
    }

    /// The rule ids in document order: given ids, or `<column>_<check>` (`<left>_<right>_compare`
    /// for compares), with `_2`, `_3`... for repeats. A pure function of the document.
    pub fn rule_ids(&self) -> Vec<String> {
        let given: HashSet<&str> = self.rules.iter().filter_map(|r| r.id.as_deref()).collect();
        let mut taken: HashSet<String> = HashSet::new();
        self.rules
            .iter()
            .map(|r| {
                if let Some(id) = &r.id {
                    taken.insert(id.clone());
                    return id.clone();
                }
                let base = match &r.check {
                    Check::Compare(c) => format!("{}_{}_compare", c.left, c.right),
                    c => format!("{}_{}", r.column.as_deref().unwrap_or("row"), c.name()),
                };
                let base: String = base
                    .chars()
                    .map(|c| if valid_id_char(c) { c } else { '_' })
                    .collect();
                let mut id = base.clone();
                let mut n = 2;
                while taken.contains(&id) || given.contains(id.as_str()) {
                    id = format!("{base}_{n}");
                    n += 1;
                }
                taken.insert(id.clone());
                id
            })
            .collect()
    }

    /// After all chunks are merged: the first `fail` rule whose violations exceed its
    /// threshold. `total_rows` = well-formed records (clean + rejected by rules).
    pub fn threshold_exceeded(
        &self,
        total_rows: u64,
        counts: &BTreeMap<String, u64>,
    ) -> Option<ThresholdExceeded> {
        for (r, id) in self.rules.iter().zip(self.rule_ids()) {
            let Action::Fail(t) = r.on_violation.as_ref().unwrap_or(&self.on_violation) else {
                continue;
            };
            let n = counts.get(&id).copied().unwrap_or(0);
            let over_count = t.max_count.is_some_and(|m| n > m);
            let over_pct = t
                .max_percent
                .is_some_and(|p| total_rows > 0 && n as f64 * 100.0 > p * total_rows as f64);
            let neither = t.max_count.is_none() && t.max_percent.is_none() && n > 0;
            if over_count || over_pct || neither {
                let limit = match (t.max_count, t.max_percent) {
                    (Some(c), Some(p)) => {
                        format!("at most {c} violations and at most {p}% of rows")
                    }
                    (Some(c), None) => format!("at most {c} violations"),
                    (None, Some(p)) => format!("at most {p}% of rows"),
                    (None, None) => "no violations".into(),
                };
                return Some(ThresholdExceeded {
                    rule_id: id,
                    violations: n,
                    total_rows,
                    limit,
                });
            }
        }
        None
    }
}

/// A `fail` rule exceeded its threshold: the job fails.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ThresholdExceeded {
    /// The rule.
    pub rule_id: String,
    /// Its violations in the whole file.
    pub violations: u64,
    /// Well-formed records in the file.
    pub total_rows: u64,
    /// What was allowed, in words.
    pub limit: String,
}

impl std::fmt::Display for ThresholdExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rule `{}` was violated by {} of {} rows; its threshold allows {}",
            self.rule_id, self.violations, self.total_rows, self.limit
        )
    }
}

fn valid_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    Reject,
    Flag,
    Fail,
}

#[derive(Debug)]
enum CCheck {
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
enum ValueSet {
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
    fn contains(&self, x: &str) -> bool {
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
struct CRule {
    id: String,
    act: Act,
    check: CCheck,
    message: Option<String>,
}

/// One step of a clean row of an unquoted record.
#[derive(Debug, Clone, Copy)]
enum OutOp {
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
fn transform_keeps_plain(t: &CTransform) -> bool {
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
enum CTransform {
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
    doc: RuleDocument,
    columns: Vec<String>,
    rules: Vec<CRule>,
    types: Vec<Option<ValParser>>,
    typed_cols: Vec<usize>,
    transforms: Vec<Vec<CTransform>>,
    tokenizers: Vec<Tokenizer>,
    layout: Vec<usize>,
    /// The clean row of an unquoted record (`,` delimiter, no quoted field) as copies of runs
    /// of adjacent untransformed columns and transformed columns (see [`OutOp`]).
    plan: Vec<OutOp>,
    /// Per column: its transforms never put `,` `"` CR or LF into a value that had none, so in
    /// an unquoted record (whose fields have none) the result needs no quoting scan.
    keeps_plain: Vec<bool>,
    output_columns: Vec<String>,
    flag_column: bool,
    unique_count: usize,
    passthrough: bool,
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

fn suggest(name: &str, columns: &[String]) -> String {
    let lower = name.to_lowercase();
    match columns.iter().find(|c| c.to_lowercase() == lower.trim()) {
        Some(c) => format!("; did you mean `{c}`?"),
        None => format!("; the columns are: {}", columns.join(", ")),
    }
}

impl CompiledRules {
    /// Validates `doc` against the header `columns` and compiles it. `refs` holds the values of
    /// every `one_of` reference ([`RuleDocument::references`]); `mask_key` is the key of `token`
    /// masks (from configuration). Returns every problem found, each with its JSON path.
    pub fn compile(
        doc: &RuleDocument,
        columns: &[String],
        refs: &ResolvedRefs,
        mask_key: Option<&[u8]>,
    ) -> Result<CompiledRules, Vec<ValidationError>> {
        let mut errs = Vec::new();
        if doc.version != RULES_VERSION {
            errs.push(ValidationError::new(
                "/version",
                format!(
                    "unsupported version {}; this engine reads version {RULES_VERSION}",
                    doc.version
                ),
            ));
        }
        let index: HashMap<&str, usize> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let col = |name: &str, path: String, errs: &mut Vec<ValidationError>| -> Option<usize> {
            let i = index.get(name).copied();
            if i.is_none() {
                errs.push(ValidationError::new(
                    path,
                    format!("unknown column `{name}`{}", suggest(name, columns)),
                ));
            }
            i
        };

        // Column types: declared in `columns`, else the first `type` rule on the column.
        let mut type_specs: Vec<Option<TypeSpec>> = vec![None; columns.len()];
        let mut types: Vec<Option<ValParser>> = (0..columns.len()).map(|_| None).collect();
        let mut transforms: Vec<Vec<CTransform>> = (0..columns.len()).map(|_| Vec::new()).collect();
        let mut tokenizers = Vec::new();
        let mut dropped = vec![false; columns.len()];
        let mut out_names: Vec<String> = columns.to_vec();
        for (name, spec) in &doc.columns {
            let p = format!("/columns/{}", seg(name));
            let Some(c) = col(name, p.clone(), &mut errs) else {
                continue;
            };
            if let Some(t) = &spec.ty {
                match ValParser::new(t) {
                    Ok(vp) => {
                        types[c] = Some(vp);
                        type_specs[c] = Some(t.clone());
                    }
                    Err(e) => errs.push(ValidationError::new(format!("{p}/type"), e)),
                }
            }
            dropped[c] = spec.drop;
            if let Some(r) = &spec.rename {
                if r.is_empty() {
                    errs.push(ValidationError::new(
                        format!("{p}/rename"),
                        "must not be empty",
                    ));
                }
                out_names[c] = r.clone();
            }
            for (j, t) in spec.transforms.iter().enumerate() {
                let tp = format!("{p}/transforms/{j}");
                let ct = match t {
                    Transform::Trim => Some(CTransform::Trim),
                    Transform::Case(CaseSpec::Upper) => Some(CTransform::Upper),
                    Transform::Case(CaseSpec::Lower) => Some(CTransform::Lower),
                    Transform::Replace(r) => match Regex::new(&r.pattern) {
                        Ok(re) => Some(CTransform::Replace(re, r.with.clone())),
                        Err(e) => {
                            errs.push(ValidationError::new(
                                format!("{tp}/replace/pattern"),
                                format!("invalid regular expression: {e}"),
                            ));
                            None
                        }
                    },
                    Transform::Default(v) => Some(CTransform::Default(v.clone())),
                    Transform::Normalize(ts) => match ValParser::new(ts) {
                        Ok(vp) => Some(CTransform::Normalize(vp)),
                        Err(e) => {
                            errs.push(ValidationError::new(format!("{tp}/normalize"), e));
                            None
                        }
                    },
                    Transform::Mask(MaskSpec::Redact(r)) => Some(CTransform::Redact(
                        r.with.clone().unwrap_or_else(|| "[REDACTED]".into()),
                    )),
                    Transform::Mask(MaskSpec::Partial) => Some(CTransform::Partial),
                    Transform::Mask(MaskSpec::Token(t)) => match mask_key {
                        Some(k) if !k.is_empty() => {
                            if t.length == 0 {
                                errs.push(ValidationError::new(
                                    format!("{tp}/mask/token/length"),
                                    "must be at least 1",
                                ));
                            }
                            tokenizers.push(Tokenizer::new(k, t.encoding, t.length as usize));
                            Some(CTransform::Token(tokenizers.len() - 1))
                        }
                        _ => {
                            errs.push(ValidationError::new(
                                format!("{tp}/mask/token"),
                                "a token mask needs a key, and none is configured; set the mask \
                                 key in the configuration (`--mask-key-file` for `tessera process`)",
                            ));
                            None
                        }
                    },
                };
                if let Some(ct) = ct {
                    transforms[c].push(ct);
                }
            }
        }
        for (i, r) in doc.rules.iter().enumerate() {
            if let (Check::Type(t), Some(c)) =
                (&r.check, r.column.as_deref().and_then(|n| index.get(n)))
            {
                if type_specs[*c].is_none() {
                    if let Ok(vp) = ValParser::new(t) {
                        types[*c] = Some(vp);
                        type_specs[*c] = Some(t.clone());
                    }
                } else if type_specs[*c].as_ref() != Some(t)
                    && doc
                        .columns
                        .get(&columns[*c])
                        .is_some_and(|s| s.ty.is_some())
                {
                    let declared = type_specs[*c].as_ref().expect("checked").name();
                    if declared != t.name() {
                        errs.push(ValidationError::new(
                            format!("/rules/{i}/check/type"),
                            format!(
                                "type mismatch: column `{}` is declared `{declared}` in /columns but this rule checks `{}`",
                                columns[*c],
                                t.name()
                            ),
                        ));
                    }
                }
            }
        }

        let ids = doc.rule_ids();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut rules = Vec::new();
        let mut unique_count = 0;
        for (i, (r, id)) in doc.rules.iter().zip(&ids).enumerate() {
            let p = format!("/rules/{i}");
            if id.is_empty() || !id.chars().all(valid_id_char) {
                errs.push(ValidationError::new(
                    format!("{p}/id"),
                    format!("`{id}` is not a valid id: use letters, digits, `_`, `-` and `.`"),
                ));
            }
            if let Some(prev) = seen.insert(id.as_str(), i) {
                errs.push(ValidationError::new(
                    format!("{p}/id"),
                    format!("duplicate id `{id}` (also /rules/{prev}); ids must be unique"),
                ));
            }
            let act = match r.on_violation.as_ref().unwrap_or(&doc.on_violation) {
                Action::Reject => Act::Reject,
                Action::Flag => Act::Flag,
                Action::Fail(t) => {
                    if t.max_percent.is_some_and(|x| !(0.0..=100.0).contains(&x)) {
                        errs.push(ValidationError::new(
                            format!("{p}/on_violation/fail/max_percent"),
                            "must be between 0 and 100",
                        ));
                    }
                    Act::Fail
                }
            };
            let cp = format!("{p}/check/{}", r.check.name());
            let column = match (&r.check, &r.column) {
                (Check::Compare(_), Some(_)) => {
                    errs.push(ValidationError::new(
                        format!("{p}/column"),
                        "a compare rule names its columns in `left` and `right`; remove `column`",
                    ));
                    None
                }
                (Check::Compare(_), None) => None,
                (_, None) => {
                    errs.push(ValidationError::new(
                        format!("{p}/column"),
                        format!(
                            "missing; a `{}` check needs the column it applies to",
                            r.check.name()
                        ),
                    ));
                    None
                }
                (_, Some(name)) => col(name, format!("{p}/column"), &mut errs),
            };
            let check = match (&r.check, column) {
                (Check::Compare(c), _) => {
                    let l = col(&c.left, format!("{cp}/left"), &mut errs);
                    let rr = col(&c.right, format!("{cp}/right"), &mut errs);
                    match (l, rr) {
                        (Some(l), Some(rr)) => {
                            match (&types[l], &types[rr]) {
                                (Some(a), Some(b)) if a.family() == b.family() => {}
                                (Some(a), Some(b)) => errs.push(ValidationError::new(
                                    cp.clone(),
                                    format!(
                                        "type mismatch: `{}` is {:?} and `{}` is {:?}; compare columns of the same kind",
                                        c.left,
                                        a.family(),
                                        c.right,
                                        b.family()
                                    ),
                                )),
                                (a, _) => {
                                    let missing = if a.is_none() { &c.left } else { &c.right };
                                    errs.push(ValidationError::new(
                                        cp.clone(),
                                        format!(
                                            "column `{missing}` has no type; declare it in /columns/{}/type \
                                             or add a `type` rule so the comparison is typed",
                                            seg(missing)
                                        ),
                                    ));
                                }
                            }
                            Some(CCheck::Compare(l, c.op, rr))
                        }
                        _ => None,
                    }
                }
                (_, None) => None,
                (Check::NotNull, Some(c)) => Some(CCheck::NotNull(c)),
                (Check::Type(t), Some(c)) => match ValParser::new(t) {
                    Ok(vp) => {
                        let own = if types[c].as_ref() == Some(&vp) {
                            None
                        } else {
                            Some(vp)
                        };
                        let what = match t {
                            TypeSpec::Date(f) | TypeSpec::Timestamp(f) if f.format.is_some() => {
                                format!(
                                    "{} in the format {}",
                                    t.name(),
                                    f.format.as_deref().unwrap_or("")
                                )
                            }
                            _ => t.name().to_string(),
                        };
                        Some(CCheck::Type(c, own, what))
                    }
                    Err(e) => {
                        errs.push(ValidationError::new(format!("{p}/check/type"), e));
                        None
                    }
                },
                (Check::Range(rc), Some(c)) => {
                    if types[c].is_none() {
                        let numeric = [&rc.min, &rc.max]
                            .into_iter()
                            .flatten()
                            .all(|b| matches!(b, Bound::Number(_)));
                        if numeric {
                            types[c] = Some(ValParser::Decimal);
                        } else {
                            errs.push(ValidationError::new(
                                cp.clone(),
                                format!(
                                    "column `{}` has no type and the bounds are not numbers; declare \
                                     its type in /columns/{}/type (e.g. {{\"date\": {{}}}})",
                                    columns[c],
                                    seg(&columns[c])
                                ),
                            ));
                        }
                    }
                    if rc.min.is_none() && rc.max.is_none() {
                        errs.push(ValidationError::new(
                            cp.clone(),
                            "give `min`, `max` or both",
                        ));
                    }
                    match &types[c] {
                        Some(vp) if vp.family() == Family::Boolean => {
                            errs.push(ValidationError::new(
                                cp.clone(),
                                format!("type mismatch: column `{}` is boolean; a range needs numbers or dates", columns[c]),
                            ));
                            None
                        }
                        Some(vp) => {
                            let mut bound = |b: &Option<Bound>,
                                             incl: bool,
                                             name: &str|
                             -> Option<(Val, bool)> {
                                let b = b.as_ref()?;
                                let v = match (b, vp.family()) {
                                    (Bound::Number(n), Family::Number) => Some(Val::Dec(*n)),
                                    (Bound::Text(s), _) => vp.parse_bound(s),
                                    (Bound::Number(_), _) => None,
                                };
                                if v.is_none() {
                                    errs.push(ValidationError::new(
                                        format!("{cp}/{name}"),
                                        format!(
                                            "type mismatch: {} is not a value of the column's type (write dates as YYYY-MM-DD)",
                                            serde_json::to_string(b).unwrap_or_default()
                                        ),
                                    ));
                                }
                                v.map(|v| (v, incl))
                            };
                            let lo = bound(&rc.min, rc.min_inclusive, "min");
                            let hi = bound(&rc.max, rc.max_inclusive, "max");
                            let show = |b: &Option<Bound>| match b {
                                Some(Bound::Number(n)) => n.to_string(),
                                Some(Bound::Text(s)) => s.clone(),
                                None => String::new(),
                            };
                            let text = format!(
                                "{}{}, {}{}",
                                if rc.min_inclusive { '[' } else { '(' },
                                if rc.min.is_some() {
                                    show(&rc.min)
                                } else {
                                    "-inf".into()
                                },
                                if rc.max.is_some() {
                                    show(&rc.max)
                                } else {
                                    "+inf".into()
                                },
                                if rc.max_inclusive { ']' } else { ')' },
                            );
                            Some(CCheck::Range {
                                col: c,
                                lo,
                                hi,
                                text,
                            })
                        }
                        None => None,
                    }
                }
                (Check::Length(l), Some(c)) => {
                    if let (Some(a), Some(b)) = (l.min, l.max) {
                        if a > b {
                            errs.push(ValidationError::new(
                                cp.clone(),
                                format!("min {a} is greater than max {b}"),
                            ));
                        }
                    }
                    Some(CCheck::Length(c, l.min, l.max))
                }
                (Check::Matches(m), Some(c)) => match Regex::new(&m.pattern) {
                    Ok(re) => Some(CCheck::Matches(
                        c,
                        re,
                        super::fixed::Fixed::parse(&m.pattern),
                    )),
                    Err(e) => {
                        errs.push(ValidationError::new(
                            format!("{cp}/pattern"),
                            format!("invalid regular expression: {e}"),
                        ));
                        None
                    }
                },
                (Check::OneOf(o), Some(c)) => {
                    let values: Option<&Vec<String>> = match (&o.values, &o.reference) {
                        (Some(v), None) => Some(v),
                        (None, Some(r)) => match refs.values.get(r) {
                            Some(v) => Some(v),
                            None => {
                                errs.push(ValidationError::new(
                                    format!("{cp}/ref"),
                                    format!(
                                        "the reference column `{}` of `{}` was not loaded; check that the file exists and has that column",
                                        r.column, r.key
                                    ),
                                ));
                                None
                            }
                        },
                        _ => {
                            errs.push(ValidationError::new(
                                cp.clone(),
                                "give exactly one of `values` and `ref`",
                            ));
                            None
                        }
                    };
                    values.map(|v| CCheck::OneOf {
                        col: c,
                        set: v
                            .iter()
                            .map(|s| {
                                if o.ignore_case {
                                    s.to_lowercase()
                                } else {
                                    s.clone()
                                }
                                .into_boxed_str()
                            })
                            .collect::<Vec<_>>()
                            .into(),
                        ignore_case: o.ignore_case,
                    })
                }
                (Check::Unique, Some(c)) => {
                    unique_count += 1;
                    Some(CCheck::Unique(c, unique_count - 1))
                }
            };
            if let Some(check) = check {
                rules.push(CRule {
                    id: id.clone(),
                    act,
                    check,
                    message: r.message.clone(),
                });
            }
        }

        let flag_column = rules.iter().any(|r| r.act == Act::Flag);
        let layout: Vec<usize> = (0..columns.len()).filter(|&c| !dropped[c]).collect();
        let mut output_columns: Vec<String> =
            layout.iter().map(|&c| out_names[c].clone()).collect();
        if flag_column {
            output_columns.push(VIOLATIONS_COLUMN.to_string());
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, n) in output_columns.iter().enumerate() {
            if let Some(j) = names.insert(n.as_str(), i) {
                let src = |k: usize| {
                    layout
                        .get(k)
                        .map(|&c| columns[c].clone())
                        .unwrap_or_default()
                };
                errs.push(ValidationError::new(
                    format!("/columns/{}/rename", seg(&src(i))),
                    format!("the clean output would have two columns named `{n}` (also `{}`); choose another name", src(j)),
                ));
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let typed_cols = (0..columns.len()).filter(|&c| types[c].is_some()).collect();
        let passthrough =
            !flag_column && layout.len() == columns.len() && transforms.iter().all(Vec::is_empty);
        let mut plan: Vec<OutOp> = Vec::new();
        for &c in &layout {
            if !transforms[c].is_empty() {
                plan.push(match transforms[c].as_slice() {
                    [CTransform::Token(i)] => OutOp::Token(c, *i),
                    [CTransform::Partial] => OutOp::Partial(c),
                    [CTransform::Trim] => OutOp::Trim(c),
                    _ => OutOp::Col(c),
                });
                continue;
            }
            match plan.last_mut() {
                Some(OutOp::Run(_, last)) if *last + 1 == c => *last = c,
                _ => plan.push(OutOp::Run(c, c)),
            }
        }
        let keeps_plain = transforms
            .iter()
            .map(|ts| ts.iter().all(transform_keeps_plain))
            .collect();
        Ok(CompiledRules {
            doc: doc.clone(),
            columns: columns.to_vec(),
            rules,
            types,
            typed_cols,
            transforms,
            tokenizers,
            layout,
            plan,
            keeps_plain,
            output_columns,
            flag_column,
            unique_count,
            passthrough,
        })
    }

    /// The clean output's header: source columns minus dropped ones, renamed, plus
    /// `_violations` when a rule flags.
    pub fn output_columns(&self) -> &[String] {
        &self.output_columns
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
    /// column, no flag column).
    pub fn passthrough(&self) -> bool {
        self.passthrough
    }
}

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
    rules: Arc<CompiledRules>,
    s: Scratch,
}

struct Scratch {
    counts: Vec<u64>,
    cache: Vec<Option<Option<Val>>>,
    violated: Vec<usize>,
    tokenizers: Vec<Tokenizer>,
    a: String,
    b: String,
    lower: String,
    unique: Vec<Vec<(u64, u64)>>,
    /// Per `unique` slot: the repeats known from the second pass (a re-run), else `None`.
    repeats: Vec<Option<std::collections::HashSet<u64>>>,
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

    /// The compiled rules.
    pub fn rules(&self) -> &CompiledRules {
        &self.rules
    }

    /// Evaluates every rule on a well-formed record starting at byte `offset`.
    pub fn check(&mut self, rec: &Record<'_>, offset: u64) -> Verdict {
        let r = &*self.rules;
        let s = &mut self.s;
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
        if out.len() == start && r.output_columns.len() == 1 {
            out.extend_from_slice(b"\"\"");
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
mod value_set_tests {
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
