//! The fault matrix (issue 15, item 2): jobs of a few sizes and chunk sizes, with and without a
//! rules workflow, run on stacks whose every AWS call goes through
//! [`tessera_infra::faults::FaultProxy`], under S3 500/503/SlowDown on GET and PUT, a GET body
//! cut mid-stream, DynamoDB throttling and transaction conflicts, SQS send errors and slow
//! answers. Each cell must end `completed` with the same rows, rejected rows, profile, clean and
//! rejected outputs as the job run without faults, or `failed` with a retryable code after which
//! `POST /v1/jobs/{id}/retry` completes it exactly; and its faults must have fired. The matrix is
//! printed as a table (`cargo test -p tessera-e2e --test faults -- --nocapture`).
//!
//! The finalization cells ([`finalize_kinds`]) found the holes docs/local.md lists.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_e2e::*;
use tessera_infra::faults::{Fault, FaultProxy, Rule, RuleHandle, Service};
use tessera_shared::store::objects::ObjectStore;

const JOB_TIMEOUT: Duration = Duration::from_secs(180);
/// Cells run at once (the machine is small and shared; each cell is a whole stack).
const PARALLEL_CELLS: usize = 4;

/// A job of the matrix: its data, chunk size and whether it names a rules workflow.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    bytes: usize,
    chunk_size: u64,
    rules: bool,
}

const fn shape(name: &'static str, bytes: usize, chunk_size: u64, rules: bool) -> Shape {
    Shape {
        name,
        bytes,
        chunk_size,
        rules,
    }
}

const SHAPES: [Shape; 3] = [
    shape("6KB/1 chunk", 6_000, 64 * 1024, false),
    shape("40KB/16KiB", 40_000, 16 * 1024, false),
    shape("30KB/8KiB+rules", 30_000, 8 * 1024, true),
];

/// The data of a shape: the tricky CSV (quoted delimiters and newlines) without rules; with
/// rules, rows of which every 7th has no name and every 11th an amount out of range.
fn data(shape: Shape) -> Vec<u8> {
    if !shape.rules {
        return tricky_csv(shape.bytes, shape.bytes as u64, "\n");
    }
    let mut out = String::from("id,name,amount,code\n");
    let mut i = 0u64;
    while out.len() < shape.bytes {
        i += 1;
        let name = if i.is_multiple_of(7) {
            String::new()
        } else {
            format!("n{i}")
        };
        let amount = if i.is_multiple_of(11) {
            5_000
        } else {
            i % 1_000
        };
        out.push_str(&format!("{i},{name},{amount},C{:02}\n", i % 50));
    }
    out.into_bytes()
}

fn rules() -> Value {
    json!({
        "version": 1,
        "on_violation": "reject",
        "columns": {"amount": {"type": "decimal"}},
        "rules": [
            {"id": "name_required", "column": "name", "check": "not_null"},
            {"id": "amount_range", "column": "amount", "check": {"range": {"min": 0, "max": 1000}}}
        ]
    })
}

/// A fault kind of the matrix: a name and the rules it adds to a cell's plan.
#[derive(Clone, Copy)]
struct Kind {
    name: &'static str,
    rules: fn() -> Vec<Rule>,
}

fn s3(op: &'static str, key: &str, times: u32, fault: Fault) -> Rule {
    Rule::new(Service::S3, op, times, fault).key_contains(key)
}

const SLOW_DOWN: Fault = Fault::S3Error {
    status: 503,
    code: "SlowDown",
};

const INTERNAL_ERROR: Fault = Fault::S3Error {
    status: 500,
    code: "InternalError",
};

/// The fault kinds of the matrix. Counts above 3 on one call outlast the SDK's own three
/// attempts, so the error reaches the function and its message is redelivered.
fn kinds() -> Vec<Kind> {
    let mut all = s3_kinds();
    all.extend(service_kinds());
    all.extend(finalize_kinds());
    all
}

