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
                "columns": {"review": {"derive": {"sentiment": {"engine": "model"}}}},
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
                "columns": {"review": {"derive": {"sentiment": {"engine": "model"}}}}}}),
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
