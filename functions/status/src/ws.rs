//! The WebSocket routes of the status function (API Gateway WebSocket API, route selection
//! `$request.body.action`): `$connect`, `$disconnect`, `subscribe`, `unsubscribe` and
//! `$default` (anything else, including bodies that are not JSON). The protocol is in
//! docs/websocket.md.
//!
//! Who the caller is comes from `requestContext.authorizer.principalId`, which the `$connect`
//! authorizer fills (in AWS a Lambda REQUEST authorizer that verifies `?token=`; locally the
//! runtime verifies it like the HTTP gateway). `$connect` stores that owner with the
//! connection; later messages read the owner from the stored connection.
//!
//! Replies (`subscribed`, the first snapshot, errors) are sent with `PostToConnection`, the same
//! path as stream pushes, so one code path delivers everything and ordering is per connection.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use serde_json::{json, Value};
use tessera_shared::config::Config;
use tessera_shared::job::{JobSnapshot, JobState};
use tessera_shared::store::connections::ConnectionStore;
use tessera_shared::store::jobs::JobStore;
use tessera_shared::store::StoreError;

use crate::notify::{Delivery, Notifier};

/// Largest client message handled (API Gateway's WebSocket frame size, 32 KiB).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;

/// What the WebSocket and stream handlers need, built once per process.
#[derive(Clone, Debug)]
pub struct WsState {
    pub config: Arc<Config>,
    pub jobs: JobStore,
    pub connections: ConnectionStore,
    pub notifier: Notifier,
}

impl WsState {
    pub fn new(config: Arc<Config>, clients: &tessera_shared::aws::Clients) -> Self {
        WsState {
            jobs: JobStore::new(clients.dynamodb.clone(), &config.jobs_table),
            connections: ConnectionStore::new(clients.dynamodb.clone(), &config.jobs_table),
            notifier: Notifier::new(&clients.sdk, config.ws_endpoint.as_deref()),
            config,
        }
    }
}

/// The message type of a job snapshot, from its state.
pub fn message_type(state: JobState) -> &'static str {
    match state {
        JobState::Completed => "job.completed",
        JobState::Failed => "job.failed",
        JobState::Cancelled => "job.cancelled",
        _ => "job.progress",
    }
}

/// `{"type": "job.*", "job": <snapshot>}`.
pub fn job_message(snapshot: &JobSnapshot) -> String {
    json!({ "type": message_type(snapshot.state), "job": snapshot }).to_string()
}

fn error_message(code: &str, message: &str) -> String {
    json!({ "type": "error", "code": code, "message": message }).to_string()
}

fn response(status: i64, body: Option<&str>) -> ApiGatewayProxyResponse {
    let mut r = ApiGatewayProxyResponse::default();
    r.status_code = status;
    r.body = body.map(|b| Body::Text(b.to_string()));
    r
}

/// Handles one WebSocket event. The returned status matters only for `$connect` (non-2xx
/// refuses the connection); for messages API Gateway ignores it (no route responses).
pub async fn handle(st: &WsState, ev: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let ctx = &ev.request_context;
    let route = ctx.route_key.clone().unwrap_or_default();
    let Some(conn) = ctx.connection_id.clone() else {
        tracing::warn!(route, "WebSocket event without a connection id");
        return response(400, Some("no connection id"));
    };
    let span = tracing::info_span!("ws", route = %route, connection = %conn,
        request_id = ctx.request_id.as_deref().unwrap_or(""));
    let _g = span.enter();
    let result = match route.as_str() {
        "$connect" => connect(st, &ev, &conn).await,
        "$disconnect" => st
            .connections
            .remove_connection(&conn, None)
            .await
            .map(|_| response(200, None)),
        _ => message(st, &conn, ev.body.as_deref().unwrap_or("")).await,
    };
    match result {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "WebSocket route failed");
            response(500, Some("internal error"))
        }
    }
}

async fn connect(
    st: &WsState,
    ev: &ApiGatewayWebsocketProxyRequest,
    conn: &str,
) -> Result<ApiGatewayProxyResponse, StoreError> {
    let owner = ev
        .request_context
        .authorizer
        .fields
        .get("principalId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let Some(owner) = owner else {
        // No authorizer ran (misconfigured API): refuse rather than accept anonymous sockets.
        tracing::warn!("$connect without an authorizer principal: refused");
        return Ok(response(401, Some("unauthorized")));
    };
    st.connections.put_connection(conn, owner).await?;
    tracing::info!(owner, "connected");
    Ok(response(200, None))
}

