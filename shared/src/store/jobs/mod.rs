//! The jobs table (DynamoDB). One table, access patterns first:
//!
//! | access pattern                         | key                                             |
//! |----------------------------------------|-------------------------------------------------|
//! | get a job                              | `pk = JOB#<id>`, `sk = META`                    |
//! | chunks of a job (completion records)   | `pk = JOB#<id>#S<k>`, `sk begins_with CHUNK#`, k = 0..16 |
//! | a job's progress counters              | `pk = JOB#<id>#S<k>`, `sk = COUNTER`, k = 0..16 (one BatchGetItem) |
//! | a user's jobs, newest first            | GSI `by_owner`: `gsi1pk = OWNER#<sub>`, `gsi1sk = <created_at>#<id>` |
//!
//! Every state change is a conditional write, so states only move forward and a final state
//! never changes. A chunk's completion is one transaction on the chunk's **shard partition**
//! (`k = index % 16`): the chunk item is created only if absent and the shard's counter is added
//! to in the same write, so a redelivered chunk message cannot count twice, and 2,000 chunks
//! finishing at once spread over 16 partitions instead of one (the arithmetic:
//! docs/websocket.md § *Hot key*). The job item is not written per chunk: its counters are the
//! sum of the shard counters ([`JobStore::with_progress`]) until the finaliser writes the exact
//! totals with `completed`.
//!
//! Whether a job accepts chunks is mirrored into each shard counter (`closed`): every move out
//! of the active states that a chunk may race (failed, cancelled) closes the 16 shards in the
//! same transaction as the job item, and a retry reopens them, so the completion transaction
//! checks the job's state on its own partition and never touches the job item.

use super::{job_pk, n, s};
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::job::{now_rfc3339, Job, JobError, JobState, ResultKeys};
pub use crate::ledger::{ChunkCommit, ChunkRecord, Plan, Progress, Totals, UniqueStep};

/// Name of the owner index (also in template.yaml and the local provisioning).
pub const OWNER_INDEX: &str = "by_owner";

/// Partitions a job's chunk items and progress counters are spread over. 16 carry 2,000
/// completions per second at half of a partition's 1,000 WCU/s (docs/websocket.md § *Hot key*).
pub const COUNTER_SHARDS: u32 = 16;

/// Sort key of a shard's counter item.
pub const COUNTER_SK: &str = "COUNTER";

/// The shard partition of chunk `index`.
pub fn shard_of(index: u32) -> u32 {
    index % COUNTER_SHARDS
}

/// Partition key of shard `k` of job `id`.
pub fn shard_pk(id: &str, k: u32) -> String {
    format!("JOB#{id}#S{k}")
}

/// The job id of a shard partition key (`JOB#<id>#S<k>`), for stream records of counters.
pub fn job_of_shard_pk(pk: &str) -> Option<&str> {
    let rest = pk.strip_prefix("JOB#")?;
    let (id, k) = rest.rsplit_once("#S")?;
    (!id.is_empty() && k.parse::<u32>().is_ok_and(|k| k < COUNTER_SHARDS)).then_some(id)
}

/// How many of `chunk_count` chunks belong to shard `k` (indexes `k, k + 16, k + 32, ...`).
pub fn shard_chunk_count(k: u32, chunk_count: u32) -> u32 {
    chunk_count / COUNTER_SHARDS + u32::from(k < chunk_count % COUNTER_SHARDS)
}

fn chunk_sk(index: u32) -> String {
    format!("CHUNK#{index:06}")
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

#[derive(Serialize, Deserialize)]
struct ChunkItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    chunk: ChunkRecord,
    expires_at: i64,
}

