//! The mergeable column profile: per-column type inference, null counts, typed min/max,
//! mean/stddev, distinct count, heavy hitters, quantiles and lengths, plus per-file row,
//! byte and rejected counts and a uniform row sample.
//!
//! Each chunk worker builds a [`ProfileState`] from the records it owns, ships it with
//! [`ProfileState::to_bytes`], and finalisation [`merge`](ProfileState::merge)s them and calls
//! [`report`](ProfileState::report) for `profile.json`. Every statistic is chosen so that the
//! merged result does not depend on how the file was chunked: counters, min/max, lengths,
//! the distinct sketch and the sample are exactly chunking-invariant; mean/stddev agree to
//! floating-point rounding; heavy hitters and quantiles agree within their documented bounds.
//!
//! Not here: parsing (the parser hands us [`Record`]s) and any I/O. The schema and the
//! accuracy contract are documented in `docs/profile.md`.

pub(crate) mod classify;
mod derived;
pub(crate) mod distinct;
pub(crate) mod pii;
pub(crate) mod quantiles;
mod report;
mod topk;

#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};

use serde::{Deserialize, Serialize};
use sketches_ddsketch::DDSketch;
use xxhash_rust::xxh3::xxh3_64;

use crate::record::{Record, RejectReason};
use classify::{civil_from_days, Class, Kind};
use derived::SentimentState;
pub use derived::{DerivedKind, DerivedReport, LabelCounts, ScoreQuantiles, SentimentColumn};
use distinct::Distinct;
use pii::PiiCounts;
use quantiles::Quant;
pub use report::*;
use topk::{Seen, TopK};

/// Version of the `to_bytes` state format and of the `profile.json` schema.
pub const FORMAT_VERSION: u32 = 1;

/// The tokens counted as null (besides the empty string) unless configured otherwise.
pub const DEFAULT_NULL_TOKENS: &[&str] = &[
    "NULL", "null", "Null", "NA", "N/A", "n/a", "NaN", "nan", "None", "none", "<NA>", "#N/A",
];

/// Knobs of the profile. Chunk states can only be merged when built with equal options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProfileOptions {
    /// Rows kept in the uniform sample.
    pub sample_size: usize,
    /// Values reported in each column's `top`.
    pub top_k: usize,
    /// Counters kept by the heavy-hitters summary; counts are exact while a column has at most
    /// this many distinct values, and at most `n / (capacity/2 + 1)` short afterwards.
    pub top_capacity: usize,
    /// HyperLogLog precision p (4..=18): 2^p one-byte registers, ~1.04/sqrt(2^p) relative error.
    pub hll_precision: u8,
    /// Distinct counts are exact (a set of 64-bit hashes) up to this many values.
    pub exact_distinct_limit: usize,
    /// Relative accuracy of the quantile sketch (DDSketch alpha).
    pub quantile_accuracy: f64,
    /// Field texts counted as null, besides the empty string (matched exactly, case-sensitive).
    pub null_tokens: Vec<String>,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        ProfileOptions {
            sample_size: 100,
            top_k: 10,
            top_capacity: 256,
            hll_precision: 14,
            exact_distinct_limit: 1024,
            quantile_accuracy: 0.01,
            null_tokens: DEFAULT_NULL_TOKENS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// Errors from decoding or merging profile states.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The bytes are not a profile state of this format.
    #[error("profile state could not be decoded: {0}")]
    Decode(#[from] serde_json::Error),
    /// The state was written by an unknown format version.
    #[error("profile state has format version {0}, expected {FORMAT_VERSION}")]
    Version(u32),
    /// The bytes decode but describe an impossible state (corrupt or hand-made).
    #[error("profile state is inconsistent: {0}")]
    Invalid(String),
    /// The two states describe different columns or were built with different options.
    #[error("profile states cannot be merged: {0}")]
    Incompatible(String),
}

/// Fast exact matcher for null tokens: empty string, or one of a short list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
struct NullMatcher {
    tokens: Vec<String>,
    max_len: usize,
    first: [bool; 256],
}

impl From<Vec<String>> for NullMatcher {
    fn from(tokens: Vec<String>) -> Self {
        let mut first = [false; 256];
        let mut max_len = 0;
        for t in &tokens {
            if let Some(&b) = t.as_bytes().first() {
                first[b as usize] = true;
            }
            max_len = max_len.max(t.len());
        }
        NullMatcher {
            tokens,
            max_len,
            first,
        }
    }
}

impl From<NullMatcher> for Vec<String> {
    fn from(m: NullMatcher) -> Self {
        m.tokens
    }
}

impl NullMatcher {
    #[inline]
    fn is_null(&self, v: &str) -> bool {
        let b = v.as_bytes();
        match b.first() {
            None => true,
            Some(&f) => {
                b.len() <= self.max_len
                    && self.first[f as usize]
                    && self.tokens.iter().any(|t| t == v)
            }
        }
    }
}

/// Count, mean and sum of squared deviations. Per value this keeps shifted sums
/// (`s1 = sum(x - shift)`, `s2 = sum((x - shift)^2)`; no division, unlike Welford), and
/// re-centres the shift on the running mean every 1024 values so that the cancellation in
/// `s2 - s1^2/n` stays below ~1e-13 relative (the shift is always a value or mean of the data,
/// so `(mean - shift)^2 <= m2`). Merged with Chan et al.'s pairwise formula.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Moments {
    n: u64,
    #[serde(with = "f64_bits")]
    shift: f64,
    #[serde(with = "f64_bits")]
    s1: f64,
    #[serde(with = "f64_bits")]
    s2: f64,
}

