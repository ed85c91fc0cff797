//! Reference files: the CSV lists that `one_of` rules name with `{"ref": {"key", "column"}}`.
//! A caller uploads one with `POST /v1/references` (a presigned PUT, like an upload), lists
//! them with `GET /v1/references`, and removes one with `DELETE /v1/references/{key}`. Keys are
//! relative to the caller's own prefix (`refs/<owner>/`), the same rule the workflow document
//! follows (`tessera_shared::workflow::reference_key`), so no caller can read, list or replace
//! another's files.
//!
//! Not here: reading a reference during a job (the pipeline loads it before any chunk runs and
//! fails the job `reference_missing`, `reference_too_large` or `reference_invalid`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tessera_shared::error::ApiError;
use tessera_shared::http::{Caller, JsonBody, QueryParams};
use tessera_shared::workflow::{reference_key, reference_prefix, MAX_REFERENCE_BYTES};

use crate::{cursor, ApiState};

/// `POST /v1/references` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateReference {
    /// Relative key, e.g. `lists/countries.csv`; what a rule's `ref.key` names.
    pub key: String,
    /// Size in bytes of the file to be sent.
    pub size: u64,
}

/// 201 body of `POST /v1/references`.
#[derive(Debug, Serialize)]
pub struct ReferenceUpload {
    pub key: String,
    pub upload: ReferenceTarget,
}

/// Where to PUT the file.
#[derive(Debug, Serialize)]
pub struct ReferenceTarget {
    pub method: String,
    pub url: String,
    pub headers: std::collections::BTreeMap<String, String>,
    pub expires_in: u64,
}

/// One listed reference file.
#[derive(Debug, Serialize)]
pub struct ReferenceItem {
    pub key: String,
    pub size: u64,
    pub last_modified: Option<String>,
}

/// `GET /v1/references` query.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub cursor: Option<String>,
    /// Page size, 1 to 1,000 (default 1,000).
    #[serde(default)]
    pub limit: Option<String>,
}

/// `GET /v1/references` body.
#[derive(Debug, Serialize)]
pub struct ReferenceList {
    pub references: Vec<ReferenceItem>,
    /// Pass as `?cursor=` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn checked_key(caller: &Caller, key: &str) -> Result<String, ApiError> {
    reference_key(&caller.owner, key).map_err(|m| ApiError::bad_request("invalid_reference_key", m))
}

/// `POST /v1/references`: a presigned PUT for `refs/<owner>/<key>` (replaces a file of that
/// key; jobs read the file when they start).
pub async fn create_reference(
    State(st): State<ApiState>,
    caller: Caller,
    JsonBody(req): JsonBody<CreateReference>,
) -> Result<(StatusCode, Json<ReferenceUpload>), ApiError> {
    let s3_key = checked_key(&caller, &req.key)?;
    if req.size == 0 {
        return Err(ApiError::unprocessable(
            "empty_file",
            "`size` is 0: a reference file needs a header and at least one value.",
        ));
    }
    if req.size > MAX_REFERENCE_BYTES {
        return Err(ApiError::unprocessable(
            "reference_too_large",
            format!(
                "A reference file may be at most {MAX_REFERENCE_BYTES} bytes (each worker holds its list in memory); this one is {}. Keep only the column the rule needs, or check the values with a `matches` rule.",
                req.size
            ),
        ));
    }
    let ttl = st.config.presign_ttl;
    // The URL signs `content-length`: S3 refuses a body of another size than declared.
    let p = st.objects.presign_put(&s3_key, ttl, req.size, None).await?;
    tracing::info!(owner = %caller.owner, key = %req.key, size = req.size, "reference upload created");
    Ok((
        StatusCode::CREATED,
        Json(ReferenceUpload {
            key: req.key,
            upload: ReferenceTarget {
                method: p.method,
                url: p.url,
                headers: p.headers.into_iter().collect(),
                expires_in: ttl.as_secs(),
            },
        }),
    ))
}

/// The cursor ([`crate::cursor`]) of the references listing is the last key of the page: the
/// next page starts after it (S3's `StartAfter`, not its continuation token), so a cursor is
/// checked here and cannot reach outside the caller's prefix.
fn decode_cursor(c: &str, prefix: &str) -> Result<String, ApiError> {
    String::from_utf8(cursor::decode(c)?)
        .ok()
        .filter(|key| key.starts_with(prefix))
        .ok_or_else(cursor::invalid)
}

/// `GET /v1/references?limit=&cursor=`: the caller's reference files, in key order, up to
/// `limit` (default and most 1,000) a page.
pub async fn list_references(
    State(st): State<ApiState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<ReferenceList>, ApiError> {
    let prefix = reference_prefix(&caller.owner);
    let after = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(decode_cursor(c, &prefix)?),
        None => None,
    };
    let limit = match q.limit.as_deref() {
        None | Some("") => 1000,
        Some(v) => v
            .parse::<i32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::unprocessable("invalid_limit", "`limit` must be between 1 and 1000.")
            })?,
    };
    let (items, more) = st.objects.list(&prefix, after.as_deref(), limit).await?;
    let next = more
        .then(|| items.last().map(|o| cursor::encode(o.key.as_bytes())))
        .flatten();
    Ok(Json(ReferenceList {
        references: items
            .into_iter()
            .filter_map(|o| {
                Some(ReferenceItem {
                    key: o.key.strip_prefix(&prefix)?.to_string(),
                    size: o.size,
                    last_modified: o.last_modified,
                })
            })
            .collect(),
        next_cursor: next,
    }))
}

/// `DELETE /v1/references/{key}`: 204, or 404 when the caller has no file of that key. A job
/// that already loaded the list keeps it; later jobs fail `reference_missing`.
pub async fn delete_reference(
    State(st): State<ApiState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    let s3_key = checked_key(&caller, &key)?;
    if st.objects.size(&s3_key).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("No reference file `{key}` exists for this account."),
        ));
    }
    st.objects.delete_keys(&[s3_key]).await?;
    tracing::info!(owner = %caller.owner, key = %key, "reference deleted");
    Ok(StatusCode::NO_CONTENT)
}
