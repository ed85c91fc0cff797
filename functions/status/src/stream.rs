//! The jobs table's DynamoDB stream -> pushes to the WebSocket connections subscribed to each
//! changed job.
//!
//! Coalescing rule (docs/websocket.md):
//! - job items (`sk = META`) and the job's shard counters (`pk = JOB#<id>#S<k>`, `sk = COUNTER`,
//!   one per 16th of the chunks: progress) count; chunk, subscription, connection and push-slot
//!   items in the same table are ignored, as are removals;
//! - query records (`sk = QUERY#<id>`, not their range items) are pushed to the job's
//!   subscribers as `query.progress` / `query.completed` / `query.failed` with the query's id,
//!   state and progress (the answer itself is read with `GET status_url`): a change of state
//!   always, progress within a state at most once per [`PUSH_INTERVAL_MS`] per job;
//! - agent messages (`pk = SESSION#<id>`, `sk = MSG#<n>`) are pushed to their job's subscribers
//!   on every change of state: `message.answer` once answered or failed (with the answer or
//!   error), `message.progress` before (with the tool calls made so far);
//! - within one batch only the latest change of each job is pushed (a counter change carries no
//!   job: the snapshot is read — job item plus the 16 counters summed — only when a push is
//!   actually sent);
//! - a change of state (compared with the job's state before the batch) and every final state
//!   (`completed`, `failed`, `cancelled`) are always pushed;
//! - otherwise (`job.progress` within one state) at most one push per job per
//!   [`PUSH_INTERVAL_MS`], claimed with a conditional write in the table (`sk = PUSH`), so the
//!   limit holds however many status instances run. A skipped progress image is not sent later:
//!   the next change, or the final state, carries the newer numbers.

use std::collections::HashMap;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tessera_shared::agent::session::{ChatMessage, MessageState};
use tessera_shared::job::{Job, JobState};
use tessera_shared::query::{is_query_id, QueryJob};
use tessera_shared::ranged::RangedState;
use tessera_shared::store::jobs::{job_of_shard_pk, JobRecord, COUNTER_SK};

use crate::ws::{job_message, WsState};
use tessera_shared::push::{fan_out, may_push};

/// At most one `job.progress` per job per this many milliseconds.
pub const PUSH_INTERVAL_MS: i64 = 250;

#[derive(Deserialize)]
struct Keys {
    pk: String,
    sk: String,
}

/// The state of an item image, whatever else it holds.
#[derive(Deserialize)]
struct StateOnly<S> {
    state: Option<S>,
}

/// The state an item had before this change (`None`: new, or it had none).
fn state_before<S: DeserializeOwned>(r: &EventRecord) -> Option<S> {
    serde_dynamo::from_item::<_, StateOnly<S>>(r.change.old_image.clone())
        .ok()
        .and_then(|s| s.state)
}

/// The item after this change as a `what`; `None` (logged with `key`) when it is not one.
fn new_image<T: DeserializeOwned>(r: &EventRecord, key: &str, what: &str) -> Option<T> {
    match serde_dynamo::from_item(r.change.new_image.clone()) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(key, error = %e, "stream image is not a {what}: ignored");
            None
        }
    }
}

/// The latest change of one job in a batch.
#[derive(Debug)]
pub struct JobChange {
    pub job_id: String,
    /// The job's latest image in the batch; `None` when only its shard counters changed
    /// (progress), in which case the job is read if a push is sent.
    pub job: Option<Job>,
    /// The job's state before the first change of the batch (`None`: created in this batch, or
    /// only counters changed).
    pub state_before: Option<JobState>,
    /// Sequence number of the latest record (reported if pushing fails).
    pub sequence: Option<String>,
}

impl JobChange {
    /// Whether this change is pushed regardless of the interval (a counter change never is).
    pub fn always_pushed(&self) -> bool {
        self.job
            .as_ref()
            .is_some_and(|j| j.state.is_final() || self.state_before != Some(j.state))
    }
}

/// The latest change of one query record in a batch.
#[derive(Debug)]
pub struct QueryChange {
    pub query: QueryJob,
    pub state_before: Option<RangedState>,
    pub sequence: Option<String>,
}

