//! Lambda entry point for the chunk tasks' dead-letter queue: fails the jobs whose chunk tasks
//! exhausted their deliveries (`tessera_chunk::handle_dead_letters`).

#[tokio::main]
async fn main() -> Result<(), tessera_shared::lambda::Error> {
    tessera_shared::lambda::serve(tessera_chunk::ChunkState::new, |st, ev| async move {
        tessera_chunk::handle_dead_letters(&st, ev).await
    })
    .await
}
