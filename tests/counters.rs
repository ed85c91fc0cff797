//! The sharded progress counters against the AWS emulator (real DynamoDB transactions,
//! conditions and BatchGetItem): many chunks finishing at once — each delivered twice — count
//! exactly once each, the 16 shard counters sum to the exact totals, exactly one worker wins the
//! move to `finalizing`, and a failed or cancelled job's closed shards refuse completions
//! atomically (nothing counted after the close, nothing lost before it) until a retry reopens
//! them. The protocol is the chunk worker's (`pipeline::chunk_message`): commit, then — only if
//! that completed the chunk's shard — sum all 16 and try the conditional move.
//!
//! Pipeline-level coverage of the same layout (duplicate delivery, redrive, retry, cancel,
//! pushes) is in `e2e.rs`, `uploads.rs` and `ws.rs`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use tessera_e2e::stack_with;
use tessera_shared::job::{now_rfc3339, Job, JobError, JobState};
use tessera_shared::store::jobs::{
    shard_chunk_count, shard_of, ChunkCommit, ChunkRecord, JobStore, Plan, UniqueStep,
    COUNTER_SHARDS,
};

fn job(id: &str) -> Job {
    Job::awaiting_upload(
        id,
        "alice",
        "many.csv",
        "text/csv",
        10_000_000,
        4_102_444_800,
    )
}

/// A job in `processing` with `chunks` chunks.
async fn running_job(store: &JobStore, chunks: u32) -> Job {
    let id = uuid_like();
    store.create(&job(&id)).await.unwrap();
    let plan = Plan {
        dialect: serde_json::json!({}),
        columns: vec!["a".into()],
        header_len: 2,
        chunk_size: 1000,
        chunk_count: chunks,
        source_etag: None,
    };
    assert!(store.mark_planned(&id, &plan).await.unwrap());
    assert!(store.mark_processing(&id).await.unwrap());
    store.get(&id).await.unwrap().unwrap()
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("counters-{n:x}")
}

/// Chunk `i`'s counters: different per chunk, so a lost or doubled count shows in the sums.
fn record(i: u32) -> ChunkRecord {
    ChunkRecord {
        index: i,
        rows: u64::from(i) + 1,
        rejected_rows: u64::from(i % 3),
        bytes: 1000 + u64::from(i),
        scored_rows: u64::from(i % 5),
        not_graded_rows: u64::from(i % 7),
        result_key: format!("results/alice/x/parts/result/{i:06}"),
        completed_at: now_rfc3339(),
    }
}

fn expected(indexes: impl Iterator<Item = u32> + Clone) -> (u32, u64, u64, u64) {
    let r = indexes.clone().map(|i| record(i).rows).sum();
    let rej = indexes.clone().map(|i| record(i).rejected_rows).sum();
    let b = indexes.clone().map(|i| record(i).bytes).sum();
    (indexes.count() as u32, r, rej, b)
}

