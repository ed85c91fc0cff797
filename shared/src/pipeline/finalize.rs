//! Finalizing: once every chunk is done, exactly one worker validates the quote-state guesses,
//! runs the `unique` pass, merges the results in chunk order, stitches the outputs and completes
//! the job; a finalizer that died is taken over once its job has not moved for long enough.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;
use tessera_engine::chunk::ChunkResult;
use tessera_engine::profile::{ProfileOptions, ProfileState};

use tessera_engine::rules::CompiledRules;
use tessera_engine::split::{self, ChunkSummary, ChunkTask};

use super::steps::{claim_finalization, complete, Completion};
use super::unique::UniqueStage;
use super::{clean_header, output_columns, Pipeline, PipelineError};
use crate::job::{now_rfc3339, Job, JobState, ResultKeys};
use crate::keys::{self, PartKind};
use crate::ledger::Totals;

/// Runs of the finalization before a store error fails the job `finalize_failed` (each run's
/// calls have the SDK's own three attempts).
const FINALIZE_ATTEMPTS: u32 = 4;

/// Pause before the second run; doubled before each further one (1 + 2 + 4 s in all).
const FINALIZE_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

impl Pipeline {
    /// Finalizes the job if every chunk is done and this caller wins the move to `finalizing`.
    pub(super) async fn finalize_if_done(&self, job_id: &str) -> Result<(), PipelineError> {
        if let Some(job) =
            claim_finalization(&*self.jobs, job_id, self.config.stale_finalizing).await?
        {
            self.finalize(&job).await?;
        }
        Ok(())
    }

    /// For the planner, whose death no one would notice once the job is past `queued` (its
    /// redelivered notification is a duplicate): if every chunk of `job_id` finished while the
    /// job was still `queued` (so none of them could claim the finalization), sends the last
    /// chunk's task again instead of finalizing here. The chunk worker that gets it finds the
    /// chunk done and claims the finalization, so the finalizer's message lives on the chunk
    /// queue, where it comes back to take over if that worker dies (docs/pipeline.md § *A
    /// finalizer that dies*). A second send (a redelivered notification) is harmless: one
    /// claim wins.
    pub(super) async fn hand_over_finalization_if_done(
        &self,
        job_id: &str,
    ) -> Result<(), PipelineError> {
        let Some(job) = self.jobs.get(job_id).await? else {
            return Ok(());
        };
        if job.state != JobState::Processing
            || self.jobs.progress(job_id).await?.chunks_done < job.chunk_count
        {
            return Ok(());
        }
        if let Some(last) = super::chunk_tasks(&job).pop() {
            tracing::info!(job_id, chunk = last.index, "every chunk finished before the job was processing; a chunk worker will finalize it");
            self.queue
                .send_all(&[crate::task::QueueMessage::Chunk(last)])
                .await?;
        }
        Ok(())
    }

    /// Validates, merges and stitches a job whose chunks are all done, then completes it.
    ///
    /// Finalizing is idempotent (a takeover runs it again from the start), so a store error
    /// (S3 or DynamoDB answering 5xx/throttling past the SDK's own retries) is retried here, on
    /// the job as read again, up to [`FINALIZE_ATTEMPTS`] times with a growing pause, instead of
    /// failing a job whose chunks are all done. Errors of the data (engine, rules) are final.
    pub(super) async fn finalize(&self, job: &Job) -> Result<(), PipelineError> {
        let mut job = job.clone();
        let mut attempt = 1;
        loop {
            // Boxed: the finalizer's future is large, and every stage that may finalize holds it.
            let e = match Box::pin(self.try_finalize(&job)).await {
                Ok(()) => return Ok(()),
                Err(PipelineError::Engine(e)) => {
                    return self.fail(&job, e.code(), e.to_string()).await
                }
                Err(PipelineError::Rules { code, message }) => {
                    return self.fail(&job, code, message).await
                }
                Err(PipelineError::SourceChanged(detail)) => {
                    let message = format!(
                        "The results of this job could not be assembled: {detail}. The file was \
                         replaced or removed after its upload; upload it again as a new job."
                    );
                    return self.fail(&job, "source_changed", message).await;
                }
                Err(e) => e,
            };
            if attempt >= FINALIZE_ATTEMPTS || !matches!(e, PipelineError::Store(_)) {
                tracing::error!(job_id = %job.id, error = %e, attempt, "finalization failed");
                return self
                    .fail_finalization(
                        &job,
                        "Tessera could not assemble the results of this job: storage kept failing.",
                    )
                    .await;
            }
            tracing::warn!(job_id = %job.id, error = %e, attempt, "finalization hit a store error; trying again");
            tokio::time::sleep(FINALIZE_RETRY_PAUSE * 2u32.pow(attempt - 1)).await;
            attempt += 1;
            // Go on from the job as it is now: a step may have moved it (a `unique` step begun),
            // and a cancel or a takeover that completed it ends this finalizer's business.
            match self.jobs.get(&job.id).await {
                Ok(Some(now)) if now.state == JobState::Finalizing => job = now,
                Ok(_) => return Ok(()),
                Err(e) => {
                    tracing::warn!(job_id = %job.id, error = %e, "could not read the job again; retrying on the copy in hand")
                }
            }
        }
    }

