//! Uploads: `POST /v1/uploads` creates the job and answers with one presigned PUT or, above
//! the multipart threshold (or when asked), a multipart plan; `GET /v1/uploads/{job}/parts`
//! resumes one (parts S3 holds, fresh URLs for the rest); `POST .../complete` checks and
//! completes it; `DELETE /v1/uploads/{job}` aborts it and cancels the job.
//!
//! Object keys are made here (`keys::source_key`), never taken from the client; the upload id
//! lives on the job, so every route finds it from the job id and the owner check.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tessera_shared::config::Config;
use tessera_shared::error::ApiError;
use tessera_shared::http::{Caller, JsonBody, QueryParams};
use tessera_shared::job::{Job, JobSnapshot, JobState, WorkflowRef};
use tessera_shared::keys;
use tessera_shared::store::objects::{UploadLookup, UploadedPart};
use tessera_shared::upload;
pub use tessera_shared::upload::{
    check_part_list, match_held, part_plan, CompletePart, MAX_PARTS, MIB,
};

use crate::{conflict, owned_job, ApiState};

mod multipart;

pub use multipart::{
    abort_upload, complete_upload, list_parts, CompleteUpload, HeldPart, PartsQuery, PartsStatus,
    UploadCompleted,
};

/// Content types a browser may send for a CSV file.
pub const ALLOWED_CONTENT_TYPES: &[&str] = &[
    "text/csv",
    "application/csv",
    "text/plain",
    "text/tab-separated-values",
    "application/vnd.ms-excel",
];

/// Part URLs per answer (creation and each page of `GET .../parts`).
pub const PART_URLS_PER_PAGE: u32 = 100;

/// Whether the upload is multipart, and its part size and count.
fn choose_parts(req: &CreateUpload, cfg: &Config) -> Result<Option<(u64, u32)>, ApiError> {
    upload::choose_parts(req.size, req.multipart, req.part_size, cfg)
}

/// `POST /v1/uploads` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUpload {
    pub filename: String,
    /// Declared size in bytes; checked against the uploaded object.
    pub size: u64,
    pub content_type: String,
    /// Force (`true`) or refuse (`false`) a multipart upload; by default files above
    /// `TESSERA_MULTIPART_THRESHOLD` are multipart.
    #[serde(default)]
    pub multipart: Option<bool>,
    /// Preferred part size for a multipart upload (5 MiB to 5 GiB), instead of the configured
    /// `TESSERA_PART_SIZE`; raised when the file would need more than 10,000 parts.
    #[serde(default)]
    pub part_size: Option<u64>,
    /// The workflow to run (`version` omitted: the latest at upload time; the job records it).
    #[serde(default)]
    pub workflow: Option<WorkflowChoice>,
}

/// `workflow` of `POST /v1/uploads`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowChoice {
    pub id: String,
    #[serde(default)]
    pub version: Option<u32>,
}

/// The exact workflow version an upload runs: 404 `not_found` for unknown, deleted and other
/// owners' workflows, 404 `version_not_found` for a version that does not exist.
async fn resolve_workflow(
    st: &ApiState,
    caller: &Caller,
    w: &WorkflowChoice,
) -> Result<WorkflowRef, ApiError> {
    let head = crate::workflows::owned_head(st, caller, &w.id).await?;
    let version = w.version.unwrap_or(head.latest_version);
    if version == 0 || version > head.latest_version {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "version_not_found",
            format!(
                "Workflow {} has versions 1 to {}.",
                head.workflow_id, head.latest_version
            ),
        ));
    }
    Ok(WorkflowRef {
        id: head.workflow_id,
        version,
    })
}

/// `POST /v1/uploads` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct UploadCreated {
    pub job_id: String,
    pub upload: UploadPlan,
    /// Where to poll the job.
    pub status_url: String,
}

/// How to send the file: one PUT, or parts.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UploadPlan {
    Single(UploadTarget),
    Multipart(MultipartPlan),
}

/// A single presigned PUT.
#[derive(Debug, Serialize, Deserialize)]
pub struct UploadTarget {
    pub method: String,
    pub url: String,
    /// Headers to send with the PUT, exactly (the URL signs them: `content-type`). The URL also
    /// signs `content-length`, the declared size, which every HTTP client sets from its body:
    /// S3 refuses a body of any other size.
    pub headers: BTreeMap<String, String>,
    pub expires_in: u64,
    pub expires_at: String,
}

