//! The jobs table's DynamoDB stream -> pushes to the WebSocket connections subscribed to each
//! changed job.
//!
//! Coalescing rule (docs/websocket.md):
//! - only job items (`sk = META`) count; chunk, subscription, connection and push-slot items in
//!   the same table are ignored, as are removals;
//! - within one batch only the latest image of each job is pushed;
//! - a change of state (compared with the job's state before the batch) and every final state
//!   (`completed`, `failed`, `cancelled`) are always pushed;
//! - otherwise (`job.progress` within one state) at most one push per job per
//!   [`PUSH_INTERVAL_MS`], claimed with a conditional write in the table (`sk = PUSH`), so the
//!   limit holds however many status instances run. A skipped progress image is not sent later:
//!   the next change, or the final state, carries the newer numbers.

use std::collections::HashMap;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde::Deserialize;
use tessera_shared::job::{Job, JobState};

use crate::notify::Delivery;
use crate::ws::{job_message, WsState};

/// At most one `job.progress` per job per this many milliseconds.
pub const PUSH_INTERVAL_MS: i64 = 250;

#[derive(Deserialize)]
struct Keys {
    pk: String,
    sk: String,
}

#[derive(Deserialize)]
struct StateOnly {
    state: Option<JobState>,
}

/// The latest change of one job in a batch.
#[derive(Debug)]
pub struct JobChange {
    pub job: Job,
    /// The job's state before the first change of the batch (`None`: created in this batch).
    pub state_before: Option<JobState>,
    /// Sequence number of the latest record (reported if pushing fails).
    pub sequence: Option<String>,
}

impl JobChange {
    /// Whether this change is pushed regardless of the interval.
    pub fn always_pushed(&self) -> bool {
        self.job.state.is_final() || self.state_before != Some(self.job.state)
    }
}

fn job_change(r: &EventRecord) -> Option<(Job, Option<JobState>)> {
    let keys: Keys = serde_dynamo::from_item(r.change.keys.clone()).ok()?;
    if !keys.pk.starts_with("JOB#") || keys.sk != "META" || r.change.new_image.is_empty() {
        return None;
    }
    let job: Job = match serde_dynamo::from_item(r.change.new_image.clone()) {
        Ok(j) => j,
        Err(e) => {
            tracing::warn!(pk = %keys.pk, error = %e, "stream image is not a job: ignored");
            return None;
        }
    };
    let before = serde_dynamo::from_item::<_, StateOnly>(r.change.old_image.clone())
        .ok()
        .and_then(|s| s.state);
    Some((job, before))
}

/// The latest change per job, in order of first appearance (pure: no I/O).
pub fn coalesce(records: &[EventRecord]) -> Vec<JobChange> {
    let mut order: Vec<String> = Vec::new();
    let mut latest: HashMap<String, JobChange> = HashMap::new();
    for r in records {
        let Some((job, before)) = job_change(r) else {
            continue;
        };
        let seq = r.change.sequence_number.clone();
        match latest.get_mut(&job.id) {
            Some(c) => {
                c.job = job;
                c.sequence = seq;
            }
            None => {
                order.push(job.id.clone());
                latest.insert(
                    job.id.clone(),
                    JobChange {
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
        let job_id = change.job.id.clone();
        let span = tracing::info_span!("push", job_id = %job_id, state = change.job.state.as_str());
        let _g = span.enter();
        if let Err(e) = push(st, &change).await {
            tracing::error!(error = %e, "push failed");
            let mut f = DynamoDbBatchItemFailure::default();
            f.item_identifier = change.sequence.clone();
            resp.batch_item_failures.push(f);
        }
    }
    resp
}

async fn push(st: &WsState, change: &JobChange) -> Result<(), tessera_shared::store::StoreError> {
    let job = &change.job;
    let subscribers = st.connections.subscribers(&job.id).await?;
    if subscribers.is_empty() {
        return Ok(());
    }
    if !change.always_pushed()
        && !st
            .connections
            .claim_push(&job.id, now_ms(), PUSH_INTERVAL_MS)
            .await?
    {
        tracing::debug!("progress coalesced");
        return Ok(());
    }
    let text = job_message(&job.snapshot());
    for conn in subscribers {
        match st.notifier.send(&conn, &text).await {
            Ok(Delivery::Sent) => {}
            Ok(Delivery::Gone) => {
                tracing::info!(connection = %conn, "connection gone: removed");
                st.connections
                    .remove_connection(&conn, Some(&job.id))
                    .await?;
            }
            // One failing connection must not hold back the others (or retry the batch).
            Err(e) => tracing::warn!(connection = %conn, error = %e, "push not delivered"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        sk: &str,
        state: &str,
        old_state: Option<&str>,
        chunks: u32,
        seq: u32,
    ) -> EventRecord {
        let img = |state: &str| {
            serde_json::json!({
                "pk": {"S": "JOB#j1"}, "sk": {"S": sk}, "id": {"S": "j1"}, "owner": {"S": "a"},
                "state": {"S": state}, "filename": {"S": "a.csv"}, "content_type": {"S": "text/csv"},
                "declared_size": {"N": "10"}, "source_key": {"S": "k"},
                "created_at": {"S": "t"}, "updated_at": {"S": "t"}, "dialect": {"NULL": true},
                "columns": {"L": []}, "header_len": {"N": "0"}, "chunk_size": {"N": "1"},
                "chunk_count": {"N": "4"}, "chunks_done": {"N": chunks.to_string()},
                "bytes_done": {"N": "0"}, "rows": {"N": "0"}, "rejected_rows": {"N": "0"},
                "error": {"NULL": true}, "results": {"M": {}}, "expires_at": {"N": "1"}
            })
        };
        let mut dynamodb = serde_json::json!({
            "Keys": {"pk": {"S": "JOB#j1"}, "sk": {"S": sk}},
            "NewImage": img(state),
            "SequenceNumber": seq.to_string(),
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        });
        if let Some(o) = old_state {
            dynamodb["OldImage"] = img(o);
        }
        serde_json::from_value(serde_json::json!({
            "eventID": seq.to_string(), "eventName": "MODIFY", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": dynamodb
        }))
        .unwrap()
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
        assert_eq!(changes[0].job.chunks_done, 2);
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
}
