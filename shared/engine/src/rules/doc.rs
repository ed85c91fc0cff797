//! The rule document: the versioned JSON a user (or the rule generator) writes. Plain serde
//! types with a JSON Schema derived from them (`docs/rules.schema.json`); no behaviour here
//! beyond defaults. Validation and compilation are in `compile`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The only document version this engine understands.
pub const RULES_VERSION: u32 = 1;

/// A rule document: checks, per-column transforms and what to do on a violation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleDocument {
    /// Document format version; must be 1.
    pub version: u32,
    /// What a violation does unless the rule says otherwise (default `reject`).
    #[serde(default)]
    pub on_violation: Action,
    /// Per-column settings keyed by source header name: declared type, transforms of the
    /// clean output, rename, drop, derived columns.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnSpec>,
    /// Checks, evaluated on every well-formed record in this order.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// Settings of one source column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// The column's type, used by `range` and `compare` (a `type` rule on the column also
    /// declares it). Declaring it does not check it: add a `type` rule for that.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub ty: Option<TypeSpec>,
    /// Transforms of the clean output value, applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<Transform>,
    /// Name of the column in the clean output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename: Option<String>,
    /// Leave the column out of the clean output (checks still see it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drop: bool,
    /// Columns computed from this column's source value, added at the end of the clean output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derive: Option<DeriveSpec>,
}

/// What to compute from a column's value: `{"sentiment": {"engine": "lexicon"}}` adds
/// `<column>_sentiment` (compound score, 4 fraction digits) and `<column>_sentiment_label`
/// (`positive`, `negative` or `neutral`) at the end of the clean output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeriveSpec {
    /// The sentiment of the column's text (see docs/sentiment.md).
    pub sentiment: SentimentSpec,
}

/// A sentiment derive step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SentimentSpec {
    /// Which scorer: `lexicon` (VADER, in the chunk workers) or `model` (a language model,
    /// PII masked first; needs a deployment with a model: docs/sentiment.md).
    pub engine: SentimentEngine,
    /// `model` only: grade about this many rows, a uniform sample drawn from each row's byte
    /// offset (the same rows whatever the chunk size); the others get `not_sampled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub sample: Option<u64>,
    /// `model` only, and required there: the most a job may spend grading this column, in US
    /// dollars (the price table's estimate). A job whose estimate is above it fails
    /// `cost_limit` before any row is graded; once its spending reaches it, the rows left are
    /// written `not_graded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.000001))]
    pub max_cost_usd: Option<f64>,
}

/// The scorer of a sentiment derive step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SentimentEngine {
    /// VADER's lexicon and rules (`tessera_engine::sentiment`), on every row.
    Lexicon,
    /// A language model (the agent's Bedrock model and shared rate limiter), rows batched,
    /// personal data masked before any text leaves (docs/sentiment.md, "The model engine").
    Model,
}

impl SentimentEngine {
    /// The name as the document writes it (`lexicon`, `model`).
    pub fn as_str(self) -> &'static str {
        match self {
            SentimentEngine::Lexicon => "lexicon",
            SentimentEngine::Model => "model",
        }
    }
}

/// The suffixes of the two columns a sentiment derive step adds after the column's name.
pub const SENTIMENT_SUFFIXES: [&str; 2] = ["_sentiment", "_sentiment_label"];

