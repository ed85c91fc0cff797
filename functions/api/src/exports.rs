//! `POST /v1/jobs/{id}/exports`: a completed job's clean or rejected output as CSV (formula
//! cells escaped unless the caller opts out) or JSON Lines, optionally with chosen columns,
//! written to `results/<owner>/<job>/exports/<id>.<ext>` and answered with a presigned GET that
//! expires within 300 s; `GET /v1/jobs/{id}/exports/{export_id}`: an export job's status.
//!
//! An export that is the stored output as it is (`csv`, every column, `formula_escape: false`)
//! is a presigned GET of that object, at any size. Any other export of an output up to
//! `Config::export_sync_max_bytes` (64 MiB) is converted within this request (201), streaming
//! through `tessera_shared::export` in bounded memory, so it ends well within API Gateway's
//! 29 s. A larger output becomes an **export job** (202 with a status URL): its byte ranges are
//! converted in parallel by the chunk workers and stitched (`tessera_shared::export_job`).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_shared::error::ApiError;
use tessera_shared::export::job::{export_tasks, ExportJob, ExportState};
pub use tessera_shared::export::Output;
use tessera_shared::export::{Converter, ExportError, Format};
use tessera_shared::http::{Caller, JsonBody};
use tessera_shared::job::{Job, JobState};
use tessera_shared::pipeline::exports::export_object;

use crate::{conflict, owned_job, ApiState};

/// Longest life of an export link.
pub const EXPORT_URL_TTL: Duration = Duration::from_secs(300);

/// Largest header record an export job looks for at the start of an output.
const MAX_HEADER_BYTES: u64 = 8 * 1024 * 1024;

/// `POST /v1/jobs/{id}/exports` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateExport {
    pub output: Output,
    pub format: Format,
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    #[serde(default)]
    pub formula_escape: Option<bool>,
}

/// 201 `{export_id, url, expires_in, expires_at, key, rows}` (converted here, or the stored
/// output linked), or 202 `{export_id, state, status_url, ranges}` (an export job).
pub async fn create_export(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CreateExport>,
) -> Result<Response, ApiError> {
    let job = owned_job(&st, &caller, &id).await?;
    if job.state != JobState::Completed {
        return Err(conflict(
            "job_not_completed",
            format!(
                "The job is {}; its outputs can be exported once it is completed.",
                job.state.as_str()
            ),
        ));
    }
    if req.columns.as_ref().is_some_and(|c| c.is_empty()) {
        return Err(ApiError::unprocessable(
            "invalid_columns",
            "`columns` is empty; leave it out to export every column.",
        ));
    }
    if let Some(c) = req
        .columns
        .as_deref()
        .and_then(tessera_shared::export::repeated_column)
    {
        return Err(ApiError::unprocessable(
            "invalid_columns",
            format!("`columns` names `{c}` more than once; name each column once."),
        ));
    }
    let src = match req.output {
        Output::Clean => job.results.clean.clone(),
        Output::Rejected => job.results.rejected.clone(),
    }
    .ok_or_else(|| ApiError::internal(&"completed job without output keys"))?;
    let ttl = st.config.presign_ttl.min(EXPORT_URL_TTL);
    let expires_at = (time::OffsetDateTime::now_utc() + ttl)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let escape = req.formula_escape.unwrap_or(true);
    if req.format == Format::Csv && req.columns.is_none() && !escape {
        // The stored output is this export byte for byte: link it, whatever its size.
        let url = st.objects.presign_get(&src, ttl).await?;
        let rows = match req.output {
            Output::Clean => job.rows,
            Output::Rejected => job.rejected_rows,
        };
        tracing::info!(job_id = %job.id, rows, "export of the stored output linked");
        return Ok((
            StatusCode::CREATED,
            Json(json!({
                "export_id": null,
                "url": url,
                "expires_in": ttl.as_secs(),
                "expires_at": expires_at,
                "key": src,
                "rows": rows,
            })),
        )
            .into_response());
    }
    let head = st.objects.head(&src).await?;
    let size = head.as_ref().map_or(0, |h| h.size);
    if size > st.config.export_sync_max_bytes {
        let etag = head.and_then(|h| h.etag);
        if let Some(answer) = start_export_job(&st, &job, &req, &src, (size, etag), escape).await? {
            return Ok(answer);
        }
    }
    let export_id = uuid::Uuid::new_v4().to_string();
    let key = tessera_shared::keys::export_key(&job.owner, &job.id, &export_id, req.format.ext());
    let conv = Converter::new(req.format, req.columns.clone(), escape);
    let rows = match export_object(&st.objects, &src, &key, conv, req.format.content_type()).await {
        Ok(rows) => rows,
        Err(e @ ExportError::UnknownColumn { .. }) => return Err(unknown_column(&e)),
        Err(e) => return Err(ApiError::internal(&e)),
    };
    let url = st.objects.presign_get(&key, ttl).await?;
    tracing::info!(job_id = %job.id, export_id = %export_id, rows, "export written");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "export_id": export_id,
            "url": url,
            "expires_in": ttl.as_secs(),
            "expires_at": expires_at,
            "key": key,
            "rows": rows,
        })),
    )
        .into_response())
}

fn unknown_column(e: &ExportError) -> ApiError {
    ApiError::unprocessable("unknown_column", format!("Cannot export: {e}."))
}

