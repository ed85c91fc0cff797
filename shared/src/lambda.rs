//! The Lambda edge: what every function's entry point does ([`start`], [`serve`]), and SQS
//! batches in, partial batch failures out (the planner and chunk functions' handlers).

use std::sync::Arc;

use lambda_http::lambda_runtime::{self, LambdaEvent};

use crate::aws::Clients;
use crate::config::Config;

/// The error a function's entry point ends with.
pub use lambda_http::Error;

/// Runs `handle` on each SQS message body of a batch and reports only the messages that failed
/// (SQS partial batch response), so SQS redelivers just those. One span per message.
pub async fn handle_sqs_batch<F, Fut, E>(
    event: aws_lambda_events::sqs::SqsEvent,
    handle: F,
) -> aws_lambda_events::sqs::SqsBatchResponse
where
    E: std::fmt::Display,
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
{
    let mut failures = Vec::new();
    for msg in event.records {
        let id = msg.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("message", message_id = %id);
        // Boxed, so that the handler's (deep) future is not part of the caller's layout.
        let res =
            tracing::Instrument::instrument(Box::pin(handle(msg.body.unwrap_or_default())), span)
                .await;
        if let Err(e) = res {
            tracing::error!(message_id = %id, error = %e, "message failed; it will be retried");
            let mut f = aws_lambda_events::sqs::BatchItemFailure::default();
            f.item_identifier = id;
            failures.push(f);
        }
    }
    let mut resp = aws_lambda_events::sqs::SqsBatchResponse::default();
    resp.batch_item_failures = failures;
    resp
}

/// What every function's entry point does first: telemetry, then the configuration (read once
/// from the environment) and the AWS clients built from it.
pub async fn start() -> Result<(Arc<Config>, Clients), Error> {
    crate::telemetry::init();
    let config = Arc::new(Config::from_env()?);
    let clients = Clients::from_config(&config).await;
    Ok((config, clients))
}

/// Serves a Lambda function whose events are `E`: `handle` answers each with the state built
/// once by `state` (from the configuration and clients of [`start`]).
pub async fn serve<E, S, R, F, Fut>(
    state: impl FnOnce(Arc<Config>, &Clients) -> S,
    handle: F,
) -> Result<(), Error>
where
    E: serde::de::DeserializeOwned + Send + 'static,
    S: Send + Sync + 'static,
    R: serde::Serialize + Send + 'static,
    F: Fn(Arc<S>, E) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = R> + Send + 'static,
{
    let (config, clients) = start().await?;
    let state = Arc::new(state(config, &clients));
    let handle = Arc::new(handle);
    lambda_runtime::run(lambda_runtime::service_fn(move |ev: LambdaEvent<E>| {
        let (state, handle) = (state.clone(), handle.clone());
        // Boxed: a handler's future is deep, and would otherwise be part of this one's layout.
        async move { Ok::<_, Error>(Box::pin(handle(state, ev.payload)).await) }
    }))
    .await
}
