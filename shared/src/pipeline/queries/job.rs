//! A query job's work on the chunk workers: one range's partial state into its part (or its
//! hash partitions), the once-only completion, the merge by the last completion, failures and
//! dead-lettered ranges. The request side (prepare, inline answers, `ask`) is the parent module.

use std::time::Instant;

use tessera_engine::query::{compile, Finisher, PartialState, Plan, QueryError};
use tessera_engine::split::{self, ChunkSummary, ChunkTask};

use super::{
    query_options, scan_range, store_result, thread_cpu, timed, QueryFailure, STALE_MERGING,
};
use crate::keys;
use crate::pipeline::ranged::DeadRange;
use crate::pipeline::{Pipeline, PipelineError, MAX_CHUNK_DELIVERIES};
use crate::query::{QueryJob, QUERY_PARTITIONS};
use crate::ranged::{RangedJob, RangedState};
use crate::store::ranged::{RangeCommit, RangeRecord};
use crate::store::table::{number, string};
use crate::task::QueryRangeMessage;

impl Pipeline {
    /// Sends a query job's continuation (the agent turn that waits for it), best effort: the
    /// agent also checks again on its own after a delay.
    async fn continue_agent(&self, query: &QueryJob) {
        let (Some(body), Some(queue)) = (&query.continuation, &self.agent_queue) else {
            return;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
            tracing::warn!(query_id = %query.id, "continuation is not JSON; not sent");
            return;
        };
        if let Err(e) = queue.send_one(&v, std::time::Duration::ZERO).await {
            tracing::warn!(query_id = %query.id, error = %e, "could not send a query's continuation; the agent checks again itself");
        }
    }

    /// The query record and engine task of a range message, or `None` (logged) when no one can
    /// act on it: the query is unknown or the owners differ. Such a message is acknowledged.
    async fn query_of(
        &self,
        msg: &QueryRangeMessage,
    ) -> Result<Option<(QueryJob, ChunkTask)>, PipelineError> {
        let Some(query) = self.queries.get(&msg.job_id, &msg.query_id).await? else {
            tracing::warn!(job_id = %msg.job_id, query_id = %msg.query_id, "range of an unknown query ignored");
            return Ok(None);
        };
        if query.owner != msg.owner {
            tracing::warn!(job_id = %msg.job_id, query_id = %msg.query_id, "query range owner does not match the query; ignored");
            return Ok(None);
        }
        if query.run != msg.run {
            tracing::info!(job_id = %msg.job_id, query_id = %msg.query_id, run = msg.run, current = query.run, "range of an earlier run of the query ignored");
            return Ok(None);
        }
        let task = ChunkTask {
            index: msg.index,
            start: msg.start,
            end: msg.end,
            start_in_quotes: msg.start_in_quotes,
        };
        Ok(Some((query, task)))
    }

    /// The plan of a stored query (compiled again from its record: deterministic).
    fn plan_of(&self, query: &QueryJob) -> Result<Plan, QueryFailure> {
        let doc = query
            .parsed()
            .map_err(|e| QueryFailure::Changed(format!("stored query document: {e}")))?;
        Ok(compile(&doc, &query.schema, &query_options(&self.config))?)
    }

    /// Handles one query range message. Only transient failures return an error, so SQS
    /// redelivers the message.
    pub async fn query_range_message(&self, msg: QueryRangeMessage) -> Result<(), PipelineError> {
        let Some((query, task)) = self.query_of(&msg).await? else {
            return Ok(());
        };
        let span = tracing::info_span!("query_range", job_id = %query.job_id, query_id = %query.id, range = task.index);
        tracing::Instrument::instrument(self.query_range(query, task), span).await
    }

    async fn query_range(&self, query: QueryJob, task: ChunkTask) -> Result<(), PipelineError> {
        match query.state {
            RangedState::Queued | RangedState::Running => {}
            RangedState::Stitching => return self.merge_if_done(&query).await,
            s => {
                tracing::info!(state = s.as_str(), "query not active; range skipped");
                return Ok(());
            }
        }
        if self.queries.range_done(&query, task.index).await? {
            tracing::info!("range already done (redelivery)");
            return self.merge_if_done(&query).await;
        }
        let outcome = match self.query_part(&query, &task).await {
            Ok(o) => o,
            Err(QueryFailure::Store(e)) => return Err(e.into()),
            Err(e) => return self.fail_query_with(&query, &e).await,
        };
        let key = keys::query_part_key(&query.owner, &query.job_id, &query.id, task.index);
        let record = RangeRecord {
            index: task.index,
            rows: outcome.0,
            bytes: task.end - task.start,
            summary: outcome.1,
            cpu_ms: outcome.2,
            partitions: outcome.3,
        };
        match self.queries.complete_range(&query, &record).await? {
            RangeCommit::Committed => {
                tracing::info!(
                    rows = record.rows,
                    cpu_ms = record.cpu_ms,
                    "query range done"
                );
                let Some(now) = self.queries.get(&query.job_id, &query.id).await? else {
                    return Ok(());
                };
                self.merge_if_done(&now).await
            }
            RangeCommit::AlreadyDone => self.merge_if_done(&query).await,
            RangeCommit::NotActive => {
                if let Err(e) = self.objects.delete_keys(&[key]).await {
                    tracing::warn!(error = %e, "could not delete the part of a failed query; the bucket's expiry rule will");
                }
                Ok(())
            }
        }
    }

