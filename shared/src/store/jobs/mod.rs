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
//! sum of the shard counters ([`JobStore::with_progress`]) until the finalizer writes the exact
//! totals with `completed`.
//!
//! Whether a job accepts chunks is mirrored into each shard counter (`closed`): every move out
//! of the active states that a chunk may race (failed, cancelled) closes the 16 shards in the
//! same transaction as the job item, and a retry reopens them, so the completion transaction
//! checks the job's state on its own partition and never touches the job item.

mod chunks;
mod ledger;
mod list;
mod record;

pub use record::JobRecord;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use super::job_pk;
use super::table::{number, string, to_item, to_value, Table};
use super::StoreError;
use crate::job::{now_rfc3339, Job, JobError, JobState, ResultKeys};
pub use crate::ledger::{ChunkCommit, ChunkRecord, Plan, Progress, Totals, UniqueStep};
pub use list::{JobPage, OwnerPageKey};

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
    job: JobRecord,
}

/// The job item's attributes of a `unique` step: its waiting map and its count.
fn unique_attributes(step: UniqueStep) -> (&'static str, &'static str) {
    match step {
        UniqueStep::Search => ("unique_search_waiting", "unique_searches"),
        UniqueStep::Rerun => ("unique_waiting", "unique_reruns"),
        UniqueStep::Rebase => ("rebase_waiting", "rebase_groups"),
    }
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
    table: Table,
}