    pub(super) async fn try_finalize(&self, job: &Job) -> Result<(), PipelineError> {
        let rules = self.job_rules(job).await?;
        let tasks = split::plan(job.declared_size, job.header_len, job.chunk_size.max(1));
        // Load the parity facts of every chunk (small), validate the guesses, re-run the
        // mispredicted chunks with their known start state.
        // The same pass merges the results: one read of each result when nothing is re-run
        // (the usual case); a re-run below discards this merge and reads them again. While a
        // `unique` step is still to come (this call will most likely start or wait for one),
        // nothing is merged: the call that finds the steps done merges.
        let unique_pending = rules.as_ref().is_some_and(|r| !r.unique_rules().is_empty())
            && !job.unique_waiting.as_ref().is_some_and(|w| w.is_empty());
        let mut merged = (!unique_pending).then(|| Merged::new(job));
        let (summaries, reruns) = self.check_parity(job, &tasks, merged.as_mut()).await?;

        // `unique` rules: the exact second pass over the chunks' keys, then a re-run of the
        // chunks that own repeats, so those records are rejected or flagged like any violation
        // and every count below (rows, rejected rows, violations) includes them. Both steps fan
        // out through the chunk queue; the last item of a step to report back calls this again,
        // which then finds the step done and goes on.
        let mut unique_reruns = 0;
        if let Some(rules) = &rules {
            let unique = rules.unique_rules();
            if !unique.is_empty() {
                match self.unique_stage(job, &tasks, &summaries, &unique).await? {
                    UniqueStage::Waiting => return Ok(()),
                    UniqueStage::Done { reruns } => unique_reruns = reruns,
                }
            }
        }

        let merged = match merged {
            Some(m) if reruns.is_empty() => m,
            _ => {
                // Merge (again), in chunk order.
                let mut m = Merged::new(job);
                let mut results = self.results_in_order(job, &tasks);
                while let Some(r) = results.try_next().await? {
                    m.add(&r);
                }
                m
            }
        };
        // rejected.csv's parts: rebased here, or by chunk workers when the rejected output is
        // large (then the last of them calls this again, which finds them done).
        threshold_check(&merged, &rules)?;
        let rejected = self
            .rejected_groups(job, &tasks, &merged.line_facts)
            .await?;
        if !self.rebase_stage(job, &rejected).await? {
            return Ok(());
        }
        let (totals, results) = self
            .write_outputs(
                job,
                &tasks,
                &rules,
                merged,
                (reruns.len(), unique_reruns),
                rejected.groups.len(),
            )
            .await?;
        match complete(&*self.jobs, &job.id, &totals, &results).await? {
            Completion::Completed => {
                tracing::info!(job_id = %job.id, rows = totals.rows, rejected = totals.rejected_rows, reruns = reruns.len(), "job completed");
            }
            Completion::Other => {}
            // Cancelled while finalizing: the job cannot complete (the move is conditional), and
            // the outputs written above must not outlive it.
            Completion::Cancelled => {
                let keys = keys::job_output_keys(
                    &job.owner,
                    &job.id,
                    job.chunk_count,
                    job.unique_searches,
                );
                if let Err(e) = self.objects.delete_keys(&keys).await {
                    tracing::warn!(job_id = %job.id, error = %e, "could not delete a cancelled job's outputs; the bucket's expiry rule will");
                }
            }
        }
        Ok(())
    }

