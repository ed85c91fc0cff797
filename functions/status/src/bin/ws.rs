//! Lambda entry point for the WebSocket routes (`$connect`, `$disconnect`, `subscribe`,
//! `unsubscribe`, `$default`) of the status function.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tessera_shared::telemetry::init();
    let config = Arc::new(tessera_shared::config::Config::from_env()?);
    let clients = tessera_shared::aws::Clients::from_config(&config).await;
    let st = Arc::new(tessera_status::ws::WsState::new(config, &clients));
    lambda_runtime::run(service_fn(
        move |ev: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let st = st.clone();
            async move { Ok::<_, Error>(tessera_status::ws::handle(&st, ev.payload).await) }
        },
    ))
    .await
}
