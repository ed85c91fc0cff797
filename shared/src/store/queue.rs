//! Task queues (SQS): the chunk task queue, and the agent's queue.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;

use super::StoreError;

pub use crate::task::QueueTask;

/// Sends chunk tasks (and export range tasks) to the queue.
#[derive(Clone, Debug)]
pub struct TaskQueue {
    client: Client,
    url: String,
}

impl TaskQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        TaskQueue {
            client,
            url: url.into(),
        }
    }

    /// Enqueues every task with SendMessageBatch (10 per call, SQS's limit). Entries SQS reports
    /// as failed are retried up to three times before this gives up with an error.
    pub async fn send_all<T: QueueTask>(&self, tasks: &[T]) -> Result<(), StoreError> {
        for batch in tasks.chunks(10) {
            let mut pending: Vec<&T> = batch.iter().collect();
            for attempt in 0..4 {
                let entries = pending
                    .iter()
                    .map(|t| {
                        SendMessageBatchRequestEntry::builder()
                            .id(format!("c{}", t.index()))
                            .message_body(serde_json::to_string(t).expect("task serialises"))
                            .build()
                            .map_err(|e| StoreError::service("SendMessageBatch entry", e))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| StoreError::service("SendMessageBatch", e))?;
                let failed: Vec<String> = out.failed.iter().map(|f| f.id.clone()).collect();
                if failed.is_empty() {
                    break;
                }
                if attempt == 3 {
                    return Err(StoreError::Service {
                        op: "SendMessageBatch",
                        detail: format!("entries still failing after retries: {failed:?}"),
                    });
                }
                pending.retain(|t| failed.contains(&format!("c{}", t.index())));
                tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
            }
        }
        Ok(())
    }

    /// Sends one message, delivered after `delay` (SQS allows up to 900 s; longer is cut).
    pub async fn send_one<T: serde::Serialize>(
        &self,
        message: &T,
        delay: std::time::Duration,
    ) -> Result<(), StoreError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(serde_json::to_string(message).expect("a message serialises"))
            .delay_seconds(delay.as_secs().min(900) as i32)
            .send()
            .await
            .map_err(|e| StoreError::service("SendMessage", e))?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl crate::ports::Tasks for TaskQueue {
    async fn send_messages(
        &self,
        messages: &[crate::task::QueueMessage],
    ) -> Result<(), StoreError> {
        self.send_all(messages).await
    }
}
