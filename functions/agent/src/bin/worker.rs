//! Lambda entry point for the agent queue's worker.

#[tokio::main]
async fn main() -> Result<(), tessera_shared::lambda::Error> {
    tessera_shared::lambda::serve(tessera_agent::AgentState::new, |st, ev| async move {
        tessera_agent::handle(&st, ev).await
    })
    .await
}
