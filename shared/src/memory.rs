//! In-memory ledgers with the conditional semantics of the DynamoDB adapter (`store::jobs`):
//! every move is checked and applied under one lock, as DynamoDB applies one conditional write
//! or transaction. For unit tests of the use cases, where a test chooses how racing workers
//! interleave (the emulator cannot).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::job::{now_rfc3339, Job, JobError, JobState, ResultKeys, Timestamp};
use crate::ledger::{
    ChunkCommit, ChunkRecord, ModelPlan, ModelUsage, Plan, Progress, Totals, UniqueStep,
};
use crate::ports::{ChunkLedger, JobLedger};
use crate::store::jobs::{shard_chunk_count, shard_of, COUNTER_SHARDS};
use crate::store::StoreError;

mod edges;
mod rate;
pub use edges::{MemoryConnections, MemoryObjects, MemoryPusher, MemoryTasks};
pub use rate::{ManualClock, MemoryRateBuckets};

/// One counter shard of a job.
#[derive(Debug, Clone, Default)]
struct Shard {
    progress: Progress,
    /// No completion is recorded while set (the job failed or was cancelled).
    closed: bool,
}

#[derive(Debug, Default)]
struct Tables {
    jobs: HashMap<String, Job>,
    chunks: BTreeMap<(String, u32), ChunkRecord>,
    shards: HashMap<(String, u32), Shard>,
}

impl Tables {
    /// Moves job `id` from one of `from` to `to` (and runs `also` on it), if it is in one.
    fn transition(
        &mut self,
        id: &str,
        from: impl Fn(JobState) -> bool,
        to: JobState,
        also: impl FnOnce(&mut Job),
    ) -> bool {
        match self.jobs.get_mut(id) {
            Some(job) if from(job.state) => {
                job.state = to;
                job.updated_at = Timestamp::now();
                also(job);
                true
            }
            _ => false,
        }
    }

    fn set_closed(&mut self, id: &str, closed: bool) {
        for k in 0..COUNTER_SHARDS {
            self.shards.entry((id.to_string(), k)).or_default().closed = closed;
        }
    }

    /// A move to `failed` or `cancelled`, closing the shards in the same step.
    fn stop(&mut self, id: &str, to: JobState, also: impl FnOnce(&mut Job)) -> bool {
        let moved = self.transition(id, |s| !s.is_final(), to, also);
        if moved {
            self.set_closed(id, true);
        }
        moved
    }
}

/// Job and chunk ledgers in memory.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    tables: Mutex<Tables>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `job` as it is (a test's starting point).
    pub fn put(&self, job: Job) {
        self.lock().jobs.insert(job.id.clone(), job);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().expect("ledger lock")
    }
}

fn waiting_of(job: &mut Job, step: UniqueStep) -> &mut Option<BTreeMap<String, bool>> {
    match step {
        UniqueStep::Search => &mut job.unique_search_waiting,
        UniqueStep::Rerun => &mut job.unique_waiting,
        UniqueStep::Rebase => &mut job.rebase_waiting,
    }
}

