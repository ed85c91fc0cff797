//! Lambda entry point for the WebSocket routes (`$connect`, `$disconnect`, `subscribe`,
//! `unsubscribe`, `$default`) of the status function.

#[tokio::main]
async fn main() -> Result<(), tessera_shared::lambda::Error> {
    tessera_shared::lambda::serve(tessera_status::ws::WsState::new, |st, ev| async move {
        tessera_status::ws::handle(&st, ev).await
    })
    .await
}
