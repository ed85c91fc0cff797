//! Lambda entry point for the agent function's HTTP routes.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (config, clients) = tessera_shared::lambda::start().await?;
    lambda_http::run(tessera_agent::app(tessera_agent::AgentState::new(
        config, &clients,
    )))
    .await
}
