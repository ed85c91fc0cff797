//! The local API Gateway WebSocket API, beside the HTTP gateway on the same port:
//!
//! - `GET /v1/ws?token=<jwt>` upgrades to a WebSocket. The token is verified first, like the
//!   HTTP gateway (in AWS: the `$connect` authorizer); without a valid one the answer is 401 and
//!   there is no upgrade. Then the status function gets a real-shaped `$connect` event (its
//!   `requestContext.authorizer.principalId` is the token's `sub`), and a non-2xx answer refuses
//!   the connection.
//! - Each text message becomes a MESSAGE event whose `routeKey` is chosen like API Gateway's
//!   route selection expression `$request.body.action`: `subscribe`, `unsubscribe`, otherwise
//!   `$default`. Messages are handled one at a time per connection.
//! - When the socket closes, a `$disconnect` event (unless [`WsOptions::deliver_disconnect`] is
//!   off: API Gateway delivers `$disconnect` on a best-effort basis, and tests use this to make
//!   the status function find gone connections through 410s).
//! - The management API at `<http>/local/@connections/{id}` (what `TESSERA_WS_ENDPOINT` points
//!   the status function at): `POST` delivers the body to the socket, `DELETE` closes it, `GET`
//!   describes it; an unknown or closed connection is `410 GoneException`. Requests must be
//!   SigV4-signed (the header's presence is checked, not the signature), so a web page cannot
//!   post to it with a simple cross-origin request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tessera_shared::error::{ApiError, REQUEST_ID};
use tessera_status::ws::WsState;
use tokio::sync::mpsc;

use crate::auth::JwtKey;

/// The stage name in the management endpoint's path (`/{stage}/@connections/{id}`).
pub const STAGE: &str = "local";
/// The WebSocket route.
pub const WS_PATH: &str = "/v1/ws";
/// API Gateway's largest WebSocket message (frames are 32 KiB; larger messages are refused by
/// the status function, see `tessera_status::ws::MAX_MESSAGE_BYTES`).
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// The management endpoint for a gateway at `http_url`.
pub fn management_endpoint(http_url: &str) -> String {
    format!("{http_url}/{STAGE}")
}

/// Test hooks.
#[derive(Debug, Clone, Copy)]
pub struct WsOptions {
    /// Send `$disconnect` when a socket closes (default true).
    pub deliver_disconnect: bool,
}

impl Default for WsOptions {
    fn default() -> Self {
        WsOptions {
            deliver_disconnect: true,
        }
    }
}

enum Outbound {
    Text(String),
    Close,
}

struct Conn {
    tx: mpsc::UnboundedSender<Outbound>,
    connected_at: i64,
    source_ip: String,
}

/// The emulated WebSocket API.
pub struct WsGateway {
    key: JwtKey,
    status: WsState,
    opts: WsOptions,
    conns: Mutex<HashMap<String, Conn>>,
}

impl WsGateway {
    pub fn new(key: JwtKey, status: WsState, opts: WsOptions) -> Arc<Self> {
        Arc::new(WsGateway {
            key,
            status,
            opts,
            conns: Mutex::new(HashMap::new()),
        })
    }

    /// Open connections (tests).
    pub fn connection_count(&self) -> usize {
        self.conns.lock().expect("connections lock").len()
    }
}

/// The WebSocket route and the management endpoint.
pub fn router(gw: Arc<WsGateway>) -> Router {
    Router::new()
        .route(WS_PATH, get(upgrade))
        .route(
            &format!("/{STAGE}/@connections/{{id}}"),
            post(post_to_connection)
                .delete(delete_connection)
                .get(get_connection),
        )
        .with_state(gw)
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn request_time(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
    );
    t.format(&fmt).unwrap_or_default()
}

/// A WebSocket event as API Gateway sends it.
#[allow(clippy::too_many_arguments)]
fn event(
    route: &str,
    event_type: &str,
    conn: &str,
    connected_at: i64,
    host: &str,
    source_ip: &str,
    principal: Option<&str>,
    extra: Value,
) -> ApiGatewayWebsocketProxyRequest {
    let now = now_ms();
    let request_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
    let mut ctx = json!({
        "routeKey": route,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": request_time(now),
        "messageDirection": "IN",
        "stage": STAGE,
        "connectedAt": connected_at,
        "requestTimeEpoch": now,
        "identity": { "sourceIp": source_ip },
        "requestId": request_id,
        "domainName": host,
        "connectionId": conn,
        "apiId": "local",
    });
    if let Some(p) = principal {
        ctx["authorizer"] = json!({ "principalId": p, "integrationLatency": 0 });
    }
    let mut ev = json!({ "requestContext": ctx, "isBase64Encoded": false });
    if let Value::Object(m) = extra {
        for (k, v) in m {
            ev[k] = v;
        }
    }
    serde_json::from_value(ev).expect("the WebSocket event literal matches aws_lambda_events")
}

/// API Gateway's route selection on `$request.body.action`.
fn route_of(body: &str) -> &'static str {
    let action = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("action").and_then(Value::as_str).map(str::to_owned));
    match action.as_deref() {
        Some("subscribe") => "subscribe",
        Some("unsubscribe") => "unsubscribe",
        _ => "$default",
    }
}

async fn unauthorized() -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    REQUEST_ID
        .scope(request_id, async {
            ApiError::unauthorized().into_response()
        })
        .await
}

