//! The pipeline: planning an upload into chunk tasks, running one chunk, finalizing a job.
//! Orchestration over the stores and the engine; the planner and chunk functions (and the local
//! runtime, through them) call it. Every step is idempotent, because SQS delivers at least once:
//!
//! - planning moves `awaiting_upload -> queued` with a conditional write; a second event for the
//!   same object finds the job past `awaiting_upload` and does nothing (a job left in `queued` by
//!   a crash is re-enqueued: chunk tasks are idempotent);
//! - a chunk's completion is one DynamoDB transaction on the chunk's shard partition (chunk item
//!   created only if absent + the shard's counter added, unless the job's shards are closed), so
//!   a redelivered task changes nothing and the job item is no hot key;
//! - a worker that completes its shard (`index % 16`) sums all 16 shard counters; when they
//!   reach `chunk_count` it tries the conditional move to `finalizing` — the last committer
//!   always sees them complete, and exactly one caller wins. The winner finalizes: it
//!   validates the quote-parity guesses of all chunks, re-runs the rare mispredicted chunk
//!   with the known start state, merges the profiles in chunk order, stitches the outputs and
//!   moves the job to `completed` with exact totals.
//!
//! One module per stage: [`plan`], [`chunk`], [`unique`], [`finalize`], [`dead_letters`],
//! [`exports`], [`queries`]; [`rules`] compiles a job's workflow. Each stage is an `impl Pipeline` block.

mod chunk;
mod dead_letters;
pub mod exports;
mod finalize;
mod grade;
mod plan;
pub mod queries;
mod ranged;
mod rejected;
mod rules;
mod steps;
#[cfg(test)]
mod tests;
mod unique;

use std::sync::Arc;

use tessera_engine::dialect::Dialect;
use tessera_engine::error::EngineError;
use tessera_engine::rules::CompiledRules;
use tessera_engine::split;

use crate::aws::Clients;
use crate::config::Config;
use crate::job::{Job, JobError};
use crate::ports::{ChunkLedger, Ledger, Tasks};
use crate::store::exports::ExportStore;
use crate::store::jobs::JobStore;
use crate::store::objects::{ObjectStore, SourceChanged};
use crate::store::queue::TaskQueue;
use crate::store::workflows::WorkflowStore;
use crate::store::StoreError;
use crate::task::{ChunkTaskMessage, QueueMessage};

pub use exports::fail_if_stalled;

/// A message could not be handled now and should be retried (SQS redelivers it).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    /// The source object is not the one the job was planned for (replaced with one of another
    /// size, or deleted). SQS retries cannot fix that: the chunk fails the job.
    #[error("source changed: {0}")]
    SourceChanged(String),
    /// The job's workflow cannot run on this file (a reference file is missing, the document does
    /// not fit the header, no mask key...): the job fails with this code and message.
    #[error("{code}: {message}")]
    Rules { code: &'static str, message: String },
    /// Nothing can be decided yet (a dead letter of a job whose finalizer may be alive): the
    /// message goes back to its queue, to be handled again later.
    #[error("not yet: {0}")]
    Later(String),
    /// The model has no capacity for longer than a chunk waits: the chunk task goes back on
    /// the queue, delivered after this delay.
    #[error("model capacity: retry in {0:?}")]
    Throttled(std::time::Duration),
}

impl From<SourceChanged> for PipelineError {
    fn from(e: SourceChanged) -> Self {
        match e {
            SourceChanged::Store(e) => PipelineError::Store(e),
            SourceChanged::Changed(detail) => PipelineError::SourceChanged(detail),
        }
    }
}

/// The pipeline's dependencies.
#[derive(Clone)]
pub struct Pipeline {
    pub config: Arc<Config>,
    /// The job and chunk ledgers (DynamoDB in the functions; in memory in unit tests).
    pub jobs: Arc<dyn Ledger>,
    pub objects: ObjectStore,
    pub queue: TaskQueue,
    pub workflows: WorkflowStore,
    /// Export jobs (items under their job), whose ranges share the chunk task queue.
    pub exports: ExportStore,
    /// Query records (items under their job), whose ranges share the chunk task queue.
    pub queries: queries::QueryStore,
    /// The agent's queue (continuations of conversation turns waiting for a query job), when
    /// the agent is deployed.
    pub agent_queue: Option<TaskQueue>,
    /// The `model` sentiment engine's client (the configured model and the shared rate
    /// limiter); `None` without a model (`TESSERA_MODEL_ID`): such steps fail the job.
    pub grader: Option<crate::grading::Grader>,
    rules_cache: rules::RulesCache,
}

impl Pipeline {
    pub fn new(config: Arc<Config>, clients: &Clients) -> Self {
        Pipeline {
            jobs: Arc::new(JobStore::new(clients.dynamodb.clone(), &config.jobs_table)),
            objects: ObjectStore::new(clients.s3.clone(), &config.bucket),
            queue: TaskQueue::new(clients.sqs.clone(), &config.chunk_queue_url),
            workflows: WorkflowStore::new(clients.dynamodb.clone(), &config.jobs_table),
            exports: ExportStore::new(clients.dynamodb.clone(), &config.jobs_table),
            queries: queries::QueryStore::new(clients.dynamodb.clone(), &config.jobs_table),
            agent_queue: config
                .agent_queue_url
                .as_ref()
                .map(|url| TaskQueue::new(clients.sqs.clone(), url)),
            rules_cache: rules::RulesCache::default(),
            grader: None,
            config,
        }
        .with_model(None, clients)
    }

