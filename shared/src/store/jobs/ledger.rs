//! The DynamoDB job store behind the pipeline's ports (`crate::ports`).

use super::JobStore;
use crate::job::{Job, JobError, ResultKeys, Timestamp};
use crate::ledger::{
    ChunkCommit, ChunkRecord, ModelPlan, ModelUsage, Plan, Progress, Totals, UniqueStep,
};
use crate::store::StoreError;

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
    async fn reclaim_finalizing(&self, id: &str, seen: Timestamp) -> Result<bool, StoreError> {
        JobStore::reclaim_finalizing(self, id, &seen.to_string()).await
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
    async fn set_model_plan(&self, id: &str, plan: &ModelPlan) -> Result<(), StoreError> {
        JobStore::set_model_plan(self, id, plan).await
    }
    async fn add_model_usage(&self, id: &str, usage: &ModelUsage) -> Result<u64, StoreError> {
        JobStore::add_model_usage(self, id, usage).await
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
