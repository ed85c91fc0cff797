//! Offline rule suggestions: from a file's [`ProfileReport`], a rule document (the same
//! [`RuleDocument`] `tessera process --rules` and the workflows accept) plus one sentence per
//! rule saying why. Deterministic: the same profile and options give the same document.
//!
//! What is suggested, per column, in this order (details and margins in docs/rules.md,
//! "Suggested rules"): `not_null` on columns without empty values; a `type` check for
//! integer, decimal, boolean, date and timestamp columns; a `range` with a margin for
//! numbers, dates and timestamps; `one_of` for low-cardinality text columns whose every value
//! the profile counted; a `matches` format for e-mail columns (the profile's detector matched
//! at least 95 % of the values) and for ID-like columns (a fixed shape of letters and digits, see `shape`);
//! `unique` for ID-like columns with as many distinct values as values.
//!
//! Every rule holds on the profiled data by construction except three that rest on samples or
//! estimates: an ID shape (seen on the profile's sample and extremes), an e-mail format where
//! the detector matched under 100 %, and `unique` beyond the profile's exact distinct limit (an
//! estimate); their reasons say so, and
//! [`Suggestion::prune`] drops any rule a dry run over the file found violated.
//!
//! Not here: profiling or dry-running the file (the caller runs the engine: `tessera rules
//! suggest`, the API), any model, cross-column checks (`compare`), transforms and masks.

mod bounds;
mod shape;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::doc::*;
use crate::profile::{
    ColumnReport, ColumnType, ProfileOptions, ProfileReport, Scalar, DEFAULT_NULL_TOKENS,
};

/// Most distinct values a `one_of` list gets (and the `top_k` of [`suggest_profile_options`]).
pub const MAX_ONE_OF: usize = 50;

/// An e-mail address: a local part of anything but white space and `@` (Unicode included), and
/// the profile detector's domain (letters, digits and inner hyphens, two labels or more, a
/// final label of 2+ letters). Every value the detector accepts matches it.
pub const EMAIL_PATTERN: &str = r"^[^\s@]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}$";

/// Share of a column's values the e-mail detector must match for an e-mail format. Below 1 the
/// rest are unverified (often addresses the detector does not read, such as non-ASCII local
/// parts, which the pattern accepts): the reason says so.
pub const EMAIL_SHARE: f64 = 0.95;

/// Where the suggestions came from (the API answers `"source": "profile"` or `"model"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Deterministic suggestions from the file's profile (this module).
    Profile,
    /// A language model's proposal (the agent function).
    Model,
}

/// The kind of a suggested rule, for its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `not_null` on a column with no empty value.
    Completeness,
    /// `type`: the column's inferred type.
    Type,
    /// `range` with a margin.
    Range,
    /// `one_of` the values seen.
    OneOf,
    /// `matches` (e-mail, ID shape) or `length`.
    Format,
    /// `unique`.
    Unique,
}

/// Why one rule was suggested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// The rule's index in `rules.rules`.
    pub rule: usize,
    /// JSON pointer of the rule (`/rules/<index>`).
    pub path: String,
    /// The rule's id (also set in the document, so it survives pruning).
    pub id: String,
    /// The column it checks.
    pub column: String,
    /// What kind of suggestion it is.
    pub kind: Kind,
    /// One sentence: the evidence from the profile.
    pub why: String,
}

/// A column that got fewer rules than it might have, or a rule that was dropped, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// The column.
    pub column: String,
    /// The rule id, when a suggested rule was dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What was left out and why.
    pub why: String,
}

/// A suggested rule document with its reasons: `{"source": "profile", "rules": ..., "reasons":
/// [...], "notes": [...]}` as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// Who made the suggestions.
    pub source: Source,
    /// The rule document (valid: it passes `parse_document`, `compile` against the profiled
    /// header and `against_profile`).
    pub rules: RuleDocument,
    /// One per rule, in document order.
    pub reasons: Vec<Reason>,
    /// What was left out, and rules dropped by [`Suggestion::prune`].
    pub notes: Vec<Note>,
}

/// Knobs of [`suggest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SuggestOptions {
    /// The null tokens the profile was computed with (`ProfileOptions::null_tokens`). The
    /// profile counts them as nulls but rules see them as values, so a column with nulls gets
    /// value checks only when this is empty (then every null is an empty value).
    pub null_tokens: Vec<String>,
    /// Most distinct values for a `one_of`.
    pub max_one_of: usize,
    /// Margin of a range on each side, as a share of the observed span (0.1 = 10 %).
    pub range_margin: f64,
}

