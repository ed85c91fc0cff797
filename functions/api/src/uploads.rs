//! Uploads: `POST /v1/uploads` creates the job and answers with one presigned PUT or, above
//! the multipart threshold (or when asked), a multipart plan; `GET /v1/uploads/{job}/parts`
//! resumes one (parts S3 holds, fresh URLs for the rest); `POST .../complete` checks and
//! completes it; `DELETE /v1/uploads/{job}` aborts it and cancels the job.
//!
//! Object keys are made here (`keys::source_key`), never taken from the client; the upload id
//! lives on the job, so every route finds it from the job id and the owner check.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tessera_shared::config::{Config, MAX_PART_SIZE, MIN_PART_SIZE};
use tessera_shared::error::ApiError;
use tessera_shared::http::{Caller, JsonBody};
use tessera_shared::job::{Job, JobSnapshot, JobState, WorkflowRef};
use tessera_shared::keys;
use tessera_shared::store::objects::{same_etag, PartRef, UploadLookup, UploadedPart};

use crate::{conflict, owned_job, ApiState};

/// Content types a browser may send for a CSV file.
pub const ALLOWED_CONTENT_TYPES: &[&str] = &[
    "text/csv",
    "application/csv",
    "text/plain",
    "text/tab-separated-values",
    "application/vnd.ms-excel",
];

/// S3's limit on parts per upload.
pub const MAX_PARTS: u64 = 10_000;
/// Part URLs per answer (creation and each page of `GET .../parts`).
pub const PART_URLS_PER_PAGE: u32 = 100;
/// S3's limit for one PUT.
const MAX_SINGLE_PUT: u64 = 5 * 1024 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;

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
    /// Headers to send with the PUT (empty: none are signed but `host`).
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
    if name.is_empty()
        || req.filename.chars().count() > 255
        || req.filename.chars().any(|c| c.is_control())
    {
        return Err(ApiError::unprocessable(
            "invalid_filename",
            "`filename` must be 1 to 255 characters with no control characters.",
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

/// Whether the upload is multipart, and its part size and count.
fn choose_parts(req: &CreateUpload, cfg: &Config) -> Result<Option<(u64, u32)>, ApiError> {
    let multipart = req.multipart.unwrap_or(req.size > cfg.multipart_threshold);
    if !multipart {
        if req.part_size.is_some() {
            return Err(ApiError::unprocessable(
                "invalid_request",
                "`part_size` applies only to multipart uploads; drop it or send `\"multipart\": true`.",
            ));
        }
        if req.size > MAX_SINGLE_PUT {
            return Err(ApiError::unprocessable(
                "multipart_required",
                "S3 takes at most 5 GiB in one PUT; send `\"multipart\": true` (or leave it out).",
            ));
        }
        return Ok(None);
    }
    if let Some(p) = req.part_size {
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&p) {
            return Err(ApiError::unprocessable(
                "invalid_part_size",
                format!("`part_size` must be between {MIN_PART_SIZE} (5 MiB) and {MAX_PART_SIZE} (5 GiB) bytes, S3's part limits."),
            ));
        }
    }
    Ok(Some(part_plan(
        req.size,
        req.part_size.unwrap_or(cfg.part_size),
    )))
}

/// Part size and count for `size` bytes: at least `floor` and 5 MiB, at least
/// `ceil(size / 10,000)` so no upload needs more parts than S3 allows, rounded up to a MiB.
pub fn part_plan(size: u64, floor: u64) -> (u64, u32) {
    let p = floor.max(MIN_PART_SIZE).max(size.div_ceil(MAX_PARTS));
    let p = p.div_ceil(MIB) * MIB;
    (p, size.div_ceil(p).max(1) as u32)
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
            .presign_upload_part(&job.source_key, upload_id, n, st.config.presign_ttl)
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
            let presigned = st.objects.presign_put(&job.source_key, ttl).await?;
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
fn closed_reason(job: &Job) -> Option<ApiError> {
    match job.state {
        JobState::AwaitingUpload if !job.upload_completed => None,
        JobState::Cancelled => Some(conflict(
            "upload_aborted",
            "This upload was aborted and its job cancelled; create a new upload.",
        )),
        s => Some(conflict(
            "upload_completed",
            format!(
                "This upload was completed (the job is {}); follow the job at /v1/jobs/{}.",
                s.as_str(),
                job.id
            ),
        )),
    }
}

fn upload_gone() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "upload_not_found",
        "S3 no longer has this multipart upload (it expired or was aborted); create a new upload.",
    )
}

/// `GET /v1/uploads/{job}/parts` query.
#[derive(Debug, Deserialize)]
pub struct PartsQuery {
    #[serde(default)]
    from: Option<String>,
}

/// A part S3 holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct HeldPart {
    pub part_number: u32,
    pub etag: String,
    pub size: u64,
}

