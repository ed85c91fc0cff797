//! The job: what a user uploaded and what Tessera has done with it. Domain types only; the
//! DynamoDB mapping lives in `store::jobs`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_engine::dialect::Dialect;

/// Lifecycle of a job. Transitions only move forward (conditional writes enforce it):
/// `awaiting_upload -> queued -> processing -> finalizing -> completed`, and `failed` /
/// `cancelled` from any non-final state. A final state never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    AwaitingUpload,
    Queued,
    Processing,
    Finalizing,
    Completed,
    Failed,
    Cancelled,
}

impl JobState {
    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::AwaitingUpload => "awaiting_upload",
            JobState::Queued => "queued",
            JobState::Processing => "processing",
            JobState::Finalizing => "finalizing",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "awaiting_upload" => JobState::AwaitingUpload,
            "queued" => JobState::Queued,
            "processing" => JobState::Processing,
            "finalizing" => JobState::Finalizing,
            "completed" => JobState::Completed,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }

    /// Completed, failed and cancelled never change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

/// An error recorded on a job: a stable code and a message that is safe to show the owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

impl JobError {
    /// An error with a stable `code` and a `message` safe to show the owner.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        JobError {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// True when `updated_at` (RFC 3339) is older than `age`; false when it does not parse.
pub fn is_stale(updated_at: &str, age: std::time::Duration) -> bool {
    Timestamp::parse(updated_at).is_some_and(|t| t.is_older_than(age))
}

/// A moment, UTC, to the millisecond. Written as RFC 3339 with three decimals and `Z`
/// (`2026-12-03T19:38:57.123Z`), so the written forms sort like the moments and a moment read
/// back writes the same text (conditional writes compare it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(time::OffsetDateTime);

impl Timestamp {
    /// Now, truncated to the millisecond.
    pub fn now() -> Timestamp {
        let now = time::OffsetDateTime::now_utc();
        Timestamp(now.replace_millisecond(now.millisecond()).unwrap_or(now))
    }

    /// Any RFC 3339 moment, in UTC, truncated to the millisecond; `None` if it is not one.
    pub fn parse(s: &str) -> Option<Timestamp> {
        let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .ok()?
            .to_offset(time::UtcOffset::UTC);
        Some(Timestamp(
            t.replace_millisecond(t.millisecond()).unwrap_or(t),
        ))
    }

    /// Whether more than `age` has passed since this moment.
    pub fn is_older_than(self, age: std::time::Duration) -> bool {
        time::OffsetDateTime::now_utc() - self.0 > age
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fmt =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
        let base = self.0.format(&fmt).map_err(|_| std::fmt::Error)?;
        write!(f, "{base}.{:03}Z", self.0.millisecond())
    }
}

/// Where a job's results are, once it has completed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultKeys {
    pub profile: Option<String>,
    pub clean: Option<String>,
    pub rejected: Option<String>,
    pub manifest: Option<String>,
}

