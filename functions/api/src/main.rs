//! Lambda entry point for the api function.

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tessera_shared::telemetry::init();
    let config = Arc::new(tessera_shared::config::Config::from_env()?);
    let clients = tessera_shared::aws::Clients::from_config(&config).await;
    lambda_http::run(tessera_api::app(tessera_api::ApiState::new(
        config, &clients,
    )))
    .await
}
