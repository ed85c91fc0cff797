//! Queries' work (the model: `crate::query`): preparing a question over a completed job
//! ([`prepare`]: the object it reads, its layout and column types, the compiled plan), running
//! it within the request ([`run_inline`]), asking with the stored answer as a cache ([`ask`]),
//! and streaming one range through the engine ([`scan_range`]). A query job's ranges on the
//! chunk workers (partial states into parts, the merge by the last completion, failures) are
//! `job`.
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
    compile, finish, head_types, PartialState, Plan, QueryDocument, QueryError, QueryOptions,
    QueryResult, RangeQuery, Schema, Source,
};
use tessera_engine::split::{self, ChunkSummary, ChunkTask};

use super::job_dialect;
use crate::config::Config;
use crate::job::{now_rfc3339, Job, JobError};
use crate::keys;
use crate::query::{
    normalised, object_of, query_id, query_tasks, QueryJob, QueryMode, INLINE_RESULT_MAX_BYTES,
};
use crate::ranged::RangedState;
use crate::store::objects::{next_piece, open_planned, ObjectStore, Planned, SourceChanged};
use crate::store::ranged::RangedStore;
use crate::store::StoreError;

mod job;

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
    let object = objects
        .head(&key)
        .await?
        .ok_or_else(|| QueryFailure::Changed(format!("{key} is gone")))?;
    let size = object.size;
    // The object's first bytes: the clean output's header, and the types when the profile
    // cannot give them. Read once, and only when one of those needs them.
    let read_head = || objects.read_range(&key, 0, size.min(SNIFF_BYTES as u64));
    let mut head: Option<Vec<u8>> = None;
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
            let h = head.insert(read_head().await?);
            let sn = sniff_with_size(h, size, &overrides).map_err(QueryError::from)?;
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
    let schema = match profile.as_ref().map(Schema::from_profile) {
        Some(s) if s.columns == columns => s,
        _ => {
            let head = match head {
                Some(h) => h,
                None => read_head().await?,
            };
            let sampled = Schema {
                types: head_types(&head, size, &dialect, header_len, columns.len()),
                columns,
            };
            match &profile {
                // Derived columns are only in the clean output: their types are known.
                Some(p) if doc.source == Source::Clean => sampled.with_derived(p),
                _ => sampled,
            }
        }
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
        object_etag: object.etag,
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

/// Runs `f`, adding the calling thread's CPU time to `ms` (milliseconds).
fn timed<T>(ms: &mut u64, f: impl FnOnce() -> T) -> T {
    let t = thread_cpu();
    let r = f();
    *ms += thread_cpu().saturating_sub(t).as_millis() as u64;
    r
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
            Planned {
                size: record.object_size,
                etag: record.object_etag.as_deref(),
            },
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
    let error = JobError::new(
        "query_stalled",
        "The query made no progress for 2 hours and was stopped. Ask it again.",
    );
    crate::pipeline::ranged::fail_if_stalled(queries, objects, q, QUERY_STALLED_AFTER, error).await
}
