//! Lambda's SQS event-source mapping, in-process: long-poll the queue, hand a batch to the
//! handler as an `SqsEvent`, delete the messages it did not report as failed, and leave the
//! failed ones to reappear after the visibility timeout. Redrive to the dead-letter queue after
//! `maxReceiveCount` receives is done by the emulator itself (moto applies the queue's
//! RedrivePolicy on receive, like SQS); `e2e` tests check it.
//!
//! A handler panic does not kill the poller: the handler runs in its own task and a panic
//! counts as "every message failed", as a crashed Lambda invocation would.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageAttributeValue, MessageSystemAttributeName,
};
use aws_smithy_types::error::display::DisplayErrorContext;
use tokio::sync::watch;

/// A handler as the mapping sees it.
pub type Handler =
    Arc<dyn Fn(SqsEvent) -> Pin<Box<dyn Future<Output = SqsBatchResponse> + Send>> + Send + Sync>;

/// Message attribute marking a test duplicate (so it is not duplicated again).
pub const DUPLICATE_ATTRIBUTE: &str = "tessera-duplicate";

/// One mapping's settings.
#[derive(Clone, Debug)]
pub struct Mapping {
    /// For logs: `planner`, `chunk`, `chunk-dlq`, `agent`.
    pub function: &'static str,
    pub queue_url: String,
    pub queue_arn: String,
    pub region: String,
    /// Messages per batch (1 to 10).
    pub batch_size: u32,
    /// Long-poll wait per ReceiveMessage (at most 20 s).
    pub wait_secs: u32,
    /// Test hook for at-least-once delivery: before handling, send a copy of every message back
    /// to the queue (a concurrent duplicate, possibly picked up by another poller), and after
    /// handling, hand the same batch to the handler once more (a redelivery after success).
    pub duplicate_messages: bool,
}

/// Polls until `shutdown` turns true. Errors talking to SQS are logged and retried with backoff.
pub async fn run(
    mapping: Mapping,
    sqs: aws_sdk_sqs::Client,
    handler: Handler,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let receive = sqs
            .receive_message()
            .queue_url(&mapping.queue_url)
            .max_number_of_messages(mapping.batch_size.clamp(1, 10) as i32)
            .wait_time_seconds(mapping.wait_secs.min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send();
        tokio::pin!(receive);
        let out = tokio::select! {
            r = &mut receive => r,
            _ = shutdown.changed() => {
                // Abandoning the long poll would leave the emulator (and SQS) free to hand
                // messages to a receiver that is gone, hiding them for a whole visibility
                // timeout. Let it finish and hand back whatever it got.
                if let Ok(o) = receive.await {
                    release(&mapping, &sqs, &o.messages.unwrap_or_default()).await;
                }
                return;
            }
        };
        let messages = match out {
            Ok(o) => {
                backoff = Duration::from_millis(200);
                o.messages.unwrap_or_default()
            }
            Err(e) => {
                tracing::warn!(function = mapping.function, error = %DisplayErrorContext(&e), "polling failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {},
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        if mapping.duplicate_messages {
            duplicate(&mapping, &sqs, &messages).await;
        }
        let again = mapping
            .duplicate_messages
            .then(|| event(&mapping, &messages));
        handle_batch(&mapping, &sqs, &handler, messages).await;
        if let Some(ev) = again {
            let _ = tokio::spawn(handler(ev)).await;
        }
    }
}

/// Makes received messages visible again at once (shutdown).
async fn release(mapping: &Mapping, sqs: &aws_sdk_sqs::Client, messages: &[Message]) {
    let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = messages
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .receipt_handle(m.receipt_handle.clone()?)
                .visibility_timeout(0)
                .build()
                .ok()
        })
        .collect();
    if entries.is_empty() {
        return;
    }
    if let Err(e) = sqs
        .change_message_visibility_batch()
        .queue_url(&mapping.queue_url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        tracing::warn!(function = mapping.function, error = %DisplayErrorContext(&e), "could not release messages on shutdown; they reappear after the visibility timeout");
    }
}

async fn duplicate(mapping: &Mapping, sqs: &aws_sdk_sqs::Client, messages: &[Message]) {
    for m in messages {
        let is_copy = m
            .message_attributes
            .as_ref()
            .is_some_and(|a| a.contains_key(DUPLICATE_ATTRIBUTE));
        if is_copy {
            continue;
        }
        let attr = MessageAttributeValue::builder()
            .data_type("String")
            .string_value("1")
            .build()
            .expect("valid attribute");
        let res = sqs
            .send_message()
            .queue_url(&mapping.queue_url)
            .message_body(m.body.clone().unwrap_or_default())
            .message_attributes(DUPLICATE_ATTRIBUTE, attr)
            .send()
            .await;
        if let Err(e) = res {
            tracing::warn!(error = %DisplayErrorContext(&e), "could not send the test duplicate");
        }
    }
}

/// Builds the event, runs the handler, deletes the successes.
async fn handle_batch(
    mapping: &Mapping,
    sqs: &aws_sdk_sqs::Client,
    handler: &Handler,
    messages: Vec<Message>,
) {
    let event = event(mapping, &messages);
    let fut = handler(event);
    let failed: std::collections::HashSet<String> = match tokio::spawn(fut).await {
        Ok(resp) => resp
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect(),
        Err(e) => {
            tracing::error!(function = mapping.function, error = %e, "handler panicked; the whole batch will be retried");
            messages
                .iter()
                .filter_map(|m| m.message_id.clone())
                .collect()
        }
    };
    let entries: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.message_id.as_ref().is_some_and(|id| failed.contains(id)))
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .receipt_handle(m.receipt_handle.clone()?)
                .build()
                .ok()
        })
        .collect();
    if !failed.is_empty() {
        tracing::info!(
            function = mapping.function,
            failed = failed.len(),
            "messages left for redelivery"
        );
    }
    if entries.is_empty() {
        return;
    }
    match sqs
        .delete_message_batch()
        .queue_url(&mapping.queue_url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        Ok(out) if !out.failed.is_empty() => {
            tracing::warn!(function = mapping.function, failed = ?out.failed, "some deletes failed; those messages will be redelivered")
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(function = mapping.function, error = %DisplayErrorContext(&e), "DeleteMessageBatch failed; the batch will be redelivered")
        }
    }
}

/// The `SqsEvent` Lambda would deliver for these messages.
pub fn event(mapping: &Mapping, messages: &[Message]) -> SqsEvent {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, serde_json::Value> = m
                .attributes
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_string(), serde_json::Value::String(v.clone())))
                .collect();
            let message_attributes: serde_json::Map<String, serde_json::Value> = m
                .message_attributes
                .iter()
                .flatten()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        serde_json::json!({
                            "stringValue": v.string_value,
                            "stringListValues": [],
                            "binaryListValues": [],
                            "dataType": v.data_type,
                        }),
                    )
                })
                .collect();
            serde_json::json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "md5OfBody": m.md5_of_body,
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "eventSource": "aws:sqs",
                "eventSourceARN": mapping.queue_arn,
                "awsRegion": mapping.region,
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records }))
        .expect("the SQS event literal matches aws_lambda_events")
}
