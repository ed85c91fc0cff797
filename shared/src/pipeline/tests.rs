//! The races the emulator cannot order, played step by step on the in-memory ledger: each
//! test chooses the interleaving of the workers and checks that the conditional moves give the
//! one outcome the pipeline relies on.

use std::sync::Arc;

use super::steps::{
    claim_finalization, commit_chunk, complete, unique_item_done, AfterCommit, Completion,
};
use crate::job::{Job, JobState, ResultKeys};
use crate::ledger::{ChunkRecord, Totals, UniqueStep};
use crate::memory::MemoryLedger;
use crate::ports::{ChunkLedger, Ledger};

const ID: &str = "job-1";
/// The stale-finalizing age of these tests (the default).
const STALE: std::time::Duration =
    std::time::Duration::from_secs(crate::config::DEFAULT_STALE_FINALIZING_SECS);

fn ledger_with(state: JobState, chunks: u32) -> Arc<MemoryLedger> {
    let mut job = Job::awaiting_upload(ID, "alice", "a.csv", "text/csv", 1000, 0);
    job.state = state;
    job.chunk_count = chunks;
    let ledger = Arc::new(MemoryLedger::new());
    ledger.put(job);
    ledger
}

async fn job(ledger: &dyn Ledger) -> Job {
    ledger.get(ID).await.unwrap().expect("job")
}

fn record(index: u32) -> ChunkRecord {
    ChunkRecord {
        index,
        rows: 10,
        rejected_rows: 1,
        bytes: 100,
        scored_rows: 0,
        not_graded_rows: 0,
        result_key: format!("parts/result/{index}"),
        completed_at: "2026-01-01T00:00:00.000Z".into(),
    }
}

fn totals() -> Totals {
    Totals {
        rows: 1,
        rejected_rows: 0,
        bytes: 1000,
        scored_rows: 0,
        not_graded_rows: 0,
    }
}

/// Chunk `index` of `job` recorded, as its worker would.
async fn commit(ledger: &dyn Ledger, job: &Job, index: u32) -> AfterCommit {
    commit_chunk(ledger, job, &record(index)).await.unwrap()
}

/// The job moved to `completed`, as the finalizer would.
async fn complete_now(ledger: &dyn Ledger) -> Completion {
    complete(ledger, ID, &totals(), &ResultKeys::default())
        .await
        .unwrap()
}

/// Commits every chunk in `indexes` as one worker each would, in that order.
async fn commit_all(ledger: &dyn Ledger, indexes: impl IntoIterator<Item = u32>) {
    for i in indexes {
        let j = job(ledger).await;
        commit_chunk(ledger, &j, &record(i)).await.unwrap();
    }
}

#[tokio::test]
async fn a_redelivered_chunk_after_its_completion_counts_once_and_finalizes_once() {
    let ledger = ledger_with(JobState::Processing, 17);
    let l: &dyn Ledger = &*ledger;
    let j = job(l).await;
    // Chunk 0 shares shard 0 with chunk 16: its shard is not complete yet.
    assert_eq!(commit(l, &j, 0).await, AfterCommit::Done);
    // Its redelivery changes nothing but still looks at the job (nothing to claim).
    assert_eq!(commit(l, &j, 0).await, AfterCommit::TryFinalize);
    assert!(claim_finalization(l, ID, STALE).await.unwrap().is_none());
    assert_eq!(l.progress(ID).await.unwrap().chunks_done, 1);
    assert_eq!(l.progress(ID).await.unwrap().rows, 10);

    commit_all(l, 1..17).await;
    let winner = claim_finalization(l, ID, STALE)
        .await
        .unwrap()
        .expect("all done");
    assert_eq!(winner.state, JobState::Finalizing);
    // Redelivered while the job finalizes, and after it completed: nothing more happens.
    assert_eq!(commit(l, &j, 16).await, AfterCommit::TryFinalize);
    assert!(claim_finalization(l, ID, STALE).await.unwrap().is_none());
    assert_eq!(complete_now(l).await, Completion::Completed);
    assert_eq!(commit(l, &j, 3).await, AfterCommit::TryFinalize);
    assert!(claim_finalization(l, ID, STALE).await.unwrap().is_none());
    assert_eq!(l.progress(ID).await.unwrap().chunks_done, 17);
    assert_eq!(job(l).await.state, JobState::Completed);
}

