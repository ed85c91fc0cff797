//! The pipeline: planning an upload into chunk tasks, running one chunk, finalising a job.
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
//!   always sees them complete, and exactly one caller wins. The winner finalises: it
//!   validates the quote-parity guesses of all chunks, re-runs the rare mispredicted chunk
//!   with the known start state, merges the profiles in chunk order, stitches the outputs and
//!   moves the job to `completed` with exact totals.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use tessera_engine::chunk::{ChunkOptions, ChunkProcessor, ChunkResult, Feed};
use tessera_engine::dialect::{Dialect, DialectOverrides};
use tessera_engine::error::EngineError;
use tessera_engine::profile::{ProfileOptions, ProfileState};
use tessera_engine::rules::unique::Repeats;
use tessera_engine::rules::{CompiledRules, ResolvedRefs};
use tessera_engine::split::{self, ChunkTask};

use crate::aws::Clients;
use crate::config::Config;
use crate::job::{now_rfc3339, Job, JobError, JobState, ResultKeys};
use crate::keys;
use crate::notifications::{self, Notification};
use crate::store::exports::ExportStore;
use crate::store::jobs::{ChunkCommit, ChunkRecord, JobStore, Plan, Totals, UniqueStep};
use crate::store::objects::ObjectStore;
use crate::store::queue::TaskQueue;
use crate::store::workflows::WorkflowStore;
use crate::store::StoreError;
use crate::task::{ChunkTaskMessage, QueueMessage};

/// How long a job may sit in `finalizing` before another worker takes the finalisation over
/// (the chunk function's timeout is 300 s).
const STALE_FINALIZING: std::time::Duration = std::time::Duration::from_secs(600);

fn is_stale(updated_at: &str, age: std::time::Duration) -> bool {
    match time::OffsetDateTime::parse(updated_at, &time::format_description::well_known::Rfc3339) {
        Ok(t) => time::OffsetDateTime::now_utc() - t > age,
        Err(_) => false,
    }
}

/// Largest window the planner reads to find the end of the header record.
const MAX_SNIFF_BYTES: u64 = 8 * 1024 * 1024;
/// Output buffered by a chunk worker before it is sent to S3 as one multipart part.
const OUTPUT_PART_BYTES: usize = 8 * 1024 * 1024;

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
}

/// Compiled rules per (workflow, version, job): a job's chunks on a warm worker compile once.
/// Keyed by job too, because the header and the reference files are the job's.
type RulesCache = Arc<Mutex<HashMap<(String, u32, String), Arc<CompiledRules>>>>;
/// Entries kept before the cache starts over (each is one compiled document).
const RULES_CACHE_ENTRIES: usize = 64;

/// The pipeline's dependencies.
#[derive(Clone)]
pub struct Pipeline {
    pub config: Arc<Config>,
    pub jobs: JobStore,
    pub objects: ObjectStore,
    pub queue: TaskQueue,
    pub workflows: WorkflowStore,
    /// Export jobs (items under their job), whose ranges share the chunk task queue.
    pub exports: ExportStore,
    rules_cache: RulesCache,
}

fn job_error(code: &str, message: impl Into<String>) -> JobError {
    JobError {
        code: code.into(),
        message: message.into(),
    }
}

impl Pipeline {
    pub fn new(config: Arc<Config>, clients: &Clients) -> Self {
        Pipeline {
            jobs: JobStore::new(clients.dynamodb.clone(), &config.jobs_table),
            objects: ObjectStore::new(clients.s3.clone(), &config.bucket),
            queue: TaskQueue::new(clients.sqs.clone(), &config.chunk_queue_url),
            workflows: WorkflowStore::new(clients.dynamodb.clone(), &config.jobs_table),
            exports: ExportStore::new(clients.dynamodb.clone(), &config.jobs_table),
            rules_cache: RulesCache::default(),
            config,
        }
    }

    // ----------------------------------------------------------------------------- planning

    /// Handles one upload-events message (an S3 notification). Unknown objects and test events
    /// are acknowledged; only transient failures return an error (so SQS retries).
    pub async fn planner_message(&self, body: &str) -> Result<(), PipelineError> {
        let records = match notifications::parse(body) {
            Ok(Notification::Test) => {
                tracing::info!("s3:TestEvent acknowledged");
                return Ok(());
            }
            Ok(Notification::Records(r)) => r,
            Err(e) => {
                // Retrying cannot fix a body that is not an S3 event: acknowledge and log.
                tracing::warn!(error = %e, "ignoring a message that is not an S3 notification");
                return Ok(());
            }
        };
        for rec in records {
            if rec.bucket != self.config.bucket {
                tracing::warn!(bucket = %rec.bucket, "notification for another bucket ignored");
                continue;
            }
            let Some((owner, job_id)) = keys::parse_source_key(&rec.key) else {
                tracing::warn!(key = %rec.key, "notification for a key that is not an upload source ignored");
                continue;
            };
            let Some(job) = self.jobs.get(&job_id).await? else {
                tracing::warn!(job_id = %job_id, "upload for an unknown job ignored");
                continue;
            };
            if job.owner != owner || job.source_key != rec.key {
                tracing::warn!(job_id = %job_id, "upload key does not match the job; ignored");
                continue;
            }
            match job.state {
                JobState::AwaitingUpload => self.plan(&job).await?,
                JobState::Queued => self.enqueue(&job).await?,
                s => {
                    tracing::info!(job_id = %job.id, state = s.as_str(), "duplicate notification; job already planned")
                }
            }
        }
        Ok(())
    }

    async fn fail(&self, job: &Job, code: &str, message: String) -> Result<(), PipelineError> {
        tracing::warn!(job_id = %job.id, code, %message, "job failed");
        self.jobs
            .mark_failed(&job.id, &job_error(code, message))
            .await?;
        Ok(())
    }

    async fn plan(&self, job: &Job) -> Result<(), PipelineError> {
        let Some(size) = self.objects.size(&job.source_key).await? else {
            return self
                .fail(
                    job,
                    "upload_missing",
                    "The uploaded object is gone; create a new upload.".into(),
                )
                .await;
        };
        if size != job.declared_size {
            return self
                .fail(
                    job,
                    "size_mismatch",
                    format!(
                        "The uploaded file is {size} bytes but {} bytes were declared. Upload the whole file again with its exact size.",
                        job.declared_size
                    ),
                )
                .await;
        }
        if size == 0 {
            return self
                .fail(job, "empty_file", "The uploaded file is empty.".into())
                .await;
        }
        let mut window = self.config.sniff_bytes.min(size);
        let sniffed = loop {
            let head = self.objects.read_range(&job.source_key, 0, window).await?;
            match tessera_engine::dialect::sniff_with_size(
                &head,
                size,
                &DialectOverrides::default(),
            ) {
                Ok(s) => break s,
                Err(EngineError::HeaderTooLong { .. })
                    if window < size && window < MAX_SNIFF_BYTES =>
                {
                    window = (window * 4).min(size).min(MAX_SNIFF_BYTES);
                }
                Err(e) => return self.fail(job, e.code(), e.to_string()).await,
            }
        };
        let tasks = split::plan(size, sniffed.header_len, self.config.chunk_size);
        let plan = Plan {
            dialect: serde_json::to_value(sniffed.dialect)
                .map_err(|e| PipelineError::Malformed(e.to_string()))?,
            columns: sniffed.columns.clone(),
            header_len: sniffed.header_len,
            chunk_size: self.config.chunk_size,
            chunk_count: tasks.len() as u32,
        };
        if !self.jobs.mark_planned(&job.id, &plan).await? {
            tracing::info!(job_id = %job.id, "job was planned by another delivery");
            return Ok(());
        }
        tracing::info!(job_id = %job.id, size, chunks = tasks.len(), "planned");
        let Some(job) = self.jobs.get(&job.id).await? else {
            return Ok(());
        };
        // The workflow is loaded and compiled against the header before any chunk runs, so a
        // missing reference file or a document that does not fit the file fails the job at once.
        match self.job_rules(&job).await {
            Ok(_) => {}
            Err(PipelineError::Rules { code, message }) => {
                return self.fail(&job, code, message).await
            }
            Err(e) => return Err(e),
        }
        if tasks.is_empty() {
            // Header only: nothing to hand out; finalise right here.
            return self.finalize(&job).await;
        }
        self.enqueue(&job).await
    }

