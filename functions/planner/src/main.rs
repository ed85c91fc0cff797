//! Lambda entry point for the planner function.

#[tokio::main]
async fn main() -> Result<(), tessera_shared::lambda::Error> {
    tessera_shared::lambda::serve(tessera_planner::PlannerState::new, |st, ev| async move {
        tessera_planner::handle(&st, ev).await
    })
    .await
}