#[tokio::test]
async fn two_workers_completing_the_last_chunks_at_once_finalize_once() {
    let ledger = ledger_with(JobState::Processing, 18);
    let l: &dyn Ledger = &*ledger;
    commit_all(l, 0..16).await;
    let j = job(l).await;
    // Both commit before either looks: both see their shard complete and every chunk done.
    let a = commit(l, &j, 16).await;
    let b = commit(l, &j, 17).await;
    assert_eq!((a, b), (AfterCommit::TryFinalize, AfterCommit::TryFinalize));
    let (a, b) = tokio::join!(
        claim_finalization(l, ID, STALE),
        claim_finalization(l, ID, STALE)
    );
    let claims = [a.unwrap(), b.unwrap()];
    assert_eq!(claims.iter().filter(|c| c.is_some()).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_workers_at_once_finalize_exactly_once() {
    let ledger = ledger_with(JobState::Processing, 64);
    let j = job(&*ledger).await;
    let workers = (0..64).map(|i| {
        let (ledger, j) = (ledger.clone(), j.clone());
        tokio::spawn(async move {
            let l: &dyn Ledger = &*ledger;
            match commit(l, &j, i).await {
                AfterCommit::TryFinalize => {
                    claim_finalization(l, ID, STALE).await.unwrap().is_some()
                }
                _ => false,
            }
        })
    });
    let won = futures::future::join_all(workers).await;
    assert_eq!(won.into_iter().filter(|w| *w.as_ref().unwrap()).count(), 1);
    assert_eq!(ledger.progress(ID).await.unwrap().chunks_done, 64);
}

#[tokio::test]
async fn a_cancel_during_finalize_wins_and_the_outputs_are_removed() {
    let ledger = ledger_with(JobState::Processing, 2);
    let l: &dyn Ledger = &*ledger;
    commit_all(l, 0..2).await;
    assert!(claim_finalization(l, ID, STALE).await.unwrap().is_some());
    // The owner cancels while the finalizer stitches.
    assert!(l.mark_cancelled(ID).await.unwrap());
    assert_eq!(complete_now(l).await, Completion::Cancelled);
    assert_eq!(job(l).await.state, JobState::Cancelled);
    // A chunk finishing after the cancel (a retry's, say) is refused and removes its parts.
    let mut j = job(l).await;
    j.chunk_count = 3;
    assert_eq!(commit(l, &j, 2).await, AfterCommit::RemoveParts);
    assert!(!l.chunk_done(ID, 2).await.unwrap());
}

#[tokio::test]
async fn one_of_two_workers_takes_over_a_stale_finalization() {
    let ledger = ledger_with(JobState::Finalizing, 2);
    let l: &dyn Ledger = &*ledger;
    // A live finalizer is left alone.
    assert!(claim_finalization(l, ID, STALE).await.unwrap().is_none());
    let mut j = job(l).await;
    j.updated_at = crate::job::Timestamp::parse("2020-01-01T00:00:00.000Z").unwrap();
    ledger.put(j);
    let (a, b) = tokio::join!(
        claim_finalization(l, ID, STALE),
        claim_finalization(l, ID, STALE)
    );
    let claims = [a.unwrap(), b.unwrap()];
    assert_eq!(claims.iter().filter(|c| c.is_some()).count(), 1);
    // The takeover moved `updated_at`: the job is live again, so no third worker claims it.
    assert!(claim_finalization(l, ID, STALE).await.unwrap().is_none());
}

#[tokio::test]
async fn a_unique_rerun_racing_a_cancel_does_not_carry_the_job_on() {
    let ledger = ledger_with(JobState::Finalizing, 4);
    let l: &dyn Ledger = &*ledger;
    assert!(l
        .begin_unique_step(ID, UniqueStep::Rerun, &[1, 3])
        .await
        .unwrap());
    // A second finalizer cannot start the step again.
    assert!(!l
        .begin_unique_step(ID, UniqueStep::Rerun, &[1, 3])
        .await
        .unwrap());
    assert!(unique_item_done(l, ID, UniqueStep::Rerun, 1)
        .await
        .unwrap()
        .is_none());
    // A redelivered report of the same item does nothing.
    assert!(unique_item_done(l, ID, UniqueStep::Rerun, 1)
        .await
        .unwrap()
        .is_none());
    assert!(l.mark_cancelled(ID).await.unwrap());
    // The last re-run reports after the cancel: no one finalizes.
    assert!(unique_item_done(l, ID, UniqueStep::Rerun, 3)
        .await
        .unwrap()
        .is_none());
    assert_eq!(job(l).await.state, JobState::Cancelled);

    // The other order: the last re-run reports first and carries the job on; the cancel then
    // makes the completion fail as cancelled.
    let ledger = ledger_with(JobState::Finalizing, 4);
    let l: &dyn Ledger = &*ledger;
    assert!(l
        .begin_unique_step(ID, UniqueStep::Rerun, &[2])
        .await
        .unwrap());
    let next = unique_item_done(l, ID, UniqueStep::Rerun, 2).await.unwrap();
    assert_eq!(next.map(|j| j.state), Some(JobState::Finalizing));
    assert!(l.mark_cancelled(ID).await.unwrap());
    assert_eq!(complete_now(l).await, Completion::Cancelled);
}

#[tokio::test]
async fn a_failed_chunk_closes_the_ledger_and_a_retry_reopens_it() {
    let ledger = ledger_with(JobState::Processing, 2);
    let l: &dyn Ledger = &*ledger;
    let j = job(l).await;
    let err = crate::job::JobError::new("source_changed", "gone");
    assert!(l.mark_chunk_failed(ID, 0, &err).await.unwrap());
    assert!(!l.mark_failed(ID, &err).await.unwrap());
    assert_eq!(commit(l, &j, 1).await, AfterCommit::Done);
    assert!(!l.chunk_done(ID, 1).await.unwrap());
    assert!(l.mark_retrying(ID).await.unwrap());
    assert!(!l.mark_retrying(ID).await.unwrap());
    commit_all(l, 0..2).await;
    assert!(claim_finalization(l, ID, STALE).await.unwrap().is_some());
}

#[tokio::test]
async fn a_retry_requeues_only_the_chunks_without_a_completion_record() {
    // 1,000 bytes in chunks of 250 after a 10-byte header: four chunks.
    let ledger = ledger_with(JobState::Processing, 4);
    let l: &dyn Ledger = &*ledger;
    let mut j = job(l).await;
    (j.header_len, j.chunk_size) = (10, 250);
    ledger.put(j.clone());
    commit_all(l, [0, 2]).await;
    let err = crate::job::JobError::new("source_changed", "gone");
    assert!(l.mark_chunk_failed(ID, 1, &err).await.unwrap());
    let queue = crate::memory::MemoryTasks::default();
    let sent = super::requeue_unfinished(l, &queue, &j).await.unwrap();
    let indexes: Vec<u32> = queue
        .sent()
        .iter()
        .map(|m| match m {
            crate::task::QueueMessage::Chunk(t) => t.index,
            other => panic!("not a chunk task: {other:?}"),
        })
        .collect();
    assert_eq!((sent, indexes), (2, vec![1, 3]));
}

/// The planner's sniff runs off the async runtime: on a runtime of one thread, another task
/// keeps running while a header of `MAX_COLUMNS` names is sniffed. Sniffed inline, the await
/// below would never yield, and the other task could not tick before the sniff returned.
#[tokio::test(flavor = "current_thread")]
async fn a_big_sniff_lets_other_tasks_progress() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let ticks = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let other = tokio::spawn({
        let (ticks, stop) = (ticks.clone(), stop.clone());
        async move {
            while !stop.load(Ordering::SeqCst) {
                ticks.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        }
    });
    tokio::task::yield_now().await;
    let before = ticks.load(Ordering::SeqCst);
    assert!(before > 0, "the other task started");

    let n = tessera_engine::dialect::MAX_COLUMNS;
    let mut bomb = vec!["name"; n].join(",").into_bytes();
    bomb.extend_from_slice(b"\n");
    bomb.extend_from_slice(vec!["1"; n].join(",").as_bytes());
    bomb.extend_from_slice(b"\n");
    let size = bomb.len() as u64;
    let sniffed = super::sniff_off_runtime(bomb, size, Default::default())
        .await
        .unwrap();
    let after = ticks.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    other.await.unwrap();

    assert_eq!(sniffed.columns.len(), n);
    assert_eq!(sniffed.columns[1], "name_2", "{:?}", &sniffed.columns[..3]);
    assert!(
        after > before,
        "the other task did not run while the header was sniffed ({before} ticks before, {after} after)"
    );
}
