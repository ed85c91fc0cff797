//! Queries end to end through the emulator: the same questions answered within the request on
//! one stack and as query jobs (many byte ranges, boundaries inside quoted newlines) on
//! another give the same answers, and those answers are the exact figures computed here from
//! the rows; the same question asked again is answered from its stored result; bad questions,
//! unfinished jobs and other owners get their codes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_e2e::*;

const JOB_TIMEOUT: Duration = Duration::from_secs(180);
/// Small, and not a multiple of the rows' lengths, so range boundaries land everywhere.
const RANGE: u64 = 2_999;
/// The group limit both stacks run with.
const MAX_GROUPS: u64 = 500;

/// A stack whose queries all run inline (`inline: true`) or all as query jobs.
async fn query_stack(inline: bool) -> LocalStack {
    spill_stack(inline, None).await
}

/// [`query_stack`], with query ranges spilling their states by key hash above `spill` groups.
async fn spill_stack(inline: bool, spill: Option<u64>) -> LocalStack {
    stack_with(|o| {
        if let Some(n) = spill {
            o.env.push(("TESSERA_QUERY_SPILL_GROUPS", n.to_string()));
        }
        o.chunk_size = 16 * 1024;
        o.chunk_concurrency = 4;
        o.env.push((
            "TESSERA_QUERY_INLINE_MAX_BYTES",
            if inline { 1 << 30 } else { 0 }.to_string(),
        ));
        o.env.push(("TESSERA_QUERY_RANGE_SIZE", RANGE.to_string()));
        o.env
            .push(("TESSERA_QUERY_MAX_GROUPS", MAX_GROUPS.to_string()));
    })
    .await
}

const REGIONS: [&str; 5] = ["north", "south", "east", "west", "Zone \"9\", far"];

/// One row of the generated file, as the test knows it.
struct Row {
    region: &'static str,
    /// Amount in cents; `None` when the cell is empty or not a number.
    cents: Option<i64>,
    month: u32,
}

/// ~2,000 rows: quoted regions with delimiters and quotes, amounts with unparsable cells and
/// nulls, timestamps over six months, e-mails, and notes with LF/CRLF newlines.
fn data(rows: usize) -> (Vec<u8>, Vec<Row>) {
    let mut rng = Rng::new(11);
    let mut out = b"id,region,amount,ts,email,note\r\n".to_vec();
    let mut known = Vec::new();
    let notes = [
        "plain",
        "line\nbreak",
        "crlf\r\ninside",
        "comma, here",
        "q\"\"q",
    ];
    for id in 0..rows {
        let region = REGIONS[rng.below(REGIONS.len() as u64) as usize];
        let (amount, cents) = match rng.below(20) {
            0 => (String::new(), None),
            1 => ("lots".to_string(), None),
            _ => {
                let c = rng.below(100_000) as i64 - 20_000;
                let sign = if c < 0 { "-" } else { "" };
                (
                    format!("{sign}{}.{:02}", c.abs() / 100, c.abs() % 100),
                    Some(c),
                )
            }
        };
        let month = 1 + rng.below(6) as u32;
        let ts = format!(
            "2026-{month:02}-{:02}T{:02}:{:02}:00",
            1 + rng.below(28),
            rng.below(24),
            rng.below(60)
        );
        let email = format!("user{}@example.com", rng.below(300));
        let note = notes[rng.below(notes.len() as u64) as usize];
        let region_cell = format!("\"{}\"", region.replace('"', "\"\""));
        out.extend_from_slice(
            format!("{id},{region_cell},{amount},{ts},{email},\"{note}\"\r\n").as_bytes(),
        );
        known.push(Row {
            region,
            cents,
            month,
        });
    }
    (out, known)
}

async fn completed_job(c: &Client, bytes: Vec<u8>) -> String {
    let job_id = c.upload("q.csv", bytes.len() as u64, bytes).await;
    let done = c.wait_final(&job_id, JOB_TIMEOUT).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert!(
        done["progress"]["chunks_total"].as_u64().unwrap() > 1,
        "{done}"
    );
    job_id
}

