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
use tessera_shared::pipeline::queries::{
    ask, fail_if_stalled, stored_result, Asked, QueryDeps, QueryFailure,
};
use tessera_shared::query::{is_query_id, QueryJob};
use tessera_shared::ranged::RangedState;

use crate::{conflict, owned_job, ApiState};

/// Largest query document accepted (a question, not data).
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

/// Longest life of a result's CSV link.
const CSV_URL_TTL: Duration = Duration::from_secs(300);

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
    ApiError::require_completed(&job, "it can be queried once it is completed.")?;
    let deps = QueryDeps {
        config: &st.config,
        objects: &st.objects,
        queries: &st.queries,
        queue: &st.queue,
    };
    match ask(&deps, &job, &doc, None).await.map_err(failure)? {
        Asked::Answered { record, cached } => {
            Ok((StatusCode::OK, Json(answer(&st, &record, cached).await?)).into_response())
        }
        Asked::Running(record) => accepted(&st, &record).await,
    }
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
    let query = fail_if_stalled(&st.queries, &st.objects, query).await?;
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
        "status_url": q.status_url(),
        "progress": q.progress(),
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