impl Moments {
    #[inline]
    fn push(&mut self, x: f64) {
        if self.n == 0 {
            self.shift = x;
        }
        self.n += 1;
        let d = x - self.shift;
        self.s1 += d;
        self.s2 += d * d;
        if self.n.is_multiple_of(1024) {
            self.recentre();
        }
    }

    fn mean(&self) -> f64 {
        self.shift + self.s1 / self.n as f64
    }

    fn m2(&self) -> f64 {
        (self.s2 - self.s1 * self.s1 / self.n as f64).max(0.0)
    }

    fn recentre(&mut self) {
        let (mean, m2) = (self.mean(), self.m2());
        self.shift = mean;
        self.s1 = 0.0;
        self.s2 = m2;
    }

    fn merge(&mut self, o: &Moments) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *o;
            return;
        }
        let (ma, m2a, mb, m2b) = (self.mean(), self.m2(), o.mean(), o.m2());
        let n = self.n + o.n;
        let d = mb - ma;
        let (na, nb, nf) = (self.n as f64, o.n as f64, n as f64);
        self.n = n;
        self.shift = ma + d * nb / nf;
        self.s1 = 0.0;
        self.s2 = m2a + m2b + d * d * na * nb / nf;
    }

    /// Sample standard deviation (n - 1 in the denominator).
    fn stddev(&self) -> Option<f64> {
        (self.n >= 2).then(|| (self.m2() / (self.n - 1) as f64).sqrt())
    }
}

/// Counts per most-specific class of the non-null values.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct ClassCounts {
    int: u64,
    dec: u64,
    bool_true: u64,
    bool_false: u64,
    date: u64,
    ts: u64,
    other: u64,
}

/// A timestamp min/max candidate: the instant, then the text to break ties between equal
/// instants written differently (so the result is the same whatever the merge order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct TsKey {
    secs: i64,
    nanos: u32,
    text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ColumnState {
    name: String,
    nulls: u64,
    non_null: u64,
    counts: ClassCounts,
    int_min: i64,
    int_max: i64,
    #[serde(with = "f64_bits")]
    num_min: f64,
    #[serde(with = "f64_bits")]
    num_max: f64,
    date_min: i32,
    date_max: i32,
    /// Over timestamp-class values only; dates join in at report time (see `ts_bounds`).
    ts_min: Option<TsKey>,
    ts_max: Option<TsKey>,
    str_min: LexBound,
    str_max: LexBound,
    min_len: u64,
    max_len: u64,
    moments: Moments,
    quantiles: Quant,
    distinct: Distinct,
    top: TopK,
    /// Values matched by each PII detector (absent in states from older workers: zeros).
    #[serde(default)]
    pii: PiiCounts,
}

