//! Lambda entry point for the status function.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (config, clients) = tessera_shared::lambda::start().await?;
    lambda_http::run(tessera_status::app(tessera_status::StatusState::new(
        config, &clients,
    )))
    .await
}
