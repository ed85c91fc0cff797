//! A function's queue worker as an OS process of its own: `tessera worker chunk` runs the chunk
//! queue's event-source mapping ([`crate::esm`], the same pollers `tessera up` runs in-process)
//! in front of the chunk function's handler (`tessera_chunk::handle`), configured from the
//! environment like the Lambda function.
//!
//! For: running chunk workers beside a stack started with
//! [`StackOptions::no_chunk_pollers`](crate::stack::StackOptions::no_chunk_pollers), with the
//! stack's [`function_env`](crate::stack::LocalStack::function_env), so a test (or a person) can
//! kill one mid-task with SIGKILL, as Lambda's timeout or a crash would, and watch SQS hand its
//! message to another worker after the visibility timeout (`tests/kill.rs`). A SIGTERM or Ctrl-C
//! stops it cleanly instead: the last long poll finishes and what it received is made visible
//! again (see [`crate::esm::run`]). Not for: the planner, agent or dead-letter mappings (they
//! stay in the stack's process).

use std::sync::Arc;

use aws_sdk_sqs::types::QueueAttributeName;
use aws_smithy_types::error::display::DisplayErrorContext;
use tessera_shared::aws::Clients;
use tessera_shared::config::Config;
use tokio::sync::watch;

use crate::esm::{self, Handler, Mapping};

/// How a worker process polls.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Concurrent pollers (Lambda concurrency), each handing batches to its own handler run.
    pub concurrency: usize,
    /// Long-poll wait of each ReceiveMessage (at most 20 s): also how long a clean stop waits.
    pub wait_secs: u32,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 1,
            wait_secs: 5,
        }
    }
}

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot read the chunk queue {url} (is TESSERA_CHUNK_QUEUE_URL right, and the emulator at TESSERA_AWS_ENDPOINT running?): {detail}")]
    Queue { url: String, detail: String },
}

/// Runs `opts.concurrency` pollers of the chunk queue in front of the chunk handler until
/// `shutdown` turns true.
pub async fn run_chunk(
    config: Arc<Config>,
    opts: &WorkerOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<(), WorkerError> {
    let clients = Clients::from_config(&config).await;
    let url = config.chunk_queue_url.clone();
    // The event's eventSourceARN, as the mapping would give it.
    let arn = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| WorkerError::Queue {
            url: url.clone(),
            detail: DisplayErrorContext(&e).to_string(),
        })?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    let state = tessera_chunk::ChunkState::new(config.clone(), &clients);
    let handler: Handler = Arc::new(move |ev| {
        let st = state.clone();
        Box::pin(async move { tessera_chunk::handle(&st, ev).await })
    });
    let mapping = Mapping {
        function: "chunk",
        queue_url: url,
        queue_arn: arn,
        region: config.region.clone(),
        batch_size: crate::resources::spec().chunk_tasks.batch_size,
        wait_secs: opts.wait_secs,
        duplicate_messages: false,
    };
    tracing::info!(queue = %mapping.queue_url, concurrency = opts.concurrency, pid = std::process::id(), "chunk worker polling");
    let pollers: Vec<_> = (0..opts.concurrency.max(1))
        .map(|_| {
            tokio::spawn(esm::run(
                mapping.clone(),
                clients.sqs.clone(),
                handler.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    for p in pollers {
        let _ = p.await;
    }
    Ok(())
}