impl ColumnState {
    /// `top_work`: the heavy-hitters table's working capacity (see [`top_work`]).
    fn new(name: String, opts: &ProfileOptions, top_work: usize) -> Self {
        ColumnState {
            name,
            nulls: 0,
            non_null: 0,
            counts: ClassCounts::default(),
            int_min: i64::MAX,
            int_max: i64::MIN,
            num_min: f64::INFINITY,
            num_max: f64::NEG_INFINITY,
            date_min: i32::MAX,
            date_max: i32::MIN,
            ts_min: None,
            ts_max: None,
            str_min: LexBound::default(),
            str_max: LexBound::default(),
            min_len: u64::MAX,
            max_len: 0,
            moments: Moments::default(),
            quantiles: Quant::new(opts.quantile_accuracy),
            distinct: Distinct::new(opts.hll_precision, opts.exact_distinct_limit),
            top: TopK::with_work(opts.top_capacity, top_work),
            pii: PiiCounts::default(),
        }
    }

    #[inline]
    fn observe(&mut self, v: &str, nulls: &NullMatcher) {
        if nulls.is_null(v) {
            self.nulls += 1;
            return;
        }
        let b = v.as_bytes();
        self.non_null += 1;
        let h = xxh3_64(b);
        let class = match self.top.insert(h, v) {
            Seen::New(class, mask) => {
                self.pii.add(if matches!(class, Class::Str) {
                    mask
                } else {
                    pii::detect_kind(v, class.kind())
                });
                class
            }
            Seen::Again(Kind::Str, x) => {
                // For strings the slot's number holds the PII mask (see `TopK::add`).
                self.counts.other += 1;
                self.pii.add(x as u8);
                return;
            }
            Seen::Again(kind, x) => {
                if matches!(kind, Kind::Int | Kind::Dec) {
                    self.pii.add(pii::detect_kind(v, kind));
                }
                // Stored in the heavy-hitters table, so seen before: it is within min/max
                // (typed and lexical) and lengths already, and its hash is in `distinct`.
                match kind {
                    Kind::Int => {
                        self.counts.int += 1;
                        self.moments.push(x);
                        self.quantiles.add(x);
                    }
                    Kind::Dec => {
                        self.counts.dec += 1;
                        self.moments.push(x);
                        self.quantiles.add(x);
                    }
                    Kind::True => self.counts.bool_true += 1,
                    Kind::False => self.counts.bool_false += 1,
                    Kind::Date => self.counts.date += 1,
                    Kind::Timestamp => self.counts.ts += 1,
                    Kind::Str => self.counts.other += 1,
                }
                return;
            }
        };
        self.distinct.insert(h);
        let chars = if b.is_ascii() {
            b.len()
        } else {
            v.chars().count()
        } as u64;
        self.min_len = self.min_len.min(chars);
        self.max_len = self.max_len.max(chars);
        // Lexical min/max, except for dates: `YYYY-MM-DD` sorts as text exactly as it does
        // chronologically, so `date_min`/`date_max` stand in for them (see `lexical_bounds`).
        // Compare 8-byte big-endian prefixes first: a strict difference decides the byte-wise
        // order, so the full comparison (a memcmp call) runs only on equal prefixes.
        if !matches!(class, Class::Date(_)) {
            let p = prefix8(b);
            if self.non_null.saturating_sub(self.counts.date) == 1 {
                self.str_min.set(v, p);
                self.str_max.set(v, p);
            } else if self.str_min.greater_than(b, p) {
                self.str_min.set(v, p);
            } else if self.str_max.less_than(b, p) {
                self.str_max.set(v, p);
            }
        }
        match class {
            Class::Int(i) => {
                self.counts.int += 1;
                self.int_min = self.int_min.min(i);
                self.int_max = self.int_max.max(i);
                self.number(i as f64);
            }
            Class::Dec(x) => {
                self.counts.dec += 1;
                self.number(x);
            }
            Class::Bool(true) => self.counts.bool_true += 1,
            Class::Bool(false) => self.counts.bool_false += 1,
            Class::Date(d) => {
                self.counts.date += 1;
                self.date_min = self.date_min.min(d);
                self.date_max = self.date_max.max(d);
            }
            Class::Timestamp(s, n) => {
                self.counts.ts += 1;
                self.instant(s, n, v);
            }
            Class::Str => self.counts.other += 1,
        }
    }

    #[inline(always)]
    fn number(&mut self, x: f64) {
        if x.total_cmp(&self.num_min) == Ordering::Less {
            self.num_min = x;
        }
        if x.total_cmp(&self.num_max) == Ordering::Greater {
            self.num_max = x;
        }
        self.moments.push(x);
        self.quantiles.add(x);
    }

