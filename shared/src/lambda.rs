//! The Lambda edge: SQS batches in, partial batch failures out (the planner and chunk
//! functions' handlers).

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