async fn upgrade(
    State(gw): State<Arc<WsGateway>>,
    Query(q): Query<HashMap<String, String>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let claims = match q.get("token").map(|t| gw.key.verify(t)) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            tracing::info!(error = %e, "WebSocket token rejected");
            return unauthorized().await;
        }
        None => return unauthorized().await,
    };
    let sub = claims.get("sub").cloned().unwrap_or_default();
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let conn = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
    let connected_at = now_ms();
    let source_ip = peer.ip().to_string();
    let query: HashMap<String, Vec<String>> = q
        .iter()
        .map(|(k, v)| (k.clone(), vec![v.clone()]))
        .collect();
    let hdrs: HashMap<String, String> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let ev = event(
        "$connect",
        "CONNECT",
        &conn,
        connected_at,
        &host,
        &source_ip,
        Some(&sub),
        json!({
            "headers": hdrs,
            "queryStringParameters": q,
            "multiValueQueryStringParameters": query,
        }),
    );
    let resp = tessera_status::ws::handle(&gw.status, ev).await;
    if !(200..300).contains(&resp.status_code) {
        let code = StatusCode::from_u16(resp.status_code as u16)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (code, "connection refused by $connect").into_response();
    }
    let (tx, rx) = mpsc::unbounded_channel();
    gw.conns.lock().expect("connections lock").insert(
        conn.clone(),
        Conn {
            tx,
            connected_at,
            source_ip: source_ip.clone(),
        },
    );
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| run(gw, socket, rx, conn, sub, host, source_ip, connected_at))
}

#[allow(clippy::too_many_arguments)]
async fn run(
    gw: Arc<WsGateway>,
    socket: WebSocket,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    conn: String,
    sub: String,
    host: String,
    source_ip: String,
    connected_at: i64,
) {
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            match out {
                Outbound::Text(t) => {
                    if sink.send(Message::Text(t.into())).await.is_err() {
                        break;
                    }
                }
                Outbound::Close => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            }
        }
    });
    while let Some(msg) = stream.next().await {
        let body = match msg {
            Ok(Message::Text(t)) => t.to_string(),
            Ok(Message::Binary(b)) => String::from_utf8_lossy(&b).into_owned(),
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let route = route_of(&body);
        let ev = event(
            route,
            "MESSAGE",
            &conn,
            connected_at,
            &host,
            &source_ip,
            Some(&sub),
            json!({ "body": body }),
        );
        tessera_status::ws::handle(&gw.status, ev).await;
    }
    // Gone from the management API's point of view at once: pushes now get 410.
    gw.conns.lock().expect("connections lock").remove(&conn);
    writer.abort();
    if gw.opts.deliver_disconnect {
        let ev = event(
            "$disconnect",
            "DISCONNECT",
            &conn,
            connected_at,
            &host,
            &source_ip,
            Some(&sub),
            json!({}),
        );
        tessera_status::ws::handle(&gw.status, ev).await;
    }
}

fn signed(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 "))
}

fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-errortype", kind.to_string()),
            ("content-type", "application/json".to_string()),
        ],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

fn gone() -> Response {
    aws_error(StatusCode::GONE, "GoneException", "")
}

fn forbidden() -> Response {
    aws_error(
        StatusCode::FORBIDDEN,
        "ForbiddenException",
        "Missing Authentication Token",
    )
}

async fn post_to_connection(
    State(gw): State<Arc<WsGateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !signed(&headers) {
        return forbidden();
    }
    if body.len() > MAX_MESSAGE_BYTES {
        return aws_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            "Message too large",
        );
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let conns = gw.conns.lock().expect("connections lock");
    match conns.get(&id) {
        Some(c) if c.tx.send(Outbound::Text(text)).is_ok() => StatusCode::OK.into_response(),
        _ => gone(),
    }
}

async fn delete_connection(
    State(gw): State<Arc<WsGateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !signed(&headers) {
        return forbidden();
    }
    match gw.conns.lock().expect("connections lock").remove(&id) {
        Some(c) => {
            let _ = c.tx.send(Outbound::Close);
            StatusCode::NO_CONTENT.into_response()
        }
        None => gone(),
    }
}

async fn get_connection(
    State(gw): State<Arc<WsGateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !signed(&headers) {
        return forbidden();
    }
    match gw.conns.lock().expect("connections lock").get(&id) {
        Some(c) => axum::Json(json!({
            "connectedAt": request_time(c.connected_at),
            "identity": { "sourceIp": c.source_ip },
            "lastActiveAt": request_time(now_ms()),
        }))
        .into_response(),
        None => gone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_selection_follows_the_action() {
        assert_eq!(
            route_of(r#"{"action":"subscribe","job_id":"x"}"#),
            "subscribe"
        );
        assert_eq!(route_of(r#"{"action":"unsubscribe"}"#), "unsubscribe");
        assert_eq!(route_of(r#"{"action":"dance"}"#), "$default");
        assert_eq!(route_of("not json"), "$default");
    }

    #[test]
    fn events_have_the_api_gateway_shape() {
        let ev = event(
            "$connect",
            "CONNECT",
            "abc",
            1,
            "127.0.0.1:3000",
            "127.0.0.1",
            Some("alice"),
            json!({ "queryStringParameters": { "token": "t" } }),
        );
        let c = &ev.request_context;
        assert_eq!(c.route_key.as_deref(), Some("$connect"));
        assert_eq!(c.event_type.as_deref(), Some("CONNECT"));
        assert_eq!(c.connection_id.as_deref(), Some("abc"));
        assert_eq!(c.stage.as_deref(), Some(STAGE));
        assert_eq!(c.authorizer.fields["principalId"], "alice");
        assert_eq!(ev.query_string_parameters.first("token"), Some("t"));
    }
}
