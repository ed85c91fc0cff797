//! The job's stored form: [`JobRecord`], the attributes of its DynamoDB item beside the keys,
//! and its conversions to and from the domain [`Job`] (tested both ways below). Not here: the
//! keys and the conditional updates (`super`).

use serde::{Deserialize, Serialize};
use tessera_engine::dialect::Dialect;

use crate::job::{Job, JobError, JobState, ResultKeys, RulesTrial, Timestamp, WorkflowRef};
use crate::ports::StoreError;

/// A job as its DynamoDB item stores it (the attributes beside the keys): timestamps as RFC 3339
/// text, the dialect as the JSON the planner wrote. Optional attributes default, so items written
/// before they existed still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub owner: String,
    pub state: JobState,
    pub filename: String,
    pub content_type: String,
    pub declared_size: u64,
    /// S3 key of the uploaded source object (made by the server).
    pub source_key: String,
    pub created_at: String,
    pub updated_at: String,
    /// Facts learned by the planner.
    pub dialect: Option<serde_json::Value>,
    pub columns: Vec<String>,
    pub header_len: u64,
    pub chunk_size: u64,
    pub chunk_count: u32,
    /// Progress counters, added to by chunk workers; exact once the job is completed.
    pub chunks_done: u32,
    pub bytes_done: u64,
    pub rows: u64,
    pub rejected_rows: u64,
    /// Texts scored by the workflow's `derive` sentiment steps (progress, then exact).
    #[serde(default)]
    pub scored_rows: u64,
    /// Rows of `model` steps written `not_graded` because the cost limit was reached.
    #[serde(default)]
    pub not_graded_rows: u64,
    /// The `model` steps' cost limit and estimate (micro-dollars), per step the sample rate.
    #[serde(default)]
    pub model_max_micro_usd: u64,
    #[serde(default)]
    pub model_estimate_micro_usd: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_sample_rates: Vec<f64>,
    /// The `model` steps' spending so far (`ADD` by chunk workers).
    #[serde(default)]
    pub model_input_tokens: u64,
    #[serde(default)]
    pub model_output_tokens: u64,
    #[serde(default)]
    pub model_cost_micro_usd: u64,
    #[serde(default)]
    pub model_wait_ms: u64,
    pub error: Option<JobError>,
    pub results: ResultKeys,
    /// Epoch seconds after which DynamoDB deletes the record (TTL).
    pub expires_at: i64,
    /// The S3 multipart upload of the source, when the upload is multipart (`None`: one PUT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// Part size and count of a multipart upload (0 for a single PUT).
    #[serde(default)]
    pub part_size: u64,
    #[serde(default)]
    pub part_count: u32,
    /// Set once `CompleteMultipartUpload` succeeded, so a second `complete` gets the same answer
    /// even before the planner has moved the job past `awaiting_upload`.
    #[serde(default)]
    pub upload_completed: bool,
    /// The source object's ETag the planner saw (HeadObject): chunk reads send it as `If-Match`,
    /// so an object replaced after planning (even by one of the same size) fails the job
    /// `source_changed` instead of mixing two files. `None` for jobs planned before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_etag: Option<String>,
    /// Chunks whose failure failed the job. Non-empty means the owner may retry the job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_chunks: Vec<u32>,
    /// How many times the owner retried the job.
    #[serde(default)]
    pub retries: u32,
    /// The workflow version the job runs (resolved at upload time), if the upload named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowRef>,
    /// A whole-file dry run of proposed rules: the job runs them over another job's file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_trial: Option<RulesTrial>,
    /// While finalizing with `unique` rules: the chunks whose re-run (with the repeats found by
    /// the second pass) has not reported back, keyed by chunk index. `None`: no re-runs were
    /// planned; empty: all of them are done. Written only by the job store's own updates.
    #[serde(default, skip_serializing)]
    pub unique_waiting: Option<std::collections::BTreeMap<String, bool>>,
    /// How many chunks were re-run for `unique` repeats (for the manifest).
    #[serde(default, skip_serializing)]
    pub unique_reruns: u32,
    /// While finalizing with `unique` rules: the search groups of the second pass that have not
    /// reported back (`None`: the search was not started; empty: it is done).
    #[serde(default, skip_serializing)]
    pub unique_search_waiting: Option<std::collections::BTreeMap<String, bool>>,
    /// How many search groups the second pass had.
    #[serde(default, skip_serializing)]
    pub unique_searches: u32,
    /// While finalizing a large rejected output: the rebase groups not reported back.
    #[serde(default, skip_serializing)]
    pub rebase_waiting: Option<std::collections::BTreeMap<String, bool>>,
    /// How many rebase groups were fanned out.
    #[serde(default, skip_serializing)]
    pub rebase_groups: u32,
}