/// Asks `query` and waits for its answer; returns (status of the first answer, final answer).
async fn ask(c: &Client, job_id: &str, query: &Value) -> (StatusCode, Value) {
    let a = c
        .post_json(&format!("/v1/jobs/{job_id}/queries"), query)
        .await;
    match a.status {
        StatusCode::OK => (a.status, a.body),
        StatusCode::ACCEPTED => {
            let url = a.body["status_url"].as_str().unwrap().to_string();
            assert_eq!(
                a.headers.get("location").and_then(|v| v.to_str().ok()),
                Some(url.as_str())
            );
            let until = Instant::now() + JOB_TIMEOUT;
            loop {
                let g = c.get(&url).await;
                assert_eq!(g.status, StatusCode::OK, "{:?}", g.body);
                let state = g.body["state"].as_str().unwrap().to_string();
                assert!(
                    ["queued", "running", "completed", "failed"].contains(&state.as_str()),
                    "{state}"
                );
                if state == "completed" || state == "failed" {
                    return (a.status, g.body);
                }
                assert!(Instant::now() < until, "query not final: {}", g.body);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        s => panic!("query answered {s}: {}", a.body),
    }
}

fn questions() -> Vec<Value> {
    vec![
        json!({"version": 1, "source": "clean", "group_by": ["region"],
               "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "amount"},
                              {"fn": "avg", "column": "amount"}, {"fn": "null_count", "column": "amount"},
                              {"fn": "min", "column": "amount"}, {"fn": "max", "column": "ts"}],
               "order_by": [{"key": "region"}]}),
        json!({"version": 1, "source": "source",
               "filter": {"and": [{"column": "amount", "op": "ge", "value": 100},
                                  {"column": "region", "op": "in", "value": ["north", "east"]}]},
               "aggregates": [{"fn": "count"}, {"fn": "count_distinct", "column": "email"}]}),
        json!({"version": 1, "group_by": [{"column": "ts", "bucket": "month"}],
               "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "amount"},
                              {"fn": "stddev", "column": "amount"}],
               "order_by": [{"aggregate": 1, "desc": true}], "limit": 4}),
        json!({"version": 1, "group_by": ["email"], "aggregates": [{"fn": "count"}],
               "having": {"aggregate": 0, "op": "ge", "value": 10},
               "order_by": [{"aggregate": 0, "desc": true}], "limit": 5, "offset": 1}),
        json!({"version": 1, "filter": {"column": "note", "op": "contains", "value": "break"},
               "group_by": ["region"],
               "aggregates": [{"fn": "top", "column": "email", "k": 3}, {"fn": "count_if", "filter": {"column": "amount", "op": "lt", "value": 0}}]}),
    ]
}

/// The exact figures of question 0, computed from the rows: per region, count, sum of cents,
/// nulls (empty or unparsable amounts).
fn by_region(rows: &[Row]) -> BTreeMap<&'static str, (u64, i64, u64)> {
    let mut m: BTreeMap<&str, (u64, i64, u64)> = BTreeMap::new();
    for r in rows {
        let e = m.entry(r.region).or_default();
        e.0 += 1;
        match r.cents {
            Some(c) => e.1 += c,
            None => e.2 += 1,
        }
    }
    m
}