/// A value type. Unit variants are written as strings (`"integer"`), dates and timestamps
/// as objects with an optional strftime-style format (`{"date": {"format": "%d/%m/%Y"}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TypeSpec {
    /// Whole number in the signed 64-bit range, optional sign, ASCII digits.
    Integer,
    /// Decimal number: optional sign, digits, optional fraction and exponent.
    Decimal,
    /// `true/false`, `t/f`, `yes/no`, `y/n`, `1/0`, any case.
    Boolean,
    /// Calendar date; `format` defaults to `%Y-%m-%d`.
    Date(#[serde(default)] FormatSpec),
    /// Date and time; without `format`, ISO 8601 / RFC 3339
    /// (`2026-11-26T10:15:00`, `T` or space, optional fraction and `Z`/`+hh:mm`).
    Timestamp(#[serde(default)] FormatSpec),
}

/// A strftime-style format: `%Y %m %d %H %M %S %f %y %b %z %T %%`, other bytes literal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormatSpec {
    /// The format; absent means the ISO default of the type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// One check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable identifier used in outputs (`rule:<id>`, `_violations`, violation counts).
    /// Letters, digits, `_`, `-`, `.`; generated from the column and check when absent
    /// (`<column>_<check>`, `_2`... on repeats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The source column the check applies to (every check but `compare`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The check.
    pub check: Check,
    /// What a violation does; the document's `on_violation` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_violation: Option<Action>,
    /// Text for the rejected output's `detail` instead of the generated one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What a rule checks. Every check but `not_null` and `compare` passes on an empty value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The value is not empty.
    NotNull,
    /// The value parses as the type.
    Type(TypeSpec),
    /// The value lies between `min` and `max` (typed: the column's declared type, else decimal
    /// for numeric bounds). A value that does not parse as the type violates the range.
    Range(RangeCheck),
    /// The value's length in characters lies between `min` and `max` (inclusive).
    Length(LengthCheck),
    /// The whole value matches the regular expression (`regex` crate syntax, linear time;
    /// anchor with `^...$` for a full match).
    Matches(MatchesCheck),
    /// The value is one of a list: inline `values` or a column of a reference CSV (`ref`).
    OneOf(OneOfCheck),
    /// No other record of the file has the same (non-empty) value; every repeat after the
    /// first occurrence is a violation.
    Unique,
    /// A typed comparison of two columns of the same record, e.g. `end >= start`; passes when
    /// either side is empty.
    Compare(CompareCheck),
}

/// Bounds of a `range` check: numbers, or strings for dates/timestamps (ISO or the column's
/// format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeCheck {
    /// Lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Bound>,
    /// Upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Bound>,
    /// Whether `min` itself is allowed (default true).
    #[serde(default = "yes")]
    pub min_inclusive: bool,
    /// Whether `max` itself is allowed (default true).
    #[serde(default = "yes")]
    pub max_inclusive: bool,
}

fn yes() -> bool {
    true
}

/// A range bound: a JSON number or a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Bound {
    /// A number.
    Number(f64),
    /// A string, parsed as the column's type.
    Text(String),
}

/// Bounds of a `length` check, in characters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LengthCheck {
    /// Fewest characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u64>,
    /// Most characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
}

/// A regular expression check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchesCheck {
    /// The pattern.
    pub pattern: String,
}

/// An allowed-values check: exactly one of `values` and `ref`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OneOfCheck {
    /// The allowed values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// The allowed values are a column of another CSV; the caller loads it.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<RefSpec>,
    /// Compare without regard to case (Unicode simple lowercase).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_case: bool,
}

/// A column of a reference CSV file.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct RefSpec {
    /// Where the file is (an S3 key for the pipeline, a path for `tessera process`).
    pub key: String,
    /// The column's header name in that file.
    pub column: String,
}

/// A comparison of two columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompareCheck {
    /// Left column.
    pub left: String,
    /// Operator.
    pub op: CompareOp,
    /// Right column.
    pub right: String,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CompareOp {
    /// Equal.
    #[serde(rename = "==")]
    Eq,
    /// Not equal.
    #[serde(rename = "!=")]
    Ne,
    /// Less than.
    #[serde(rename = "<")]
    Lt,
    /// Less than or equal.
    #[serde(rename = "<=")]
    Le,
    /// Greater than.
    #[serde(rename = ">")]
    Gt,
    /// Greater than or equal.
    #[serde(rename = ">=")]
    Ge,
}

impl CompareOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }
}