/// The job record (the domain type; `store::jobs::JobRecord` is its stored form).
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub owner: String,
    pub state: JobState,
    pub filename: String,
    pub content_type: String,
    pub declared_size: u64,
    /// S3 key of the uploaded source object (made by the server).
    pub source_key: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Facts learned by the planner.
    pub dialect: Option<Dialect>,
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
    pub scored_rows: u64,
    /// Rows of `model` steps written `not_graded` because the cost limit was reached.
    pub not_graded_rows: u64,
    /// The `model` steps' cost limit (micro-dollars; 0: the job has no model step), the
    /// planner's estimate, and per model step the share of rows graded (`sample`).
    pub model_max_micro_usd: u64,
    pub model_estimate_micro_usd: u64,
    pub model_sample_rates: Vec<f64>,
    /// The `model` steps' spending so far, added by chunk workers (`ADD`): tokens, cost
    /// (micro-dollars, the price table), time waited for capacity (ms).
    pub model_input_tokens: u64,
    pub model_output_tokens: u64,
    pub model_cost_micro_usd: u64,
    pub model_wait_ms: u64,
    pub error: Option<JobError>,
    pub results: ResultKeys,
    /// Epoch seconds after which DynamoDB deletes the record (TTL).
    pub expires_at: i64,
    /// The S3 multipart upload of the source, when the upload is multipart (`None`: one PUT).
    pub upload_id: Option<String>,
    /// Part size and count of a multipart upload (0 for a single PUT).
    pub part_size: u64,
    pub part_count: u32,
    /// Set once `CompleteMultipartUpload` succeeded, so a second `complete` gets the same answer
    /// even before the planner has moved the job past `awaiting_upload`.
    pub upload_completed: bool,
    /// The source object's ETag the planner saw (HeadObject): chunk reads send it as `If-Match`,
    /// so an object replaced after planning (even by one of the same size) fails the job
    /// `source_changed` instead of mixing two files. `None` for jobs planned before it existed.
    pub source_etag: Option<String>,
    /// Chunks whose failure failed the job. Non-empty means the owner may retry the job.
    pub failed_chunks: Vec<u32>,
    /// How many times the owner retried the job.
    pub retries: u32,
    /// The workflow version the job runs (resolved at upload time), if the upload named one.
    pub workflow: Option<WorkflowRef>,
    /// A whole-file dry run of proposed rules: the job runs them over another job's file.
    pub rules_trial: Option<RulesTrial>,
    /// While finalizing with `unique` rules: the chunks whose re-run (with the repeats found by
    /// the second pass) has not reported back, keyed by chunk index. `None`: no re-runs were
    /// planned; empty: all of them are done. Written only by the job store's own updates.
    pub unique_waiting: Option<std::collections::BTreeMap<String, bool>>,
    /// How many chunks were re-run for `unique` repeats (for the manifest).
    pub unique_reruns: u32,
    /// While finalizing with `unique` rules: the search groups of the second pass that have not
    /// reported back (`None`: the search was not started; empty: it is done).
    pub unique_search_waiting: Option<std::collections::BTreeMap<String, bool>>,
    /// How many search groups the second pass had.
    pub unique_searches: u32,
    /// While finalizing a large rejected output: the groups of rejected parts whose rebasing (by
    /// chunk workers) has not reported back (`None`: not fanned out; empty: all done).
    pub rebase_waiting: Option<std::collections::BTreeMap<String, bool>>,
    /// How many rebase groups were fanned out.
    pub rebase_groups: u32,
}

/// The item numbers of a `unique` step's waiting map (`Job::unique_search_waiting`,
/// `Job::unique_waiting`), and whether one of them is still waiting.
pub fn waiting_items(waiting: &std::collections::BTreeMap<String, bool>) -> Vec<u32> {
    waiting.keys().filter_map(|k| k.parse().ok()).collect()
}

/// Whether item `index` of a `unique` step (its waiting map, if the step was started) has
/// not reported yet.
pub fn is_waiting(waiting: Option<&std::collections::BTreeMap<String, bool>>, index: u32) -> bool {
    waiting.is_some_and(|w| w.contains_key(&index.to_string()))
}

/// Rules not saved as a workflow, run over a completed job's file to count what they would
/// reject (`POST /v1/rules/dry-runs`): the new job reads the other job's source object with
/// its plan, and its document travels in its record (at most a workflow document's size).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesTrial {
    /// The job whose file the rules run over.
    pub of_job: String,
    /// The rule document (JSON), checked against that job's header and profile.
    pub rules_json: String,
}

/// Exactly which workflow version a job runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorkflowRef {
    pub id: String,
    pub version: u32,
}

