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

/// Where a page of a user's job list ends: the owner index's key of the last job returned.
/// Callers turn it into an opaque cursor and back; [`JobStore::list_page`] checks it belongs to
/// the owner before DynamoDB sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerPageKey {
    pub pk: String,
    pub sk: String,
    pub gsi1pk: String,
    pub gsi1sk: String,
}

impl OwnerPageKey {
    fn to_item(&self) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_string(), s(&self.pk)),
            ("sk".to_string(), s(&self.sk)),
            ("gsi1pk".to_string(), s(&self.gsi1pk)),
            ("gsi1sk".to_string(), s(&self.gsi1sk)),
        ])
    }

    fn from_item(item: &HashMap<String, AttributeValue>) -> Option<Self> {
        let get = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        Some(OwnerPageKey {
            pk: get("pk")?,
            sk: get("sk")?,
            gsi1pk: get("gsi1pk")?,
            gsi1sk: get("gsi1sk")?,
        })
    }

    /// Whether the key is a job key in `owner`'s partition of the index.
    pub fn belongs_to(&self, owner: &str) -> bool {
        self.gsi1pk == format!("OWNER#{owner}")
            && self.sk == "META"
            && self.pk.starts_with("JOB#")
            && self.gsi1sk.ends_with(&self.pk["JOB#".len()..])
    }
}

/// One page of a user's jobs.
#[derive(Debug, Clone)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Where the next page starts; `None` when the index is exhausted.
    pub next: Option<OwnerPageKey>,
}