/// The job item's attributes of a `unique` step: its waiting map and its count.
fn unique_attributes(step: UniqueStep) -> (&'static str, &'static str) {
    match step {
        UniqueStep::Search => ("unique_search_waiting", "unique_searches"),
        UniqueStep::Rerun => ("unique_waiting", "unique_reruns"),
    }
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

/// What a job state change does to the job's shard counters.
#[derive(Debug, Clone, Copy)]
enum Shards {
    /// Nothing (moves no chunk can race, or that happen after every chunk completed).
    Keep,
    /// Mark them `closed`: no completion is recorded from then on.
    Close,
    /// Remove the mark (a retry).
    Reopen,
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
        self.transition_with(id, from, to, extra, &[], Shards::Keep)
            .await
    }

    /// [`Self::transition`] plus raw `SET` clauses (e.g. `chunks_done = chunk_count`) and what
    /// to do to the shard counters, atomically with the job item.
    async fn transition_with(
        &self,
        id: &str,
        from: &[JobState],
        to: JobState,
        extra: Vec<(&str, AttributeValue)>,
        raw_sets: &[&str],
        shards: Shards,
    ) -> Result<bool, StoreError> {
        let mut set = vec!["#state = :to".to_string(), "updated_at = :now".to_string()];
        set.extend(raw_sets.iter().map(|r| r.to_string()));
        let mut names = HashMap::from([("#state".to_string(), "state".to_string())]);
        let mut values = HashMap::from([
            (":to".to_string(), s(to.as_str())),
            (":now".to_string(), s(now_rfc3339())),
        ]);
        for (i, (name, value)) in extra.into_iter().enumerate() {
            set.push(format!("#x{i} = :x{i}"));
            names.insert(format!("#x{i}"), name.to_string());
            values.insert(format!(":x{i}"), value);
        }
        let mut conds = Vec::new();
        for (i, st) in from.iter().enumerate() {
            conds.push(format!(":f{i}"));
            values.insert(format!(":f{i}"), s(st.as_str()));
        }
        let update = format!("SET {}", set.join(", "));
        let condition = format!("attribute_exists(pk) AND #state IN ({})", conds.join(", "));
        if let Shards::Keep = shards {
            let res = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(job_pk(id)))
                .key("sk", s("META"))
                .update_expression(update)
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .send()
                .await;
            return super::applied(res, "UpdateItem(job state)");
        }
        let meta = Update::builder()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s("META"))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| StoreError::service("Update(job state) builder", e))?;
        self.with_shards(id, meta, shards).await
    }

    /// Runs `meta` (a conditional update of the job item) in one transaction with an update of
    /// all 16 shard counters: `Close` marks them `closed` (completions are refused from then
    /// on), `Reopen` removes the mark. False when `meta`'s condition failed. A transaction that
    /// lost a race with a chunk's completion on a shard (`TransactionConflict`) is retried.
    async fn with_shards(
        &self,
        id: &str,
        meta: Update,
        shards: Shards,
    ) -> Result<bool, StoreError> {
        // Shard items may not exist yet; those made here expire with the job.
        let expires_at = match self.get(id).await? {
            Some(job) => job.expires_at,
            None => return Ok(false),
        };
        let mut items = vec![TransactWriteItem::builder().update(meta).build()];
        for k in 0..COUNTER_SHARDS {
            let u = Update::builder()
                .table_name(&self.table)
                .key("pk", s(shard_pk(id, k)))
                .key("sk", s(COUNTER_SK));
            let u = match shards {
                Shards::Close => u
                    .update_expression(
                        "SET closed = :t, expires_at = if_not_exists(expires_at, :exp)",
                    )
                    .expression_attribute_values(":t", AttributeValue::Bool(true))
                    .expression_attribute_values(":exp", n(expires_at)),
                Shards::Reopen | Shards::Keep => u.update_expression("REMOVE closed"),
            };
            let u = u
                .build()
                .map_err(|e| StoreError::service("Update(shard) builder", e))?;
            items.push(TransactWriteItem::builder().update(u).build());
        }
        // Only the job item has a condition: a cancellation that is not transient is it failing.
        let cancelled = transact_retrying(
            &self.client,
            &items,
            "TransactWriteItems(job state + shards)",
        )
        .await?;
        Ok(cancelled.is_none())
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
        super::applied(res, "UpdateItem(reclaim finalizing)")
    }

    /// Records the items of a `unique` step of a finalising job (the search groups, or the
    /// chunks to re-run): each must report back ([`unique_step_done`](Self::unique_step_done))
    /// before the job can go on. Exactly one caller wins; false if the step was recorded
    /// already or the job is not finalising.
    pub async fn begin_unique_step(
        &self,
        id: &str,
        step: UniqueStep,
        items: &[u32],
    ) -> Result<bool, StoreError> {
        let (waiting_attr, count_attr) = unique_attributes(step);
        let waiting = AttributeValue::M(
            items
                .iter()
                .map(|c| (c.to_string(), AttributeValue::Bool(true)))
                .collect(),
        );
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s("META"))
            .update_expression("SET #w = :w, #n = :n, updated_at = :now")
            .condition_expression("#state = :f AND attribute_not_exists(#w)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#w", waiting_attr)
            .expression_attribute_names("#n", count_attr)
            .expression_attribute_values(":f", s(JobState::Finalizing.as_str()))
            .expression_attribute_values(":w", waiting)
            .expression_attribute_values(":n", n(items.len()))
            .expression_attribute_values(":now", s(now_rfc3339()))
            .send()
            .await;
        super::applied(res, "UpdateItem(begin unique step)")
    }

    /// Item `index` of a `unique` step is done: takes it out of the waiting set, atomically.
    /// `Some(true)`: it was the last one, so this caller carries the job on (exactly one caller
    /// sees this); `Some(false)`: others are still running; `None`: it was not waiting (a
    /// redelivery of an item that reported already) or the job is no longer finalising.
    pub async fn unique_step_done(
        &self,
        id: &str,
        step: UniqueStep,
        index: u32,
    ) -> Result<Option<bool>, StoreError> {
        let (waiting_attr, _) = unique_attributes(step);
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(job_pk(id)))
            .key("sk", s("META"))
            .update_expression("REMOVE #w.#i SET updated_at = :now")
            .condition_expression("#state = :f AND attribute_exists(#w.#i)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#w", waiting_attr)
            .expression_attribute_names("#i", index.to_string())
            .expression_attribute_values(":f", s(JobState::Finalizing.as_str()))
            .expression_attribute_values(":now", s(now_rfc3339()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => {
                let left = out
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(waiting_attr))
                    .and_then(|w| w.as_m().ok())
                    .map_or(0, |m| m.len());
                Ok(Some(left == 0))
            }
            Err(e) if super::is_conditional_failure(&e) => Ok(None),
            Err(e) => Err(StoreError::service("UpdateItem(unique step done)", e)),
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
        // The job item's counters are exact from here on (the shard counters were progress).
        self.transition_with(
            id,
            &[JobState::Finalizing, JobState::Queued],
            JobState::Completed,
            vec![
                ("rows", n(totals.rows)),
                ("rejected_rows", n(totals.rejected_rows)),
                ("bytes_done", n(totals.bytes)),
                ("results", results),
            ],
            &["chunks_done = chunk_count"],
            Shards::Keep,
        )
        .await
    }

    /// Any non-final state `-> failed` with a safe, coded error.
    pub async fn mark_failed(&self, id: &str, error: &JobError) -> Result<bool, StoreError> {
        let err = serde_dynamo::to_attribute_value(error).map_err(|e| StoreError::Malformed {
            what: "error",
            detail: e.to_string(),
        })?;
        self.transition_with(
            id,
            &ACTIVE,
            JobState::Failed,
            vec![("error", err)],
            &[],
            Shards::Close,
        )
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
        self.transition_with(
            id,
            &ACTIVE,
            JobState::Failed,
            vec![
                ("error", err),
                ("failed_chunks", AttributeValue::L(vec![n(index)])),
            ],
            &[],
            Shards::Close,
        )
        .await
    }

    /// Any non-final state `-> cancelled`. False when the job was already final.
    pub async fn mark_cancelled(&self, id: &str) -> Result<bool, StoreError> {
        self.transition_with(id, &ACTIVE, JobState::Cancelled, vec![], &[], Shards::Close)
            .await
    }

    /// `failed -> processing` for a retry by the owner: only a job that failed because of
    /// chunks (`failed_chunks` non-empty). Clears the error and the failed chunks and counts the
    /// retry, in one conditional write; exactly one of two concurrent retries wins.
    pub async fn mark_retrying(&self, id: &str) -> Result<bool, StoreError> {
        let meta = Update::builder()
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
            .build()
            .map_err(|e| StoreError::service("Update(job retry) builder", e))?;
        // The shards reopen with the job: the re-sent chunks may complete again.
        self.with_shards(id, meta, Shards::Reopen).await
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
        super::applied(res, "UpdateItem(upload completed)")
    }

    /// Records a chunk's completion and adds its counters to its shard's counter, once: one
    /// transaction on the shard partition `JOB#<id>#S<index % 16>` — put the chunk item if
    /// absent, `ADD` to the shard counter unless the shard is `closed` (the job failed or was
    /// cancelled). The job item is neither written nor read.
    pub async fn complete_chunk(
        &self,
        job_id: &str,
        chunk: &ChunkRecord,
        expires_at: i64,
    ) -> Result<ChunkCommit, StoreError> {
        let pk = shard_pk(job_id, shard_of(chunk.index));
        let item = ChunkItem {
            pk: pk.clone(),
            sk: chunk_sk(chunk.index),
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
            .key("pk", s(&pk))
            .key("sk", s(COUNTER_SK))
            .update_expression(
                "ADD chunks_done :one, #rows :rows, rejected_rows :rej, bytes_done :bytes \
                 SET updated_at = :now, expires_at = :exp",
            )
            .condition_expression("attribute_not_exists(closed)")
            .expression_attribute_names("#rows", "rows")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":rows", n(chunk.rows))
            .expression_attribute_values(":rej", n(chunk.rejected_rows))
            .expression_attribute_values(":bytes", n(chunk.bytes))
            .expression_attribute_values(":now", s(now_rfc3339()))
            .expression_attribute_values(":exp", n(expires_at))
            .build()
            .map_err(|e| StoreError::service("Update(shard counter) builder", e))?;
        match transact_put_update(&self.client, &put, &update, "TransactWriteItems(chunk)").await? {
            None => Ok(ChunkCommit::Committed),
            // Which condition failed? Read back rather than rely on reason ordering.
            Some(_) => Ok(if self.chunk_exists(job_id, chunk.index).await? {
                ChunkCommit::AlreadyDone
            } else {
                ChunkCommit::JobNotActive
            }),
        }
    }

    async fn chunk_exists(&self, job_id: &str, index: u32) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(shard_pk(job_id, shard_of(index))))
            .key("sk", s(chunk_sk(index)))
            .consistent_read(true)
            .projection_expression("pk")
            .send()
            .await
            .map_err(|e| StoreError::service("GetItem(chunk)", e))?;
        Ok(out.item.is_some())
    }

    /// Whether every chunk of `index`'s shard is recorded: one strongly consistent read of that
    /// shard's counter, on that shard's partition. The worker that completes a shard is the one
    /// that goes on to read all 16 ([`Self::progress`]), so at most 16 workers per job do, and
    /// the last of all to commit always sees every shard complete (each reads after its write).
    pub async fn shard_complete(
        &self,
        job_id: &str,
        index: u32,
        chunk_count: u32,
    ) -> Result<bool, StoreError> {
        let k = shard_of(index);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(shard_pk(job_id, k)))
            .key("sk", s(COUNTER_SK))
            .consistent_read(true)
            .projection_expression("chunks_done")
            .send()
            .await
            .map_err(|e| StoreError::service("GetItem(shard counter)", e))?;
        let done = out
            .item
            .as_ref()
            .and_then(|i| i.get("chunks_done"))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        Ok(done >= shard_chunk_count(k, chunk_count))
    }

    /// A job's progress: the sum of its 16 shard counters, read with one strongly consistent
    /// `BatchGetItem` (16 items on 16 partitions, 1 RCU each).
    pub async fn progress(&self, job_id: &str) -> Result<Progress, StoreError> {
        let mut keys: Vec<HashMap<String, AttributeValue>> = (0..COUNTER_SHARDS)
            .map(|k| {
                HashMap::from([
                    ("pk".to_string(), s(shard_pk(job_id, k))),
                    ("sk".to_string(), s(COUNTER_SK)),
                ])
            })
            .collect();
        let mut total = Progress::default();
        let num = |item: &HashMap<String, AttributeValue>, k: &str| -> u64 {
            item.get(k)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let mut attempt = 0u32;
        while !keys.is_empty() {
            let ka = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut keys)))
                .consistent_read(true)
                .projection_expression("chunks_done, #rows, rejected_rows, bytes_done, updated_at")
                .expression_attribute_names("#rows", "rows")
                .build()
                .map_err(|e| StoreError::service("KeysAndAttributes builder", e))?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, ka)
                .send()
                .await
                .map_err(|e| StoreError::service("BatchGetItem(shard counters)", e))?;
            for item in out
                .responses
                .unwrap_or_default()
                .remove(&self.table)
                .unwrap_or_default()
            {
                total.chunks_done += num(&item, "chunks_done") as u32;
                total.rows += num(&item, "rows");
                total.rejected_rows += num(&item, "rejected_rows");
                total.bytes_done += num(&item, "bytes_done");
                if let Some(AttributeValue::S(t)) = item.get("updated_at") {
                    if *t > total.updated_at {
                        total.updated_at = t.clone();
                    }
                }
            }
            // Throttled keys come back unprocessed: read them again after a pause.
            if let Some(left) = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .filter(|ka| !ka.keys().is_empty())
            {
                attempt += 1;
                if attempt > 8 {
                    return Err(StoreError::Malformed {
                        what: "shard counters",
                        detail: "BatchGetItem left keys unprocessed 8 times".into(),
                    });
                }
                tokio::time::sleep(std::time::Duration::from_millis(10 << attempt.min(6))).await;
                keys = left.keys().to_vec();
            }
        }
        Ok(total)
    }

    /// `job` with its live counters: the sum of the shard counters while chunks may be counting
    /// (queued, processing, finalizing) and after a failure or cancel (the progress made);
    /// unchanged when completed (the finaliser wrote exact totals) or before any chunk exists.
    pub async fn with_progress(&self, mut job: Job) -> Result<Job, StoreError> {
        if job.chunk_count == 0
            || matches!(job.state, JobState::AwaitingUpload | JobState::Completed)
        {
            return Ok(job);
        }
        let p = self.progress(&job.id).await?;
        job.chunks_done = p.chunks_done;
        job.rows = p.rows;
        job.rejected_rows = p.rejected_rows;
        job.bytes_done = p.bytes_done;
        // The snapshot changed when a counter did: clients keep the newest `updated_at`.
        if p.updated_at > job.updated_at {
            job.updated_at = p.updated_at;
        }
        Ok(job)
    }

    /// [`Self::get`] with [`Self::with_progress`]: what a snapshot shows.
    pub async fn get_with_progress(&self, id: &str) -> Result<Option<Job>, StoreError> {
        match self.get(id).await? {
            None => Ok(None),
            Some(job) => Ok(Some(self.with_progress(job).await?)),
        }
    }

    /// All completion records of a job, in chunk order: one Query per shard partition, the 16
    /// run concurrently.
    pub async fn chunks(&self, job_id: &str) -> Result<Vec<ChunkRecord>, StoreError> {
        let per_shard = futures::future::try_join_all(
            (0..COUNTER_SHARDS).map(|k| self.shard_chunks(shard_pk(job_id, k))),
        )
        .await?;
        let mut out: Vec<ChunkRecord> = per_shard.into_iter().flatten().collect();
        out.sort_by_key(|c| c.index);
        Ok(out)
    }

    async fn shard_chunks(&self, pk: String) -> Result<Vec<ChunkRecord>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :c)")
                .expression_attribute_values(":pk", s(&pk))
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
        Ok(out)
    }
}

