//! What export and query jobs (`crate::ranged`) share on the workers and on read: failing one
//! with its parts removed, failing one that stalled, and judging a range that reached the
//! dead-letter queue. Each kind keeps its own words (codes and messages); the decisions are
//! here once.

use std::time::Duration;

use tessera_engine::split::ChunkTask;

use super::{Pipeline, PipelineError};
use crate::job::{is_stale, JobError};
use crate::ranged::{RangedJob, RangedState};
use crate::store::objects::ObjectStore;
use crate::store::ranged::{RangeRecord, RangedStore};
use crate::store::StoreError;

/// What a dead-lettered range means for its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DeadRange {
    /// Nothing to do: the range finished after all, or the job is no longer active.
    Ignore,
    /// The job runs and this range never finished: every delivery failed.
    Exhausted,
    /// The job is stuck assembling its result for longer than an assembly can live.
    NeverAssembled,
}

/// Removes `job`'s parts, best effort (the bucket's expiry rule removes what is left).
async fn delete_parts<J: RangedJob>(objects: &ObjectStore, job: &J) {
    if let Err(e) = objects.delete_keys(&job.part_keys()).await {
        tracing::warn!(kind = J::KIND, id = job.id(), error = %e, "could not delete the parts of a ranged job; the bucket's expiry rule will");
    }
}

/// `job` as it should be shown: failed with `error` (its parts removed) if it is `queued` or
/// `running` and has not moved for `after`; else unchanged. The move is conditional on the job
/// not having moved since it was read, so progress made meanwhile wins.
pub async fn fail_if_stalled<J: RangedJob>(
    store: &RangedStore<J>,
    objects: &ObjectStore,
    job: J,
    after: Duration,
    error: JobError,
) -> Result<J, StoreError> {
    if !matches!(job.state(), RangedState::Queued | RangedState::Running)
        || !is_stale(job.updated_at(), after)
    {
        return Ok(job);
    }
    if store.mark_stalled(&job, &error).await? {
        tracing::warn!(
            kind = J::KIND,
            job_id = job.job_id(),
            id = job.id(),
            since = job.updated_at(),
            state = job.state().as_str(),
            "ranged job stalled; failed it"
        );
        delete_parts(objects, &job).await;
    }
    Ok(store.get(job.job_id(), job.id()).await?.unwrap_or(job))
}

/// The range records of a job read for its assembly, checked against its planned ranges: one
/// per range, in order. `Err`: what does not match (the job changed under its ranges).
pub(super) fn check_records(records: &[RangeRecord], tasks: &[ChunkTask]) -> Result<(), String> {
    if records.len() != tasks.len() || records.iter().zip(tasks).any(|(r, t)| r.index != t.index) {
        return Err(format!(
            "{} range records for {} ranges",
            records.len(),
            tasks.len()
        ));
    }
    Ok(())
}

impl Pipeline {
    /// Claims the assembly of `job` (stitching its parts, merging its states) when every range
    /// is done, or takes over an assembly that has not moved for `assembly_lives`. Returns the
    /// job as it is now when this caller won; `None` when another did or nothing is due.
    pub(super) async fn claim_assembly<J: RangedJob>(
        &self,
        store: &RangedStore<J>,
        job: &J,
        assembly_lives: Duration,
    ) -> Result<Option<J>, StoreError> {
        let claimed = match job.state() {
            RangedState::Running if job.ranges_done() >= job.range_count() => {
                store.claim_stitching(job).await?
            }
            RangedState::Stitching if is_stale(job.updated_at(), assembly_lives) => {
                tracing::warn!(
                    kind = J::KIND,
                    since = job.updated_at(),
                    "taking over a stalled assembly"
                );
                store.reclaim_stitching(job).await?
            }
            _ => false,
        };
        if !claimed {
            return Ok(None);
        }
        Ok(Some(
            store
                .get(job.job_id(), job.id())
                .await?
                .unwrap_or_else(|| job.clone()),
        ))
    }

    /// Fails `job` with `code` and the caller-safe `message` (the `detail` goes to the log
    /// only) and removes its parts. True when this call failed it (not already final).
    pub(super) async fn fail_ranged<J: RangedJob>(
        &self,
        store: &RangedStore<J>,
        job: &J,
        code: &str,
        message: String,
        detail: &str,
    ) -> Result<bool, PipelineError> {
        tracing::warn!(kind = J::KIND, job_id = job.job_id(), id = job.id(), code, %detail, "ranged job failed");
        if !store
            .mark_failed(job, &JobError::new(code, message))
            .await?
        {
            return Ok(false);
        }
        delete_parts(&self.objects, job).await;
        Ok(true)
    }

    /// What range `index` of `job` reaching the dead-letter queue means: SQS delivered it
    /// `maxReceiveCount` times and no attempt finished. `assembly_lives`: how long assembling
    /// (stitching, merging) can take before a stuck one is given up.
    pub(super) async fn dead_range<J: RangedJob>(
        &self,
        store: &RangedStore<J>,
        job: &J,
        index: u32,
        assembly_lives: Duration,
    ) -> Result<DeadRange, PipelineError> {
        Ok(match job.state() {
            RangedState::Queued | RangedState::Running => {
                if store.range_done(job, index).await? {
                    DeadRange::Ignore
                } else {
                    DeadRange::Exhausted
                }
            }
            RangedState::Stitching if is_stale(job.updated_at(), assembly_lives) => {
                DeadRange::NeverAssembled
            }
            _ => DeadRange::Ignore,
        })
    }
}