impl Default for SuggestOptions {
    /// Options for a profile made with the default [`ProfileOptions`] (a job's profile).
    fn default() -> Self {
        SuggestOptions {
            null_tokens: DEFAULT_NULL_TOKENS.iter().map(|s| s.to_string()).collect(),
            max_one_of: MAX_ONE_OF,
            range_margin: 0.1,
        }
    }
}

impl SuggestOptions {
    /// Options matching a profile made with `opts`.
    pub fn for_profile(opts: &ProfileOptions) -> Self {
        SuggestOptions {
            null_tokens: opts.null_tokens.clone(),
            max_one_of: MAX_ONE_OF.min(opts.top_k),
            ..SuggestOptions::default()
        }
    }
}

/// The profile options to profile a file with when the profile is for suggestions: no null
/// tokens (so nulls are exactly the empty values that rules see as empty) and the top
/// [`MAX_ONE_OF`] values per column (so a `one_of` list can be complete).
pub fn suggest_profile_options() -> ProfileOptions {
    ProfileOptions {
        null_tokens: Vec::new(),
        top_k: MAX_ONE_OF,
        ..ProfileOptions::default()
    }
}

/// One rule before ids are assigned.
struct Draft {
    column: String,
    kind: Kind,
    check: Check,
    why: String,
}

/// Suggests rules from a profile. Pure and deterministic.
pub fn suggest(profile: &ProfileReport, opts: &SuggestOptions) -> Suggestion {
    let mut drafts = Vec::new();
    let mut notes = Vec::new();
    for (i, c) in profile.columns.iter().enumerate() {
        let samples: Vec<&str> = profile
            .sample
            .iter()
            .filter_map(|r| r.values.get(i).map(String::as_str))
            .collect();
        column(c, profile.rows, &samples, opts, &mut drafts, &mut notes);
    }
    let mut doc = RuleDocument {
        version: RULES_VERSION,
        on_violation: Action::Reject,
        columns: BTreeMap::new(),
        rules: drafts
            .iter()
            .map(|d| Rule {
                id: None,
                column: Some(d.column.clone()),
                check: d.check.clone(),
                on_violation: None,
                message: None,
            })
            .collect(),
    };
    let ids = doc.rule_ids();
    for (r, id) in doc.rules.iter_mut().zip(&ids) {
        r.id = Some(id.clone());
    }
    let reasons = drafts
        .into_iter()
        .zip(ids)
        .enumerate()
        .map(|(i, (d, id))| Reason {
            rule: i,
            path: format!("/rules/{i}"),
            id,
            column: d.column,
            kind: d.kind,
            why: d.why,
        })
        .collect();
    Suggestion {
        source: Source::Profile,
        rules: doc,
        reasons,
        notes,
    }
}

impl Suggestion {
    /// Drops every rule with violations in a dry run over the file (`violations`: rule id ->
    /// count, as `ProcessSummary::violations`; `records`: the records checked), keeping a
    /// note of each; returns the ids dropped.
    pub fn prune(&mut self, violations: &BTreeMap<String, u64>, records: u64) -> Vec<String> {
        let bad = |id: &str| violations.get(id).copied().unwrap_or(0);
        let mut dropped = Vec::new();
        let mut kept_rules = Vec::new();
        let mut kept_reasons = Vec::new();
        for (rule, reason) in self.rules.rules.drain(..).zip(self.reasons.drain(..)) {
            let n = bad(&reason.id);
            if n == 0 {
                kept_rules.push(rule);
                kept_reasons.push(reason);
                continue;
            }
            self.notes.push(Note {
                column: reason.column,
                id: Some(reason.id.clone()),
                why: format!(
                    "dropped: {n} of the {records} records violate it in the dry run ({})",
                    reason.why
                ),
            });
            dropped.push(reason.id);
        }
        for (i, r) in kept_reasons.iter_mut().enumerate() {
            r.rule = i;
            r.path = format!("/rules/{i}");
        }
        self.rules.rules = kept_rules;
        self.reasons = kept_reasons;
        dropped
    }
}

