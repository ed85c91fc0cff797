//! The local API Gateway (HTTP API, payload 2.0): one axum router in front of the api, status
//! and agent functions' routers, doing what API Gateway does before a handler runs:
//!
//! - routes `GET /v1/jobs/{id}` to the status function, the agent's routes ([`AGENT_ROUTES`]:
//!   `/v1/rules/generate`, `/v1/sessions...`) to the agent function, and every other path to the
//!   api function;
//! - verifies `Authorization: Bearer <jwt>` (the JWT authorizer) on every route except
//!   `GET /v1/health` and `GET /v1/openapi.json`, answering 401 itself when the token is missing or invalid;
//! - enforces the 10 MB payload limit (413) and buffers the body, as API Gateway does before
//!   it invokes a Lambda;
//! - hands the handler the request context it would get in AWS (`RequestContext::ApiGatewayV2`
//!   with the verified claims and a fresh request id).
//!
//! Unknown routes reach the api function's fallback (404 JSON) once the token is valid.
//! The page (`/`, `/app/*`, `/config.json`: [`crate::web`]) is served beside it, without a token.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use tessera_shared::error::{ApiError, REQUEST_ID};
use tower::ServiceExt;

use crate::auth::JwtKey;

/// API Gateway's payload limit for HTTP APIs.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;

/// Routes that need no token.
const PUBLIC_ROUTES: &[(&str, &str)] = &[("GET", "/v1/health"), ("GET", "/v1/openapi.json")];

/// The agent function's routes, as template.yaml's `AgentFunction` events declare them
/// (`{id}`: one non-empty path segment).
pub const AGENT_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/rules/generate"),
    ("POST", "/v1/rules/dry-runs"),
    ("GET", "/v1/rules/dry-runs/{id}"),
    ("GET", "/v1/usage"),
    ("POST", "/v1/sessions"),
    ("GET", "/v1/sessions/{id}"),
    ("POST", "/v1/sessions/{id}/messages"),
];

struct Gateway {
    key: JwtKey,
}

/// The gateway router over the api and status functions' routers (no agent function: its
/// routes reach the api function's fallback, a 404).
pub fn router(api: Router, status: Router, key: JwtKey) -> Router {
    router_with_agent(api, status, None, key)
}

/// The gateway router over the functions' routers.
pub fn router_with_agent(
    api: Router,
    status: Router,
    agent: Option<Router>,
    key: JwtKey,
) -> Router {
    let gw = Arc::new(Gateway { key });
    // Like API Gateway's route table: `GET /v1/jobs/{id}` is integrated with the status
    // function, the agent's routes with the agent function, everything else with the api
    // function (whose fallback answers unknown routes).
    let dispatch = move |req: Request| {
        let (method, path) = (req.method().as_str(), req.uri().path());
        let target = match &agent {
            Some(agent) if is_agent_route(method, path) => agent.clone(),
            _ if method == "GET" && is_status_route(path) => status.clone(),
            _ => api.clone(),
        };
        async move {
            match target.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            }
        }
    };
    Router::new()
        .fallback(dispatch)
        .layer(axum::middleware::from_fn_with_state(gw, authorize))
        // The page and its config are public static files (a CDN's job in AWS): no token.
        .merge(crate::web::router())
}

/// Whether `method path` is one of [`AGENT_ROUTES`].
pub fn is_agent_route(method: &str, path: &str) -> bool {
    AGENT_ROUTES
        .iter()
        .any(|(m, pattern)| *m == method && matches_pattern(pattern, path))
}