    fn instant(&mut self, secs: i64, nanos: u32, text: &str) {
        let less = |k: &TsKey| (secs, nanos, text) < (k.secs, k.nanos, k.text.as_str());
        let greater = |k: &TsKey| (secs, nanos, text) > (k.secs, k.nanos, k.text.as_str());
        if self.ts_min.as_ref().is_none_or(less) {
            self.ts_min = Some(TsKey {
                secs,
                nanos,
                text: text.to_owned(),
            });
        }
        if self.ts_max.as_ref().is_none_or(greater) {
            self.ts_max = Some(TsKey {
                secs,
                nanos,
                text: text.to_owned(),
            });
        }
    }

    /// Byte-wise min/max over all non-null values: the tracked non-date values, joined by the
    /// date extremes (canonical `YYYY-MM-DD` text orders like the dates themselves).
    fn lexical_bounds(&self) -> (String, String) {
        let mut lo: Option<String> = None;
        let mut hi: Option<String> = None;
        if self.non_null > self.counts.date {
            lo = Some(self.str_min.to_string());
            hi = Some(self.str_max.to_string());
        }
        if self.counts.date > 0 {
            let (dlo, dhi) = (
                civil_from_days(i64::from(self.date_min)),
                civil_from_days(i64::from(self.date_max)),
            );
            lo = Some(lo.map_or(dlo.clone(), |l| l.min(dlo)));
            hi = Some(hi.map_or(dhi.clone(), |h| h.max(dhi)));
        }
        (lo.unwrap_or_default(), hi.unwrap_or_default())
    }

    /// Timestamp min/max over timestamps and dates (a date is midnight UTC, written as itself).
    fn ts_bounds(&self) -> (Option<TsKey>, Option<TsKey>) {
        let date = |d: i32| TsKey {
            secs: i64::from(d) * 86_400,
            nanos: 0,
            text: civil_from_days(i64::from(d)),
        };
        let has_dates = self.counts.date > 0;
        let min = match (&self.ts_min, has_dates) {
            (Some(t), true) => Some(t.clone().min(date(self.date_min))),
            (Some(t), false) => Some(t.clone()),
            (None, true) => Some(date(self.date_min)),
            (None, false) => None,
        };
        let max = match (&self.ts_max, has_dates) {
            (Some(t), true) => Some(t.clone().max(date(self.date_max))),
            (Some(t), false) => Some(t.clone()),
            (None, true) => Some(date(self.date_max)),
            (None, false) => None,
        };
        (min, max)
    }

    fn merge(&mut self, o: &ColumnState) {
        // Values tracked by the lexical min/max (all but dates), before the counts change.
        let self_lex = self.non_null.saturating_sub(self.counts.date);
        let o_lex = o.non_null.saturating_sub(o.counts.date);
        self.nulls += o.nulls;
        let c = &mut self.counts;
        c.int += o.counts.int;
        c.dec += o.counts.dec;
        c.bool_true += o.counts.bool_true;
        c.bool_false += o.counts.bool_false;
        c.date += o.counts.date;
        c.ts += o.counts.ts;
        c.other += o.counts.other;
        self.int_min = self.int_min.min(o.int_min);
        self.int_max = self.int_max.max(o.int_max);
        if o.num_min.total_cmp(&self.num_min) == Ordering::Less {
            self.num_min = o.num_min;
        }
        if o.num_max.total_cmp(&self.num_max) == Ordering::Greater {
            self.num_max = o.num_max;
        }
        self.date_min = self.date_min.min(o.date_min);
        self.date_max = self.date_max.max(o.date_max);
        if let Some(k) = &o.ts_min {
            if self.ts_min.as_ref().is_none_or(|m| k < m) {
                self.ts_min = Some(k.clone());
            }
        }
        if let Some(k) = &o.ts_max {
            if self.ts_max.as_ref().is_none_or(|m| k > m) {
                self.ts_max = Some(k.clone());
            }
        }
        if o_lex > 0 {
            if self_lex == 0 || o.str_min.text() < self.str_min.text() {
                self.str_min = o.str_min.clone();
            }
            if self_lex == 0 || o.str_max.text() > self.str_max.text() {
                self.str_max = o.str_max.clone();
            }
        }
        self.non_null += o.non_null;
        self.min_len = self.min_len.min(o.min_len);
        self.max_len = self.max_len.max(o.max_len);
        self.moments.merge(&o.moments);
        self.quantiles.merge(&o.quantiles);
        self.distinct.merge(&o.distinct);
        self.top.merge(&o.top);
        self.pii.merge(&o.pii);
    }