/// `GET /v1/uploads/{job}/parts` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct PartsStatus {
    pub job_id: String,
    pub upload_id: String,
    pub part_size: u64,
    pub part_count: u32,
    /// Every part S3 holds, ascending, with the ETag to send to `complete`.
    pub uploaded: Vec<HeldPart>,
    /// How many parts are still missing.
    pub missing_count: u32,
    /// Fresh URLs for missing parts numbered `from` and up (at most 100).
    pub missing: Vec<PartUrl>,
    /// Ask again with `?from=next_from` for more URLs.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_from: Option<u32>,
    pub expires_in: u64,
    pub expires_at: String,
}

/// `GET /v1/uploads/{job}/parts[?from=N]`: resume an upload.
pub async fn list_parts(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<PartsQuery>,
) -> Result<Json<PartsStatus>, ApiError> {
    let (job, upload_id) = multipart_job(&st, &caller, &id).await?;
    if let Some(e) = closed_reason(&job) {
        return Err(e);
    }
    let from = match q.from.as_deref() {
        None => 1,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=job.part_count).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_from",
                    format!("`from` must be a part number from 1 to {}.", job.part_count),
                )
            })?,
    };
    let held = match st
        .objects
        .list_upload_parts(&job.source_key, &upload_id)
        .await?
    {
        UploadLookup::Found(p) => p,
        UploadLookup::NoSuchUpload => return Err(upload_gone()),
    };
    let held: Vec<UploadedPart> = held
        .into_iter()
        .filter(|p| (1..=job.part_count).contains(&p.part_number))
        .collect();
    let have: std::collections::HashSet<u32> = held.iter().map(|p| p.part_number).collect();
    let missing: Vec<u32> = (1..=job.part_count).filter(|n| !have.contains(n)).collect();
    let page: Vec<u32> = missing
        .iter()
        .copied()
        .filter(|&n| n >= from)
        .take(PART_URLS_PER_PAGE as usize + 1)
        .collect();
    let next_from = (page.len() > PART_URLS_PER_PAGE as usize).then(|| page[page.len() - 1]);
    let urls = part_urls(
        &st,
        &job,
        &upload_id,
        page.into_iter().take(PART_URLS_PER_PAGE as usize),
    )
    .await?;
    let ttl = st.config.presign_ttl;
    Ok(Json(PartsStatus {
        job_id: job.id.clone(),
        upload_id,
        part_size: job.part_size,
        part_count: job.part_count,
        uploaded: held
            .into_iter()
            .map(|p| HeldPart {
                part_number: p.part_number,
                etag: p.etag,
                size: p.size,
            })
            .collect(),
        missing_count: missing.len() as u32,
        missing: urls,
        next_from,
        expires_in: ttl.as_secs(),
        expires_at: rfc3339_in(ttl),
    }))
}

/// `POST /v1/uploads/{job}/complete` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteUpload {
    /// Optional: when given it must be this job's upload id (another one is "not found").
    #[serde(default)]
    pub upload_id: Option<String>,
    pub parts: Vec<CompletePart>,
}

/// One `{part_number, etag}` pair.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletePart {
    pub part_number: u32,
    pub etag: String,
}

/// `POST /v1/uploads/{job}/complete` answer; the same for every successful call.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct UploadCompleted {
    pub job_id: String,
    pub upload_id: String,
    pub size: u64,
    pub part_count: u32,
    pub status_url: String,
}