/// The canonical decimal text of `c` cents (no trailing fraction zeros).
fn cents_text(c: i64) -> String {
    let sign = if c < 0 { "-" } else { "" };
    let text = format!("{}.{:02}", c.abs() / 100, c.abs() % 100);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{sign}{text}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inline_and_job_answers_agree_and_are_exact() {
    let (bytes, rows) = data(2_000);
    let (inline, jobs) = tokio::join!(query_stack(true), query_stack(false));
    let ci = Client::new(&inline, "alice");
    let cj = Client::new(&jobs, "alice");
    let (ji, jj) = tokio::join!(
        completed_job(&ci, bytes.clone()),
        completed_job(&cj, bytes.clone())
    );
    for (n, q) in questions().iter().enumerate() {
        let (si, ai) = ask(&ci, &ji, q).await;
        let (sj, aj) = ask(&cj, &jj, q).await;
        assert_eq!(si, StatusCode::OK, "question {n} inline: {ai}");
        assert_eq!(sj, StatusCode::ACCEPTED, "question {n} as a job: {aj}");
        assert_eq!(ai["state"], "completed", "question {n}: {ai}");
        assert_eq!(aj["state"], "completed", "question {n}: {aj}");
        assert_eq!(ai["mode"], "inline");
        assert_eq!(aj["mode"], "job");
        assert_eq!(
            ai["result"], aj["result"],
            "question {n}: inline and job answers differ"
        );
        let ranges = aj["progress"]["ranges"].as_u64().unwrap();
        assert!(ranges > 20, "question {n}: only {ranges} ranges");
        assert_eq!(aj["progress"]["ranges_done"], ranges);
        assert_eq!(aj["bytes_scanned"], ai["bytes_scanned"]);
        assert!(aj["cpu_seconds"].as_f64().unwrap() >= 0.0);
        assert!(!ai["result"]["columns"].as_array().unwrap().is_empty());
    }

    // Question 0's figures, exactly.
    let (_, a) = ask(&ci, &ji, &questions()[0]).await;
    let result = &a["result"];
    assert_eq!(
        result["columns"],
        json!([
            "region",
            "count",
            "sum(amount)",
            "avg(amount)",
            "null_count(amount)",
            "min(amount)",
            "max(ts)"
        ]),
        "{result}"
    );
    let want = by_region(&rows);
    let got: Vec<&Value> = result["rows"].as_array().unwrap().iter().collect();
    assert_eq!(got.len(), want.len(), "{result}");
    for (row, (region, (count, cents, nulls))) in got.iter().zip(&want) {
        assert_eq!(row[0], json!(region), "{result}");
        assert_eq!(row[1], json!(count), "{region}");
        assert_eq!(row[2], json!(cents_text(*cents)), "{region}");
        assert_eq!(row[4], json!(nulls), "{region}");
    }
    let unparsed = rows.iter().filter(|r| r.cents.is_none()).count() as u64;
    let empty = result["unparsed"]["amount"].as_u64().unwrap();
    assert!(
        empty > 0 && empty < unparsed,
        "unparsed {empty} of {unparsed} nulls+n/a"
    );
    assert_eq!(result["rows_scanned"], json!(rows.len()));

    // Question 2's months are the rows' months.
    let (_, a) = ask(&cj, &jj, &questions()[2]).await;
    let mut per_month = BTreeMap::new();
    for r in &rows {
        *per_month.entry(r.month).or_insert(0u64) += 1;
    }
    let counted: u64 = a["result"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[1].as_u64().unwrap())
        .sum();
    let mut top: Vec<u64> = per_month.values().copied().collect();
    top.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(counted, top[..4].iter().sum::<u64>(), "{}", a["result"]);

    // The CSV of a result: a header, then one record per row.
    let url = a["csv"]["url"].as_str().unwrap();
    let csv_text = reqwest::get(url).await.unwrap().text().await.unwrap();
    let lines: Vec<&str> = csv_text.lines().collect();
    assert_eq!(
        lines[0], "month(ts),count,sum(amount),stddev(amount)",
        "{csv_text}"
    );
    assert_eq!(lines.len(), 5, "{csv_text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_question_is_answered_from_its_stored_result() {
    let (bytes, _) = data(600);
    for inline in [true, false] {
        let s = query_stack(inline).await;
        let c = Client::new(&s, "alice");
        let job = completed_job(&c, bytes.clone()).await;
        let q = &questions()[0];
        let (_, first) = ask(&c, &job, q).await;
        assert_eq!(first["state"], "completed", "{first}");
        // The same question with its keys in another order and other whitespace.
        let text = r#"{ "order_by": [{"key": "region"}],
            "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "amount"},
                           {"fn": "avg", "column": "amount"}, {"fn": "null_count", "column": "amount"},
                           {"fn": "min", "column": "amount"}, {"fn": "max", "column": "ts"}],
            "group_by": ["region"], "source": "clean", "version": 1 }"#;
        let again = c
            .post_raw(
                &format!("/v1/jobs/{job}/queries"),
                "application/json",
                text.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
        assert_eq!(again.body["cached"], true);
        assert_eq!(again.body["query_id"], first["query_id"]);
        assert_eq!(again.body["result"], first["result"]);
        let g = c
            .get(&format!(
                "/v1/jobs/{job}/queries/{}",
                first["query_id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(g.status, StatusCode::OK);
        assert_eq!(g.body["result"], first["result"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_questions_unfinished_jobs_and_other_owners() {
    let s = query_stack(true).await;
    let c = Client::new(&s, "alice");
    let (bytes, _) = data(800);
    let job = completed_job(&c, bytes).await;
    let path = format!("/v1/jobs/{job}/queries");

    // An unknown column: 422 with its JSON path and a suggestion.
    let a = c
        .post_json(
            &path,
            &json!({"version": 1, "group_by": ["regoin"], "aggregates": [{"fn": "count"}]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", a.body);
    assert_eq!(a.body["error"]["code"], "invalid_query");
    let errs = a.body["error"]["details"]["errors"].as_array().unwrap();
    assert_eq!(errs[0]["code"], "unknown_column");
    assert_eq!(errs[0]["path"], "$.group_by[0]");
    assert!(
        errs[0]["message"].as_str().unwrap().contains("region"),
        "{:?}",
        errs[0]
    );
    assert!(a.body["error"]["request_id"].is_string());

    // A type mismatch and a structural error, each at its path.
    let a = c
        .post_json(
            &path,
            &json!({"version": 1, "filter": {"column": "amount", "op": "ge", "value": "lots"},
                    "aggregates": [{"fn": "count"}]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", a.body);
    assert_eq!(
        a.body["error"]["details"]["errors"][0]["path"],
        "$.filter.value"
    );
    let a = c
        .post_raw(&path, "application/json", b"{\"version\": 1, ".to_vec())
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", a.body);
    assert_eq!(
        a.body["error"]["details"]["errors"][0]["code"],
        "invalid_json"
    );

    // More groups than the limit: too_many_groups, naming it.
    let a = c
        .post_json(
            &path,
            &json!({"version": 1, "group_by": ["id"], "aggregates": [{"fn": "count"}]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", a.body);
    assert_eq!(a.body["error"]["code"], "too_many_groups");
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&MAX_GROUPS.to_string()));

    // Another owner: 404 for the job and for a query of it.
    let (_, answered) = ask(&c, &job, &questions()[1]).await;
    let qid = answered["query_id"].as_str().unwrap();
    let bob = Client::new(&s, "bob");
    let a = bob.post_json(&path, &questions()[1]).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{:?}", a.body);
    let a = bob.get(&format!("{path}/{qid}")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{:?}", a.body);
    let a = c.get(&format!("{path}/{}", "0".repeat(32))).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{:?}", a.body);
    let a = c.get(&format!("{path}/not-an-id")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{:?}", a.body);

    // A job that has not completed: 409.
    let created = c.create_upload("later.csv", 100).await;
    let pending = created["job_id"].as_str().unwrap();
    let a = c
        .post_json(&format!("/v1/jobs/{pending}/queries"), &questions()[1])
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{:?}", a.body);
    assert_eq!(a.body["error"]["code"], "job_not_completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_job_over_too_many_groups_fails_with_the_limit() {
    let s = query_stack(false).await;
    let c = Client::new(&s, "alice");
    let (bytes, _) = data(1_000);
    let job = completed_job(&c, bytes).await;
    let (status, a) = ask(
        &c,
        &job,
        &json!({"version": 1, "group_by": ["id"], "aggregates": [{"fn": "count"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(a["state"], "failed", "{a}");
    assert_eq!(a["error"]["code"], "too_many_groups", "{a}");
    // Asked again after it failed, it runs again (and fails the same way).
    let (status, again) = ask(
        &c,
        &job,
        &json!({"version": 1, "group_by": ["id"], "aggregates": [{"fn": "count"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["error"]["code"], "too_many_groups", "{again}");
}

/// Query job ranges whose states hold more groups than the spill threshold are written in
/// partitions by key hash and merged one partition at a time: the answers are the ones given
/// inline, top-N orders and limits across partitions included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spilled_states_give_the_same_answers() {
    let (bytes, _) = data(2_000);
    let (inline, spilled) = tokio::join!(query_stack(true), spill_stack(false, Some(5)));
    let ci = Client::new(&inline, "alice");
    let cs = Client::new(&spilled, "alice");
    let (ji, js) = tokio::join!(
        completed_job(&ci, bytes.clone()),
        completed_job(&cs, bytes.clone())
    );
    let questions = [
        json!({"version": 1, "group_by": ["email"], "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "amount"}],
               "order_by": [{"aggregate": 0, "desc": true}], "limit": 7, "offset": 2}),
        json!({"version": 1, "group_by": ["region", {"column": "ts", "bucket": "week"}],
               "aggregates": [{"fn": "avg", "column": "amount"}, {"fn": "count_distinct", "column": "email"}],
               "having": {"aggregate": 1, "op": "ge", "value": 2}}),
        json!({"version": 1, "aggregates": [{"fn": "count"}, {"fn": "max", "column": "ts"}]}),
    ];
    for q in &questions {
        let (_, a) = ask(&ci, &ji, q).await;
        let (_, b) = ask(&cs, &js, q).await;
        assert_eq!(a["state"], "completed", "{a}");
        assert_eq!(b["state"], "completed", "{b}");
        assert_eq!(a["result"], b["result"], "{q}");
    }
    let (_, a) = ask(&cs, &js, &questions[0]).await;
    assert_eq!(a["result"]["groups"], 300, "{a}");
}
