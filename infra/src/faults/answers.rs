//! The answers the fault proxy gives instead of moto's, in AWS's wire shapes: S3's REST-XML
//! errors, the awsJson1_0 errors of DynamoDB and SQS, `TransactionCanceledException`, and a
//! response body cut mid-stream. Only [`super`] uses them.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Method, StatusCode};

use super::Service;

/// The stream's first `after` bytes, then an error: hyper aborts the connection mid-body, which
/// the client sees as a body shorter than its `Content-Length`. (A body no longer than `after`
/// is cut after its end: still an aborted connection, so the fault still shows.)
pub(super) fn cut(
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

pub(super) fn plain(status: StatusCode, msg: String) -> Response {
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
pub(super) fn s3_error(status: u16, code: &str, method: &Method) -> Response {
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
pub(super) fn json_error(
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
pub(super) fn transaction_canceled(body: &[u8], reason: &str) -> Response {
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
