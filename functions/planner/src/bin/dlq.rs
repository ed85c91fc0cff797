//! Lambda entry point for the upload events' dead-letter queue: fails the jobs whose upload
//! event exhausted its deliveries (`tessera_planner::handle_dead_letters`).

#[tokio::main]
async fn main() -> Result<(), tessera_shared::lambda::Error> {
    tessera_shared::lambda::serve(tessera_planner::PlannerState::new, |st, ev| async move {
        tessera_planner::handle_dead_letters(&st, ev).await
    })
    .await
}