/// What owners see of a job (`GET /v1/jobs/{id}`, WebSocket pushes). No internal keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobSnapshot {
    pub job_id: String,
    pub state: JobState,
    pub filename: String,
    pub size: u64,
    pub created_at: String,
    pub updated_at: String,
    pub progress: Progress,
    pub rows: u64,
    pub rejected_rows: u64,
    /// Rows whose text a `derive` sentiment step scored so far (summed over the steps);
    /// absent while none has been (and for jobs without such a step).
    #[serde(skip_serializing_if = "is_zero_u64", default)]
    pub scored_rows: u64,
    /// Rows of `model` sentiment steps not graded because the job's cost limit was reached
    /// (written with the label `not_graded`); absent while none.
    #[serde(skip_serializing_if = "is_zero_u64", default)]
    pub not_graded_rows: u64,
    /// The `model` sentiment engine's spending (jobs with a `model` step only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub model: Option<ModelProgress>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub columns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dialect: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<JobError>,
    /// Chunks whose failure failed the job (`POST /v1/jobs/{id}/retry` re-runs them).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub failed_chunks: Vec<u32>,
    /// Times the owner retried the job.
    #[serde(skip_serializing_if = "is_zero", default)]
    pub retries: u32,
    /// The workflow version the job runs.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub workflow: Option<WorkflowRef>,
    /// A rules dry run: the job whose file it runs the proposed rules over.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dry_run_of: Option<String>,
}

/// What a job's `model` sentiment steps have used so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelProgress {
    /// Tokens sent to the model and received (the replies' usage).
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// What they cost, US dollars (the deployment's price table).
    pub cost_usd: f64,
    /// The job's limit (the workflow's `max_cost_usd`) and the estimate made before the run.
    pub max_cost_usd: f64,
    pub estimated_cost_usd: f64,
    /// Time chunks waited for model capacity (rate limits, throttling), milliseconds.
    pub waited_ms: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// Progress in bytes and chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Progress {
    pub bytes_total: u64,
    pub bytes_done: u64,
    pub chunks_total: u32,
    pub chunks_done: u32,
    /// 0.0 to 1.0.
    pub fraction: f64,
}

impl Job {
    /// A new job of `owner`'s upload of `filename`, waiting for it: no plan, no progress, no
    /// results, no workflow, a single PUT. The caller sets what else it knows with struct
    /// update syntax (`Job { upload_id, workflow, ..Job::awaiting_upload(..) }`).
    pub fn awaiting_upload(
        id: &str,
        owner: &str,
        filename: &str,
        content_type: &str,
        declared_size: u64,
        expires_at: i64,
    ) -> Job {
        let now = Timestamp::now();
        Job {
            id: id.to_string(),
            owner: owner.to_string(),
            state: JobState::AwaitingUpload,
            filename: filename.to_string(),
            content_type: content_type.to_string(),
            declared_size,
            source_key: crate::keys::source_key(owner, id),
            created_at: now,
            updated_at: now,
            dialect: None,
            columns: vec![],
            header_len: 0,
            chunk_size: 0,
            chunk_count: 0,
            chunks_done: 0,
            bytes_done: 0,
            rows: 0,
            rejected_rows: 0,
            scored_rows: 0,
            not_graded_rows: 0,
            model_max_micro_usd: 0,
            model_estimate_micro_usd: 0,
            model_sample_rates: vec![],
            model_input_tokens: 0,
            model_output_tokens: 0,
            model_cost_micro_usd: 0,
            model_wait_ms: 0,
            error: None,
            results: ResultKeys::default(),
            expires_at,
            upload_id: None,
            part_size: 0,
            part_count: 0,
            upload_completed: false,
            failed_chunks: vec![],
            retries: 0,
            source_etag: None,
            workflow: None,
            rules_trial: None,
            unique_waiting: None,
            unique_reruns: 0,
            unique_search_waiting: None,
            unique_searches: 0,
            rebase_waiting: None,
            rebase_groups: 0,
        }
    }

