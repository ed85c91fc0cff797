//! `POST /v1/jobs/{id}/exports`: a completed job's clean or rejected output as CSV (formula
//! cells escaped unless the caller opts out) or JSON Lines, optionally with chosen columns,
//! written to `results/<owner>/<job>/exports/<id>.<ext>` and answered with a presigned GET that
//! expires within 300 s.
//!
//! An export that is the stored output as it is (`csv`, every column, `formula_escape: false`)
//! is a presigned GET of that object, at any size. Any other export is converted within this
//! request, streaming through `tessera_shared::export` in bounded memory, so it is bounded by
//! API Gateway's 29 s: outputs above [`EXPORT_CONVERT_MAX_BYTES`] get 422 `export_too_large`
//! with what to do instead; a converted export of them needs an export job (not built —
//! docs/rules.md).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_shared::error::ApiError;
use tessera_shared::export::{export_object, Converter, ExportError, Format};
use tessera_shared::http::{Caller, JsonBody};
use tessera_shared::job::JobState;

use crate::{conflict, owned_job, ApiState};

/// Longest life of an export link.
pub const EXPORT_URL_TTL: Duration = Duration::from_secs(300);

/// Largest output an export converts within one request (API Gateway answers by 29 s; the
/// conversion streams at roughly 100 MB/s or more, with the S3 round trips). Larger outputs can
/// be linked as stored (CSV, every column, no escaping); a converted export of them needs an
/// export job, which is not built (docs/rules.md).
pub const EXPORT_CONVERT_MAX_BYTES: u64 = 1 << 30;

/// Which output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    Clean,
    Rejected,
}

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

/// 201 `{export_id, url, expires_in, expires_at, key, rows}`.
pub async fn create_export(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CreateExport>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
        ));
    }
    let size = st.objects.size(&src).await?.unwrap_or(0);
    if size > EXPORT_CONVERT_MAX_BYTES {
        return Err(ApiError::unprocessable(
            "export_too_large",
            format!(
                "This output is {size} bytes; an export that converts it (JSON Lines, a column choice or formula escaping) is made within the request and is limited to {EXPORT_CONVERT_MAX_BYTES} bytes. Ask for {{\"format\": \"csv\", \"formula_escape\": false}} without `columns` to download the output as stored, at any size."
            ),
        ));
    }
    let export_id = uuid::Uuid::new_v4().to_string();
    let key = tessera_shared::keys::export_key(&job.owner, &job.id, &export_id, req.format.ext());
    let conv = Converter::new(req.format, req.columns.clone(), escape);
    let rows = match export_object(&st.objects, &src, &key, conv, req.format.content_type()).await {
        Ok(rows) => rows,
        Err(e @ ExportError::UnknownColumn { .. }) => {
            return Err(ApiError::unprocessable(
                "unknown_column",
                format!("Cannot export: {e}."),
            ))
        }
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
    ))
}
