//! The sample events in `events/` (for `cargo lambda invoke --data-file`) have the shapes Lambda
//! delivers: each deserialises into its `aws_lambda_events` type, and the SQS bodies parse with
//! the same code the handlers use. Every file in `events/` must be listed here, so a new sample
//! cannot go unchecked.

use std::path::PathBuf;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayV2httpRequest,
    ApiGatewayWebsocketProxyRequest,
};
use aws_lambda_events::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::sqs::SqsEvent;
use serde::de::DeserializeOwned;
use tessera_shared::notifications::{parse, Notification};
use tessera_shared::task::ChunkTaskMessage;

const JOB: &str = "7f3c2a9e-4b1d-4c8e-9a6f-2d5e8b1c0a47";

fn dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../events"))
}

fn load<T: DeserializeOwned>(name: &str) -> T {
    let path = dir().join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{name} does not fit {}: {e}", std::any::type_name::<T>()))
}

/// The body of the single SQS record in `name`, checked to come from the named queue.
fn sqs_body(name: &str, queue: &str) -> String {
    let ev: SqsEvent = load(name);
    assert_eq!(ev.records.len(), 1, "{name}");
    let r = &ev.records[0];
    assert_eq!(r.event_source.as_deref(), Some("aws:sqs"), "{name}");
    assert_eq!(
        r.event_source_arn.as_deref(),
        Some(format!("arn:aws:sqs:us-east-1:000000000000:{queue}").as_str()),
        "{name}"
    );
    assert!(
        r.message_id.is_some() && r.receipt_handle.is_some(),
        "{name}"
    );
    assert!(
        r.attributes.contains_key("ApproximateReceiveCount"),
        "{name}"
    );
    r.body
        .clone()
        .unwrap_or_else(|| panic!("{name} has no body"))
}

#[test]
fn every_sample_is_checked() {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .expect("events/ exists")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "agent-create-dry-run.json",
            "agent-create-session.json",
            "agent-task.json",
            "api-create-query.json",
            "api-create-upload.json",
            "api-health.json",
            "authorizer-ws-connect.json",
            "chunk-dead-letter.json",
            "chunk-export-range.json",
            "chunk-query-range.json",
            "chunk-task.json",
            "planner-dead-letter.json",
            "planner-emulator-shape.json",
            "planner-s3-put.json",
            "planner-s3-test-event.json",
            "status-dynamodb-stream.json",
            "status-get-job.json",
            "status-ws-connect.json",
            "status-ws-subscribe.json",
        ]
    );
}

#[test]
fn http_api_samples() {
    let health: ApiGatewayV2httpRequest = load("api-health.json");
    assert_eq!(health.route_key.as_deref(), Some("GET /v1/health"));
    assert!(
        health.request_context.authorizer.is_none(),
        "health is unauthenticated"
    );

    let create: ApiGatewayV2httpRequest = load("api-create-upload.json");
    assert_eq!(create.route_key.as_deref(), Some("POST /v1/uploads"));
    assert_eq!(create.raw_path.as_deref(), Some("/v1/uploads"));
    assert!(!create.is_base64_encoded);
    let jwt = create
        .request_context
        .authorizer
        .as_ref()
        .and_then(|a| a.jwt.as_ref())
        .expect("jwt authorizer");
    assert_eq!(jwt.claims.get("sub").map(String::as_str), Some("demo-user"));
    assert!(jwt.claims.contains_key("iss") && jwt.claims.contains_key("aud"));
    let body: serde_json::Value =
        serde_json::from_str(create.body.as_deref().expect("body")).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"filename": "sample.csv", "size": 1234, "content_type": "text/csv"})
    );

    let status: ApiGatewayV2httpRequest = load("status-get-job.json");
    assert_eq!(status.route_key.as_deref(), Some("GET /v1/jobs/{id}"));
    assert_eq!(
        status.path_parameters.get("id").map(String::as_str),
        Some(JOB)
    );
    assert_eq!(status.raw_path, Some(format!("/v1/jobs/{JOB}")));
}