/// The states a job can be cancelled from (every non-final one).
const ACTIVE: [JobState; 4] = [
    JobState::AwaitingUpload,
    JobState::Queued,
    JobState::Processing,
    JobState::Finalizing,
];

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

    /// A page of `owner`'s jobs, newest first, optionally only those in `state`, starting after
    /// `start`. Reads index pages until `limit` jobs are found or the index is exhausted (the
    /// state filter is applied by DynamoDB after each page is read, so a page may hold fewer).
    pub async fn list_page(
        &self,
        owner: &str,
        state: Option<JobState>,
        limit: usize,
        start: Option<&OwnerPageKey>,
    ) -> Result<JobPage, StoreError> {
        let mut jobs = Vec::new();
        let mut from = start.map(OwnerPageKey::to_item);
        loop {
            let want = limit - jobs.len();
            // With a filter, read more than needed per page: sparse states would otherwise cost
            // one round trip per job.
            let page_limit = if state.is_some() {
                (want * 4).clamp(25, 200)
            } else {
                want
            };
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(OWNER_INDEX)
                .key_condition_expression("gsi1pk = :o")
                .expression_attribute_values(":o", s(format!("OWNER#{owner}")))
                .scan_index_forward(false)
                .limit(page_limit as i32)
                .set_exclusive_start_key(from.take());
            if let Some(st) = state {
                q = q
                    .filter_expression("#state = :st")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":st", s(st.as_str()));
            }
            let out = q
                .send()
                .await
                .map_err(|e| StoreError::service("Query(by_owner)", e))?;
            let items = out.items.unwrap_or_default();
            let more_in_index = out
                .last_evaluated_key
                .as_ref()
                .is_some_and(|k| !k.is_empty());
            let count = items.len();
            for (i, item) in items.into_iter().enumerate() {
                let key = OwnerPageKey::from_item(&item);
                let it: JobItem =
                    serde_dynamo::from_item(item).map_err(|e| StoreError::Malformed {
                        what: "job",
                        detail: e.to_string(),
                    })?;
                jobs.push(it.job);
                if jobs.len() == limit {
                    // Stop after this job; the next page starts after it (its own key is a valid
                    // ExclusiveStartKey), unless nothing can follow it.
                    let next = if i + 1 < count || more_in_index {
                        key
                    } else {
                        None
                    };
                    return Ok(JobPage { jobs, next });
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => from = Some(k),
                _ => return Ok(JobPage { jobs, next: None }),
            }
        }
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

    /// Takes over a job stuck in `finalizing` (its finaliser died): succeeds only if the job is
    /// still `finalizing` with the `updated_at` the caller saw, so one caller wins.
    pub async fn reclaim_finalizing(
        &self,
        id: &str,
        seen_updated_at: &str,
    ) -> Result<bool, StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s("META"))
            .update_expression("SET updated_at = :now")
            .condition_expression("#state = :f AND updated_at = :seen")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":f", s(JobState::Finalizing.as_str()))
            .expression_attribute_values(":seen", s(seen_updated_at))
            .expression_attribute_values(":now", s(now_rfc3339()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::service("UpdateItem(reclaim finalizing)", e)),
        }
    }

    /// Whether a chunk's completion is recorded.
    pub async fn chunk_done(&self, job_id: &str, index: u32) -> Result<bool, StoreError> {
        self.chunk_exists(job_id, index).await
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
        self.transition(id, &ACTIVE, JobState::Failed, vec![("error", err)])
            .await
    }

    /// Any non-final state `-> failed` because chunk `index` failed; the chunk is recorded so the
    /// owner may retry the job. False when the job was already final (a second failing chunk
    /// of a job that failed already: retry re-runs every chunk without a completion record, so
    /// it need not be recorded).
    pub async fn mark_chunk_failed(
        &self,
        id: &str,
        index: u32,
        error: &JobError,
    ) -> Result<bool, StoreError> {
        let err = serde_dynamo::to_attribute_value(error).map_err(|e| StoreError::Malformed {
            what: "error",
            detail: e.to_string(),
        })?;
        self.transition(
            id,
            &ACTIVE,
            JobState::Failed,
            vec![
                ("error", err),
                ("failed_chunks", AttributeValue::L(vec![n(index)])),
            ],
        )
        .await
    }

    /// Any non-final state `-> cancelled`. False when the job was already final.
    pub async fn mark_cancelled(&self, id: &str) -> Result<bool, StoreError> {
        self.transition(id, &ACTIVE, JobState::Cancelled, vec![])
            .await
    }

    /// `failed -> processing` for a retry by the owner: only a job that failed because of
    /// chunks (`failed_chunks` non-empty). Clears the error and the failed chunks and counts the
    /// retry, in one conditional write; exactly one of two concurrent retries wins.
    pub async fn mark_retrying(&self, id: &str) -> Result<bool, StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s("META"))
            .update_expression(
                "SET #state = :to, updated_at = :now, retries = if_not_exists(retries, :zero) + :one \
                 REMOVE #error, failed_chunks",
            )
            .condition_expression(
                "attribute_exists(pk) AND #state = :failed AND size(failed_chunks) > :zero",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":to", s(JobState::Processing.as_str()))
            .expression_attribute_values(":failed", s(JobState::Failed.as_str()))
            .expression_attribute_values(":now", s(now_rfc3339()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::service("UpdateItem(job retry)", e)),
        }
    }

    /// Notes that the client's multipart upload was completed in S3 (the job stays
    /// `awaiting_upload` until the planner sees the object). False if the job moved on already.
    pub async fn mark_upload_completed(&self, id: &str) -> Result<bool, StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s("META"))
            .update_expression("SET upload_completed = :t, updated_at = :now")
            .condition_expression("attribute_exists(pk) AND #state = :awaiting")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":awaiting", s(JobState::AwaitingUpload.as_str()))
            .expression_attribute_values(":now", s(now_rfc3339()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::service("UpdateItem(upload completed)", e)),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_keys_belong_to_their_owner_only() {
        let k = OwnerPageKey {
            pk: "JOB#j1".into(),
            sk: "META".into(),
            gsi1pk: "OWNER#alice".into(),
            gsi1sk: "2026-11-26T08:00:00.000Z#j1".into(),
        };
        assert!(k.belongs_to("alice"));
        assert!(!k.belongs_to("bob"));
        let item = k.to_item();
        assert_eq!(OwnerPageKey::from_item(&item), Some(k.clone()));
        let chunk = OwnerPageKey {
            sk: "CHUNK#000001".into(),
            ..k
        };
        assert!(!chunk.belongs_to("alice"));
    }
}