    fn column_type(&self) -> ColumnType {
        let c = &self.counts;
        let n = self.non_null;
        if n == 0 {
            ColumnType::Empty
        } else if c.bool_true + c.bool_false == n {
            ColumnType::Boolean
        } else if c.int == n {
            ColumnType::Integer
        } else if c.int + c.dec == n {
            ColumnType::Decimal
        } else if c.date == n {
            ColumnType::Date
        } else if c.date + c.ts == n {
            ColumnType::Timestamp
        } else {
            ColumnType::String
        }
    }

    fn report(&self, top_k: usize) -> ColumnReport {
        let ty = self.column_type();
        let c = &self.counts;
        let (min, max) = match ty {
            ColumnType::Empty => (None, None),
            ColumnType::Boolean => (
                Some(Scalar::Bool(c.bool_false == 0)),
                Some(Scalar::Bool(c.bool_true > 0)),
            ),
            ColumnType::Integer => (
                Some(Scalar::Int(self.int_min)),
                Some(Scalar::Int(self.int_max)),
            ),
            ColumnType::Decimal => (
                Some(Scalar::Float(self.num_min)),
                Some(Scalar::Float(self.num_max)),
            ),
            ColumnType::Date => (
                Some(Scalar::Text(civil_from_days(i64::from(self.date_min)))),
                Some(Scalar::Text(civil_from_days(i64::from(self.date_max)))),
            ),
            ColumnType::Timestamp => (
                self.ts_bounds().0.map(|k| Scalar::Text(k.text)),
                self.ts_bounds().1.map(|k| Scalar::Text(k.text)),
            ),
            ColumnType::String => {
                let (lo, hi) = self.lexical_bounds();
                (Some(Scalar::Text(lo)), Some(Scalar::Text(hi)))
            }
        };
        let numeric = matches!(ty, ColumnType::Integer | ColumnType::Decimal);
        let sketch = if numeric {
            self.quantiles.flushed()
        } else {
            DDSketch::default()
        };
        let q = |p: f64| sketch.quantile(p).ok().flatten().unwrap_or(f64::NAN);
        let top = self.top.summary();
        ColumnReport {
            name: self.name.clone(),
            r#type: ty,
            type_counts: TypeCounts {
                integer: c.int,
                decimal: c.int + c.dec,
                boolean: c.bool_true + c.bool_false,
                date: c.date,
                timestamp: c.date + c.ts,
                string: self.non_null,
            },
            count: self.non_null,
            nulls: self.nulls,
            min,
            max,
            mean: (numeric && self.moments.n > 0).then(|| self.moments.mean()),
            stddev: if numeric { self.moments.stddev() } else { None },
            distinct: self.distinct.estimate(),
            distinct_exact: self.distinct.is_exact(),
            top: top
                .top(top_k)
                .into_iter()
                .map(|(v, count)| TopValue {
                    value: v.to_owned(),
                    count,
                })
                .collect(),
            top_error: top.error(),
            quantiles: (numeric && self.moments.n > 0).then(|| Quantiles {
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
            }),
            min_length: (self.non_null > 0).then_some(self.min_len),
            max_length: (self.non_null > 0).then_some(self.max_len),
            pii: self
                .pii
                .entries()
                .into_iter()
                .filter(|&(_, n)| n > 0)
                .map(|(k, n)| (k.to_string(), n as f64 / self.non_null as f64))
                .collect(),
        }
    }
}

/// f64 state fields as their bit patterns: exact, and infinities survive JSON.
mod f64_bits {
    use serde::{Deserialize, Deserializer, Serializer};
    pub(super) fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.to_bits())
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(f64::from_bits(u64::deserialize(d)?))
    }
}

/// A lexical min or max. Values of at most 8 bytes live entirely in `prefix` (their bytes,
/// big-endian, zero-padded) plus `len`, so a new bound costs no copy; longer ones also keep
/// their text. Serialised as the plain string.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
struct LexBound {
    prefix: u64,
    len: usize,
    long: String,
}