#[test]
fn planner_samples_parse_as_the_planner_parses_them() {
    let source = format!("uploads/demo-user/{JOB}/source");

    // The real AWS shape is also a valid typed S3Event (userIdentity and all).
    let body = sqs_body("planner-s3-put.json", "tessera-upload-events");
    let typed: aws_lambda_events::s3::S3Event =
        serde_json::from_str(&body).expect("AWS-shaped S3 event");
    assert_eq!(
        typed.records[0].s3.bucket.name.as_deref(),
        Some("tessera-local-data")
    );
    let Notification::Records(r) = parse(&body).unwrap() else {
        panic!("records expected")
    };
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].key, source);
    assert_eq!(r[0].size, Some(1234));
    assert_eq!(
        tessera_shared::keys::parse_source_key(&r[0].key),
        Some(("demo-user".into(), JOB.into()))
    );

    let body = sqs_body("planner-emulator-shape.json", "tessera-upload-events");
    assert!(
        body.contains("uploads%2Fdemo-user%2F"),
        "the emulator encodes '/'"
    );
    assert!(
        !body.contains("userIdentity"),
        "the emulator omits userIdentity"
    );
    let Notification::Records(r) = parse(&body).unwrap() else {
        panic!("records expected")
    };
    assert_eq!(r[0].key, source);

    let body = sqs_body("planner-s3-test-event.json", "tessera-upload-events");
    assert_eq!(parse(&body).unwrap(), Notification::Test);
}

#[test]
fn chunk_task_sample() {
    let body = sqs_body("chunk-task.json", "tessera-chunk-tasks");
    let task: ChunkTaskMessage = serde_json::from_str(&body).expect("chunk task body");
    assert_eq!(
        (task.job_id.as_str(), task.owner.as_str()),
        (JOB, "demo-user")
    );
    assert_eq!((task.index, task.start, task.end), (0, 0, 1_048_576));
}

/// An export job's range task: on the chunk task queue, told apart by `kind`.
#[test]
fn chunk_export_range_sample() {
    use tessera_shared::task::{parse_queue_message, QueueMessage};
    let body = sqs_body("chunk-export-range.json", "tessera-chunk-tasks");
    let QueueMessage::ExportRange(m) = parse_queue_message(&body).expect("export range body")
    else {
        panic!("an export range message expected: {body}")
    };
    assert_eq!(m.job_id, JOB);
    assert_eq!((m.index, m.start, m.end), (1, 128 << 20, 256 << 20));
    assert_eq!(
        m.start_in_quotes, None,
        "ranges after the first guess their start state"
    );
}

/// A task the chunk queue redrove to its dead-letter queue after `maxReceiveCount` deliveries:
/// the same body, from the DLQ.
#[test]
fn chunk_query_range_sample() {
    use tessera_shared::task::{parse_queue_message, QueueMessage};
    let body = sqs_body("chunk-query-range.json", "tessera-chunk-tasks");
    let QueueMessage::QueryRange(m) = parse_queue_message(&body).expect("query range body") else {
        panic!("not a query range: {body}")
    };
    assert!(tessera_shared::query::is_query_id(&m.query_id), "{m:?}");
    assert!(m.start < m.end);
}

#[test]
fn agent_samples() {
    let body = sqs_body("agent-task.json", "tessera-agent-tasks");
    let task: tessera_shared::agent::session::AgentTask =
        serde_json::from_str(&body).expect("an agent task");
    assert_eq!(task.kind, tessera_shared::agent::session::AgentTask::KIND);
    assert!(uuid_like(&task.session_id), "{task:?}");
    let query: ApiGatewayV2httpRequest = load("api-create-query.json");
    assert_eq!(
        query.route_key.as_deref(),
        Some("POST /v1/jobs/{id}/queries")
    );
    tessera_shared::engine::query::parse_document(query.body.as_deref().unwrap().as_bytes())
        .expect("the sample's body is a valid query document");
    let session: ApiGatewayV2httpRequest = load("agent-create-session.json");
    assert_eq!(session.route_key.as_deref(), Some("POST /v1/sessions"));
    let dry: ApiGatewayV2httpRequest = load("agent-create-dry-run.json");
    assert_eq!(dry.route_key.as_deref(), Some("POST /v1/rules/dry-runs"));
    let body: serde_json::Value = serde_json::from_str(dry.body.as_deref().unwrap()).unwrap();
    tessera_shared::engine::rules::from_value(&body["rules"])
        .expect("the sample's rules are a valid rule document");
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|&c| c == '-').count() == 4
}

#[test]
fn planner_dead_letter_sample() {
    // An upload event that exhausted its deliveries: an S3 notification for an upload source.
    let body = sqs_body("planner-dead-letter.json", "tessera-upload-events-dlq");
    let n = tessera_shared::notifications::parse(&body).expect("an S3 notification");
    let tessera_shared::notifications::Notification::Records(recs) = n else {
        panic!("not records: {body}");
    };
    assert_eq!(recs.len(), 1);
    assert_eq!(
        tessera_shared::keys::parse_source_key(&recs[0].key),
        Some(("demo-user".to_string(), JOB.to_string()))
    );
}

