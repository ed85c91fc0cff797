//! Hardening (issue 15): hostile input at the upload and workflow API, and objects changed under
//! a job. Each test guards one hole the issue lists and failed before its fix:
//!
//! - presigned PUT and part URLs sign `content-length` (and the single PUT `content-type`);
//! - a source whose size is not the declared one is deleted when its job fails `size_mismatch`;
//! - chunk reads are pinned to the planned object (`If-Match` its ETag): a same-size object
//!   swapped in after planning fails the job `source_changed`, and putting the original back
//!   lets a retry complete it exactly;
//! - a reference file is read with one ranged GET of at most 64 MiB + 1 byte, so a file larger
//!   than the limit fails the job `reference_too_large` however it got there;
//! - rule documents over a limit, filenames with control or bidirectional-control characters and
//!   reference keys with control characters are refused with codes naming the rule.
//!
//! What moto cannot show: it does not check presigned signatures at all (its S3 only verifies
//! header-signed requests, and only with authentication enabled), so a PUT of another size than
//! the URL signs is stored by moto where S3 answers 403 `SignatureDoesNotMatch`. The tests check
//! what decides S3's answer: the URL's `X-Amz-SignedHeaders`, and that clients sending the
//! declared bytes with the answer's headers still upload.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_e2e::*;
use tessera_infra::faults::{Fault, FaultProxy, Rule, Service};
use tessera_shared::pipeline::Pipeline;
use tessera_shared::store::objects::ObjectStore;

const JOB_TIMEOUT: Duration = Duration::from_secs(60);

/// The query parameters of a URL.
fn query(url: &str) -> BTreeMap<String, String> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn signed_headers(url: &str) -> Vec<String> {
    query(url)
        .get("X-Amz-SignedHeaders")
        .unwrap_or_else(|| panic!("no X-Amz-SignedHeaders in {url}"))
        .split(';')
        .map(str::to_string)
        .collect()
}

fn assert_error(a: &Answer, status: StatusCode, code: &str) {
    assert_eq!(a.status, status, "{:?}", a.body);
    assert_eq!(a.body["error"]["code"], code, "{:?}", a.body);
}

