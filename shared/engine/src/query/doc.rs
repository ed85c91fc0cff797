//! The query document: the versioned JSON a user, a script or the agent writes. Plain serde
//! types with a JSON Schema derived from them (`docs/query.schema.json`); no behaviour here
//! beyond defaults. The shape is fixed by issue 11: extend it, never rename.
//!
//! Not here: checking names and types against the file (`validate`), running (`exec`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The only document version this engine understands.
pub const QUERY_VERSION: u32 = 1;

/// Rows returned when the document gives no `limit`.
pub const DEFAULT_LIMIT: u64 = 1000;

/// A structured aggregate query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryDocument {
    /// Document format version; must be 1.
    pub version: u32,
    /// Which data: the job's clean output (after rules) or the uploaded file. The local
    /// command reads the file it is given either way.
    #[serde(default)]
    pub source: Source,
    /// Keeps only the records for which the predicate holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Predicate>,
    /// Group keys: a column name, or a derived key (bucket, transform).
    #[serde(default)]
    pub group_by: Vec<GroupKey>,
    /// Aggregates, one result column each, in this order after the keys.
    #[serde(default)]
    pub aggregates: Vec<Aggregate>,
    /// Keeps only the groups for which the predicate over keys and aggregates holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub having: Option<Having>,
    /// Sort order of the rows; ties (and no order) fall back to the keys ascending.
    #[serde(default)]
    pub order_by: Vec<OrderBy>,
    /// Rows returned at most (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Rows skipped before the first returned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Overrides of the inferred column types (a cast): values that do not parse as the type
    /// are counted as `unparsed` and read as null.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub types: BTreeMap<String, ValueType>,
}

/// Which data a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The job's clean output, after rules.
    #[default]
    Clean,
    /// The uploaded file as it is.
    Source,
}

/// A column type as the query engine reads it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// Whole numbers in i64.
    Integer,
    /// Exact decimals (fixed point, up to 38 digits).
    Decimal,
    /// `true`/`false`.
    Boolean,
    /// `YYYY-MM-DD`.
    Date,
    /// ISO 8601 date-times (UTC after the offset).
    Timestamp,
    /// Text.
    String,
}

/// A predicate over one record: a tree of `and`/`or`/`not` over comparisons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Predicate {
    /// All hold (an empty list holds).
    And {
        /// The operands.
        and: Vec<Predicate>,
    },
    /// At least one holds (an empty list does not).
    Or {
        /// The operands.
        or: Vec<Predicate>,
    },
    /// The operand does not hold.
    Not {
        /// The operand.
        not: Box<Predicate>,
    },
    /// A comparison of one column with a literal.
    Compare(Comparison),
}

/// `column op value`. A null (or unparsed) value satisfies only `is_null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    /// Column name (header).
    pub column: String,
    /// The operator.
    pub op: Op,
    /// The literal: of the column's type for `eq`..`ge`; an array for `in`; `[low, high]`
    /// (inclusive) for `between`; a string for `contains`, `starts_with` and `matches` (a
    /// `regex` crate pattern); absent for `is_null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Between,
    IsNull,
    Contains,
    StartsWith,
    Matches,
}

/// A group key: a column name, or a derived key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum GroupKey {
    /// The column's typed value.
    Column(String),
    /// A derived key.
    Derived(DerivedKey),
}

/// A derived group key: exactly one of `bucket`, `width`, `edges`, `transform`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DerivedKey {
    /// Column name (header).
    pub column: String,
    /// Date/timestamp bucket: the first instant of the period (UTC; weeks start on Monday).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<TimeBucket>,
    /// Numeric bucket of this width: the key is `floor(x / width) * width`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<serde_json::Number>,
    /// Numeric buckets between strictly increasing edges: the key is the greatest edge <= x;
    /// values below the first edge have a null key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edges: Option<Vec<serde_json::Number>>,
    /// String transform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<Transform>,
}

/// Calendar buckets of a date or timestamp column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeBucket {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// String transforms of a group key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// Unicode lower case.
    Lower,
    /// Leading and trailing Unicode white space removed.
    Trim,
}

/// One aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    /// The function.
    #[serde(rename = "fn")]
    pub func: AggFn,
    /// Its column (none for `count` of records and `count_if`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The second column of `corr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
    /// The predicate of `count_if`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Predicate>,
    /// `count_distinct` only: a HyperLogLog estimate instead of the exact count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approx: Option<bool>,
    /// `quantile` only: the quantile in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<f64>,
    /// `top` only: how many values (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<u32>,
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AggFn {
    /// Records (no column), or non-null values of the column.
    Count,
    /// Records for which `filter` holds.
    CountIf,
    /// Exact sum of a numeric column.
    Sum,
    /// Exact average of a numeric column, rounded half-even to 12 fraction digits.
    Avg,
    Min,
    Max,
    /// Sample standard deviation of a numeric column.
    Stddev,
    /// Distinct non-null values (exact unless `approx`).
    CountDistinct,
    /// Approximate quantile `q` of a numeric column (relative error 1%).
    Quantile,
    /// The `k` most frequent non-null values with their exact counts.
    Top,
    /// Pearson correlation of `column` and `other`.
    Corr,
    /// Null (or unparsed) values of the column.
    NullCount,
}

/// A predicate over a result row (keys and aggregates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Having {
    /// All hold.
    And {
        /// The operands.
        and: Vec<Having>,
    },
    /// At least one holds.
    Or {
        /// The operands.
        or: Vec<Having>,
    },
    /// The operand does not hold.
    Not {
        /// The operand.
        not: Box<Having>,
    },
    /// A comparison of a key or an aggregate with a literal.
    Compare(HavingComparison),
}

/// `target op value` over a result row: `op` is one of `eq ne lt le gt ge is_null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HavingComparison {
    /// A group key by its result column name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// An aggregate by its index in `aggregates`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<usize>,
    /// The operator.
    pub op: Op,
    /// The literal (absent for `is_null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

/// One sort term: a key by result column name, or an aggregate by index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderBy {
    /// A group key by its result column name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// An aggregate by its index in `aggregates`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<usize>,
    /// Descending (nulls still last).
    #[serde(default)]
    pub desc: bool,
}
