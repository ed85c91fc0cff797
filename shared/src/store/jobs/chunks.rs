//! A job's chunk ledger on its 16 shard partitions: completion records and the counters they
//! add to.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::{
    chunk_sk, shard_chunk_count, shard_of, shard_pk, JobStore, COUNTER_SHARDS, COUNTER_SK,
};
use crate::job::{now_rfc3339, Job, JobState, Timestamp};
use crate::ledger::{ChunkCommit, ChunkRecord, Progress};
use crate::store::table::{from_item, number, string, to_item};
use crate::store::StoreError;

#[derive(Serialize, Deserialize)]
struct ChunkItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    chunk: ChunkRecord,
    expires_at: i64,
}

impl JobStore {
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
        let put = self
            .table
            .put_new_in_transaction(to_item(item, "chunk")?, "Put(chunk) builder")?;
        let update = self
            .table
            .update_in_transaction(&pk, COUNTER_SK)
            .update_expression(
                "ADD chunks_done :one, #rows :rows, rejected_rows :rej, bytes_done :bytes, \
                 scored_rows :scored, not_graded_rows :ng SET updated_at = :now, expires_at = :exp",
            )
            .condition_expression("attribute_not_exists(closed)")
            .expression_attribute_names("#rows", "rows")
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":rows", number(chunk.rows))
            .expression_attribute_values(":rej", number(chunk.rejected_rows))
            .expression_attribute_values(":bytes", number(chunk.bytes))
            .expression_attribute_values(":scored", number(chunk.scored_rows))
            .expression_attribute_values(":ng", number(chunk.not_graded_rows))
            .expression_attribute_values(":now", string(now_rfc3339()))
            .expression_attribute_values(":exp", number(expires_at))
            .build()
            .map_err(|e| StoreError::service("Update(shard counter) builder", e))?;
        match self
            .table
            .transact_put_update(put, update, "TransactWriteItems(chunk)")
            .await?
        {
            None => Ok(ChunkCommit::Committed),
            // Which condition failed? Read back rather than rely on reason ordering.
            Some(_) => Ok(if self.chunk_exists(job_id, chunk.index).await? {
                ChunkCommit::AlreadyDone
            } else {
                ChunkCommit::JobNotActive
            }),
        }
    }

    pub(super) async fn chunk_exists(&self, job_id: &str, index: u32) -> Result<bool, StoreError> {
        self.table
            .exists(
                shard_pk(job_id, shard_of(index)),
                chunk_sk(index),
                "GetItem(chunk)",
            )
            .await
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
        let counter = self
            .table
            .get_raw(
                shard_pk(job_id, k),
                COUNTER_SK,
                Some("chunks_done"),
                "GetItem(shard counter)",
            )
            .await?;
        let done = counter
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
                    ("pk".to_string(), string(shard_pk(job_id, k))),
                    ("sk".to_string(), string(COUNTER_SK)),
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
                .projection_expression(
                    "chunks_done, #rows, rejected_rows, bytes_done, scored_rows, not_graded_rows, \
                     updated_at",
                )
                .expression_attribute_names("#rows", "rows")
                .build()
                .map_err(|e| StoreError::service("KeysAndAttributes builder", e))?;
            let out = self
                .table
                .batch_get(ka, "BatchGetItem(shard counters)")
                .await?;
            for item in out
                .responses
                .unwrap_or_default()
                .remove(self.table.name())
                .unwrap_or_default()
            {
                total.chunks_done += num(&item, "chunks_done") as u32;
                total.rows += num(&item, "rows");
                total.rejected_rows += num(&item, "rejected_rows");
                total.bytes_done += num(&item, "bytes_done");
                total.scored_rows += num(&item, "scored_rows");
                total.not_graded_rows += num(&item, "not_graded_rows");
                if let Some(AttributeValue::S(t)) = item.get("updated_at") {
                    if *t > total.updated_at {
                        total.updated_at = t.clone();
                    }
                }
            }
            // Throttled keys come back unprocessed: read them again after a pause.
            if let Some(left) = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(self.table.name()))
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
    /// unchanged when completed (the finalizer wrote exact totals) or before any chunk exists.
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
        job.scored_rows = p.scored_rows;
        job.not_graded_rows = p.not_graded_rows;
        // The snapshot changed when a counter did: clients keep the newest `updated_at`.
        if let Some(t) = Timestamp::parse(&p.updated_at).filter(|t| *t > job.updated_at) {
            job.updated_at = t;
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
        let items = self
            .table
            .query_prefix(pk, "CHUNK#", None, "Query(chunks)")
            .await?;
        items
            .into_iter()
            .map(|item| from_item::<ChunkItem>(item, "chunk").map(|it| it.chunk))
            .collect()
    }
}
