//! Stitching rejected.csv: every chunk's rejected part gets absolute line numbers (its line
//! base is known only once every earlier chunk is done), so its bytes must be rewritten once.
//! The parts are rebased in groups of at least S3's minimum part size, each group into one part
//! of rejected.csv, and the groups are then joined by `UploadPartCopy`. A small rejected output
//! is rebased by the finalizer itself; above `Config::rejected_inline_max_bytes` each group is a
//! task on the chunk queue (`kind: "rejected_rebase"`), so no single function carries the file.
//! Both ways write the same bytes. `docs/pipeline.md` § *Stitching rejected.csv*.

use futures::{StreamExt, TryStreamExt};
use tessera_engine::split::ChunkTask;

use super::steps::unique_item_done;
use super::{Pipeline, PipelineError, REJECTED_HEADER};
use crate::job::{is_waiting, Job, JobState};
use crate::keys::{self, PartKind};
use crate::ledger::UniqueStep;
use crate::store::objects::{next_piece, PartSink, MIN_PART};
use crate::task::{QueueMessage, RejectedRebaseMessage};

/// Most chunks in one rebase group, so that its task stays far below SQS's 256 KiB (a pair is
/// at most ~32 bytes of JSON). A group that reaches it below [`MIN_PART`] is joined by reading.
pub const MAX_GROUP_CHUNKS: usize = 1000;

/// Groups rebased at once by an inline stitch (each holds at most one 8 MiB output part).
const REBASE_CONCURRENCY: usize = 8;

/// Part sizes read at once while grouping.
const SIZE_CONCURRENCY: usize = 16;

/// The rebase groups of a job's rejected parts: the chunks with rejected rows, in chunk order,
/// as `(chunk, line base, part bytes)`, cut into runs of at least [`MIN_PART`] bytes (or
/// [`MAX_GROUP_CHUNKS`] chunks); the last run may be smaller. Every group's output is then at
/// least S3's minimum part size but the last, so the join is all `UploadPartCopy` unless a
/// group was cut by its chunk count.
pub fn rebase_groups(parts: &[(u32, u64, u64)]) -> Vec<Vec<(u32, u64)>> {
    let mut groups = Vec::new();
    let (mut cur, mut bytes) = (Vec::new(), 0u64);
    for &(index, base, size) in parts {
        cur.push((index, base));
        bytes += size;
        if bytes >= MIN_PART || cur.len() >= MAX_GROUP_CHUNKS {
            groups.push(std::mem::take(&mut cur));
            bytes = 0;
        }
    }
    if !cur.is_empty() {
        groups.push(cur);
    }
    groups
}

/// The rebase groups of a finalizing job, and the rejected bytes they hold.
pub(super) struct Rejected {
    pub groups: Vec<Vec<(u32, u64)>>,
    pub bytes: u64,
}

impl Pipeline {
    /// The job's rebase groups from its chunks' `(rejected rows, line breaks in range)` facts
    /// (in chunk order, from the merge): deterministic, so a finalizer taking over finds the
    /// same groups. One HEAD per chunk with rejected rows.
    pub(super) async fn rejected_groups(
        &self,
        job: &Job,
        tasks: &[ChunkTask],
        facts: &[(u64, u64)],
    ) -> Result<Rejected, PipelineError> {
        let mut line_base = 1 + self.header_lines(job).await?;
        let mut with_rows = Vec::new();
        for (t, &(rejected_rows, newlines)) in tasks.iter().zip(facts) {
            if rejected_rows > 0 {
                with_rows.push((t.index, line_base));
            }
            line_base += newlines;
        }
        let reads: Vec<_> = with_rows
            .iter()
            .map(|&(index, _)| {
                let key = keys::part_key(&job.owner, &job.id, PartKind::Rejected, index);
                async move {
                    self.objects.size(&key).await?.ok_or_else(|| {
                        PipelineError::Malformed(format!(
                            "rejected part of chunk {index} is missing"
                        ))
                    })
                }
            })
            .collect();
        let sizes: Vec<u64> = futures::stream::iter(reads)
            .buffered(SIZE_CONCURRENCY)
            .try_collect()
            .await?;
        let parts: Vec<(u32, u64, u64)> = with_rows
            .iter()
            .zip(&sizes)
            .map(|(&(i, b), &s)| (i, b, s))
            .collect();
        Ok(Rejected {
            groups: rebase_groups(&parts),
            bytes: sizes.iter().sum(),
        })
    }

    /// Rebases the groups of `rejected` into rejected.csv's parts: inline when small, else as
    /// chunk-queue tasks (recorded as a step of the job, like the `unique` steps). True when
    /// every group's part is written; false while tasks are out (the last to report finalizes
    /// again). A finalizer taking over re-sends the groups that have not reported.
    pub(super) async fn rebase_stage(
        &self,
        job: &Job,
        rejected: &Rejected,
    ) -> Result<bool, PipelineError> {
        match &job.rebase_waiting {
            Some(w) if w.is_empty() => return Ok(true),
            Some(w) => {
                let again = crate::job::waiting_items(w);
                tracing::warn!(job_id = %job.id, groups = again.len(), "re-sending the rejected rebase groups that have not reported");
                self.queue
                    .send_all(&rebase_messages(job, rejected, again))
                    .await?;
                return Ok(false);
            }
            None => {}
        }
        if rejected.bytes <= self.config.rejected_inline_max_bytes {
            let runs: Vec<_> = rejected
                .groups
                .iter()
                .enumerate()
                .map(|(g, chunks)| self.rebase_group(job, g as u32, chunks, g == 0))
                .collect();
            futures::stream::iter(runs)
                .buffer_unordered(REBASE_CONCURRENCY)
                .try_collect::<Vec<_>>()
                .await?;
            return Ok(true);
        }
        let numbers: Vec<u32> = (0..rejected.groups.len() as u32).collect();
        tracing::info!(job_id = %job.id, groups = numbers.len(), bytes = rejected.bytes, "rejected output fanned out for rebasing");
        if self
            .jobs
            .begin_unique_step(&job.id, UniqueStep::Rebase, &numbers)
            .await?
        {
            self.queue
                .send_all(&rebase_messages(job, rejected, numbers))
                .await?;
        }
        Ok(false)
    }