    /// Sends the chunk tasks of a planned job and moves it to `processing`.
    async fn enqueue(&self, job: &Job) -> Result<(), PipelineError> {
        let msgs = chunk_tasks(job);
        if msgs.is_empty() {
            return self.finalize(job).await;
        }
        self.queue.send_all(&msgs).await?;
        self.jobs.mark_processing(&job.id).await?;
        // Chunk workers accept tasks while the job is still `queued`; if they all finished before
        // the move to `processing`, none of them could finalise, so check here too.
        self.finalize_if_done(&job.id).await
    }

    /// Finalises the job if every chunk is done and this caller wins the move to `finalizing`.
    async fn finalize_if_done(&self, job_id: &str) -> Result<(), PipelineError> {
        let Some(job) = self.jobs.get(job_id).await? else {
            return Ok(());
        };
        let claimed = match job.state {
            // The job item does not count chunks (the shards do): sum the 16 counters.
            JobState::Processing => {
                let done = self.jobs.progress(&job.id).await?.chunks_done;
                done >= job.chunk_count && self.jobs.mark_finalizing(&job.id).await?
            }
            // A finaliser that died (timeout, crash) leaves the job in `finalizing`; its chunk
            // message comes back after the visibility timeout and takes over once the job has
            // not moved for longer than any finaliser can run. Finalising is idempotent.
            JobState::Finalizing if is_stale(&job.updated_at, STALE_FINALIZING) => {
                tracing::warn!(job_id = %job.id, since = %job.updated_at, "taking over a stalled finalisation");
                self.jobs
                    .reclaim_finalizing(&job.id, &job.updated_at)
                    .await?
            }
            _ => false,
        };
        if claimed {
            let job = self.jobs.get(&job.id).await?.unwrap_or(job);
            self.finalize(&job).await?;
        }
        Ok(())
    }

    // ----------------------------------------------------------------------------- chunks

