//! End to end: multipart uploads (presigned part PUTs, resume, complete, abort, bad input) and
//! job control (list with state filter and cursor, cancel mid-job, retry after a chunk failure),
//! through HTTP against the local gateway and the AWS emulator. No fakes.
//!
//! The cancel and retry tests run without the stack's pollers: the test itself plays Lambda's
//! event-source mapping (receive a message, hand its body to the same pipeline code the planner
//! and chunk functions run, delete it), so it decides exactly when each chunk runs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_e2e::*;
use tessera_shared::keys::{self, PartKind};
use tessera_shared::pipeline::Pipeline;
use tessera_shared::store::jobs::JobStore;
use tessera_shared::store::objects::ObjectStore;

const JOB_TIMEOUT: Duration = Duration::from_secs(180);
const MIB: usize = 1024 * 1024;

fn assert_error(a: &Answer, status: StatusCode, code: &str) {
    assert_eq!(a.status, status, "{:?}", a.body);
    assert_eq!(a.body["error"]["code"], code, "{:?}", a.body);
    let rid = a.body["error"]["request_id"].as_str().unwrap_or("");
    assert!(!rid.is_empty() && rid != "-", "{:?}", a.body);
}

fn message(a: &Answer) -> String {
    a.body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// `POST /v1/uploads` as multipart with 5 MiB parts; asserts 201.
async fn create_multipart(c: &Client, name: &str, size: usize) -> Value {
    let a = c
        .post_json(
            "/v1/uploads",
            &json!({ "filename": name, "size": size, "content_type": "text/csv",
                     "multipart": true, "part_size": 5 * MIB }),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert_eq!(a.body["upload"]["kind"], "multipart", "{:?}", a.body);
    a.body
}

/// PUTs one part to its presigned URL the way a browser does; returns the answer's ETag.
async fn put_part(c: &Client, url: &str, bytes: &[u8]) -> String {
    let resp = c.http.put(url).body(bytes.to_vec()).send().await.unwrap();
    let status = resp.status();
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert_eq!(
        status,
        StatusCode::OK,
        "part PUT: {}",
        resp.text().await.unwrap_or_default()
    );
    etag.expect("the part PUT answers with an ETag")
}

fn part_bytes(data: &[u8], part_size: usize, n: u64) -> &[u8] {
    let start = (n as usize - 1) * part_size;
    &data[start..(start + part_size).min(data.len())]
}

fn urls(v: &Value) -> BTreeMap<u64, String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["part_number"].as_u64().unwrap(),
                p["url"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn complete_body(etags: &BTreeMap<u64, String>, order: &[u64]) -> Value {
    json!({ "parts": order.iter().map(|n| json!({ "part_number": n, "etag": etags[n] })).collect::<Vec<_>>() })
}

// ------------------------------------------------------------------------------ multipart

#[tokio::test]
async fn multipart_upload_resumes_completes_and_counts_exactly() {
    let stack = stack_with(|o| o.chunk_size = 1 << 20).await;
    let alice = Client::new(&stack, "alice");
    let data = tricky_csv(12 * MIB, 41, "\r\n");
    let expected = reference_records(&data).len() as u64;
    let created = create_multipart(&alice, "big.csv", data.len()).await;
    let job_id = created["job_id"].as_str().unwrap().to_string();
    let up = &created["upload"];
    assert_eq!(up["part_size"], 5 * MIB);
    let count = up["part_count"].as_u64().unwrap();
    assert_eq!(count, data.len().div_ceil(5 * MIB) as u64);
    assert_eq!(
        up["routes"]["complete"],
        format!("/v1/uploads/{job_id}/complete")
    );
    assert_eq!(up["routes"]["parts"], format!("/v1/uploads/{job_id}/parts"));
    assert_eq!(up["routes"]["abort"], format!("/v1/uploads/{job_id}"));
    assert!(up["expires_in"].as_u64().unwrap() <= 900);
    let first = urls(&up["parts"]);
    assert_eq!(
        first.keys().copied().collect::<Vec<_>>(),
        (1..=count).collect::<Vec<_>>()
    );
    // Part URLs sign `host` and the part's `content-length` (S3 refuses a part of another size;
    // every client sets it from the bytes) and carry no checksum terms a browser could not
    // satisfy.
    for u in first.values() {
        let url = reqwest::Url::parse(u).unwrap();
        let q: BTreeMap<String, String> = url
            .query_pairs()
            .map(|(k, v)| (k.to_lowercase(), v.into_owned()))
            .collect();
        assert_eq!(q["x-amz-signedheaders"], "content-length;host", "{u}");
        assert!(
            q.contains_key("uploadid") && q.contains_key("partnumber"),
            "{u}"
        );
        assert!(
            q.keys()
                .all(|k| !k.starts_with("x-amz-checksum") && !k.starts_with("x-amz-sdk-checksum")),
            "{u}"
        );
    }

    // Upload the first part only, then "reload": the parts route lists exactly that one with
    // its ETag and hands out fresh URLs for the rest.
    let mut etags = BTreeMap::new();
    etags.insert(
        1,
        put_part(&alice, &first[&1], part_bytes(&data, 5 * MIB, 1)).await,
    );
    let parts = alice.get(&format!("/v1/uploads/{job_id}/parts")).await;
    assert_eq!(parts.status, StatusCode::OK, "{:?}", parts.body);
    let held = parts.body["uploaded"].as_array().unwrap();
    assert_eq!(held.len(), 1, "{:?}", parts.body);
    assert_eq!(held[0]["part_number"], 1);
    assert_eq!(held[0]["size"], 5 * MIB);
    assert_eq!(
        held[0]["etag"].as_str().unwrap().trim_matches('"'),
        etags[&1].trim_matches('"')
    );
    assert_eq!(parts.body["missing_count"], count - 1);
    let fresh = urls(&parts.body["missing"]);
    assert_eq!(
        fresh.keys().copied().collect::<Vec<_>>(),
        (2..=count).collect::<Vec<_>>()
    );
    assert!(parts.body.get("next_from").is_none(), "{:?}", parts.body);
    // A later page starts where asked.
    let later = alice
        .get(&format!("/v1/uploads/{job_id}/parts?from={count}"))
        .await;
    assert_eq!(
        urls(&later.body["missing"])
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![count]
    );
    assert_error(
        &alice
            .get(&format!("/v1/uploads/{job_id}/parts?from=0"))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_from",
    );

    for n in 2..=count {
        etags.insert(
            n,
            put_part(&alice, &fresh[&n], part_bytes(&data, 5 * MIB, n)).await,
        );
    }
    let order: Vec<u64> = (1..=count).collect();
    let done = alice
        .post_json(
            &format!("/v1/uploads/{job_id}/complete"),
            &complete_body(&etags, &order),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    assert_eq!(done.body["job_id"], job_id.as_str());
    assert_eq!(done.body["size"], data.len());
    // Completing twice gives the same answer.
    let again = alice
        .post_json(
            &format!("/v1/uploads/{job_id}/complete"),
            &complete_body(&etags, &order),
        )
        .await;
    assert_eq!((again.status, &again.body), (StatusCode::OK, &done.body));

    let snap = alice.wait_final(&job_id, JOB_TIMEOUT).await;
    assert_eq!(snap["state"], "completed", "{snap}");
    assert_eq!(snap["rows"].as_u64(), Some(expected), "{snap}");
    assert_eq!(snap["size"], data.len());
    // After completion, still the same answer; the parts route says the upload is closed.
    let third = alice
        .post_json(
            &format!("/v1/uploads/{job_id}/complete"),
            &complete_body(&etags, &order),
        )
        .await;
    assert_eq!((third.status, &third.body), (StatusCode::OK, &done.body));
    assert_error(
        &alice.get(&format!("/v1/uploads/{job_id}/parts")).await,
        StatusCode::CONFLICT,
        "upload_completed",
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn multipart_bad_input_is_refused_naming_the_part() {
    let stack = stack().await;
    let alice = Client::new(&stack, "alice");
    let bob = Client::new(&stack, "bob");
    let data = tricky_csv(11 * MIB, 43, "\n");
    let created = create_multipart(&alice, "a.csv", data.len()).await;
    let job_id = created["job_id"].as_str().unwrap().to_string();
    let count = created["upload"]["part_count"].as_u64().unwrap();
    assert_eq!(count, 3);
    let first = urls(&created["upload"]["parts"]);
    let mut etags = BTreeMap::new();
    for n in 1..=count {
        etags.insert(
            n,
            put_part(&alice, &first[&n], part_bytes(&data, 5 * MIB, n)).await,
        );
    }
    let path = format!("/v1/uploads/{job_id}/complete");

    let a = alice
        .post_json(&path, &complete_body(&etags, &[1, 3]))
        .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "missing_part");
    assert!(message(&a).contains("Part 2"), "{:?}", a.body);

    let mut wrong = etags.clone();
    wrong.insert(3, "\"0123456789abcdef0123456789abcdef\"".into());
    let a = alice
        .post_json(&path, &complete_body(&wrong, &[1, 2, 3]))
        .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "etag_mismatch");
    assert!(message(&a).contains("Part 3"), "{:?}", a.body);

    let a = alice
        .post_json(&path, &complete_body(&etags, &[2, 1, 3]))
        .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "parts_out_of_order");
    assert!(message(&a).contains("Part 1"), "{:?}", a.body);

    let mut extra = complete_body(&etags, &[1, 2, 3]);
    extra["parts"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "part_number": 4, "etag": "x" }));
    let a = alice.post_json(&path, &extra).await;
    assert_error(&a, StatusCode::BAD_REQUEST, "unknown_part");

    // Another owner's upload: not found, whatever the route.
    assert_error(
        &bob.post_json(&path, &complete_body(&etags, &[1, 2, 3]))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &bob.get(&format!("/v1/uploads/{job_id}/parts")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &bob.delete(&format!("/v1/uploads/{job_id}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // ... and Alice naming Bob's upload id on her job is not found either.
    let bobs = create_multipart(&bob, "b.csv", 6 * MIB).await;
    let mut body = complete_body(&etags, &[1, 2, 3]);
    body["upload_id"] = bobs["upload"]["upload_id"].clone();
    assert_error(
        &alice.post_json(&path, &body).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &alice
            .post_json(
                "/v1/uploads/00000000-0000-4000-8000-000000000000/complete",
                &complete_body(&etags, &[1]),
            )
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // None of that touched the upload: the right list completes it, twice the same.
    body["upload_id"] = created["upload"]["upload_id"].clone();
    let ok = alice.post_json(&path, &body).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let again = alice.post_json(&path, &body).await;
    assert_eq!((again.status, &again.body), (StatusCode::OK, &ok.body));

    // Parts that add up to another size than declared: refused, the job fails size_mismatch,
    // and asking again gives the same answer.
    let created = create_multipart(&alice, "short.csv", data.len() + 1).await;
    let job2 = created["job_id"].as_str().unwrap().to_string();
    let first = urls(&created["upload"]["parts"]);
    let mut etags = BTreeMap::new();
    for n in 1..=3 {
        etags.insert(
            n,
            put_part(&alice, &first[&n], part_bytes(&data, 5 * MIB, n)).await,
        );
    }
    let path2 = format!("/v1/uploads/{job2}/complete");
    let a = alice
        .post_json(&path2, &complete_body(&etags, &[1, 2, 3]))
        .await;
    assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, "size_mismatch");
    let snap = alice.get(&format!("/v1/jobs/{job2}")).await.body;
    assert_eq!(
        (snap["state"].as_str(), snap["error"]["code"].as_str()),
        (Some("failed"), Some("size_mismatch")),
        "{snap}"
    );
    let b = alice
        .post_json(&path2, &complete_body(&etags, &[1, 2, 3]))
        .await;
    assert_error(&b, StatusCode::UNPROCESSABLE_ENTITY, "size_mismatch");
    assert_eq!(message(&a), message(&b));

    let snap = alice.wait_final(&job_id, JOB_TIMEOUT).await;
    assert_eq!(snap["state"], "completed", "{snap}");
    assert_eq!(
        snap["rows"].as_u64(),
        Some(reference_records(&data).len() as u64)
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn aborted_upload_cancels_the_job_and_closes_cleanly() {
    let stack = stack().await;
    let alice = Client::new(&stack, "alice");
    let data = tricky_csv(6 * MIB, 45, "\n");
    let created = create_multipart(&alice, "a.csv", data.len()).await;
    let job_id = created["job_id"].as_str().unwrap().to_string();
    let upload_id = created["upload"]["upload_id"].as_str().unwrap().to_string();
    let first = urls(&created["upload"]["parts"]);
    let etag = put_part(&alice, &first[&1], part_bytes(&data, 5 * MIB, 1)).await;

    let a = alice.delete(&format!("/v1/uploads/{job_id}")).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["state"], "cancelled");
    // S3 dropped the upload and its parts.
    let key = keys::source_key("alice", &job_id);
    let listed = stack
        .clients
        .s3
        .list_parts()
        .bucket(&stack.config.bucket)
        .key(&key)
        .upload_id(&upload_id)
        .send()
        .await;
    assert!(listed.is_err(), "ListParts after abort: {listed:?}");
    // The routes answer with codes, not S3's errors.
    assert_error(
        &alice.get(&format!("/v1/uploads/{job_id}/parts")).await,
        StatusCode::CONFLICT,
        "upload_aborted",
    );
    let body =
        json!({ "parts": [{ "part_number": 1, "etag": etag }, { "part_number": 2, "etag": "x" }] });
    assert_error(
        &alice
            .post_json(&format!("/v1/uploads/{job_id}/complete"), &body)
            .await,
        StatusCode::CONFLICT,
        "upload_aborted",
    );
    // Aborting again answers the same; cancelling the cancelled job is refused.
    let b = alice.delete(&format!("/v1/uploads/{job_id}")).await;
    assert_eq!(
        (b.status, &b.body["state"]),
        (StatusCode::OK, &json!("cancelled"))
    );
    let c = alice
        .post_json(&format!("/v1/jobs/{job_id}/cancel"), &json!({}))
        .await;
    assert_error(&c, StatusCode::CONFLICT, "job_final");
    assert!(message(&c).contains("cancelled"), "{:?}", c.body);
    // A single-PUT job has no multipart upload to abort.
    let single = alice.create_upload("s.csv", 10).await;
    let id = single["job_id"].as_str().unwrap();
    assert_eq!(single["upload"]["kind"], "single");
    assert_error(
        &alice.delete(&format!("/v1/uploads/{id}")).await,
        StatusCode::CONFLICT,
        "not_multipart",
    );
    stack.shutdown().await;
}

// ------------------------------------------------------------------------------ job control

#[tokio::test]
async fn jobs_are_listed_newest_first_by_state_with_a_cursor() {
    let stack = stack().await;
    let carol = Client::new(&stack, "carol");
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            carol.create_upload(&format!("{i}.csv"), 100).await["job_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let done = carol
        .upload("done.csv", 12, b"id,name\n1,a\n".to_vec())
        .await;
    assert_eq!(
        carol.wait_final(&done, JOB_TIMEOUT).await["state"],
        "completed"
    );

    let ids_of = |a: &Answer| -> Vec<String> {
        a.body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["job_id"].as_str().unwrap().to_string())
            .collect()
    };
    let all = carol.get("/v1/jobs").await;
    assert_eq!(
        ids_of(&all),
        vec![done.clone(), ids[2].clone(), ids[1].clone(), ids[0].clone()]
    );
    assert!(all.body.get("next_cursor").is_none());

    let p1 = carol.get("/v1/jobs?state=awaiting_upload&limit=2").await;
    assert_eq!(p1.status, StatusCode::OK, "{:?}", p1.body);
    assert_eq!(ids_of(&p1), vec![ids[2].clone(), ids[1].clone()]);
    let cursor = p1.body["next_cursor"]
        .as_str()
        .expect("a cursor after a full page")
        .to_string();
    let p2 = carol
        .get(&format!(
            "/v1/jobs?state=awaiting_upload&limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(ids_of(&p2), vec![ids[0].clone()]);
    assert!(p2.body.get("next_cursor").is_none(), "{:?}", p2.body);

    let c = carol.get("/v1/jobs?state=completed&limit=20").await;
    assert_eq!(ids_of(&c), vec![done.clone()]);
    assert_eq!(c.body["jobs"][0]["state"], "completed");
    assert!(ids_of(&carol.get("/v1/jobs?state=failed").await).is_empty());

    assert_error(
        &carol.get("/v1/jobs?cursor=not-a-cursor").await,
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
    );
    assert_error(
        &carol.get("/v1/jobs?state=done").await,
        StatusCode::BAD_REQUEST,
        "invalid_state",
    );
    assert_error(
        &carol.get("/v1/jobs?limit=0").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_limit",
    );
    // Carol's cursor is no use to Dave.
    let dave = Client::new(&stack, "dave");
    assert_error(
        &dave.get(&format!("/v1/jobs?cursor={cursor}")).await,
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
    );
    assert!(ids_of(&dave.get("/v1/jobs").await).is_empty());
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

    async fn receive(&self, url: &str, wait: i32) -> Option<(String, String)> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(1)
            .wait_time_seconds(wait)
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

    /// Runs the planner on every upload notification there is (the bucket's s3:TestEvent
    /// included); returns how many it handled.
    async fn plan_next(&self) -> usize {
        let mut n = 0;
        while let Some((body, receipt)) = self.receive(&self.uploads_url, 1).await {
            self.pipeline.planner_message(&body).await.expect("planner");
            self.ack(&self.uploads_url, receipt).await;
            n += 1;
        }
        assert!(n > 0, "no S3 notification arrived");
        n
    }

    /// Runs up to `n` chunk tasks; returns their indices.
    async fn run_chunks(&self, n: usize) -> Vec<u64> {
        let mut ran = Vec::new();
        while ran.len() < n {
            let Some((body, receipt)) = self.receive(&self.chunks_url, 1).await else {
                break;
            };
            let task: Value = serde_json::from_str(&body).unwrap();
            self.pipeline
                .chunk_message(&body)
                .await
                .expect("chunk task handled");
            self.ack(&self.chunks_url, receipt).await;
            ran.push(task["index"].as_u64().unwrap());
        }
        ran
    }
}

#[tokio::test]
async fn cancel_mid_job_stops_the_chunks_and_removes_partial_outputs() {
    let stack = stack_with(|o| o.no_pollers = true).await;
    let esm = Esm::new(&stack);
    let alice = Client::new(&stack, "alice");
    let data = tricky_csv(1 << 20, 51, "\n");
    let id = alice.upload("c.csv", data.len() as u64, data).await;
    esm.plan_next().await;
    let snap = alice.get(&format!("/v1/jobs/{id}")).await.body;
    assert_eq!(snap["state"], "processing", "{snap}");
    let total = snap["progress"]["chunks_total"].as_u64().unwrap();
    assert!(total >= 10, "{snap}");

    let ran = esm.run_chunks(3).await;
    assert_eq!(ran.len(), 3);
    let objects = ObjectStore::new(stack.clients.s3.clone(), &stack.config.bucket);
    let part = |i: u64| keys::part_key("alice", &id, PartKind::Result, i as u32);
    assert!(objects.size(&part(ran[0])).await.unwrap().is_some());

    let a = alice
        .post_json(&format!("/v1/jobs/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["state"], "cancelled");
    assert_eq!(a.body["progress"]["chunks_done"], 3);
    // The partial outputs are gone.
    for &i in &ran {
        for kind in [PartKind::Clean, PartKind::Rejected, PartKind::Result] {
            let k = keys::part_key("alice", &id, kind, i as u32);
            assert_eq!(objects.size(&k).await.unwrap(), None, "{k}");
        }
    }
    // The remaining tasks are skipped: nothing more is counted or written, the job never completes.
    let rest = esm.run_chunks(total as usize).await;
    assert_eq!(rest.len() as u64, total - 3);
    let snap = alice.get(&format!("/v1/jobs/{id}")).await.body;
    assert_eq!(
        (
            snap["state"].as_str(),
            snap["progress"]["chunks_done"].as_u64()
        ),
        (Some("cancelled"), Some(3)),
        "{snap}"
    );
    for &i in &rest {
        assert_eq!(objects.size(&part(i)).await.unwrap(), None);
    }
    assert_eq!(
        objects
            .size(&format!("{}/clean.csv", keys::results_prefix("alice", &id)))
            .await
            .unwrap(),
        None
    );
    assert_error(
        &alice
            .post_json(&format!("/v1/jobs/{id}/cancel"), &json!({}))
            .await,
        StatusCode::CONFLICT,
        "job_final",
    );
    assert_error(
        &Client::new(&stack, "bob")
            .post_json(&format!("/v1/jobs/{id}/cancel"), &json!({}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    stack.shutdown().await;
}

/// A real chunk failure: after planning, the file at the upload's key is replaced (a second PUT
/// to the still-valid presigned URL, with other bytes). The next chunk finds the object is not
/// the one the job was planned for (its size, from the ranged GET's Content-Range) and fails the
/// job, naming itself. Once the original is back, the owner's retry re-runs only the chunks
/// without a completion record and the job completes with the exact totals.
#[tokio::test]
async fn retry_after_a_chunk_failure_completes_with_exact_totals() {
    let stack = stack_with(|o| o.no_pollers = true).await;
    let esm = Esm::new(&stack);
    let alice = Client::new(&stack, "alice");
    let data = tricky_csv(1 << 20, 53, "\r\n");
    let expected = reference_records(&data);
    let created = alice.create_upload("r.csv", data.len() as u64).await;
    let id = created["job_id"].as_str().unwrap().to_string();
    let url = created["upload"]["url"].as_str().unwrap().to_string();
    let put = |body: Vec<u8>| {
        let (http, url) = (alice.http.clone(), url.clone());
        async move {
            let r = http.put(url).body(body).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        }
    };
    put(data.clone()).await;
    esm.plan_next().await;
    let total = alice.get(&format!("/v1/jobs/{id}")).await.body["progress"]["chunks_total"]
        .as_u64()
        .unwrap();
    assert!(total >= 10);
    // Not failed: nothing to retry.
    assert_error(
        &alice
            .post_json(&format!("/v1/jobs/{id}/retry"), &json!({}))
            .await,
        StatusCode::CONFLICT,
        "job_not_failed",
    );

    let before = esm.run_chunks(4).await;
    assert_eq!(before.len(), 4);
    let mut other = data.clone();
    other.extend_from_slice(b"999999,extra,\"row\",1.00\r\n");
    put(other).await;
    esm.plan_next().await; // the second ObjectCreated: the planner leaves the job alone
    assert_eq!(
        alice.get(&format!("/v1/jobs/{id}")).await.body["state"],
        "processing"
    );
    let failing = esm.run_chunks(1).await;
    let snap = alice.get(&format!("/v1/jobs/{id}")).await.body;
    assert_eq!(snap["state"], "failed", "{snap}");
    assert_eq!(snap["error"]["code"], "source_changed", "{snap}");
    assert_eq!(snap["failed_chunks"], json!(failing), "{snap}");
    assert!(snap["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&format!("Chunk {}", failing[0])));
    // Tasks still queued for the failed job are skipped.
    let skipped = esm.run_chunks(total as usize).await;
    assert_eq!(skipped.len() as u64, total - 5);
    assert_eq!(
        alice.get(&format!("/v1/jobs/{id}")).await.body["progress"]["chunks_done"],
        4
    );

    // Put the original back; the owner retries.
    put(data.clone()).await;
    esm.plan_next().await;
    assert_error(
        &Client::new(&stack, "bob")
            .post_json(&format!("/v1/jobs/{id}/retry"), &json!({}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let r = alice
        .post_json(&format!("/v1/jobs/{id}/retry"), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(
        r.body["chunks_requeued"].as_u64(),
        Some(total - 4),
        "only unfinished chunks: {:?}",
        r.body
    );
    assert_eq!(r.body["job"]["state"], "processing");
    assert!(r.body["job"].get("error").is_none(), "{:?}", r.body);
    assert_error(
        &alice
            .post_json(&format!("/v1/jobs/{id}/retry"), &json!({}))
            .await,
        StatusCode::CONFLICT,
        "job_not_failed",
    );

    let rerun = esm.run_chunks(total as usize).await;
    let mut all: Vec<u64> = before.iter().chain(&rerun).copied().collect();
    all.sort();
    assert_eq!(
        all,
        (0..total).collect::<Vec<_>>(),
        "each chunk ran once: before {before:?}, retry {rerun:?}"
    );
    let deadline = Instant::now() + JOB_TIMEOUT;
    let snap = loop {
        let s = alice.get(&format!("/v1/jobs/{id}")).await.body;
        if s["state"] != "processing" && s["state"] != "finalizing" {
            break s;
        }
        assert!(Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(snap["state"], "completed", "{snap}");
    assert_eq!(snap["rows"].as_u64(), Some(expected.len() as u64), "{snap}");
    assert_eq!(snap["rejected_rows"], 0);
    assert_eq!(snap["progress"]["chunks_done"], total);
    assert_eq!(snap["retries"], 1);
    let job = JobStore::new(stack.clients.dynamodb.clone(), &stack.config.jobs_table)
        .get(&id)
        .await
        .unwrap()
        .unwrap();
    let clean = ObjectStore::new(stack.clients.s3.clone(), &stack.config.bucket)
        .read_all(&job.results.clean.unwrap())
        .await
        .unwrap();
    assert_eq!(
        reference_records(&clean),
        expected,
        "clean.csv holds exactly the source's records"
    );
    stack.shutdown().await;
}
