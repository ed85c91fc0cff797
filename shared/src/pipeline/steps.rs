//! The pipeline's decisions over the ledger ports, apart from any I/O on objects: commit a
//! chunk, claim the finalization, complete a job, report an item of a `unique` step. Each is a
//! sequence of conditional moves whose outcome is the same however racing workers interleave;
//! `pipeline::tests` plays those interleavings on the in-memory ledger.

use std::time::Duration;

use super::is_stale;
use crate::job::{Job, JobState, ResultKeys};
use crate::ledger::{ChunkCommit, ChunkRecord, Totals, UniqueStep};
use crate::ports::Ledger;
use crate::store::StoreError;

/// What a chunk worker does after recording its completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterCommit {
    /// Others of its shard are still running: nothing more.
    Done,
    /// Its shard is complete, or it was a redelivery: see whether the job can be finalized.
    TryFinalize,
    /// The job was cancelled while it ran: its parts, written after the cancel, are its own to
    /// remove.
    RemoveParts,
}

/// Records chunk `record` of `job` and says what is left to do.
pub(crate) async fn commit_chunk(
    ledger: &dyn Ledger,
    job: &Job,
    record: &ChunkRecord,
) -> Result<AfterCommit, StoreError> {
    match ledger
        .complete_chunk(&job.id, record, job.expires_at)
        .await?
    {
        ChunkCommit::Committed => {
            tracing::info!(job_id = %job.id, chunk = record.index, rows = record.rows, "chunk done");
            // Only the worker that completes its shard looks at all 16 (≤ 16 per job).
            let shard_done = ledger
                .shard_complete(&job.id, record.index, job.chunk_count)
                .await?;
            Ok(if shard_done {
                AfterCommit::TryFinalize
            } else {
                AfterCommit::Done
            })
        }
        ChunkCommit::AlreadyDone => {
            // A redelivery whose first delivery committed and then failed before finishing
            // the job: finishing is still this message's business.
            tracing::info!(job_id = %job.id, chunk = record.index, "chunk was already done (redelivery)");
            Ok(AfterCommit::TryFinalize)
        }
        ChunkCommit::JobNotActive => {
            let state = ledger.get(&job.id).await?.map(|j| j.state);
            Ok(if state == Some(JobState::Cancelled) {
                AfterCommit::RemoveParts
            } else {
                AfterCommit::Done
            })
        }
    }
}

/// Claims the finalization of job `job_id`: the job (as read after the claim) when this caller
/// won the move to `finalizing` with every chunk done, or took over a finalization that has
/// not moved for `stale_after` ([`crate::config::Config::stale_finalizing`]); `None` otherwise.
pub(crate) async fn claim_finalization(
    ledger: &dyn Ledger,
    job_id: &str,
    stale_after: Duration,
) -> Result<Option<Job>, StoreError> {
    let Some(job) = ledger.get(job_id).await? else {
        return Ok(None);
    };
    let claimed = match job.state {
        // The job item does not count chunks (the shards do): sum the 16 counters.
        JobState::Processing => {
            let done = ledger.progress(&job.id).await?.chunks_done;
            done >= job.chunk_count && ledger.mark_finalizing(&job.id).await?
        }
        // A finalizer that died (timeout, crash) leaves the job in `finalizing`; its chunk
        // message comes back after the visibility timeout and takes over once the job has
        // not moved for longer than any finalizer can run. Finalizing is idempotent.
        JobState::Finalizing if is_stale(&job.updated_at, stale_after) => {
            tracing::warn!(job_id = %job.id, since = %job.updated_at, "taking over a stalled finalization");
            ledger.reclaim_finalizing(&job.id, &job.updated_at).await?
        }
        _ => false,
    };
    if !claimed {
        return Ok(None);
    }
    Ok(Some(ledger.get(&job.id).await?.unwrap_or(job)))
}

/// How the move of a finalized job to `completed` went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completion {
    Completed,
    /// Cancelled while finalizing: the outputs just written must not outlive the job.
    Cancelled,
    /// Another state (failed meanwhile, or completed by a finalizer that took over).
    Other,
}

/// Moves job `job_id` to `completed` with its totals and results.
pub(crate) async fn complete(
    ledger: &dyn Ledger,
    job_id: &str,
    totals: &Totals,
    results: &ResultKeys,
) -> Result<Completion, StoreError> {
    if ledger.mark_completed(job_id, totals, results).await? {
        return Ok(Completion::Completed);
    }
    Ok(match ledger.get(job_id).await?.map(|j| j.state) {
        Some(JobState::Cancelled) => Completion::Cancelled,
        _ => Completion::Other,
    })
}

/// Item `index` of a `unique` step reported: the job to carry on (finalize again) when it was
/// the last item; `None` while others wait, for a redelivery, or when the job stopped.
pub(crate) async fn unique_item_done(
    ledger: &dyn Ledger,
    job_id: &str,
    step: UniqueStep,
    index: u32,
) -> Result<Option<Job>, StoreError> {
    match ledger.unique_step_done(job_id, step, index).await? {
        Some(true) => {
            tracing::info!(
                job_id,
                index,
                ?step,
                "last item of the unique step done; going on"
            );
            ledger.get(job_id).await
        }
        Some(false) => {
            tracing::info!(job_id, index, ?step, "unique step item done");
            Ok(None)
        }
        None => Ok(None),
    }
}
