//! Event-source pollers for the dead-letter tests (a stack started with `no_pollers`): the
//! planner, chunk workers that fail every delivery of the chunk-queue messages a test dooms (a
//! worker that times out, as SQS sees it), and the chunk dead-letter consumer. SQS's own redrive
//! moves a doomed message to the dead-letter queue after `maxReceiveCount` deliveries.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde_json::Value;
use tessera_infra::esm::{self, Handler, Mapping};
use tessera_infra::stack::LocalStack;

/// Running pollers; [`stop`](Self::stop) them before the stack shuts down.
pub struct RefusingPollers {
    /// Deliveries refused so far.
    pub refusals: Arc<AtomicUsize>,
    /// While set (from the start), doomed messages are refused; clear it to let them through.
    pub refusing: Arc<AtomicBool>,
    stop: tokio::sync::watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl RefusingPollers {
    /// Starts the planner, `workers` chunk workers that refuse every message whose JSON body
    /// `doomed` picks (while `refusing` is set), and the dead-letter consumer.
    pub fn start(stack: &LocalStack, workers: usize, doomed: fn(&Value) -> bool) -> Self {
        Self::start_timed(stack, workers, doomed, None)
    }

    /// Like [`start`](Self::start), and each chunk handler run is cut at `function_timeout` as
    /// Lambda cuts a function at its timeout: the run is dropped where it stands and its
    /// messages are not acknowledged (they come back after the visibility timeout).
    pub fn start_timed(
        stack: &LocalStack,
        workers: usize,
        doomed: fn(&Value) -> bool,
        function_timeout: Option<std::time::Duration>,
    ) -> Self {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mapping = |function, url: &str, arn: &str| Mapping {
            function,
            queue_url: url.to_string(),
            queue_arn: arn.to_string(),
            region: stack.config.region.clone(),
            batch_size: 1,
            wait_secs: 1,
            duplicate_messages: false,
        };
        let planner = tessera_planner::PlannerState::new(stack.config.clone(), &stack.clients);
        let planner: Handler = Arc::new(move |ev| {
            let st = planner.clone();
            Box::pin(async move { tessera_planner::handle(&st, ev).await })
        });
        let refusing = Arc::new(AtomicBool::new(true));
        let refusals = Arc::new(AtomicUsize::new(0));
        let chunk = tessera_chunk::ChunkState::new(stack.config.clone(), &stack.clients);
        let (r, n) = (refusing.clone(), refusals.clone());
        let worker: Handler = Arc::new(move |ev: SqsEvent| {
            let (st, r, n) = (chunk.clone(), r.clone(), n.clone());
            Box::pin(async move {
                let is_doomed = |body: &Option<String>| {
                    doomed(
                        &serde_json::from_str(body.as_deref().unwrap_or("{}")).unwrap_or_default(),
                    )
                };
                if r.load(Ordering::SeqCst) && ev.records.iter().any(|m| is_doomed(&m.body)) {
                    n.fetch_add(1, Ordering::SeqCst);
                    let mut resp = SqsBatchResponse::default();
                    for m in ev.records.iter().filter(|m| is_doomed(&m.body)) {
                        let mut f = BatchItemFailure::default();
                        f.item_identifier = m.message_id.clone().unwrap_or_default();
                        resp.batch_item_failures.push(f);
                    }
                    return resp;
                }
                let Some(limit) = function_timeout else {
                    return tessera_chunk::handle(&st, ev).await;
                };
                let ids: Vec<String> = ev
                    .records
                    .iter()
                    .map(|m| m.message_id.clone().unwrap_or_default())
                    .collect();
                match tokio::time::timeout(limit, tessera_chunk::handle(&st, ev)).await {
                    Ok(resp) => resp,
                    Err(_) => {
                        let mut resp = SqsBatchResponse::default();
                        for id in ids {
                            let mut f = BatchItemFailure::default();
                            f.item_identifier = id;
                            resp.batch_item_failures.push(f);
                        }
                        resp
                    }
                }
            })
        });
        let dead = tessera_chunk::ChunkState::new(stack.config.clone(), &stack.clients);
        let dead: Handler = Arc::new(move |ev| {
            let st = dead.clone();
            Box::pin(async move { tessera_chunk::handle_dead_letters(&st, ev).await })
        });
        let (up, ct) = (&stack.resources.upload_events, &stack.resources.chunk_tasks);
        let sqs = &stack.clients.sqs;
        let mut handles = vec![tokio::spawn(esm::run(
            mapping("planner", &up.url, &up.arn),
            sqs.clone(),
            planner,
            stopped.clone(),
        ))];
        for _ in 0..workers {
            handles.push(tokio::spawn(esm::run(
                mapping("chunk", &ct.url, &ct.arn),
                sqs.clone(),
                worker.clone(),
                stopped.clone(),
            )));
        }
        handles.push(tokio::spawn(esm::run(
            mapping("chunk-dlq", &ct.dlq_url, &ct.dlq_arn),
            sqs.clone(),
            dead,
            stopped,
        )));
        RefusingPollers {
            refusals,
            refusing,
            stop,
            handles,
        }
    }

    /// Stops every poller and waits for them.
    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        for h in self.handles {
            h.await.unwrap();
        }
    }
}
