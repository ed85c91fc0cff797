//! The ledger's domain: what the pipeline records about a job's planning, its chunks and its
//! `unique` pass, whatever stores it (`store::jobs` on DynamoDB, `memory` in tests). The
//! ports over it are in [`crate::ports`].

use serde::{Deserialize, Serialize};

/// One chunk's completion record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRecord {
    pub index: u32,
    pub rows: u64,
    pub rejected_rows: u64,
    pub bytes: u64,
    /// Texts scored by `derive` sentiment steps (0 without them).
    #[serde(default)]
    pub scored_rows: u64,
    /// Rows of `model` steps written `not_graded` (the job's cost limit was reached).
    #[serde(default)]
    pub not_graded_rows: u64,
    /// Key of the chunk's full result (profile state, parity facts) in S3.
    pub result_key: String,
    pub completed_at: String,
}

/// Outcome of recording a chunk's completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkCommit {
    /// This call recorded it and added the counters.
    Committed,
    /// The chunk was recorded before (a redelivered message): nothing changed.
    AlreadyDone,
    /// The job is no longer accepting chunks (failed, cancelled, or already finalized).
    JobNotActive,
}

/// Facts the planner learned, written with the move to `queued`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub dialect: serde_json::Value,
    pub columns: Vec<String>,
    pub header_len: u64,
    pub chunk_size: u64,
    pub chunk_count: u32,
    /// The source object's ETag when it was planned: every chunk's read is pinned to it.
    pub source_etag: Option<String>,
}

/// Progress summed over a job's shard counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub chunks_done: u32,
    pub rows: u64,
    pub rejected_rows: u64,
    pub bytes_done: u64,
    pub scored_rows: u64,
    pub not_graded_rows: u64,
    /// The latest `updated_at` of the counters (RFC 3339, sorts lexically); empty if none.
    pub updated_at: String,
}

/// Final totals, written with the move to `completed`.
#[derive(Debug, Clone)]
pub struct Totals {
    pub rows: u64,
    pub rejected_rows: u64,
    pub bytes: u64,
    /// Texts scored by `derive` sentiment steps.
    pub scored_rows: u64,
    /// Rows of `model` steps written `not_graded`.
    pub not_graded_rows: u64,
}

/// What the planner decided for a job's `model` sentiment steps (written on the job item).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPlan {
    /// The job's cost limit: the sum of its model steps' `max_cost_usd`, micro-dollars.
    pub max_micro_usd: u64,
    /// The estimate before the run, micro-dollars.
    pub estimate_micro_usd: u64,
    /// Per model step (in output order), the share of rows graded (1 without `sample`).
    pub sample_rates: Vec<f64>,
}

/// What a batch of model calls used, added to the job's counters (DynamoDB `ADD`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_micro_usd: u64,
    /// Time waited for model capacity, milliseconds.
    pub wait_ms: u64,
}

/// The fanned-out steps of the `unique` second pass, each tracked on the job item by a map of
/// the items still waiting (`Job::unique_search_waiting`, `Job::unique_waiting`) and a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueStep {
    /// The search groups (rule x run of hash partitions).
    Search,
    /// The re-runs of the chunks that own repeats.
    Rerun,
    /// Not a `unique` step: the groups of rejected parts rebased into `rejected.csv`'s parts by
    /// chunk workers (a large rejected output; `docs/pipeline.md` § *Stitching rejected.csv*).
    Rebase,
}