/// A transform of a clean output value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// Remove leading and trailing white space.
    Trim,
    /// Upper or lower case.
    Case(CaseSpec),
    /// Replace every match of a regular expression (`$1`, `${name}` refer to groups).
    Replace(ReplaceSpec),
    /// Use this value when the value is empty.
    Default(String),
    /// Rewrite values of the type in canonical form: integers and decimals without `+`,
    /// leading zeros or trailing fraction zeros; booleans `true`/`false`; dates `YYYY-MM-DD`;
    /// timestamps `YYYY-MM-DDTHH:MM:SS[.fff][Z|+hh:mm]`. Values that do not parse stay as
    /// they are (add a `type` rule to catch them).
    Normalize(TypeSpec),
    /// Mask personal data.
    Mask(MaskSpec),
}

/// Upper or lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaseSpec {
    /// Unicode upper case.
    Upper,
    /// Unicode lower case.
    Lower,
}

/// A regex replacement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceSpec {
    /// The pattern (`regex` crate syntax).
    pub pattern: String,
    /// The replacement.
    #[serde(default)]
    pub with: String,
}

/// How to mask a value. Empty values stay empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaskSpec {
    /// Replace the value by `[REDACTED]`, or by `with`.
    Redact(#[serde(default)] RedactSpec),
    /// Keep a hint: e-mail addresses keep the first character and the domain
    /// (`j***@example.com`); other values keep their last 4 characters (`****1234`), values of
    /// 4 characters or fewer are masked entirely.
    Partial,
    /// A keyed token: HMAC-SHA256 of the value with the key the caller configures (never in the
    /// document). Same value and key -> same token, so joins still work.
    Token(#[serde(default)] TokenSpec),
}

/// Options of `redact`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedactSpec {
    /// The replacement text (default `[REDACTED]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<String>,
}

/// Options of `token`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// `hex` (default) or `base64url` (no padding).
    #[serde(default)]
    pub encoding: TokenEncoding,
    /// Characters kept from the encoded digest (default 32; hex has 64, base64url 43).
    #[serde(default = "default_token_len")]
    pub length: u32,
}

impl Default for TokenSpec {
    fn default() -> Self {
        TokenSpec {
            encoding: TokenEncoding::Hex,
            length: default_token_len(),
        }
    }
}

fn default_token_len() -> u32 {
    32
}

/// Encoding of a token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenEncoding {
    /// Lower-case hexadecimal.
    #[default]
    Hex,
    /// URL-safe base64 without padding.
    Base64url,
}

/// What a violation does to its record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The record goes to the rejected output (reason `rule:<id>`).
    #[default]
    Reject,
    /// The record stays in the clean output; the added column `_violations` lists the ids of
    /// the flag rules it violates (`;`-separated).
    Flag,
    /// The job fails when this rule's violations exceed the threshold (after all chunks are
    /// merged); below it, violating records are rejected as with `reject`.
    Fail(Threshold),
}

/// When a `fail` rule fails the job: more than `max_count` violations, or more than
/// `max_percent` of the rows (both may be given; either exceeded fails). Neither: any violation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// Most violations allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u64>,
    /// Most violations allowed, in percent of the rows (well-formed records) of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_percent: Option<f64>,
}

impl Check {
    /// The check's name as written in documents (used for generated ids).
    pub fn name(&self) -> &'static str {
        match self {
            Check::NotNull => "not_null",
            Check::Type(_) => "type",
            Check::Range(_) => "range",
            Check::Length(_) => "length",
            Check::Matches(_) => "matches",
            Check::OneOf(_) => "one_of",
            Check::Unique => "unique",
            Check::Compare(_) => "compare",
        }
    }
}

impl TypeSpec {
    /// The type's name as written in documents.
    pub fn name(&self) -> &'static str {
        match self {
            TypeSpec::Integer => "integer",
            TypeSpec::Decimal => "decimal",
            TypeSpec::Boolean => "boolean",
            TypeSpec::Date(_) => "date",
            TypeSpec::Timestamp(_) => "timestamp",
        }
    }
}
