//! Whole-file dry runs of proposed rules: a new job that runs a rule document (not saved as a
//! workflow) over a completed job's file, on the chunk workers like any job, so its counts are
//! the counts a real job with those rules would give. It reads the other job's source object
//! with that job's plan (same bytes, same dialect, same chunks), so no upload and no planning.
//!
//! Not here: checking the document (`rules::check_rules`), the routes (functions/agent).

use std::collections::BTreeMap;

use serde::Serialize;

use super::Agent;
use crate::job::{now_rfc3339, Job, JobError, JobState, Progress, ResultKeys, RulesTrial};
use crate::pipeline::chunk_tasks;
use crate::store::StoreError;
use crate::task::QueueMessage;

/// What a dry run found (`GET /v1/rules/dry-runs/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileDryRun {
    pub dry_run_id: String,
    /// The job whose file the rules ran over.
    pub job_id: String,
    /// `queued` .. `completed` / `failed` / `cancelled`, as jobs.
    pub state: JobState,
    pub progress: Progress,
    /// Records read (exact once completed).
    pub rows: u64,
    /// Records every rule passes (what a job's clean output would hold).
    pub clean_rows: u64,
    /// Records the rules (or the CSV itself: a record that does not parse) would reject.
    pub rejected_rows: u64,
    /// Violations per rule id, once completed (flagging rules included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violations: Option<BTreeMap<String, u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// The dry run is a job: its outputs (the rows the rules would reject, in `rejected.csv`)
    /// are read like any job's.
    pub job_url: String,
}

impl Agent {
    /// Starts a dry run of `rules_json` (already checked against `of`'s header and profile)
    /// over the file of `of`, a completed job. Returns the new job, `processing`.
    pub async fn start_file_dry_run(
        &self,
        of: &Job,
        rules_json: String,
    ) -> Result<Job, StoreError> {
        let now = now_rfc3339();
        let id = uuid::Uuid::new_v4().to_string();
        let trial = Job {
            id: id.clone(),
            state: JobState::Processing,
            filename: format!("{} (rules dry run)", of.filename),
            created_at: now.clone(),
            updated_at: now,
            chunks_done: 0,
            bytes_done: 0,
            rows: 0,
            rejected_rows: 0,
            error: None,
            results: ResultKeys::default(),
            upload_id: None,
            part_size: 0,
            part_count: 0,
            upload_completed: true,
            failed_chunks: vec![],
            retries: 0,
            workflow: None,
            rules_trial: Some(RulesTrial {
                of_job: of.id.clone(),
                rules_json,
            }),
            unique_waiting: None,
            unique_reruns: 0,
            unique_search_waiting: None,
            unique_searches: 0,
            // The same object, owner, plan and expiry as the job it tries the rules on.
            ..of.clone()
        };
        // Created `processing` before any task is sent: the last chunk to finish finalizes it.
        self.jobs.create(&trial).await?;
        let msgs: Vec<QueueMessage> = chunk_tasks(&trial)
            .into_iter()
            .map(QueueMessage::Chunk)
            .collect();
        self.chunk_queue.send_all(&msgs).await?;
        tracing::info!(job_id = %trial.id, of_job = %of.id, chunks = msgs.len(), "rules dry run started");
        Ok(trial)
    }

    /// The report of dry run `job` (a job with `rules_trial`), with its violations once
    /// completed (from its manifest).
    pub async fn file_dry_run_report(&self, job: &Job) -> Result<FileDryRun, StoreError> {
        let job = self.jobs.with_progress(job.clone()).await?;
        let violations = match (&job.state, &job.results.manifest) {
            (JobState::Completed, Some(key)) => {
                let manifest: serde_json::Value =
                    serde_json::from_slice(&self.objects.read_all(key).await?).map_err(|e| {
                        StoreError::Malformed {
                            what: "manifest",
                            detail: e.to_string(),
                        }
                    })?;
                Some(
                    serde_json::from_value(manifest["violations"].clone()).map_err(|e| {
                        StoreError::Malformed {
                            what: "manifest violations",
                            detail: e.to_string(),
                        }
                    })?,
                )
            }
            _ => None,
        };
        let snap = job.snapshot();
        Ok(FileDryRun {
            dry_run_id: job.id.clone(),
            job_id: job
                .rules_trial
                .as_ref()
                .map(|t| t.of_job.clone())
                .unwrap_or_default(),
            state: job.state,
            progress: snap.progress,
            rows: job.rows + job.rejected_rows,
            clean_rows: job.rows,
            rejected_rows: job.rejected_rows,
            violations,
            error: job.error.clone(),
            job_url: format!("/v1/jobs/{}", job.id),
        })
    }
}
