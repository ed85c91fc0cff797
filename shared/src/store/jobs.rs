//! The jobs table (DynamoDB). One table, access patterns first:
//!
//! | access pattern                         | key                                             |
//! |----------------------------------------|-------------------------------------------------|
//! | get a job                              | `pk = JOB#<id>`, `sk = META`                    |
//! | chunks of a job (completion records)   | `pk = JOB#<id>`, `sk begins_with CHUNK#`        |
//! | a user's jobs, newest first            | GSI `by_owner`: `gsi1pk = OWNER#<sub>`, `gsi1sk = <created_at>#<id>` |
//!
//! Every state change is a conditional write, so states only move forward and a final state
//! never changes. A chunk's completion is one transaction: the chunk item is created only if
//! absent and the job's counters are added in the same write, so a redelivered chunk message
//! cannot count twice.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::job::{now_rfc3339, Job, JobError, JobState, ResultKeys};

/// Name of the owner index (also in template.yaml and the local provisioning).
pub const OWNER_INDEX: &str = "by_owner";

fn job_pk(id: &str) -> String {
    format!("JOB#{id}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

#[derive(Serialize, Deserialize)]
struct JobItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    #[serde(flatten)]
    job: Job,
}

/// One chunk's completion record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRecord {
    pub index: u32,
    pub rows: u64,
    pub rejected_rows: u64,
    pub bytes: u64,
    /// Key of the chunk's full result (profile state, parity facts) in S3.
    pub result_key: String,
    pub completed_at: String,
}

#[derive(Serialize, Deserialize)]
struct ChunkItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    chunk: ChunkRecord,
    expires_at: i64,
}

/// Outcome of recording a chunk's completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkCommit {
    /// This call recorded it and added the counters.
    Committed,
    /// The chunk was recorded before (a redelivered message): nothing changed.
    AlreadyDone,
    /// The job is no longer accepting chunks (failed, cancelled, or already finalised).
    JobNotActive,
}

/// Facts the planner learned, written with the move to `queued`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub dialect: serde_json::Value,
    pub columns: Vec<String>,
    pub header_len: u64,
    pub chunk_size: u64,
    pub chunk_count: u32,
}

/// Final totals, written with the move to `completed`.
#[derive(Debug, Clone)]
pub struct Totals {
    pub rows: u64,
    pub rejected_rows: u64,
    pub bytes: u64,
}

/// The jobs table adapter.
#[derive(Clone, Debug)]
pub struct JobStore {
    client: Client,
    table: String,
}