/// The query record a stream record carries, with its state before (`None` for other items).
fn query_change_of(r: &EventRecord) -> Option<QueryChange> {
    let keys: Keys = serde_dynamo::from_item(r.change.keys.clone()).ok()?;
    let id = keys.sk.strip_prefix("QUERY#")?;
    if !keys.pk.starts_with("JOB#") || !is_query_id(id) || r.change.new_image.is_empty() {
        return None;
    }
    let query: QueryJob = new_image(r, &keys.sk, "query")?;
    Some(QueryChange {
        query,
        state_before: state_before(r),
        sequence: r.change.sequence_number.clone(),
    })
}

/// The latest change per query record, in order of first appearance (pure: no I/O).
pub fn coalesce_queries(records: &[EventRecord]) -> Vec<QueryChange> {
    let mut out: Vec<QueryChange> = Vec::new();
    for r in records {
        let Some(c) = query_change_of(r) else {
            continue;
        };
        match out
            .iter_mut()
            .find(|o| o.query.job_id == c.query.job_id && o.query.id == c.query.id)
        {
            Some(o) => {
                o.query = c.query;
                o.sequence = c.sequence;
            }
            None => out.push(c),
        }
    }
    out
}

/// The agent message a stream record carries, when its state changed.
fn message_change_of(r: &EventRecord) -> Option<(ChatMessage, Option<String>)> {
    let keys: Keys = serde_dynamo::from_item(r.change.keys.clone()).ok()?;
    if !keys.pk.starts_with("SESSION#") || !keys.sk.starts_with("MSG#") {
        return None;
    }
    let m: ChatMessage = serde_dynamo::from_item(r.change.new_image.clone()).ok()?;
    let before: Option<MessageState> = state_before(r);
    (before != Some(m.state)).then_some((m, r.change.sequence_number.clone()))
}

/// `{"type": "message.answer" | "message.progress", "job_id", "session_id", "message": {...}}`.
pub fn message_push(m: &ChatMessage) -> String {
    let kind = if m.state.is_final() {
        "message.answer"
    } else {
        "message.progress"
    };
    serde_json::json!({
        "type": kind,
        "job_id": m.job_id,
        "session_id": m.session_id,
        "message": {
            "message_id": m.number,
            "state": m.state,
            "tool_calls": m.steps.iter().map(|s| serde_json::json!({"tool": s.tool, "status": s.status})).collect::<Vec<_>>(),
            "answer": m.answer,
            "error": m.error,
        },
        "status_url": format!("/v1/sessions/{}", m.session_id),
    })
    .to_string()
}

/// `{"type": "query.*", "job_id", "query": {query_id, state, progress, error?}}`.
pub fn query_message(q: &QueryJob) -> String {
    let kind = match q.state {
        RangedState::Completed => "query.completed",
        RangedState::Failed => "query.failed",
        _ => "query.progress",
    };
    serde_json::json!({
        "type": kind,
        "job_id": q.job_id,
        "query": {
            "query_id": q.id,
            "state": q.state.public(),
            "status_url": q.status_url(),
            "progress": q.progress(),
            "error": q.error,
        }
    })
    .to_string()
}

/// What one stream record says about a job.
enum Change {
    /// The job item changed: its new image and its state before.
    Job(Box<Job>, Option<JobState>),
    /// One of the job's shard counters changed (a chunk completed).
    Counter(String),
}

fn change_of(r: &EventRecord) -> Option<Change> {
    let keys: Keys = serde_dynamo::from_item(r.change.keys.clone()).ok()?;
    if r.change.new_image.is_empty() {
        return None;
    }
    if keys.sk == COUNTER_SK {
        return job_of_shard_pk(&keys.pk).map(|id| Change::Counter(id.to_string()));
    }
    if !keys.pk.starts_with("JOB#") || keys.sk != "META" {
        return None;
    }
    let record: JobRecord = new_image(r, &keys.pk, "job")?;
    let job = match Job::try_from(record) {
        Ok(j) => j,
        Err(e) => {
            tracing::warn!(pk = %keys.pk, error = %e, "stream image is not a job: ignored");
            return None;
        }
    };
    Some(Change::Job(Box::new(job), state_before::<JobState>(r)))
}

