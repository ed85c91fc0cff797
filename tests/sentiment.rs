//! The lexicon sentiment step end to end through the emulator: a workflow with
//! `derive: {sentiment: {engine: lexicon}}` on an uploaded file of reviews (quoted commas,
//! quotes and newlines, emoji, empty texts, rows rejected by a rule and by the parser), run at
//! three chunk sizes (one chunk, a few, many). Whatever the chunk size: the clean output is the
//! same bytes; rows in = clean + rejected; each clean row's score and label equal
//! `tessera_engine::sentiment::Analyzer` on its source text (empty text: both empty); the
//! profile's `derived` section is the same and its label counts equal the clean output's; the
//! job (its snapshot over HTTP and its WebSocket pushes) says how many rows were scored; and a
//! query over the clean output averages the score by product and month.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_e2e::*;
use tessera_shared::engine::sentiment::{Analyzer, Label, ScoreText};
use tessera_shared::store::objects::ObjectStore;
use tokio_tungstenite::tungstenite::Message;

const JOB_TIMEOUT: Duration = Duration::from_secs(240);
const ROWS: usize = 2400;
const PRODUCTS: [&str; 3] = ["kettle", "lamp", "chair"];
const REVIEWS: &[&str] = &[
    "I love this product, it is AMAZING!!!",
    "Terrible. Broke after two days :(",
    "It's ok, nothing special",
    "not bad at all",
    "The service was not good, but the food was great",
    "",
    "Meh.",
    "absolutely the WORST purchase I have ever made",
    "Great value 😀 would buy again",
    "horrible\nsupport, \"helpful\" they said",
    "Kind of sad, kind of happy",
    "Ünïcödé façade: a truly wonderful café",
    "no problems whatsoever",
    "I hate, hate, HATE it",
    "works as described",
    "Not the best, not the worst.",
];

/// One generated data row.
struct Row {
    id: usize,
    product: &'static str,
    month: u32,
    review: &'static str,
    qty: i64,
}

/// `id,product,day,review,qty`; every 11th row has a negative `qty` (rejected by the rule), and
/// two ragged lines (rejected by the parser) sit among them. Returns the file and the rows.
fn file() -> (Vec<u8>, Vec<Row>, usize) {
    let mut out = String::from("id,product,day,review,qty\n");
    let mut rows = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut ragged = 0;
    for id in 0..ROWS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let review = REVIEWS[(x % REVIEWS.len() as u64) as usize];
        let row = Row {
            id,
            product: PRODUCTS[(x >> 8) as usize % 3],
            month: 1 + (x >> 16) as u32 % 4,
            review,
            qty: if id % 11 == 10 {
                -1
            } else {
                (x >> 24) as i64 % 9
            },
        };
        let field = if review.contains([',', '"', '\n']) || id % 3 == 0 {
            format!("\"{}\"", review.replace('"', "\"\""))
        } else {
            review.to_string()
        };
        out.push_str(&format!(
            "{},{},2026-{:02}-{:02},{field},{}\n",
            row.id,
            row.product,
            row.month,
            1 + id % 28,
            row.qty
        ));
        if id == 700 || id == 1900 {
            out.push_str("ragged,line\n");
            ragged += 1;
        }
        rows.push(row);
    }
    (out.into_bytes(), rows, ragged)
}

fn rules() -> Value {
    json!({"version": 1,
        "columns": {"review": {"derive": {"sentiment": {"engine": "lexicon"}}}},
        "rules": [{"id": "qty_positive", "column": "qty", "check": {"range": {"min": 0}}}]})
}

fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// What one run produced.
struct Run {
    clean: Vec<u8>,
    profile: Value,
    job: Value,
    query: Value,
    pushes: Vec<Value>,
}