/// Thousands separators for counts in reasons.
fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn type_spec(t: ColumnType) -> Option<(TypeSpec, &'static str)> {
    Some(match t {
        ColumnType::Integer => (TypeSpec::Integer, "integers"),
        ColumnType::Decimal => (TypeSpec::Decimal, "decimal numbers"),
        ColumnType::Boolean => (TypeSpec::Boolean, "booleans (true/false)"),
        ColumnType::Date => (TypeSpec::Date(FormatSpec::default()), "dates (YYYY-MM-DD)"),
        ColumnType::Timestamp => (
            TypeSpec::Timestamp(FormatSpec::default()),
            "ISO 8601 timestamps",
        ),
        ColumnType::Empty | ColumnType::String => return None,
    })
}

/// The rules of one column, appended to `out` in a fixed order.
fn column(
    c: &ColumnReport,
    rows: u64,
    samples: &[&str],
    opts: &SuggestOptions,
    out: &mut Vec<Draft>,
    notes: &mut Vec<Note>,
) {
    let name = &c.name;
    let mut push = |kind: Kind, check: Check, why: String| {
        out.push(Draft {
            column: name.clone(),
            kind,
            check,
            why,
        })
    };
    if rows == 0 || c.count == 0 {
        notes.push(Note {
            column: name.clone(),
            id: None,
            why: format!("`{name}` has no values: nothing to suggest"),
        });
        return;
    }
    if c.nulls == 0 {
        push(
            Kind::Completeness,
            Check::NotNull,
            format!("`{name}` has a value in all {} rows", count(rows)),
        );
    } else if !opts.null_tokens.is_empty() {
        // The profile's nulls may be tokens such as `NA`, which every value check would reject.
        notes.push(Note {
            column: name.clone(),
            id: None,
            why: format!(
                "`{name}` has {} nulls, which may be null tokens (NA, NULL, ...) that value checks would reject; profile with no null tokens (as `tessera rules suggest` does) to get checks for it",
                count(c.nulls)
            ),
        });
        return;
    }
    let empties = if c.nulls == 0 {
        String::new()
    } else {
        format!(" ({} empty values pass)", count(c.nulls))
    };

    let mut typed = false;
    if let Some((ty, what)) = type_spec(c.r#type) {
        // Timestamps: the profile accepts `+hh` zones, the rules want `+hh:mm`; check the
        // extremes parse as the rule will parse them before relying on the type.
        let time_ok = match (&ty, &c.min, &c.max) {
            (TypeSpec::Timestamp(_), Some(Scalar::Text(lo)), Some(Scalar::Text(hi))) => {
                bounds::parse_time(&ty, lo).is_some() && bounds::parse_time(&ty, hi).is_some()
            }
            (TypeSpec::Timestamp(_), _, _) => false,
            _ => true,
        };
        if time_ok {
            typed = true;
            push(
                Kind::Type,
                Check::Type(ty.clone()),
                format!(
                    "all {} non-empty values of `{name}` are {what}{empties}",
                    count(c.count)
                ),
            );
        } else {
            notes.push(Note {
                column: name.clone(),
                id: None,
                why: format!("`{name}` holds timestamps in a spelling the rules do not read (e.g. a `+hh` zone): no type or range"),
            });
        }
    }
    let id_like = is_id_like(c, samples);
    if typed {
        let unique_int = id_like && c.r#type == ColumnType::Integer && unique_evidence(c).is_some();
        if let Some((range, why)) = bounds::range(c, opts.range_margin, unique_int) {
            push(Kind::Range, Check::Range(range), format!("{why}{empties}"));
        }
    }
    let mut has_format = false;
    if c.r#type == ColumnType::String {
        if let Some(values) = one_of_values(c, opts.max_one_of) {
            has_format = true;
            let shown: Vec<String> = values.iter().take(6).map(|v| format!("`{v}`")).collect();
            let more = if values.len() > 6 { ", ..." } else { "" };
            push(
                Kind::OneOf,
                Check::OneOf(OneOfCheck {
                    values: Some(values.clone()),
                    reference: None,
                    ignore_case: false,
                }),
                format!(
                    "`{name}` takes {} distinct values in {} rows, every one counted ({}{more}){empties}",
                    values.len(),
                    count(c.count),
                    shown.join(", ")
                ),
            );
        } else if let Some(share) = c.pii.get("email").copied().filter(|s| *s >= EMAIL_SHARE) {
            has_format = true;
            let why = if share >= 1.0 {
                format!(
                    "the profile's e-mail detector matched all {} non-empty values of `{name}`{empties}",
                    count(c.count)
                )
            } else {
                format!(
                    "the profile's e-mail detector matched {:.2}% of the {} non-empty values of `{name}`; the pattern also takes non-ASCII local parts, but the rest are unverified: verify with a dry run{empties}",
                    100.0 * share,
                    count(c.count)
                )
            };
            push(
                Kind::Format,
                Check::Matches(MatchesCheck {
                    pattern: EMAIL_PATTERN.to_string(),
                }),
                why,
            );
        }
    }
    if c.r#type == ColumnType::String && !has_format && id_like {
        let (lo_len, hi_len) = (c.min_length.unwrap_or(0), c.max_length.unwrap_or(0));
        match shape::infer(&observed(c, samples), lo_len, hi_len) {
            Some(pattern) => push(
                Kind::Format,
                Check::Matches(MatchesCheck { pattern }),
                format!(
                    "`{name}` looks like an ID: the {} sampled values and the extremes share one shape of letters and digits, {lo_len}-{hi_len} characters in every row (a sample: verify with a dry run){empties}",
                    observed(c, samples).len().saturating_sub(2)
                ),
            ),
            None if lo_len == hi_len => push(
                Kind::Format,
                Check::Length(LengthCheck {
                    min: Some(lo_len),
                    max: Some(hi_len),
                }),
                format!("every value of `{name}` has {lo_len} characters{empties}"),
            ),
            None => {}
        }
    }
    if id_like {
        if let Some(why) = unique_evidence(c) {
            push(Kind::Unique, Check::Unique, why);
        }
    }
}