    /// A chunk task message and its job, or `None` (logged) for a message no one can act on:
    /// it does not parse, its job is unknown, or the owners differ. Such a message is
    /// acknowledged, not retried.
    async fn task_and_job(
        &self,
        body: &str,
    ) -> Result<Option<(ChunkTaskMessage, Job)>, PipelineError> {
        let task: ChunkTaskMessage = match serde_json::from_str(body) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a chunk message that does not parse");
                return Ok(None);
            }
        };
        let Some(job) = self.jobs.get(&task.job_id).await? else {
            tracing::warn!(job_id = %task.job_id, "chunk task for an unknown job ignored");
            return Ok(None);
        };
        if job.owner != task.owner {
            tracing::warn!(job_id = %task.job_id, "chunk task owner does not match the job; ignored");
            return Ok(None);
        }
        Ok(Some((task, job)))
    }

    /// Handles one message of the chunk task queue: a chunk task, or an export job's range
    /// (`export_job`).
    pub async fn chunk_message(&self, body: &str) -> Result<(), PipelineError> {
        if let Ok(QueueMessage::ExportRange(m)) = crate::task::parse_queue_message(body) {
            return self.export_range_message(m).await;
        }
        let Some((task, job)) = self.task_and_job(body).await? else {
            return Ok(());
        };
        if let Some(group) = task.unique_search {
            return self.unique_search_message(group, job).await;
        }
        if task.unique_rerun {
            return self.unique_rerun(task, job).await;
        }
        if job.state == JobState::Finalizing {
            return self.finalize_if_done(&job.id).await;
        }
        if !matches!(job.state, JobState::Queued | JobState::Processing) {
            tracing::info!(job_id = %job.id, chunk = task.index, state = job.state.as_str(), "job not active; chunk skipped");
            return Ok(());
        }
        if self.jobs.chunk_done(&job.id, task.index).await? {
            // Redelivered after its completion was recorded: no work to redo, but the job may
            // still need finishing.
            tracing::info!(job_id = %job.id, chunk = task.index, "chunk already done (redelivery)");
            return self.finalize_if_done(&job.id).await;
        }
        let engine_task = ChunkTask {
            index: task.index,
            start: task.start,
            end: task.end,
            start_in_quotes: task.start_in_quotes,
        };
        let result = match self.run_chunk(&job, &engine_task).await {
            Ok(r) => r,
            // Failures that redelivery cannot fix fail the job at once, naming the chunk, so the
            // owner sees why and may retry it (`POST /v1/jobs/{id}/retry`) once the cause is gone.
            Err(PipelineError::Engine(e)) => {
                self.fail_chunk(&job, task.index, e.code(), e.to_string())
                    .await?;
                return Ok(());
            }
            Err(PipelineError::SourceChanged(detail)) => {
                let message = format!(
                    "Chunk {} could not read the uploaded file as planned: {detail}. The file was \
                     replaced or removed after its upload; put the original back and retry the \
                     job, or upload it again as a new job.",
                    task.index
                );
                self.fail_chunk(&job, task.index, "source_changed", message)
                    .await?;
                return Ok(());
            }
            Err(PipelineError::Rules { code, message }) => {
                self.fail(&job, code, message).await?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let record = ChunkRecord {
            index: task.index,
            rows: result.rows,
            rejected_rows: result.rejected_rows,
            bytes: task.end - task.start,
            result_key: keys::part_key(&job.owner, &job.id, "result", task.index),
            completed_at: now_rfc3339(),
        };
        match self
            .jobs
            .complete_chunk(&job.id, &record, job.expires_at)
            .await?
        {
            ChunkCommit::Committed => {
                tracing::info!(job_id = %job.id, chunk = task.index, rows = result.rows, "chunk done");
                // Only the worker that completes its shard looks at all 16 (≤ 16 per job).
                if !self
                    .jobs
                    .shard_complete(&job.id, task.index, job.chunk_count)
                    .await?
                {
                    return Ok(());
                }
            }
            ChunkCommit::AlreadyDone => {
                // A redelivery whose first delivery committed and then failed before finishing
                // the job: finishing is still this message's business.
                tracing::info!(job_id = %job.id, chunk = task.index, "chunk was already done (redelivery)");
                return self.finalize_if_done(&job.id).await;
            }
            ChunkCommit::JobNotActive => {
                // Cancelled while this chunk ran: the cancel deleted the parts that existed then;
                // this chunk's were written after, so it removes its own.
                let state = self.jobs.get(&job.id).await?.map(|j| j.state);
                if state == Some(JobState::Cancelled) {
                    let keys = keys::chunk_part_keys(&job.owner, &job.id, task.index);
                    if let Err(e) = self.objects.delete_keys(&keys).await {
                        tracing::warn!(job_id = %job.id, chunk = task.index, error = %e, "could not delete the parts of a cancelled job's chunk; the bucket's expiry rule will");
                    }
                }
                return Ok(());
            }
        }
        self.finalize_if_done(&job.id).await
    }

    /// Where the `unique` second pass of a finalising job stands, moving it on: starts the
    /// search (one task per group), or, once every group reported, gathers the repeats and
    /// starts the re-runs of the chunks that own them; `Done` once those reported (or when there
    /// is nothing to re-run). A finaliser taking over a stalled job re-sends what is waiting.
    async fn unique_stage(
        &self,
        job: &Job,
        tasks: &[ChunkTask],
        summaries: &[tessera_engine::split::ChunkSummary],
        unique: &[(String, usize)],
    ) -> Result<UniqueStage, PipelineError> {
        if let Some(waiting) = &job.unique_waiting {
            if waiting.is_empty() {
                return Ok(UniqueStage::Done {
                    reruns: job.unique_reruns,
                });
            }
            let again = crate::job::waiting_items(waiting);
            tracing::warn!(job_id = %job.id, chunks = again.len(), "re-sending the unique re-runs that have not reported");
            self.send_unique_reruns(job, tasks, summaries, &again)
                .await?;
            return Ok(UniqueStage::Waiting);
        }
        match &job.unique_search_waiting {
            None => {
                let groups = self.unique_groups(job, tasks, unique).await?;
                if groups.is_empty() {
                    // No non-empty value anywhere: nothing can repeat.
                    return Ok(UniqueStage::Done { reruns: 0 });
                }
                let items: Vec<u32> = (0..groups.len() as u32).collect();
                if self
                    .jobs
                    .begin_unique_step(&job.id, UniqueStep::Search, &items)
                    .await?
                {
                    tracing::info!(job_id = %job.id, groups = items.len(), "searching for unique repeats");
                    self.send_unique_searches(job, &items).await?;
                }
                Ok(UniqueStage::Waiting)
            }
            Some(waiting) if !waiting.is_empty() => {
                let again = crate::job::waiting_items(waiting);
                tracing::warn!(job_id = %job.id, groups = again.len(), "re-sending the unique searches that have not reported");
                self.send_unique_searches(job, &again).await?;
                Ok(UniqueStage::Waiting)
            }
            Some(_) => {
                // Every group reported: gather the repeats they found.
                let reads: Vec<_> = (0..job.unique_searches)
                    .map(|g| {
                        let key = keys::part_key(&job.owner, &job.id, "unique-found", g);
                        async move { self.objects.read_all(&key).await }
                    })
                    .collect();
                let found: Vec<Vec<u8>> = futures::stream::iter(reads)
                    .buffered(UNIQUE_READ_CONCURRENCY)
                    .try_collect()
                    .await?;
                let mut duplicates: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
                for (g, bytes) in found.iter().enumerate() {
                    let f: UniqueFound = serde_json::from_slice(bytes).map_err(|e| {
                        PipelineError::Malformed(format!("unique search group {g}: {e}"))
                    })?;
                    if !f.found.is_empty() {
                        duplicates.entry(f.rule).or_default().extend(f.found);
                    }
                }
                for v in duplicates.values_mut() {
                    v.sort_unstable();
                }
                let starts: Vec<u64> = tasks.iter().map(|t| t.start).collect();
                let (chunks, known) =
                    tessera_engine::rules::unique::rerun_plan(&duplicates, &starts);
                if chunks.is_empty() {
                    return Ok(UniqueStage::Done { reruns: 0 });
                }
                tracing::info!(job_id = %job.id, repeats = duplicates.values().map(Vec::len).sum::<usize>(), chunks = chunks.len(), "re-running the chunks that own unique repeats");
                // Each re-run reads only the repeats in its own range.
                let writes: Vec<_> = chunks
                    .iter()
                    .map(|&i| {
                        let t = tasks[i as usize];
                        let mine: Repeats = known
                            .iter()
                            .map(|(rule, offs)| {
                                let set = offs
                                    .iter()
                                    .copied()
                                    .filter(|&o| o >= t.start && o < t.end)
                                    .collect();
                                (rule.clone(), set)
                            })
                            .collect();
                        let body = serde_json::to_vec(&mine).unwrap_or_default();
                        let key = keys::part_key(&job.owner, &job.id, "unique-repeats", i);
                        async move { self.objects.put(&key, body, "application/json").await }
                    })
                    .collect();
                futures::stream::iter(writes)
                    .buffer_unordered(UNIQUE_READ_CONCURRENCY)
                    .try_collect::<Vec<_>>()
                    .await?;
                if self
                    .jobs
                    .begin_unique_step(&job.id, UniqueStep::Rerun, &chunks)
                    .await?
                {
                    self.send_unique_reruns(job, tasks, summaries, &chunks)
                        .await?;
                }
                Ok(UniqueStage::Waiting)
            }
        }
    }

    /// Sends the `unique` search tasks of `groups`.
    async fn send_unique_searches(&self, job: &Job, groups: &[u32]) -> Result<(), PipelineError> {
        let msgs: Vec<ChunkTaskMessage> = groups
            .iter()
            .map(|&g| ChunkTaskMessage {
                job_id: job.id.clone(),
                owner: job.owner.clone(),
                index: g,
                start: 0,
                end: 0,
                start_in_quotes: None,
                unique_rerun: false,
                unique_search: Some(g),
            })
            .collect();
        self.queue.send_all(&msgs).await?;
        Ok(())
    }

    /// One search group of the `unique` second pass: finds its repeats, writes them to its
    /// `unique-found` part and reports back; the last group to report carries the job on.
    async fn unique_search_message(&self, group: u32, job: Job) -> Result<(), PipelineError> {
        if job.state != JobState::Finalizing {
            tracing::info!(job_id = %job.id, group, state = job.state.as_str(), "job not finalising; unique search skipped");
            return Ok(());
        }
        if !crate::job::is_waiting(job.unique_search_waiting.as_ref(), group) {
            tracing::info!(job_id = %job.id, group, "unique search already reported (redelivery)");
            return self.finalize_if_done(&job.id).await;
        }
        let rules = self.job_rules(&job).await?;
        let unique = rules.as_ref().map(|r| r.unique_rules()).unwrap_or_default();
        let tasks = split::plan(job.declared_size, job.header_len, job.chunk_size.max(1));
        // The headers are read once: they give the groups and the group's key ranges.
        let headers = self.unique_headers(&job, &tasks, unique.len()).await?;
        let g = *unique_groups_of(&job, &headers, unique.len())
            .get(group as usize)
            .ok_or_else(|| {
                PipelineError::Malformed(format!("unique search group {group} does not exist"))
            })?;
        let column = unique[g.rule as usize].1;
        let found = self
            .unique_search(&job, &tasks, &headers, column, g)
            .await?;
        tracing::info!(job_id = %job.id, group, repeats = found.len(), "unique search group done");
        let body = serde_json::to_vec(&UniqueFound {
            rule: unique[g.rule as usize].0.clone(),
            found,
        })
        .map_err(|e| PipelineError::Malformed(e.to_string()))?;
        self.objects
            .put(
                &keys::part_key(&job.owner, &job.id, "unique-found", group),
                body,
                "application/json",
            )
            .await?;
        if self
            .jobs
            .unique_step_done(&job.id, UniqueStep::Search, group)
            .await?
            == Some(true)
        {
            tracing::info!(job_id = %job.id, "last unique search group done; going on");
            if let Some(job) = self.jobs.get(&job.id).await? {
                return self.finalize(&job).await;
            }
        }
        Ok(())
    }

    /// Sends the `unique` re-run tasks of `chunks` (each with its known start state).
    async fn send_unique_reruns(
        &self,
        job: &Job,
        tasks: &[ChunkTask],
        summaries: &[tessera_engine::split::ChunkSummary],
        chunks: &[u32],
    ) -> Result<(), PipelineError> {
        let msgs: Vec<ChunkTaskMessage> = chunks
            .iter()
            .map(|&i| {
                let t = tasks[i as usize];
                ChunkTaskMessage {
                    job_id: job.id.clone(),
                    owner: job.owner.clone(),
                    index: i,
                    start: t.start,
                    end: t.end,
                    start_in_quotes: Some(summaries[i as usize].assumed_start_in_quotes),
                    unique_rerun: true,
                    unique_search: None,
                }
            })
            .collect();
        self.queue.send_all(&msgs).await?;
        Ok(())
    }

    /// A chunk's `unique` re-run: runs it again with the repeats in its range, reports back,
    /// and the last one to report finishes the job. Redelivered after reporting, it only helps
    /// a stalled finalisation along, like any chunk message of a finalising job.
    async fn unique_rerun(&self, task: ChunkTaskMessage, job: Job) -> Result<(), PipelineError> {
        if job.state != JobState::Finalizing {
            tracing::info!(job_id = %job.id, chunk = task.index, state = job.state.as_str(), "job not finalising; unique re-run skipped");
            return Ok(());
        }
        if !crate::job::is_waiting(job.unique_waiting.as_ref(), task.index) {
            tracing::info!(job_id = %job.id, chunk = task.index, "unique re-run already reported (redelivery)");
            return self.finalize_if_done(&job.id).await;
        }
        let bytes = self
            .objects
            .read_all(&keys::part_key(
                &job.owner,
                &job.id,
                "unique-repeats",
                task.index,
            ))
            .await?;
        let repeats: Repeats = serde_json::from_slice(&bytes).map_err(|e| {
            PipelineError::Malformed(format!("chunk {} unique repeats: {e}", task.index))
        })?;
        let engine_task = ChunkTask {
            index: task.index,
            start: task.start,
            end: task.end,
            start_in_quotes: task.start_in_quotes,
        };
        match self
            .run_chunk_with(&job, &engine_task, Some(Arc::new(repeats)))
            .await
        {
            Ok(_) => {}
            // It ran once already with the same bytes and rules; a failure now is the file
            // or the workflow changing under the job.
            Err(PipelineError::Engine(e)) => return self.fail(&job, e.code(), e.to_string()).await,
            Err(PipelineError::SourceChanged(detail)) => {
                let message = format!(
                    "Chunk {} could not read the uploaded file again for the unique check: \
                     {detail}. Upload the file again as a new job.",
                    task.index
                );
                return self.fail(&job, "source_changed", message).await;
            }
            Err(PipelineError::Rules { code, message }) => {
                return self.fail(&job, code, message).await
            }
            Err(e) => return Err(e),
        }
        match self
            .jobs
            .unique_step_done(&job.id, UniqueStep::Rerun, task.index)
            .await?
        {
            Some(true) => {
                tracing::info!(job_id = %job.id, chunk = task.index, "last unique re-run done; finishing the job");
                match self.jobs.get(&job.id).await? {
                    Some(job) => self.finalize(&job).await,
                    None => Ok(()),
                }
            }
            Some(false) => {
                tracing::info!(job_id = %job.id, chunk = task.index, "unique re-run done");
                Ok(())
            }
            None => Ok(()),
        }
    }

    async fn fail_chunk(
        &self,
        job: &Job,
        index: u32,
        code: &str,
        message: String,
    ) -> Result<(), PipelineError> {
        tracing::warn!(job_id = %job.id, chunk = index, code, %message, "chunk failed the job");
        self.jobs
            .mark_chunk_failed(&job.id, index, &job_error(code, message))
            .await?;
        Ok(())
    }

    /// A chunk task that reached the dead-letter queue: SQS delivered it `maxReceiveCount`
    /// times and no attempt finished (the worker timed out, crashed, or kept meeting a service
    /// error). Without this the job would wait forever. An active job whose chunk has no
    /// completion fails `chunk_attempts_exhausted`, naming the chunk, and can be retried
    /// (`POST /v1/jobs/{id}/retry` re-runs only the chunks without a completion). A job stuck in
    /// `finalizing` for longer than a finaliser can live fails `finalize_failed`. Anything else
    /// (a finished job, a chunk that did complete, a live finaliser) is left as it is.
    /// Export ranges go to [`Pipeline::dead_export_range`].
    pub async fn dead_chunk_message(&self, body: &str) -> Result<(), PipelineError> {
        if let Ok(QueueMessage::ExportRange(m)) = crate::task::parse_queue_message(body) {
            return self.dead_export_range(m).await;
        }
        let Some((task, job)) = self.task_and_job(body).await? else {
            return Ok(());
        };
        match job.state {
            JobState::Finalizing
                if task.unique_search.is_some_and(|g| {
                    crate::job::is_waiting(job.unique_search_waiting.as_ref(), g)
                }) =>
            {
                tracing::error!(job_id = %job.id, group = task.index, "unique search exhausted its deliveries; failing the job");
                self.fail(
                    &job,
                    "finalize_failed",
                    format!(
                        "The search for repeated values (unique rules), part {}, was tried {} times and never finished. Upload the file again; if it fails again, report the job id.",
                        task.index, MAX_CHUNK_DELIVERIES
                    ),
                )
                .await
            }
            JobState::Finalizing
                if task.unique_rerun
                    && crate::job::is_waiting(job.unique_waiting.as_ref(), task.index) =>
            {
                tracing::error!(job_id = %job.id, chunk = task.index, "unique re-run exhausted its deliveries; failing the job");
                self.fail(
                    &job,
                    "finalize_failed",
                    format!(
                        "Chunk {} could not be checked again for repeated values (unique rules): it was tried {} times and never finished. Upload the file again; if it fails again, report the job id.",
                        task.index, MAX_CHUNK_DELIVERIES
                    ),
                )
                .await
            }
            JobState::Queued | JobState::Processing => {
                if self.jobs.chunk_done(&job.id, task.index).await? {
                    tracing::info!(job_id = %job.id, chunk = task.index, "dead-lettered chunk had completed; nothing to do");
                    return Ok(());
                }
                tracing::error!(job_id = %job.id, chunk = task.index, "chunk task exhausted its deliveries; failing the job");
                self.fail_chunk(
                    &job,
                    task.index,
                    "chunk_attempts_exhausted",
                    format!(
                        "Chunk {} (bytes {}-{}) was tried {} times and never finished: the worker ran out of time or kept failing. Retry the job (POST /v1/jobs/{}/retry) to run the unfinished chunks again; if it fails again, report the job id.",
                        task.index, task.start, task.end, MAX_CHUNK_DELIVERIES, job.id
                    ),
                )
                .await
            }
            JobState::Finalizing if is_stale(&job.updated_at, STALE_FINALIZING) => {
                tracing::error!(job_id = %job.id, "finalisation never finished; failing the job");
                self.fail(
                    &job,
                    "finalize_failed",
                    "Tessera could not assemble the results of this job: every attempt stopped before finishing. Upload the file again; if it fails again, report the job id.".into(),
                )
                .await
            }
            _ => {
                tracing::info!(job_id = %job.id, chunk = task.index, state = job.state.as_str(), "dead-lettered chunk task for a job that needs nothing");
                Ok(())
            }
        }
    }

    /// Streams one chunk's range from S3 through the engine and writes its parts and result.
    async fn run_chunk(&self, job: &Job, task: &ChunkTask) -> Result<ChunkResult, PipelineError> {
        self.run_chunk_with(job, task, None).await
    }

    /// [`run_chunk`](Self::run_chunk), or with `repeats` (the finaliser's re-run after the
    /// `unique` second pass): those records violate their `unique` rule, and no keys are written.
    async fn run_chunk_with(
        &self,
        job: &Job,
        task: &ChunkTask,
        repeats: Option<Arc<Repeats>>,
    ) -> Result<ChunkResult, PipelineError> {
        let dialect = job_dialect(job)?;
        let rules = self.job_rules(job).await?;
        let options = ChunkOptions {
            rules: rules.clone(),
            unique_repeats: repeats,
            ..Default::default()
        };
        let mut proc = ChunkProcessor::new(task, &dialect, &job.columns, &options);
        let read_from = tessera_engine::chunk::read_start(task);
        let mut clean = PartSink::new(
            self.objects.clone(),
            keys::part_key(&job.owner, &job.id, "clean", task.index),
            "text/csv",
        );
        let mut rejected = PartSink::new(
            self.objects.clone(),
            keys::part_key(&job.owner, &job.id, "rejected", task.index),
            "text/csv",
        );
        if task.index == 0 {
            // Chunk 0's clean part begins with the header, so stitching is a plain concatenation.
            clean
                .buf
                .extend_from_slice(&clean_header(output_columns(job, &rules)));
        }
        let mut body = open_planned(
            &self.objects,
            &job.source_key,
            read_from,
            job.declared_size,
            ("object", "job"),
        )
        .await?;
        loop {
            let Some(bytes) = next_piece(&mut body).await? else {
                break;
            };
            let state = proc.feed(&bytes, &mut clean.buf, &mut rejected.buf)?;
            clean.flush_if_full().await?;
            rejected.flush_if_full().await?;
            if state == Feed::Done {
                break;
            }
        }
        drop(body);
        let mut result = proc.finish(&mut clean.buf, &mut rejected.buf)?;
        clean.close().await?;
        rejected.close().await?;
        let unique_keys = std::mem::take(&mut result.unique_keys);
        if !unique_keys.is_empty() && options.unique_repeats.is_none() {
            // Keys for the finaliser's exact `unique` pass, before the result that marks the
            // chunk's outputs complete.
            let parts = crate::unique::partitions_for(job.declared_size);
            self.objects
                .put(
                    &keys::part_key(&job.owner, &job.id, "unique", task.index),
                    crate::unique::encode_chunk_keys(&unique_keys, parts),
                    "application/octet-stream",
                )
                .await?;
        }
        let encoded =
            serde_json::to_vec(&result).map_err(|e| PipelineError::Malformed(e.to_string()))?;
        self.objects
            .put(
                &keys::part_key(&job.owner, &job.id, "result", task.index),
                encoded,
                "application/json",
            )
            .await?;
        Ok(result)
    }

    // ----------------------------------------------------------------------------- finalising

    /// Validates, merges and stitches a job whose chunks are all done, then completes it.
    async fn finalize(&self, job: &Job) -> Result<(), PipelineError> {
        match self.try_finalize(job).await {
            Ok(()) => Ok(()),
            Err(PipelineError::Engine(e)) => self.fail(job, e.code(), e.to_string()).await,
            Err(PipelineError::Rules { code, message }) => self.fail(job, code, message).await,
            Err(e) => {
                tracing::error!(job_id = %job.id, error = %e, "finalisation failed");
                self.fail(
                    job,
                    "finalize_failed",
                    "Tessera could not assemble the results of this job. Upload the file again; if it fails again, report the job id.".into(),
                )
                .await
            }
        }
    }

    async fn try_finalize(&self, job: &Job) -> Result<(), PipelineError> {
        let rules = self.job_rules(job).await?;
        let tasks = split::plan(job.declared_size, job.header_len, job.chunk_size.max(1));
        // Load the parity facts of every chunk (small), validate the guesses, re-run the
        // mispredicted chunks with their known start state.
        // The same pass merges the results: one read of each result when nothing is re-run
        // (the usual case); a re-run below discards this merge and reads them again. While a
        // `unique` step is still to come (this call will most likely start or wait for one),
        // nothing is merged: the call that finds the steps done merges.
        let unique_pending = rules.as_ref().is_some_and(|r| !r.unique_rules().is_empty())
            && !job.unique_waiting.as_ref().is_some_and(|w| w.is_empty());
        let mut summaries = Vec::with_capacity(tasks.len());
        let mut merged = (!unique_pending).then(|| Merged::new(job));
        let mut results = self.results_in_order(job, &tasks);
        while let Some(r) = results.try_next().await? {
            summaries.push(r.summary());
            if let Some(m) = merged.as_mut() {
                m.add(&r);
            }
        }
        drop(results);
        let reruns = split::validate(&summaries);
        for (index, in_quotes) in &reruns {
            let mut t = tasks[*index as usize];
            t.start_in_quotes = Some(*in_quotes);
            tracing::info!(job_id = %job.id, chunk = index, in_quotes, "re-running a chunk whose quote state was mispredicted");
            let r = self.run_chunk(job, &t).await?;
            summaries[*index as usize] = r.summary();
        }
        split::check_complete(&summaries)?;

        // `unique` rules: the exact second pass over the chunks' keys, then a re-run of the
        // chunks that own repeats, so those records are rejected or flagged like any violation
        // and every count below (rows, rejected rows, violations) includes them. Both steps fan
        // out through the chunk queue; the last item of a step to report back calls this again,
        // which then finds the step done and goes on.
        let mut unique_reruns = 0;
        if let Some(rules) = &rules {
            let unique = rules.unique_rules();
            if !unique.is_empty() {
                match self.unique_stage(job, &tasks, &summaries, &unique).await? {
                    UniqueStage::Waiting => return Ok(()),
                    UniqueStage::Done { reruns } => unique_reruns = reruns,
                }
            }
        }

        let merged = match merged {
            Some(m) if reruns.is_empty() => m,
            _ => {
                // Merge (again), in chunk order.
                let mut m = Merged::new(job);
                let mut results = self.results_in_order(job, &tasks);
                while let Some(r) = results.try_next().await? {
                    m.add(&r);
                }
                m
            }
        };
        let Merged {
            mut profile,
            totals,
            mut violations,
            rule_rejected_rows,
            line_facts,
        } = merged;
        if let Some(rules) = &rules {
            for id in rules.rule_ids() {
                violations.entry(id).or_default();
            }
            if let Some(over) =
                rules.threshold_exceeded(totals.rows + rule_rejected_rows, &violations)
            {
                return Err(PipelineError::Rules {
                    code: "rule_threshold_exceeded",
                    message: over.to_string(),
                });
            }
        }
        profile.add_bytes(job.header_len);
        let prefix = keys::results_prefix(&job.owner, &job.id);
        let report = serde_json::to_vec_pretty(&profile.report())
            .map_err(|e| PipelineError::Malformed(e.to_string()))?;
        let profile_key = format!("{prefix}/profile.json");
        self.objects
            .put(&profile_key, report, "application/json")
            .await?;

        let (clean_key, rejected_key) = (
            format!("{prefix}/clean.csv"),
            format!("{prefix}/rejected.csv"),
        );
        if tasks.is_empty() {
            self.objects
                .put(
                    &clean_key,
                    clean_header(output_columns(job, &rules)),
                    "text/csv",
                )
                .await?;
        } else {
            let parts: Vec<String> = tasks
                .iter()
                .map(|t| keys::part_key(&job.owner, &job.id, "clean", t.index))
                .collect();
            self.objects.concat(&clean_key, &parts, "text/csv").await?;
        }
        self.stitch_rejected(job, &tasks, &line_facts, &rejected_key)
            .await?;
        let results = ResultKeys {
            profile: Some(profile_key),
            clean: Some(clean_key),
            rejected: Some(rejected_key),
            manifest: Some(format!("{prefix}/manifest.json")),
        };
        let manifest = serde_json::json!({
            "job_id": job.id,
            "source": { "key": job.source_key, "bytes": job.declared_size, "filename": job.filename },
            "dialect": job.dialect,
            "columns": job.columns,
            "chunks": tasks.len(),
            "chunks_rerun": reruns.len(),
            "chunks_rerun_for_unique": unique_reruns,
            "unique_search_groups": job.unique_searches,
            "rows": totals.rows,
            "rejected_rows": totals.rejected_rows,
            "workflow": job.workflow,
            "output_columns": output_columns(job, &rules),
            "violations": violations,
            "outputs": { "clean": results.clean, "rejected": results.rejected, "profile": results.profile },
            "completed_at": now_rfc3339(),
        });
        self.objects
            .put(
                results.manifest.as_deref().unwrap_or_default(),
                serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
                "application/json",
            )
            .await?;
        if self.jobs.mark_completed(&job.id, &totals, &results).await? {
            tracing::info!(job_id = %job.id, rows = totals.rows, rejected = totals.rejected_rows, reruns = reruns.len(), "job completed");
        } else if self.jobs.get(&job.id).await?.map(|j| j.state) == Some(JobState::Cancelled) {
            // Cancelled while finalising: the job cannot complete (the move is conditional), and
            // the outputs written above must not outlive it.
            let keys = keys::job_output_keys(&job.owner, &job.id, job.chunk_count);
            if let Err(e) = self.objects.delete_keys(&keys).await {
                tracing::warn!(job_id = %job.id, error = %e, "could not delete a cancelled job's outputs; the bucket's expiry rule will");
            }
        }
        Ok(())
    }

    /// Builds rejected.csv: the header, then each chunk's rejected rows with their chunk-local
    /// line numbers made absolute (line base = 1 + header lines + earlier chunks' line breaks),
    /// concatenated in chunk order. Each chunk's part is streamed through the rebaser into its
    /// own final part (a multipart upload past 8 MiB), `STITCH_CONCURRENCY` chunks at a time:
    /// memory is bounded whatever the rejected output's size. `facts` are each chunk's
    /// `(rejected rows, line breaks in its range)`, from the merge.
    async fn stitch_rejected(
        &self,
        job: &Job,
        tasks: &[ChunkTask],
        facts: &[(u64, u64)],
        dest: &str,
    ) -> Result<(), PipelineError> {
        let header_key = keys::part_key(&job.owner, &job.id, "rejected-header", 0);
        self.objects
            .put(&header_key, REJECTED_HEADER.as_bytes().to_vec(), "text/csv")
            .await?;
        let mut line_base = 1 + self.header_lines(job).await?;
        let mut rebases = Vec::new();
        for (t, &(rejected_rows, newlines)) in tasks.iter().zip(facts) {
            if rejected_rows > 0 {
                rebases.push((t.index, line_base));
            }
            line_base += newlines;
        }
        let finals: Vec<String> = futures::stream::iter(rebases)
            .map(|(index, base)| self.rebase_rejected_part(job, index, base))
            .buffered(STITCH_CONCURRENCY)
            .try_collect()
            .await?;
        let parts: Vec<String> = std::iter::once(header_key).chain(finals).collect();
        self.objects.concat(dest, &parts, "text/csv").await?;
        Ok(())
    }

    /// Streams chunk `index`'s rejected part through the rebaser into `rejected-final/<index>`
    /// and returns that key.
    async fn rebase_rejected_part(
        &self,
        job: &Job,
        index: u32,
        line_base: u64,
    ) -> Result<String, PipelineError> {
        let source = keys::part_key(&job.owner, &job.id, "rejected", index);
        let key = keys::part_key(&job.owner, &job.id, "rejected-final", index);
        let mut body = self.objects.stream_from(&source, 0).await?;
        let mut sink = PartSink::new(self.objects.clone(), key.clone(), "text/csv");
        let mut rebaser = tessera_engine::chunk::RejectedRebaser::new(line_base);
        while let Some(bytes) = next_piece(&mut body).await? {
            rebaser.feed(&bytes, &mut sink.buf)?;
            sink.flush_if_full().await?;
        }
        rebaser.finish(&mut sink.buf)?;
        sink.close().await?;
        Ok(key)
    }

    /// The chunks' `unique` key headers read from each chunk's keys object (one small GET per
    /// chunk, 16 at a time), and their bytes end to end in chunk order (the job's header index).
    async fn read_unique_headers(
        &self,
        job: &Job,
        tasks: &[ChunkTask],
        rules: usize,
    ) -> Result<(Vec<crate::unique::KeysIndex>, Vec<u8>), PipelineError> {
        let parts = crate::unique::partitions_for(job.declared_size);
        let hlen = crate::unique::header_len(rules, parts);
        let reads: Vec<_> = tasks
            .iter()
            .map(|t| {
                let key = keys::part_key(&job.owner, &job.id, "unique", t.index);
                self.read_piece(key, 0, hlen)
            })
            .collect();
        let heads: Vec<Vec<u8>> = futures::stream::iter(reads)
            .buffered(UNIQUE_READ_CONCURRENCY)
            .try_collect()
            .await?;
        let mut index = Vec::with_capacity(heads.len() * hlen as usize);
        let mut headers = Vec::with_capacity(heads.len());
        for (t, head) in tasks.iter().zip(&heads) {
            headers.push(
                crate::unique::KeysIndex::parse(head, rules, parts).map_err(|e| {
                    PipelineError::Malformed(format!("unique keys of chunk {}: {e}", t.index))
                })?,
            );
            index.extend_from_slice(&head[..hlen as usize]);
        }
        Ok((headers, index))
    }

    /// The chunks' `unique` key headers for a search task: from the job's header index (one
    /// GET; the finaliser writes it before it sends the searches), or, should that be missing
    /// or of another shape, from each chunk's keys object.
    async fn unique_headers(
        &self,
        job: &Job,
        tasks: &[ChunkTask],
        rules: usize,
    ) -> Result<Vec<crate::unique::KeysIndex>, PipelineError> {
        let parts = crate::unique::partitions_for(job.declared_size);
        let hlen = crate::unique::header_len(rules, parts) as usize;
        let key = keys::part_key(&job.owner, &job.id, "unique-index", 0);
        match self.objects.read_all(&key).await {
            Ok(bytes) if bytes.len() == hlen * tasks.len() => {
                let parsed: Result<Vec<_>, String> = bytes
                    .chunks(hlen)
                    .map(|h| crate::unique::KeysIndex::parse(h, rules, parts))
                    .collect();
                match parsed {
                    Ok(headers) => return Ok(headers),
                    Err(e) => {
                        tracing::warn!(job_id = %job.id, error = %e, "unique header index unreadable; reading each chunk's header")
                    }
                }
            }
            Ok(bytes) => {
                tracing::warn!(job_id = %job.id, len = bytes.len(), "unique header index of another shape; reading each chunk's header")
            }
            Err(e) => {
                tracing::warn!(job_id = %job.id, error = %e, "no unique header index; reading each chunk's header")
            }
        }
        Ok(self.read_unique_headers(job, tasks, rules).await?.0)
    }

    /// The search groups of the `unique` pass: per rule, runs of adjacent partitions holding
    /// about `GROUP_BYTES` of keys. Deterministic (from the chunks' immutable headers), so a
    /// finaliser taking over finds the same groups. Writes the job's header index on the way,
    /// so that each search task reads one object instead of one per chunk.
    async fn unique_groups(
        &self,
        job: &Job,
        tasks: &[ChunkTask],
        unique: &[(String, usize)],
    ) -> Result<Vec<UniqueGroup>, PipelineError> {
        let (headers, index) = self.read_unique_headers(job, tasks, unique.len()).await?;
        self.objects
            .put(
                &keys::part_key(&job.owner, &job.id, "unique-index", 0),
                index,
                "application/octet-stream",
            )
            .await?;
        Ok(unique_groups_of(job, &headers, unique.len()))
    }

    /// One search group of the `unique` pass: reads the group's keys from every chunk (one
    /// ranged GET each, 16 at a time; `headers` are the chunks' key headers, in chunk order),
    /// sorts them, and verifies the candidates (equal hashes) against the source values, so
    /// collisions are removed. `(repeat offset, first offset)`.
    async fn unique_search(
        &self,
        job: &Job,
        tasks: &[ChunkTask],
        headers: &[crate::unique::KeysIndex],
        column: usize,
        group: UniqueGroup,
    ) -> Result<Vec<(u64, u64)>, PipelineError> {
        use tessera_engine::rules::unique::{candidate_groups, decode, exact_duplicates};
        let r = group.rule as usize;
        let dialect = job_dialect(job)?;
        let reads: Vec<_> = tasks
            .iter()
            .zip(headers)
            .map(|(t, h)| {
                let (start, len) = h.range(r, group.from, group.to);
                let key = keys::part_key(&job.owner, &job.id, "unique", t.index);
                self.read_piece(key, start, len)
            })
            .collect();
        let pieces: Vec<Vec<u8>> = futures::stream::iter(reads)
            .buffered(UNIQUE_READ_CONCURRENCY)
            .try_collect()
            .await?;
        let mut entries: Vec<(u64, u64)> = Vec::new();
        for p in &pieces {
            entries.extend(decode(p));
        }
        drop(pieces);
        let groups = candidate_groups(&mut entries);
        drop(entries);
        let reads: Vec<_> = groups
            .iter()
            .flatten()
            .map(|&off| self.value_at(job, &dialect, off, column))
            .collect();
        let values: HashMap<u64, String> = futures::stream::iter(reads)
            .buffer_unordered(UNIQUE_READ_CONCURRENCY)
            .try_collect()
            .await?;
        let mut found = exact_duplicates(&groups, |off| values.get(&off).cloned().ok_or(()))
            .map_err(|()| PipelineError::Malformed("a candidate value was not read".into()))?;
        found.sort_unstable();
        Ok(found)
    }

    /// Bytes `[start, start+len)` of an object (nothing for `len` 0).
    async fn read_piece(
        &self,
        key: String,
        start: u64,
        len: u64,
    ) -> Result<Vec<u8>, PipelineError> {
        Ok(self.objects.read_range(&key, start, len).await?)
    }

    /// Field `column` of the record that starts at byte `offset` of the job's source (a record
    /// start is outside quotes, so parsing from there is exact). Reads 64 KiB, more for longer
    /// records.
    async fn value_at(
        &self,
        job: &Job,
        dialect: &Dialect,
        offset: u64,
        column: usize,
    ) -> Result<(u64, String), PipelineError> {
        let defaults = ChunkOptions::default();
        let cfg = tessera_engine::parse::ParserConfig {
            delimiter: dialect.delimiter,
            quote: dialect.quote,
            max_field_bytes: defaults.max_field_bytes,
            max_record_bytes: defaults.max_record_bytes,
        };
        let mut window: u64 = 64 << 10;
        loop {
            let len = window.min(job.declared_size.saturating_sub(offset));
            let bytes = self
                .objects
                .read_range(&job.source_key, offset, len)
                .await?;
            let at_eof = offset + len >= job.declared_size;
            let found = tessera_engine::rules::unique::field_at_start(&bytes, cfg, column, at_eof)?;
            if let Some(v) = found {
                return Ok((offset, v));
            }
            window *= 4;
        }
    }

    /// Line breaks inside the header region (re-sniffed from the object's first bytes).
    async fn header_lines(&self, job: &Job) -> Result<u64, PipelineError> {
        if job.header_len == 0 {
            return Ok(0);
        }
        let head = self
            .objects
            .read_range(&job.source_key, 0, job.header_len)
            .await?;
        Ok(head
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && head.get(i + 1) != Some(&b'\n')))
            .count() as u64)
    }

    /// The job's compiled rules (`None` without a workflow), from the cache or built: the
    /// version's document, its reference files (`refs/<owner>/<key>`), the mask key, compiled
    /// against the job's header. Failures the job cannot recover from are `PipelineError::Rules`.
    async fn job_rules(&self, job: &Job) -> Result<Option<Arc<CompiledRules>>, PipelineError> {
        let Some(wf) = &job.workflow else {
            return Ok(None);
        };
        let key = (wf.id.clone(), wf.version, job.id.clone());
        if let Some(r) = self
            .rules_cache
            .lock()
            .ok()
            .and_then(|c| c.get(&key).cloned())
        {
            return Ok(Some(r));
        }
        let rules_failure =
            |code: &'static str, message: String| PipelineError::Rules { code, message };
        let Some(version) = self.workflows.version(&wf.id, wf.version).await? else {
            return Err(rules_failure(
                "workflow_missing",
                format!(
                    "Version {} of workflow {} no longer exists.",
                    wf.version, wf.id
                ),
            ));
        };
        let doc = tessera_engine::rules::parse_document(&version.rules_json)
            .map_err(|errs| rules_failure("invalid_rules", describe(&errs)))?;
        let mut refs = ResolvedRefs::none();
        for r in doc.references() {
            let s3_key = crate::workflow::reference_key(&job.owner, &r.key)
                .map_err(|m| rules_failure("invalid_rules", m))?;
            let Some(size) = self.objects.size(&s3_key).await? else {
                return Err(rules_failure(
                    "reference_missing",
                    format!(
                        "The reference file `{}` (a one_of list of workflow {} version {}) does not exist. Upload it with POST /v1/references {{\"key\": \"{}\"}} and start a new job.",
                        r.key, wf.id, wf.version, r.key
                    ),
                ));
            };
            if size > crate::workflow::MAX_REFERENCE_BYTES {
                return Err(rules_failure(
                    "reference_too_large",
                    format!(
                        "The reference file `{}` is {size} bytes; at most {} are allowed. Keep only the column the rule reads.",
                        r.key,
                        crate::workflow::MAX_REFERENCE_BYTES
                    ),
                ));
            }
            let bytes = self.objects.read_all(&s3_key).await?;
            let values =
                tessera_engine::file::read_column_values(&bytes, &r.column).map_err(|e| {
                    rules_failure(
                        "reference_invalid",
                        format!("The reference file `{}` cannot be used: {e}", r.key),
                    )
                })?;
            refs.insert(r, values);
        }
        if doc.needs_mask_key() && self.config.mask_key.is_none() {
            return Err(rules_failure(
                "mask_key_missing",
                "The workflow masks values with tokens, and no mask key is configured (TESSERA_MASK_KEY_HEX). Ask the operator to set one.".into(),
            ));
        }
        let compiled =
            CompiledRules::compile(&doc, &job.columns, &refs, self.config.mask_key.as_deref())
                .map_err(|errs| {
                    rules_failure(
                        "invalid_rules",
                        format!("The workflow does not fit this file: {}", describe(&errs)),
                    )
                })?;
        let compiled = Arc::new(compiled);
        if let Ok(mut c) = self.rules_cache.lock() {
            if c.len() >= RULES_CACHE_ENTRIES {
                c.clear();
            }
            c.insert(key, compiled.clone());
        }
        Ok(Some(compiled))
    }

    /// Every chunk's result, in chunk order, read `RESULT_READ_CONCURRENCY` at a time (a
    /// result holds a profile state: at most that many are in memory at once).
    fn results_in_order<'a>(
        &'a self,
        job: &'a Job,
        tasks: &'a [ChunkTask],
    ) -> impl futures::Stream<Item = Result<ChunkResult, PipelineError>> + 'a {
        futures::stream::iter(tasks)
            .map(move |t| self.load_result(job, t.index))
            .buffered(RESULT_READ_CONCURRENCY)
    }

    async fn load_result(&self, job: &Job, index: u32) -> Result<ChunkResult, PipelineError> {
        let bytes = self
            .objects
            .read_all(&keys::part_key(&job.owner, &job.id, "result", index))
            .await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| PipelineError::Malformed(format!("chunk {index} result: {e}")))
    }
}

