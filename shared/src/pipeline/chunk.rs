//! One chunk task: its range streamed through the engine into its parts and result, then its
//! completion committed on the job's shard; the worker completing the last shard finalizes.

use std::sync::Arc;

use tessera_engine::chunk::{ChunkOptions, ChunkProcessor, ChunkResult, Feed};
use tessera_engine::rules::unique::Repeats;
use tessera_engine::split::ChunkTask;

use super::steps::{commit_chunk, AfterCommit};
use super::{clean_header, job_dialect, output_columns, Pipeline, PipelineError};
use crate::job::{now_rfc3339, Job, JobError, JobState};
use crate::keys::{self, PartKind};
use crate::ledger::ChunkRecord;
use crate::store::objects::{next_piece, open_planned, PartSink, Planned};
use crate::task::{ChunkTaskMessage, QueueMessage};

/// A chunk queue message, or `None` (logged) for a body that does not parse: acknowledged,
/// since retrying cannot fix it.
pub(super) fn parse_message(body: &str) -> Option<QueueMessage> {
    match crate::task::parse_queue_message(body) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring a chunk message that does not parse");
            None
        }
    }
}

impl Pipeline {
    /// The job of a message (not an export range's), or `None` (logged) for a message no one
    /// can act on: its job is unknown, or the owners differ. Such a message is acknowledged,
    /// not retried.
    pub(super) async fn job_of(
        &self,
        message: &QueueMessage,
    ) -> Result<Option<Job>, PipelineError> {
        let job_id = message.job_id();
        let Some(job) = self.jobs.get(job_id).await? else {
            tracing::warn!(job_id, "chunk task for an unknown job ignored");
            return Ok(None);
        };
        if job.owner != message.owner() {
            tracing::warn!(job_id, "chunk task owner does not match the job; ignored");
            return Ok(None);
        }
        Ok(Some(job))
    }

    /// Handles one message of the chunk task queue: a chunk task, a step of the `unique` pass,
    /// an export job's range, or a query job's range.
    pub async fn chunk_message(&self, body: &str) -> Result<(), PipelineError> {
        let Some(message) = parse_message(body) else {
            return Ok(());
        };
        match message {
            QueueMessage::ExportRange(m) => return Box::pin(self.export_range_message(m)).await,
            QueueMessage::QueryRange(m) => return Box::pin(self.query_range_message(m)).await,
            _ => {}
        }
        let Some(job) = self.job_of(&message).await? else {
            return Ok(());
        };
        match message {
            QueueMessage::Chunk(task) => self.chunk_task(task, job).await,
            QueueMessage::UniqueSearch(m) => self.unique_search_message(m.group, job).await,
            QueueMessage::UniqueRerun(task) => self.unique_rerun(task, job).await,
            QueueMessage::RejectedRebase(m) => self.rejected_rebase_message(m, job).await,
            // Handled above.
            QueueMessage::ExportRange(_) | QueueMessage::QueryRange(_) => Ok(()),
        }
    }