/// Checks that `parts` names every part `1..=count` exactly once, ascending.
pub fn check_part_list(parts: &[CompletePart], count: u32) -> Result<(), ApiError> {
    let mut prev = 0u32;
    for p in parts {
        let n = p.part_number;
        if n == 0 || n > count {
            return Err(ApiError::bad_request(
                "unknown_part",
                format!("Part {n} is not part of this upload: part numbers run from 1 to {count}."),
            ));
        }
        if n == prev {
            return Err(ApiError::bad_request(
                "duplicate_part",
                format!("Part {n} is listed twice; list each part once."),
            ));
        }
        if n < prev {
            return Err(ApiError::bad_request(
                "parts_out_of_order",
                format!("Part {n} comes after part {prev}; list the parts in ascending order of part_number."),
            ));
        }
        prev = n;
    }
    // Ascending and unique: the first gap is the first missing part.
    let mut expect = 1u32;
    for p in parts {
        if p.part_number != expect {
            return Err(missing_part(expect));
        }
        expect += 1;
    }
    if expect <= count {
        return Err(missing_part(expect));
    }
    Ok(())
}

fn missing_part(n: u32) -> ApiError {
    ApiError::bad_request(
        "missing_part",
        format!("Part {n} is missing from the list; send every part from 1 to the part count with its ETag."),
    )
}

/// Compares the client's list with what S3 holds; returns the parts to complete with (S3's
/// ETags) and their total size.
pub fn match_held(
    parts: &[CompletePart],
    held: &[UploadedPart],
) -> Result<(Vec<PartRef>, u64), ApiError> {
    let mut refs = Vec::with_capacity(parts.len());
    let mut sizes = Vec::with_capacity(parts.len());
    for p in parts {
        let Some(h) = held.iter().find(|h| h.part_number == p.part_number) else {
            return Err(ApiError::bad_request(
                "missing_part",
                format!(
                    "Part {} has not been uploaded (S3 holds no such part); PUT it to its URL (GET the upload's parts for a fresh one), then complete again.",
                    p.part_number
                ),
            ));
        };
        if !same_etag(&p.etag, &h.etag) {
            return Err(ApiError::bad_request(
                "etag_mismatch",
                format!(
                    "Part {}: ETag {} does not match the part S3 holds; send the ETag header of that part's PUT answer (or upload the part again).",
                    p.part_number, p.etag
                ),
            ));
        }
        sizes.push(h.size);
        refs.push(PartRef {
            part_number: h.part_number,
            etag: h.etag.clone(),
        });
    }
    let last = sizes.len().saturating_sub(1);
    if let Some(i) = sizes[..last].iter().position(|&s| s < MIN_PART_SIZE) {
        return Err(ApiError::bad_request(
            "part_too_small",
            format!(
                "Part {} is {} bytes; every part but the last must be at least 5 MiB.",
                refs[i].part_number, sizes[i]
            ),
        ));
    }
    Ok((refs, sizes.iter().sum()))
}

fn size_mismatch(job: &Job) -> ApiError {
    let message = job
        .error
        .as_ref()
        .filter(|e| e.code == "size_mismatch")
        .map(|e| e.message.clone())
        .unwrap_or_else(|| "The parts do not add up to the declared size.".into());
    ApiError::unprocessable("size_mismatch", message)
}

/// The answer to a `complete` call on a job whose upload is no longer open: the same answer as
/// the call that closed it, or why it cannot be completed.
fn settled(job: &Job, upload_id: &str) -> Result<Json<UploadCompleted>, ApiError> {
    match job.state {
        JobState::Cancelled => Err(conflict(
            "upload_aborted",
            "This upload was aborted and its job cancelled; create a new upload.",
        )),
        JobState::Failed
            if job
                .error
                .as_ref()
                .is_some_and(|e| e.code == "size_mismatch") =>
        {
            Err(size_mismatch(job))
        }
        _ => Ok(Json(completed(job, upload_id))),
    }
}

fn completed(job: &Job, upload_id: &str) -> UploadCompleted {
    UploadCompleted {
        job_id: job.id.clone(),
        upload_id: upload_id.to_string(),
        size: job.declared_size,
        part_count: job.part_count,
        status_url: format!("/v1/jobs/{}", job.id),
    }
}

