//! The chunk function: SQS messages in, partial batch failures out. The work itself is in
//! `tessera_shared::pipeline`; this crate maps the event to those calls.

use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
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
}

/// Handles one batch. Each message is processed on its own; only the ones that failed in a way
/// worth retrying are reported back, so SQS redelivers just those.
pub async fn handle(state: &ChunkState, event: SqsEvent) -> SqsBatchResponse {
    let mut failures = Vec::new();
    for msg in event.records {
        let id = msg.message_id.clone().unwrap_or_default();
        let body = msg.body.as_deref().unwrap_or("");
        let span = tracing::info_span!("message", message_id = %id);
        let res = tracing::Instrument::instrument(state.pipeline.chunk_message(body), span).await;
        if let Err(e) = res {
            tracing::error!(message_id = %id, error = %e, "message failed; it will be retried");
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            failures.push(f);
        }
    }
    let mut resp = SqsBatchResponse::default();
    resp.batch_item_failures = failures;
    resp
}