/// Deliveries of a chunk task before SQS moves it to the dead-letter queue (the chunk queue's
/// `maxReceiveCount` in template.yaml and the local stack).
pub const MAX_CHUNK_DELIVERIES: u32 = 3;

/// Concurrent S3 reads of the `unique` pass (headers, key groups, values).
const UNIQUE_READ_CONCURRENCY: usize = 16;

/// Chunk results read at once while finalising (in order: a merge adds them one by one).
const RESULT_READ_CONCURRENCY: usize = 16;

/// Rejected parts rebased at once while stitching (each holds at most one 8 MiB output part).
const STITCH_CONCURRENCY: usize = 8;

/// Where a finalising job's `unique` second pass stands.
enum UniqueStage {
    /// Tasks are out; the last one to report calls the finaliser again.
    Waiting,
    /// Done; `reruns` chunks were re-run with repeats.
    Done { reruns: u32 },
}

/// One search group of the `unique` pass (rule index, partitions `from..to`).
#[derive(Debug, Clone, Copy)]
struct UniqueGroup {
    rule: u32,
    from: u32,
    to: u32,
}

/// The search groups of the `unique` pass from the chunks' key headers: per rule, runs of
/// adjacent partitions holding about `GROUP_BYTES` of keys.
fn unique_groups_of(
    job: &Job,
    headers: &[crate::unique::KeysIndex],
    rules: usize,
) -> Vec<UniqueGroup> {
    let parts = crate::unique::partitions_for(job.declared_size);
    let mut groups = Vec::new();
    for r in 0..rules {
        let totals: Vec<u64> = (0..parts)
            .map(|p| headers.iter().map(|h| h.count(r, p)).sum())
            .collect();
        for (from, to) in crate::unique::group_partitions(&totals, crate::unique::GROUP_BYTES) {
            groups.push(UniqueGroup {
                rule: r as u32,
                from,
                to,
            });
        }
    }
    groups
}

