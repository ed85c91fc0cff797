//! Planning: an upload's S3 notification moves its job `awaiting_upload -> queued` with the
//! dialect, the header and the chunk plan, then hands the chunk tasks to the queue.

use tessera_engine::dialect::DialectOverrides;
use tessera_engine::error::EngineError;
use tessera_engine::split;

use super::{chunk_tasks, Pipeline, PipelineError};
use crate::job::{Job, JobState};
use crate::keys;
use crate::ledger::Plan;
use crate::notifications::{self, Notification};
use crate::task::QueueMessage;

/// Largest window the planner reads to find the end of the header record.
const MAX_SNIFF_BYTES: u64 = 8 * 1024 * 1024;

impl Pipeline {
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
                // A planner that died between the move to `processing` and the check below.
                JobState::Processing => self.hand_over_finalization_if_done(&job.id).await?,
                s => {
                    tracing::info!(job_id = %job.id, state = s.as_str(), "duplicate notification; job already planned")
                }
            }
        }
        Ok(())
    }

    /// An upload notification that reached the upload events' dead-letter queue: SQS delivered
    /// it `maxReceiveCount` (5) times and the planner never finished (it kept timing out or
    /// meeting a service error). A job still `awaiting_upload` or `queued` would wait forever:
    /// it fails `upload_attempts_exhausted`, which says to upload again. Jobs past planning, and
    /// messages no job matches, are left as they are (acknowledged).
    pub async fn dead_upload_message(&self, body: &str) -> Result<(), PipelineError> {
        let Ok(Notification::Records(records)) = notifications::parse(body) else {
            tracing::warn!("dead-lettered upload event that is not an S3 notification ignored");
            return Ok(());
        };
        for rec in records {
            let Some((owner, job_id)) = keys::parse_source_key(&rec.key) else {
                continue;
            };
            let Some(job) = self.jobs.get(&job_id).await? else {
                continue;
            };
            if job.owner != owner || rec.bucket != self.config.bucket {
                continue;
            }
            if !matches!(job.state, JobState::AwaitingUpload | JobState::Queued) {
                tracing::info!(job_id = %job.id, state = job.state.as_str(), "dead-lettered upload event for a planned job; nothing to do");
                continue;
            }
            tracing::error!(job_id = %job.id, "upload event exhausted its deliveries; failing the job");
            self.fail(
                &job,
                "upload_attempts_exhausted",
                "Tessera could not start processing this upload: planning it was tried repeatedly (5 deliveries) and never finished. Upload the file again as a new job; if it fails again, report the job id.".into(),
            )
            .await?;
        }
        Ok(())
    }

    pub(super) async fn plan(&self, job: &Job) -> Result<(), PipelineError> {
        let Some(head) = self.objects.head(&job.source_key).await? else {
            return self
                .fail(
                    job,
                    "upload_missing",
                    "The uploaded object is gone; create a new upload.".into(),
                )
                .await;
        };
        let size = head.size;
        if size != job.declared_size {
            // The object is not the declared file: it is deleted, not kept until the bucket's
            // expiry, so a declared 10 bytes cannot hold 5 GiB of storage. Deleted before the job
            // fails: if the delete fails, SQS redelivers and this runs again.
            self.objects
                .delete_keys(std::slice::from_ref(&job.source_key))
                .await?;
            tracing::info!(job_id = %job.id, size, declared = job.declared_size, "size mismatch; source deleted");
            return self
                .fail(
                    job,
                    "size_mismatch",
                    format!(
                        "The uploaded file is {size} bytes but {} bytes were declared; it was deleted. Upload the whole file again with its exact size.",
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
        let (sniffed, first) = loop {
            let first = self.objects.read_range(&job.source_key, 0, window).await?;
            // Off the async runtime: a header bomb must not stall the other messages. The
            // bytes stay for the model engine's cost estimate (a copy of at most 8 MiB).
            match super::sniff_off_runtime(first.clone(), size, DialectOverrides::default()).await {
                Ok(s) => break (s, first),
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
            source_etag: head.etag,
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
        let rules = match self.job_rules(&job).await {
            Ok(r) => r,
            Err(PipelineError::Rules { code, message }) => {
                return self.fail(&job, code, message).await
            }
            Err(e) => return Err(e),
        };
        if let Some(rules) = rules.filter(|r| !r.model_steps().is_empty()) {
            // The model steps' cost, estimated before any chunk runs.
            let data = first.get(sniffed.header_len as usize..).unwrap_or_default();
            let whole = first.len() as u64 >= size;
            let data_bytes = size.saturating_sub(sniffed.header_len);
            match self.model_plan(&rules, &sniffed.dialect, data, whole, data_bytes) {
                Ok(plan) => self.jobs.set_model_plan(&job.id, &plan).await?,
                Err((code, message)) => return self.fail(&job, code, message).await,
            }
        }
        if tasks.is_empty() {
            // Header only: nothing to hand out; finalize right here.
            return self.finalize(&job).await;
        }
        self.enqueue(&job).await
    }

    /// The cost limit, estimate and sample rates of the `model` steps, or why the job cannot
    /// run them (`cost_limit` with the figures; `model_not_configured`).
    fn model_plan(
        &self,
        rules: &tessera_engine::rules::CompiledRules,
        dialect: &tessera_engine::dialect::Dialect,
        data: &[u8],
        whole: bool,
        data_bytes: u64,
    ) -> Result<crate::ledger::ModelPlan, (&'static str, String)> {
        use crate::grading::{estimate, MAX_ROW_BYTES};
        use crate::rate::format_usd;
        let price = self
            .config
            .model_id
            .as_deref()
            .and_then(|m| self.config.model_limits.prices.get(m))
            .ok_or((
                "model_not_configured",
                "The workflow grades sentiment with the `model` engine, and no priced language \
                 model is configured here (TESSERA_MODEL_ID, TESSERA_MODEL_PRICES). Ask the \
                 operator to configure one, or use the `lexicon` engine."
                    .to_string(),
            ))?;
        let cfg = tessera_engine::parse::ParserConfig {
            delimiter: dialect.delimiter,
            quote: dialect.quote,
            max_field_bytes: 1 << 20,
            max_record_bytes: 16 << 20,
        };
        let mut plan = crate::ledger::ModelPlan {
            max_micro_usd: 0,
            estimate_micro_usd: 0,
            sample_rates: Vec::new(),
        };
        let mut parts = Vec::new();
        let mut graded = 0;
        for (c, name, sample_n, max_usd) in rules.model_specs() {
            let sample =
                tessera_engine::grading::ColumnSample::of(data, whole, cfg, c, MAX_ROW_BYTES);
            let e = estimate(&sample, data_bytes, sample_n, price);
            // Validation requires it; a document without one is limited to nothing.
            let max = (max_usd.unwrap_or(0.0) * 1e6).round().max(0.0) as u64;
            plan.max_micro_usd += max;
            plan.estimate_micro_usd += e.cost_micro_usd;
            plan.sample_rates.push(e.sample_rate);
            graded += e.graded_rows;
            parts.push(format!(
                "`{name}`: {} (~{} rows, {} input and {} output tokens), limit {}",
                format_usd(e.cost_micro_usd),
                e.graded_rows,
                e.input_tokens,
                e.output_tokens,
                format_usd(max)
            ));
            if e.cost_micro_usd > max {
                return Err((
                    "cost_limit",
                    format!(
                        "Grading column `{name}` with the model is estimated at {} (~{} of \
                         ~{} rows, {} input and {} output tokens at the price of {}), above the \
                         workflow's max_cost_usd of {}. Raise max_cost_usd, or grade a sample \
                         (\"sample\": N rows) of the column. Nothing was graded or charged.",
                        format_usd(e.cost_micro_usd),
                        e.graded_rows,
                        e.rows,
                        e.input_tokens,
                        e.output_tokens,
                        self.config.model_id.as_deref().unwrap_or_default(),
                        format_usd(max)
                    ),
                ));
            }
        }
        tracing::info!(
            estimate_micro_usd = plan.estimate_micro_usd,
            max_micro_usd = plan.max_micro_usd,
            graded_rows = graded,
            steps = %parts.join("; "),
            "model steps estimated"
        );
        Ok(plan)
    }

    /// Sends the chunk tasks of a planned job and moves it to `processing`.
    pub(super) async fn enqueue(&self, job: &Job) -> Result<(), PipelineError> {
        let msgs: Vec<QueueMessage> = chunk_tasks(job)
            .into_iter()
            .map(QueueMessage::Chunk)
            .collect();
        if msgs.is_empty() {
            return self.finalize(job).await;
        }
        self.queue.send_all(&msgs).await?;
        self.jobs.mark_processing(&job.id).await?;
        // Chunk workers accept tasks while the job is still `queued`; if they all finished before
        // the move to `processing`, none of them could finalize, so check here too, and leave
        // the finalizing to a chunk worker (a dead planner's finalization was never taken over).
        self.hand_over_finalization_if_done(&job.id).await
    }
}