/// `POST /v1/uploads/{job}/complete`.
pub async fn complete_upload(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CompleteUpload>,
) -> Result<Json<UploadCompleted>, ApiError> {
    let (job, upload_id) = multipart_job(&st, &caller, &id).await?;
    if req.upload_id.as_deref().is_some_and(|u| u != upload_id) {
        return Err(ApiError::not_found("upload"));
    }
    if job.upload_completed || job.state != JobState::AwaitingUpload {
        return settled(&job, &upload_id);
    }
    check_part_list(&req.parts, job.part_count)?;
    let held = match st
        .objects
        .list_upload_parts(&job.source_key, &upload_id)
        .await?
    {
        UploadLookup::Found(p) => p,
        UploadLookup::NoSuchUpload => return gone_or_settled(&st, &job, &upload_id).await,
    };
    let (refs, total) = match_held(&req.parts, &held)?;
    if total != job.declared_size {
        // The object would not be the declared file: never create it. The job fails with the
        // same code the planner uses for single PUTs, and the parts are dropped.
        let message = format!(
            "The parts add up to {total} bytes but {} bytes were declared. Upload the whole file again with its exact size.",
            job.declared_size
        );
        let err = tessera_shared::job::JobError {
            code: "size_mismatch".into(),
            message: message.clone(),
        };
        st.jobs.mark_failed(&job.id, &err).await?;
        if let Err(e) = st.objects.abort_upload(&job.source_key, &upload_id).await {
            tracing::warn!(job_id = %job.id, error = %e, "could not abort a mismatched upload; the lifecycle rule will");
        }
        tracing::info!(job_id = %job.id, total, declared = job.declared_size, "multipart size mismatch");
        return Err(ApiError::unprocessable("size_mismatch", message));
    }
    match st
        .objects
        .complete_upload(&job.source_key, &upload_id, &refs)
        .await?
    {
        UploadLookup::Found(()) => {}
        UploadLookup::NoSuchUpload => return gone_or_settled(&st, &job, &upload_id).await,
    }
    st.jobs.mark_upload_completed(&job.id).await?;
    tracing::info!(job_id = %job.id, parts = refs.len(), "multipart upload completed");
    Ok(Json(completed(&job, &upload_id)))
}

/// S3 has no such upload: completed by a concurrent call (same answer), or gone.
async fn gone_or_settled(
    st: &ApiState,
    job: &Job,
    upload_id: &str,
) -> Result<Json<UploadCompleted>, ApiError> {
    match st.jobs.get(&job.id).await? {
        Some(j) if j.upload_completed || j.state != JobState::AwaitingUpload => {
            settled(&j, upload_id)
        }
        _ => Err(upload_gone()),
    }
}