impl LexBound {
    #[inline]
    fn set(&mut self, v: &str, p: u64) {
        self.prefix = p;
        self.len = v.len();
        if v.len() > 8 {
            self.long.clear();
            self.long.push_str(v);
        }
    }

    /// The bound's text (borrowed when long, rebuilt from the prefix when short).
    fn text(&self) -> std::borrow::Cow<'_, str> {
        if self.len > 8 {
            std::borrow::Cow::Borrowed(self.long.as_str())
        } else {
            let bytes = self.prefix.to_be_bytes();
            std::borrow::Cow::Owned(String::from_utf8_lossy(&bytes[..self.len]).into_owned())
        }
    }

    /// Byte-wise `self > b`, where `p = prefix8(b)`; prefixes decide unless they are equal.
    #[inline]
    fn greater_than(&self, b: &[u8], p: u64) -> bool {
        match p.cmp(&self.prefix) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => self.cmp_full(b) == Ordering::Greater,
        }
    }

    /// Byte-wise `self < b`.
    #[inline]
    fn less_than(&self, b: &[u8], p: u64) -> bool {
        match p.cmp(&self.prefix) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => self.cmp_full(b) == Ordering::Less,
        }
    }

    fn cmp_full(&self, b: &[u8]) -> Ordering {
        if self.len > 8 {
            self.long.as_bytes().cmp(b)
        } else {
            self.prefix.to_be_bytes()[..self.len].cmp(b)
        }
    }
}

impl std::fmt::Display for LexBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

impl From<String> for LexBound {
    fn from(s: String) -> Self {
        let mut b = LexBound::default();
        b.set(&s, prefix8(s.as_bytes()));
        b
    }
}

impl From<LexBound> for String {
    fn from(b: LexBound) -> Self {
        b.text().into_owned()
    }
}

/// The first 8 bytes as a big-endian integer, zero-padded: comparing two prefixes compares
/// the strings byte-wise whenever the prefixes differ.
#[inline]
fn prefix8(b: &[u8]) -> u64 {
    let n = b.len();
    match b.first_chunk::<8>() {
        Some(c) => u64::from_be_bytes(*c),
        // Two overlapping 4-byte loads: the head in the top half, the tail shifted to end at
        // byte `n`; the overlapping bytes are the same in both, so OR joins them.
        None if n >= 4 => {
            let head = u64::from(u32::from_be_bytes(b[..4].try_into().expect("4 bytes")));
            let tail = u64::from(u32::from_be_bytes(b[n - 4..].try_into().expect("4 bytes")));
            head << 32 | tail << (8 * (8 - n))
        }
        None => b
            .iter()
            .enumerate()
            .fold(0, |v, (i, &x)| v | (u64::from(x) << (56 - 8 * i))),
    }
}

/// One sampled row: its priority (a fixed hash of the byte offset), offset and field texts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SampleEntry {
    priority: u64,
    offset: u64,
    values: Vec<String>,
}

impl Ord for SampleEntry {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.priority, self.offset).cmp(&(o.priority, o.offset))
    }
}

impl PartialOrd for SampleEntry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// SplitMix64's finaliser: a fixed, seedless bijection, so a row's priority depends only on
/// its byte offset and the sample is the same however the file was chunked.
#[inline]
fn offset_priority(offset: u64) -> u64 {
    let mut z = offset.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Heavy-hitters table entries per state while observing, shared by its columns: a table of
/// up to 2048 entries per column lets a column of a few thousand distinct values hit it
/// (cheap) instead of churning through it (a new value costs classification, the distinct
/// sketch, bounds, ...). 16,384 entries are ~0.8 MiB of tables plus their values; wide files
/// get less per column, never under `top_capacity`. The summary written out keeps
/// `top_capacity` entries either way (see `topk`).
const TOP_WORK_BUDGET: usize = 16_384;
const TOP_WORK_MAX: usize = 2048;

fn top_work(capacity: usize, columns: usize) -> usize {
    (TOP_WORK_BUDGET / columns.max(1))
        .min(TOP_WORK_MAX)
        .max(capacity)
}

/// Options as a state uses them: precision clamped to 4..=18, an out-of-range quantile
/// accuracy replaced by the default.
fn normalised(opts: &ProfileOptions) -> ProfileOptions {
    let mut opts = opts.clone();
    opts.hll_precision = opts.hll_precision.clamp(4, 18);
    if !(opts.quantile_accuracy > 0.0 && opts.quantile_accuracy < 1.0) {
        opts.quantile_accuracy = ProfileOptions::default().quantile_accuracy;
    }
    opts
}

/// The mergeable profile of one chunk (or, after merging, of a whole file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfileState {
    format: u32,
    options: ProfileOptions,
    null_matcher: NullMatcher,
    rows: u64,
    bytes: u64,
    rejected: BTreeMap<String, u64>,
    columns: Vec<ColumnState>,
    /// Max-heap on (priority, offset): the top is the first row to drop.
    sample: BinaryHeap<SampleEntry>,
    /// Derived sentiment columns, in the order they were added (merged by score column name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    derived: Vec<SentimentState>,
}

