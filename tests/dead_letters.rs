//! A chunk task that never succeeds: SQS delivers it `maxReceiveCount` times, redrives it to the
//! dead-letter queue, and the dead-letter consumer (`tessera_chunk::handle_dead_letters`, the
//! `ChunkDeadLetterFunction` in AWS) fails the job `chunk_attempts_exhausted`, naming the chunk,
//! instead of leaving it `processing` for ever. A retry then runs only that chunk and the job
//! completes with the exact totals. Real SQS redrive, DynamoDB and S3 in the emulator; the only
//! stand-in is the chunk worker that refuses chunk 1 (a worker that times out, as seen by SQS).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use reqwest::StatusCode;
use serde_json::Value;
use tessera_e2e::*;
use tessera_infra::esm::{self, Handler, Mapping};

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
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mapping = |function, url: &str, arn: &str| Mapping {
        function,
        queue_url: url.to_string(),
        queue_arn: arn.to_string(),
        region: stack.config.region.clone(),
        batch_size: 1,
        wait_secs: 1,
        duplicate_messages: false,
    };
    let planner = tessera_planner::PlannerState::new(stack.config.clone(), &stack.clients);
    let planner: Handler = Arc::new(move |ev| {
        let st = planner.clone();
        Box::pin(async move { tessera_planner::handle(&st, ev).await })
    });
    // The chunk worker, except that chunk 1 fails every delivery while `refusing` is set.
    let refusing = Arc::new(AtomicBool::new(true));
    let refusals = Arc::new(AtomicUsize::new(0));
    let chunk = tessera_chunk::ChunkState::new(stack.config.clone(), &stack.clients);
    let (r, n) = (refusing.clone(), refusals.clone());
    let worker: Handler = Arc::new(move |ev: SqsEvent| {
        let (st, r, n) = (chunk.clone(), r.clone(), n.clone());
        Box::pin(async move {
            let doomed = |body: &Option<String>| {
                let v: Value =
                    serde_json::from_str(body.as_deref().unwrap_or("{}")).unwrap_or_default();
                v["index"].as_u64() == Some(DOOMED_CHUNK)
            };
            if r.load(Ordering::SeqCst) && ev.records.iter().any(|m| doomed(&m.body)) {
                n.fetch_add(1, Ordering::SeqCst);
                let mut resp = SqsBatchResponse::default();
                for m in ev.records.iter().filter(|m| doomed(&m.body)) {
                    let mut f = BatchItemFailure::default();
                    f.item_identifier = m.message_id.clone().unwrap_or_default();
                    resp.batch_item_failures.push(f);
                }
                return resp;
            }
            tessera_chunk::handle(&st, ev).await
        })
    });
    let dead = tessera_chunk::ChunkState::new(stack.config.clone(), &stack.clients);
    let dead: Handler = Arc::new(move |ev| {
        let st = dead.clone();
        Box::pin(async move { tessera_chunk::handle_dead_letters(&st, ev).await })
    });
    let (up, ct) = (&stack.resources.upload_events, &stack.resources.chunk_tasks);
    let pollers = vec![
        tokio::spawn(esm::run(
            mapping("planner", &up.url, &up.arn),
            stack.clients.sqs.clone(),
            planner,
            stopped.clone(),
        )),
        tokio::spawn(esm::run(
            mapping("chunk", &ct.url, &ct.arn),
            stack.clients.sqs.clone(),
            worker.clone(),
            stopped.clone(),
        )),
        tokio::spawn(esm::run(
            mapping("chunk", &ct.url, &ct.arn),
            stack.clients.sqs.clone(),
            worker,
            stopped.clone(),
        )),
        tokio::spawn(esm::run(
            mapping("chunk-dlq", &ct.dlq_url, &ct.dlq_arn),
            stack.clients.sqs.clone(),
            dead,
            stopped.clone(),
        )),
    ];

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
        refusals.load(Ordering::SeqCst),
        2,
        "delivered maxReceiveCount times, then dead-lettered"
    );
    assert!(
        failed["progress"]["chunks_total"].as_u64().unwrap() > 5,
        "{failed}"
    );

    // The cause is gone: a retry runs only the unfinished chunk, and the totals are exact.
    refusing.store(false, Ordering::SeqCst);
    let a = alice
        .post_json(&format!("/v1/jobs/{job_id}/retry"), &serde_json::json!({}))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.body);
    assert_eq!(a.body["chunks_requeued"], 1, "{:?}", a.body);
    let done = alice.wait_final(&job_id, Duration::from_secs(120)).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(
        done["rows"].as_u64().unwrap() + done["rejected_rows"].as_u64().unwrap(),
        records,
        "{done}"
    );

    stop.send(true).unwrap();
    for p in pollers {
        p.await.unwrap();
    }
    stack.shutdown().await;
}