#[async_trait]
impl JobLedger for MemoryLedger {
    async fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
        Ok(self.lock().jobs.get(id).cloned())
    }

    async fn mark_planned(&self, id: &str, plan: &Plan) -> Result<bool, StoreError> {
        Ok(self.lock().transition(
            id,
            |s| s == JobState::AwaitingUpload,
            JobState::Queued,
            |job| {
                job.dialect = serde_json::from_value(plan.dialect.clone()).ok();
                job.columns = plan.columns.clone();
                job.header_len = plan.header_len;
                job.chunk_size = plan.chunk_size;
                job.chunk_count = plan.chunk_count;
                job.source_etag = plan.source_etag.clone();
            },
        ))
    }

    async fn mark_processing(&self, id: &str) -> Result<bool, StoreError> {
        let queued = |s| s == JobState::Queued;
        Ok(self
            .lock()
            .transition(id, queued, JobState::Processing, |_| {}))
    }

    async fn mark_finalizing(&self, id: &str) -> Result<bool, StoreError> {
        let processing = |s| s == JobState::Processing;
        Ok(self
            .lock()
            .transition(id, processing, JobState::Finalizing, |_| {}))
    }

    async fn reclaim_finalizing(&self, id: &str, seen: Timestamp) -> Result<bool, StoreError> {
        let mut t = self.lock();
        match t.jobs.get_mut(id) {
            Some(job) if job.state == JobState::Finalizing && job.updated_at == seen => {
                job.updated_at = Timestamp::now();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn begin_unique_step(
        &self,
        id: &str,
        step: UniqueStep,
        items: &[u32],
    ) -> Result<bool, StoreError> {
        let mut t = self.lock();
        let Some(job) = t.jobs.get_mut(id) else {
            return Ok(false);
        };
        if job.state != JobState::Finalizing || waiting_of(job, step).is_some() {
            return Ok(false);
        }
        *waiting_of(job, step) = Some(items.iter().map(|i| (i.to_string(), true)).collect());
        match step {
            UniqueStep::Search => job.unique_searches = items.len() as u32,
            UniqueStep::Rerun => job.unique_reruns = items.len() as u32,
            UniqueStep::Rebase => job.rebase_groups = items.len() as u32,
        }
        job.updated_at = Timestamp::now();
        Ok(true)
    }

    async fn unique_step_done(
        &self,
        id: &str,
        step: UniqueStep,
        index: u32,
    ) -> Result<Option<bool>, StoreError> {
        let mut t = self.lock();
        let Some(job) = t.jobs.get_mut(id) else {
            return Ok(None);
        };
        if job.state != JobState::Finalizing {
            return Ok(None);
        }
        let Some(waiting) = waiting_of(job, step).as_mut() else {
            return Ok(None);
        };
        if waiting.remove(&index.to_string()).is_none() {
            return Ok(None);
        }
        let last = waiting.is_empty();
        job.updated_at = Timestamp::now();
        Ok(Some(last))
    }

    async fn mark_completed(
        &self,
        id: &str,
        totals: &Totals,
        results: &ResultKeys,
    ) -> Result<bool, StoreError> {
        let from = |s| matches!(s, JobState::Finalizing | JobState::Queued);
        Ok(self
            .lock()
            .transition(id, from, JobState::Completed, |job| {
                job.rows = totals.rows;
                job.rejected_rows = totals.rejected_rows;
                job.bytes_done = totals.bytes;
                job.scored_rows = totals.scored_rows;
                job.not_graded_rows = totals.not_graded_rows;
                job.results = results.clone();
                job.chunks_done = job.chunk_count;
            }))
    }

    async fn mark_failed(&self, id: &str, error: &JobError) -> Result<bool, StoreError> {
        Ok(self.lock().stop(id, JobState::Failed, |job| {
            job.error = Some(error.clone());
        }))
    }

    async fn mark_chunk_failed(
        &self,
        id: &str,
        index: u32,
        error: &JobError,
    ) -> Result<bool, StoreError> {
        Ok(self.lock().stop(id, JobState::Failed, |job| {
            job.error = Some(error.clone());
            job.failed_chunks = vec![index];
        }))
    }

    async fn mark_cancelled(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.lock().stop(id, JobState::Cancelled, |_| {}))
    }

    async fn mark_retrying(&self, id: &str) -> Result<bool, StoreError> {
        let mut t = self.lock();
        let retryable = t
            .jobs
            .get(id)
            .is_some_and(|j| j.state == JobState::Failed && !j.failed_chunks.is_empty());
        if !retryable {
            return Ok(false);
        }
        t.transition(
            id,
            |_| true,
            JobState::Processing,
            |job| {
                job.retries += 1;
                job.error = None;
                job.failed_chunks.clear();
            },
        );
        t.set_closed(id, false);
        Ok(true)
    }

    async fn set_model_plan(&self, id: &str, plan: &ModelPlan) -> Result<(), StoreError> {
        if let Some(job) = self.lock().jobs.get_mut(id) {
            job.model_max_micro_usd = plan.max_micro_usd;
            job.model_estimate_micro_usd = plan.estimate_micro_usd;
            job.model_sample_rates = plan.sample_rates.clone();
        }
        Ok(())
    }

    async fn add_model_usage(&self, id: &str, usage: &ModelUsage) -> Result<u64, StoreError> {
        let mut t = self.lock();
        let Some(job) = t.jobs.get_mut(id) else {
            return Ok(usage.cost_micro_usd);
        };
        job.model_input_tokens += usage.input_tokens;
        job.model_output_tokens += usage.output_tokens;
        job.model_cost_micro_usd += usage.cost_micro_usd;
        job.model_wait_ms += usage.wait_ms;
        Ok(job.model_cost_micro_usd)
    }
}

#[async_trait]
impl ChunkLedger for MemoryLedger {
    async fn complete_chunk(
        &self,
        job_id: &str,
        chunk: &ChunkRecord,
        _expires_at: i64,
    ) -> Result<ChunkCommit, StoreError> {
        let mut t = self.lock();
        let key = (job_id.to_string(), chunk.index);
        if t.chunks.contains_key(&key) {
            return Ok(ChunkCommit::AlreadyDone);
        }
        let shard = t
            .shards
            .entry((job_id.to_string(), shard_of(chunk.index)))
            .or_default();
        if shard.closed {
            return Ok(ChunkCommit::JobNotActive);
        }
        shard.progress.chunks_done += 1;
        shard.progress.rows += chunk.rows;
        shard.progress.rejected_rows += chunk.rejected_rows;
        shard.progress.bytes_done += chunk.bytes;
        shard.progress.scored_rows += chunk.scored_rows;
        shard.progress.not_graded_rows += chunk.not_graded_rows;
        shard.progress.updated_at = now_rfc3339();
        t.chunks.insert(key, chunk.clone());
        Ok(ChunkCommit::Committed)
    }

    async fn chunk_done(&self, job_id: &str, index: u32) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .chunks
            .contains_key(&(job_id.to_string(), index)))
    }

    async fn shard_complete(
        &self,
        job_id: &str,
        index: u32,
        chunk_count: u32,
    ) -> Result<bool, StoreError> {
        let k = shard_of(index);
        let t = self.lock();
        let done = t
            .shards
            .get(&(job_id.to_string(), k))
            .map_or(0, |s| s.progress.chunks_done);
        Ok(done >= shard_chunk_count(k, chunk_count))
    }

    async fn progress(&self, job_id: &str) -> Result<Progress, StoreError> {
        let t = self.lock();
        let mut total = Progress::default();
        for k in 0..COUNTER_SHARDS {
            if let Some(s) = t.shards.get(&(job_id.to_string(), k)) {
                total.chunks_done += s.progress.chunks_done;
                total.rows += s.progress.rows;
                total.rejected_rows += s.progress.rejected_rows;
                total.bytes_done += s.progress.bytes_done;
                total.scored_rows += s.progress.scored_rows;
                total.not_graded_rows += s.progress.not_graded_rows;
                if s.progress.updated_at > total.updated_at {
                    total.updated_at = s.progress.updated_at.clone();
                }
            }
        }
        Ok(total)
    }

    async fn chunks(&self, job_id: &str) -> Result<Vec<ChunkRecord>, StoreError> {
        let t = self.lock();
        Ok(t.chunks
            .range((job_id.to_string(), 0)..=(job_id.to_string(), u32::MAX))
            .map(|(_, c)| c.clone())
            .collect())
    }
}