/// What a search group found: `(repeat offset, first offset)` for its rule.
#[derive(serde::Serialize, serde::Deserialize)]
struct UniqueFound {
    rule: String,
    found: Vec<(u64, u64)>,
}

/// Streams `key` from byte `from`, checking that the object is still the `planned` bytes its
/// work was cut for (S3's `Content-Range` total, no extra request); `SourceChanged` if it is
/// gone, shorter, or another size. `names`: what the object and the plan are called in the
/// message (`("object", "job")`, `("output", "export")`).
pub(crate) async fn open_planned(
    objects: &ObjectStore,
    key: &str,
    from: u64,
    planned: u64,
    names: (&str, &str),
) -> Result<aws_sdk_s3::primitives::ByteStream, PipelineError> {
    let (object, plan) = names;
    let Some((body, total)) = objects.stream_from_sized(key, from).await? else {
        return Err(PipelineError::SourceChanged(format!(
            "the {object} is gone or shorter than byte {from}"
        )));
    };
    if let Some(total) = total.filter(|&t| t != planned) {
        return Err(PipelineError::SourceChanged(format!(
            "the {object} is {total} bytes, the {plan} was planned for {planned}"
        )));
    }
    Ok(body)
}

/// The next piece of an object stream (`None` at its end).
pub(crate) async fn next_piece(
    body: &mut aws_sdk_s3::primitives::ByteStream,
) -> Result<Option<bytes::Bytes>, PipelineError> {
    body.try_next().await.map_err(|e| {
        PipelineError::Store(StoreError::Service {
            op: "GetObject(stream)",
            detail: e.to_string(),
        })
    })
}