impl JobStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        JobStore {
            client,
            table: table.into(),
        }
    }

    /// Creates a job; fails if the id exists.
    pub async fn create(&self, job: &Job) -> Result<(), StoreError> {
        let item = JobItem {
            pk: job_pk(&job.id),
            sk: "META".into(),
            gsi1pk: format!("OWNER#{}", job.owner),
            gsi1sk: format!("{}#{}", job.created_at, job.id),
            job: job.clone(),
        };
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(item).map_err(|e| StoreError::Malformed {
                what: "job",
                detail: e.to_string(),
            })?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| StoreError::service("PutItem(job)", e))?;
        Ok(())
    }

    /// Reads a job (strongly consistent).
    pub async fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s("META"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::service("GetItem(job)", e))?;
        match out.item {
            None => Ok(None),
            Some(item) => {
                let it: JobItem =
                    serde_dynamo::from_item(item).map_err(|e| StoreError::Malformed {
                        what: "job",
                        detail: e.to_string(),
                    })?;
                Ok(Some(it.job))
            }
        }
    }

    /// A user's jobs, newest first, at most `limit`.
    pub async fn list_for_owner(&self, owner: &str, limit: i32) -> Result<Vec<Job>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OWNER_INDEX)
            .key_condition_expression("gsi1pk = :o")
            .expression_attribute_values(":o", s(format!("OWNER#{owner}")))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::service("Query(by_owner)", e))?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|i| {
                serde_dynamo::from_item::<_, JobItem>(i)
                    .map(|it| it.job)
                    .map_err(|e| StoreError::Malformed {
                        what: "job",
                        detail: e.to_string(),
                    })
            })
            .collect()
    }

    /// Moves a job from one of `from` to `to`, setting extra attributes in the same write.
    /// Returns false (and changes nothing) when the job is not in one of `from`.
    async fn transition(
        &self,
        id: &str,
        from: &[JobState],
        to: JobState,
        extra: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let mut set = vec!["#state = :to".to_string(), "updated_at = :now".to_string()];
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s("META"))
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":now", s(now_rfc3339()));
        for (i, (name, value)) in extra.into_iter().enumerate() {
            set.push(format!("#x{i} = :x{i}"));
            req = req
                .expression_attribute_names(format!("#x{i}"), name)
                .expression_attribute_values(format!(":x{i}"), value);
        }
        let mut conds = Vec::new();
        for (i, st) in from.iter().enumerate() {
            conds.push(format!(":f{i}"));
            req = req.expression_attribute_values(format!(":f{i}"), s(st.as_str()));
        }
        let res = req
            .update_expression(format!("SET {}", set.join(", ")))
            .condition_expression(format!(
                "attribute_exists(pk) AND #state IN ({})",
                conds.join(", ")
            ))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::service("UpdateItem(job state)", e)),
        }
    }

    /// `awaiting_upload -> queued` with the planner's facts. False if the job was already planned.
    pub async fn mark_planned(&self, id: &str, plan: &Plan) -> Result<bool, StoreError> {
        let dialect =
            serde_dynamo::to_attribute_value(&plan.dialect).map_err(|e| StoreError::Malformed {
                what: "dialect",
                detail: e.to_string(),
            })?;
        let columns =
            serde_dynamo::to_attribute_value(&plan.columns).map_err(|e| StoreError::Malformed {
                what: "columns",
                detail: e.to_string(),
            })?;
        self.transition(
            id,
            &[JobState::AwaitingUpload],
            JobState::Queued,
            vec![
                ("dialect", dialect),
                ("columns", columns),
                ("header_len", n(plan.header_len)),
                ("chunk_size", n(plan.chunk_size)),
                ("chunk_count", n(plan.chunk_count)),
            ],
        )
        .await
    }

    /// `queued -> processing` once every chunk task is enqueued.
    pub async fn mark_processing(&self, id: &str) -> Result<bool, StoreError> {
        self.transition(id, &[JobState::Queued], JobState::Processing, vec![])
            .await
    }

    /// `processing -> finalizing`; exactly one caller wins.
    pub async fn mark_finalizing(&self, id: &str) -> Result<bool, StoreError> {
        self.transition(id, &[JobState::Processing], JobState::Finalizing, vec![])
            .await
    }

    /// `finalizing` (or `queued` for a job with no chunks) `-> completed` with exact totals.
    pub async fn mark_completed(
        &self,
        id: &str,
        totals: &Totals,
        results: &ResultKeys,
    ) -> Result<bool, StoreError> {
        let results =
            serde_dynamo::to_attribute_value(results).map_err(|e| StoreError::Malformed {
                what: "results",
                detail: e.to_string(),
            })?;
        self.transition(
            id,
            &[JobState::Finalizing, JobState::Queued],
            JobState::Completed,
            vec![
                ("rows", n(totals.rows)),
                ("rejected_rows", n(totals.rejected_rows)),
                ("bytes_done", n(totals.bytes)),
                ("results", results),
            ],
        )
        .await
    }

    /// Any non-final state `-> failed` with a safe, coded error.
    pub async fn mark_failed(&self, id: &str, error: &JobError) -> Result<bool, StoreError> {
        let err = serde_dynamo::to_attribute_value(error).map_err(|e| StoreError::Malformed {
            what: "error",
            detail: e.to_string(),
        })?;
        self.transition(
            id,
            &[
                JobState::AwaitingUpload,
                JobState::Queued,
                JobState::Processing,
                JobState::Finalizing,
            ],
            JobState::Failed,
            vec![("error", err)],
        )
        .await
    }

    /// Records a chunk's completion and adds its counters to the job, once.
    pub async fn complete_chunk(
        &self,
        job_id: &str,
        chunk: &ChunkRecord,
        expires_at: i64,
    ) -> Result<ChunkCommit, StoreError> {
        let item = ChunkItem {
            pk: job_pk(job_id),
            sk: format!("CHUNK#{:06}", chunk.index),
            chunk: chunk.clone(),
            expires_at,
        };
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(item).map_err(|e| StoreError::Malformed {
                what: "chunk",
                detail: e.to_string(),
            })?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::service("Put(chunk) builder", e))?;
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(job_pk(job_id)))
            .key("sk", s("META"))
            .update_expression("ADD chunks_done :one, #rows :rows, rejected_rows :rej, bytes_done :bytes SET updated_at = :now")
            .condition_expression("#state IN (:q, :p)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#rows", "rows")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":rows", n(chunk.rows))
            .expression_attribute_values(":rej", n(chunk.rejected_rows))
            .expression_attribute_values(":bytes", n(chunk.bytes))
            .expression_attribute_values(":now", s(now_rfc3339()))
            .expression_attribute_values(":q", s(JobState::Queued.as_str()))
            .expression_attribute_values(":p", s(JobState::Processing.as_str()))
            .build()
            .map_err(|e| StoreError::service("Update(job counters) builder", e))?;
        let res = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(update).build())
            .send()
            .await;
        match res {
            Ok(_) => Ok(ChunkCommit::Committed),
            Err(e) => {
                let cancelled = e
                    .as_service_error()
                    .map(|se| se.is_transaction_canceled_exception())
                    .unwrap_or(false);
                if !cancelled {
                    return Err(StoreError::service("TransactWriteItems(chunk)", e));
                }
                // Which condition failed? Read back rather than rely on reason ordering.
                if self.chunk_exists(job_id, chunk.index).await? {
                    Ok(ChunkCommit::AlreadyDone)
                } else {
                    Ok(ChunkCommit::JobNotActive)
                }
            }
        }
    }

    async fn chunk_exists(&self, job_id: &str, index: u32) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(job_id)))
            .key("sk", s(format!("CHUNK#{index:06}")))
            .consistent_read(true)
            .projection_expression("pk")
            .send()
            .await
            .map_err(|e| StoreError::service("GetItem(chunk)", e))?;
        Ok(out.item.is_some())
    }

    /// All completion records of a job, in chunk order.
    pub async fn chunks(&self, job_id: &str) -> Result<Vec<ChunkRecord>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :c)")
                .expression_attribute_values(":pk", s(job_pk(job_id)))
                .expression_attribute_values(":c", s("CHUNK#"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::service("Query(chunks)", e))?;
            for item in page.items.unwrap_or_default() {
                let it: ChunkItem =
                    serde_dynamo::from_item(item).map_err(|e| StoreError::Malformed {
                        what: "chunk",
                        detail: e.to_string(),
                    })?;
                out.push(it.chunk);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by_key(|c| c.index);
        Ok(out)
    }
}

fn is_conditional_failure<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|se| se.code())
        .map(|c| c == "ConditionalCheckFailedException")
        .unwrap_or(false)
}
