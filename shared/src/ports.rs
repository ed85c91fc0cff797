//! The ports: the narrow interfaces the use cases need of the job ledger (job states, the
//! `unique` steps), the chunk ledger (completion records and their counters), the WebSocket
//! connections ([`Connections`], [`Pusher`]), objects ([`Objects`]) and the task queue
//! ([`Tasks`]). The DynamoDB, S3, SQS and API Gateway adapters implement them (`store::*`,
//! status's `Notifier`); `memory::*` implements them in memory with the same conditional
//! semantics, for unit tests that choose the interleaving of racing workers.
//!
//! Every method that moves a job is conditional: it answers `false` (or `None`) when its
//! condition did not hold, and changes nothing then.

/// Re-exported so that adapters in other crates implement the ports without a dependency of
/// their own on the macro crate.
pub use async_trait::async_trait;

use crate::job::{Job, JobError, ResultKeys, Timestamp};
use crate::ledger::{
    ChunkCommit, ChunkRecord, ModelPlan, ModelUsage, Plan, Progress, Totals, UniqueStep,
};
use crate::rate::{Admission, DayUsage, RateError, Reservation, Settled, TokenUsage};
use crate::task::QueueMessage;

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
    async fn reclaim_finalizing(&self, id: &str, seen: Timestamp) -> Result<bool, StoreError>;
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

/// What happened to one WebSocket message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// The connection no longer exists (410 GoneException): its items should be deleted.
    Gone,
}

/// The WebSocket connections subscribed to jobs, as the pushes need them
/// (`store::connections::ConnectionStore`; `memory::MemoryConnections`).
#[async_trait]
pub trait Connections: Send + Sync {
    /// The connection ids subscribed to `job_id`.
    async fn subscribers(&self, job_id: &str) -> Result<Vec<String>, StoreError>;
    /// Deletes a connection and its subscriptions, `also_job`'s even if the connection item
    /// has expired.
    async fn remove_connection(&self, conn: &str, also_job: Option<&str>)
        -> Result<(), StoreError>;
    /// Whether this caller may push `job_id`'s progress at `now_ms`: true at most once per
    /// `interval_ms`, across every instance.
    async fn claim_push(
        &self,
        job_id: &str,
        now_ms: i64,
        interval_ms: i64,
    ) -> Result<bool, StoreError>;
}

/// Sends one message to one WebSocket connection (status's `Notifier` on API Gateway's
/// `PostToConnection`; `memory::MemoryPusher`).
#[async_trait]
pub trait Pusher: Send + Sync {
    async fn send(&self, connection: &str, message: &str) -> Result<Delivery, StoreError>;
}

/// The objects (S3) as the use cases that read and write whole small objects need them
/// (`store::objects::ObjectStore`; `memory::MemoryObjects`). Streams, ranges and multipart
/// uploads stay on the adapter: their callers are adapters themselves.
#[async_trait]
pub trait Objects: Send + Sync {
    /// The whole (small) object; an error if there is none.
    async fn read_all(&self, key: &str) -> Result<Vec<u8>, StoreError>;
    /// Writes the object (replacing one with that key).
    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), StoreError>;
    /// Deletes `keys` (missing ones are fine).
    async fn delete_keys(&self, keys: &[String]) -> Result<(), StoreError>;
}

/// The chunk task queue (SQS) as the use cases need it (`store::queue::TaskQueue`;
/// `memory::MemoryTasks`).
#[async_trait]
pub trait Tasks: Send + Sync {
    /// Sends every message (in batches as the queue allows); all of them, or an error.
    async fn send_messages(&self, messages: &[QueueMessage]) -> Result<(), StoreError>;
}
