//! A scripted model for tests: an HTTP server on 127.0.0.1 that speaks Bedrock Runtime's
//! Converse API (`POST /model/{modelId}/converse`) in its real wire shapes, so the real
//! `aws-sdk-bedrockruntime` client, pointed at [`ConverseServer::url`], parses every answer.
//!
//! Each test scripts its model: a queue of [`Step`]s (a text answer, a tool use, a `max_tokens`
//! stop, a service error with its `x-amzn-errortype` header), and/or a responder closure that
//! picks the step from the request it receives. The queue is used first; when it is empty the
//! responder answers; with neither, the server answers an error the SDK cannot mistake for a
//! model answer (`ScriptExhausted`), so a test that expected fewer calls fails loudly. Every
//! request is recorded (model id as decoded and as sent, body, whether it was signed).
//!
//! Like the service, the server refuses (400 `ValidationException`) a body that is not a JSON
//! object, an empty conversation, and tool blocks without a `toolConfig`.
//!
//! Not for: emulating a model (it says only what it is told), streaming (`ConverseStream`),
//! checking signatures, or production.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http::{HeaderMap, StatusCode, Uri};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A 200 answer: the assistant message's content blocks in wire shape (`{"text": ..}`,
    /// `{"toolUse": {..}}`), the stop reason as the service spells it (`end_turn`, `tool_use`,
    /// `max_tokens`, ...), and the usage to report (`None`: counted from the sizes).
    Reply {
        content: Vec<Value>,
        stop_reason: String,
        usage: Option<(u32, u32)>,
    },
    /// An error as the service sends it: this status, `x-amzn-errortype: {error_type}:...`, and
    /// `{"message": ..}`.
    Error {
        status: u16,
        error_type: String,
        message: String,
    },
    /// This status and body, as they are (e.g. a truncated or malformed answer).
    Raw { status: u16, body: String },
}

impl Step {
    /// The model answers `text` and ends its turn.
    pub fn text(text: &str) -> Step {
        Step::reply(vec![json!({ "text": text })], "end_turn")
    }

    /// The model asks for one tool (a fresh `toolUseId`) and waits.
    pub fn tool_use(name: &str, input: Value) -> Step {
        Step::tool_uses(None, &[(name, input)])
    }

    /// The model says `text` (if any), then asks for these tools, in order, and waits.
    pub fn tool_uses(text: Option<&str>, tools: &[(&str, Value)]) -> Step {
        let mut content: Vec<Value> = text.map(|t| json!({ "text": t })).into_iter().collect();
        for (name, input) in tools {
            content.push(json!({
                "toolUse": { "toolUseId": "", "name": name, "input": input }
            }));
        }
        Step::reply(content, "tool_use")
    }

    /// The answer is cut at the token limit.
    pub fn max_tokens(partial: &str) -> Step {
        Step::reply(vec![json!({ "text": partial })], "max_tokens")
    }

    /// Any reply.
    pub fn reply(content: Vec<Value>, stop_reason: &str) -> Step {
        Step::Reply {
            content,
            stop_reason: stop_reason.to_string(),
            usage: None,
        }
    }

    /// Sets the usage a reply reports (`totalTokens` is their sum). No effect on errors.
    pub fn with_usage(mut self, input_tokens: u32, output_tokens: u32) -> Step {
        if let Step::Reply { usage, .. } = &mut self {
            *usage = Some((input_tokens, output_tokens));
        }
        self
    }

    /// Any service error.
    pub fn error(status: u16, error_type: &str, message: &str) -> Step {
        Step::Error {
            status,
            error_type: error_type.to_string(),
            message: message.to_string(),
        }
    }

    /// 429 `ThrottlingException`, as when the account's tokens per minute are spent.
    pub fn throttling() -> Step {
        Step::error(
            429,
            "ThrottlingException",
            "Too many tokens, please wait before trying again.",
        )
    }

    /// 400 `ValidationException` with this message.
    pub fn validation(message: &str) -> Step {
        Step::error(400, "ValidationException", message)
    }

    /// 503 `ServiceUnavailableException`.
    pub fn service_unavailable() -> Step {
        Step::error(
            503,
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.",
        )
    }

    /// 408 `ModelTimeoutException`.
    pub fn model_timeout() -> Step {
        Step::error(
            408,
            "ModelTimeoutException",
            "Model has timed out in processing the request.",
        )
    }
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The model id, percent-decoded (as the caller wrote it).
    pub model_id: String,
    /// The request path as sent (`/model/us.anthropic...%3A0/converse`).
    pub path: String,
    /// The JSON body (`Value::Null` if it was not JSON).
    pub body: Value,
    /// Whether it carried a SigV4 `Authorization` header.
    pub signed: bool,
}

type Responder = Box<dyn Fn(&Value) -> Step + Send + Sync>;

#[derive(Default)]
struct Script {
    steps: Mutex<VecDeque<Step>>,
    responder: Mutex<Option<Responder>>,
    requests: Mutex<Vec<Recorded>>,
    calls: AtomicU32,
    tool_use_ids: AtomicU32,
}

