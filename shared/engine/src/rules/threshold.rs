//! Whether a job fails: after every chunk's violations are added up, the first `fail` rule
//! over its threshold, and the words that say so.
//!
//! Not here: counting violations (see `run`).

use std::collections::BTreeMap;

use super::doc::*;

impl RuleDocument {
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
