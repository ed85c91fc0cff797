//! The pipeline: planning an upload into chunk tasks, running one chunk, finalising a job.
//! Pure orchestration over the stores and the engine; the planner and chunk functions (and the
//! local runtime, through them) call it.

use std::sync::Arc;

use crate::aws::Clients;
use crate::config::Config;
use crate::store::jobs::JobStore;
use crate::store::objects::ObjectStore;
use crate::store::queue::TaskQueue;
use crate::store::StoreError;

/// A message could not be handled now and should be retried (SQS redelivers it).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// The pipeline's dependencies.
#[derive(Clone)]
pub struct Pipeline {
    pub config: Arc<Config>,
    pub jobs: JobStore,
    pub objects: ObjectStore,
    pub queue: TaskQueue,
}

impl Pipeline {
    pub fn new(config: Arc<Config>, clients: &Clients) -> Self {
        Pipeline {
            jobs: JobStore::new(clients.dynamodb.clone(), &config.jobs_table),
            objects: ObjectStore::new(clients.s3.clone(), &config.bucket),
            queue: TaskQueue::new(clients.sqs.clone(), &config.chunk_queue_url),
            config,
        }
    }

    /// Handles one upload-events message (S3 notification).
    pub async fn planner_message(&self, _body: &str) -> Result<(), PipelineError> {
        Err(PipelineError::Malformed("not yet".into()))
    }

    /// Handles one chunk task message.
    pub async fn chunk_message(&self, _body: &str) -> Result<(), PipelineError> {
        Err(PipelineError::Malformed("not yet".into()))
    }
}