    /// Computes range `task`'s partial state and writes it as its part. Returns the records
    /// it read, its quote-parity facts and its CPU milliseconds.
    async fn query_part(
        &self,
        query: &QueryJob,
        task: &ChunkTask,
    ) -> Result<(u64, ChunkSummary, u64, u32), QueryFailure> {
        let plan = self.plan_of(query)?;
        let out = scan_range(&self.objects, query, &plan, task).await?;
        let rows = out.state.rows_scanned + out.state.rejected_rows;
        let mut partitions = 0;
        if out.state.groups() as u64 > self.config.query_spill_groups {
            // Spill: the merger will hold one partition of every range at a time.
            let t = thread_cpu();
            let parts = out.state.partitions(&plan, QUERY_PARTITIONS as usize)?;
            let mut cpu = thread_cpu().saturating_sub(t);
            for (p, piece) in parts.iter().enumerate() {
                let key = keys::query_partition_key(
                    &query.owner,
                    &query.job_id,
                    &query.id,
                    task.index,
                    p as u32,
                );
                let t = thread_cpu();
                let bytes = piece.to_bytes();
                cpu += thread_cpu().saturating_sub(t);
                self.objects
                    .put(&key, bytes, "application/octet-stream")
                    .await?;
            }
            partitions = QUERY_PARTITIONS;
            tracing::info!(
                groups = out.state.groups(),
                partitions,
                "query range state spilled by key hash"
            );
            return Ok((
                rows,
                out.summary,
                (out.cpu + cpu).as_millis() as u64,
                partitions,
            ));
        }
        let key = keys::query_part_key(&query.owner, &query.job_id, &query.id, task.index);
        self.objects
            .put(&key, out.state.to_bytes(), "application/octet-stream")
            .await?;
        Ok((rows, out.summary, out.cpu.as_millis() as u64, partitions))
    }

    /// Merges the query if every range is done and this caller wins the claim, or takes over
    /// a merge that stalled.
    async fn merge_if_done(&self, query: &QueryJob) -> Result<(), PipelineError> {
        let Some(query) = self
            .claim_assembly(&self.queries, query, STALE_MERGING)
            .await?
        else {
            return Ok(());
        };
        match self.try_merge(&query).await {
            Ok(()) => Ok(()),
            Err(QueryFailure::Store(e)) => {
                // Left in `stitching`: a redelivered range (or the dead-letter consumer) takes
                // it over once it is stale.
                Err(e.into())
            }
            Err(e) => self.fail_query_with(&query, &e).await,
        }
    }

