//! The chunk queue's dead letters: tasks SQS gave up on fail their job (or export) with a
//! stable code instead of leaving it waiting forever.

use super::{is_stale, Pipeline, PipelineError, MAX_CHUNK_DELIVERIES};
use crate::job::{is_waiting, JobState};
use crate::task::QueueMessage;
use crate::task::QueueTask;

impl Pipeline {
    /// A chunk task that reached the dead-letter queue: SQS delivered it `maxReceiveCount`
    /// times and no attempt finished (the worker timed out, crashed, or kept meeting a service
    /// error). Without this the job would wait forever. An active job whose chunk has no
    /// completion fails `chunk_attempts_exhausted`, naming the chunk, and can be retried
    /// (`POST /v1/jobs/{id}/retry` re-runs only the chunks without a completion). A job stuck in
    /// `finalizing` for longer than a finalizer can live fails `finalize_failed`. Anything else
    /// (a finished job, a chunk that did complete, a live finalizer) is left as it is.
    /// Export ranges go to [`Pipeline::dead_export_range`].
    pub async fn dead_chunk_message(&self, body: &str) -> Result<(), PipelineError> {
        let Some(message) = super::chunk::parse_message(body) else {
            return Ok(());
        };
        match message {
            QueueMessage::ExportRange(m) => return Box::pin(self.dead_export_range(m)).await,
            QueueMessage::QueryRange(m) => return Box::pin(self.dead_query_range(m)).await,
            _ => {}
        }
        let Some(job) = self.job_of(&message).await? else {
            return Ok(());
        };
        match (&message, job.state) {
            (QueueMessage::UniqueSearch(m), JobState::Finalizing)
                if is_waiting(job.unique_search_waiting.as_ref(), m.group) =>
            {
                tracing::error!(job_id = %job.id, group = m.group, "unique search exhausted its deliveries; failing the job");
                self.fail(
                    &job,
                    "finalize_failed",
                    format!(
                        "The search for repeated values (unique rules), part {}, was tried {} times and never finished. Upload the file again; if it fails again, report the job id.",
                        m.group, MAX_CHUNK_DELIVERIES
                    ),
                )
                .await
            }
            (QueueMessage::UniqueRerun(task), JobState::Finalizing)
                if is_waiting(job.unique_waiting.as_ref(), task.index) =>
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
            (QueueMessage::Chunk(task), JobState::Queued | JobState::Processing) => {
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
            (_, JobState::Finalizing)
                if is_stale(&job.updated_at, self.config.stale_finalizing) =>
            {
                tracing::error!(job_id = %job.id, "finalization never finished; failing the job");
                self.fail(
                    &job,
                    "finalize_failed",
                    "Tessera could not assemble the results of this job: every attempt stopped before finishing. Upload the file again; if it fails again, report the job id.".into(),
                )
                .await
            }
            _ => {
                tracing::info!(job_id = %job.id, index = message.index(), state = job.state.as_str(), "dead-lettered chunk task for a job that needs nothing");
                Ok(())
            }
        }
    }
}
