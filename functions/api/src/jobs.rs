//! Job control: `GET /v1/jobs` (the caller's jobs, newest first, by state, with a cursor),
//! `POST /v1/jobs/{id}/cancel`, `POST /v1/jobs/{id}/retry`, and `GET /v1/jobs/{id}/profile`
//! (a completed job's profile.json, as finalization stored it).
//!
//! Not here: `GET /v1/jobs/{id}` (the status function).

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tessera_shared::error::ApiError;
use tessera_shared::http::{Caller, QueryParams};
use tessera_shared::job::{Job, JobSnapshot, JobState};
use tessera_shared::store::jobs::OwnerPageKey;

use tessera_shared::control;

use crate::{conflict, cursor, owned_job, ApiState};

/// `GET /v1/jobs` query. Strings, so every bad value gets a coded answer.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

/// `GET /v1/jobs` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct JobList {
    pub jobs: Vec<JobSnapshot>,
    /// Pass as `?cursor=` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_cursor: Option<String>,
}

/// The opaque cursor ([`crate::cursor`]) of the owner index key of the last job returned.
pub fn encode_cursor(key: &OwnerPageKey) -> String {
    cursor::encode(&serde_json::to_vec(key).expect("a key of strings serialises"))
}

/// Decodes a cursor made by [`encode_cursor`] for `owner`; anything else is `invalid_cursor`.
pub fn decode_cursor(c: &str, owner: &str) -> Result<OwnerPageKey, ApiError> {
    let key: OwnerPageKey =
        serde_json::from_slice(&cursor::decode(c)?).map_err(|_| cursor::invalid())?;
    if !key.belongs_to(owner) {
        return Err(cursor::invalid());
    }
    Ok(key)
}

/// `GET /v1/jobs?state=&limit=&cursor=`.
pub async fn list_jobs(
    State(st): State<ApiState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<JobList>, ApiError> {
    let limit = match q.limit.as_deref() {
        None => 50,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                ApiError::unprocessable("invalid_limit", "`limit` must be between 1 and 100.")
            })?,
    };
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(v) => Some(JobState::parse(v).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_state",
                format!("`state` {v:?} is not a job state; use one of awaiting_upload, queued, processing, finalizing, completed, failed, cancelled."),
            )
        })?),
    };
    let start = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(decode_cursor(c, &caller.owner)?),
    };
    let page = st
        .jobs
        .list_page(&caller.owner, state, limit, start.as_ref())
        .await?;
    // Running jobs' progress is in their shard counters: one BatchGetItem per such job, at most
    // `limit` (the others are read as stored).
    let jobs =
        futures::future::try_join_all(page.jobs.into_iter().map(|job| st.jobs.with_progress(job)))
            .await?;
    Ok(Json(JobList {
        jobs: jobs.iter().map(Job::snapshot).collect(),
        next_cursor: page.next.as_ref().map(encode_cursor),
    }))
}

/// `POST /v1/jobs/{id}/cancel`: any non-final job ends `cancelled`. Pending chunk tasks are
/// skipped by the workers; the job's partial outputs are deleted (best effort; a chunk or
/// finalizer still running when the cancel lands deletes what it writes after it).
pub async fn cancel_job(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobSnapshot>, ApiError> {
    let job = owned_job(&st, &caller, &id).await?;
    let job = control::cancel(&st.jobs, &st.objects, job).await?;
    Ok(Json(job.snapshot()))
}

/// `POST /v1/jobs/{id}/retry` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct RetryAccepted {
    pub job_id: String,
    /// Chunk tasks sent again (those without a completion record).
    pub chunks_requeued: u32,
    pub job: JobSnapshot,
}

/// `POST /v1/jobs/{id}/retry`: a job that failed because of chunks goes back to `processing`
/// and only its unfinished chunks are enqueued again.
pub async fn retry_job(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RetryAccepted>), ApiError> {
    let job = owned_job(&st, &caller, &id).await?;
    let (job, sent) = control::retry(&st.jobs, &st.queue, job).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RetryAccepted {
            job_id: job.id.clone(),
            chunks_requeued: sent,
            job: job.snapshot(),
        }),
    ))
}

/// `GET /v1/jobs/{id}/profile`: the column profile of a completed job (docs/profile.md, schema
/// version 1), the bytes of `results/<owner>/<job>/profile.json` unchanged. 409
/// `job_not_completed` (the state is in the message) before the job has completed.
pub async fn get_profile(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = owned_job(&st, &caller, &id).await?;
    if job.state != JobState::Completed {
        return Err(conflict(
            "job_not_completed",
            format!(
                "The job is {}; its profile exists once it is completed. Follow GET /v1/jobs/{} until then.",
                job.state.as_str(),
                job.id
            ),
        ));
    }
    let bytes = st
        .objects
        .read_all(&tessera_shared::keys::profile_key(&job))
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_tampering() {
        let key = OwnerPageKey {
            pk: "JOB#j1".into(),
            sk: "META".into(),
            gsi1pk: "OWNER#alice".into(),
            gsi1sk: "2026-11-26T08:00:00.000Z#j1".into(),
        };
        let c = encode_cursor(&key);
        assert!(c
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(decode_cursor(&c, "alice").unwrap(), key);
        for bad in ["", "!!!", "eyJ4IjoxfQ", &c[..c.len() - 3]] {
            assert_eq!(
                decode_cursor(bad, "alice").unwrap_err().code,
                "invalid_cursor",
                "{bad}"
            );
        }
        // Bob cannot page through Alice's partition with her cursor.
        assert_eq!(decode_cursor(&c, "bob").unwrap_err().code, "invalid_cursor");
    }
}