    /// Validates the ranges' quote-state guesses (reading mispredicted ranges again with the
    /// known state), merges the partial states in range order, applies the final step, stores
    /// the result and completes the query.
    async fn try_merge(&self, query: &QueryJob) -> Result<(), QueryFailure> {
        let started = Instant::now();
        let plan = self.plan_of(query)?;
        let tasks = query.ranges();
        let records = self.queries.ranges(query).await?;
        crate::pipeline::ranged::check_records(&records, &tasks).map_err(QueryFailure::Changed)?;
        let mut summaries: Vec<ChunkSummary> = records.iter().map(|r| r.summary).collect();
        let reruns = split::validate(&summaries);
        let mut rerun_states = std::collections::HashMap::new();
        let mut extra_cpu = 0u64;
        for &(index, in_quotes) in &reruns {
            let mut t = tasks[index as usize];
            t.start_in_quotes = Some(in_quotes);
            tracing::info!(
                range = index,
                in_quotes,
                "reading again a range whose quote state was mispredicted"
            );
            let out = scan_range(&self.objects, query, &plan, &t).await?;
            summaries[index as usize] = out.summary;
            extra_cpu += out.cpu.as_millis() as u64;
            rerun_states.insert(index, out.state);
        }
        split::check_complete(&summaries).map_err(QueryError::from)?;
        // One pass over every range's state, or, when a range spilled, one pass per hash
        // partition: partition `p` of every range (a range that did not spill, or was read
        // again, is cut the same way) merged, then fed to the finisher.
        let parts = if records.iter().any(|r| r.partitions > 1) {
            QUERY_PARTITIONS as usize
        } else {
            1
        };
        let mut f = Finisher::new(&plan);
        for p in 0..parts {
            let mut total = PartialState::new(&plan);
            for (i, r) in records.iter().enumerate() {
                let index = i as u32;
                let fetched;
                let whole = match rerun_states.get(&index) {
                    Some(s) => s,
                    None if r.partitions > 1 => {
                        let key = keys::query_partition_key(
                            &query.owner,
                            &query.job_id,
                            &query.id,
                            index,
                            p as u32,
                        );
                        let bytes = self.objects.read_all(&key).await?;
                        let piece = timed(&mut extra_cpu, || PartialState::from_bytes(&bytes))?;
                        timed(&mut extra_cpu, || total.merge(&plan, &piece))?;
                        continue;
                    }
                    None => {
                        let key =
                            keys::query_part_key(&query.owner, &query.job_id, &query.id, index);
                        let bytes = self.objects.read_all(&key).await?;
                        fetched = timed(&mut extra_cpu, || PartialState::from_bytes(&bytes))?;
                        &fetched
                    }
                };
                timed(&mut extra_cpu, || -> Result<(), QueryError> {
                    if parts == 1 {
                        total.merge(&plan, whole)
                    } else {
                        total.merge(&plan, &whole.partitions(&plan, parts)?.swap_remove(p))
                    }
                })?;
            }
            timed(&mut extra_cpu, || f.add(&plan, &total))?;
        }
        let result = timed(&mut extra_cpu, || f.finish(&plan))?;
        let parts = query.part_keys();
        let (json, kept) = store_result(&self.objects, query, &result).await?;
        let rows = result.rows_scanned + result.rejected_rows;
        let mut extra = vec![("cpu_ms", number(query.cpu_ms + extra_cpu))];
        if let Some(text) = kept {
            extra.push(("result", string(text)));
        }
        if self
            .queries
            .mark_completed(query, rows, json.len() as u64, reruns.len() as u32, extra)
            .await?
        {
            tracing::info!(
                rows,
                groups = result.groups,
                ranges = tasks.len(),
                reruns = reruns.len(),
                merge_ms = started.elapsed().as_millis() as u64,
                "query job completed"
            );
            self.continue_agent(query).await;
        }
        if let Err(e) = self.objects.delete_keys(&parts).await {
            tracing::warn!(error = %e, "could not delete a query's parts; the bucket's expiry rule will");
        }
        Ok(())
    }

    /// Fails the query with the failure's code and safe message (the detail goes to the log)
    /// and removes its parts, best effort.
    async fn fail_query_with(
        &self,
        query: &QueryJob,
        failure: &QueryFailure,
    ) -> Result<(), PipelineError> {
        let (code, message) = failure.shown().unwrap_or((
            "query_failed",
            "Tessera could not answer this query. Ask again; if it fails again, report the job id."
                .into(),
        ));
        self.fail_query(query, code, message, failure.to_string())
            .await
    }

    async fn fail_query(
        &self,
        query: &QueryJob,
        code: &str,
        message: String,
        detail: String,
    ) -> Result<(), PipelineError> {
        if self
            .fail_ranged(&self.queries, query, code, message, &detail)
            .await?
        {
            self.continue_agent(query).await;
        }
        Ok(())
    }

    /// A query range that reached the dead-letter queue: a running query whose range has no
    /// completion fails `query_attempts_exhausted`; one stuck merging fails `query_failed`.
    pub async fn dead_query_range(&self, msg: QueryRangeMessage) -> Result<(), PipelineError> {
        let Some((query, task)) = self.query_of(&msg).await? else {
            return Ok(());
        };
        match self
            .dead_range(&self.queries, &query, task.index, STALE_MERGING)
            .await?
        {
            DeadRange::Ignore => Ok(()),
            DeadRange::Exhausted => {
                self.fail_query(
                    &query,
                    "query_attempts_exhausted",
                    format!(
                        "Range {} of the data (bytes {}-{}) was tried {} times and never finished. Ask the query again; if it fails again, report the job id.",
                        task.index, task.start, task.end, MAX_CHUNK_DELIVERIES
                    ),
                    "dead-lettered".into(),
                )
                .await
            }
            DeadRange::NeverAssembled => {
                self.fail_query(
                    &query,
                    "query_failed",
                    "Tessera could not merge this query's parts: every attempt stopped before finishing. Ask the query again; if it fails again, report the job id.".into(),
                    "merge never finished".into(),
                )
                .await
            }
        }
    }
}
