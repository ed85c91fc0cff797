//! Job control, the owner's side: the owner check every route makes, cancel (with the cleanup
//! it owes) and retry (with its compensation when the chunks cannot be sent). The api and
//! status functions call these and answer with [`ControlError`]'s one mapping to HTTP
//! (`impl From<ControlError> for ApiError`, in `error.rs`).

use crate::job::{Job, JobState};
use crate::keys;
use crate::ports::JobLedger;
use crate::store::jobs::JobStore;
use crate::store::objects::ObjectStore;
use crate::store::queue::TaskQueue;
use crate::store::StoreError;

/// Why a job control request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No such job for this owner (unknown, malformed, or another owner's: all the same).
    #[error("no such job")]
    NotFound,
    /// The job is final (the state it is in): it cannot be cancelled.
    #[error("the job is {}", .0.as_str())]
    Final(JobState),
    /// The job failed as a whole (the error's code), not in its chunks: a retry cannot help.
    #[error("the job failed as a whole ({0})")]
    NotRetryable(String),
    /// Only failed jobs are retried; this one is in the state given.
    #[error("the job is {}, not failed", .0.as_str())]
    NotFailed(JobState),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Job `id` if `owner` owns it. Unknown ids, malformed ids and other owners' jobs are all
/// [`ControlError::NotFound`]: an owner cannot learn that someone else's job exists.
pub async fn owned_job(jobs: &dyn JobLedger, owner: &str, id: &str) -> Result<Job, ControlError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ControlError::NotFound);
    }
    match jobs.get(id).await? {
        Some(job) if job.owner == owner => Ok(job),
        _ => Err(ControlError::NotFound),
    }
}

/// Cancels `job` (any non-final state ends `cancelled`): aborts its multipart upload if it
/// was still uploading, and deletes its partial outputs (best effort; a chunk or finalizer
/// still running when the cancel lands deletes what it writes after it). The job as it is now.
pub async fn cancel(jobs: &JobStore, objects: &ObjectStore, job: Job) -> Result<Job, ControlError> {
    if job.state.is_final() {
        return Err(ControlError::Final(job.state));
    }
    if !jobs.mark_cancelled(&job.id).await? {
        let now = jobs.get(&job.id).await?.unwrap_or(job);
        return Err(ControlError::Final(now.state));
    }
    if let (JobState::AwaitingUpload, Some(upload_id)) = (job.state, &job.upload_id) {
        if let Err(e) = objects.abort_upload(&job.source_key, upload_id).await {
            tracing::warn!(job_id = %job.id, error = %e, "could not abort the cancelled job's upload; the lifecycle rule will");
        }
    }
    let job = jobs.get_with_progress(&job.id).await?.unwrap_or(job);
    discard_outputs(objects, &job).await;
    tracing::info!(job_id = %job.id, "job cancelled");
    Ok(job)
}

/// Removes everything a job wrote under its results prefix, best effort: a failure is logged
/// and left to the bucket's expiry rule (the job's state already says the outputs are void).
pub async fn discard_outputs(objects: &ObjectStore, job: &Job) {
    if job.chunk_count == 0 && job.results.manifest.is_none() {
        return;
    }
    let keys = keys::job_output_keys(&job.owner, &job.id, job.chunk_count, job.unique_searches);
    if let Err(e) = objects.delete_keys(&keys).await {
        tracing::warn!(job_id = %job.id, error = %e, "could not delete a cancelled job's outputs; the bucket's expiry rule will");
    }
}

/// Why `job` cannot be retried.
fn retry_refusal(job: &Job) -> ControlError {
    match (job.state, &job.error) {
        (JobState::Failed, Some(e)) => ControlError::NotRetryable(e.code.clone()),
        (s, _) => ControlError::NotFailed(s),
    }
}

/// Retries `job`, which failed because of chunks: back to `processing`, and only its chunks
/// without a completion record are sent again. Should sending fail, the job is put back as it
/// was (failed, retryable), so the owner can retry again. The job as it is now, and how many
/// chunks were sent.
pub async fn retry(
    jobs: &JobStore,
    queue: &TaskQueue,
    job: Job,
) -> Result<(Job, u32), ControlError> {
    if !job.is_retryable() {
        return Err(retry_refusal(&job));
    }
    if !jobs.mark_retrying(&job.id).await? {
        // Another retry won, or the job changed: answer from what it is now.
        let now = jobs.get(&job.id).await?.unwrap_or(job);
        return Err(retry_refusal(&now));
    }
    let sent = match crate::pipeline::requeue_unfinished(jobs, queue, &job).await {
        Ok(n) => n,
        Err(e) => {
            if let (Some(err), Some(&chunk)) = (&job.error, job.failed_chunks.first()) {
                let _ = jobs.mark_chunk_failed(&job.id, chunk, err).await;
            }
            return Err(e.into());
        }
    };
    let job = jobs.get_with_progress(&job.id).await?.unwrap_or(job);
    Ok((job, sent))
}