    /// The owner-facing view.
    pub fn snapshot(&self) -> JobSnapshot {
        let fraction = match self.state {
            JobState::Completed => 1.0,
            _ if self.chunk_count == 0 => 0.0,
            _ => (self.chunks_done as f64 / self.chunk_count as f64).min(1.0),
        };
        JobSnapshot {
            job_id: self.id.clone(),
            state: self.state,
            filename: self.filename.clone(),
            size: self.declared_size,
            created_at: self.created_at.to_string(),
            updated_at: self.updated_at.to_string(),
            progress: Progress {
                bytes_total: self.declared_size,
                bytes_done: self.bytes_done.min(self.declared_size),
                chunks_total: self.chunk_count,
                chunks_done: self.chunks_done.min(self.chunk_count),
                fraction,
            },
            rows: self.rows,
            rejected_rows: self.rejected_rows,
            scored_rows: self.scored_rows,
            not_graded_rows: self.not_graded_rows,
            model: (self.model_max_micro_usd > 0).then(|| {
                let usd = |m: u64| m as f64 / 1e6;
                ModelProgress {
                    input_tokens: self.model_input_tokens,
                    output_tokens: self.model_output_tokens,
                    cost_usd: usd(self.model_cost_micro_usd),
                    max_cost_usd: usd(self.model_max_micro_usd),
                    estimated_cost_usd: usd(self.model_estimate_micro_usd),
                    waited_ms: self.model_wait_ms,
                }
            }),
            columns: self.columns.clone(),
            dialect: self
                .dialect
                .as_ref()
                .and_then(|d| serde_json::to_value(d).ok()),
            error: self.error.clone(),
            failed_chunks: self.failed_chunks.clone(),
            retries: self.retries,
            workflow: self.workflow.clone(),
            dry_run_of: self.rules_trial.as_ref().map(|t| t.of_job.clone()),
        }
    }

    /// Whether the job was last changed more than `age` ago (a finaliser that stopped).
    pub fn is_stale(&self, age: std::time::Duration) -> bool {
        self.updated_at.is_older_than(age)
    }

    /// Whether the owner may retry the job: it failed because of chunks (not of its data as a
    /// whole, e.g. a size mismatch), so re-running those chunks can complete it.
    pub fn is_retryable(&self) -> bool {
        self.state == JobState::Failed && !self.failed_chunks.is_empty()
    }
}

/// Reads a completed job's profile (`keys::profile_key`): `Malformed` if it is not one.
pub async fn read_profile(
    objects: &dyn crate::ports::Objects,
    job: &Job,
) -> Result<tessera_engine::profile::ProfileReport, crate::ports::StoreError> {
    let bytes = objects.read_all(&crate::keys::profile_key(job)).await?;
    serde_json::from_slice(&bytes).map_err(|e| crate::ports::StoreError::Malformed {
        what: "profile",
        detail: format!("job {}: {e}", job.id),
    })
}

/// Current time as RFC 3339 (UTC, millisecond precision, so it sorts lexically).
pub fn now_rfc3339() -> String {
    Timestamp::now().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip_and_finality() {
        for s in [
            JobState::AwaitingUpload,
            JobState::Queued,
            JobState::Processing,
            JobState::Finalizing,
            JobState::Completed,
            JobState::Failed,
            JobState::Cancelled,
        ] {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        assert!(JobState::Failed.is_final() && !JobState::Processing.is_final());
        assert_eq!(JobState::parse("done"), None);
    }

    #[tokio::test]
    async fn a_profile_is_read_from_its_key_and_a_broken_one_is_malformed() {
        use crate::ports::Objects;
        let objects = crate::memory::MemoryObjects::default();
        let job = Job::awaiting_upload("j1", "alice", "a.csv", "text/csv", 3, 0);
        let key = crate::keys::profile_key(&job);
        let opts = tessera_engine::profile::ProfileOptions::default();
        let report = tessera_engine::profile::ProfileState::new(vec!["a".into()], &opts).report();
        let body = serde_json::to_vec(&report).unwrap();
        objects.put(&key, body, "application/json").await.unwrap();
        assert_eq!(read_profile(&objects, &job).await.unwrap(), report);
        objects
            .put(&key, b"{".to_vec(), "application/json")
            .await
            .unwrap();
        assert!(matches!(
            read_profile(&objects, &job).await,
            Err(crate::ports::StoreError::Malformed {
                what: "profile",
                ..
            })
        ));
    }

    #[test]
    fn timestamps_sort_lexically() {
        let a = now_rfc3339();
        assert_eq!(a.len(), "2026-11-26T08:00:00.000Z".len(), "{a}");
        assert!(a.ends_with('Z'));
    }
}
