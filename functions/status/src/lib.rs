//! The status function: `GET /v1/jobs/{id}` serves the job snapshot for polling ([`app`]);
//! the WebSocket routes ([`ws`]) and the jobs table's DynamoDB stream ([`stream`]) push the same
//! snapshot to subscribed connections through the management API ([`notify`]).
//!
//! Three Lambda entry points share this library: `tessera-status` (HTTP, `lambda_http`),
//! `tessera-status-ws` and `tessera-status-stream` (`lambda_runtime`; `lambda_http` cannot parse
//! WebSocket or stream events).

pub mod notify;
pub mod stream;
pub mod ws;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use tessera_shared::config::Config;
use tessera_shared::error::ApiError;
use tessera_shared::http::Caller;
use tessera_shared::job::JobSnapshot;
use tessera_shared::store::jobs::JobStore;

/// What the handlers need, built once per process.
#[derive(Clone)]
pub struct StatusState {
    pub config: Arc<Config>,
    pub jobs: JobStore,
}

impl StatusState {
    pub fn new(config: Arc<Config>, clients: &tessera_shared::aws::Clients) -> Self {
        StatusState {
            jobs: JobStore::new(clients.dynamodb.clone(), &config.jobs_table),
            config,
        }
    }
}

/// The status routes.
pub fn app(state: StatusState) -> Router {
    Router::new()
        .route("/v1/jobs/{id}", get(get_job))
        .fallback(tessera_shared::http::not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(
            tessera_shared::http::request_id_layer,
        ))
}

async fn get_job(
    State(st): State<StatusState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobSnapshot>, ApiError> {
    // Another owner's job is indistinguishable from a missing one (404, not 403).
    let job = tessera_shared::control::owned_job(&st.jobs, &caller.owner, &id).await?;
    // Progress lives in the job's shard counters until it completes.
    Ok(Json(st.jobs.with_progress(job).await?.snapshot()))
}
