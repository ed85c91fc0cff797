//! The report types of `profile.json` (schema in docs/profile.md): what
//! [`ProfileState::report`](super::ProfileState::report) returns. Plain data, no statistics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::DerivedReport;

/// `profile.json`: the stable, documented report (see docs/profile.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileReport {
    /// Schema version, currently 1.
    pub schema_version: u32,
    /// Clean rows profiled.
    pub rows: u64,
    /// Bytes covered.
    pub bytes: u64,
    /// Rejected rows in total.
    pub rejected_rows: u64,
    /// Rejected rows per reason code (every known code present, zero or not).
    pub rejected: BTreeMap<String, u64>,
    /// One entry per column, in file order.
    pub columns: Vec<ColumnReport>,
    /// Uniform sample of clean rows, in file order.
    pub sample: Vec<SampleRow>,
    /// Derived columns of the clean output (sentiment), keyed by the score column's name;
    /// absent when the rules derive nothing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub derived: BTreeMap<String, DerivedReport>,
}

/// The inferred type of a column: the narrowest type all non-null values fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// Every value is null.
    Empty,
    /// `true`/`false`.
    Boolean,
    /// Whole numbers in i64.
    Integer,
    /// Numbers (integers included).
    Decimal,
    /// `YYYY-MM-DD`.
    Date,
    /// ISO 8601 date-times (dates included).
    Timestamp,
    /// Anything else.
    String,
}

/// How many non-null values fit each candidate type (wider types include narrower ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeCounts {
    pub integer: u64,
    pub decimal: u64,
    pub boolean: u64,
    pub date: u64,
    pub timestamp: u64,
    pub string: u64,
}

/// A typed min/max: a JSON number, boolean or string depending on the column type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

/// A frequent value and its count (a lower bound; at most `top_error` short).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopValue {
    pub value: String,
    pub count: u64,
}

/// Approximate quantiles (relative accuracy `quantile_accuracy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

/// One column of `profile.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnReport {
    pub name: String,
    #[serde(rename = "type")]
    pub r#type: ColumnType,
    pub type_counts: TypeCounts,
    /// Non-null values.
    pub count: u64,
    pub nulls: u64,
    pub min: Option<Scalar>,
    pub max: Option<Scalar>,
    pub mean: Option<f64>,
    pub stddev: Option<f64>,
    pub distinct: u64,
    pub distinct_exact: bool,
    pub top: Vec<TopValue>,
    pub top_error: u64,
    pub quantiles: Option<Quantiles>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    /// Share of non-null values matched by each PII detector (`email`, `phone`, `card`, `ssn`,
    /// `iban`, `ip`); only detectors that matched at least one value.
    #[serde(default)]
    pub pii: BTreeMap<String, f64>,
}

/// One sampled row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRow {
    /// Byte offset of the record in the file.
    pub offset: u64,
    pub values: Vec<String>,
}