/// The codes of a cancelled transaction's reasons (`None`: the error is not a cancellation).
pub(super) fn cancellation_reasons<R>(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> Option<Vec<String>> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
    match e.as_service_error()? {
        E::TransactionCanceledException(t) => Some(
            t.cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None").to_string())
                .collect(),
        ),
        _ => None,
    }
}

/// Sends a transaction of one conditional `put` and one `update` ([`transact_retrying`]).
pub(super) async fn transact_put_update(
    client: &Client,
    put: &Put,
    update: &Update,
    op: &'static str,
) -> Result<Option<Vec<String>>, StoreError> {
    let items = [
        TransactWriteItem::builder().put(put.clone()).build(),
        TransactWriteItem::builder().update(update.clone()).build(),
    ];
    transact_retrying(client, &items, op).await
}

/// Sends a transaction, again while it is cancelled only for transient reasons (another
/// transaction on the same item at the same moment — a shard counter at 125 completions/s, an
/// export item, the job item — or throttling: nothing was written), pausing
/// `10 << min(attempt, 5)` ms, at most 8 tries (~1.2 s in all); then the error goes back and SQS
/// redelivers the message. Never mistakes a conflict for a failed condition. `Ok(None)`:
/// committed; `Ok(Some(reasons))`: cancelled because a condition did not hold.
pub(super) async fn transact_retrying(
    client: &Client,
    items: &[TransactWriteItem],
    op: &'static str,
) -> Result<Option<Vec<String>>, StoreError> {
    let mut attempt = 0u32;
    loop {
        let e = match client
            .transact_write_items()
            .set_transact_items(Some(items.to_vec()))
            .send()
            .await
        {
            Ok(_) => return Ok(None),
            Err(e) => e,
        };
        let Some(reasons) = cancellation_reasons(&e) else {
            return Err(StoreError::service(op, e));
        };
        if !reasons.iter().any(|c| is_transient_reason(c)) {
            return Ok(Some(reasons));
        }
        attempt += 1;
        if attempt >= 8 {
            return Err(StoreError::service(op, e));
        }
        tracing::info!(op, attempt, ?reasons, "transaction conflicted; retrying");
        tokio::time::sleep(std::time::Duration::from_millis(10 << attempt.min(5))).await;
    }
}