impl ProfileState {
    /// An empty profile for these columns (header names, in file order).
    pub fn new(columns: Vec<String>, opts: &ProfileOptions) -> Self {
        let opts = normalised(opts);
        let work = top_work(opts.top_capacity, columns.len());
        ProfileState {
            format: FORMAT_VERSION,
            null_matcher: NullMatcher::from(opts.null_tokens.clone()),
            rows: 0,
            bytes: 0,
            rejected: BTreeMap::new(),
            columns: columns
                .into_iter()
                .map(|name| ColumnState::new(name, &opts, work))
                .collect(),
            sample: BinaryHeap::new(),
            derived: Vec::new(),
            options: opts,
        }
    }

    /// Adds a derived sentiment column to the profile; returns its index for
    /// [`observe_sentiment`](Self::observe_sentiment). Adding a column already present (same
    /// score column name) returns the existing index.
    pub fn add_sentiment(&mut self, column: SentimentColumn) -> usize {
        if let Some(i) = self
            .derived
            .iter()
            .position(|d| d.column.score_column == column.score_column)
        {
            return i;
        }
        self.derived
            .push(SentimentState::new(column, self.options.quantile_accuracy));
        self.derived.len() - 1
    }

    /// One clean row's score of derived column `index` (from [`add_sentiment`](Self::add_sentiment)):
    /// `None` when the row was not scored (empty text).
    ///
    /// # Panics
    /// If `index` was not returned by `add_sentiment`.
    #[inline]
    pub fn observe_sentiment(&mut self, index: usize, score: Option<f64>) {
        self.derived[index].observe(score);
    }

    /// [`observe_sentiment`](Self::observe_sentiment) with the label given by the scorer (a
    /// model answers a score and a label; the lexicon's label is its score's). `None`: not
    /// scored (empty text, or a model row marked `model_error`, `not_graded`, `not_sampled`).
    ///
    /// # Panics
    /// If `index` was not returned by `add_sentiment`.
    #[inline]
    pub fn observe_sentiment_labelled(
        &mut self,
        index: usize,
        graded: Option<(f64, crate::sentiment::Label)>,
    ) {
        self.derived[index].observe_labelled(graded);
    }

    /// Rows scored so far, summed over the derived sentiment columns.
    pub fn sentiment_scored(&self) -> u64 {
        self.derived.iter().map(|d| d.report_scored()).sum()
    }

    fn options_as_built(&self) -> ProfileOptions {
        normalised(&self.options)
    }

    /// Column names, in order.
    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    /// Clean rows observed.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Profile one clean record starting at byte `offset` of the file. A record whose field
    /// count differs from the columns is counted as a `ragged_row` rejection instead.
    pub fn observe(&mut self, offset: u64, record: &Record<'_>) {
        if record.len() != self.columns.len() {
            self.observe_rejected(offset, RejectReason::RaggedRow);
            return;
        }
        self.rows += 1;
        let nulls = &self.null_matcher;
        for (col, v) in self.columns.iter_mut().zip(record.iter()) {
            col.observe(v, nulls);
        }
        let k = self.options.sample_size;
        if k == 0 {
            return;
        }
        let priority = offset_priority(offset);
        if self.sample.len() >= k {
            let top = self.sample.peek().expect("k > 0 rows");
            if (priority, offset) >= (top.priority, top.offset) {
                return;
            }
            self.sample.pop();
        }
        self.sample.push(SampleEntry {
            priority,
            offset,
            values: record.iter().map(str::to_owned).collect(),
        });
    }