impl JobStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        JobStore {
            table: Table::new(client, table),
        }
    }

    /// Creates a job; fails if the id exists.
    pub async fn create(&self, job: &Job) -> Result<(), StoreError> {
        let item = JobItem {
            pk: job_pk(&job.id),
            sk: "META".into(),
            gsi1pk: format!("OWNER#{}", job.owner),
            gsi1sk: format!("{}#{}", job.created_at, job.id),
            job: JobRecord::from(job),
        };
        self.table
            .create(to_item(item, "job")?, "PutItem(job)")
            .await
    }

    /// Reads a job (strongly consistent).
    pub async fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let item: Option<JobItem> = self
            .table
            .get(job_pk(id), "META", "job", "GetItem(job)")
            .await?;
        item.map(|it| Job::try_from(it.job)).transpose()
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
            (":to".to_string(), string(to.as_str())),
            (":now".to_string(), string(now_rfc3339())),
        ]);
        for (i, (name, value)) in extra.into_iter().enumerate() {
            set.push(format!("#x{i} = :x{i}"));
            names.insert(format!("#x{i}"), name.to_string());
            values.insert(format!(":x{i}"), value);
        }
        let mut conds = Vec::new();
        for (i, st) in from.iter().enumerate() {
            conds.push(format!(":f{i}"));
            values.insert(format!(":f{i}"), string(st.as_str()));
        }
        let update = format!("SET {}", set.join(", "));
        let condition = format!("attribute_exists(pk) AND #state IN ({})", conds.join(", "));
        if let Shards::Keep = shards {
            let res = self
                .table
                .update(job_pk(id), "META")
                .update_expression(update)
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .send()
                .await;
            return super::applied(res, "UpdateItem(job state)");
        }
        let meta = self
            .table
            .update_in_transaction(job_pk(id), "META")
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
            let u = self
                .table
                .update_in_transaction(shard_pk(id, k), COUNTER_SK);
            let u = match shards {
                Shards::Close => u
                    .update_expression(
                        "SET closed = :t, expires_at = if_not_exists(expires_at, :exp)",
                    )
                    .expression_attribute_values(":t", AttributeValue::Bool(true))
                    .expression_attribute_values(":exp", number(expires_at)),
                Shards::Reopen | Shards::Keep => u.update_expression("REMOVE closed"),
            };
            let u = u
                .build()
                .map_err(|e| StoreError::service("Update(shard) builder", e))?;
            items.push(TransactWriteItem::builder().update(u).build());
        }
        // Only the job item has a condition: a cancellation that is not transient is it failing.
        let cancelled = self
            .table
            .transact(&items, "TransactWriteItems(job state + shards)")
            .await?;
        Ok(cancelled.is_none())
    }

    /// `awaiting_upload -> queued` with the planner's facts. False if the job was already planned.
    pub async fn mark_planned(&self, id: &str, plan: &Plan) -> Result<bool, StoreError> {
        let dialect = to_value(&plan.dialect, "dialect")?;
        let columns = to_value(&plan.columns, "columns")?;
        let mut facts = vec![
            ("dialect", dialect),
            ("columns", columns),
            ("header_len", number(plan.header_len)),
            ("chunk_size", number(plan.chunk_size)),
            ("chunk_count", number(plan.chunk_count)),
        ];
        if let Some(etag) = &plan.source_etag {
            facts.push(("source_etag", string(etag)));
        }
        self.transition(id, &[JobState::AwaitingUpload], JobState::Queued, facts)
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

    /// Takes over a job stuck in `finalizing` (its finalizer died): succeeds only if the job is
    /// still `finalizing` with the `updated_at` the caller saw, so one caller wins.
    pub async fn reclaim_finalizing(
        &self,
        id: &str,
        seen_updated_at: &str,
    ) -> Result<bool, StoreError> {
        let res = self
            .table
            .update(job_pk(id), "META")
            .update_expression("SET updated_at = :now")
            .condition_expression("#state = :f AND updated_at = :seen")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":f", string(JobState::Finalizing.as_str()))
            .expression_attribute_values(":seen", string(seen_updated_at))
            .expression_attribute_values(":now", string(now_rfc3339()))
            .send()
            .await;
        super::applied(res, "UpdateItem(reclaim finalizing)")
    }

    /// Records the items of a `unique` step of a finalizing job (the search groups, or the
    /// chunks to re-run): each must report back ([`unique_step_done`](Self::unique_step_done))
    /// before the job can go on. Exactly one caller wins; false if the step was recorded
    /// already or the job is not finalizing.
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
            .table
            .update(job_pk(id), "META")
            .update_expression("SET #w = :w, #n = :n, updated_at = :now")
            .condition_expression("#state = :f AND attribute_not_exists(#w)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#w", waiting_attr)
            .expression_attribute_names("#n", count_attr)
            .expression_attribute_values(":f", string(JobState::Finalizing.as_str()))
            .expression_attribute_values(":w", waiting)
            .expression_attribute_values(":n", number(items.len()))
            .expression_attribute_values(":now", string(now_rfc3339()))
            .send()
            .await;
        super::applied(res, "UpdateItem(begin unique step)")
    }

    /// Item `index` of a `unique` step is done: takes it out of the waiting set, atomically.
    /// `Some(true)`: it was the last one, so this caller carries the job on (exactly one caller
    /// sees this); `Some(false)`: others are still running; `None`: it was not waiting (a
    /// redelivery of an item that reported already) or the job is no longer finalizing.
    pub async fn unique_step_done(
        &self,
        id: &str,
        step: UniqueStep,
        index: u32,
    ) -> Result<Option<bool>, StoreError> {
        let (waiting_attr, _) = unique_attributes(step);
        let res = self
            .table
            .update(job_pk(id), "META")
            .update_expression("REMOVE #w.#i SET updated_at = :now")
            .condition_expression("#state = :f AND attribute_exists(#w.#i)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#w", waiting_attr)
            .expression_attribute_names("#i", index.to_string())
            .expression_attribute_values(":f", string(JobState::Finalizing.as_str()))
            .expression_attribute_values(":now", string(now_rfc3339()))
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
        let results = to_value(results, "results")?;
        // The job item's counters are exact from here on (the shard counters were progress).
        self.transition_with(
            id,
            &[JobState::Finalizing, JobState::Queued],
            JobState::Completed,
            vec![
                ("rows", number(totals.rows)),
                ("rejected_rows", number(totals.rejected_rows)),
                ("bytes_done", number(totals.bytes)),
                ("scored_rows", number(totals.scored_rows)),
                ("not_graded_rows", number(totals.not_graded_rows)),
                ("results", results),
            ],
            &["chunks_done = chunk_count"],
            Shards::Keep,
        )
        .await
    }

    /// Writes the planner's decisions for the job's `model` steps on the job item.
    pub async fn set_model_plan(
        &self,
        id: &str,
        plan: &crate::ledger::ModelPlan,
    ) -> Result<(), StoreError> {
        self.table
            .update(job_pk(id), "META")
            .update_expression(
                "SET model_max_micro_usd = :m, model_estimate_micro_usd = :e, \
                 model_sample_rates = :r",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":m", number(plan.max_micro_usd))
            .expression_attribute_values(":e", number(plan.estimate_micro_usd))
            .expression_attribute_values(":r", to_value(&plan.sample_rates, "sample rates")?)
            .send()
            .await
            .map_err(|e| StoreError::service("UpdateItem(model plan)", e))?;
        Ok(())
    }

    /// Adds a batch's model usage to the job item's counters (one atomic `ADD`, so concurrent
    /// chunks never lose an update); returns the job's cost so far, this batch included.
    pub async fn add_model_usage(
        &self,
        id: &str,
        usage: &crate::ledger::ModelUsage,
    ) -> Result<u64, StoreError> {
        let out = self
            .table
            .update(job_pk(id), "META")
            .update_expression(
                "ADD model_input_tokens :i, model_output_tokens :o, model_cost_micro_usd :c, \
                 model_wait_ms :w SET updated_at = :now",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":i", number(usage.input_tokens))
            .expression_attribute_values(":o", number(usage.output_tokens))
            .expression_attribute_values(":c", number(usage.cost_micro_usd))
            .expression_attribute_values(":w", number(usage.wait_ms))
            .expression_attribute_values(":now", string(now_rfc3339()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| StoreError::service("UpdateItem(model usage)", e))?;
        Ok(out
            .attributes()
            .and_then(|a| a.get("model_cost_micro_usd"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(usage.cost_micro_usd))
    }

    /// Any non-final state `-> failed` with a safe, coded error.
    pub async fn mark_failed(&self, id: &str, error: &JobError) -> Result<bool, StoreError> {
        let err = to_value(error, "error")?;
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
        let err = to_value(error, "error")?;
        self.transition_with(
            id,
            &ACTIVE,
            JobState::Failed,
            vec![
                ("error", err),
                ("failed_chunks", AttributeValue::L(vec![number(index)])),
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
        let meta = self.table.update_in_transaction(job_pk(id), "META")
            .update_expression(
                "SET #state = :to, updated_at = :now, retries = if_not_exists(retries, :zero) + :one \
                 REMOVE #error, failed_chunks",
            )
            .condition_expression(
                "attribute_exists(pk) AND #state = :failed AND size(failed_chunks) > :zero",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":to", string(JobState::Processing.as_str()))
            .expression_attribute_values(":failed", string(JobState::Failed.as_str()))
            .expression_attribute_values(":now", string(now_rfc3339()))
            .expression_attribute_values(":zero", number(0))
            .expression_attribute_values(":one", number(1))
            .build()
            .map_err(|e| StoreError::service("Update(job retry) builder", e))?;
        // The shards reopen with the job: the re-sent chunks may complete again.
        self.with_shards(id, meta, Shards::Reopen).await
    }

    /// Notes that the client's multipart upload was completed in S3 (the job stays
    /// `awaiting_upload` until the planner sees the object). False if the job moved on already.
    pub async fn mark_upload_completed(&self, id: &str) -> Result<bool, StoreError> {
        let res = self
            .table
            .update(job_pk(id), "META")
            .update_expression("SET upload_completed = :t, updated_at = :now")
            .condition_expression("attribute_exists(pk) AND #state = :awaiting")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":awaiting", string(JobState::AwaitingUpload.as_str()))
            .expression_attribute_values(":now", string(now_rfc3339()))
            .send()
            .await;
        super::applied(res, "UpdateItem(upload completed)")
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
}
