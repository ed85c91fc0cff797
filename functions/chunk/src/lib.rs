//! The chunk function: SQS messages in, partial batch failures out. The work itself is in
//! `tessera_shared::pipeline`; this crate maps the event to those calls. Two entry points: the
//! chunk task queue ([`handle`], binary `tessera-chunk`) and its dead-letter queue
//! ([`handle_dead_letters`], binary `tessera-chunk-dlq`), which fails the jobs whose tasks
//! exhausted their deliveries.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use tessera_shared::aws::Clients;
use tessera_shared::config::Config;
use tessera_shared::pipeline::Pipeline;

/// What the handler needs, built once per process.
#[derive(Clone)]
pub struct ChunkState {
    pub pipeline: Pipeline,
}

impl ChunkState {
    pub fn new(config: Arc<Config>, clients: &Clients) -> Self {
        ChunkState {
            pipeline: Pipeline::new(config, clients),
        }
    }

    /// With the model the `model` sentiment engine calls (tests point the real Bedrock client
    /// at a scripted Converse server); `None`: the configured one, if any.
    pub fn with_model(
        config: Arc<Config>,
        clients: &Clients,
        model: Option<Arc<dyn tessera_shared::model::ChatModel>>,
    ) -> Self {
        ChunkState {
            pipeline: Pipeline::new(config, clients).with_model(model, clients),
        }
    }
}

/// Handles one batch; only the messages that failed in a way worth retrying are reported back.
pub async fn handle(state: &ChunkState, event: SqsEvent) -> SqsBatchResponse {
    tessera_shared::lambda::handle_sqs_batch(event, |body| async move {
        state.pipeline.chunk_message(&body).await
    })
    .await
}

/// Handles a batch from the chunk tasks' dead-letter queue (`Pipeline::dead_chunk_message`).
pub async fn handle_dead_letters(state: &ChunkState, event: SqsEvent) -> SqsBatchResponse {
    tessera_shared::lambda::handle_sqs_batch(event, |body| async move {
        state.pipeline.dead_chunk_message(&body).await
    })
    .await
}
