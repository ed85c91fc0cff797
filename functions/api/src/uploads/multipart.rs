//! Multipart uploads after their creation: `GET /v1/uploads/{job}/parts` resumes one (the parts
//! S3 holds, fresh URLs for the rest), `POST .../complete` checks and completes it, `DELETE`
//! aborts it and cancels the job.

use super::*;

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
    QueryParams(q): QueryParams<PartsQuery>,
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
/// `POST /v1/uploads/{job}/complete` answer; the same for every successful call.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct UploadCompleted {
    pub job_id: String,
    pub upload_id: String,
    pub size: u64,
    pub part_count: u32,
    pub status_url: String,
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
