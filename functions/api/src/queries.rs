//! `POST /v1/jobs/{id}/queries`: a structured aggregate query (docs/query.md) over a completed
//! job's clean output or upload, answered exactly; `GET /v1/jobs/{id}/queries/{query_id}`: a
//! query's state, progress and result.
//!
//! A question over data up to `Config::query_inline_max_bytes` (64 MiB) is answered within the
//! request (200); over more, it becomes a query job on the chunk workers (202 with a status
//! URL). Both store the answer under the query's id, which is the question itself (job, output
//! version, normalised document: `tessera_shared::query`), so asking again is one read and
//! answers 200 with `"cached": true`. The answer's shape is the same in every case: the query's
//! state and progress, and once completed its `result` (the engine's result object: `columns`,
//! `rows`, `unparsed`, ...), the bytes scanned, CPU seconds and a link to the result as CSV.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tessera_shared::engine::query::{parse_document, QueryError};
use tessera_shared::error::ApiError;
use tessera_shared::http::Caller;
use tessera_shared::job::{is_stale, JobError, JobState};
use tessera_shared::pipeline::queries::{prepare, run_inline, stored_result, QueryFailure};
use tessera_shared::query::{is_query_id, query_id, query_tasks, QueryJob, QueryMode};
use tessera_shared::ranged::RangedState;

use crate::{conflict, owned_job, ApiState};

/// Largest query document accepted (a question, not data).
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

/// Longest life of a result's CSV link.
const CSV_URL_TTL: Duration = Duration::from_secs(300);

/// A query job still `queued` or `running` that has not moved for this long is failed
/// `query_stalled` when it is read: by then its tasks have exhausted their deliveries (3 x the
/// queue's 30-minute visibility) or were never sent.
const QUERY_STALLED_AFTER: Duration = Duration::from_secs(2 * 3600);

/// `POST /v1/jobs/{id}/queries`; the body is a query document.
pub async fn create_query(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let job = owned_job(&st, &caller, &id).await?;
    if body.len() > MAX_QUERY_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "query_too_large",
            format!(
                "The query document is {} bytes; at most {MAX_QUERY_BYTES} are accepted.",
                body.len()
            ),
        ));
    }
    let doc = parse_document(&body).map_err(invalid_query)?;
    if job.state != JobState::Completed {
        return Err(conflict(
            "job_not_completed",
            format!(
                "The job is {}; it can be queried once it is completed.",
                job.state.as_str()
            ),
        ));
    }
    let qid = query_id(&job, &doc);
    let existing = st.queries.get(&job.id, &qid).await?;
    // The failed record of this question, if any: a new run replaces it.
    let replaces = match existing {
        Some(q) if q.state == RangedState::Completed => {
            tracing::info!(job_id = %job.id, query_id = %qid, "query answered from its stored result");
            return Ok((StatusCode::OK, Json(answer(&st, &q, true).await?)).into_response());
        }
        Some(q) if q.state == RangedState::Failed => Some(q),
        Some(q) => {
            let q = fail_if_stalled(&st, q).await?;
            if q.state != RangedState::Failed {
                return accepted(&st, &q).await;
            }
            Some(q)
        }
        None => None,
    };
    let prepared = prepare(&st.objects, &st.config, &job, &doc)
        .await
        .map_err(failure)?;
    if prepared.record.mode == QueryMode::Inline {
        let (record, _) = run_inline(&st.objects, &st.queries, prepared, replaces.as_ref())
            .await
            .map_err(failure)?;
        return Ok((StatusCode::OK, Json(answer(&st, &record, false).await?)).into_response());
    }
    let mut record = prepared.record;
    let created = if let Some(old) = &replaces {
        record.run = old.run + 1;
        st.queries.replace_failed(&record).await?
    } else {
        st.queries.create_new(&record).await?
    };
    if !created {
        // Asked twice at once: answer with the record that won.
        if let Some(q) = st.queries.get(&job.id, &qid).await? {
            return accepted(&st, &q).await;
        }
        return Err(ApiError::internal(
            &"query record vanished after a lost create",
        ));
    }
    if let Err(e) = st.queue.send_all(&query_tasks(&record)).await {
        // Without its tasks the query would wait for ever: fail it, then answer 500.
        let error = JobError::new(
            "query_enqueue_failed",
            "Tessera could not start this query. Ask it again.",
        );
        if let Err(e2) = st.queries.mark_failed(&record, &error).await {
            tracing::error!(query_id = %record.id, error = %e2, "could not fail a query whose tasks were not sent");
        }
        return Err(ApiError::internal(&e));
    }
    tracing::info!(job_id = %job.id, query_id = %record.id, bytes = record.object_size, ranges = record.range_count, "query job started");
    accepted(&st, &record).await
}