    /// Streams the rejected parts of `chunks` (`(chunk, line base)`, in order) through the
    /// rebaser into `rejected-final/<group>`, after rejected.csv's header when `header`.
    /// Memory: one 8 MiB output part.
    pub(super) async fn rebase_group(
        &self,
        job: &Job,
        group: u32,
        chunks: &[(u32, u64)],
        header: bool,
    ) -> Result<(), PipelineError> {
        let key = keys::part_key(&job.owner, &job.id, PartKind::RejectedFinal, group);
        let mut sink = PartSink::new(self.objects.clone(), key, "text/csv");
        if header {
            sink.buf.extend_from_slice(REJECTED_HEADER.as_bytes());
        }
        for &(index, line_base) in chunks {
            let source = keys::part_key(&job.owner, &job.id, PartKind::Rejected, index);
            let mut body = self.objects.stream_from(&source, 0).await?;
            let mut rebaser = tessera_engine::chunk::RejectedRebaser::new(line_base);
            while let Some(bytes) = next_piece(&mut body).await? {
                rebaser.feed(&bytes, &mut sink.buf)?;
                sink.flush_if_full().await?;
            }
            rebaser.finish(&mut sink.buf)?;
        }
        sink.close().await?;
        Ok(())
    }

    /// Joins the `groups` rebased parts into `dest` (`UploadPartCopy` for the parts of at least
    /// 5 MiB); rejected.csv is the header alone when no row was rejected.
    pub(super) async fn join_rejected(
        &self,
        job: &Job,
        groups: usize,
        dest: &str,
    ) -> Result<(), PipelineError> {
        if groups == 0 {
            self.objects
                .put(dest, REJECTED_HEADER.as_bytes().to_vec(), "text/csv")
                .await?;
            return Ok(());
        }
        let parts: Vec<String> = (0..groups as u32)
            .map(|g| keys::part_key(&job.owner, &job.id, PartKind::RejectedFinal, g))
            .collect();
        self.objects.concat(dest, &parts, "text/csv").await?;
        Ok(())
    }

    /// One rebase group's task (a chunk worker): writes the group's part, reports it, and the
    /// worker reporting the last group finalizes again.
    pub(super) async fn rejected_rebase_message(
        &self,
        m: RejectedRebaseMessage,
        job: Job,
    ) -> Result<(), PipelineError> {
        if job.state != JobState::Finalizing {
            tracing::info!(job_id = %job.id, group = m.group, state = job.state.as_str(), "job not finalizing; rebase group skipped");
            return Ok(());
        }
        if !is_waiting(job.rebase_waiting.as_ref(), m.group) {
            tracing::info!(job_id = %job.id, group = m.group, "rebase group already reported (redelivery)");
            return self.finalize_if_done(&job.id).await;
        }
        match self.rebase_group(&job, m.group, &m.chunks, m.header).await {
            Ok(()) => {}
            Err(PipelineError::Engine(e)) => return self.fail(&job, e.code(), e.to_string()).await,
            Err(e) => return Err(e),
        }
        match unique_item_done(&*self.jobs, &job.id, UniqueStep::Rebase, m.group).await? {
            Some(job) => self.finalize(&job).await,
            None => Ok(()),
        }
    }
}

/// The tasks of rebase groups `numbers`.
fn rebase_messages(job: &Job, rejected: &Rejected, numbers: Vec<u32>) -> Vec<QueueMessage> {
    numbers
        .into_iter()
        .filter_map(|g| {
            let chunks = rejected.groups.get(g as usize)?.clone();
            Some(QueueMessage::RejectedRebase(RejectedRebaseMessage {
                job_id: job.id.clone(),
                owner: job.owner.clone(),
                group: g,
                chunks,
                header: g == 0,
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn groups_reach_the_minimum_part_size_but_the_last() {
        // 3 + 3 MiB -> one group; 6 MiB alone; then 1 MiB left over.
        let parts = [
            (0, 1, 3 * MIB),
            (2, 50, 3 * MIB),
            (3, 90, 6 * MIB),
            (7, 400, MIB),
        ];
        assert_eq!(
            rebase_groups(&parts),
            vec![vec![(0, 1), (2, 50)], vec![(3, 90)], vec![(7, 400)]]
        );
        assert!(rebase_groups(&[]).is_empty());
        // Many tiny parts: cut by count.
        let tiny: Vec<(u32, u64, u64)> = (0..2500).map(|i| (i, i as u64, 10)).collect();
        let g = rebase_groups(&tiny);
        assert_eq!(
            g.iter().map(Vec::len).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        assert_eq!(g.concat().len(), 2500);
    }
}