/// Cancellation reasons that say "not now" rather than "no".
pub(super) fn is_transient_reason(code: &str) -> bool {
    matches!(
        code,
        "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
    )
}

/// The DynamoDB job ledger behind the pipeline's port (the inherent methods above).
#[async_trait::async_trait]
impl crate::ports::JobLedger for JobStore {
    async fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
        JobStore::get(self, id).await
    }
    async fn mark_planned(&self, id: &str, plan: &Plan) -> Result<bool, StoreError> {
        JobStore::mark_planned(self, id, plan).await
    }
    async fn mark_processing(&self, id: &str) -> Result<bool, StoreError> {
        JobStore::mark_processing(self, id).await
    }
    async fn mark_finalizing(&self, id: &str) -> Result<bool, StoreError> {
        JobStore::mark_finalizing(self, id).await
    }
    async fn reclaim_finalizing(&self, id: &str, seen: &str) -> Result<bool, StoreError> {
        JobStore::reclaim_finalizing(self, id, seen).await
    }
    async fn begin_unique_step(
        &self,
        id: &str,
        step: UniqueStep,
        items: &[u32],
    ) -> Result<bool, StoreError> {
        JobStore::begin_unique_step(self, id, step, items).await
    }
    async fn unique_step_done(
        &self,
        id: &str,
        step: UniqueStep,
        index: u32,
    ) -> Result<Option<bool>, StoreError> {
        JobStore::unique_step_done(self, id, step, index).await
    }
    async fn mark_completed(
        &self,
        id: &str,
        totals: &Totals,
        results: &ResultKeys,
    ) -> Result<bool, StoreError> {
        JobStore::mark_completed(self, id, totals, results).await
    }
    async fn mark_failed(&self, id: &str, error: &JobError) -> Result<bool, StoreError> {
        JobStore::mark_failed(self, id, error).await
    }
    async fn mark_chunk_failed(
        &self,
        id: &str,
        index: u32,
        error: &JobError,
    ) -> Result<bool, StoreError> {
        JobStore::mark_chunk_failed(self, id, index, error).await
    }
    async fn mark_cancelled(&self, id: &str) -> Result<bool, StoreError> {
        JobStore::mark_cancelled(self, id).await
    }
    async fn mark_retrying(&self, id: &str) -> Result<bool, StoreError> {
        JobStore::mark_retrying(self, id).await
    }
}

