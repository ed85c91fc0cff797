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
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tokio::sync::watch;
use tokio::task::JoinHandle;

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
            skip: 0,
            times,
            fault,
        }
    }

    pub fn key_contains(mut self, part: &str) -> Self {
        self.key_contains = Some(part.to_string());
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
    fn pick(&self, op: &Operation) -> Option<Fault> {
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
    let fault = ctx.plan.pick(&op);
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

/// The stream's first `after` bytes, then an error: hyper aborts the connection mid-body, which
/// the client sees as a body shorter than its `Content-Length`. (A body no longer than `after`
/// is cut after its end: still an aborted connection, so the fault still shows.)
fn cut(
    stream: impl futures::Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    after: usize,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    stream
        .scan(after, |left, r| {
            let out = match r {
                Err(e) => Some(Err(std::io::Error::other(e))),
                Ok(_) if *left == 0 => None,
                Ok(chunk) => {
                    let n = chunk.len().min(*left);
                    *left -= n;
                    Some(Ok(chunk.slice(..n)))
                }
            };
            futures::future::ready(out)
        })
        // The pause lets hyper flush the headers and the head before the error aborts the
        // connection; without it the client sees no answer at all, and the SDK retries that.
        .chain(futures::stream::once(async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(std::io::Error::other("fault injected: body cut"))
        }))
}

fn plain(status: StatusCode, msg: String) -> Response {
    Response::builder()
        .status(status)
        .body(Body::from(msg))
        .expect("a static response")
}

fn request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string().to_uppercase()
}

/// S3's REST-XML error: the status, `x-amz-request-id`, and `<Error>` with `Code` (none on HEAD,
/// like S3).
fn s3_error(status: u16, code: &str, method: &Method) -> Response {
    let rid = request_id();
    let body = if *method == Method::HEAD {
        String::new()
    } else {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>Fault injected by the test proxy</Message><RequestId>{rid}</RequestId><HostId>faults</HostId></Error>"
        )
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .header("x-amz-request-id", rid)
        .body(Body::from(body))
        .expect("a static response")
}

/// The awsJson1_0 error shape DynamoDB and SQS answer with: `__type` (namespaced) and
/// `x-amzn-ErrorType`; SQS adds `x-amzn-query-error` for clients that map query-protocol codes.
fn json_error(
    service: Service,
    status: u16,
    error_type: &str,
    mut extra: serde_json::Value,
) -> Response {
    let ns = match service {
        Service::Sqs => "com.amazonaws.sqs",
        Service::DynamoDbStreams => "com.amazonaws.dynamodb.v20120810",
        _ => "com.amazonaws.dynamodb.v20120810",
    };
    if let Some(m) = extra.as_object_mut() {
        m.insert("__type".into(), format!("{ns}#{error_type}").into());
        m.entry("message")
            .or_insert_with(|| "Fault injected by the test proxy".into());
    }
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-errortype", error_type)
        .header("x-amzn-requestid", request_id());
    if service == Service::Sqs {
        let fault = if status >= 500 { "Receiver" } else { "Sender" };
        b = b.header(
            "x-amzn-query-error",
            HeaderValue::from_str(&format!("{error_type};{fault}"))
                .unwrap_or(HeaderValue::from_static("InternalError;Receiver")),
        );
    }
    b.body(Body::from(extra.to_string()))
        .expect("a static response")
}

/// `TransactionCanceledException` with one reason per item of the request (as DynamoDB gives).
fn transaction_canceled(body: &[u8], reason: &str) -> Response {
    let items = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["TransactItems"].as_array().map(Vec::len))
        .unwrap_or(1);
    let reasons: Vec<serde_json::Value> = (0..items)
        .map(|i| {
            if i == 0 {
                serde_json::json!({"Code": reason, "Message": "Fault injected by the test proxy"})
            } else {
                serde_json::json!({"Code": "None"})
            }
        })
        .collect();
    let codes: Vec<&str> = (0..items)
        .map(|i| if i == 0 { reason } else { "None" })
        .collect();
    json_error(
        Service::DynamoDb,
        400,
        "TransactionCanceledException",
        serde_json::json!({
            "message": format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]", codes.join(", ")),
            "CancellationReasons": reasons,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
            .map(|_| plan.pick(&op("u/j/source")).is_some())
            .collect();
        assert_eq!(picks, [false, true, true, false, false]);
        assert!(plan.pick(&op("other")).is_none());
        assert_eq!((h.seen(), h.injected()), (5, 2));
        plan.clear();
        assert!(plan.pick(&op("u/j/source")).is_none());
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