/// Poisoned locks are taken over: one panicking test thread must not break later requests.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running server. Stops when dropped.
pub struct ConverseServer {
    url: String,
    script: Arc<Script>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ConverseServer {
    /// Binds 127.0.0.1 on a free port and serves until dropped.
    pub async fn start() -> std::io::Result<ConverseServer> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let script = Arc::new(Script::default());
        let app = Router::new()
            .route("/model/{model_id}/converse", post(converse))
            .with_state(script.clone());
        let (shutdown, mut rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = rx.wait_for(|v| *v).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "scripted Converse server stopped");
            }
        });
        Ok(ConverseServer {
            url,
            script,
            shutdown,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`: the endpoint to give the Bedrock Runtime client.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Queues a step (answers are taken in the order they were pushed).
    pub fn push(&self, step: Step) -> &Self {
        lock(&self.script.steps).push_back(step);
        self
    }

    /// Answers every request the queue does not, from what the request (its JSON body) holds.
    pub fn respond_with(&self, f: impl Fn(&Value) -> Step + Send + Sync + 'static) {
        *lock(&self.script.responder) = Some(Box::new(f));
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.script.requests).clone()
    }

    /// How many requests reached the server (retries included).
    pub fn calls(&self) -> u32 {
        self.script.calls.load(Ordering::SeqCst)
    }

    /// Queued steps not yet used.
    pub fn pending(&self) -> usize {
        lock(&self.script.steps).len()
    }
}

impl Drop for ConverseServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

async fn converse(
    State(script): State<Arc<Script>>,
    Path(model_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let n = script.calls.fetch_add(1, Ordering::SeqCst) + 1;
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    lock(&script.requests).push(Recorded {
        model_id,
        path: uri.path().to_string(),
        body: parsed.clone().unwrap_or(Value::Null),
        signed: headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 ")),
    });
    let request = match parsed.as_ref().map(invalid) {
        None => return error(400, "ValidationException", "The request body is not JSON."),
        Some(Some(why)) => return error(400, "ValidationException", &why),
        Some(None) => parsed.unwrap_or_default(),
    };
    let step = lock(&script.steps).pop_front();
    let step = step.or_else(|| lock(&script.responder).as_ref().map(|f| f(&request)));
    match step {
        Some(Step::Reply {
            content,
            stop_reason,
            usage,
        }) => reply(&script, &request, content, &stop_reason, usage),
        Some(Step::Error {
            status,
            error_type,
            message,
        }) => error(status, &error_type, &message),
        Some(Step::Raw { status, body }) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        None => error(
            418,
            "ScriptExhausted",
            &format!("scripted model: no step left for request {n}"),
        ),
    }
}

/// What the service would refuse before any model ran, if anything.
fn invalid(request: &Value) -> Option<String> {
    let Some(obj) = request.as_object() else {
        return Some("The request body must be a JSON object.".into());
    };
    let messages = obj.get("messages").and_then(Value::as_array);
    if messages.is_none_or(|m| m.is_empty()) {
        return Some("A conversation must start with a user message.".into());
    }
    let tool_blocks = messages.into_iter().flatten().any(|m| {
        m["content"].as_array().is_some_and(|c| {
            c.iter()
                .any(|b| b.get("toolUse").is_some() || b.get("toolResult").is_some())
        })
    });
    if tool_blocks && obj.get("toolConfig").is_none() {
        return Some(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
                .into(),
        );
    }
    None
}

fn reply(
    script: &Script,
    request: &Value,
    mut content: Vec<Value>,
    stop_reason: &str,
    usage: Option<(u32, u32)>,
) -> Response {
    for block in &mut content {
        if let Some(id) = block.pointer_mut("/toolUse/toolUseId") {
            if id.as_str().is_some_and(str::is_empty) {
                let n = script.tool_use_ids.fetch_add(1, Ordering::SeqCst) + 1;
                *id = Value::String(format!("tooluse_{n:04}"));
            }
        }
    }
    // Roughly 4 bytes a token, like the models' tokenisers on English text.
    let (input, output) = usage.unwrap_or_else(|| {
        (
            (request.to_string().len() / 4) as u32,
            (Value::Array(content.clone()).to_string().len() / 4) as u32,
        )
    });
    let body = json!({
        "output": { "message": { "role": "assistant", "content": content } },
        "stopReason": stop_reason,
        "usage": { "inputTokens": input, "outputTokens": output, "totalTokens": input + output },
        "metrics": { "latencyMs": 42 },
    });
    (
        StatusCode::OK,
        [
            (http::header::CONTENT_TYPE, "application/json".to_string()),
            (
                http::HeaderName::from_static("x-amzn-requestid"),
                uuid::Uuid::new_v4().to_string(),
            ),
        ],
        body.to_string(),
    )
        .into_response()
}

/// The service's error shape: the type in `x-amzn-errortype` (with the namespace suffix the
/// service adds, which the SDK strips), the message in the body.
fn error(status: u16, error_type: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [
            (http::header::CONTENT_TYPE, "application/json".to_string()),
            (
                http::HeaderName::from_static("x-amzn-errortype"),
                format!("{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            ),
            (
                http::HeaderName::from_static("x-amzn-requestid"),
                uuid::Uuid::new_v4().to_string(),
            ),
        ],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_refusals() {
        assert!(invalid(&json!([1])).is_some());
        assert!(invalid(&json!({"messages": []})).is_some());
        let tool_use = json!({"messages": [
            {"role": "user", "content": [{"text": "q"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t", "name": "n", "input": {}}}]},
        ]});
        assert!(invalid(&tool_use).unwrap().contains("toolConfig"));
        let mut with_config = tool_use.clone();
        with_config["toolConfig"] = json!({"tools": []});
        assert_eq!(invalid(&with_config), None);
    }

    #[test]
    fn steps_build_wire_shapes() {
        let s = Step::tool_uses(Some("Looking."), &[("run_query", json!({"a": 1}))]);
        let Step::Reply {
            content,
            stop_reason,
            ..
        } = s
        else {
            panic!()
        };
        assert_eq!(stop_reason, "tool_use");
        assert_eq!(content[0], json!({"text": "Looking."}));
        assert_eq!(content[1]["toolUse"]["name"], "run_query");
        assert_eq!(content[1]["toolUse"]["input"], json!({"a": 1}));
    }
}
