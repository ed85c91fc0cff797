//! Queries' work (the model: `crate::query`): preparing a question over a completed job
//! ([`prepare`]: the object it reads, its layout and column types, the compiled plan), running
//! it within the request ([`run_inline`]), and a query job's ranges on the chunk workers: each
//! range's partial aggregate state into its part, and the worker completing the last range
//! merges the states and stores the result.
//!
//! Column types come from the job's profile when the object's header is the profile's columns
//! (the clean output, or the upload when no rule renamed or added a column); otherwise from the
//! records in the object's first [`SNIFF_BYTES`], as `tessera query` types a local file. Either
//! way the types are fixed in the query's record before any range is read.

use std::time::Instant;

use tessera_engine::chunk::Feed;
use tessera_engine::dialect::{sniff_with_size, DialectOverrides};
use tessera_engine::file::SNIFF_BYTES;
use tessera_engine::profile::ProfileReport;
use tessera_engine::query::{
    compile, finish, head_types, Finisher, PartialState, Plan, QueryDocument, QueryError,
    QueryOptions, QueryResult, RangeQuery, Schema, Source,
};
use tessera_engine::split::{self, ChunkSummary, ChunkTask};

use super::{is_stale, job_dialect, Pipeline, PipelineError};
use crate::config::Config;
use crate::job::{now_rfc3339, Job, JobError};
use crate::keys;
use crate::query::{
    normalised, object_of, query_id, query_tasks, QueryJob, QueryMode, INLINE_RESULT_MAX_BYTES,
    QUERY_PARTITIONS,
};
use crate::ranged::RangedState;
use crate::store::objects::{next_piece, open_planned, ObjectStore, SourceChanged};
use crate::store::ranged::{RangeCommit, RangeRecord, RangedStore};
use crate::store::table::{number, string};
use crate::store::StoreError;
use crate::task::QueryRangeMessage;

/// The query records adapter.
pub type QueryStore = RangedStore<QueryJob>;

/// How long a query job may sit in `stitching` (merging) before a redelivered range takes the
/// merge over (the chunk function's timeout is 300 s).
const STALE_MERGING: std::time::Duration = std::time::Duration::from_secs(600);

/// How far past its end a range on a guessed start state reads before giving up (it is then
/// read again with the known state): beyond the longest record.
const MAX_OVERRUN: u64 = 64 << 20;

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryFailure {
    /// The question or the data: invalid document (problems with JSON paths), too many groups,
    /// an overflow, a file that cannot be read as CSV. Shown to the caller with its code.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The object changed or disappeared since the job completed.
    #[error("source changed: {0}")]
    Changed(String),
    /// S3 or DynamoDB failed (transient).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SourceChanged> for QueryFailure {
    fn from(e: SourceChanged) -> Self {
        match e {
            SourceChanged::Store(e) => QueryFailure::Store(e),
            SourceChanged::Changed(d) => QueryFailure::Changed(d),
        }
    }
}

impl QueryFailure {
    /// The stable code and the message safe to show, for a failure that is the data's or the
    /// question's (`None` for a store failure: the caller maps it).
    pub fn shown(&self) -> Option<(&'static str, String)> {
        match self {
            QueryFailure::Query(e) => Some((e.code(), e.to_string())),
            QueryFailure::Changed(_) => Some((
                "source_changed",
                "The job's data changed or disappeared since it completed, so it cannot be queried. Upload the file again.".into(),
            )),
            QueryFailure::Store(_) => None,
        }
    }
}

/// The engine's options for a deployment.
pub fn query_options(config: &Config) -> QueryOptions {
    QueryOptions {
        max_groups: usize::try_from(config.query_max_groups).unwrap_or(usize::MAX),
        ..QueryOptions::default()
    }
}

/// A question ready to run: its record (state `queued`, mode chosen by the object's size) and
/// its plan.
pub struct Prepared {
    pub record: QueryJob,
    pub plan: Plan,
}