/// The DynamoDB chunk ledger (shard partitions) behind the pipeline's port.
#[async_trait::async_trait]
impl crate::ports::ChunkLedger for JobStore {
    async fn complete_chunk(
        &self,
        job_id: &str,
        chunk: &ChunkRecord,
        expires_at: i64,
    ) -> Result<ChunkCommit, StoreError> {
        JobStore::complete_chunk(self, job_id, chunk, expires_at).await
    }
    async fn chunk_done(&self, job_id: &str, index: u32) -> Result<bool, StoreError> {
        JobStore::chunk_done(self, job_id, index).await
    }
    async fn shard_complete(
        &self,
        job_id: &str,
        index: u32,
        chunk_count: u32,
    ) -> Result<bool, StoreError> {
        JobStore::shard_complete(self, job_id, index, chunk_count).await
    }
    async fn progress(&self, job_id: &str) -> Result<Progress, StoreError> {
        JobStore::progress(self, job_id).await
    }
    async fn chunks(&self, job_id: &str) -> Result<Vec<ChunkRecord>, StoreError> {
        JobStore::chunks(self, job_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_chunks() {
        for count in [0u32, 1, 15, 16, 17, 200, 2000, 2001] {
            let per: u32 = (0..COUNTER_SHARDS)
                .map(|k| shard_chunk_count(k, count))
                .sum();
            assert_eq!(per, count, "{count} chunks");
            for k in 0..COUNTER_SHARDS {
                let by_index = (0..count).filter(|i| shard_of(*i) == k).count() as u32;
                assert_eq!(
                    shard_chunk_count(k, count),
                    by_index,
                    "{count} chunks, shard {k}"
                );
            }
        }
        assert_eq!(shard_pk("j-1", 7), "JOB#j-1#S7");
        assert_eq!(job_of_shard_pk("JOB#j-1#S7"), Some("j-1"));
        assert_eq!(job_of_shard_pk("JOB#j-1#S15"), Some("j-1"));
        assert_eq!(job_of_shard_pk("JOB#j-1#S16"), None);
        assert_eq!(job_of_shard_pk("JOB#j-1"), None);
        assert_eq!(job_of_shard_pk("CONN#c#S1"), None);
    }

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
