//! Lambda entry point for the jobs table's DynamoDB stream: pushes job changes to the
//! WebSocket connections subscribed to them (partial batch failures reported).

#[tokio::main]
async fn main() -> Result<(), tessera_shared::lambda::Error> {
    tessera_shared::lambda::serve(tessera_status::ws::WsState::new, |st, ev| async move {
        tessera_status::stream::handle(&st, ev).await
    })
    .await
}
