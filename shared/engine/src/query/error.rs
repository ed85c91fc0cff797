//! Query errors: the problems of an invalid document (each with a stable code, a JSON path
//! and what to do) and the failures of a run (`too_many_groups`, `overflow`, engine errors).
//!
//! Not here: the HTTP mapping (an invalid document is a 422 with the problem list; the API
//! layer owns that).

use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// One problem of a query document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable code (see docs/query.md): `invalid_json`, `invalid_document`, `unknown_field`,
    /// `unsupported_version`, `unknown_column`, `type_mismatch`, `invalid_value`,
    /// `missing_argument`, `unexpected_argument`, `unknown_key`, `aggregate_out_of_range`,
    /// `empty_query`.
    pub code: String,
    /// Where: a JSON path such as `$.filter.and[1].value`.
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(code: &str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            code: code.to_string(),
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}: {}", self.code, self.path, self.message)
    }
}

/// Why a query did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The document is not valid for this file (HTTP 422).
    #[error("the query is not valid: {}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
    /// More groups than the configured limit.
    #[error("too_many_groups: the query makes more than {limit} groups; group by fewer or coarser keys (a bucket), or filter first")]
    TooManyGroups {
        /// The limit in force.
        limit: usize,
    },
    /// More values in exact distinct sets than the configured limit.
    #[error("too_many_values: the exact count_distinct/top sets hold more than {limit} values; use `approx: true` for count_distinct, or filter or group more coarsely")]
    TooManyValues {
        /// The limit in force.
        limit: u64,
    },
    /// An exact sum left the 38-digit fixed-point range.
    #[error("overflow: {what} does not fit 38 decimal digits; filter or group the data so each sum is smaller")]
    Overflow {
        /// Which aggregate.
        what: String,
    },
    /// A partial state that cannot be merged (another query, another version, corrupt).
    #[error("bad_state: {0}")]
    BadState(String),
    /// Reading or parsing the file failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl QueryError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::Invalid(_) => "invalid_query",
            QueryError::TooManyGroups { .. } => "too_many_groups",
            QueryError::TooManyValues { .. } => "too_many_values",
            QueryError::Overflow { .. } => "overflow",
            QueryError::BadState(_) => "bad_state",
            QueryError::Engine(e) => e.code(),
        }
    }

    /// The problems of an invalid document (empty for other errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            QueryError::Invalid(p) => p,
            _ => &[],
        }
    }
}