    /// A chunk's first run: its range through the engine, then its completion recorded.
    async fn chunk_task(&self, task: ChunkTaskMessage, job: Job) -> Result<(), PipelineError> {
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
            Err(PipelineError::Throttled(delay)) => {
                // No model capacity for longer than a chunk waits: the task comes back later
                // (this delivery is acknowledged; its parts are rewritten by the next run).
                tracing::info!(job_id = %job.id, chunk = task.index, delay_s = delay.as_secs(), "no model capacity; chunk task requeued");
                self.queue
                    .send_one(&QueueMessage::Chunk(task), delay)
                    .await?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let record = ChunkRecord {
            index: task.index,
            rows: result.rows,
            rejected_rows: result.rejected_rows,
            bytes: task.end - task.start,
            scored_rows: result.scored_rows,
            not_graded_rows: result.not_graded_rows,
            result_key: keys::part_key(&job.owner, &job.id, PartKind::Result, task.index),
            completed_at: now_rfc3339(),
        };
        match commit_chunk(&*self.jobs, &job, &record).await? {
            AfterCommit::Done => Ok(()),
            AfterCommit::TryFinalize => self.finalize_if_done(&job.id).await,
            AfterCommit::RemoveParts => {
                // Cancelled while this chunk ran: the cancel deleted the parts that existed then;
                // this chunk's were written after, so it removes its own.
                let keys = keys::chunk_part_keys(&job.owner, &job.id, task.index);
                if let Err(e) = self.objects.delete_keys(&keys).await {
                    tracing::warn!(job_id = %job.id, chunk = task.index, error = %e, "could not delete the parts of a cancelled job's chunk; the bucket's expiry rule will");
                }
                Ok(())
            }
        }
    }

    pub(super) async fn fail_chunk(
        &self,
        job: &Job,
        index: u32,
        code: &str,
        message: String,
    ) -> Result<(), PipelineError> {
        tracing::warn!(job_id = %job.id, chunk = index, code, %message, "chunk failed the job");
        self.jobs
            .mark_chunk_failed(&job.id, index, &JobError::new(code, message))
            .await?;
        Ok(())
    }

    /// Streams one chunk's range from S3 through the engine and writes its parts and result.
    pub(super) async fn run_chunk(
        &self,
        job: &Job,
        task: &ChunkTask,
    ) -> Result<ChunkResult, PipelineError> {
        self.run_chunk_with(job, task, None).await
    }

    /// [`run_chunk`](Self::run_chunk), or with `repeats` (the finalizer's re-run after the
    /// `unique` second pass): those records violate their `unique` rule, and no keys are written.
    pub(super) async fn run_chunk_with(
        &self,
        job: &Job,
        task: &ChunkTask,
        repeats: Option<Arc<Repeats>>,
    ) -> Result<ChunkResult, PipelineError> {
        let dialect = job_dialect(job)?;
        let rules = self.job_rules(job).await?;
        let model_steps = rules.as_ref().map_or(0, |r| r.model_steps().len());
        let grader = match (model_steps, &self.grader) {
            (0, _) => None,
            (_, Some(g)) => Some(g),
            (_, None) => {
                return Err(PipelineError::Rules {
                    code: "model_not_configured",
                    message: "The workflow grades sentiment with the `model` engine, and no \
                              language model is configured (TESSERA_MODEL_ID). Ask the operator \
                              to configure one, or use the `lexicon` engine."
                        .into(),
                })
            }
        };
        let mut grading = super::grade::ChunkGrading::new(job);
        let options = ChunkOptions {
            rules: rules.clone(),
            unique_repeats: repeats,
            grade_model_rows: grader.is_some(),
            ..Default::default()
        };
        let mut proc = ChunkProcessor::new(task, &dialect, &job.columns, &options);
        let read_from = tessera_engine::chunk::read_start(task);
        let mut clean = PartSink::new(
            self.objects.clone(),
            keys::part_key(&job.owner, &job.id, PartKind::Clean, task.index),
            "text/csv",
        );
        let mut rejected = PartSink::new(
            self.objects.clone(),
            keys::part_key(&job.owner, &job.id, PartKind::Rejected, task.index),
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
            Planned {
                size: job.declared_size,
                etag: job.source_etag.as_deref(),
            },
            ("object", "job"),
        )
        .await?;
        loop {
            let Some(bytes) = next_piece(&mut body).await? else {
                break;
            };
            let state = proc.feed(&bytes, &mut clean.buf, &mut rejected.buf)?;
            if let Some(g) = grader {
                if proc.model_rows().len() >= super::grade::GRADE_AT {
                    grading
                        .grade(g, &*self.jobs, &mut proc, &mut clean.buf)
                        .await?;
                }
            }
            clean.flush_if_full().await?;
            rejected.flush_if_full().await?;
            if state == Feed::Done {
                break;
            }
        }
        drop(body);
        if let Some(g) = grader {
            proc.end_input()?;
            grading
                .grade(g, &*self.jobs, &mut proc, &mut clean.buf)
                .await?;
            grading.log(task.index);
        }
        let mut result = proc.finish(&mut clean.buf, &mut rejected.buf)?;
        clean.close().await?;
        rejected.close().await?;
        let unique_keys = std::mem::take(&mut result.unique_keys);
        if !unique_keys.is_empty() && options.unique_repeats.is_none() {
            // Keys for the finalizer's exact `unique` pass, before the result that marks the
            // chunk's outputs complete.
            let parts = crate::unique::partitions_for(job.declared_size);
            self.objects
                .put(
                    &keys::part_key(&job.owner, &job.id, PartKind::Unique, task.index),
                    crate::unique::encode_chunk_keys(&unique_keys, parts),
                    "application/octet-stream",
                )
                .await?;
        }
        let encoded =
            serde_json::to_vec(&result).map_err(|e| PipelineError::Malformed(e.to_string()))?;
        self.objects
            .put(
                &keys::part_key(&job.owner, &job.id, PartKind::Result, task.index),
                encoded,
                "application/json",
            )
            .await?;
        Ok(result)
    }
}
