//! Fault injection between the functions and the AWS emulator: an HTTP proxy on 127.0.0.1 that
//! forwards every request to moto unchanged, except those a scripted [`Plan`] picks, which get a
//! fault in the real wire shape (S3's XML errors, DynamoDB's and SQS's JSON errors with
//! `x-amzn-ErrorType`/`__type`, a `TransactionCanceledException` with cancellation reasons, a
//! response body cut after K bytes, or a delay).
//!
//! For: tests that point a stack's AWS endpoint at [`FaultProxy::url`] and check the pipeline
//! ends every job exactly or fails it retryably. Each [`Rule`] counts what it injected, so a test
//! can assert its fault really fired. Not for: production, load (every body is buffered on the
//! way in), or emulating AWS semantics (moto does that; the proxy only breaks answers).
//!
//! Why a proxy and not SDK interceptors: it needs no change in the functions (they only see a
//! different endpoint), it breaks the HTTP exchange itself (a cut body is a real truncated
//! stream), and the SDK's own retries run exactly as in AWS, so a fault that the SDK absorbs is
//! seen as absorbed.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode};
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod answers;
use answers::{cut, json_error, plain, s3_error, transaction_canceled};

/// The AWS service a request is for, as the proxy tells it from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    S3,
    DynamoDb,
    DynamoDbStreams,
    Sqs,
    Other,
}

