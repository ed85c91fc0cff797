//! The api function: uploads (`POST /v1/uploads` with one presigned PUT or a multipart plan;
//! resume, complete and abort of multipart uploads), job control (`GET /v1/jobs`, cancel,
//! retry), a completed job's profile, exports of its outputs, queries over its data, saved workflows (`/v1/workflows`),
//! the reference files their `one_of` rules read (`/v1/references`), `GET /v1/health` and the
//! API's OpenAPI document (`GET /v1/openapi.json`). An axum `Router` served by
//! `lambda_http::run` in AWS and by the local gateway in-process; tests call it directly.
//!
//! Not here: `GET /v1/jobs/{id}` (the status function), the pipeline itself (`tessera_shared`).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Serialize;
use tessera_shared::config::Config;
use tessera_shared::error::ApiError;
use tessera_shared::http::Caller;
use tessera_shared::job::Job;
use tessera_shared::pipeline::queries::QueryStore;
use tessera_shared::store::exports::ExportStore;
use tessera_shared::store::jobs::JobStore;
use tessera_shared::store::objects::ObjectStore;
use tessera_shared::store::queue::TaskQueue;
use tessera_shared::store::workflows::WorkflowStore;

pub mod cursor;
pub mod exports;
pub mod jobs;
pub mod queries;
pub mod references;
pub mod uploads;
pub mod workflows;

pub use uploads::{CreateUpload, UploadCreated, UploadPlan, ALLOWED_CONTENT_TYPES};

/// What the handlers need, built once per process.
#[derive(Clone)]
pub struct ApiState {
    pub config: Arc<Config>,
    pub jobs: JobStore,
    pub objects: ObjectStore,
    /// Chunk tasks, for retries and export jobs' range tasks.
    pub queue: TaskQueue,
    /// Saved workflows (items in the jobs table).
    pub workflows: WorkflowStore,
    /// Export jobs (items under their job in the jobs table).
    pub exports: ExportStore,
    /// Query records (items under their job in the jobs table).
    pub queries: QueryStore,
}

impl ApiState {
    pub fn new(config: Arc<Config>, clients: &tessera_shared::aws::Clients) -> Self {
        ApiState {
            jobs: JobStore::new(clients.dynamodb.clone(), &config.jobs_table),
            objects: ObjectStore::new(clients.s3.clone(), &config.bucket),
            queue: TaskQueue::new(clients.sqs.clone(), &config.chunk_queue_url),
            workflows: WorkflowStore::new(clients.dynamodb.clone(), &config.jobs_table),
            exports: ExportStore::new(clients.dynamodb.clone(), &config.jobs_table),
            queries: QueryStore::new(clients.dynamodb.clone(), &config.jobs_table),
            config,
        }
    }
}

/// The api routes.
pub fn app(state: ApiState) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/uploads", post(uploads::create_upload))
        .route("/v1/uploads/{job}/parts", get(uploads::list_parts))
        .route("/v1/uploads/{job}/complete", post(uploads::complete_upload))
        .route("/v1/uploads/{job}", delete(uploads::abort_upload))
        .route("/v1/jobs", get(jobs::list_jobs))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel_job))
        .route("/v1/jobs/{id}/retry", post(jobs::retry_job))
        .route("/v1/jobs/{id}/profile", get(jobs::get_profile))
        .route("/v1/jobs/{id}/exports", post(exports::create_export))
        .route(
            "/v1/jobs/{id}/exports/{export_id}",
            get(exports::get_export),
        )
        .route("/v1/jobs/{id}/queries", post(queries::create_query))
        .route("/v1/jobs/{id}/queries/{query_id}", get(queries::get_query))
        .route(
            "/v1/references",
            post(references::create_reference).get(references::list_references),
        )
        .route(
            "/v1/references/{*key}",
            delete(references::delete_reference),
        )
        .route(
            "/v1/workflows",
            post(workflows::create_workflow).get(workflows::list_workflows),
        )
        .route(
            "/v1/workflows/validate",
            post(workflows::validate_against_job),
        )
        .route(
            "/v1/workflows/{id}",
            get(workflows::get_workflow)
                .put(workflows::update_workflow)
                .delete(workflows::delete_workflow),
        )
        .route(
            "/v1/workflows/{id}/versions/{version}",
            get(workflows::get_version),
        )
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

/// The OpenAPI 3.1 document of the whole REST API (api, status and agent routes), as committed
/// in `docs/openapi.json` (made by `tessera_infra::openapi`, checked for drift by
/// infra/tests/openapi.rs; docs/openapi.md). Public, like `/v1/health`: it holds nothing a
/// caller's token protects.
pub const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI_JSON,
    )
}

/// The caller's job `id` ([`tessera_shared::control::owned_job`]: another owner's job is a
/// 404 like a missing one).
pub(crate) async fn owned_job(st: &ApiState, caller: &Caller, id: &str) -> Result<Job, ApiError> {
    Ok(tessera_shared::control::owned_job(&st.jobs, &caller.owner, id).await?)
}

/// 409 with a code.
pub(crate) fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}