/// Faults during finalization, past the SDK's three attempts of one call. They found the hole
/// of docs/local.md ("Holes the fault matrix found"): each ended `finalize_failed`, which
/// cannot be retried, until the finalizer retried its (idempotent) run on store errors.
fn finalize_kinds() -> Vec<Kind> {
    vec![
        Kind {
            name: "S3 PUT clean.csv (finalise) 503 SlowDown x4",
            rules: || vec![s3("PutObject", "/clean.csv", 4, SLOW_DOWN)],
        },
        Kind {
            name: "S3 GET chunk results (finalise) 500 x4",
            rules: || vec![s3("GetObject", "/parts/result/", 4, INTERNAL_ERROR)],
        },
        Kind {
            name: "DynamoDB mark completed (finalise) throttled x3",
            rules: || {
                let f = Fault::JsonError {
                    status: 400,
                    error_type: "ProvisionedThroughputExceededException",
                };
                vec![Rule::new(Service::DynamoDb, "UpdateItem", 3, f).body_contains("\"completed\"")]
            },
        },
    ]
}

/// S3 faults on the source, the chunk parts and results.
fn s3_kinds() -> Vec<Kind> {
    vec![
        Kind {
            name: "S3 GET source 503 SlowDown x4",
            rules: || vec![s3("GetObject", "/source", 4, SLOW_DOWN)],
        },
        Kind {
            name: "S3 GET source 500 x2",
            rules: || vec![s3("GetObject", "/source", 2, INTERNAL_ERROR)],
        },
        Kind {
            name: "S3 GET source 503 ServiceUnavailable x4 (2nd on)",
            rules: || {
                let f = Fault::S3Error {
                    status: 503,
                    code: "ServiceUnavailable",
                };
                vec![s3("GetObject", "/source", 4, f).skip(1)]
            },
        },
        Kind {
            name: "S3 GET source body cut after 100 B x2",
            rules: || vec![s3("GetObject", "/source", 2, Fault::CutBody { after: 100 }).skip(1)],
        },
        Kind {
            name: "S3 PUT chunk parts 503 SlowDown x4",
            rules: || vec![s3("PutObject", "/parts/", 4, SLOW_DOWN)],
        },
        Kind {
            name: "S3 PUT chunk parts 500 x2",
            rules: || vec![s3("PutObject", "/parts/", 2, INTERNAL_ERROR)],
        },
        Kind {
            name: "S3 PUT chunk results 503 SlowDown x9",
            rules: || vec![s3("PutObject", "/parts/result/", 9, SLOW_DOWN)],
        },
    ]
}

/// DynamoDB and SQS faults, and slow answers.
fn service_kinds() -> Vec<Kind> {
    vec![
        Kind {
            name: "DynamoDB UpdateItem throttled x4",
            rules: || {
                let f = Fault::JsonError {
                    status: 400,
                    error_type: "ProvisionedThroughputExceededException",
                };
                vec![Rule::new(Service::DynamoDb, "UpdateItem", 4, f).skip(1)]
            },
        },
        Kind {
            name: "DynamoDB TransactWriteItems conflict x3",
            rules: || {
                let f = Fault::TransactionCanceled {
                    reason: "TransactionConflict",
                };
                vec![Rule::new(Service::DynamoDb, "TransactWriteItems", 3, f)]
            },
        },
        Kind {
            name: "DynamoDB TransactWriteItems conflict x10",
            rules: || {
                let f = Fault::TransactionCanceled {
                    reason: "TransactionConflict",
                };
                vec![Rule::new(Service::DynamoDb, "TransactWriteItems", 10, f)]
            },
        },
        Kind {
            name: "SQS SendMessageBatch 500 x4",
            rules: || {
                let f = Fault::JsonError {
                    status: 500,
                    error_type: "InternalError",
                };
                vec![Rule::new(Service::Sqs, "SendMessageBatch", 4, f)]
            },
        },
        Kind {
            name: "slow: every S3 GET and DynamoDB write +250 ms",
            rules: || {
                let d = Fault::Delay(Duration::from_millis(250));
                vec![
                    Rule::new(Service::S3, "GetObject", u32::MAX, d.clone()),
                    Rule::new(Service::DynamoDb, "TransactWriteItems", u32::MAX, d.clone()),
                    Rule::new(Service::DynamoDb, "UpdateItem", u32::MAX, d),
                ]
            },
        },
    ]
}