/// `DELETE /v1/uploads/{job}`: aborts the multipart upload and cancels the job.
pub async fn abort_upload(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobSnapshot>, ApiError> {
    let (job, upload_id) = multipart_job(&st, &caller, &id).await?;
    match job.state {
        // Aborting twice answers the same; the S3 abort is repeated in case the first one failed.
        JobState::Cancelled => {}
        JobState::AwaitingUpload if !job.upload_completed => {
            // Cancel first: a concurrent `complete` then finds the job cancelled and refuses.
            if !st.jobs.mark_cancelled(&job.id).await? {
                let now = st.jobs.get(&job.id).await?.unwrap_or(job);
                return Err(closed_reason(&now).unwrap_or_else(|| {
                    conflict("job_final", "The job changed state; read it and try again.")
                }));
            }
        }
        _ => {
            return Err(conflict(
                "upload_completed",
                format!(
                    "This upload was completed (the job is {}); to stop the job, POST /v1/jobs/{}/cancel.",
                    job.state.as_str(),
                    job.id
                ),
            ))
        }
    }
    st.objects.abort_upload(&job.source_key, &upload_id).await?;
    tracing::info!(job_id = %job.id, "multipart upload aborted; job cancelled");
    let job = st.jobs.get(&job.id).await?.unwrap_or(job);
    Ok(Json(job.snapshot()))
}

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
    fn part_plans_respect_s3_limits() {
        const GIB: u64 = 1024 * MIB;
        // Small files: the floor, one part.
        assert_eq!(part_plan(1, 8 * MIB), (8 * MIB, 1));
        assert_eq!(part_plan(12 * MIB, 5 * MIB), (5 * MIB, 3));
        // Below S3's minimum the floor is raised to 5 MiB.
        assert_eq!(part_plan(12 * MIB, MIB), (5 * MIB, 3));
        // 50 GiB at an 8 MiB floor would be 6,400 parts: fine.
        assert_eq!(part_plan(50 * GIB, 8 * MIB), (8 * MIB, 6400));
        // 5 TiB needs ceil(5 TiB / 10,000) = 549,755,814 bytes, rounded up to 525 MiB.
        let (p, n) = part_plan(5 * 1024 * GIB, 8 * MIB);
        assert_eq!(p, 525 * MIB);
        assert!(n <= 10_000, "{n}");
        for size in [1, 5 * MIB, 5 * MIB + 1, 100 * MIB, 80 * GIB, 5 * 1024 * GIB] {
            let (p, n) = part_plan(size, 8 * MIB);
            assert!(p >= MIN_PART_SIZE && p % MIB == 0 && p <= MAX_PART_SIZE);
            assert!(u64::from(n) <= MAX_PARTS && u64::from(n) * p >= size);
            assert!(u64::from(n - 1) * p < size, "no empty last part");
        }
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

    fn parts(ns: &[u32]) -> Vec<CompletePart> {
        ns.iter()
            .map(|&n| CompletePart {
                part_number: n,
                etag: format!("\"e{n}\""),
            })
            .collect()
    }

    #[test]
    fn part_lists_are_checked_and_name_the_part() {
        assert!(check_part_list(&parts(&[1, 2, 3]), 3).is_ok());
        let e = check_part_list(&parts(&[1, 3]), 3).unwrap_err();
        assert_eq!(e.code, "missing_part");
        assert!(e.message.contains("Part 2"), "{}", e.message);
        let e = check_part_list(&parts(&[1, 2]), 3).unwrap_err();
        assert!(e.code == "missing_part" && e.message.contains("Part 3"));
        let e = check_part_list(&parts(&[2, 1, 3]), 3).unwrap_err();
        assert!(e.code == "parts_out_of_order" && e.message.contains("Part 1"));
        let e = check_part_list(&parts(&[1, 1, 2, 3]), 3).unwrap_err();
        assert!(e.code == "duplicate_part" && e.message.contains("Part 1"));
        let e = check_part_list(&parts(&[1, 2, 3, 4]), 3).unwrap_err();
        assert!(e.code == "unknown_part" && e.message.contains("Part 4"));
        assert_eq!(check_part_list(&[], 1).unwrap_err().code, "missing_part");
    }

    #[test]
    fn held_parts_are_matched_by_etag_without_quotes() {
        let held: Vec<UploadedPart> = (1..=2)
            .map(|n| UploadedPart {
                part_number: n,
                etag: format!("\"e{n}\""),
                size: if n == 1 { MIN_PART_SIZE } else { 10 },
            })
            .collect();
        let mut ps = parts(&[1, 2]);
        ps[1].etag = "e2".into();
        let (refs, total) = match_held(&ps, &held).unwrap();
        assert_eq!(total, MIN_PART_SIZE + 10);
        assert_eq!(refs[1].etag, "\"e2\"");
        ps[1].etag = "\"zz\"".into();
        let e = match_held(&ps, &held).unwrap_err();
        assert!(e.code == "etag_mismatch" && e.message.contains("Part 2"));
        let e = match_held(&parts(&[1, 2, 3]), &held).unwrap_err();
        assert!(e.code == "missing_part" && e.message.contains("Part 3"));
        let small = vec![
            UploadedPart {
                size: 10,
                ..held[0].clone()
            },
            held[1].clone(),
        ];
        let e = match_held(&parts(&[1, 2]), &small).unwrap_err();
        assert!(e.code == "part_too_small" && e.message.contains("Part 1"));
    }
}