/// `GET /v1/jobs/{id}/queries/{query_id}`. Other owners' jobs and unknown queries are 404.
pub async fn get_query(
    State(st): State<ApiState>,
    caller: Caller,
    Path((id, query_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let job = owned_job(&st, &caller, &id).await?;
    if !is_query_id(&query_id) {
        return Err(ApiError::not_found("query"));
    }
    let query = match st.queries.get(&job.id, &query_id).await? {
        Some(q) if q.owner == caller.owner => q,
        _ => return Err(ApiError::not_found("query")),
    };
    let query = fail_if_stalled(&st, query).await?;
    Ok(Json(answer(&st, &query, false).await?))
}

/// 202 with the query's state and its status URL.
async fn accepted(st: &ApiState, q: &QueryJob) -> Result<Response, ApiError> {
    let body = answer(st, q, false).await?;
    let url = body["status_url"].as_str().unwrap_or_default().to_string();
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, url)], Json(body)).into_response())
}

/// The answer for a query in any state (see the module docs).
async fn answer(st: &ApiState, q: &QueryJob, cached: bool) -> Result<Value, ApiError> {
    let document: Value = serde_json::from_str(&q.document).unwrap_or(Value::Null);
    let mut body = json!({
        "query_id": q.id,
        "job_id": q.job_id,
        "state": q.state.public(),
        "mode": q.mode,
        "query": document,
        "status_url": format!("/v1/jobs/{}/queries/{}", q.job_id, q.id),
        "progress": {
            "ranges": q.range_count,
            "ranges_done": q.ranges_done,
            "bytes": q.object_size,
            "bytes_done": q.bytes_done,
            "fraction": if q.object_size == 0 { 1.0 } else { q.bytes_done as f64 / q.object_size as f64 },
        },
        "created_at": q.created_at,
        "updated_at": q.updated_at,
    });
    match q.state {
        RangedState::Completed => {
            body["cached"] = json!(cached);
            body["result"] = stored_result(&st.objects, q).await?;
            body["bytes_scanned"] = json!(q.object_size);
            body["rows_read"] = json!(q.rows);
            body["cpu_seconds"] = json!(q.cpu_ms as f64 / 1000.0);
            body["completed_at"] = json!(q.completed_at);
            body["progress"]["ranges_rerun"] = json!(q.ranges_rerun);
            let ttl = st.config.presign_ttl.min(CSV_URL_TTL);
            body["csv"] = json!({
                "url": st.objects.presign_get(&q.csv_key, ttl).await?,
                "expires_in": ttl.as_secs(),
            });
        }
        RangedState::Failed => body["error"] = json!(q.error),
        _ => {}
    }
    Ok(body)
}

/// `q` failed `query_stalled` if it is a query job still `queued`/`running` that has not moved
/// for [`QUERY_STALLED_AFTER`] (conditional on it not having moved since it was read).
async fn fail_if_stalled(st: &ApiState, q: QueryJob) -> Result<QueryJob, ApiError> {
    if !matches!(q.state, RangedState::Queued | RangedState::Running)
        || !is_stale(&q.updated_at, QUERY_STALLED_AFTER)
    {
        return Ok(q);
    }
    let error = JobError::new(
        "query_stalled",
        "The query made no progress for 2 hours and was stopped. Ask it again.",
    );
    if st.queries.mark_stalled(&q, &error).await? {
        tracing::warn!(job_id = %q.job_id, query_id = %q.id, since = %q.updated_at, "query stalled; failed it");
        if let Err(e) = st.objects.delete_keys(&q.part_keys()).await {
            tracing::warn!(error = %e, "could not delete a stalled query's parts; the bucket's expiry rule will");
        }
    }
    Ok(st.queries.get(&q.job_id, &q.id).await?.unwrap_or(q))
}

/// 422 `invalid_query` with every problem (code, JSON path, message) in `error.details.errors`,
/// or the engine's own code for a question the data cannot answer.
fn invalid_query(e: QueryError) -> ApiError {
    let problems = e.problems();
    if problems.is_empty() {
        return ApiError::unprocessable(e.code(), e.to_string());
    }
    let first = &problems[0];
    ApiError::unprocessable(
        "invalid_query",
        format!(
            "The query has {} problem(s); the first: {} at {}: {}. Each is in error.details.errors with its JSON path.",
            problems.len(),
            first.code,
            first.path,
            first.message
        ),
    )
    .with_details(json!({ "errors": problems }))
}

fn failure(f: QueryFailure) -> ApiError {
    match f {
        QueryFailure::Query(e) => invalid_query(e),
        QueryFailure::Changed(detail) => {
            tracing::warn!(%detail, "query over changed data");
            let (code, message) = QueryFailure::Changed(detail)
                .shown()
                .expect("a changed source is shown");
            conflict(code, message)
        }
        QueryFailure::Store(e) => e.into(),
    }
}
