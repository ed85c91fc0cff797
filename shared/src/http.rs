//! HTTP plumbing shared by the api and status functions: who is calling (the JWT `sub` that
//! API Gateway's authorizer verified), the request id, JSON bodies whose rejections become
//! coded errors, and the fallback for unknown routes.
//!
//! In AWS the JWT authorizer verifies the token and puts its claims in the request context;
//! locally the runtime's gateway does the same verification and fills the same context. So the
//! handlers never see a token, only verified claims.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::request::RequestContext;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, REQUEST_ID};

/// The verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The `sub` claim: the owner of everything this caller creates.
    pub owner: String,
}

fn context(
    parts: &Parts,
) -> Option<&lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext> {
    match parts.extensions.get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(ctx) => Some(ctx),
        _ => None,
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let sub = context(parts)
            .and_then(|c| c.authorizer.as_ref())
            .and_then(|a| a.jwt.as_ref())
            .and_then(|j| j.claims.get("sub"))
            .filter(|s| !s.is_empty())
            .cloned();
        sub.map(|owner| Caller { owner })
            .ok_or_else(ApiError::unauthorized)
    }
}

/// Middleware: makes the API Gateway request id (or a fresh one) current for the request, so
/// every error body and log line carries it, and echoes it in `x-request-id`.
pub async fn request_id_layer(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let id = context(&parts)
        .and_then(|c| c.request_id.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let req = Request::from_parts(parts, body);
    let span = tracing::info_span!("request", request_id = %id);
    let mut resp = REQUEST_ID
        .scope(
            id.clone(),
            tracing::Instrument::instrument(next.run(req), span),
        )
        .await;
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// A JSON body whose rejections are coded errors (400 for bad JSON, 415 for a wrong type).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        use axum::extract::rejection::JsonRejection;
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send the request body as JSON with `Content-Type: application/json`.",
            )),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::unprocessable(
                "invalid_request",
                format!(
                    "The JSON body does not match the expected fields: {}",
                    e.body_text()
                ),
            )),
            Err(e) => Err(ApiError::bad_request(
                "malformed_json",
                format!("The request body is not valid JSON: {}", e.body_text()),
            )),
        }
    }
}

/// A query string whose rejections are coded errors (400 `invalid_query_string`, JSON like every
/// other error) instead of axum's plain-text 400: e.g. a parameter given twice
/// (`?limit=1&limit=2`), which schemathesis found on every route with a query (docs/openapi.md).
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(QueryParams(v)),
            Err(e) => Err(ApiError::bad_request(
                "invalid_query_string",
                format!(
                    "The query string does not fit this route ({}). Give each parameter at most once; the README lists each route's parameters.",
                    e.body_text()
                ),
            )),
        }
    }
}

/// Fallback for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "route_not_found",
        "No such route. See the API section of the README for the routes under /v1.",
    )
}