async fn run_at(chunk_size: u64, data: &[u8]) -> Run {
    let stack = stack_with(|o| o.chunk_size = chunk_size).await;
    let c = Client::new(&stack, "alice");
    let wf = c
        .post_json(
            "/v1/workflows",
            &json!({"name": "reviews", "rules": rules()}),
        )
        .await;
    assert_eq!(wf.status, StatusCode::CREATED, "{:?}", wf.body);
    let wf_id = wf.body["workflow_id"].as_str().unwrap();
    let created = c
        .post_json(
            "/v1/uploads",
            &json!({"filename": "reviews.csv", "size": data.len(), "content_type": "text/csv",
                    "workflow": {"id": wf_id}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let job_id = created.body["job_id"].as_str().unwrap().to_string();

    // Follow the job over the WebSocket from before its upload.
    let ws_url = format!(
        "{}/v1/ws?token={}",
        stack.http_url.replacen("http://", "ws://", 1),
        stack.token("alice")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("WebSocket connect");
    ws.send(Message::Text(
        json!({"action": "subscribe", "job_id": job_id})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();

    let put = c
        .http
        .put(created.body["upload"]["url"].as_str().unwrap())
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);

    let mut pushes = Vec::new();
    loop {
        let msg = tokio::time::timeout(JOB_TIMEOUT, ws.next())
            .await
            .expect("a WebSocket message before the job ends")
            .expect("the connection is open")
            .expect("a message");
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(&t).unwrap();
        let ty = v["type"].as_str().unwrap_or("").to_string();
        if ty.starts_with("job.") {
            pushes.push(v);
            if ty != "job.progress" {
                break;
            }
        }
    }
    let job = c.wait_final(&job_id, JOB_TIMEOUT).await;
    assert_eq!(job["state"], "completed", "chunk size {chunk_size}: {job}");

    let objects = ObjectStore::new(stack.clients.s3.clone(), &stack.config.bucket);
    let prefix = format!("results/alice/{job_id}");
    let clean = objects
        .read_all(&format!("{prefix}/clean.csv"))
        .await
        .unwrap();
    let rejected = csv_rows(
        &objects
            .read_all(&format!("{prefix}/rejected.csv"))
            .await
            .unwrap(),
    );
    assert_eq!(
        rejected.len() as u64 - 1,
        job["rejected_rows"].as_u64().unwrap()
    );
    let profile: Value = serde_json::from_slice(
        &objects
            .read_all(&format!("{prefix}/profile.json"))
            .await
            .unwrap(),
    )
    .unwrap();
    // Through the API too (what the page reads).
    let via_api = c.get(&format!("/v1/jobs/{job_id}/profile")).await;
    assert_eq!(via_api.status, StatusCode::OK);
    assert_eq!(via_api.body["derived"], profile["derived"]);

    // Average sentiment by product and month, over the clean output.
    let q = c
        .post_json(
            &format!("/v1/jobs/{job_id}/queries"),
            &json!({"version": 1, "source": "clean",
                "group_by": ["product", {"column": "day", "bucket": "month"}],
                "aggregates": [{"fn": "avg", "column": "review_sentiment"},
                               {"fn": "count", "column": "review_sentiment"},
                               {"fn": "min", "column": "review_sentiment"}],
                "limit": 1000}),
        )
        .await;
    assert_eq!(q.status, StatusCode::OK, "{:?}", q.body);
    let by_label = c
        .post_json(
            &format!("/v1/jobs/{job_id}/queries"),
            &json!({"version": 1, "source": "clean", "group_by": ["review_sentiment_label"],
                    "aggregates": [{"fn": "count"}]}),
        )
        .await;
    assert_eq!(by_label.status, StatusCode::OK, "{:?}", by_label.body);
    let mut query = q.body;
    query["by_label"] = by_label.body;
    stack.shutdown().await;
    Run {
        clean,
        profile,
        job,
        query,
        pushes,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lexicon_sentiment_is_the_same_at_every_chunk_size() {
    let (data, rows, ragged) = file();
    // One chunk, a few, and many (~35 at 4 KiB; ~150 KiB of data).
    let sizes = [1u64 << 20, 32 << 10, 4 << 10];
    let mut runs = Vec::new();
    for &cs in &sizes {
        let r = run_at(cs, &data).await;
        let chunks = r.job["progress"]["chunks_total"].as_u64().unwrap();
        eprintln!("chunk size {cs}: {chunks} chunks");
        if cs == 4 << 10 {
            assert!(chunks >= 30, "{chunks} chunks");
        }
        runs.push(r);
    }
    let first = &runs[0];
    assert_eq!(first.job["progress"]["chunks_total"], 1);

    // Rows in = clean + rejected.
    let kept: Vec<&Row> = rows.iter().filter(|r| r.qty >= 0).collect();
    for (r, cs) in runs.iter().zip(sizes) {
        assert_eq!(
            r.job["rows"].as_u64().unwrap() + r.job["rejected_rows"].as_u64().unwrap(),
            (ROWS + ragged) as u64,
            "chunk size {cs}"
        );
        assert_eq!(r.job["rows"].as_u64().unwrap(), kept.len() as u64);
        assert_eq!(
            String::from_utf8_lossy(&r.clean),
            String::from_utf8_lossy(&first.clean),
            "the clean output does not depend on the chunk size ({cs})"
        );
        assert_eq!(
            r.profile["derived"], first.profile["derived"],
            "chunk size {cs}"
        );
        assert_eq!(r.profile["rows"], first.profile["rows"]);
        assert_eq!(r.query["result"], first.query["result"], "chunk size {cs}");
        assert_eq!(
            r.query["by_label"]["result"], first.query["by_label"]["result"],
            "chunk size {cs}"
        );
    }

    // Each clean row: the scorer on its source text.
    let clean = csv_rows(&first.clean);
    assert_eq!(
        clean[0],
        [
            "id",
            "product",
            "day",
            "review",
            "qty",
            "review_sentiment",
            "review_sentiment_label"
        ]
    );
    assert_eq!(clean.len() - 1, kept.len());
    let mut a = Analyzer::new();
    let mut labels: BTreeMap<String, u64> = BTreeMap::new();
    let mut empty = 0u64;
    // (product, month) -> (sum of scores in ten-thousandths, count)
    let mut groups: BTreeMap<(String, u32), (i64, u64)> = BTreeMap::new();
    for (cells, row) in clean[1..].iter().zip(&kept) {
        assert_eq!(cells[0], row.id.to_string());
        assert_eq!(cells[3], row.review);
        if row.review.is_empty() {
            assert_eq!(cells[5..], ["", ""], "empty text, not scored");
            empty += 1;
            groups.entry((row.product.into(), row.month)).or_default();
            continue;
        }
        let c = a.compound(row.review.as_bytes());
        assert_eq!(cells[5], ScoreText::of(c).to_string(), "{:?}", row.review);
        assert_eq!(cells[6], Label::of(c).as_str(), "{:?}", row.review);
        *labels.entry(cells[6].clone()).or_default() += 1;
        let g = groups.entry((row.product.into(), row.month)).or_default();
        g.0 += cells[5].replace('.', "").parse::<i64>().unwrap();
        g.1 += 1;
    }

    // The profile's derived section against the clean output.
    let d = &first.profile["derived"]["review_sentiment"];
    assert_eq!(d["kind"], "sentiment", "{d}");
    assert_eq!(d["source"], "review");
    assert_eq!(d["engine"], "lexicon");
    assert_eq!(d["label_column"], "review_sentiment_label");
    for l in ["positive", "negative", "neutral"] {
        assert_eq!(
            d["labels"][l].as_u64().unwrap(),
            labels.get(l).copied().unwrap_or(0),
            "{l}"
        );
        assert!(
            labels.get(l).copied().unwrap_or(0) > 0,
            "the file covers {l}"
        );
    }
    assert_eq!(d["not_scored"].as_u64().unwrap(), empty);
    assert!(empty > 0);
    let scored: u64 = labels.values().sum();
    assert_eq!(d["scored"].as_u64().unwrap(), scored);
    assert_eq!(d["rows"].as_u64().unwrap(), kept.len() as u64);
    let total_e4: i64 = groups.values().map(|g| g.0).sum();
    let mean = d["mean"].as_f64().unwrap();
    assert!(
        (mean - total_e4 as f64 / scored as f64 / 1e4).abs() < 1e-12,
        "{mean}"
    );

    // Rows scored, in the job's snapshot and the WebSocket's final push.
    for (r, cs) in runs.iter().zip(sizes) {
        assert_eq!(
            r.job["scored_rows"].as_u64(),
            Some(scored),
            "chunk size {cs}: {}",
            r.job
        );
        let last = r.pushes.last().unwrap();
        assert_eq!(last["type"], "job.completed", "{last}");
        assert_eq!(last["job"]["scored_rows"].as_u64(), Some(scored), "{last}");
        let mut seen = 0;
        for p in &r.pushes {
            let n = p["job"]["scored_rows"].as_u64().unwrap_or(0);
            assert!(n >= seen && n <= scored, "scored rows only grow: {p}");
            seen = n;
        }
    }

    // The query: average sentiment by product and month, exact against the clean output.
    let q = &first.query["result"];
    assert_eq!(
        q["columns"],
        json!([
            "product",
            "month(day)",
            "avg(review_sentiment)",
            "count(review_sentiment)",
            "min(review_sentiment)"
        ]),
        "{q}"
    );
    assert_eq!(q["unparsed"]["review_sentiment"], 0, "{q}");
    let got: BTreeMap<(String, u32), (f64, u64)> = q["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let month: u32 = r[1].as_str().unwrap()[5..7].parse().unwrap();
            let avg = r[2].as_str().map_or(f64::NAN, |s| s.parse().unwrap());
            (
                (r[0].as_str().unwrap().to_string(), month),
                (avg, r[3].as_u64().unwrap()),
            )
        })
        .collect();
    assert_eq!(got.len(), groups.len(), "{q}");
    for (k, (sum, n)) in &groups {
        let (avg, count) = got[k];
        assert_eq!(count, *n, "{k:?}");
        if *n > 0 {
            assert!(
                (avg - *sum as f64 / *n as f64 / 1e4).abs() < 1e-12,
                "{k:?}: {avg}"
            );
        }
    }
    let label_rows: BTreeMap<String, u64> = first.query["by_label"]["result"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or("").to_string(),
                r[1].as_u64().unwrap(),
            )
        })
        .collect();
    for l in ["positive", "negative", "neutral"] {
        assert_eq!(label_rows[l], d["labels"][l].as_u64().unwrap(), "{l}");
    }
}
