//! The ports: the narrow interfaces the pipeline's use cases need of the job ledger (job
//! states, the `unique` steps) and the chunk ledger (completion records and their counters).
//! `store::jobs::JobStore` implements them on DynamoDB; `memory::MemoryLedger` implements them
//! in memory with the same conditional semantics, for unit tests that choose the interleaving
//! of racing workers.
//!
//! Every method that moves a job is conditional: it answers `false` (or `None`) when its
//! condition did not hold, and changes nothing then.

use async_trait::async_trait;

use crate::job::{Job, JobError, ResultKeys};
use crate::ledger::{
    ChunkCommit, ChunkRecord, ModelPlan, ModelUsage, Plan, Progress, Totals, UniqueStep,
};
use crate::rate::{Admission, DayUsage, RateError, Reservation, Settled, TokenUsage};

/// A job's record and its state moves.
#[async_trait]
pub trait JobLedger: Send + Sync {
    /// The job (strongly consistent), `None` if unknown.
    async fn get(&self, id: &str) -> Result<Option<Job>, StoreError>;
    /// `awaiting_upload -> queued` with the planner's facts.
    async fn mark_planned(&self, id: &str, plan: &Plan) -> Result<bool, StoreError>;
    /// `queued -> processing`.
    async fn mark_processing(&self, id: &str) -> Result<bool, StoreError>;
    /// `processing -> finalizing`; exactly one caller wins.
    async fn mark_finalizing(&self, id: &str) -> Result<bool, StoreError>;
    /// Takes over a `finalizing` job whose `updated_at` is still `seen`; one caller wins.
    async fn reclaim_finalizing(&self, id: &str, seen: &str) -> Result<bool, StoreError>;
    /// Records the items of a `unique` step of a finalizing job; one caller wins.
    async fn begin_unique_step(
        &self,
        id: &str,
        step: UniqueStep,
        items: &[u32],
    ) -> Result<bool, StoreError>;
    /// Item `index` of a `unique` step reported: `Some(true)` for the last one, `Some(false)`
    /// while others wait, `None` if it was not waiting or the job is not finalizing.
    async fn unique_step_done(
        &self,
        id: &str,
        step: UniqueStep,
        index: u32,
    ) -> Result<Option<bool>, StoreError>;
    /// `finalizing` (or `queued`, no chunks) `-> completed` with exact totals.
    async fn mark_completed(
        &self,
        id: &str,
        totals: &Totals,
        results: &ResultKeys,
    ) -> Result<bool, StoreError>;
    /// Any non-final state `-> failed`; closes the chunk ledger to completions.
    async fn mark_failed(&self, id: &str, error: &JobError) -> Result<bool, StoreError>;
    /// Any non-final state `-> failed` because of chunk `index` (the job may be retried).
    async fn mark_chunk_failed(
        &self,
        id: &str,
        index: u32,
        error: &JobError,
    ) -> Result<bool, StoreError>;
    /// Any non-final state `-> cancelled`; closes the chunk ledger to completions.
    async fn mark_cancelled(&self, id: &str) -> Result<bool, StoreError>;
    /// `failed` (because of chunks) `-> processing`; reopens the chunk ledger.
    async fn mark_retrying(&self, id: &str) -> Result<bool, StoreError>;
    /// Records the planner's decisions for the job's `model` steps (cost limit, estimate,
    /// sample rates).
    async fn set_model_plan(&self, id: &str, plan: &ModelPlan) -> Result<(), StoreError>;
    /// Adds `usage` to the job's model counters atomically; returns the job's cost so far
    /// (micro-dollars, this usage included).
    async fn add_model_usage(&self, id: &str, usage: &ModelUsage) -> Result<u64, StoreError>;
}

/// A job's chunk completions and the counters they add to.
#[async_trait]
pub trait ChunkLedger: Send + Sync {
    /// Records a chunk's completion once; refused once the job stopped accepting chunks.
    async fn complete_chunk(
        &self,
        job_id: &str,
        chunk: &ChunkRecord,
        expires_at: i64,
    ) -> Result<ChunkCommit, StoreError>;
    /// Whether chunk `index`'s completion is recorded.
    async fn chunk_done(&self, job_id: &str, index: u32) -> Result<bool, StoreError>;
    /// Whether every chunk of `index`'s counter shard is recorded.
    async fn shard_complete(
        &self,
        job_id: &str,
        index: u32,
        chunk_count: u32,
    ) -> Result<bool, StoreError>;
    /// The counters summed over the job's shards.
    async fn progress(&self, job_id: &str) -> Result<Progress, StoreError>;
    /// Every completion record, in chunk order.
    async fn chunks(&self, job_id: &str) -> Result<Vec<ChunkRecord>, StoreError>;
}

/// Both ledgers, as the pipeline holds them.
pub trait Ledger: JobLedger + ChunkLedger {}

impl<T: JobLedger + ChunkLedger> Ledger for T {}

/// A failure of the service behind a port (an AWS service for the store adapters). The
/// text is for logs, never for callers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} failed: {detail}")]
    Service { op: &'static str, detail: String },
    /// The service refused for load (throttling, `SlowDown`, 503) past the SDK's own retries:
    /// nothing was done, and the same call may succeed in a few seconds.
    #[error("{op} throttled: {detail}")]
    Busy { op: &'static str, detail: String },
    #[error("stored item is malformed ({what}): {detail}")]
    Malformed { what: &'static str, detail: String },
}

/// The language model's shared rate limit and each owner's daily budget (`rate`):
/// `store::rate::RateStore` on DynamoDB, `memory::MemoryRateBuckets` in memory.
#[async_trait]
pub trait RateBuckets: Send + Sync {
    /// Takes one request and `estimate.total()` tokens (estimated input + `maxTokens`) from the
    /// model's global bucket and the owner's, both or neither, and holds the call's worst-case
    /// cost against the owner's day; `Wait` (nothing taken) when either bucket lacks them.
    async fn reserve(
        &self,
        model: &str,
        owner: &str,
        estimate: TokenUsage,
    ) -> Result<Admission, RateError>;
    /// Gives back the tokens a call did not use (capped at capacity) or charges its overrun, and
    /// counts its usage and cost on the reservation's day in place of the hold. Once per
    /// reservation: a repeated settle changes nothing.
    async fn settle(
        &self,
        reservation: &Reservation,
        used: TokenUsage,
    ) -> Result<Settled, RateError>;
}

/// An owner's model usage, per UTC day.
#[async_trait]
pub trait UsageReader: Send + Sync {
    /// The owner's usage on `day` (zeros if none).
    async fn day_usage(&self, owner: &str, day: time::Date) -> Result<DayUsage, StoreError>;
}