/// What one delivery of a chunk does: commit; if that completed its shard, sum the shards and,
/// if every chunk is in, try the move to `finalizing`. Returns the commit outcome and whether
/// this delivery won the move.
async fn deliver(store: &JobStore, job: &Job, i: u32) -> (ChunkCommit, bool) {
    let commit = store
        .complete_chunk(&job.id, &record(i), job.expires_at)
        .await
        .unwrap_or_else(|e| panic!("chunk {i}: {e:?}"));
    if commit != ChunkCommit::Committed
        || !store
            .shard_complete(&job.id, i, job.chunk_count)
            .await
            .unwrap()
    {
        return (commit, false);
    }
    let done = store.progress(&job.id).await.unwrap().chunks_done;
    let won = done >= job.chunk_count && store.mark_finalizing(&job.id).await.unwrap();
    (commit, won)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sharded_counters_sum_exactly_and_one_finalizer_wins() {
    let stack = stack_with(|o| o.no_pollers = true).await;
    let store = Arc::new(JobStore::new(
        stack.clients.dynamodb.clone(),
        &stack.config.jobs_table,
    ));
    // Not a multiple of 16: shards hold 15 or 16 chunks.
    const N: u32 = 250;
    let job = Arc::new(running_job(&store, N).await);

    // Every chunk delivered twice, in shuffled order, 64 deliveries in flight at a time (the
    // chunk function's concurrency, scaled to what one emulator process serves without
    // refusing connections).
    let mut order: Vec<u32> = (0..N).chain(0..N).collect();
    let mut x = 0x9e37_79b9_u64;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let started = std::time::Instant::now();
    let order = Arc::new(order);
    let next = Arc::new(AtomicU32::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (store, job, order, next) = (store.clone(), job.clone(), order.clone(), next.clone());
        tasks.spawn(async move {
            let mut out = Vec::new();
            while let Some(&i) = order.get(next.fetch_add(1, Ordering::SeqCst) as usize) {
                out.push((i, deliver(&store, &job, i).await));
            }
            out
        });
    }
    let mut results = Vec::new();
    while let Some(r) = tasks.join_next().await {
        results.extend(r.unwrap());
    }
    let mut committed = HashSet::new();
    let (mut again, mut winners) = (0, 0);
    for (i, (commit, won)) in results {
        match commit {
            ChunkCommit::Committed => assert!(committed.insert(i), "chunk {i} counted twice"),
            ChunkCommit::AlreadyDone => again += 1,
            ChunkCommit::JobNotActive => panic!("chunk {i}: the job is active"),
        }
        winners += u32::from(won);
    }
    let elapsed = started.elapsed();
    assert_eq!(committed.len() as u32, N, "every chunk committed once");
    assert_eq!(again, N, "every second delivery was a no-op");
    assert_eq!(winners, 1, "exactly one worker moves the job to finalizing");
    assert_eq!(
        store.get(&job.id).await.unwrap().unwrap().state,
        JobState::Finalizing
    );

    // The 16 counters sum to the exact totals; the job item itself was never counted into.
    let p = store.progress(&job.id).await.unwrap();
    let (chunks, rows, rej, bytes) = expected(0..N);
    assert_eq!(
        (p.chunks_done, p.rows, p.rejected_rows, p.bytes_done),
        (chunks, rows, rej, bytes)
    );
    let raw = store.get(&job.id).await.unwrap().unwrap();
    assert_eq!(
        (raw.chunks_done, raw.rows),
        (0, 0),
        "no per-chunk write to the job item"
    );
    let snap = store.with_progress(raw).await.unwrap().snapshot();
    assert_eq!(snap.progress.chunks_done, N);
    assert_eq!(snap.rows, rows);
    assert_eq!(snap.progress.bytes_done, bytes.min(snap.size));
    // Rows scored by derive steps are counted like rows.
    let scored: u64 = (0..N).map(|i| record(i).scored_rows).sum();
    assert_eq!((p.scored_rows, snap.scored_rows), (scored, scored));
    let not_graded: u64 = (0..N).map(|i| record(i).not_graded_rows).sum();
    assert_eq!(
        (p.not_graded_rows, snap.not_graded_rows),
        (not_graded, not_graded)
    );

    // Chunk records: all there, in order, each on its shard's partition.
    let recs = store.chunks(&job.id).await.unwrap();
    assert_eq!(
        recs.iter().map(|r| r.index).collect::<Vec<_>>(),
        (0..N).collect::<Vec<_>>()
    );
    for k in 0..COUNTER_SHARDS {
        let on_k = recs.iter().filter(|r| shard_of(r.index) == k).count() as u32;
        assert_eq!(on_k, shard_chunk_count(k, N), "shard {k}");
    }
    println!(
        "{N} chunks x 2 deliveries in {:.1} s: {} commits, {again} no-ops, 1 finalizer; \
         per shard {}..{} chunks",
        elapsed.as_secs_f64(),
        committed.len(),
        shard_chunk_count(COUNTER_SHARDS - 1, N),
        shard_chunk_count(0, N)
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closed_shards_refuse_completions_until_a_retry_reopens_them() {
    let stack = stack_with(|o| o.no_pollers = true).await;
    let store = Arc::new(JobStore::new(
        stack.clients.dynamodb.clone(),
        &stack.config.jobs_table,
    ));
    const N: u32 = 40;
    let job = running_job(&store, N).await;
    for i in 0..20 {
        assert_eq!(deliver(&store, &job, i).await.0, ChunkCommit::Committed);
    }
    // Chunk 20 fails the job: every shard closes with it.
    let err = JobError {
        code: "source_changed".into(),
        message: "test".into(),
    };
    assert!(store.mark_chunk_failed(&job.id, 20, &err).await.unwrap());
    assert_eq!(deliver(&store, &job, 21).await.0, ChunkCommit::JobNotActive);
    assert_eq!(deliver(&store, &job, 5).await.0, ChunkCommit::AlreadyDone);
    let p = store.progress(&job.id).await.unwrap();
    assert_eq!(p.chunks_done, 20, "nothing counted after the close");
    let failed = store
        .with_progress(store.get(&job.id).await.unwrap().unwrap())
        .await
        .unwrap();
    assert_eq!(
        (failed.state, failed.chunks_done),
        (JobState::Failed, 20),
        "a failed job shows the progress it made"
    );

    // Retry reopens the shards in the same write; the rest completes and finalizes once.
    assert!(store.mark_retrying(&job.id).await.unwrap());
    assert!(
        !store.mark_retrying(&job.id).await.unwrap(),
        "one retry wins"
    );
    let mut winners = 0;
    for i in 20..N {
        let (c, won) = deliver(&store, &job, i).await;
        assert_eq!(c, ChunkCommit::Committed, "chunk {i}");
        winners += u32::from(won);
    }
    assert_eq!(winners, 1);
    let p = store.progress(&job.id).await.unwrap();
    let (chunks, rows, rej, bytes) = expected(0..N);
    assert_eq!(
        (p.chunks_done, p.rows, p.rejected_rows, p.bytes_done),
        (chunks, rows, rej, bytes)
    );

    // A cancel racing 200 completions (8 workers taking chunks one after another; the cancel
    // lands once a quarter are in): each completion is either counted or refused, never lost or
    // counted after the cancel, so the counters equal exactly the committed chunks.
    const M: u32 = 200;
    let job = Arc::new(running_job(&store, M).await);
    let next = Arc::new(AtomicU32::new(0));
    let committed = Arc::new(AtomicU32::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (store, job, next, committed) =
            (store.clone(), job.clone(), next.clone(), committed.clone());
        tasks.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= M {
                    return out;
                }
                let c = deliver(&store, &job, i).await.0;
                if c == ChunkCommit::Committed {
                    committed.fetch_add(1, Ordering::SeqCst);
                }
                out.push((i, c));
            }
        });
    }
    while committed.load(Ordering::SeqCst) < M / 4 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(
        store.mark_cancelled(&job.id).await.unwrap(),
        "the cancel wins over an active job"
    );
    let mut counted = Vec::new();
    let mut refused = 0;
    while let Some(r) = tasks.join_next().await {
        for (i, c) in r.unwrap() {
            match c {
                ChunkCommit::Committed => counted.push(i),
                ChunkCommit::JobNotActive => refused += 1,
                other => panic!("chunk {i}: {other:?}"),
            }
        }
    }
    let p = store.progress(&job.id).await.unwrap();
    let (chunks, rows, _, _) = expected(counted.iter().copied());
    assert_eq!((p.chunks_done, p.rows), (chunks, rows));
    assert_eq!(counted.len() as u32 + refused, M);
    assert!(refused > 0, "the cancel landed before some completions");
    let cancelled = store.get(&job.id).await.unwrap().unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(!store.mark_finalizing(&job.id).await.unwrap());
    println!(
        "cancel raced {M} completions: {} counted before it, {refused} refused after it",
        counted.len()
    );
    stack.shutdown().await;
}

