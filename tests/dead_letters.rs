//! A chunk task that never succeeds: SQS delivers it `maxReceiveCount` times, redrives it to the
//! dead-letter queue, and the dead-letter consumer (`tessera_chunk::handle_dead_letters`, the
//! `ChunkDeadLetterFunction` in AWS) fails the job `chunk_attempts_exhausted`, naming the chunk,
//! instead of leaving it `processing` for ever. A retry then runs only that chunk and the job
//! completes with the exact totals. Real SQS redrive, DynamoDB and S3 in the emulator; the only
//! stand-in is the chunk worker that refuses chunk 1 (a worker that times out, as seen by SQS).

use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::StatusCode;
use tessera_e2e::*;

const DOOMED_CHUNK: u64 = 1;

#[tokio::test]
async fn a_chunk_that_exhausts_its_deliveries_fails_the_job_and_a_retry_completes_it() {
    let stack = stack_with(|o| {
        o.no_pollers = true;
        o.chunk_size = 4096;
        o.chunk_visibility_secs = Some(1);
        o.max_receive_count = Some(2);
    })
    .await;
    // Two chunk workers; both refuse chunk 1 while `refusing` is set.
    let pollers = RefusingPollers::start(&stack, 2, |task| {
        task["index"].as_u64() == Some(DOOMED_CHUNK)
    });

    let data = tricky_csv(40_000, 7, "\r\n");
    let records = reference_records(&data).len() as u64;
    let alice = Client::new(&stack, "alice");
    let job_id = alice.upload("dead.csv", data.len() as u64, data).await;
    let failed = alice.wait_final(&job_id, Duration::from_secs(120)).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(
        failed["error"]["code"], "chunk_attempts_exhausted",
        "{failed}"
    );
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Chunk 1 ") && message.contains("/retry"),
        "{message}"
    );
    assert_eq!(
        failed["failed_chunks"],
        serde_json::json!([DOOMED_CHUNK]),
        "{failed}"
    );
    assert_eq!(
        pollers.refusals.load(Ordering::SeqCst),
        2,
        "delivered maxReceiveCount times, then dead-lettered"
    );
    assert!(
        failed["progress"]["chunks_total"].as_u64().unwrap() > 5,
        "{failed}"
    );

    // The cause is gone: a retry runs only the unfinished chunk, and the totals are exact.
    pollers.refusing.store(false, Ordering::SeqCst);
    let a = alice
        .post_json(&format!("/v1/jobs/{job_id}/retry"), &serde_json::json!({}))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.body);
    // The doomed chunk, and any other chunk a loaded machine had not finished when the job
    // failed (a failed job's shards refuse completions, so those are requeued too): exactly
    // the chunks without a completion.
    let progress = &a.body["job"]["progress"];
    let unfinished =
        progress["chunks_total"].as_u64().unwrap() - progress["chunks_done"].as_u64().unwrap();
    assert!(unfinished >= 1, "{:?}", a.body);
    assert_eq!(a.body["chunks_requeued"], unfinished, "{:?}", a.body);
    let done = alice.wait_final(&job_id, Duration::from_secs(120)).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(
        done["rows"].as_u64().unwrap() + done["rejected_rows"].as_u64().unwrap(),
        records,
        "{done}"
    );

    pollers.stop().await;
    stack.shutdown().await;
}

/// A query job's range and an export job's range that never succeed: each reaches the
/// dead-letter queue after `maxReceiveCount` deliveries, and the consumer fails its ranged job
/// (`query_attempts_exhausted`, `export_attempts_exhausted`, naming the range) instead of
/// leaving it running; the range parts written by the other ranges are removed.
#[tokio::test]
async fn dead_lettered_query_and_export_ranges_fail_their_jobs() {
    let stack = stack_with(|o| {
        o.no_pollers = true;
        o.chunk_size = 1 << 20;
        o.chunk_visibility_secs = Some(1);
        o.max_receive_count = Some(2);
        o.export_sync_max_bytes = Some(1024);
        o.export_range_size = Some(4096);
        o.env.push(("TESSERA_QUERY_INLINE_MAX_BYTES", "0".into()));
        o.env.push(("TESSERA_QUERY_RANGE_SIZE", "4096".into()));
    })
    .await;
    // Range 1 of every query and export job is refused; chunk tasks pass.
    let pollers = RefusingPollers::start(&stack, 2, |task| {
        matches!(task["kind"].as_str(), Some("query_range" | "export_range"))
            && task["index"].as_u64() == Some(DOOMED_CHUNK)
    });
    let data = tricky_csv(40_000, 3, "\n");
    let alice = Client::new(&stack, "alice");
    let job_id = alice.upload("ranges.csv", data.len() as u64, data).await;
    let done = alice.wait_final(&job_id, Duration::from_secs(120)).await;
    assert_eq!(done["state"], "completed", "{done}");

    let until = std::time::Instant::now() + Duration::from_secs(120);
    let q = alice
        .post_json(
            &format!("/v1/jobs/{job_id}/queries"),
            &serde_json::json!({"version": 1, "aggregates": [{"fn": "count"}]}),
        )
        .await;
    assert_eq!(q.status, StatusCode::ACCEPTED, "{:?}", q.body);
    let q_url = q.body["status_url"].as_str().unwrap().to_string();
    let e = alice
        .post_json(
            &format!("/v1/jobs/{job_id}/exports"),
            &serde_json::json!({"output": "clean", "format": "jsonl"}),
        )
        .await;
    assert_eq!(e.status, StatusCode::ACCEPTED, "{:?}", e.body);
    let e_url = e.body["status_url"].as_str().unwrap().to_string();
    let (mut query, mut export) = (serde_json::Value::Null, serde_json::Value::Null);
    while query["state"] != "failed" || export["state"] != "failed" {
        assert!(
            std::time::Instant::now() < until,
            "not failed: {query} {export}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        query = alice.get(&q_url).await.body;
        export = alice.get(&e_url).await.body;
        for v in [&query, &export] {
            assert_ne!(
                v["state"], "completed",
                "a doomed range cannot complete: {v}"
            );
        }
    }
    assert_eq!(
        query["error"]["code"], "query_attempts_exhausted",
        "{query}"
    );
    assert_eq!(
        export["error"]["code"], "export_attempts_exhausted",
        "{export}"
    );
    for v in [&query, &export] {
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains("Range 1 ") && m.contains("was tried"), "{m}");
    }
    // Nothing of either is left under its prefix but what the job itself wrote.
    let objects = tessera_shared::store::objects::ObjectStore::new(
        stack.clients.s3.clone(),
        &stack.config.bucket,
    );
    let prefix = tessera_shared::keys::results_prefix("alice", &job_id);
    for sub in ["queries", "exports"] {
        let (left, _) = objects
            .list(&format!("{prefix}/{sub}/"), None, 1000)
            .await
            .unwrap();
        let parts: Vec<&str> = left
            .iter()
            .map(|o| o.key.as_str())
            .filter(|k| k.contains("/parts/"))
            .collect();
        assert!(parts.is_empty(), "{sub}: {parts:?}");
    }
    pollers.stop().await;
    stack.shutdown().await;
}