/// The column's values seen in full: the sample's non-empty values, then the extremes (for
/// text columns, the lexical min and max of every value).
fn observed<'a>(c: &'a ColumnReport, samples: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = samples.iter().copied().filter(|s| !s.is_empty()).collect();
    for s in [&c.min, &c.max].into_iter().flatten() {
        if let Scalar::Text(t) = s {
            v.push(t);
        }
    }
    v
}

/// ID-like: integers of 0 or more, or text with no white space and no line break in the sample and the
/// extremes, at least one digit, and more distinct values than a `one_of` would list.
fn is_id_like(c: &ColumnReport, samples: &[&str]) -> bool {
    match c.r#type {
        ColumnType::Integer => matches!(c.min, Some(Scalar::Int(m)) if m >= 0),
        ColumnType::String => {
            let seen = observed(c, samples);
            c.distinct as usize > MAX_ONE_OF
                && !seen.is_empty()
                && seen
                    .iter()
                    .all(|v| v.is_ascii() && !v.bytes().any(|b| b.is_ascii_whitespace()))
                && seen.iter().any(|v| v.bytes().any(|b| b.is_ascii_digit()))
                && c.pii.is_empty()
        }
        _ => false,
    }
}

/// The exact value set of a text column when the profile counted every value (the top values'
/// counts add up to the non-empty count with no error) and it is small; sorted.
fn one_of_values(c: &ColumnReport, max: usize) -> Option<Vec<String>> {
    let total: u64 = c.top.iter().map(|t| t.count).sum();
    if c.top_error != 0 || total != c.count || c.top.is_empty() || c.top.len() > max {
        return None;
    }
    // A list as long as the values it covers says nothing: ask for 5 records per value.
    if (c.top.len() as u64) * 5 > c.count {
        return None;
    }
    let mut v: Vec<String> = c.top.iter().map(|t| t.value.clone()).collect();
    v.sort();
    Some(v)
}

/// Why `unique` fits the column: exactly as many distinct values as values, or an estimate
/// within the distinct sketch's error with no repeated value among the heavy hitters.
fn unique_evidence(c: &ColumnReport) -> Option<String> {
    if c.count < 2 {
        return None;
    }
    let name = &c.name;
    if c.distinct_exact {
        return (c.distinct == c.count).then(|| {
            format!(
                "`{name}` has {} distinct values in {} non-empty ones (an exact count)",
                count(c.distinct),
                count(c.count)
            )
        });
    }
    // HyperLogLog at the default precision: ~0.8 % standard error, so 3 % is ~4 sigma.
    let repeated = c.top.first().is_some_and(|t| t.count > 1);
    (c.distinct as f64 >= 0.97 * c.count as f64 && !repeated).then(|| {
        format!(
            "`{name}` has about {} distinct values in {} non-empty ones (an estimate within ~1 %; no value repeats among the most frequent): a candidate, verify with a dry run",
            count(c.distinct),
            count(c.count)
        )
    })
}