/// What must be equal between a job run with faults and without.
#[derive(Debug, PartialEq)]
struct Outputs {
    rows: Value,
    rejected_rows: Value,
    columns: Value,
    profile: Value,
    clean: Vec<u8>,
    rejected: Vec<u8>,
}

/// A stack whose AWS endpoint is a fresh fault proxy, with short visibility timeouts so a
/// redelivery after a failed attempt comes in seconds.
async fn faulty_stack(shape: Shape) -> (LocalStack, FaultProxy) {
    let proxy = FaultProxy::start(emulator_url())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = proxy.url.clone();
    let stack = stack_with(|o| {
        o.emulator_url = Some(url);
        o.chunk_size = shape.chunk_size;
        o.chunk_visibility_secs = Some(3);
        o.upload_visibility_secs = Some(3);
    })
    .await;
    (stack, proxy)
}

/// Creates the job of the shape (and its workflow when it has rules) through the API; returns
/// the job id and its presigned PUT URL. Faults are armed after this: they target the pipeline,
/// not the API.
async fn create(c: &Client, shape: Shape, size: usize) -> (String, String) {
    let mut body = json!({"filename": "m.csv", "size": size, "content_type": "text/csv"});
    if shape.rules {
        let a = c
            .post_json(
                "/v1/workflows",
                &json!({"name": "matrix", "rules": rules()}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        body["workflow"] = json!({"id": a.body["workflow_id"]});
    }
    let a = c.post_json("/v1/uploads", &body).await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let url = a.body["upload"]["url"].as_str().expect("upload.url");
    (
        a.body["job_id"].as_str().unwrap().to_string(),
        url.to_string(),
    )
}

/// PUTs the data to the presigned URL (a browser's upload: never faulted).
async fn put(c: &Client, url: &str, data: &[u8]) {
    let put = c.http.put(url).body(data.to_vec()).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::OK, "presigned PUT");
}

async fn outputs(objects: ObjectStore, c: &Client, job: &Value) -> Outputs {
    let id = job["job_id"].as_str().unwrap();
    let prefix = format!("results/alice/{id}");
    let read = |name: &str| {
        let key = format!("{prefix}/{name}");
        let objects = &objects;
        async move { objects.read_all(&key).await.unwrap_or_default() }
    };
    let profile = c.get(&format!("/v1/jobs/{id}/profile")).await;
    assert_eq!(profile.status, StatusCode::OK, "{:?}", profile.body);
    Outputs {
        rows: job["rows"].clone(),
        rejected_rows: job["rejected_rows"].clone(),
        columns: job["columns"].clone(),
        profile: profile.body,
        clean: read("clean.csv").await,
        rejected: read("rejected.csv").await,
    }
}

fn store(stack: &LocalStack) -> ObjectStore {
    ObjectStore::new(stack.clients.s3.clone(), &stack.config.bucket)
}

/// The job without faults (through a proxy with an empty plan).
async fn baseline(shape: Shape) -> Outputs {
    let (stack, _proxy) = faulty_stack(shape).await;
    let alice = Client::new(&stack, "alice");
    let bytes = data(shape);
    let (id, url) = create(&alice, shape, bytes.len()).await;
    put(&alice, &url, &bytes).await;
    let done = alice.wait_final(&id, JOB_TIMEOUT).await;
    assert_eq!(
        done["state"], "completed",
        "baseline {}: {done}",
        shape.name
    );
    let out = outputs(store(&stack), &alice, &done).await;
    let records = reference_records(&data(shape)).len() as u64;
    let total = out.rows.as_u64().unwrap() + out.rejected_rows.as_u64().unwrap();
    assert_eq!(
        total, records,
        "baseline {}: rows in = clean + rejected",
        shape.name
    );
    stack.shutdown().await;
    out
}

/// One cell's result, for the table.
struct CellResult {
    kind: &'static str,
    shape: &'static str,
    injected: u32,
    outcome: String,
    secs: f64,
    problem: Option<String>,
}

/// Runs one cell: the job under the kind's faults, then (if it failed) the retry.
async fn cell(kind: Kind, shape: Shape, expected: Arc<Outputs>) -> CellResult {
    let started = Instant::now();
    let (stack, proxy) = faulty_stack(shape).await;
    let alice = Client::new(&stack, "alice");
    let bytes = data(shape);
    let (id, url) = create(&alice, shape, bytes.len()).await;
    // Armed before the upload lands, so the planner's first read is already under the plan.
    // No rule matches the presigned PUT of the source (a browser's upload).
    let handles: Vec<RuleHandle> = (kind.rules)()
        .into_iter()
        .map(|r| proxy.plan.add(r))
        .collect();
    put(&alice, &url, &bytes).await;
    let done = alice.wait_final(&id, JOB_TIMEOUT).await;
    let injected: u32 = handles.iter().map(RuleHandle::injected).sum();
    // Reads of the outputs (and the retry) go through untouched.
    proxy.plan.clear();
    let mut outcome = done["state"].as_str().unwrap_or("?").to_string();
    let mut problem = None;
    let finished = if done["state"] == "failed" {
        let code = done["error"]["code"].as_str().unwrap_or("").to_string();
        outcome = format!("failed {code}");
        let retry = alice
            .post_json(&format!("/v1/jobs/{id}/retry"), &json!({}))
            .await;
        if retry.status != StatusCode::ACCEPTED {
            problem = Some(format!(
                "not retryable ({}): {}",
                retry.status, done["error"]
            ));
            None
        } else {
            let again = alice.wait_final(&id, JOB_TIMEOUT).await;
            outcome.push_str(&format!(
                " -> retry {}",
                again["state"].as_str().unwrap_or("?")
            ));
            Some(again)
        }
    } else {
        Some(done)
    };
    if let Some(job) = finished {
        if job["state"] != "completed" {
            problem = Some(format!("ended {}: {}", job["state"], job["error"]));
        } else {
            let got = outputs(store(&stack), &alice, &job).await;
            if got != *expected {
                problem = Some(format!(
                    "outputs differ from the run without faults: {got:?}"
                ));
            }
        }
    }
    if injected == 0 {
        problem = Some("no fault fired: the cell tests nothing".into());
    }
    stack.shutdown().await;
    CellResult {
        kind: kind.name,
        shape: shape.name,
        injected,
        outcome,
        secs: started.elapsed().as_secs_f64(),
        problem,
    }
}

fn print_table(results: &[CellResult]) {
    println!(
        "\n{:<50} | {:<16} | {:>8} | {:<52} | {:>6}",
        "fault", "job", "injected", "outcome", "secs"
    );
    println!("{}", "-".repeat(144));
    for r in results {
        let mark = if r.problem.is_some() {
            "  <-- HOLE"
        } else {
            ""
        };
        println!(
            "{:<50} | {:<16} | {:>8} | {:<52} | {:>6.1}{mark}",
            r.kind, r.shape, r.injected, r.outcome, r.secs
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_matrix() {
    let started = Instant::now();
    let expected: Vec<Arc<Outputs>> = futures::future::join_all(SHAPES.map(baseline))
        .await
        .into_iter()
        .map(Arc::new)
        .collect();
    let cells: Vec<(Kind, usize)> = kinds()
        .into_iter()
        .flat_map(|k| (0..SHAPES.len()).map(move |s| (k, s)))
        .collect();
    let mut results: Vec<CellResult> = futures::stream::iter(cells)
        .map(|(kind, s)| {
            let expected = expected[s].clone();
            async move {
                // A cell that panics (a timeout, a refused API call) is a result, not the end
                // of the matrix.
                match tokio::spawn(cell(kind, SHAPES[s], expected)).await {
                    Ok(r) => r,
                    Err(e) => CellResult {
                        kind: kind.name,
                        shape: SHAPES[s].name,
                        injected: 0,
                        outcome: "panicked".into(),
                        secs: 0.0,
                        problem: Some(format!("{e}")),
                    },
                }
            }
        })
        .buffer_unordered(PARALLEL_CELLS)
        .collect()
        .await;
    results.sort_by_key(|r| (r.kind, r.shape));
    print_table(&results);
    println!(
        "matrix: {} cells in {:.0?}",
        results.len(),
        started.elapsed()
    );
    let holes: Vec<String> = results
        .iter()
        .filter_map(|r| Some(format!("{} / {}: {}", r.kind, r.shape, r.problem.as_ref()?)))
        .collect();
    assert!(holes.is_empty(), "cells that failed:\n{}", holes.join("\n"));
}

/// The proxy's faults reach the SDK as AWS's own errors would: the error codes the functions
/// match on, after the SDK's retries.
#[tokio::test]
async fn faults_reach_the_sdk_in_their_wire_shapes() {
    let (stack, proxy) = faulty_stack(SHAPES[0]).await;
    let c = &stack.clients;
    let objects = ObjectStore::new(c.s3.clone(), &stack.config.bucket);
    objects
        .put("probe/a", b"0123456789".to_vec(), "text/plain")
        .await
        .unwrap();

    let slow = proxy.plan.add(s3("GetObject", "probe/", 3, SLOW_DOWN));
    let e =
        c.s3.get_object()
            .bucket(&stack.config.bucket)
            .key("probe/a")
            .send()
            .await;
    let e = e.expect_err("three SlowDowns outlast the SDK's three attempts");
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&e),
        Some("SlowDown"),
        "{e:?}"
    );
    assert_eq!(slow.injected(), 3);
    // The rule is spent: the next read goes through whole.
    assert_eq!(objects.read_all("probe/a").await.unwrap(), b"0123456789");

    proxy
        .plan
        .add(s3("GetObject", "probe/", 1, Fault::CutBody { after: 4 }));
    let out =
        c.s3.get_object()
            .bucket(&stack.config.bucket)
            .key("probe/a")
            .send()
            .await;
    let body = out.expect("headers arrive whole").body.collect().await;
    assert!(
        body.is_err(),
        "a cut body is an error, not a short read: {body:?}"
    );

    let throttle = proxy.plan.add(Rule::new(
        Service::DynamoDb,
        "GetItem",
        3,
        Fault::JsonError {
            status: 400,
            error_type: "ProvisionedThroughputExceededException",
        },
    ));
    let e = c
        .dynamodb
        .get_item()
        .table_name(&stack.config.jobs_table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("x".into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("x".into()))
        .send()
        .await
        .expect_err("throttled three times");
    assert!(
        e.as_service_error()
            .is_some_and(|s| s.is_provisioned_throughput_exceeded_exception()),
        "{e:?}"
    );
    assert_eq!(throttle.injected(), 3);

    let send = proxy.plan.add(Rule::new(
        Service::Sqs,
        "SendMessage",
        3,
        Fault::JsonError {
            status: 500,
            error_type: "InternalError",
        },
    ));
    let e = c
        .sqs
        .send_message()
        .queue_url(&stack.resources.chunk_tasks.url)
        .message_body("{}")
        .send()
        .await
        .expect_err("500 three times");
    assert_eq!(
        aws_sdk_sqs::error::ProvideErrorMetadata::code(&e),
        Some("InternalError"),
        "{e:?}"
    );
    assert_eq!(send.injected(), 3);
    stack.shutdown().await;
}
