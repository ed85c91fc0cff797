//! The `model` sentiment engine end to end through the emulator, with the real Bedrock Runtime
//! client pointed at a scripted Converse server: a file whose review column holds e-mails,
//! phones, cards, SSNs, IBANs and IPs is graded in batches by the chunk workers; no detected
//! value reaches any request body; the clean output's score and label are what the script
//! answered for each row; a batch answered out of schema twice gets `model_error` on its rows
//! (none dropped: rows in = clean + rejected), one answered badly once is asked again and
//! graded; a throttled call is waited for and answered. Without a model the step is refused
//! at its JSON path.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_e2e::*;
use tessera_infra::converse::{ConverseServer, Step};
use tessera_shared::engine::grading::mask::find;
use tessera_shared::model::bedrock::BedrockModel;
use tessera_shared::model::ChatModel;
use tessera_shared::store::objects::ObjectStore;

const TIMEOUT: Duration = Duration::from_secs(120);
const MODEL: &str = "us.anthropic.claude-test-v1:0";
const ROWS: usize = 600;
const MALFORMED: usize = 5;
const FLAKY: usize = 77;
const THROTTLED: usize = 123;

async fn model_stack(server: &ConverseServer) -> LocalStack {
    let model: Arc<dyn ChatModel> = Arc::new(BedrockModel::local(
        server.url(),
        aws_smithy_types::retry::RetryConfig::disabled(),
    ));
    stack_with(move |o| {
        o.chunk_size = 16 * 1024;
        o.chunk_concurrency = 3;
        o.agent_model = Some(model);
        o.env.push(("TESSERA_MODEL_ID", MODEL.into()));
        o.env
            .push(("TESSERA_MODEL_OWNER_TOKENS", "100000000".into()));
        o.env
            .push(("TESSERA_MODEL_GLOBAL_TOKENS", "100000000".into()));
        o.env
            .push(("TESSERA_MODEL_OWNER_REQUESTS", "100000".into()));
        o.env
            .push(("TESSERA_MODEL_GLOBAL_REQUESTS", "100000".into()));
        o.env.push((
            "TESSERA_MODEL_PRICES",
            r#"{"*": {"input_per_1k": 0.003, "output_per_1k": 0.015}}"#.into(),
        ));
        o.env.push(("TESSERA_OWNER_DAILY_BUDGET_USD", "100".into()));
    })
    .await
}

/// The personal value of row `i` (every kind, in several print forms).
fn pii(i: usize) -> String {
    const CARDS: [&str; 3] = [
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "4012888888881881",
    ];
    const IBANS: [&str; 2] = ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"];
    match i % 8 {
        0 => format!("jane.doe{i}@example.com"),
        1 => format!("({}) 555-{:04}", 200 + i % 700, 1000 + i),
        2 => CARDS[i % 3].to_string(),
        3 => format!("{:03}-{:02}-{:04}", 100 + i % 500, 10 + i % 89, 1000 + i),
        4 => IBANS[i % 2].to_string(),
        5 => format!("10.{}.{}.{}", i % 256, (i / 7) % 256, 1 + i % 250),
        6 => format!("2001:db8::{:x}", i + 1),
        _ => format!("+44 20 7946 {:04}", i),
    }
}

fn review(i: usize) -> String {
    if i % 50 == 7 {
        return String::new();
    }
    let marker = match i {
        MALFORMED => " MALFORMED",
        FLAKY => " FLAKY",
        THROTTLED => " THROTTLE",
        _ => "",
    };
    let adj = [
        "great",
        "terrible",
        "okay, I guess",
        "\"fine\"",
        "awful\nreally",
    ][i % 5];
    format!(
        "Row {i}: {adj} product, reach me at {} please{marker}",
        pii(i)
    )
}

fn data() -> Vec<u8> {
    let mut out = b"id,qty,review\n".to_vec();
    for i in 0..ROWS {
        let qty = if i % 13 == 0 { -1 } else { (i % 9) as i64 };
        let r = review(i).replace('"', "\"\"");
        out.extend_from_slice(format!("{i},{qty},\"{r}\"\n").as_bytes());
    }
    out
}

/// The script's score of row `i`.
fn score(i: usize) -> f64 {
    ((i * 37) % 201) as f64 / 100.0 - 1.0
}

