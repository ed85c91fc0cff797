//! The api function: `POST /v1/uploads` (validate, create the job, presign the upload),
//! `GET /v1/jobs` (the caller's jobs), `GET /v1/health`. An axum `Router` served by
//! `lambda_http::run` in AWS and by the local gateway in-process; tests call it directly.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tessera_shared::config::Config;
use tessera_shared::error::ApiError;
use tessera_shared::http::{Caller, JsonBody};
use tessera_shared::job::{now_rfc3339, Job, JobSnapshot, JobState, ResultKeys};
use tessera_shared::keys;
use tessera_shared::store::jobs::JobStore;
use tessera_shared::store::objects::ObjectStore;

/// Content types a browser may send for a CSV file.
pub const ALLOWED_CONTENT_TYPES: &[&str] = &[
    "text/csv",
    "application/csv",
    "text/plain",
    "text/tab-separated-values",
    "application/vnd.ms-excel",
];

/// What the handlers need, built once per process.
#[derive(Clone)]
pub struct ApiState {
    pub config: Arc<Config>,
    pub jobs: JobStore,
    pub objects: ObjectStore,
}

impl ApiState {
    pub fn new(config: Arc<Config>, clients: &tessera_shared::aws::Clients) -> Self {
        ApiState {
            jobs: JobStore::new(clients.dynamodb.clone(), &config.jobs_table),
            objects: ObjectStore::new(clients.s3.clone(), &config.bucket),
            config,
        }
    }
}

/// The api routes.
pub fn app(state: ApiState) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/uploads", post(create_upload))
        .route("/v1/jobs", get(list_jobs))
        .fallback(tessera_shared::http::not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(
            tessera_shared::http::request_id_layer,
        ))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// `POST /v1/uploads` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUpload {
    pub filename: String,
    /// Declared size in bytes; the planner checks the uploaded object against it.
    pub size: u64,
    pub content_type: String,
}

/// `POST /v1/uploads` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct UploadCreated {
    pub job_id: String,
    pub upload: UploadTarget,
    /// Where to poll the job.
    pub status_url: String,
}

/// A single presigned PUT.
#[derive(Debug, Serialize, Deserialize)]
pub struct UploadTarget {
    pub method: String,
    pub url: String,
    /// Headers to send with the PUT (empty: none are signed but `host`).
    pub headers: std::collections::BTreeMap<String, String>,
    pub expires_in: u64,
    pub expires_at: String,
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

async fn create_upload(
    State(st): State<ApiState>,
    caller: Caller,
    JsonBody(req): JsonBody<CreateUpload>,
) -> Result<(StatusCode, Json<UploadCreated>), ApiError> {
    validate(&req, &st.config)?;
    let id = uuid::Uuid::new_v4().to_string();
    let now = now_rfc3339();
    let expires_at =
        time::OffsetDateTime::now_utc().unix_timestamp() + st.config.job_ttl_days as i64 * 86_400;
    let job = Job {
        id: id.clone(),
        owner: caller.owner.clone(),
        state: JobState::AwaitingUpload,
        filename: req.filename.trim().to_string(),
        content_type: req.content_type.clone(),
        declared_size: req.size,
        source_key: keys::source_key(&caller.owner, &id),
        created_at: now.clone(),
        updated_at: now,
        dialect: None,
        columns: vec![],
        header_len: 0,
        chunk_size: 0,
        chunk_count: 0,
        chunks_done: 0,
        bytes_done: 0,
        rows: 0,
        rejected_rows: 0,
        error: None,
        results: ResultKeys::default(),
        expires_at,
    };
    st.jobs.create(&job).await?;
    let ttl = st.config.presign_ttl;
    let presigned = st.objects.presign_put(&job.source_key, ttl).await?;
    let until = time::OffsetDateTime::now_utc() + ttl;
    tracing::info!(job_id = %id, owner = %caller.owner, size = req.size, "upload created");
    Ok((
        StatusCode::CREATED,
        Json(UploadCreated {
            status_url: format!("/v1/jobs/{id}"),
            job_id: id,
            upload: UploadTarget {
                method: presigned.method,
                url: presigned.url,
                headers: presigned.headers.into_iter().collect(),
                expires_in: ttl.as_secs(),
                expires_at: until
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            },
        }),
    ))
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    limit: Option<i32>,
}

#[derive(Serialize)]
struct JobList {
    jobs: Vec<JobSnapshot>,
}

async fn list_jobs(
    State(st): State<ApiState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<JobList>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::unprocessable(
            "invalid_limit",
            "`limit` must be between 1 and 100.",
        ));
    }
    let jobs = st.jobs.list_for_owner(&caller.owner, limit).await?;
    Ok(Json(JobList {
        jobs: jobs.iter().map(Job::snapshot).collect(),
    }))
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
}