    /// Reads every chunk's result in order (adding each to `merged`, if given), validates the
    /// quote-state guesses and re-runs the mispredicted chunks with their known start state.
    /// The chunks' summaries (after the re-runs) and the re-runs.
    async fn check_parity(
        &self,
        job: &Job,
        tasks: &[ChunkTask],
        mut merged: Option<&mut Merged>,
    ) -> Result<(Vec<ChunkSummary>, Vec<(u32, bool)>), PipelineError> {
        let mut summaries = Vec::with_capacity(tasks.len());
        let mut results = self.results_in_order(job, tasks);
        while let Some(r) = results.try_next().await? {
            summaries.push(r.summary());
            if let Some(m) = merged.as_mut() {
                m.add(&r);
            }
        }
        drop(results);
        let reruns = split::validate(&summaries);
        for (index, in_quotes) in &reruns {
            let mut t = tasks[*index as usize];
            t.start_in_quotes = Some(*in_quotes);
            tracing::info!(job_id = %job.id, chunk = index, in_quotes, "re-running a chunk whose quote state was mispredicted");
            let r = self.run_chunk(job, &t).await?;
            summaries[*index as usize] = r.summary();
        }
        split::check_complete(&summaries)?;
        Ok((summaries, reruns))
    }

    /// Writes a finalized job's outputs from its merged results: profile.json, clean.csv,
    /// rejected.csv and manifest.json (`reruns`: chunks re-run for their quote state, and for
    /// `unique` repeats). The job's totals and result keys; `rule_threshold_exceeded` if the
    /// workflow's thresholds were passed.
    async fn write_outputs(
        &self,
        job: &Job,
        tasks: &[ChunkTask],
        rules: &Option<Arc<CompiledRules>>,
        merged: Merged,
        reruns: (usize, u32),
        rejected_groups: usize,
    ) -> Result<(Totals, ResultKeys), PipelineError> {
        let (reruns, unique_reruns) = reruns;
        let Merged {
            mut profile,
            totals,
            mut violations,
            rule_rejected_rows,
            line_facts: _,
            model_error_rows,
            not_sampled_rows,
        } = merged;
        if let Some(rules) = &rules {
            for id in rules.rule_ids() {
                violations.entry(id).or_default();
            }
            if let Some(over) =
                rules.threshold_exceeded(totals.rows + rule_rejected_rows, &violations)
            {
                return Err(PipelineError::Rules {
                    code: "rule_threshold_exceeded",
                    message: over.to_string(),
                });
            }
        }
        profile.add_bytes(job.header_len);
        let prefix = keys::results_prefix(&job.owner, &job.id);
        let report = serde_json::to_vec_pretty(&profile.report())
            .map_err(|e| PipelineError::Malformed(e.to_string()))?;
        let profile_key = format!("{prefix}/profile.json");
        self.objects
            .put(&profile_key, report, "application/json")
            .await?;

        let (clean_key, rejected_key) = (
            format!("{prefix}/clean.csv"),
            format!("{prefix}/rejected.csv"),
        );
        if tasks.is_empty() {
            self.objects
                .put(
                    &clean_key,
                    clean_header(output_columns(job, rules)),
                    "text/csv",
                )
                .await?;
        } else {
            let parts: Vec<String> = tasks
                .iter()
                .map(|t| keys::part_key(&job.owner, &job.id, PartKind::Clean, t.index))
                .collect();
            self.objects.concat(&clean_key, &parts, "text/csv").await?;
        }
        self.join_rejected(job, rejected_groups, &rejected_key)
            .await?;
        let results = ResultKeys {
            profile: Some(profile_key),
            clean: Some(clean_key),
            rejected: Some(rejected_key),
            manifest: Some(format!("{prefix}/manifest.json")),
        };
        let manifest = serde_json::json!({
            "job_id": job.id,
            "source": { "key": job.source_key, "bytes": job.declared_size, "filename": job.filename },
            "dialect": job.dialect,
            "columns": job.columns,
            "chunks": tasks.len(),
            "chunks_rerun": reruns,
            "chunks_rerun_for_unique": unique_reruns,
            "unique_search_groups": job.unique_searches,
            "rows": totals.rows,
            "rejected_rows": totals.rejected_rows,
            "workflow": job.workflow,
            "rules_dry_run_of": job.rules_trial.as_ref().map(|t| &t.of_job),
            "output_columns": output_columns(job, rules),
            "violations": violations,
            "sentiment": (totals.scored_rows > 0 || job.model_max_micro_usd > 0).then(|| serde_json::json!({
                "scored_rows": totals.scored_rows,
                "not_graded_rows": totals.not_graded_rows,
                "not_sampled_rows": not_sampled_rows,
                "model_error_rows": model_error_rows,
                "model": job.snapshot().model,
            })),
            "outputs": { "clean": results.clean, "rejected": results.rejected, "profile": results.profile },
            "completed_at": now_rfc3339(),
        });
        self.objects
            .put(
                results.manifest.as_deref().unwrap_or_default(),
                serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
                "application/json",
            )
            .await?;
        Ok((totals, results))
    }