#[tokio::test]
async fn presigned_urls_sign_the_declared_length_and_type() {
    let stack = stack().await;
    let alice = Client::new(&stack, "alice");
    let data = tricky_csv(20_000, 7, "\n");

    // One PUT: content-length and content-type are signed; the answer names the headers to send
    // (content-type, exactly), not content-length, which every client sets from its body.
    let created = alice.create_upload("one.csv", data.len() as u64).await;
    let url = created["upload"]["url"].as_str().unwrap();
    let signed = signed_headers(url);
    for h in ["content-length", "content-type", "host"] {
        assert!(signed.iter().any(|s| s == h), "{h} not signed: {signed:?}");
    }
    let headers = created["upload"]["headers"].as_object().unwrap();
    assert_eq!(headers.get("content-type"), Some(&json!("text/csv")));
    assert!(!headers.contains_key("content-length"), "{headers:?}");
    assert!(
        !query(url).keys().any(|k| k.starts_with("x-amz-checksum")),
        "no checksum terms: {url}"
    );
    // A client that sends the declared bytes with those headers uploads, and the job completes.
    let mut put = alice.http.put(url).body(data.clone());
    for (k, v) in headers {
        put = put.header(k.as_str(), v.as_str().unwrap());
    }
    assert_eq!(put.send().await.unwrap().status(), StatusCode::OK);
    let id = created["job_id"].as_str().unwrap();
    let snap = alice.wait_final(id, JOB_TIMEOUT).await;
    assert_eq!(snap["state"], "completed", "{snap}");
    assert_eq!(snap["rows"], reference_records(&data).len() as u64);

    // Parts: each URL signs content-length (the part's own length, the last one shorter).
    let size = 12 * 1024 * 1024 + 5;
    let a = alice
        .post_json(
            "/v1/uploads",
            &json!({"filename": "big.csv", "size": size, "content_type": "text/csv",
                    "multipart": true, "part_size": 5 * 1024 * 1024}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let parts = a.body["upload"]["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    for p in parts {
        let url = p["url"].as_str().unwrap();
        let signed = signed_headers(url);
        assert!(
            signed.iter().any(|s| s == "content-length"),
            "part {}: {signed:?}",
            p["part_number"]
        );
    }
    // The resume route's fresh URLs too.
    let job = a.body["job_id"].as_str().unwrap();
    let st = alice.get(&format!("/v1/uploads/{job}/parts")).await;
    for p in st.body["missing"].as_array().unwrap() {
        assert!(signed_headers(p["url"].as_str().unwrap()).contains(&"content-length".into()));
    }

    // A reference file's URL signs its declared length.
    let a = alice
        .post_json("/v1/references", &json!({"key": "l.csv", "size": 10}))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert!(signed_headers(a.body["upload"]["url"].as_str().unwrap())
        .contains(&"content-length".into()));
    stack.shutdown().await;
}

#[tokio::test]
async fn a_source_of_another_size_is_deleted_with_its_job_failed() {
    let stack = stack().await;
    let alice = Client::new(&stack, "alice");
    // moto stores a PUT of any size (see the module's note); S3 would refuse it at the PUT.
    let id = alice
        .upload("short.csv", 500, b"id,name\n1,a\n2,b\n".to_vec())
        .await;
    let snap = alice.wait_final(&id, JOB_TIMEOUT).await;
    assert_eq!(snap["state"], "failed", "{snap}");
    assert_eq!(snap["error"]["code"], "size_mismatch", "{snap}");
    assert!(
        snap["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deleted"),
        "{snap}"
    );
    let objects = ObjectStore::new(stack.clients.s3.clone(), &stack.config.bucket);
    let key = tessera_shared::keys::source_key("alice", &id);
    assert_eq!(
        objects.size(&key).await.unwrap(),
        None,
        "{key} still stored"
    );
    stack.shutdown().await;
}

/// The test as the event-source mapping: receives messages and runs the pipeline on them.
struct Esm {
    pipeline: Pipeline,
    sqs: aws_sdk_sqs::Client,
    uploads_url: String,
    chunks_url: String,
}

impl Esm {
    fn new(stack: &LocalStack) -> Self {
        Esm {
            pipeline: Pipeline::new(stack.config.clone(), &stack.clients),
            sqs: stack.clients.sqs.clone(),
            uploads_url: stack.resources.upload_events.url.clone(),
            chunks_url: stack.resources.chunk_tasks.url.clone(),
        }
    }

    async fn receive(&self, url: &str) -> Option<(String, String)> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(1)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let m = out.messages.unwrap_or_default().into_iter().next()?;
        Some((
            m.body.unwrap_or_default(),
            m.receipt_handle.unwrap_or_default(),
        ))
    }

    async fn ack(&self, url: &str, receipt: String) {
        self.sqs
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
            .unwrap();
    }

    /// Runs the planner on every upload notification there is.
    async fn plan_all(&self) {
        let mut n = 0;
        while let Some((body, receipt)) = self.receive(&self.uploads_url).await {
            self.pipeline.planner_message(&body).await.expect("planner");
            self.ack(&self.uploads_url, receipt).await;
            n += 1;
        }
        assert!(n > 0, "no S3 notification arrived");
    }

    /// Runs every chunk task there is; returns how many.
    async fn run_chunks(&self) -> usize {
        let mut n = 0;
        while let Some((body, receipt)) = self.receive(&self.chunks_url).await {
            self.pipeline
                .chunk_message(&body)
                .await
                .expect("chunk task handled");
            self.ack(&self.chunks_url, receipt).await;
            n += 1;
        }
        n
    }
}

async fn put_object(stack: &LocalStack, key: &str, body: Vec<u8>) {
    stack
        .clients
        .s3
        .put_object()
        .bucket(&stack.config.bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_same_size_object_swapped_in_after_planning_fails_source_changed() {
    let stack = stack_with(|o| o.no_pollers = true).await;
    let esm = Esm::new(&stack);
    let alice = Client::new(&stack, "alice");
    let data = tricky_csv(200_000, 31, "\n");
    let expected = reference_records(&data).len() as u64;
    let id = alice
        .upload("pin.csv", data.len() as u64, data.clone())
        .await;
    esm.plan_all().await;
    let snap = alice.get(&format!("/v1/jobs/{id}")).await.body;
    assert_eq!(snap["state"], "processing", "{snap}");

    // Same size, other bytes (every digit 1 made a 2): the size check alone cannot see it.
    let other: Vec<u8> = data
        .iter()
        .map(|&b| if b == b'1' { b'2' } else { b })
        .collect();
    assert_eq!(other.len(), data.len());
    let key = tessera_shared::keys::source_key("alice", &id);
    put_object(&stack, &key, other).await;
    esm.run_chunks().await;
    let snap = alice.get(&format!("/v1/jobs/{id}")).await.body;
    assert_eq!(snap["state"], "failed", "{snap}");
    assert_eq!(snap["error"]["code"], "source_changed", "{snap}");
    let message = snap["error"]["message"].as_str().unwrap();
    assert!(message.contains("replaced"), "{message}");

    // The original back (same bytes, same ETag): a retry re-runs the failed chunks and the job
    // completes with the original's exact count.
    put_object(&stack, &key, data).await;
    esm.plan_all().await; // the notifications of both PUTs: the planner leaves the job alone
    let a = alice
        .post_json(&format!("/v1/jobs/{id}/retry"), &json!({}))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.body);
    esm.run_chunks().await;
    let snap = alice.wait_final(&id, JOB_TIMEOUT).await;
    assert_eq!(snap["state"], "completed", "{snap}");
    assert_eq!(snap["rows"], expected, "{snap}");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_reference_larger_than_the_limit_is_never_read_whole() {
    // Every AWS call of the stack goes through the fault proxy, which holds the reference's GET
    // (before forwarding it) long enough for the file to be replaced after any earlier check.
    let proxy = FaultProxy::start(emulator_url())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = proxy.url.clone();
    let stack = stack_with(|o| {
        o.emulator_url = Some(url);
        o.no_pollers = true;
    })
    .await;
    let esm = Esm::new(&stack);
    let alice = Client::new(&stack, "alice");
    let small = "code\nA\nB\n";
    let a = alice
        .post_json(
            "/v1/references",
            &json!({"key": "codes.csv", "size": small.len()}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let put = alice
        .http
        .put(a.body["upload"]["url"].as_str().unwrap())
        .body(small)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let rules = json!({"version": 1, "rules": [
        {"column": "code", "check": {"one_of": {"ref": {"key": "codes.csv", "column": "code"}}}}
    ]});
    let w = alice
        .post_json("/v1/workflows", &json!({"name": "w", "rules": rules}))
        .await;
    assert_eq!(w.status, StatusCode::CREATED, "{:?}", w.body);
    let data = b"code,n\nA,1\nB,2\n".to_vec();
    let c = alice
        .post_json(
            "/v1/uploads",
            &json!({"filename": "d.csv", "size": data.len(), "content_type": "text/csv",
                    "workflow": {"id": w.body["workflow_id"]}}),
        )
        .await;
    assert_eq!(c.status, StatusCode::CREATED, "{:?}", c.body);
    let id = c.body["job_id"].as_str().unwrap().to_string();
    let put = alice
        .http
        .put(c.body["upload"]["url"].as_str().unwrap())
        .header("content-type", "text/csv")
        .body(data)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);

    // 64 MiB + 1 KiB of codes, made before the GET is held.
    let mut big = b"code\n".to_vec();
    while big.len() <= (64 << 20) + 1024 {
        big.extend_from_slice(b"ABCDEFGHIJKLMNOP\n");
    }
    const HOLD: Duration = Duration::from_secs(15);
    let held = proxy
        .plan
        .add(Rule::new(Service::S3, "GetObject", 1, Fault::Delay(HOLD)).key_contains("/codes.csv"));
    let planner = {
        let esm = &esm;
        async move { esm.plan_all().await }
    };
    let swap = async {
        while held.seen() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let t = std::time::Instant::now();
        let key = format!(
            "{}codes.csv",
            tessera_shared::workflow::reference_prefix("alice")
        );
        put_object(&stack, &key, big).await;
        // The premise: the file was replaced while the planner's GET was held.
        assert!(t.elapsed() < HOLD, "the PUT took {:?}", t.elapsed());
    };
    tokio::join!(planner, swap);
    assert_eq!(held.injected(), 1);
    let snap = alice.get(&format!("/v1/jobs/{id}")).await.body;
    assert_eq!(snap["state"], "failed", "{snap}");
    assert_eq!(snap["error"]["code"], "reference_too_large", "{snap}");
    assert!(
        snap["error"]["message"]
            .as_str()
            .unwrap()
            .contains("67108864"),
        "{snap}"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn names_keys_and_documents_over_the_rules_are_refused_with_their_code() {
    let stack = stack().await;
    let alice = Client::new(&stack, "alice");
    // Filenames: control and bidirectional-control characters.
    for name in ["a\u{7}.csv", "invoice\u{202E}vsc.exe", "x\u{2066}y.csv"] {
        let a = alice
            .post_json(
                "/v1/uploads",
                &json!({"filename": name, "size": 10, "content_type": "text/csv"}),
            )
            .await;
        assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, "invalid_filename");
        assert!(
            a.body["error"]["message"].as_str().unwrap().contains("U+"),
            "{:?}",
            a.body
        );
    }
    // Reference keys: control characters would break the owner's listing.
    for key in ["a\u{1}b.csv", "lists/\u{202E}x.csv", "a\tb.csv"] {
        let a = alice
            .post_json("/v1/references", &json!({"key": key, "size": 10}))
            .await;
        assert_error(&a, StatusCode::BAD_REQUEST, "invalid_reference_key");
    }
    // ... and in a document's `ref.key`.
    let doc = json!({"version": 1, "rules": [
        {"column": "c", "check": {"one_of": {"ref": {"key": "a\u{1}.csv", "column": "v"}}}}
    ]});
    let a = alice
        .post_json("/v1/workflows", &json!({"name": "w", "rules": doc}))
        .await;
    assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, "invalid_rules");

    // Workflow documents: rules, reference files, bytes.
    let rule = json!({"column": "a", "check": "not_null"});
    let many = json!({"version": 1, "rules": vec![rule; 501]});
    let a = alice
        .post_json("/v1/workflows", &json!({"name": "w", "rules": many}))
        .await;
    assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, "too_many_rules");
    assert_eq!(a.body["error"]["details"]["errors"][0]["path"], "/rules");
    let refs: Vec<Value> = (0..5)
        .map(|i| json!({"column": "c", "check": {"one_of": {"ref": {"key": format!("l{i}.csv"), "column": "v"}}}}))
        .collect();
    let a = alice
        .post_json(
            "/v1/workflows",
            &json!({"name": "w", "rules": {"version": 1, "rules": refs}}),
        )
        .await;
    assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, "too_many_references");
    let big = json!({"version": 1, "rules": [
        {"column": "a", "check": {"matches": {"pattern": "x".repeat(300 * 1024)}}}
    ]});
    let a = alice
        .post_json("/v1/workflows", &json!({"name": "w", "rules": big}))
        .await;
    assert_error(&a, StatusCode::PAYLOAD_TOO_LARGE, "rules_too_large");
    stack.shutdown().await;
}

#[tokio::test]
async fn an_upload_event_that_exhausts_its_deliveries_fails_its_job() {
    // Every planner attempt meets S3 500s on the source's HeadObject (the SDK's own retries
    // included), so SQS moves the event to the DLQ after 2 deliveries; the DLQ's consumer fails
    // the job instead of leaving it `awaiting_upload`.
    let proxy = FaultProxy::start(emulator_url())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = proxy.url.clone();
    let stack = stack_with(|o| {
        o.emulator_url = Some(url);
        o.upload_visibility_secs = Some(2);
        o.max_receive_count = Some(2);
    })
    .await;
    let alice = Client::new(&stack, "alice");
    let broken = proxy.plan.add(
        Rule::new(
            Service::S3,
            "HeadObject",
            10_000,
            Fault::S3Error {
                status: 500,
                code: "InternalError",
            },
        )
        .key_contains("/source"),
    );
    let data = b"id,n\n1,a\n".to_vec();
    let id = alice.upload("dead.csv", data.len() as u64, data).await;
    let snap = alice.wait_final(&id, Duration::from_secs(90)).await;
    assert_eq!(snap["state"], "failed", "{snap}");
    assert_eq!(snap["error"]["code"], "upload_attempts_exhausted", "{snap}");
    assert!(broken.injected() >= 2, "{}", broken.injected());
    stack.shutdown().await;
}