/// Every chunk's result added up: profile, totals, violations, and what stitching the rejected
/// output needs of each chunk (`(rejected rows, line breaks in its range)`, in chunk order).
struct Merged {
    profile: ProfileState,
    totals: Totals,
    violations: BTreeMap<String, u64>,
    rule_rejected_rows: u64,
    line_facts: Vec<(u64, u64)>,
}

impl Merged {
    fn new(job: &Job) -> Self {
        Merged {
            profile: ProfileState::new(job.columns.clone(), &ProfileOptions::default()),
            totals: Totals {
                rows: 0,
                rejected_rows: 0,
                bytes: job.declared_size,
            },
            violations: BTreeMap::new(),
            rule_rejected_rows: 0,
            line_facts: Vec::new(),
        }
    }

    /// Adds the next chunk's result (chunks in order).
    fn add(&mut self, r: &ChunkResult) {
        self.line_facts
            .push((r.rejected_rows, r.newline_count_in_range));
        self.totals.rows += r.rows;
        self.totals.rejected_rows += r.rejected_rows;
        self.rule_rejected_rows += r.rule_rejected_rows;
        for (id, n) in &r.violations {
            *self.violations.entry(id.clone()).or_default() += n;
        }
        self.profile.merge(&r.profile);
    }
}

/// The dialect the job was planned with.
fn job_dialect(job: &Job) -> Result<Dialect, PipelineError> {
    serde_json::from_value(job.dialect.clone().unwrap_or_default())
        .map_err(|e| PipelineError::Malformed(format!("job dialect: {e}")))
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
            unique_rerun: false,
            unique_search: None,
        })
        .collect()
}