fn label(s: f64) -> &'static str {
    if s > 0.1 {
        "positive"
    } else if s < -0.1 {
        "negative"
    } else {
        "neutral"
    }
}

/// The rows of a grading request: `(row, text)`.
fn rows_of(body: &Value) -> Vec<(u64, String)> {
    let text = body["messages"][0]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no user text: {body}"));
    let v: Value = serde_json::from_str(text).unwrap();
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().unwrap(),
                r["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn row_id(text: &str) -> usize {
    let rest = text.strip_prefix("Row ").expect("a row's text");
    rest[..rest.find(':').unwrap()].parse().unwrap()
}

fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

#[tokio::test]
async fn model_engine_masks_batches_retries_and_waits() {
    let server = ConverseServer::start().await.unwrap();
    // Answers from the request: the script's score per row; MALFORMED always out of schema,
    // FLAKY out of schema the first time, THROTTLE throttled the first time.
    let seen: Arc<Mutex<HashSet<&'static str>>> = Arc::default();
    server.respond_with(move |body| {
        let rows = rows_of(body);
        let has = |m: &str| rows.iter().any(|(_, t)| t.ends_with(m));
        let first = |m: &'static str| seen.lock().unwrap().insert(m);
        if has("THROTTLE") && first("THROTTLE") {
            return Step::throttling();
        }
        if has("MALFORMED") || (has("FLAKY") && first("FLAKY")) {
            return Step::tool_use(
                "grade_sentiment",
                json!({"results": [{"row": 0, "score": 3, "label": "great"}]}),
            );
        }
        let results: Vec<Value> = rows
            .iter()
            .map(|(r, t)| {
                let s = score(row_id(t));
                json!({"row": r, "score": s, "label": label(s)})
            })
            .collect();
        Step::tool_use("grade_sentiment", json!({ "results": results })).with_usage(500, 300)
    });
    let stack = model_stack(&server).await;
    let alice = Client::new(&stack, "alice");
    let wf = alice
        .post_json(
            "/v1/workflows",
            &json!({"name": "reviews", "rules": {"version": 1,
                "columns": {"review": {"derive": {"sentiment": {"engine": "model", "max_cost_usd": 5}}}},
                "rules": [{"id": "qty_min", "column": "qty", "check": {"range": {"min": 0}}}]}}),
        )
        .await;
    assert_eq!(wf.status, StatusCode::CREATED, "{:?}", wf.body);
    let wid = wf.body["workflow_id"].as_str().unwrap();
    let bytes = data();
    let up = alice
        .post_json(
            "/v1/uploads",
            &json!({"filename": "r.csv", "size": bytes.len(), "content_type": "text/csv",
                    "workflow": {"id": wid}}),
        )
        .await;
    assert_eq!(up.status, StatusCode::CREATED, "{:?}", up.body);
    let put = alice
        .http
        .put(up.body["upload"]["url"].as_str().unwrap())
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let job_id = up.body["job_id"].as_str().unwrap();
    let done = alice.wait_final(job_id, TIMEOUT).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert!(
        done["progress"]["chunks_total"].as_u64().unwrap() >= 3,
        "{done}"
    );
    let rejected_ids: Vec<usize> = (0..ROWS).filter(|i| i % 13 == 0).collect();
    // Rows in = clean + rejected: no row dropped.
    assert_eq!(done["rows"], (ROWS - rejected_ids.len()) as u64, "{done}");
    assert_eq!(done["rejected_rows"], rejected_ids.len() as u64, "{done}");

    // Masking: no detected value in any request body.
    let requests = server.requests();
    assert!(requests.len() >= 10, "{} requests", requests.len());
    let mut sent_rows = 0;
    for r in &requests {
        let raw = r.body.to_string();
        for i in 0..ROWS {
            let v = pii(i);
            assert!(!raw.contains(&v), "{v} (row {i}) sent in {raw}");
        }
        for (_, text) in rows_of(&r.body) {
            assert!(find(&text).is_empty(), "a detected value in {text:?}");
            assert!(text.contains('[') && text.contains(']'), "{text:?}");
            sent_rows += 1;
        }
        let tools = r.body["toolConfig"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("no tools: {}", r.body));
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0]["toolSpec"]["name"], "grade_sentiment");
        let batch = rows_of(&r.body).len();
        assert!((1..=40).contains(&batch), "{batch}");
    }
    // Each non-empty clean row once; the malformed and flaky batches twice, the throttled once more.
    let count = |m: &str| {
        requests
            .iter()
            .filter(|r| rows_of(&r.body).iter().any(|(_, t)| t.ends_with(m)))
            .count()
    };
    assert_eq!(count("MALFORMED"), 2, "asked again once, then given up");
    assert_eq!(count("FLAKY"), 2);
    assert_eq!(count("THROTTLE"), 2);

    // The clean output: the script's grades; `model_error` on the malformed batch's rows.
    let objects = ObjectStore::new(stack.clients.s3.clone(), &stack.config.bucket);
    let clean = csv_rows(
        &objects
            .read_all(&format!("results/alice/{job_id}/clean.csv"))
            .await
            .unwrap(),
    );
    assert_eq!(
        clean[0],
        [
            "id",
            "qty",
            "review",
            "review_sentiment",
            "review_sentiment_label"
        ]
    );
    let malformed_batch: HashSet<usize> = requests
        .iter()
        .map(|r| rows_of(&r.body))
        .find(|rows| rows.iter().any(|(_, t)| t.ends_with("MALFORMED")))
        .unwrap()
        .iter()
        .map(|(_, t)| row_id(t))
        .collect();
    let mut by_id: HashMap<usize, (String, String)> = HashMap::new();
    for row in &clean[1..] {
        let id: usize = row[0].parse().unwrap();
        assert_eq!(row[2], review(id), "the clean text is the source text");
        by_id.insert(id, (row[3].clone(), row[4].clone()));
    }
    assert_eq!(by_id.len(), ROWS - rejected_ids.len());
    let mut errors = 0;
    for (id, (s, l)) in &by_id {
        if review(*id).is_empty() {
            // Not scored, as by the lexicon: empty score and label, no call.
            assert_eq!((s.as_str(), l.as_str()), ("", ""), "row {id}");
        } else if malformed_batch.contains(id) {
            assert_eq!((s.as_str(), l.as_str()), ("", "model_error"), "row {id}");
            errors += 1;
        } else {
            let want = score(*id);
            assert_eq!(s, &format!("{want:.4}"), "row {id}");
            assert_eq!(l, label(want), "row {id}");
        }
    }
    assert!((1..=40).contains(&errors), "{errors}");

    // Progress: tokens, cost and capacity wait in the job; the same in the manifest.
    let m = &done["model"];
    let (input, output) = (
        m["input_tokens"].as_u64().unwrap(),
        m["output_tokens"].as_u64().unwrap(),
    );
    assert!(input >= 500 && output >= 300, "{m}");
    let cost = m["cost_usd"].as_f64().unwrap();
    let priced = (input as f64 * 0.003 + output as f64 * 0.015) / 1000.0;
    // Each call is priced rounded up to a micro-dollar.
    assert!(
        cost >= priced - 1e-9 && cost <= priced + requests.len() as f64 * 1e-6,
        "{m}"
    );
    assert_eq!(m["max_cost_usd"], 5.0);
    assert!(
        m["waited_ms"].as_u64().unwrap() >= 1000,
        "the throttled call waited: {m}"
    );
    let estimate = m["estimated_cost_usd"].as_f64().unwrap();
    assert!(
        estimate > cost,
        "the estimate bounds the output by max_tokens: {m}"
    );
    println!(
        "sentiment_model: {} calls, {input} input + {output} output tokens, ${cost:.6} (estimate ${estimate:.6}), waited {} ms",
        requests.len(),
        m["waited_ms"]
    );
    assert_eq!(
        done["scored_rows"].as_u64().unwrap(),
        (by_id.len() - errors) as u64
            - by_id.keys().filter(|i| review(**i).is_empty()).count() as u64,
        "{done}"
    );
    let manifest: Value = serde_json::from_slice(
        &objects
            .read_all(&format!("results/alice/{job_id}/manifest.json"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["sentiment"]["model_error_rows"], errors as u64,
        "{manifest}"
    );
    assert_eq!(manifest["sentiment"]["not_graded_rows"], 0);
    assert_eq!(manifest["sentiment"]["model"]["cost_usd"], m["cost_usd"]);
    let graded_once = by_id.keys().filter(|i| !review(**i).is_empty()).count();
    assert!(
        sent_rows >= graded_once,
        "{sent_rows} rows sent, {graded_once} graded"
    );
}

#[tokio::test]
async fn without_a_model_the_step_is_refused_at_its_path() {
    let stack = stack_with(|o| o.chunk_size = 16 * 1024).await;
    assert!(stack.config.model_id.is_none());
    let alice = Client::new(&stack, "alice");
    let wf = alice
        .post_json(
            "/v1/workflows",
            &json!({"name": "reviews", "rules": {"version": 1,
                "columns": {"review": {"derive": {"sentiment": {"engine": "model", "max_cost_usd": 1}}}}}}),
        )
        .await;
    assert_eq!(wf.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", wf.body);
    let errs = &wf.body["error"]["details"]["errors"];
    assert_eq!(
        errs[0]["path"], "/columns/review/derive/sentiment/engine",
        "{errs}"
    );
    assert!(errs[0]["message"]
        .as_str()
        .unwrap()
        .contains("TESSERA_MODEL_ID"));
}

/// A workflow with the model engine and a job over `bytes` on `stack`: the final snapshot.
async fn run_job(stack: &LocalStack, sentiment: Value, bytes: &[u8]) -> (String, Value) {
    let alice = Client::new(stack, "alice");
    let wf = alice
        .post_json(
            "/v1/workflows",
            &json!({"name": "reviews", "rules": {"version": 1,
                "columns": {"review": {"derive": {"sentiment": sentiment}}}}}),
        )
        .await;
    assert_eq!(wf.status, StatusCode::CREATED, "{:?}", wf.body);
    let up = alice
        .post_json(
            "/v1/uploads",
            &json!({"filename": "r.csv", "size": bytes.len(), "content_type": "text/csv",
                    "workflow": {"id": wf.body["workflow_id"]}}),
        )
        .await;
    assert_eq!(up.status, StatusCode::CREATED, "{:?}", up.body);
    let put = alice
        .http
        .put(up.body["upload"]["url"].as_str().unwrap())
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let job_id = up.body["job_id"].as_str().unwrap().to_string();
    let done = alice.wait_final(&job_id, TIMEOUT).await;
    (job_id, done)
}

async fn clean_of(stack: &LocalStack, job_id: &str) -> Vec<Vec<String>> {
    let objects = ObjectStore::new(stack.clients.s3.clone(), &stack.config.bucket);
    csv_rows(
        &objects
            .read_all(&format!("results/alice/{job_id}/clean.csv"))
            .await
            .unwrap(),
    )
}

/// Answers every batch with the script's grades, reporting `usage` per call.
fn grade_all(server: &ConverseServer, usage: (u32, u32)) {
    server.respond_with(move |body| {
        let results: Vec<Value> = rows_of(body)
            .iter()
            .map(|(r, t)| {
                let s = score(row_id(t));
                json!({"row": r, "score": s, "label": label(s)})
            })
            .collect();
        Step::tool_use("grade_sentiment", json!({ "results": results }))
            .with_usage(usage.0, usage.1)
    });
}

/// A workflow without `max_cost_usd` is refused; a job estimated above its limit fails
/// `cost_limit` with both figures before any call; a job whose spending reaches the limit
/// stops grading: the rows left are `not_graded`, counted, none dropped.
#[tokio::test]
async fn the_cost_is_estimated_refused_and_capped() {
    let server = ConverseServer::start().await.unwrap();
    grade_all(&server, (500, 300));
    let stack = model_stack(&server).await;
    let alice = Client::new(&stack, "alice");
    let wf = alice
        .post_json(
            "/v1/workflows",
            &json!({"name": "reviews", "rules": {"version": 1,
                "columns": {"review": {"derive": {"sentiment": {"engine": "model"}}}}}}),
        )
        .await;
    assert_eq!(wf.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", wf.body);
    let errs = &wf.body["error"]["details"]["errors"];
    assert_eq!(
        errs[0]["path"], "/columns/review/derive/sentiment/max_cost_usd",
        "{errs}"
    );
    assert!(errs[0]["message"]
        .as_str()
        .unwrap()
        .contains("max_cost_usd"));

    let bytes = data();
    // Refused at planning: nothing sent.
    let (_, done) = run_job(
        &stack,
        json!({"engine": "model", "max_cost_usd": 0.01}),
        &bytes,
    )
    .await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "cost_limit", "{done}");
    let msg = done["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("max_cost_usd of $0.01") && msg.contains("estimated at $0."),
        "{msg}"
    );
    assert!(
        server.requests().is_empty(),
        "no call before the estimate is accepted"
    );
    println!("cost_limit: {msg}");

    // Capped during the run: the script reports 100,000 input tokens a call ($0.30), so the
    // $0.50 limit (estimate ~$0.35) is reached after the second call.
    grade_all(&server, (100_000, 300));
    let (job_id, done) = run_job(
        &stack,
        json!({"engine": "model", "max_cost_usd": 0.5}),
        &bytes,
    )
    .await;
    assert_eq!(done["state"], "completed", "{done}");
    let calls = server.requests().len();
    let not_graded = done["not_graded_rows"].as_u64().unwrap_or(0);
    let m = &done["model"];
    let cost = m["cost_usd"].as_f64().unwrap();
    assert!(cost >= 0.5, "{m}");
    // Chunks run 3 at a time: each may have one call under way when the limit is reached.
    assert!((2..=5).contains(&calls), "{calls} calls");
    // $0.3045 a call (100,000 x $0.003 + 300 x $0.015 per 1,000).
    assert!(
        (cost - 0.3045 * calls as f64).abs() < 1e-5 * calls as f64,
        "{m}"
    );
    let clean = clean_of(&stack, &job_id).await;
    let rows = &clean[1..];
    assert_eq!(
        rows.len() as u64 + done["rejected_rows"].as_u64().unwrap(),
        ROWS as u64,
        "rows in = clean + rejected"
    );
    let marked = rows.iter().filter(|r| r[4] == "not_graded").count() as u64;
    assert_eq!(marked, not_graded, "{done}");
    assert!(
        not_graded >= 400,
        "{not_graded} rows not graded after {calls} calls"
    );
    for r in rows.iter().filter(|r| r[4] == "not_graded") {
        assert_eq!(r[3], "", "no score");
    }
    let graded = rows.iter().filter(|r| !r[3].is_empty()).count() as u64;
    assert_eq!(done["scored_rows"].as_u64().unwrap_or(0), graded, "{done}");
    println!("cap: {calls} calls, ${cost:.6} of $0.50, {graded} graded, {not_graded} not graded");
}

/// `sample: N` grades about N rows, the same rows at every chunk size; the others are
/// `not_sampled`.
#[tokio::test]
async fn a_sample_is_the_same_at_every_chunk_size() {
    let bytes = data();
    let mut graded_sets = Vec::new();
    for chunk in [16 * 1024, 4 * 1024] {
        let server = ConverseServer::start().await.unwrap();
        grade_all(&server, (500, 300));
        let model: Arc<dyn ChatModel> = Arc::new(BedrockModel::local(
            server.url(),
            aws_smithy_types::retry::RetryConfig::disabled(),
        ));
        let stack = stack_with(move |o| {
            o.chunk_size = chunk;
            o.chunk_concurrency = 3;
            o.agent_model = Some(model);
            o.env.push(("TESSERA_MODEL_ID", MODEL.into()));
            o.env.push((
                "TESSERA_MODEL_PRICES",
                r#"{"*": {"input_per_1k": 0.003, "output_per_1k": 0.015}}"#.into(),
            ));
            o.env.push(("TESSERA_OWNER_DAILY_BUDGET_USD", "100".into()));
        })
        .await;
        let (job_id, done) = run_job(
            &stack,
            json!({"engine": "model", "max_cost_usd": 5, "sample": 100}),
            &bytes,
        )
        .await;
        assert_eq!(done["state"], "completed", "{done}");
        let clean = clean_of(&stack, &job_id).await;
        assert_eq!(clean.len() - 1, ROWS, "rows in = clean");
        let graded: std::collections::BTreeSet<usize> = clean[1..]
            .iter()
            .filter(|r| !r[3].is_empty())
            .map(|r| r[0].parse().unwrap())
            .collect();
        let not_sampled = clean[1..].iter().filter(|r| r[4] == "not_sampled").count();
        assert_eq!(
            graded.len() + not_sampled + clean[1..].iter().filter(|r| r[2].is_empty()).count(),
            ROWS
        );
        // Sent: exactly the sampled rows.
        let sent: std::collections::BTreeSet<usize> = server
            .requests()
            .iter()
            .flat_map(|r| rows_of(&r.body))
            .map(|(_, t)| row_id(&t))
            .collect();
        assert_eq!(sent, graded);
        assert_eq!(done["scored_rows"].as_u64().unwrap(), graded.len() as u64);
        println!(
            "sample of 100 at {chunk} B chunks: {} graded, {not_sampled} not sampled, {} calls",
            graded.len(),
            server.requests().len()
        );
        graded_sets.push(graded);
    }
    assert_eq!(
        graded_sets[0], graded_sets[1],
        "the same rows at every chunk size"
    );
    // ~100 of 600 (p = 1/6): within 4 standard deviations (9.1).
    assert!(
        (64..=136).contains(&graded_sets[0].len()),
        "{}",
        graded_sets[0].len()
    );
}

/// The model engine's progress reaches a WebSocket subscriber like any job's, up to
/// `job.completed` with the `model` spending. It failed before the local stream poller resumed
/// from a fresh iterator (`infra/src/streams.rs`): the emulator orphans stream iterators when a
/// transaction (the rate buckets') fails its condition.
#[tokio::test]
async fn model_progress_is_pushed_over_the_websocket() {
    pushes_follow(json!({"engine": "model", "max_cost_usd": 100})).await;
}

async fn pushes_follow(sentiment: Value) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let server = ConverseServer::start().await.unwrap();
    grade_all(&server, (500, 300));
    let stack = model_stack(&server).await;
    let alice = Client::new(&stack, "alice");
    let wf = alice
        .post_json(
            "/v1/workflows",
            &json!({"name": "reviews", "rules": {"version": 1, "columns": {"review": {"derive":
                {"sentiment": sentiment}}}}}),
        )
        .await;
    assert_eq!(wf.status, StatusCode::CREATED, "{:?}", wf.body);
    let bytes = data();
    let up = alice
        .post_json(
            "/v1/uploads",
            &json!({"filename": "r.csv", "size": bytes.len(), "content_type": "text/csv",
                    "workflow": {"id": wf.body["workflow_id"]}}),
        )
        .await;
    assert_eq!(up.status, StatusCode::CREATED, "{:?}", up.body);
    let job_id = up.body["job_id"].as_str().unwrap().to_string();

    let url = format!(
        "{}/v1/ws?token={}",
        stack.http_url.replacen("http://", "ws://", 1),
        stack.token("alice")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::Text(
        json!({"action": "subscribe", "job_id": job_id})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let put = alice
        .http
        .put(up.body["upload"]["url"].as_str().unwrap())
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);

    let mut seen: Vec<Value> = Vec::new();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Ok(msg) = tokio::time::timeout(left, ws.next()).await else {
            let job = alice.get(&format!("/v1/jobs/{job_id}")).await;
            panic!(
                "no job.completed push within {TIMEOUT:?}; pushes: {:?}; job: {:?}",
                seen.iter().map(|m| m["type"].clone()).collect::<Vec<_>>(),
                job.body
            )
        };
        let Some(Ok(Message::Text(t))) = msg else {
            continue;
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        let kind = v["type"].as_str().unwrap_or_default().to_string();
        seen.push(v);
        if kind == "job.completed" || kind == "job.failed" {
            break;
        }
    }
    let last = seen.last().unwrap();
    assert_eq!(last["type"], "job.completed", "{last}");
    let model = &last["job"]["model"];
    assert!(model["cost_usd"].as_f64().unwrap() > 0.0, "{last}");
    assert!(model["input_tokens"].as_u64().unwrap() > 0, "{last}");
    let job = alice.get(&format!("/v1/jobs/{job_id}")).await.body;
    assert!(job["scored_rows"].as_u64().unwrap() > 0, "{job}");
    assert_eq!(last["job"]["scored_rows"], job["scored_rows"], "{last}");
    assert_eq!(last["job"]["model"], job["model"], "{last}");
}