/// Prepares `doc` over completed `job`: finds the object, reads its head (layout, types),
/// compiles the plan (an invalid question is a [`QueryError::Invalid`] with JSON paths) and
/// builds the record, `inline` when the object is at most `Config::query_inline_max_bytes`.
pub async fn prepare(
    objects: &ObjectStore,
    config: &Config,
    job: &Job,
    doc: &QueryDocument,
) -> Result<Prepared, QueryFailure> {
    let key = object_of(job, doc.source)
        .ok_or_else(|| QueryFailure::Changed("the job has no clean output".into()))?
        .to_string();
    let size = objects
        .size(&key)
        .await?
        .ok_or_else(|| QueryFailure::Changed(format!("{key} is gone")))?;
    let head = objects
        .read_range(&key, 0, size.min(SNIFF_BYTES as u64))
        .await?;
    let (dialect, header_len, columns) = match doc.source {
        Source::Source => {
            let dialect = job_dialect(job).map_err(|e| QueryFailure::Changed(e.to_string()))?;
            (dialect, job.header_len, job.columns.clone())
        }
        Source::Clean => {
            // The engine wrote it: `,`, `"`, a header record.
            let overrides = DialectOverrides {
                delimiter: Some(b','),
                quote: Some(b'"'),
                has_header: Some(true),
            };
            let sn = sniff_with_size(&head, size, &overrides).map_err(QueryError::from)?;
            (sn.dialect, sn.header_len, sn.columns)
        }
    };
    let profile = match &job.results.profile {
        Some(k) => match objects.read_all(k).await {
            Ok(bytes) => serde_json::from_slice::<ProfileReport>(&bytes).ok(),
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let schema = match profile.map(|p| Schema::from_profile(&p)) {
        Some(s) if s.columns == columns => s,
        _ => Schema {
            types: head_types(&head, size, &dialect, header_len, columns.len()),
            columns,
        },
    };
    let plan = compile(doc, &schema, &query_options(config))?;
    let id = query_id(job, doc);
    let now = now_rfc3339();
    let mode = if size <= config.query_inline_max_bytes {
        QueryMode::Inline
    } else {
        QueryMode::Job
    };
    let mut record = QueryJob {
        result_key: keys::query_result_key(&job.owner, &job.id, &id, "result.json"),
        csv_key: keys::query_result_key(&job.owner, &job.id, &id, "result.csv"),
        id,
        job_id: job.id.clone(),
        owner: job.owner.clone(),
        state: RangedState::Queued,
        mode,
        run: 0,
        document: normalised(doc),
        object_key: key,
        object_size: size,
        header_len,
        dialect,
        schema,
        range_size: config.query_range_size,
        range_count: 0,
        ranges_done: 0,
        bytes_done: 0,
        rows: 0,
        cpu_ms: 0,
        size: 0,
        ranges_rerun: 0,
        result: None,
        error: None,
        created_at: now.clone(),
        updated_at: now,
        completed_at: None,
        expires_at: job.expires_at,
        continuation: None,
    };
    record.range_count = record.ranges().len() as u32;
    Ok(Prepared { record, plan })
}

/// CPU time of the calling thread.
fn thread_cpu() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One range's partial state, streamed from S3: what a query task computes, and what the
/// inline run computes over the whole object as one range.
pub struct RangeOutcome {
    pub state: PartialState,
    pub summary: ChunkSummary,
    pub cpu: std::time::Duration,
}

/// Streams range `task` of `record`'s object through the engine.
pub async fn scan_range(
    objects: &ObjectStore,
    record: &QueryJob,
    plan: &Plan,
    task: &ChunkTask,
) -> Result<RangeOutcome, QueryFailure> {
    let mut scan = RangeQuery::new(task, &record.dialect, plan, MAX_OVERRUN);
    let mut cpu = std::time::Duration::ZERO;
    let from = tessera_engine::chunk::read_start(task);
    if from < record.object_size {
        let mut body = open_planned(
            objects,
            &record.object_key,
            from,
            record.object_size,
            ("data", "query"),
        )
        .await?;
        while let Some(bytes) = next_piece(&mut body).await? {
            let t = thread_cpu();
            let fed = scan.feed(&bytes)?;
            cpu += thread_cpu().saturating_sub(t);
            if fed == Feed::Done {
                break;
            }
        }
    }
    let t = thread_cpu();
    let (state, summary) = scan.finish()?;
    cpu += thread_cpu().saturating_sub(t);
    Ok(RangeOutcome {
        state,
        summary,
        cpu,
    })
}

/// The result as CSV: one header record, one record per row; text cells formula-escaped like
/// exports, nulls empty, lists (a `top` aggregate) as their JSON text.
pub fn result_csv(result: &QueryResult) -> Vec<u8> {
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    let mut record = |cells: &mut dyn Iterator<Item = String>, out: &mut Vec<u8>| {
        for (i, c) in cells.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            crate::export::write_cell(out, &mut scratch, c.as_bytes(), true);
        }
        out.push(b'\n');
    };
    record(&mut result.columns.iter().cloned(), &mut out);
    for row in &result.rows {
        record(
            &mut row.iter().map(|v| match v {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            &mut out,
        );
    }
    out
}

/// Stores `result` (JSON, and CSV) for `record`: in S3 always, and in the record when small.
/// Returns the JSON text, its size, and the record's result attribute when it is kept there.
async fn store_result(
    objects: &ObjectStore,
    record: &QueryJob,
    result: &QueryResult,
) -> Result<(String, Option<String>), StoreError> {
    let json = serde_json::to_string(result).expect("a result is JSON");
    objects
        .put(
            &record.result_key,
            json.clone().into_bytes(),
            "application/json",
        )
        .await?;
    objects
        .put(
            &record.csv_key,
            result_csv(result),
            "text/csv; charset=utf-8",
        )
        .await?;
    let kept = (json.len() <= INLINE_RESULT_MAX_BYTES).then(|| json.clone());
    Ok((json, kept))
}

/// Runs a prepared inline question within the request: the whole object as one range (its
/// start state is known), then the final step; the result is stored under the record
/// (`completed`), so asking again is one read. Returns the completed record and the result.
/// `replaces`: the failed record of the same question, replaced by this one.
pub async fn run_inline(
    objects: &ObjectStore,
    queries: &QueryStore,
    prepared: Prepared,
    replaces: Option<&QueryJob>,
) -> Result<(QueryJob, QueryResult), QueryFailure> {
    let Prepared { mut record, plan } = prepared;
    if let Some(old) = replaces {
        record.run = old.run + 1;
    }
    let started = Instant::now();
    let task = ChunkTask {
        index: 0,
        start: record.header_len.min(record.object_size),
        end: record.object_size,
        start_in_quotes: Some(false),
    };
    let out = scan_range(objects, &record, &plan, &task).await?;
    split::check_complete(std::slice::from_ref(&out.summary)).map_err(QueryError::from)?;
    let result = finish(&plan, &out.state)?;
    let (json, kept) = store_result(objects, &record, &result).await?;
    let now = now_rfc3339();
    record.state = RangedState::Completed;
    record.range_count = 1;
    record.ranges_done = 1;
    record.bytes_done = record.object_size;
    record.rows = result.rows_scanned + result.rejected_rows;
    record.cpu_ms = out.cpu.as_millis() as u64;
    record.size = json.len() as u64;
    record.result = kept;
    record.updated_at = now.clone();
    record.completed_at = Some(now);
    let stored = if replaces.is_some() {
        queries.replace_failed(&record).await?
    } else {
        queries.create_new(&record).await?
    };
    if !stored {
        // Asked twice at once: the other answer is the same one.
        tracing::info!(query_id = %record.id, "query answered twice at once; kept the first record");
    }
    tracing::info!(job_id = %record.job_id, query_id = %record.id, bytes = record.object_size, groups = result.groups, cpu_ms = record.cpu_ms, ms = started.elapsed().as_millis() as u64, "query answered inline");
    Ok((record, result))
}

/// The stored result of a completed query: from its record when kept there, else from S3.
pub async fn stored_result(
    objects: &ObjectStore,
    record: &QueryJob,
) -> Result<serde_json::Value, StoreError> {
    let text = match &record.result {
        Some(t) => t.clone().into_bytes(),
        None => objects.read_all(&record.result_key).await?,
    };
    serde_json::from_slice(&text).map_err(|e| StoreError::Malformed {
        what: "query result",
        detail: e.to_string(),
    })
}

/// A query job still `queued` or `running` that has not moved for this long is failed
/// `query_stalled` when it is read: by then its tasks have exhausted their deliveries (3 x the
/// queue's 30-minute visibility) or were never sent.
pub const QUERY_STALLED_AFTER: std::time::Duration = std::time::Duration::from_secs(2 * 3600);

/// What a question needs: the stores and the chunk task queue.
pub struct QueryDeps<'a> {
    pub config: &'a Config,
    pub objects: &'a ObjectStore,
    pub queries: &'a QueryStore,
    pub queue: &'a crate::store::queue::TaskQueue,
}

/// What asking a question did.
#[derive(Debug)]
pub enum Asked {
    /// Answered now: within the request, or from the stored result (`cached`).
    Answered { record: QueryJob, cached: bool },
    /// A query job runs (started now, or already running for the same question).
    Running(QueryJob),
}

/// Asks `doc` over completed `job` (see `crate::query`): the stored answer if the question was
/// answered before, the running query job if it is being answered, else a new answer within the
/// request or a new query job (its ranges sent to the chunk task queue). `continuation`: the
/// agent queue message a new query job sends when it ends.
pub async fn ask(
    deps: &QueryDeps<'_>,
    job: &Job,
    doc: &QueryDocument,
    continuation: Option<String>,
) -> Result<Asked, QueryFailure> {
    let qid = query_id(job, doc);
    let replaces = match deps.queries.get(&job.id, &qid).await? {
        Some(q) if q.state == RangedState::Completed => {
            tracing::info!(job_id = %job.id, query_id = %qid, "query answered from its stored result");
            return Ok(Asked::Answered {
                record: q,
                cached: true,
            });
        }
        Some(q) if q.state == RangedState::Failed => Some(q),
        Some(q) => {
            let q = fail_if_stalled(deps.queries, deps.objects, q).await?;
            if q.state != RangedState::Failed {
                return Ok(Asked::Running(q));
            }
            Some(q)
        }
        None => None,
    };
    let prepared = prepare(deps.objects, deps.config, job, doc).await?;
    if prepared.record.mode == QueryMode::Inline {
        let (record, _) =
            run_inline(deps.objects, deps.queries, prepared, replaces.as_ref()).await?;
        return Ok(Asked::Answered {
            record,
            cached: false,
        });
    }
    let mut record = prepared.record;
    record.continuation = continuation;
    let created = if let Some(old) = &replaces {
        record.run = old.run + 1;
        deps.queries.replace_failed(&record).await?
    } else {
        deps.queries.create_new(&record).await?
    };
    if !created {
        // Asked twice at once: the record that won answers.
        return match deps.queries.get(&job.id, &qid).await? {
            Some(q) if q.state == RangedState::Completed => Ok(Asked::Answered {
                record: q,
                cached: true,
            }),
            Some(q) => Ok(Asked::Running(q)),
            None => Err(QueryFailure::Store(StoreError::Malformed {
                what: "query",
                detail: "the record vanished after a lost create".into(),
            })),
        };
    }
    if let Err(e) = deps.queue.send_all(&query_tasks(&record)).await {
        // Without its tasks the query would wait for ever: fail it, then report the error.
        let error = JobError::new(
            "query_enqueue_failed",
            "Tessera could not start this query. Ask it again.",
        );
        if let Err(e2) = deps.queries.mark_failed(&record, &error).await {
            tracing::error!(query_id = %record.id, error = %e2, "could not fail a query whose tasks were not sent");
        }
        return Err(e.into());
    }
    tracing::info!(job_id = %job.id, query_id = %record.id, bytes = record.object_size, ranges = record.range_count, "query job started");
    Ok(Asked::Running(record))
}

/// `q` failed `query_stalled` if it is still `queued`/`running` and has not moved for
/// [`QUERY_STALLED_AFTER`] (conditional on it not having moved since it was read).
pub async fn fail_if_stalled(
    queries: &QueryStore,
    objects: &ObjectStore,
    q: QueryJob,
) -> Result<QueryJob, StoreError> {
    if !matches!(q.state, RangedState::Queued | RangedState::Running)
        || !is_stale(&q.updated_at, QUERY_STALLED_AFTER)
    {
        return Ok(q);
    }
    let error = JobError::new(
        "query_stalled",
        "The query made no progress for 2 hours and was stopped. Ask it again.",
    );
    if queries.mark_stalled(&q, &error).await? {
        tracing::warn!(job_id = %q.job_id, query_id = %q.id, since = %q.updated_at, "query stalled; failed it");
        if let Err(e) = objects.delete_keys(&q.part_keys()).await {
            tracing::warn!(error = %e, "could not delete a stalled query's parts; the bucket's expiry rule will");
        }
    }
    Ok(queries.get(&q.job_id, &q.id).await?.unwrap_or(q))
}

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
        let claimed = match query.state {
            RangedState::Running if query.ranges_done >= query.range_count => {
                self.queries.claim_stitching(query).await?
            }
            RangedState::Stitching if is_stale(&query.updated_at, STALE_MERGING) => {
                tracing::warn!(since = %query.updated_at, "taking over a stalled query merge");
                self.queries.reclaim_stitching(query).await?
            }
            _ => false,
        };
        if !claimed {
            return Ok(());
        }
        let query = self
            .queries
            .get(&query.job_id, &query.id)
            .await?
            .unwrap_or_else(|| query.clone());
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
        if records.len() != tasks.len()
            || records.iter().zip(&tasks).any(|(r, t)| r.index != t.index)
        {
            return Err(QueryFailure::Changed(format!(
                "{} range records for {} ranges",
                records.len(),
                tasks.len()
            )));
        }
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
        let part_key =
            |i: usize| keys::query_part_key(&query.owner, &query.job_id, &query.id, i as u32);
        let result = if records.iter().any(|r| r.partitions > 1) {
            // Some range spilled: one partition of every range at a time. A range that did
            // not spill (or was read again) is cut the same way, its piece taken per pass.
            let parts = QUERY_PARTITIONS as usize;
            let mut f = Finisher::new(&plan);
            for p in 0..parts {
                let mut total = PartialState::new(&plan);
                for (i, r) in records.iter().enumerate() {
                    let piece = match rerun_states.get(&(i as u32)) {
                        Some(s) => s.partitions(&plan, parts)?.swap_remove(p),
                        None if r.partitions > 1 => {
                            let key = keys::query_partition_key(
                                &query.owner,
                                &query.job_id,
                                &query.id,
                                i as u32,
                                p as u32,
                            );
                            PartialState::from_bytes(&self.objects.read_all(&key).await?)?
                        }
                        None => {
                            PartialState::from_bytes(&self.objects.read_all(&part_key(i)).await?)?
                                .partitions(&plan, parts)?
                                .swap_remove(p)
                        }
                    };
                    let t = thread_cpu();
                    total.merge(&plan, &piece)?;
                    extra_cpu += thread_cpu().saturating_sub(t).as_millis() as u64;
                }
                let t = thread_cpu();
                f.add(&plan, &total)?;
                extra_cpu += thread_cpu().saturating_sub(t).as_millis() as u64;
            }
            let t = thread_cpu();
            let r = f.finish(&plan)?;
            extra_cpu += thread_cpu().saturating_sub(t).as_millis() as u64;
            r
        } else {
            let mut total = PartialState::new(&plan);
            for i in 0..records.len() {
                let t = thread_cpu();
                match rerun_states.get(&(i as u32)) {
                    Some(s) => total.merge(&plan, s)?,
                    None => {
                        let bytes = self.objects.read_all(&part_key(i)).await?;
                        let t = thread_cpu();
                        let s = PartialState::from_bytes(&bytes)?;
                        total.merge(&plan, &s)?;
                        extra_cpu += thread_cpu().saturating_sub(t).as_millis() as u64;
                        continue;
                    }
                }
                extra_cpu += thread_cpu().saturating_sub(t).as_millis() as u64;
            }
            let t = thread_cpu();
            let r = finish(&plan, &total)?;
            extra_cpu += thread_cpu().saturating_sub(t).as_millis() as u64;
            r
        };
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
        tracing::warn!(job_id = %query.job_id, query_id = %query.id, code, %detail, "query failed");
        if self
            .queries
            .mark_failed(query, &JobError::new(code, message))
            .await?
        {
            if let Err(e) = self.objects.delete_keys(&query.part_keys()).await {
                tracing::warn!(error = %e, "could not delete a failed query's parts; the bucket's expiry rule will");
            }
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
        match query.state {
            RangedState::Queued | RangedState::Running => {
                if self
                    .queries
                    .range_done(&query, task.index)
                    .await?
                {
                    return Ok(());
                }
                self.fail_query(
                    &query,
                    "query_attempts_exhausted",
                    format!(
                        "Range {} of the data (bytes {}-{}) was tried {} times and never finished. Ask the query again; if it fails again, report the job id.",
                        task.index, task.start, task.end, super::MAX_CHUNK_DELIVERIES
                    ),
                    "dead-lettered".into(),
                )
                .await
            }
            RangedState::Stitching if is_stale(&query.updated_at, STALE_MERGING) => {
                self.fail_query(
                    &query,
                    "query_failed",
                    "Tessera could not merge this query's parts: every attempt stopped before finishing. Ask the query again; if it fails again, report the job id.".into(),
                    "merge never finished".into(),
                )
                .await
            }
            _ => Ok(()),
        }
    }
}
