//! The planner function: SQS messages in, partial batch failures out. The work itself is in
//! `tessera_shared::pipeline`; this crate maps the event to those calls. Two entry points: the
//! upload events queue ([`handle`], binary `tessera-planner`) and its dead-letter queue
//! ([`handle_dead_letters`], binary `tessera-planner-dlq`), which fails the jobs whose upload
//! event exhausted its deliveries.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use tessera_shared::aws::Clients;
use tessera_shared::config::Config;
use tessera_shared::pipeline::Pipeline;

/// What the handler needs, built once per process.
#[derive(Clone)]
pub struct PlannerState {
    pub pipeline: Pipeline,
}

impl PlannerState {
    pub fn new(config: Arc<Config>, clients: &Clients) -> Self {
        PlannerState {
            pipeline: Pipeline::new(config, clients),
        }
    }
}

/// Handles one batch; only the messages that failed in a way worth retrying are reported back.
pub async fn handle(state: &PlannerState, event: SqsEvent) -> SqsBatchResponse {
    tessera_shared::lambda::handle_sqs_batch(event, |body| async move {
        state.pipeline.planner_message(&body).await
    })
    .await
}

/// Handles a batch from the upload events' dead-letter queue (`Pipeline::dead_upload_message`).
pub async fn handle_dead_letters(state: &PlannerState, event: SqsEvent) -> SqsBatchResponse {
    tessera_shared::lambda::handle_sqs_batch(event, |body| async move {
        state.pipeline.dead_upload_message(&body).await
    })
    .await
}