#[test]
fn chunk_dead_letter_sample() {
    let body = sqs_body("chunk-dead-letter.json", "tessera-chunk-tasks-dlq");
    let task: ChunkTaskMessage = serde_json::from_str(&body).expect("chunk task body");
    assert_eq!(
        (task.job_id.as_str(), task.owner.as_str()),
        (JOB, "demo-user")
    );
    assert_eq!(
        (task.index, task.start, task.end),
        (3, 3_145_728, 4_194_304)
    );
}

#[test]
fn status_stream_and_websocket_samples() {
    let ev: DynamoDbEvent = load("status-dynamodb-stream.json");
    assert_eq!(ev.records.len(), 1);
    let r = &ev.records[0];
    assert_eq!(r.event_source.as_deref(), Some("aws:dynamodb"));
    let view = serde_json::to_value(&r.change.stream_view_type).unwrap();
    assert_eq!(view, serde_json::json!("NEW_AND_OLD_IMAGES"));
    assert_eq!(
        view,
        serde_json::json!(tessera_infra::resources::spec().table.stream_view_type)
    );
    assert!(!r.change.new_image.is_empty() && !r.change.old_image.is_empty());

    let ws: ApiGatewayWebsocketProxyRequest = load("status-ws-connect.json");
    assert_eq!(ws.request_context.route_key.as_deref(), Some("$connect"));
    assert!(ws.request_context.connection_id.is_some());
    assert!(ws.query_string_parameters.first("token").is_some());
    // What the $connect authorizer hands on: the token's sub (the status function's owner).
    assert_eq!(
        ws.request_context.authorizer.fields.get("principalId"),
        Some(&serde_json::json!("demo-user"))
    );

    let sub: ApiGatewayWebsocketProxyRequest = load("status-ws-subscribe.json");
    assert_eq!(sub.request_context.route_key.as_deref(), Some("subscribe"));
    assert_eq!(sub.request_context.event_type.as_deref(), Some("MESSAGE"));
    assert_eq!(
        sub.request_context.connection_id,
        ws.request_context.connection_id
    );
    let body: serde_json::Value = serde_json::from_str(sub.body.as_deref().expect("body")).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"action": "subscribe", "job_id": JOB})
    );
}

/// The `$connect` authorizer's sample: a real-shaped REQUEST authorizer event whose token is
/// signed by the authorizer's TEST-ONLY key but expired, so `.ci/invoke-events` (which configures
/// this issuer and audience) gets a Deny decided before any key fetch — no network needed.
#[tokio::test]
async fn authorizer_sample() {
    use tessera_authorizer::{jwks::KeyCache, AuthorizerConfig, Rejection, Verifier};

    let ev: ApiGatewayCustomAuthorizerRequestTypeRequest = load("authorizer-ws-connect.json");
    assert_eq!(ev.type_.as_deref(), Some("REQUEST"));
    assert!(ev
        .method_arn
        .as_deref()
        .is_some_and(|a| a.starts_with("arn:aws:execute-api:") && a.ends_with("/live/$connect")));
    assert_eq!(
        ev.request_context.request_id.as_deref(),
        Some("CqYfPhVeIAMFabc=")
    );
    let token = tessera_authorizer::token_of(&ev).expect("?token=");

    // Genuinely signed by the test key (kid test-rsa-1), only its exp is in the past.
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.kid.as_deref(), Some("test-rsa-1"));
    let der = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../functions/authorizer/tests/fixtures/test-only-rsa-2048.pkcs1.der"
    ))
    .unwrap();
    let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(
        &jsonwebtoken::EncodingKey::from_rsa_der(&der),
        jsonwebtoken::Algorithm::RS256,
    )
    .unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.validate_exp = false;
    v.set_audience(&["tessera-web"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
        &v,
    )
    .expect("the sample token's signature verifies with the test key")
    .claims;
    assert_eq!(claims["sub"], "demo-user");

    // What `.ci/invoke-events` expects: Deny, without touching the (unreachable) issuer.
    let cfg = AuthorizerConfig::from_lookup(|k| match k {
        "TESSERA_JWT_ISSUER" => claims["iss"].as_str().map(String::from),
        "TESSERA_JWT_AUDIENCE" => Some("tessera-web".into()),
        _ => None,
    })
    .unwrap();
    let verifier = Verifier::new(cfg.clone(), KeyCache::new(reqwest::Client::new(), cfg));
    assert_eq!(verifier.verify(token).await, Err(Rejection::Expired));
    let resp = tessera_authorizer::authorize(&verifier, &ev).await;
    let wire = serde_json::to_value(&resp).unwrap();
    assert_eq!(wire["policyDocument"]["Statement"][0]["Effect"], "Deny");
    assert_eq!(verifier.keys().fetch_count(), 0);
}
