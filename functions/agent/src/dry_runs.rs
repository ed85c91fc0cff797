//! Whole-file dry runs of rules not saved (`tessera_shared::agent::dry_run`):
//! - `POST /v1/rules/dry-runs {job_id, rules}` -> 202 `{dry_run_id, job_id, state, status_url,
//!   job_url}`: the document is checked against the job's header and profile as saving a
//!   workflow would (422 `invalid_rules` with every problem's JSON path), then run over the whole
//!   file as a new job.
//! - `GET /v1/rules/dry-runs/{id}` -> its state, progress, rows, rejected rows and, once
//!   completed, the violations per rule.
//!
//! `POST /v1/rules/generate {..., "dry_run": "file"}` starts one for the proposal it answers.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_shared::agent::dry_run::FileDryRun;
use tessera_shared::error::ApiError;
use tessera_shared::http::{Caller, JsonBody};
use tessera_shared::job::Job;

use crate::{completed_job, AgentState};

/// Largest rule document a dry run takes (the workflow routes' limit).
pub const MAX_RULES_BYTES: usize = 256 * 1024;

/// `POST /v1/rules/dry-runs` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDryRun {
    pub job_id: String,
    pub rules: Value,
}

/// The problems of a document as the workflow routes answer them.
pub fn invalid_rules(errs: &[tessera_shared::engine::rules::ValidationError]) -> ApiError {
    let first = errs
        .first()
        .map(|e| e.to_string())
        .unwrap_or_else(|| "invalid".into());
    ApiError::unprocessable(
        "invalid_rules",
        format!(
            "The rule document does not fit this job's data: {} problem(s); the first: {first}. Each is in error.details.errors with its JSON path.",
            errs.len()
        ),
    )
    .with_details(json!({ "errors": errs }))
}

/// Starts a dry run of `rules` (checked here) over completed job `of`.
pub async fn start(st: &AgentState, of: &Job, rules: &Value) -> Result<Job, ApiError> {
    let text = serde_json::to_string(rules).map_err(|e| ApiError::internal(&e))?;
    if text.len() > MAX_RULES_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "rules_too_large",
            format!(
                "The rule document is {} bytes; at most {MAX_RULES_BYTES} are accepted.",
                text.len()
            ),
        ));
    }
    if of.chunk_count == 0 {
        return Err(ApiError::unprocessable(
            "no_records",
            "The job's file has a header and no records: there is nothing to run the rules over.",
        ));
    }
    let profile = st.agent.profile(of).await?;
    tessera_shared::agent::rules::check_rules(rules, &profile, st.agent.config.mask_key.as_deref())
        .map_err(|errs| invalid_rules(&errs))?;
    Ok(st.agent.start_file_dry_run(of, text).await?)
}

/// Where a started dry run is followed.
pub fn started_json(trial: &Job, of: &Job) -> Value {
    json!({
        "dry_run_id": trial.id,
        "job_id": of.id,
        "state": trial.state,
        "status_url": format!("/v1/rules/dry-runs/{}", trial.id),
        "job_url": format!("/v1/jobs/{}", trial.id),
    })
}

pub async fn create(
    State(st): State<AgentState>,
    caller: Caller,
    JsonBody(req): JsonBody<CreateDryRun>,
) -> Result<Response, ApiError> {
    let of = completed_job(&st, &caller, &req.job_id).await?;
    let trial = start(&st, &of, &req.rules).await?;
    let body = started_json(&trial, &of);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/v1/rules/dry-runs/{}", trial.id))],
        Json(body),
    )
        .into_response())
}

pub async fn get(
    State(st): State<AgentState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<FileDryRun>, ApiError> {
    // Another owner's dry run, or a job that is not one, is a 404 like a missing one.
    let job = tessera_shared::control::owned_job(&st.agent.jobs, &caller.owner, &id)
        .await
        .map_err(|_| ApiError::not_found("dry run"))?;
    if job.rules_trial.is_none() {
        return Err(ApiError::not_found("dry run"));
    }
    Ok(Json(st.agent.file_dry_run_report(&job).await?))
}