/// A multipart upload: PUT each part's bytes to its URL, keep each answer's `ETag`, then
/// `POST routes.complete`.
#[derive(Debug, Serialize, Deserialize)]
pub struct MultipartPlan {
    pub upload_id: String,
    /// Every part but the last is exactly this long; the last holds the rest.
    pub part_size: u64,
    pub part_count: u32,
    /// URLs of the first parts (up to 100); `GET routes.parts?from=next_from` gives the rest.
    pub parts: Vec<PartUrl>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_from: Option<u32>,
    pub routes: UploadRoutes,
    pub expires_in: u64,
    pub expires_at: String,
}

/// A presigned `UploadPart`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartUrl {
    pub part_number: u32,
    pub url: String,
}

/// Where to resume, complete and abort a multipart upload.
#[derive(Debug, Serialize, Deserialize)]
pub struct UploadRoutes {
    pub parts: String,
    pub complete: String,
    pub abort: String,
}

impl UploadRoutes {
    fn of(job_id: &str) -> Self {
        UploadRoutes {
            parts: format!("/v1/uploads/{job_id}/parts"),
            complete: format!("/v1/uploads/{job_id}/complete"),
            abort: format!("/v1/uploads/{job_id}"),
        }
    }
}

fn validate(req: &CreateUpload, cfg: &Config) -> Result<(), ApiError> {
    let name = req.filename.trim();
    if name.is_empty() || req.filename.chars().count() > 255 {
        return Err(ApiError::unprocessable(
            "invalid_filename",
            "`filename` must be 1 to 255 characters with no control characters.",
        ));
    }
    if let Some((i, c)) = keys::forbidden_char(&req.filename) {
        return Err(ApiError::unprocessable(
            "invalid_filename",
            format!(
                "`filename` holds the character U+{:04X} at position {i}: control and \
                 bidirectional-control characters are not allowed (they make a name display as \
                 another). Rename the file.",
                c as u32
            ),
        ));
    }
    let ct = req
        .content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !ALLOWED_CONTENT_TYPES.contains(&ct.as_str()) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_type",
            format!(
                "Content type {:?} is not accepted; upload a CSV file as one of: {}.",
                req.content_type,
                ALLOWED_CONTENT_TYPES.join(", ")
            ),
        ));
    }
    if req.size == 0 {
        return Err(ApiError::unprocessable(
            "empty_file",
            "The declared size is 0 bytes: an empty file has no header or rows to process. Upload a CSV with at least a header line.",
        ));
    }
    if req.size > cfg.max_upload_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            format!(
                "The declared size {} bytes exceeds the limit of {} bytes. Split the file or ask for a higher limit.",
                req.size, cfg.max_upload_bytes
            ),
        ));
    }
    Ok(())
}

