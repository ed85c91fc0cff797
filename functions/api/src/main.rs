//! Lambda entry point for the api function.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (config, clients) = tessera_shared::lambda::start().await?;
    lambda_http::run(tessera_api::app(tessera_api::ApiState::new(
        config, &clients,
    )))
    .await
}