    /// Count one rejected record. The offset is accepted for symmetry with [`observe`](Self::observe).
    pub fn observe_rejected(&mut self, _offset: u64, reason: RejectReason) {
        match self.rejected.get_mut(reason.code()) {
            Some(n) => *n += 1,
            None => {
                self.rejected.insert(reason.code().to_owned(), 1);
            }
        }
    }

    /// Add to the byte count (the caller decides what counts: the chunk's owned bytes).
    pub fn add_bytes(&mut self, n: u64) {
        self.bytes += n;
    }

    /// Merge another chunk's state into this one. Associative and commutative.
    ///
    /// # Panics
    /// If the states have different columns or options; use [`try_merge`](Self::try_merge)
    /// to get an error instead.
    pub fn merge(&mut self, other: &ProfileState) {
        if let Err(e) = self.try_merge(other) {
            panic!("{e}");
        }
    }

    /// Merge, or explain why the two states cannot be merged (leaving `self` unchanged).
    pub fn try_merge(&mut self, other: &ProfileState) -> Result<(), ProfileError> {
        if self.options != other.options {
            return Err(ProfileError::Incompatible("profile options differ".into()));
        }
        if self.columns.len() != other.columns.len()
            || self
                .columns
                .iter()
                .zip(&other.columns)
                .any(|(a, b)| a.name != b.name)
        {
            return Err(ProfileError::Incompatible("column names differ".into()));
        }
        self.rows += other.rows;
        self.bytes += other.bytes;
        for (code, n) in &other.rejected {
            *self.rejected.entry(code.clone()).or_default() += n;
        }
        for (a, b) in self.columns.iter_mut().zip(&other.columns) {
            a.merge(b);
        }
        for d in &other.derived {
            match self
                .derived
                .iter_mut()
                .find(|x| x.column.score_column == d.column.score_column)
            {
                Some(x) => x.merge(d),
                None => self.derived.push(d.clone()),
            }
        }
        let k = self.options.sample_size;
        for e in other.sample.iter() {
            self.sample.push(e.clone());
            if self.sample.len() > k {
                self.sample.pop();
            }
        }
        Ok(())
    }

    /// The `profile.json` document.
    pub fn report(&self) -> ProfileReport {
        let mut rejected: BTreeMap<String, u64> = ALL_REASONS
            .iter()
            .map(|r| (r.code().to_owned(), 0))
            .collect();
        for (code, n) in &self.rejected {
            *rejected.entry(code.clone()).or_default() += n;
        }
        let mut sample: Vec<&SampleEntry> = self.sample.iter().collect();
        sample.sort_unstable_by_key(|e| e.offset);
        ProfileReport {
            schema_version: FORMAT_VERSION,
            rows: self.rows,
            bytes: self.bytes,
            rejected_rows: rejected.values().sum(),
            rejected,
            columns: self
                .columns
                .iter()
                .map(|c| c.report(self.options.top_k))
                .collect(),
            sample: sample
                .into_iter()
                .map(|e| SampleRow {
                    offset: e.offset,
                    values: e.values.clone(),
                })
                .collect(),
            derived: self
                .derived
                .iter()
                .map(|d| (d.column.score_column.clone(), d.report()))
                .collect(),
        }
    }

    /// Compact serialized state (JSON; sketches are base64 inside), for S3.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("profile state serialises to JSON")
    }

    /// Decode a state written by [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProfileError> {
        let state: ProfileState = serde_json::from_slice(bytes)?;
        if state.format != FORMAT_VERSION {
            return Err(ProfileError::Version(state.format));
        }
        for c in &state.columns {
            let k = &c.counts;
            let classes = k.int + k.dec + k.bool_true + k.bool_false + k.date + k.ts + k.other;
            if classes != c.non_null {
                return Err(ProfileError::Invalid(format!(
                    "column {:?}: class counts {classes} != non-null count {}",
                    c.name, c.non_null
                )));
            }
        }
        if state.options != state.options_as_built() {
            return Err(ProfileError::Invalid("options out of range".into()));
        }
        Ok(state)
    }
}

const ALL_REASONS: [RejectReason; 5] = [
    RejectReason::RaggedRow,
    RejectReason::InvalidUtf8,
    RejectReason::NulByte,
    RejectReason::FieldTooLarge,
    RejectReason::StrayQuote,
];