impl From<&Job> for JobRecord {
    fn from(job: &Job) -> Self {
        JobRecord {
            id: job.id.clone(),
            owner: job.owner.clone(),
            state: job.state,
            filename: job.filename.clone(),
            content_type: job.content_type.clone(),
            declared_size: job.declared_size,
            source_key: job.source_key.clone(),
            created_at: job.created_at.to_string(),
            updated_at: job.updated_at.to_string(),
            dialect: job.dialect.as_ref().map(dialect_value),
            columns: job.columns.clone(),
            header_len: job.header_len,
            chunk_size: job.chunk_size,
            chunk_count: job.chunk_count,
            chunks_done: job.chunks_done,
            bytes_done: job.bytes_done,
            rows: job.rows,
            rejected_rows: job.rejected_rows,
            scored_rows: job.scored_rows,
            not_graded_rows: job.not_graded_rows,
            model_max_micro_usd: job.model_max_micro_usd,
            model_estimate_micro_usd: job.model_estimate_micro_usd,
            model_input_tokens: job.model_input_tokens,
            model_output_tokens: job.model_output_tokens,
            model_cost_micro_usd: job.model_cost_micro_usd,
            model_wait_ms: job.model_wait_ms,
            model_sample_rates: job.model_sample_rates.clone(),
            error: job.error.clone(),
            results: job.results.clone(),
            expires_at: job.expires_at,
            upload_id: job.upload_id.clone(),
            part_size: job.part_size,
            part_count: job.part_count,
            upload_completed: job.upload_completed,
            source_etag: job.source_etag.clone(),
            failed_chunks: job.failed_chunks.clone(),
            retries: job.retries,
            workflow: job.workflow.clone(),
            rules_trial: job.rules_trial.clone(),
            unique_waiting: job.unique_waiting.clone(),
            unique_reruns: job.unique_reruns,
            unique_search_waiting: job.unique_search_waiting.clone(),
            unique_searches: job.unique_searches,
            rebase_waiting: job.rebase_waiting.clone(),
            rebase_groups: job.rebase_groups,
        }
    }
}

impl TryFrom<JobRecord> for Job {
    type Error = StoreError;

    /// Fails (`Malformed`) only on an item no version of Tessera wrote: a timestamp that is not
    /// RFC 3339.
    fn try_from(r: JobRecord) -> Result<Self, StoreError> {
        let dialect = r.dialect.as_ref().and_then(|v| dialect(&r.id, v));
        Ok(Job {
            id: r.id,
            owner: r.owner,
            state: r.state,
            filename: r.filename,
            content_type: r.content_type,
            declared_size: r.declared_size,
            source_key: r.source_key,
            created_at: timestamp(&r.created_at, "created_at")?,
            updated_at: timestamp(&r.updated_at, "updated_at")?,
            dialect,
            columns: r.columns,
            header_len: r.header_len,
            chunk_size: r.chunk_size,
            chunk_count: r.chunk_count,
            chunks_done: r.chunks_done,
            bytes_done: r.bytes_done,
            rows: r.rows,
            rejected_rows: r.rejected_rows,
            scored_rows: r.scored_rows,
            not_graded_rows: r.not_graded_rows,
            model_max_micro_usd: r.model_max_micro_usd,
            model_estimate_micro_usd: r.model_estimate_micro_usd,
            model_input_tokens: r.model_input_tokens,
            model_output_tokens: r.model_output_tokens,
            model_cost_micro_usd: r.model_cost_micro_usd,
            model_wait_ms: r.model_wait_ms,
            model_sample_rates: r.model_sample_rates,
            error: r.error,
            results: r.results,
            expires_at: r.expires_at,
            upload_id: r.upload_id,
            part_size: r.part_size,
            part_count: r.part_count,
            upload_completed: r.upload_completed,
            source_etag: r.source_etag,
            failed_chunks: r.failed_chunks,
            retries: r.retries,
            workflow: r.workflow,
            rules_trial: r.rules_trial,
            unique_waiting: r.unique_waiting,
            unique_reruns: r.unique_reruns,
            unique_search_waiting: r.unique_search_waiting,
            unique_searches: r.unique_searches,
            rebase_waiting: r.rebase_waiting,
            rebase_groups: r.rebase_groups,
        })
    }
}

fn dialect_value(d: &Dialect) -> serde_json::Value {
    serde_json::to_value(d).unwrap_or_default()
}

/// The stored dialect, `None` when it is null or not a dialect: such a job reads (as it always
/// did) and fails `Malformed` where a chunk needs the dialect, not wherever the job is read.
fn dialect(id: &str, v: &serde_json::Value) -> Option<Dialect> {
    if v.is_null() {
        return None;
    }
    serde_json::from_value(v.clone())
        .inspect_err(|e| tracing::warn!(job_id = id, error = %e, "stored dialect is not one"))
        .ok()
}

fn timestamp(s: &str, name: &str) -> Result<Timestamp, StoreError> {
    Timestamp::parse(s).ok_or_else(|| malformed(format!("{name} is not RFC 3339: {s:?}")))
}

fn malformed(detail: String) -> StoreError {
    StoreError::Malformed {
        what: "job",
        detail,
    }
}

#[cfg(test)]
mod tests;