#[derive(serde::Deserialize)]
struct Incoming {
    action: Option<String>,
    job_id: Option<String>,
}

async fn message(
    st: &WsState,
    conn: &str,
    body: &str,
) -> Result<ApiGatewayProxyResponse, StoreError> {
    if body.len() > MAX_MESSAGE_BYTES {
        reply(
            st,
            conn,
            &error_message(
                "message_too_large",
                &format!(
                    "Messages are limited to {MAX_MESSAGE_BYTES} bytes; this one has {}.",
                    body.len()
                ),
            ),
        )
        .await?;
        return Ok(response(200, None));
    }
    let parsed: Result<Incoming, _> = serde_json::from_str(body);
    let (action, job_id) = match parsed {
        Ok(Incoming {
            action: Some(a),
            job_id,
        }) => (a, job_id),
        _ => {
            reply(
                st,
                conn,
                &error_message(
                    "bad_message",
                    r#"Send JSON like {"action":"subscribe","job_id":"<id>"}."#,
                ),
            )
            .await?;
            return Ok(response(200, None));
        }
    };
    if action != "subscribe" && action != "unsubscribe" {
        reply(
            st,
            conn,
            &error_message(
                "unknown_action",
                "The action must be \"subscribe\" or \"unsubscribe\".",
            ),
        )
        .await?;
        return Ok(response(200, None));
    }
    let Some(job_id) = job_id.filter(|j| !j.is_empty()) else {
        reply(
            st,
            conn,
            &error_message("bad_message", "The message needs a \"job_id\"."),
        )
        .await?;
        return Ok(response(200, None));
    };
    let Some(connection) = st.connections.connection(conn).await? else {
        // Expired (TTL) or removed: API Gateway would have closed it too.
        tracing::warn!("message on an unknown connection");
        return Ok(response(410, None));
    };
    if action == "unsubscribe" {
        st.connections.unsubscribe(conn, &job_id).await?;
        reply(
            st,
            conn,
            &json!({ "type": "unsubscribed", "job_id": job_id }).to_string(),
        )
        .await?;
        return Ok(response(200, None));
    }
    // Another owner's job is indistinguishable from a missing one.
    let job = match tessera_shared::control::owned_job(&st.jobs, &connection.owner, &job_id).await {
        Ok(job) => Some(job),
        Err(tessera_shared::control::ControlError::Store(e)) => return Err(e),
        Err(_) => None,
    };
    let Some(job) = job else {
        reply(
            st,
            conn,
            &json!({ "type": "error", "code": "not_found", "job_id": job_id,
                     "message": "No such job." })
            .to_string(),
        )
        .await?;
        return Ok(response(200, None));
    };
    // `subscribed` goes out before the subscription exists, so no stream push can overtake it;
    // pushes may still overtake the snapshot below (clients keep the newest `updated_at`).
    reply(
        st,
        conn,
        &json!({ "type": "subscribed", "job_id": job_id }).to_string(),
    )
    .await?;
    st.connections
        .subscribe(conn, &connection.owner, &job_id)
        .await?;
    let job = st.jobs.with_progress(job).await?;
    reply(st, conn, &job_message(&job.snapshot())).await?;
    tracing::info!(job_id, "subscribed");
    Ok(response(200, None))
}

/// Sends to the caller's own connection; a gone connection is removed.
async fn reply(st: &WsState, conn: &str, text: &str) -> Result<(), StoreError> {
    if st.notifier.send(conn, text).await? == Delivery::Gone {
        st.connections.remove_connection(conn, None).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_types_follow_the_state() {
        assert_eq!(message_type(JobState::Processing), "job.progress");
        assert_eq!(message_type(JobState::Queued), "job.progress");
        assert_eq!(message_type(JobState::Completed), "job.completed");
        assert_eq!(message_type(JobState::Failed), "job.failed");
        assert_eq!(message_type(JobState::Cancelled), "job.cancelled");
    }
}