/// Re-enqueues the chunks of `job` that have no completion record (a retry: the failed chunks,
/// and any that were skipped because the job had failed). Returns how many were sent. Chunks
/// that completed keep their parts and counters; the finaliser recomputes the totals from every
/// chunk's result, so they come out exact.
pub async fn requeue_unfinished(
    jobs: &JobStore,
    queue: &TaskQueue,
    job: &Job,
) -> Result<u32, StoreError> {
    let done: std::collections::HashSet<u32> = jobs
        .chunks(&job.id)
        .await?
        .iter()
        .map(|c| c.index)
        .collect();
    let todo: Vec<ChunkTaskMessage> = chunk_tasks(job)
        .into_iter()
        .filter(|t| !done.contains(&t.index))
        .collect();
    queue.send_all(&todo).await?;
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

/// Validation errors as one line for a job's error message.
fn describe(errs: &[tessera_engine::rules::ValidationError]) -> String {
    errs.iter()
        .take(5)
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
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

/// One chunk's (or export range's) output part: buffered up to 8 MiB, then sent to S3 as a
/// multipart part, so a worker's memory does not grow with its range.
pub(crate) struct PartSink {
    objects: ObjectStore,
    key: String,
    content_type: &'static str,
    pub(crate) buf: Vec<u8>,
    upload: Option<crate::store::objects::MultipartWriter>,
}

impl PartSink {
    pub(crate) fn new(objects: ObjectStore, key: String, content_type: &'static str) -> Self {
        PartSink {
            objects,
            key,
            content_type,
            buf: Vec::new(),
            upload: None,
        }
    }

    pub(crate) async fn flush_if_full(&mut self) -> Result<(), StoreError> {
        if self.buf.len() < OUTPUT_PART_BYTES {
            return Ok(());
        }
        if self.upload.is_none() {
            self.upload = Some(
                self.objects
                    .start_multipart(&self.key, self.content_type)
                    .await?,
            );
        }
        let data = std::mem::take(&mut self.buf);
        self.upload
            .as_mut()
            .expect("started")
            .write_part(data)
            .await
    }

    pub(crate) async fn close(mut self) -> Result<(), StoreError> {
        match self.upload.take() {
            None => {
                self.objects
                    .put(&self.key, std::mem::take(&mut self.buf), self.content_type)
                    .await
            }
            Some(mut up) => {
                if !self.buf.is_empty() {
                    up.write_part(std::mem::take(&mut self.buf)).await?;
                }
                up.complete().await
            }
        }
    }
}

/// Runs `handle` on each SQS message body of a batch and reports only the messages that failed
/// (SQS partial batch response), so SQS redelivers just those. One span per message.
pub async fn handle_sqs_batch<F, Fut>(
    event: aws_lambda_events::sqs::SqsEvent,
    handle: F,
) -> aws_lambda_events::sqs::SqsBatchResponse
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), PipelineError>>,
{
    let mut failures = Vec::new();
    for msg in event.records {
        let id = msg.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("message", message_id = %id);
        let res = tracing::Instrument::instrument(handle(msg.body.unwrap_or_default()), span).await;
        if let Err(e) = res {
            tracing::error!(message_id = %id, error = %e, "message failed; it will be retried");
            let mut f = aws_lambda_events::sqs::BatchItemFailure::default();
            f.item_identifier = id;
            failures.push(f);
        }
    }
    let mut resp = aws_lambda_events::sqs::SqsBatchResponse::default();
    resp.batch_item_failures = failures;
    resp
}
