//! Ranged jobs: work over one object of a completed job, cut into byte ranges with the exact
//! split, one task per range on the chunk task queue, one completion per range, and the worker
//! completing the last range assembles the result. Export jobs (`export::job`) and query jobs
//! (`query`) are ranged jobs; their records share one lifecycle ([`RangedState`]) and one store
//! (`store::ranged`).
//!
//! Not here: the work of either kind (`pipeline::exports`, `pipeline::queries`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Lifecycle of a ranged job. `stitching` (the last range's worker assembles the result:
/// stitches parts, or merges partial states) is shown to callers as `running`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RangedState {
    Queued,
    Running,
    Stitching,
    Completed,
    Failed,
}

impl RangedState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RangedState::Queued => "queued",
            RangedState::Running => "running",
            RangedState::Stitching => "stitching",
            RangedState::Completed => "completed",
            RangedState::Failed => "failed",
        }
    }

    /// The name callers see: `queued`, `running` (stitching included), `completed`, `failed`.
    pub fn public(self) -> &'static str {
        match self {
            RangedState::Stitching => "running",
            s => s.as_str(),
        }
    }
}

/// A ranged job's record, as the store needs to see it.
pub trait RangedJob: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The sort-key prefix of its items (`EXPORT`, `QUERY`).
    const KIND: &'static str;
    fn job_id(&self) -> &str;
    fn id(&self) -> &str;
    fn state(&self) -> RangedState;
    fn updated_at(&self) -> &str;
    fn range_count(&self) -> u32;
    /// Ranges completed so far.
    fn ranges_done(&self) -> u32;
    /// Epoch seconds after which DynamoDB deletes the record (its job's TTL).
    fn expires_at(&self) -> i64;
    /// Every key its ranges may have written (removed when it fails or ends).
    fn part_keys(&self) -> Vec<String>;
    /// Which run of the record this is: a record replaced after it failed (a query asked
    /// again) starts a new run, whose range completions are kept apart from the old run's.
    fn run(&self) -> u32 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stitching_is_shown_as_running() {
        assert_eq!(RangedState::Stitching.public(), "running");
        assert_eq!(RangedState::Queued.public(), "queued");
        assert_eq!(RangedState::Failed.public(), "failed");
    }
}
