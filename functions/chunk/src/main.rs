//! Lambda entry point for the chunk function.

use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tessera_shared::telemetry::init();
    let config = Arc::new(tessera_shared::config::Config::from_env()?);
    let clients = tessera_shared::aws::Clients::from_config(&config).await;
    let state = tessera_chunk::ChunkState::new(config, &clients);
    lambda_runtime::run(service_fn(|ev: LambdaEvent<SqsEvent>| {
        let state = state.clone();
        async move { Ok::<_, lambda_runtime::Error>(tessera_chunk::handle(&state, ev.payload).await) }
    }))
    .await
}
