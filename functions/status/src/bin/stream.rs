//! Lambda entry point for the jobs table's DynamoDB stream: pushes job changes to the
//! WebSocket connections subscribed to them (partial batch failures reported).

use std::sync::Arc;

use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tessera_shared::telemetry::init();
    let config = Arc::new(tessera_shared::config::Config::from_env()?);
    let clients = tessera_shared::aws::Clients::from_config(&config).await;
    let st = Arc::new(tessera_status::ws::WsState::new(config, &clients));
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Event>| {
        let st = st.clone();
        async move { Ok::<_, Error>(tessera_status::stream::handle(&st, ev.payload).await) }
    }))
    .await
}
