//! Lambda entry point for the chunk function.

#[tokio::main]
async fn main() -> Result<(), tessera_shared::lambda::Error> {
    tessera_shared::lambda::serve(tessera_chunk::ChunkState::new, |st, ev| async move {
        tessera_chunk::handle(&st, ev).await
    })
    .await
}