    /// With the model the `model` sentiment engine calls: `model`, else the configured one
    /// (Bedrock, or `TESSERA_BEDROCK_ENDPOINT`'s Converse server), through the shared rate
    /// buckets. Without `TESSERA_MODEL_ID`, none.
    pub fn with_model(
        mut self,
        model: Option<Arc<dyn crate::model::ChatModel>>,
        clients: &Clients,
    ) -> Self {
        use crate::model::bedrock::{retry_policy, BedrockModel};
        let Some(model_id) = self.config.model_id.clone() else {
            self.grader = None;
            return self;
        };
        let model = model.unwrap_or_else(|| {
            Arc::new(match &self.config.bedrock_endpoint {
                Some(endpoint) => BedrockModel::local(endpoint, retry_policy()),
                None => BedrockModel::from_config(&clients.model_sdk, &self.config),
            })
        });
        let buckets = crate::store::rate::RateStore::new(
            clients.dynamodb.clone(),
            &self.config.jobs_table,
            self.config.model_limits.clone(),
        );
        self.grader = Some(crate::grading::Grader {
            model,
            model_id,
            admission: Some(Arc::new(crate::agent::limits::RateAdmission(Arc::new(
                buckets,
            )))),
        });
        self
    }

    pub(super) async fn fail(
        &self,
        job: &Job,
        code: &str,
        message: String,
    ) -> Result<(), PipelineError> {
        tracing::warn!(job_id = %job.id, code, %message, "job failed");
        self.jobs
            .mark_failed(&job.id, &JobError::new(code, message))
            .await?;
        Ok(())
    }
}

/// Deliveries of a chunk task before SQS moves it to the dead-letter queue (the chunk queue's
/// `maxReceiveCount` in template.yaml and the local stack).
pub const MAX_CHUNK_DELIVERIES: u32 = 3;
/// The dialect the job was planned with.
fn job_dialect(job: &Job) -> Result<Dialect, PipelineError> {
    job.dialect
        .ok_or_else(|| PipelineError::Malformed("job dialect: the job has no plan".into()))
}
/// Sniffs the dialect and header of `head` (the first bytes of an object of `size` bytes) on
/// tokio's blocking pool, not on the async runtime. Sniffing is CPU work that grows with the
/// header (up to [`tessera_engine::dialect::MAX_COLUMNS`] names in up to 8 MiB): run inline, one
/// owner's header bomb would hold a runtime thread, and with it every other message, poller and
/// request that thread serves (the local stack runs the planner and the API in one process; a
/// Lambda's runtime also drives its SDK calls). A panic in the sniffer is raised here again.
pub(crate) async fn sniff_off_runtime(
    head: Vec<u8>,
    size: u64,
    overrides: tessera_engine::dialect::DialectOverrides,
) -> Result<tessera_engine::dialect::Sniffed, EngineError> {
    match tokio::task::spawn_blocking(move || {
        tessera_engine::dialect::sniff_with_size(&head, size, &overrides)
    })
    .await
    {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// What a job's source reads are pinned to: the size and ETag the planner recorded.
pub(crate) fn planned_source(job: &Job) -> crate::store::objects::Planned<'_> {
    crate::store::objects::Planned {
        size: job.declared_size,
        etag: job.source_etag.as_deref(),
    }
}
/// The chunk tasks of a planned job, one per byte range (none for a header-only file).
pub fn chunk_tasks(job: &Job) -> Vec<ChunkTaskMessage> {
    split::plan(job.declared_size, job.header_len, job.chunk_size.max(1))
        .iter()
        .map(|t| ChunkTaskMessage {
            job_id: job.id.clone(),
            owner: job.owner.clone(),
            index: t.index,
            start: t.start,
            end: t.end,
            start_in_quotes: t.start_in_quotes,
        })
        .collect()
}

/// Re-enqueues the chunks of `job` that have no completion record (a retry: the failed chunks,
/// and any that were skipped because the job had failed). Returns how many were sent. Chunks
/// that completed keep their parts and counters; the finalizer recomputes the totals from every
/// chunk's result, so they come out exact.
pub async fn requeue_unfinished(
    jobs: &dyn ChunkLedger,
    queue: &dyn Tasks,
    job: &Job,
) -> Result<u32, StoreError> {
    let done: std::collections::HashSet<u32> = jobs
        .chunks(&job.id)
        .await?
        .iter()
        .map(|c| c.index)
        .collect();
    let tasks = chunk_tasks(job);
    let mut todo: Vec<QueueMessage> = tasks
        .iter()
        .filter(|t| !done.contains(&t.index))
        .cloned()
        .map(QueueMessage::Chunk)
        .collect();
    if todo.is_empty() {
        // Every chunk is done: the job failed in its finalization (`finalize_failed`). The last
        // chunk's task is sent again; its worker finds the chunk done and claims the
        // finalization, as after a planner's hand-over.
        todo.extend(tasks.last().cloned().map(QueueMessage::Chunk));
    }
    queue.send_messages(&todo).await?;
    tracing::info!(job_id = %job.id, requeued = todo.len(), done = done.len(), "job retried");
    Ok(todo.len() as u32)
}
/// The columns of a job's clean output: the rules' output columns, else the source header.
fn output_columns<'a>(job: &'a Job, rules: &'a Option<Arc<CompiledRules>>) -> &'a [String] {
    match rules {
        Some(r) => r.output_columns(),
        None => &job.columns,
    }
}
/// First line of every rejected output (the engine writes the rows below it).
pub const REJECTED_HEADER: &str = tessera_engine::chunk::REJECTED_HEADER;

/// The header line of the clean output: the column names as the engine writes clean rows
/// (`,` delimiter, quoted only where needed, LF).
pub fn clean_header(columns: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        tessera_engine::chunk::write_field(&mut out, c.as_bytes());
    }
    out.push(b'\n');
    out
}