    /// Line breaks inside the header region (re-sniffed from the object's first bytes).
    pub(super) async fn header_lines(&self, job: &Job) -> Result<u64, PipelineError> {
        if job.header_len == 0 {
            return Ok(0);
        }
        // Pinned like the chunk reads (`If-Match` the planned ETag): a header of another object
        // would shift every rejected row's line number.
        let head = crate::store::objects::read_planned(
            &self.objects,
            &job.source_key,
            0,
            job.header_len,
            super::planned_source(job),
        )
        .await?;
        Ok(head
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && head.get(i + 1) != Some(&b'\n')))
            .count() as u64)
    }

    /// Every chunk's result, in chunk order, read `RESULT_READ_CONCURRENCY` at a time (a
    /// result holds a profile state: at most that many are in memory at once).
    pub(super) fn results_in_order<'a>(
        &'a self,
        job: &'a Job,
        tasks: &'a [ChunkTask],
    ) -> impl futures::Stream<Item = Result<ChunkResult, PipelineError>> + 'a {
        futures::stream::iter(tasks)
            .map(move |t| self.load_result(job, t.index))
            .buffered(RESULT_READ_CONCURRENCY)
    }

    pub(super) async fn load_result(
        &self,
        job: &Job,
        index: u32,
    ) -> Result<ChunkResult, PipelineError> {
        let bytes = self
            .objects
            .read_all(&keys::part_key(
                &job.owner,
                &job.id,
                PartKind::Result,
                index,
            ))
            .await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| PipelineError::Malformed(format!("chunk {index} result: {e}")))
    }
}

/// Chunk results read at once while finalizing (in order: a merge adds them one by one).
pub(super) const RESULT_READ_CONCURRENCY: usize = 16;

/// `rule_threshold_exceeded` if the merged counts pass the workflow's thresholds: checked
/// before rejected.csv is rebased (a job over its thresholds is often one with many rejected
/// rows), and again by `write_outputs`.
fn threshold_check(
    merged: &Merged,
    rules: &Option<Arc<CompiledRules>>,
) -> Result<(), PipelineError> {
    let Some(rules) = rules else {
        return Ok(());
    };
    let mut violations = merged.violations.clone();
    for id in rules.rule_ids() {
        violations.entry(id).or_default();
    }
    match rules.threshold_exceeded(merged.totals.rows + merged.rule_rejected_rows, &violations) {
        Some(over) => Err(PipelineError::Rules {
            code: "rule_threshold_exceeded",
            message: over.to_string(),
        }),
        None => Ok(()),
    }
}

/// Every chunk's result added up: profile, totals, violations, and what stitching the rejected
/// output needs of each chunk (`(rejected rows, line breaks in its range)`, in chunk order).
pub(super) struct Merged {
    profile: ProfileState,
    totals: Totals,
    violations: BTreeMap<String, u64>,
    rule_rejected_rows: u64,
    line_facts: Vec<(u64, u64)>,
    model_error_rows: u64,
    not_sampled_rows: u64,
}

impl Merged {
    fn new(job: &Job) -> Self {
        Merged {
            profile: ProfileState::new(job.columns.clone(), &ProfileOptions::default()),
            totals: Totals {
                rows: 0,
                rejected_rows: 0,
                bytes: job.declared_size,
                scored_rows: 0,
                not_graded_rows: 0,
            },
            violations: BTreeMap::new(),
            rule_rejected_rows: 0,
            line_facts: Vec::new(),
            model_error_rows: 0,
            not_sampled_rows: 0,
        }
    }

    /// Adds the next chunk's result (chunks in order).
    fn add(&mut self, r: &ChunkResult) {
        self.line_facts
            .push((r.rejected_rows, r.newline_count_in_range));
        self.totals.rows += r.rows;
        self.totals.rejected_rows += r.rejected_rows;
        self.rule_rejected_rows += r.rule_rejected_rows;
        self.totals.not_graded_rows += r.not_graded_rows;
        self.model_error_rows += r.model_error_rows;
        self.not_sampled_rows += r.not_sampled_rows;
        for (id, n) in &r.violations {
            *self.violations.entry(id.clone()).or_default() += n;
        }
        self.profile.merge(&r.profile);
        // From the merged profile, not the chunks' counters: a chunk re-run (quote state,
        // `unique` repeats) replaces its result.
        self.totals.scored_rows = self.profile.sentiment_scored();
    }
}