/// What a matched request gets instead of (or on top of) moto's answer.
#[derive(Debug, Clone)]
pub enum Fault {
    /// An S3 error document (`<Error><Code>..`) with this status, e.g. 503 `SlowDown`.
    S3Error { status: u16, code: &'static str },
    /// A JSON-protocol error (DynamoDB, SQS): `__type` and `x-amzn-ErrorType` set to `error_type`.
    JsonError {
        status: u16,
        error_type: &'static str,
    },
    /// DynamoDB `TransactionCanceledException` with this reason for every item.
    TransactionCanceled { reason: &'static str },
    /// moto's answer, with the body cut after this many bytes (the connection then aborts).
    CutBody { after: usize },
    /// moto's answer, this much later.
    Delay(Duration),
}

/// Which requests a rule applies to, and how many of them it breaks.
#[derive(Debug, Clone)]
pub struct Rule {
    pub service: Service,
    /// The operation name as AWS spells it (`GetObject`, `TransactWriteItems`, ...).
    pub operation: &'static str,
    /// For S3, a substring of the object key (`/source`, `/parts/result/`); `None`: any.
    pub key_contains: Option<String>,
    /// A substring of the request body (e.g. a DynamoDB update that sets `"completed"`); `None`:
    /// any.
    pub body_contains: Option<String>,
    /// Let this many matching requests through untouched before injecting.
    pub skip: u32,
    /// Inject into this many matching requests, then let the rest through.
    pub times: u32,
    pub fault: Fault,
}

impl Rule {
    /// A rule that breaks the first `times` requests of `operation` with `fault`.
    pub fn new(service: Service, operation: &'static str, times: u32, fault: Fault) -> Self {
        Rule {
            service,
            operation,
            key_contains: None,
            body_contains: None,
            skip: 0,
            times,
            fault,
        }
    }

    pub fn key_contains(mut self, part: &str) -> Self {
        self.key_contains = Some(part.to_string());
        self
    }

    pub fn body_contains(mut self, part: &str) -> Self {
        self.body_contains = Some(part.to_string());
        self
    }

    pub fn skip(mut self, n: u32) -> Self {
        self.skip = n;
        self
    }
}

struct Armed {
    rule: Rule,
    seen: AtomicU32,
    injected: AtomicU32,
}

/// The scripted plan: rules in the order they were added; the first whose turn it is wins.
/// Thread-safe; rules can be added and removed while requests flow.
#[derive(Default)]
pub struct Plan {
    rules: Mutex<Vec<Arc<Armed>>>,
}

/// A handle on an added rule: how many faults it injected so far.
#[derive(Clone)]
pub struct RuleHandle(Arc<Armed>);

impl RuleHandle {
    pub fn injected(&self) -> u32 {
        self.0.injected.load(Ordering::SeqCst)
    }
    /// Matching requests seen so far (injected or let through).
    pub fn seen(&self) -> u32 {
        self.0.seen.load(Ordering::SeqCst)
    }
}

impl Plan {
    pub fn add(&self, rule: Rule) -> RuleHandle {
        let armed = Arc::new(Armed {
            rule,
            seen: AtomicU32::new(0),
            injected: AtomicU32::new(0),
        });
        self.lock().push(armed.clone());
        RuleHandle(armed)
    }

    /// Removes every rule (answers go through untouched from now on).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Armed>>> {
        // A panicking test thread must not turn every later request into a panic.
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fault for this request, if a rule takes it (counting under the lock, so the "3rd
    /// request" is the 3rd even when requests race).
    fn pick(&self, op: &Operation, body: &[u8]) -> Option<Fault> {
        let rules = self.lock();
        for a in rules.iter() {
            let r = &a.rule;
            if r.service != op.service || r.operation != op.name {
                continue;
            }
            if let Some(part) = &r.key_contains {
                if !op.key.contains(part.as_str()) {
                    continue;
                }
            }
            if let Some(part) = &r.body_contains {
                let found = body
                    .windows(part.len().max(1))
                    .any(|w| w == part.as_bytes());
                if !found {
                    continue;
                }
            }
            let n = a.seen.fetch_add(1, Ordering::SeqCst);
            if n >= r.skip && a.injected.load(Ordering::SeqCst) < r.times {
                a.injected.fetch_add(1, Ordering::SeqCst);
                return Some(r.fault.clone());
            }
        }
        None
    }
}

/// A request as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub service: Service,
    pub name: String,
    /// S3: the object key (path after the bucket); others: empty.
    pub key: String,
}

/// Tells the service and operation from a request: `X-Amz-Target` for the JSON protocols
/// (DynamoDB, DynamoDB Streams, SQS), `Action=` for SQS's query protocol, otherwise S3 from the
/// method, path (path-style: `/bucket/key`) and query.
pub fn classify(
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Operation {
    let op = |service, name: &str| Operation {
        service,
        name: name.to_string(),
        key: String::new(),
    };
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let (prefix, name) = target.split_once('.').unwrap_or((target, ""));
        let service = if prefix.starts_with("DynamoDBStreams") {
            Service::DynamoDbStreams
        } else if prefix.starts_with("DynamoDB") {
            Service::DynamoDb
        } else if prefix.starts_with("AmazonSQS") {
            Service::Sqs
        } else {
            Service::Other
        };
        return op(service, name);
    }
    let form = std::str::from_utf8(body).unwrap_or("");
    if let Some(action) = query
        .split('&')
        .chain(form.split('&'))
        .find_map(|p| p.strip_prefix("Action="))
    {
        return op(Service::Sqs, action);
    }
    if path.starts_with("/moto-api") {
        return op(Service::Other, "moto");
    }
    let has = |k: &str| {
        query
            .split('&')
            .any(|p| p == k || p.starts_with(&format!("{k}=")))
    };
    let key = path
        .trim_start_matches('/')
        .split_once('/')
        .map(|(_, k)| k.to_string())
        .unwrap_or_default();
    let copy = headers.contains_key("x-amz-copy-source");
    let name = match *method {
        Method::GET if key.is_empty() && has("list-type") => "ListObjectsV2",
        Method::GET if key.is_empty() => "ListObjects",
        Method::GET if has("uploadId") => "ListParts",
        Method::GET => "GetObject",
        Method::HEAD if key.is_empty() => "HeadBucket",
        Method::HEAD => "HeadObject",
        Method::PUT if has("partNumber") && copy => "UploadPartCopy",
        Method::PUT if has("partNumber") => "UploadPart",
        Method::PUT if copy => "CopyObject",
        Method::PUT if key.is_empty() => "CreateBucket",
        Method::PUT => "PutObject",
        Method::POST if has("uploads") => "CreateMultipartUpload",
        Method::POST if has("uploadId") => "CompleteMultipartUpload",
        Method::POST if has("delete") => "DeleteObjects",
        Method::DELETE if has("uploadId") => "AbortMultipartUpload",
        Method::DELETE => "DeleteObject",
        _ => "Unknown",
    };
    Operation {
        service: Service::S3,
        name: name.to_string(),
        key,
    }
}

/// A running proxy. Dropping it stops it.
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`: give it to the stack as its AWS endpoint.
    pub url: String,
    pub plan: Arc<Plan>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

#[derive(Clone)]
struct Ctx {
    upstream: String,
    plan: Arc<Plan>,
    http: reqwest::Client,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the fault proxy cannot listen on 127.0.0.1: {0}")]
    Bind(std::io::Error),
    #[error("the fault proxy cannot build its HTTP client: {0}")]
    Client(reqwest::Error),
}

impl FaultProxy {
    /// Starts a proxy on a free port of 127.0.0.1 in front of `upstream` (moto's URL).
    pub async fn start(upstream: &str) -> Result<FaultProxy, ProxyError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(ProxyError::Bind)?;
        let port = listener.local_addr().map_err(ProxyError::Bind)?.port();
        let http = reqwest::Client::builder()
            // The SDK follows nothing itself; neither may its proxy.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ProxyError::Client)?;
        let plan = Arc::new(Plan::default());
        let ctx = Ctx {
            upstream: upstream.trim_end_matches('/').to_string(),
            plan: plan.clone(),
            http,
        };
        let app = axum::Router::new().fallback(forward).with_state(ctx);
        let (shutdown, mut rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = rx.wait_for(|v| *v).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "fault proxy stopped");
            }
        });
        Ok(FaultProxy {
            url: format!("http://127.0.0.1:{port}"),
            plan,
            shutdown,
            task,
        })
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

/// Headers that belong to one hop, not to the request (reqwest sets its own).
const HOP: [&str; 5] = [
    "host",
    "connection",
    "transfer-encoding",
    "expect",
    "content-length",
];

async fn forward(State(ctx): State<Ctx>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("request body: {e}")),
    };
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let op = classify(&parts.method, &path, &query, &parts.headers, &body);
    let fault = ctx.plan.pick(&op, &body);
    if let Some(f) = &fault {
        tracing::info!(?op, fault = ?f, "injecting a fault");
    }
    match fault {
        Some(Fault::S3Error { status, code }) => return s3_error(status, code, &parts.method),
        Some(Fault::JsonError { status, error_type }) => {
            return json_error(op.service, status, error_type, serde_json::json!({}))
        }
        Some(Fault::TransactionCanceled { reason }) => return transaction_canceled(&body, reason),
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        _ => {}
    }
    let url = if query.is_empty() {
        format!("{}{path}", ctx.upstream)
    } else {
        format!("{}{path}?{query}", ctx.upstream)
    };
    let mut headers = parts.headers.clone();
    for h in HOP {
        headers.remove(h);
    }
    let sent = ctx
        .http
        .request(parts.method.clone(), url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let upstream = match sent {
        Ok(r) => r,
        Err(e) => return plain(StatusCode::BAD_GATEWAY, format!("the emulator: {e}")),
    };
    let mut out = Response::builder().status(upstream.status());
    for (k, v) in upstream.headers() {
        if k != "transfer-encoding" && k != "connection" {
            out = out.header(k, v);
        }
    }
    let stream = upstream.bytes_stream();
    let body = match fault {
        Some(Fault::CutBody { after }) => Body::from_stream(cut(stream, after)),
        _ => Body::from_stream(stream),
    };
    out.body(body)
        .unwrap_or_else(|e| plain(StatusCode::BAD_GATEWAY, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn s3(method: Method, path: &str, query: &str) -> (String, String) {
        let op = classify(&method, path, query, &HeaderMap::new(), b"");
        assert_eq!(op.service, Service::S3);
        (op.name, op.key)
    }

    #[test]
    fn operations_are_told_from_the_request() {
        let k = "results/alice/j1/parts/result/000001".to_string();
        let path = format!("/bucket/{k}");
        assert_eq!(
            s3(Method::GET, &path, "x-id=GetObject"),
            ("GetObject".into(), k.clone())
        );
        assert_eq!(s3(Method::PUT, &path, "x-id=PutObject").0, "PutObject");
        assert_eq!(
            s3(Method::PUT, &path, "partNumber=2&uploadId=u").0,
            "UploadPart"
        );
        assert_eq!(
            s3(Method::POST, &path, "uploads").0,
            "CreateMultipartUpload"
        );
        assert_eq!(
            s3(Method::POST, &path, "uploadId=u").0,
            "CompleteMultipartUpload"
        );
        assert_eq!(
            s3(Method::GET, "/bucket", "list-type=2&prefix=a").0,
            "ListObjectsV2"
        );
        assert_eq!(s3(Method::HEAD, &path, "").0, "HeadObject");

        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-target",
            HeaderValue::from_static("DynamoDB_20120810.TransactWriteItems"),
        );
        let op = classify(&Method::POST, "/", "", &h, b"{}");
        assert_eq!(
            (op.service, op.name.as_str()),
            (Service::DynamoDb, "TransactWriteItems")
        );
        h.insert(
            "x-amz-target",
            HeaderValue::from_static("DynamoDBStreams_20120810.GetRecords"),
        );
        let op = classify(&Method::POST, "/", "", &h, b"{}");
        assert_eq!(op.service, Service::DynamoDbStreams);
        h.insert(
            "x-amz-target",
            HeaderValue::from_static("AmazonSQS.SendMessageBatch"),
        );
        let op = classify(&Method::POST, "/", "", &h, b"{}");
        assert_eq!(
            (op.service, op.name.as_str()),
            (Service::Sqs, "SendMessageBatch")
        );
        // SQS's query protocol (older SDKs, the CLI).
        let op = classify(
            &Method::POST,
            "/",
            "",
            &HeaderMap::new(),
            b"Action=SendMessage&QueueUrl=q",
        );
        assert_eq!(
            (op.service, op.name.as_str()),
            (Service::Sqs, "SendMessage")
        );
    }

    #[test]
    fn a_rule_skips_then_injects_its_count_then_lets_through() {
        let plan = Plan::default();
        let f = Fault::Delay(Duration::ZERO);
        let h = plan.add(
            Rule::new(Service::S3, "GetObject", 2, f)
                .key_contains("/source")
                .skip(1),
        );
        let op = |key: &str| Operation {
            service: Service::S3,
            name: "GetObject".into(),
            key: key.into(),
        };
        let picks: Vec<bool> = (0..5)
            .map(|_| plan.pick(&op("u/j/source"), b"").is_some())
            .collect();
        assert_eq!(picks, [false, true, true, false, false]);
        assert!(plan.pick(&op("other"), b"").is_none());
        assert_eq!((h.seen(), h.injected()), (5, 2));
        plan.clear();
        assert!(plan.pick(&op("u/j/source"), b"").is_none());
    }
}

#[cfg(test)]
mod wire {
    use super::*;

    /// An upstream that answers every request with `0123456789`.
    async fn upstream() -> String {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let app = axum::Router::new().fallback(|| async { "0123456789" });
        tokio::spawn(async move { axum::serve(l, app).await });
        url
    }

    #[tokio::test]
    async fn a_cut_body_is_short_and_an_error() {
        let proxy = FaultProxy::start(&upstream().await).await.unwrap();
        let cut = proxy.plan.add(Rule::new(
            Service::S3,
            "GetObject",
            1,
            Fault::CutBody { after: 4 },
        ));
        let r = reqwest::get(format!("{}/b/k", proxy.url)).await.unwrap();
        assert_eq!(r.status(), 200);
        let got = r.bytes().await;
        assert!(got.is_err(), "{got:?}");
        assert_eq!(cut.injected(), 1);
        let whole = reqwest::get(format!("{}/b/k", proxy.url)).await.unwrap();
        assert_eq!(whole.bytes().await.unwrap(), "0123456789");
    }
}