/// Plans an export job for an output of `size` bytes, records it (`queued`), sends one range
/// task per byte range and answers 202. `None`: the output has no data rows (nothing to split),
/// so it is converted within the request like a small one.
async fn start_export_job(
    st: &ApiState,
    job: &Job,
    req: &CreateExport,
    src: &str,
    (size, etag): (u64, Option<String>),
    escape: bool,
) -> Result<Option<Response>, ApiError> {
    // The header record: its length (where range 0 starts) and names (checked against
    // `columns` now, so an unknown column is a 422 here, as for a small export).
    let mut window = (64 * 1024).min(size);
    let header_len = loop {
        let head = st.objects.read_range(src, 0, window).await?;
        let at_eof = window >= size;
        match tessera_shared::export::header_len(&head, at_eof) {
            Ok(Some(n)) => break n,
            Ok(None) if !at_eof && window < MAX_HEADER_BYTES => {
                window = (window * 4).min(size).min(MAX_HEADER_BYTES)
            }
            Ok(None) => {
                return Err(ApiError::internal(&format!(
                    "output {src}: no header record within {window} bytes"
                )))
            }
            Err(e) => return Err(ApiError::internal(&e)),
        }
    };
    let head = st.objects.read_range(src, 0, header_len).await?;
    let mut conv = Converter::new(req.format, req.columns.clone(), escape);
    match conv.feed(&head, &mut Vec::new()) {
        Ok(()) => {}
        Err(e @ ExportError::UnknownColumn { .. }) => return Err(unknown_column(&e)),
        Err(e) => return Err(ApiError::internal(&e)),
    }
    let now = tessera_shared::job::now_rfc3339();
    let export_id = uuid::Uuid::new_v4().to_string();
    let mut export = ExportJob {
        key: tessera_shared::keys::export_key(&job.owner, &job.id, &export_id, req.format.ext()),
        id: export_id,
        job_id: job.id.clone(),
        owner: job.owner.clone(),
        state: ExportState::Queued,
        output: req.output,
        format: req.format,
        columns: req.columns.clone(),
        formula_escape: escape,
        source_key: src.to_string(),
        source_size: size,
        source_etag: etag,
        header_len,
        range_size: st.config.export_range_size,
        range_count: 0,
        ranges_done: 0,
        bytes_done: 0,
        rows: 0,
        size: 0,
        ranges_rerun: 0,
        error: None,
        created_at: now.clone(),
        updated_at: now,
        completed_at: None,
        expires_at: job.expires_at,
    };
    let tasks = export_tasks(&export);
    if tasks.is_empty() {
        return Ok(None);
    }
    export.range_count = tasks.len() as u32;
    st.exports.create(&export).await?;
    if let Err(e) = st.queue.send_all(&tasks).await {
        // Without its tasks the export would wait for ever: fail it, then answer 500.
        let error = tessera_shared::job::JobError {
            code: "export_enqueue_failed".into(),
            message: "Tessera could not start this export. Ask for it again.".into(),
        };
        if let Err(e2) = st.exports.mark_failed(&export, &error).await {
            tracing::error!(export_id = %export.id, error = %e2, "could not fail an export whose tasks were not sent");
        }
        return Err(ApiError::internal(&e));
    }
    let status_url = format!("/v1/jobs/{}/exports/{}", job.id, export.id);
    tracing::info!(job_id = %job.id, export_id = %export.id, size, ranges = tasks.len(), "export job started");
    let body = json!({
        "export_id": export.id,
        "state": export.state.public(),
        "status_url": status_url,
        "ranges": export.range_count,
        "bytes": size,
    });
    Ok(Some(
        (
            StatusCode::ACCEPTED,
            [(header::LOCATION, status_url)],
            Json(body),
        )
            .into_response(),
    ))
}

/// `GET /v1/jobs/{id}/exports/{export_id}`: an export job's state and progress, and once it is
/// completed a presigned GET (≤ 300 s; ask again for a fresh one). Other owners' jobs, unknown
/// exports and exports made within their request (which have no job) are 404.
pub async fn get_export(
    State(st): State<ApiState>,
    caller: Caller,
    Path((id, export_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let job = owned_job(&st, &caller, &id).await?;
    if uuid::Uuid::parse_str(&export_id).is_err() {
        return Err(ApiError::not_found("export"));
    }
    let export = match st.exports.get(&job.id, &export_id).await? {
        Some(e) if e.owner == caller.owner => e,
        _ => return Err(ApiError::not_found("export")),
    };
    let export =
        tessera_shared::pipeline::fail_if_stalled(&st.exports, &st.objects, export).await?;
    let mut body = json!({
        "export_id": export.id,
        "job_id": export.job_id,
        "state": export.state.public(),
        "output": export.output,
        "format": export.format,
        "columns": export.columns,
        "formula_escape": export.formula_escape,
        "progress": {
            "ranges": export.range_count,
            "ranges_done": export.ranges_done,
            "bytes": export.source_size,
            "bytes_done": export.bytes_done,
        },
        "created_at": export.created_at,
        "updated_at": export.updated_at,
    });
    match export.state {
        ExportState::Completed => {
            let ttl = st.config.presign_ttl.min(EXPORT_URL_TTL);
            let expires_at = (time::OffsetDateTime::now_utc() + ttl)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            body["url"] = json!(st.objects.presign_get(&export.key, ttl).await?);
            body["expires_in"] = json!(ttl.as_secs());
            body["expires_at"] = json!(expires_at);
            body["key"] = json!(export.key);
            body["rows"] = json!(export.rows);
            body["size"] = json!(export.size);
            body["completed_at"] = json!(export.completed_at);
            body["progress"]["ranges_rerun"] = json!(export.ranges_rerun);
        }
        ExportState::Failed => {
            body["error"] = json!(export.error);
        }
        _ => {}
    }
    Ok(Json(body))
}