/// `path` against a route pattern whose `{name}` segments match one non-empty segment.
fn matches_pattern(pattern: &str, path: &str) -> bool {
    let (mut p, mut s) = (pattern.split('/'), path.split('/'));
    loop {
        match (p.next(), s.next()) {
            (None, None) => return true,
            (Some(want), Some(got)) => {
                let ok = if want.starts_with('{') && want.ends_with('}') {
                    !got.is_empty()
                } else {
                    want == got
                };
                if !ok {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// `/v1/jobs/{id}` with one non-empty segment after `/v1/jobs/`.
fn is_status_route(path: &str) -> bool {
    path.strip_prefix("/v1/jobs/")
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

async fn authorize(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (mut parts, body) = req.into_parts();
    let public = PUBLIC_ROUTES
        .iter()
        .any(|(m, p)| parts.method.as_str() == *m && parts.uri.path() == *p);
    let claims = if public {
        None
    } else {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        match token.map(|t| gw.key.verify(t)) {
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => {
                tracing::info!(request_id = %request_id, error = %e, "token rejected");
                return reply(&request_id, ApiError::unauthorized()).await;
            }
            None => return reply(&request_id, ApiError::unauthorized()).await,
        }
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_PAYLOAD_BYTES as u64) {
        return reply(&request_id, too_large()).await;
    }
    let bytes = match axum::body::to_bytes(body, MAX_PAYLOAD_BYTES).await {
        Ok(b) => b,
        Err(_) => return reply(&request_id, too_large()).await,
    };
    let source_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".into());
    let ctx = context(&parts, &request_id, &source_ip, claims);
    parts.extensions.insert(RequestContext::ApiGatewayV2(ctx));
    let mut resp = next
        .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await;
    if !resp.headers().contains_key("x-request-id") {
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
    }
    resp
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "The request body exceeds API Gateway's limit of {MAX_PAYLOAD_BYTES} bytes. Send file data to the presigned URL from POST /v1/uploads, not to the API."
        ),
    )
}

/// An error answered by the gateway itself, with the request id in the body and header.
async fn reply(request_id: &str, e: ApiError) -> Response {
    let mut resp = REQUEST_ID
        .scope(request_id.to_string(), async move { e.into_response() })
        .await;
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// The payload-2.0 `requestContext` API Gateway would send for this request.
fn context(
    parts: &axum::http::request::Parts,
    request_id: &str,
    source_ip: &str,
    claims: Option<std::collections::HashMap<String, String>>,
) -> ApiGatewayV2httpRequestContext {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
    );
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut v = serde_json::json!({
        "accountId": "123456789012",
        "apiId": "local",
        "domainName": host,
        "domainPrefix": host.split('.').next().unwrap_or(host),
        "http": {
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "protocol": format!("{:?}", parts.version),
            "sourceIp": source_ip,
            "userAgent": user_agent,
        },
        "requestId": request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": now.format(&fmt).unwrap_or_default(),
        "timeEpoch": (now.unix_timestamp_nanos() / 1_000_000) as i64,
    });
    if let Some(claims) = claims {
        v["authorizer"] = serde_json::json!({ "jwt": { "claims": claims, "scopes": null } });
    }
    serde_json::from_value(v).expect("the request context literal matches aws_lambda_events")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_routes_match_like_the_route_table() {
        let id = "0b6f0a52-55d4-4c4f-a7a4-7f9d3c1e2b10";
        assert!(is_agent_route("POST", "/v1/rules/generate"));
        assert!(is_agent_route("POST", "/v1/rules/dry-runs"));
        assert!(is_agent_route("GET", &format!("/v1/rules/dry-runs/{id}")));
        assert!(is_agent_route("POST", "/v1/sessions"));
        assert!(is_agent_route("GET", &format!("/v1/sessions/{id}")));
        assert!(is_agent_route(
            "POST",
            &format!("/v1/sessions/{id}/messages")
        ));
        // Other methods, empty or extra segments, and neighbours are not the agent's.
        assert!(!is_agent_route("GET", "/v1/rules/generate"));
        assert!(!is_agent_route("GET", "/v1/sessions"));
        assert!(!is_agent_route("GET", "/v1/sessions/"));
        assert!(!is_agent_route("POST", &format!("/v1/sessions/{id}")));
        assert!(!is_agent_route(
            "GET",
            &format!("/v1/sessions/{id}/messages")
        ));
        assert!(!is_agent_route(
            "POST",
            &format!("/v1/sessions/{id}/messages/1")
        ));
        assert!(!is_agent_route("POST", "/v1/sessions//messages"));
        assert!(!is_agent_route("POST", "/v1/rules/generate/x"));
        assert!(!is_agent_route("GET", &format!("/v1/jobs/{id}")));
    }
}