/// The latest change per job, in order of first appearance (pure: no I/O). A job item image
/// wins over counter changes of the same batch (it is read again, with the counters, when
/// pushed); the state before is the one before the batch's first job item change.
pub fn coalesce(records: &[EventRecord]) -> Vec<JobChange> {
    let mut order: Vec<String> = Vec::new();
    let mut latest: HashMap<String, JobChange> = HashMap::new();
    for r in records {
        let Some(change) = change_of(r) else {
            continue;
        };
        let seq = r.change.sequence_number.clone();
        let (id, job, before) = match change {
            Change::Job(job, before) => (job.id.clone(), Some(*job), before),
            Change::Counter(id) => (id, None, None),
        };
        match latest.get_mut(&id) {
            Some(c) => {
                if let Some(job) = job {
                    if c.job.is_none() {
                        c.state_before = before;
                    }
                    c.job = Some(job);
                }
                c.sequence = seq;
            }
            None => {
                order.push(id.clone());
                latest.insert(
                    id.clone(),
                    JobChange {
                        job_id: id,
                        job,
                        state_before: before,
                        sequence: seq,
                    },
                );
            }
        }
    }
    order
        .into_iter()
        .filter_map(|id| latest.remove(&id))
        .collect()
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Handles one batch of stream records. A job whose push could not be attempted (a DynamoDB
/// error) is reported as a batch item failure, so Lambda retries from that record.
pub async fn handle(st: &WsState, ev: Event) -> DynamoDbEventResponse {
    let mut resp = DynamoDbEventResponse::default();
    for change in coalesce(&ev.records) {
        let span = tracing::info_span!(
            "push",
            job_id = %change.job_id,
            state = change.job.as_ref().map_or("progress", |j| j.state.as_str())
        );
        let _g = span.enter();
        if let Err(e) = push(st, &change).await {
            tracing::error!(error = %e, "push failed");
            let mut f = DynamoDbBatchItemFailure::default();
            f.item_identifier = change.sequence.clone();
            resp.batch_item_failures.push(f);
        }
    }
    for change in coalesce_queries(&ev.records) {
        let span = tracing::info_span!("push_query", job_id = %change.query.job_id, query_id = %change.query.id);
        let _g = span.enter();
        if let Err(e) = push_query(st, &change).await {
            tracing::error!(error = %e, "query push failed");
            let mut f = DynamoDbBatchItemFailure::default();
            f.item_identifier = change.sequence.clone();
            resp.batch_item_failures.push(f);
        }
    }
    for r in &ev.records {
        let Some((m, seq)) = message_change_of(r) else {
            continue;
        };
        if let Err(e) = push_message(st, &m).await {
            tracing::error!(error = %e, session_id = %m.session_id, "message push failed");
            let mut f = DynamoDbBatchItemFailure::default();
            f.item_identifier = seq;
            resp.batch_item_failures.push(f);
        }
    }
    resp
}

async fn push_message(
    st: &WsState,
    m: &ChatMessage,
) -> Result<(), tessera_shared::store::StoreError> {
    // Subscribers of a job are its owner's connections; the session is the owner's too.
    let subscribers = st.connections.subscribers(&m.job_id).await?;
    fan_out(
        &st.connections,
        &st.notifier,
        &m.job_id,
        &subscribers,
        &message_push(m),
    )
    .await
}

async fn push_query(
    st: &WsState,
    change: &QueryChange,
) -> Result<(), tessera_shared::store::StoreError> {
    let q = &change.query;
    let subscribers = st.connections.subscribers(&q.job_id).await?;
    if subscribers.is_empty() {
        return Ok(());
    }
    let state_changed = change.state_before != Some(q.state);
    if !may_push(
        &st.connections,
        &q.job_id,
        state_changed,
        now_ms(),
        PUSH_INTERVAL_MS,
    )
    .await?
    {
        return Ok(());
    }
    // A query is its owner's, like the job: subscribers of a job are its owner's connections
    // (subscribe checks the owner).
    let text = query_message(q);
    fan_out(
        &st.connections,
        &st.notifier,
        &q.job_id,
        &subscribers,
        &text,
    )
    .await
}

async fn push(st: &WsState, change: &JobChange) -> Result<(), tessera_shared::store::StoreError> {
    let job_id = &change.job_id;
    let subscribers = st.connections.subscribers(job_id).await?;
    if subscribers.is_empty() {
        return Ok(());
    }
    if !may_push(
        &st.connections,
        job_id,
        change.always_pushed(),
        now_ms(),
        PUSH_INTERVAL_MS,
    )
    .await?
    {
        tracing::debug!("progress coalesced");
        return Ok(());
    }
    let job = match &change.job {
        Some(job) => job.clone(),
        // Only counters changed: the job as it is now. Counters of a job that is no longer
        // counting (a late stream record after `finalizing` or a final state, whose own change
        // is pushed from the job item's record) add nothing: not pushed again.
        None => match st.jobs.get(job_id).await? {
            Some(job) if matches!(job.state, JobState::Queued | JobState::Processing) => job,
            _ => return Ok(()),
        },
    };
    let job = st.jobs.with_progress(job).await?;
    let text = job_message(&job.snapshot());
    fan_out(&st.connections, &st.notifier, job_id, &subscribers, &text).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job image's timestamps (any RFC 3339 moment).
    const T: &str = "2026-12-03T10:00:00.000Z";

    /// A MODIFY stream record around `dynamodb` (keys, images, sequence number).
    fn event(dynamodb: serde_json::Value, seq: u32) -> EventRecord {
        serde_json::from_value(serde_json::json!({
            "eventID": seq.to_string(), "eventName": "MODIFY", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": dynamodb
        }))
        .unwrap()
    }

    fn record(
        sk: &str,
        state: &str,
        old_state: Option<&str>,
        chunks: u32,
        seq: u32,
    ) -> EventRecord {
        record_at("JOB#j1", sk, state, old_state, chunks, seq)
    }

    fn record_at(
        pk: &str,
        sk: &str,
        state: &str,
        old_state: Option<&str>,
        chunks: u32,
        seq: u32,
    ) -> EventRecord {
        let img = |state: &str| {
            serde_json::json!({
                "pk": {"S": pk}, "sk": {"S": sk}, "id": {"S": "j1"}, "owner": {"S": "a"},
                "state": {"S": state}, "filename": {"S": "a.csv"}, "content_type": {"S": "text/csv"},
                "declared_size": {"N": "10"}, "source_key": {"S": "k"},
                "created_at": {"S": T}, "updated_at": {"S": T}, "dialect": {"NULL": true},
                "columns": {"L": []}, "header_len": {"N": "0"}, "chunk_size": {"N": "1"},
                "chunk_count": {"N": "4"}, "chunks_done": {"N": chunks.to_string()},
                "bytes_done": {"N": "0"}, "rows": {"N": "0"}, "rejected_rows": {"N": "0"},
                "error": {"NULL": true}, "results": {"M": {}}, "expires_at": {"N": "1"}
            })
        };
        let mut dynamodb = serde_json::json!({
            "Keys": {"pk": {"S": pk}, "sk": {"S": sk}},
            "NewImage": img(state),
            "SequenceNumber": seq.to_string(),
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        });
        if let Some(o) = old_state {
            dynamodb["OldImage"] = img(o);
        }
        event(dynamodb, seq)
    }

    #[test]
    fn only_the_latest_job_image_of_a_batch_counts() {
        let recs = vec![
            record("META", "processing", Some("processing"), 1, 1),
            record("CHUNK#000001", "processing", None, 0, 2),
            record("META", "processing", Some("processing"), 2, 3),
            record("SUB#c1", "processing", None, 0, 4),
        ];
        let changes = coalesce(&recs);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].job.as_ref().unwrap().chunks_done, 2);
        assert_eq!(changes[0].sequence.as_deref(), Some("3"));
        assert!(!changes[0].always_pushed(), "progress within one state");
    }

    #[test]
    fn state_changes_and_final_states_are_always_pushed() {
        let c = coalesce(&[
            record("META", "processing", Some("queued"), 0, 1),
            record("META", "processing", Some("processing"), 1, 2),
        ]);
        assert!(
            c[0].always_pushed(),
            "queued -> processing within the batch"
        );
        let c = coalesce(&[record("META", "completed", Some("finalizing"), 4, 1)]);
        assert!(c[0].always_pushed());
    }

    #[test]
    fn shard_counter_changes_are_progress_of_their_job() {
        // Chunk items on shard partitions are not changes; counters are, coalesced per job.
        let recs = vec![
            record_at("JOB#j1#S3", "CHUNK#000003", "processing", None, 0, 1),
            record_at("JOB#j1#S3", "COUNTER", "processing", None, 0, 2),
            record_at("JOB#j1#S4", "COUNTER", "processing", None, 0, 3),
            record_at("JOB#j2#S0", "COUNTER", "processing", None, 0, 4),
            record_at("JOB#j1#S99", "COUNTER", "processing", None, 0, 5),
        ];
        let c = coalesce(&recs);
        let ids: Vec<&str> = c.iter().map(|c| c.job_id.as_str()).collect();
        assert_eq!(ids, ["j1", "j2"]);
        assert!(
            c[0].job.is_none() && !c[0].always_pushed(),
            "counters are progress"
        );
        assert_eq!(c[0].sequence.as_deref(), Some("3"));

        // A job item change in the same batch carries the state rule; counters do not undo it.
        let c = coalesce(&[
            record_at("JOB#j1#S1", "COUNTER", "processing", None, 0, 1),
            record("META", "finalizing", Some("processing"), 0, 2),
            record_at("JOB#j1#S2", "COUNTER", "processing", None, 0, 3),
        ]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].job.as_ref().unwrap().state, JobState::Finalizing);
        assert_eq!(c[0].state_before, Some(JobState::Processing));
        assert!(c[0].always_pushed(), "processing -> finalizing");
        assert_eq!(c[0].sequence.as_deref(), Some("3"));
    }

    fn query_record(sk: &str, state: &str, old: Option<&str>, done: u32, seq: u32) -> EventRecord {
        let img = |state: &str| {
            let mut q = serde_json::json!({
                "pk": "JOB#j1", "sk": sk, "id": "0123456789abcdef0123456789abcdef",
                "job_id": "j1", "owner": "a", "state": state, "mode": "job",
                "document": "{}", "object_key": "k", "object_size": 100, "header_len": 4,
                "dialect": {"delimiter": 44, "quote": 34, "has_header": true, "line_ending": "lf", "bom": false},
                "schema": {"columns": [], "types": []}, "range_size": 10, "range_count": 4,
                "ranges_done": done, "result_key": "r", "csv_key": "c",
                "created_at": "t", "updated_at": "t", "expires_at": 1
            });
            q["bytes_done"] = serde_json::json!(done * 25);
            serde_dynamo::to_item::<_, serde_dynamo::Item>(q).unwrap()
        };
        let mut dynamodb = serde_json::json!({
            "Keys": {"pk": {"S": "JOB#j1"}, "sk": {"S": sk}},
            "NewImage": serde_json::to_value(img(state)).unwrap(),
            "SequenceNumber": seq.to_string(),
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        });
        if let Some(o) = old {
            dynamodb["OldImage"] = serde_json::to_value(img(o)).unwrap();
        }
        event(dynamodb, seq)
    }

    #[test]
    fn query_records_are_pushed_and_their_ranges_are_not() {
        let q = "QUERY#0123456789abcdef0123456789abcdef";
        let records = [
            query_record(q, "running", Some("queued"), 1, 1),
            query_record(&format!("{q}#R000001"), "running", None, 1, 2),
            query_record(&format!("{q}#1#R000002"), "running", None, 1, 3),
            query_record(q, "completed", Some("stitching"), 4, 4),
            record("META", "processing", Some("queued"), 1, 5),
        ];
        let changes = coalesce_queries(&records);
        assert_eq!(changes.len(), 1);
        let c = &changes[0];
        assert_eq!(c.query.state, RangedState::Completed);
        assert_eq!(c.query.ranges_done, 4);
        assert_eq!(c.sequence.as_deref(), Some("4"));
        let msg: serde_json::Value = serde_json::from_str(&query_message(&c.query)).unwrap();
        assert_eq!(msg["type"], "query.completed");
        assert_eq!(msg["job_id"], "j1");
        assert_eq!(msg["query"]["progress"]["ranges_done"], 4);
        // Job pushes are unchanged by query records.
        assert_eq!(coalesce(&records).len(), 1);
    }
}