fn rfc3339_in(ttl: Duration) -> String {
    (time::OffsetDateTime::now_utc() + ttl)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Presigned URLs for `numbers`.
async fn part_urls(
    st: &ApiState,
    job: &Job,
    upload_id: &str,
    numbers: impl IntoIterator<Item = u32>,
) -> Result<Vec<PartUrl>, ApiError> {
    let mut out = Vec::new();
    for n in numbers {
        let url = st
            .objects
            .presign_upload_part(
                &job.source_key,
                upload_id,
                n,
                upload::part_length(job.declared_size, job.part_size, n),
                st.config.presign_ttl,
            )
            .await?;
        out.push(PartUrl {
            part_number: n,
            url,
        });
    }
    Ok(out)
}

/// `POST /v1/uploads`.
pub async fn create_upload(
    State(st): State<ApiState>,
    caller: Caller,
    JsonBody(req): JsonBody<CreateUpload>,
) -> Result<(StatusCode, Json<UploadCreated>), ApiError> {
    validate(&req, &st.config)?;
    let parts = choose_parts(&req, &st.config)?;
    let workflow = match &req.workflow {
        None => None,
        Some(w) => Some(resolve_workflow(&st, &caller, w).await?),
    };
    let id = uuid::Uuid::new_v4().to_string();
    let expires_at =
        time::OffsetDateTime::now_utc().unix_timestamp() + st.config.job_ttl_days as i64 * 86_400;
    let source_key = keys::source_key(&caller.owner, &id);
    let upload_id = match parts {
        Some(_) => Some(
            st.objects
                .create_upload(&source_key, &req.content_type)
                .await?,
        ),
        None => None,
    };
    let (part_size, part_count) = parts.unwrap_or((0, 0));
    let job = Job {
        upload_id: upload_id.clone(),
        part_size,
        part_count,
        workflow,
        ..Job::awaiting_upload(
            &id,
            &caller.owner,
            req.filename.trim(),
            &req.content_type,
            req.size,
            expires_at,
        )
    };
    if let Err(e) = st.jobs.create(&job).await {
        if let Some(u) = &upload_id {
            let _ = st.objects.abort_upload(&job.source_key, u).await;
        }
        return Err(e.into());
    }
    let ttl = st.config.presign_ttl;
    let upload = match upload_id {
        None => {
            // Signed: exactly the declared size and content type (S3 refuses any other).
            let presigned = st
                .objects
                .presign_put(
                    &job.source_key,
                    ttl,
                    job.declared_size,
                    Some(&job.content_type),
                )
                .await?;
            UploadPlan::Single(UploadTarget {
                method: presigned.method,
                url: presigned.url,
                headers: presigned.headers.into_iter().collect(),
                expires_in: ttl.as_secs(),
                expires_at: rfc3339_in(ttl),
            })
        }
        Some(upload_id) => {
            let first = part_count.min(PART_URLS_PER_PAGE);
            let urls = part_urls(&st, &job, &upload_id, 1..=first).await?;
            UploadPlan::Multipart(MultipartPlan {
                upload_id,
                part_size,
                part_count,
                parts: urls,
                next_from: (first < part_count).then_some(first + 1),
                routes: UploadRoutes::of(&id),
                expires_in: ttl.as_secs(),
                expires_at: rfc3339_in(ttl),
            })
        }
    };
    tracing::info!(job_id = %id, owner = %caller.owner, size = req.size, part_count, "upload created");
    Ok((
        StatusCode::CREATED,
        Json(UploadCreated {
            status_url: format!("/v1/jobs/{id}"),
            job_id: id,
            upload,
        }),
    ))
}

/// The caller's job with a multipart upload, or the coded reason why not.
async fn multipart_job(
    st: &ApiState,
    caller: &Caller,
    id: &str,
) -> Result<(Job, String), ApiError> {
    let job = owned_job(st, caller, id).await?;
    match job.upload_id.clone() {
        Some(u) => Ok((job, u)),
        None => Err(conflict(
            "not_multipart",
            "This job's upload is a single PUT, not a multipart upload.",
        )),
    }
}

/// Why an upload can no longer take parts, or `None` when it can.
#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::from_lookup(|k| match k {
            "TESSERA_BUCKET" => Some("b".into()),
            "TESSERA_JOBS_TABLE" => Some("t".into()),
            "TESSERA_CHUNK_QUEUE_URL" => Some("q".into()),
            "TESSERA_MAX_UPLOAD_BYTES" => Some("1000".into()),
            _ => None,
        })
        .unwrap()
    }

    fn req(name: &str, size: u64, ct: &str) -> CreateUpload {
        CreateUpload {
            filename: name.into(),
            size,
            content_type: ct.into(),
            multipart: None,
            part_size: None,
            workflow: None,
        }
    }

    #[test]
    fn validation_codes() {
        let c = cfg();
        assert!(validate(&req("a.csv", 10, "text/csv"), &c).is_ok());
        assert!(validate(&req("a.csv", 10, "text/csv; charset=utf-8"), &c).is_ok());
        let e = validate(&req("a.csv", 1001, "text/csv"), &c).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::PAYLOAD_TOO_LARGE, "file_too_large")
        );
        assert!(e.message.contains("1000 bytes"), "{}", e.message);
        assert_eq!(
            validate(&req("a.csv", 0, "text/csv"), &c).unwrap_err().code,
            "empty_file"
        );
        assert_eq!(
            validate(&req(" ", 1, "text/csv"), &c).unwrap_err().code,
            "invalid_filename"
        );
        assert_eq!(
            validate(&req("a\nb", 1, "text/csv"), &c).unwrap_err().code,
            "invalid_filename"
        );
        let e = validate(&req("invoice\u{202E}vsc.exe", 1, "text/csv"), &c).unwrap_err();
        assert_eq!(e.code, "invalid_filename");
        assert!(e.message.contains("U+202E at position 7"), "{}", e.message);
        let e = validate(&req("a.png", 1, "image/png"), &c).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_content_type"
            )
        );
    }

    #[test]
    fn multipart_is_chosen_by_threshold_or_request() {
        let c = cfg();
        assert_eq!(choose_parts(&req("a", 10, "text/csv"), &c).unwrap(), None);
        let mut r = req("a", 30 * MIB, "text/csv");
        r.multipart = Some(true);
        assert_eq!(choose_parts(&r, &c).unwrap(), Some((8 * MIB, 4)));
        r.part_size = Some(5 * MIB);
        assert_eq!(choose_parts(&r, &c).unwrap(), Some((5 * MIB, 6)));
        r.part_size = Some(MIB);
        assert_eq!(choose_parts(&r, &c).unwrap_err().code, "invalid_part_size");
        let big = req("a", 200 * MIB, "text/csv");
        assert_eq!(choose_parts(&big, &c).unwrap(), Some((8 * MIB, 25)));
    }
}