/// The `unique` re-runs' bookkeeping on the job item: recorded once, each chunk reports once,
/// and exactly one report (the last) is told to finish the job, whatever the order and however
/// often a report is repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unique_reruns_report_once_and_exactly_one_finishes() {
    let stack = stack_with(|o| o.no_pollers = true).await;
    let store = JobStore::new(stack.clients.dynamodb.clone(), &stack.config.jobs_table);
    let job = running_job(&store, 8).await;
    // Not finalizing yet: refused.
    assert!(!store
        .begin_unique_step(&job.id, UniqueStep::Rerun, &[1, 4, 6])
        .await
        .unwrap());
    assert!(store.mark_finalizing(&job.id).await.unwrap());
    assert!(store
        .begin_unique_step(&job.id, UniqueStep::Rerun, &[1, 4, 6])
        .await
        .unwrap());
    assert!(
        !store
            .begin_unique_step(&job.id, UniqueStep::Rerun, &[1, 4, 6])
            .await
            .unwrap(),
        "recorded once"
    );
    let j = store.get(&job.id).await.unwrap().unwrap();
    assert_eq!(j.unique_reruns, 3);
    assert_eq!(j.unique_waiting.as_ref().map(|w| w.len()), Some(3));

    // Reports from 3 concurrent workers per chunk, in parallel.
    let store = Arc::new(store);
    let mut handles = Vec::new();
    for _ in 0..3 {
        for i in [6u32, 1, 4] {
            let (store, id) = (store.clone(), job.id.clone());
            handles.push(tokio::spawn(async move {
                (
                    i,
                    store
                        .unique_step_done(&id, UniqueStep::Rerun, i)
                        .await
                        .unwrap(),
                )
            }));
        }
    }
    let mut reported = Vec::new();
    let mut last = 0;
    for h in handles {
        let (i, r) = h.await.unwrap();
        if let Some(is_last) = r {
            reported.push(i);
            last += u32::from(is_last);
        }
    }
    reported.sort_unstable();
    assert_eq!(reported, [1, 4, 6], "each chunk reports exactly once");
    assert_eq!(last, 1, "exactly one report finishes the job");
    let j = store.get(&job.id).await.unwrap().unwrap();
    assert_eq!(j.unique_waiting.map(|w| w.len()), Some(0));
    assert_eq!(
        store
            .unique_step_done(&job.id, UniqueStep::Rerun, 9)
            .await
            .unwrap(),
        None
    );
    stack.shutdown().await;
}
