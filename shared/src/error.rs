//! The one error type HTTP callers see, and its single mapping to status codes.
//!
//! Callers get `{"error": {"code", "message", "request_id"}}`: a stable code, a message that
//! says what is wrong and what to do, and the request id. Internal detail (SDK errors, stack
//! context) goes only to the log, under the same request id.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::control::ControlError;
use crate::store::StoreError;

/// An error answered to an HTTP caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Structured detail a caller can act on (e.g. rule validation errors with their JSON
    /// paths); answered as `error.details` only when present.
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }
    /// The same error with `details` in its body.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
    /// 409 `job_not_completed` unless `job` is completed; `then` says what the job allows
    /// once it is (`"it can be queried once it is completed."`).
    pub fn require_completed(job: &crate::job::Job, then: &str) -> Result<(), Self> {
        if job.state == crate::job::JobState::Completed {
            return Ok(());
        }
        Err(Self::new(
            StatusCode::CONFLICT,
            "job_not_completed",
            format!("The job is {}; {then}", job.state.as_str()),
        ))
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "A valid bearer token is required: send `Authorization: Bearer <token>` (locally, `tessera token` prints one).",
        )
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("No {what} with that id exists for this account."),
        )
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    /// A failure of ours. The detail is logged here, with the request id; the caller gets none of it.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(request_id = %current_request_id(), error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side. Try again; if it persists, report the request id.",
        )
    }
}

/// Seconds a caller should wait after `service_busy` (the `Retry-After` header).
pub const BUSY_RETRY_AFTER_SECS: u32 = 2;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // Load, not a fault: say so, and when to try again (nothing was done).
            StoreError::Busy { .. } => {
                tracing::warn!(request_id = %current_request_id(), error = %e, "store busy");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_busy",
                    format!("Tessera is busy and did nothing with this request. Send it again in {BUSY_RETRY_AFTER_SECS} seconds (the Retry-After header)."),
                )
            }
            e => ApiError::internal(&e),
        }
    }
}

/// The one mapping of job control's refusals to HTTP answers.
impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::NotFound => ApiError::not_found("job"),
            ControlError::Final(state) => ApiError::new(
                StatusCode::CONFLICT,
                "job_final",
                format!(
                    "The job is already {}; a finished job cannot be cancelled.",
                    state.as_str()
                ),
            ),
            ControlError::NotRetryable(code) => ApiError::new(
                StatusCode::CONFLICT,
                "not_retryable",
                format!(
                    "The job failed as a whole ({code}), not in its chunks; retrying cannot change that. Fix the file and upload it again."
                ),
            ),
            ControlError::NotFailed(state) => ApiError::new(
                StatusCode::CONFLICT,
                "job_not_failed",
                format!(
                    "Only a failed job can be retried; this one is {}.",
                    state.as_str()
                ),
            ),
            ControlError::Store(e) => e.into(),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a serde_json::Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                request_id: current_request_id(),
                details: self.details.as_ref(),
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(BUSY_RETRY_AFTER_SECS),
            );
        }
        response
    }
}

tokio::task_local! {
    /// The request id of the request being served (set by `http::request_id_layer`).
    pub static REQUEST_ID: String;
}

/// The current request's id, or `-` outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(|s| s.clone())
        .unwrap_or_else(|_| "-".into())
}
