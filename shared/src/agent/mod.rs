//! The agent (issue 12): rules from plain English ([`rules`]) and questions answered with
//! read-only tools in sessions ([`chat`]), over the language-model port (`crate::model`), the
//! query engine (`pipeline::queries`) and the session store (`store::sessions`). The agent
//! function's HTTP routes and queue worker call [`Agent`]; docs/agent.md has the contract.
//!
//! A message is answered on the agent's queue, never within an HTTP request: `POST
//! /v1/sessions/{id}/messages` stores it and sends an [`AgentTask`]; the worker claims the
//! message (a lease), runs [`chat::advance`], saves it, and when the turn waits (a query job,
//! no model capacity) sends the task again with a delay. A query job the turn started also
//! sends the task as its continuation when it ends, so the turn resumes at once.
//!
//! Not here: HTTP (functions/agent), the rate buckets' storage.

pub mod chat;
pub mod dataset;
pub mod dry_run;
pub mod limits;
pub mod rules;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use tessera_engine::profile::ProfileReport;

use crate::config::Config;
use crate::job::{now_rfc3339, Job};
use crate::model::ChatModel;
use crate::pipeline::queries::{QueryDeps, QueryStore};
use crate::store::jobs::JobStore;
use crate::store::objects::ObjectStore;
use crate::store::queue::TaskQueue;
use crate::store::sessions::SessionStore;
use crate::store::StoreError;
use limits::{Admission, Gate};
use session::{AgentTask, ChatMessage, MessageState};

/// Per-message bounds.
#[derive(Debug, Clone)]
pub struct AgentLimits {
    /// Tool calls per message.
    pub max_tool_calls: u32,
    /// Tokens (input + output, all calls) per message.
    pub max_tokens_per_message: u32,
    /// `max_tokens` of every call.
    pub max_tokens_per_call: u32,
}

impl Default for AgentLimits {
    fn default() -> Self {
        AgentLimits {
            max_tool_calls: 8,
            max_tokens_per_message: 60_000,
            max_tokens_per_call: 2_048,
        }
    }
}

/// How long a worker holds a message (the agent worker's timeout is 120 s).
const LEASE: Duration = Duration::from_secs(150);
/// When a turn waits for a query job, it checks again after this long even if the query's
/// continuation never comes (it is sent best effort).
const QUERY_RECHECK: Duration = Duration::from_secs(20);
/// A message not final that nothing moved for this long is failed `message_stalled` when read:
/// by then its task went through every delivery (5 x the agent queue's visibility timeout is
/// one hour) or was never sent.
pub const MESSAGE_STALLED_AFTER: Duration = Duration::from_secs(2 * 3600);
/// Longest question accepted (characters).
pub const MAX_MESSAGE_CHARS: usize = 4_000;

/// The agent's dependencies.
#[derive(Clone)]
pub struct Agent {
    pub config: Arc<Config>,
    /// The model (`None`: not configured; rules come from the profile, questions fail
    /// `model_not_configured`).
    pub model: Option<Arc<dyn ChatModel>>,
    pub admission: Option<Arc<dyn Admission>>,
    pub limits: AgentLimits,
    pub jobs: JobStore,
    pub objects: ObjectStore,
    pub queries: QueryStore,
    pub sessions: SessionStore,
    /// The chunk task queue (query jobs' ranges).
    pub chunk_queue: TaskQueue,
    /// The agent's own queue (`None`: not deployed; messages cannot be answered).
    pub agent_queue: Option<TaskQueue>,
}

/// Why the agent could not do something now.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("malformed agent task: {0}")]
    Malformed(String),
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Agent {
    /// The model and its id, when one is configured.
    pub fn model(&self) -> Option<(&dyn ChatModel, &str)> {
        match (&self.model, &self.config.model_id) {
            (Some(m), Some(id)) => Some((m.as_ref(), id.as_str())),
            _ => None,
        }
    }

    /// A gate for `owner`'s calls.
    pub fn gate<'a>(&'a self, owner: &'a str, attempt: u32) -> Gate<'a> {
        Gate::new(owner, self.admission.as_deref(), attempt)
    }

    /// The profile of a completed job.
    pub async fn profile(&self, job: &Job) -> Result<ProfileReport, StoreError> {
        self.objects.read_profile(job).await
    }

    /// Stores a new message of `session` and queues it. Returns it (state `queued`).
    pub async fn post_message(
        &self,
        session: &session::Session,
        text: &str,
    ) -> Result<ChatMessage, StoreError> {
        let n = self.sessions.next_message(&session.session_id).await?;
        let now = now_rfc3339();
        let mut m = ChatMessage {
            session_id: session.session_id.clone(),
            number: n,
            job_id: session.job_id.clone(),
            owner: session.owner.clone(),
            state: MessageState::Queued,
            states: Vec::new(),
            text: text.to_string(),
            steps: Vec::new(),
            answer: None,
            error: None,
            transcript: Vec::new(),
            transcript_key: None,
            pending: None,
            usage: Default::default(),
            model_calls: 0,
            tool_calls: 0,
            cost_micro_usd: 0,
            throttles: 0,
            last_result: None,
            lease: None,
            lease_until: None,
            created_at: now.clone(),
            updated_at: now,
            expires_at: session.expires_at,
        };
        m.enter(MessageState::Queued);
        self.sessions.put_message(&m).await?;
        self.enqueue(&m, Duration::ZERO).await?;
        Ok(m)
    }

    async fn enqueue(&self, m: &ChatMessage, delay: Duration) -> Result<(), StoreError> {
        match &self.agent_queue {
            Some(q) => {
                q.send_one(&AgentTask::new(&m.session_id, m.number), delay)
                    .await
            }
            None => Err(StoreError::Service {
                op: "SendMessage(agent)",
                detail: "TESSERA_AGENT_QUEUE_URL is not set".into(),
            }),
        }
    }

    /// Handles one agent queue message (see the module docs). Only transient failures return
    /// an error, so SQS redelivers the message.
    pub async fn handle_task(&self, body: &str) -> Result<(), AgentError> {
        let task: AgentTask = match serde_json::from_str(body) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an agent message that does not parse");
                return Ok(());
            }
        };
        let Some(mut m) = self.sessions.message(&task.session_id, task.number).await? else {
            tracing::warn!(session_id = %task.session_id, number = task.number, "agent task for an unknown message ignored");
            return Ok(());
        };
        if m.state.is_final() {
            return Ok(());
        }
        let lease = uuid::Uuid::new_v4().to_string();
        let until = now_ms() + LEASE.as_millis() as i64;
        if !self.sessions.claim(&m, &lease, now_ms(), until).await? {
            tracing::info!(session_id = %m.session_id, number = m.number, "message held by another worker, or done");
            return Ok(());
        }
        m.lease_until = Some(until);
        let span = tracing::info_span!("agent_message", session_id = %m.session_id, number = m.number, job_id = %m.job_id);
        tracing::Instrument::instrument(self.work(m, lease), span).await
    }

    async fn work(&self, mut m: ChatMessage, lease: String) -> Result<(), AgentError> {
        if let Some(key) = m.transcript_key.take() {
            m.transcript = serde_json::from_slice(&self.objects.read_all(&key).await?)
                .map_err(|e| AgentError::Malformed(format!("transcript {key}: {e}")))?;
        }
        let job = match self.jobs.get(&m.job_id).await? {
            Some(j) if j.owner == m.owner => j,
            _ => {
                m.enter(MessageState::Failed);
                m.error = Some(crate::job::JobError::new(
                    "job_gone",
                    "The job this session is about no longer exists.",
                ));
                self.save(&m, &lease, true).await?;
                return Ok(());
            }
        };
        let profile = self.profile(&job).await?;
        let history: Vec<ChatMessage> = self
            .sessions
            .messages(&m.session_id)
            .await?
            .into_iter()
            .filter(|h| h.number < m.number)
            .collect();
        let continuation = serde_json::to_string(&AgentTask::new(&m.session_id, m.number))
            .expect("a task is JSON");
        let owner = m.owner.clone();
        let deps = chat::ChatDeps {
            model: self.model(),
            gate: self.gate(&owner, m.throttles),
            limits: &self.limits,
            query: QueryDeps {
                config: &self.config,
                objects: &self.objects,
                queries: &self.queries,
                queue: &self.chunk_queue,
            },
            job: &job,
            profile: &profile,
            mask_key: self.config.mask_key.as_deref(),
            continuation,
        };
        let before = m.usage;
        let turn = chat::advance(&deps, &history, &mut m).await;
        let (input, output) = (
            (m.usage.input_tokens - before.input_tokens) as u64,
            (m.usage.output_tokens - before.output_tokens) as u64,
        );
        let cost = deps.gate.spent();
        m.cost_micro_usd += cost;
        if input + output > 0 {
            self.sessions
                .add_usage(&m.session_id, input, output, cost)
                .await?;
        }
        match turn {
            chat::Turn::Done => {
                tracing::info!(state = ?m.state, model_calls = m.model_calls, tool_calls = m.tool_calls, tokens = m.usage.total_tokens, "message done");
                self.save(&m, &lease, true).await?;
            }
            chat::Turn::WaitQuery => {
                self.save(&m, &lease, true).await?;
                self.enqueue(&m, QUERY_RECHECK).await?;
            }
            chat::Turn::WaitCapacity(d) => {
                tracing::info!(
                    delay_s = d.as_secs(),
                    "no model capacity; the message goes back on the queue"
                );
                self.save(&m, &lease, true).await?;
                self.enqueue(&m, d).await?;
            }
        }
        Ok(())
    }

    /// Fails `m` `message_stalled` when it is not final and nothing moved it for
    /// [`MESSAGE_STALLED_AFTER`] (its task exhausted its deliveries and went to the dead-letter
    /// queue, or was never sent), under a lease so a live worker is never overruled.
    pub async fn fail_if_stalled(&self, m: &mut ChatMessage) -> Result<(), StoreError> {
        if m.state.is_final() || !crate::job::is_stale(&m.updated_at, MESSAGE_STALLED_AFTER) {
            return Ok(());
        }
        let lease = uuid::Uuid::new_v4().to_string();
        if !self
            .sessions
            .claim(m, &lease, now_ms(), now_ms() + 10_000)
            .await?
        {
            return Ok(());
        }
        m.enter(MessageState::Failed);
        m.pending = None;
        m.error = Some(crate::job::JobError::new(
            "message_stalled",
            "This message was not answered in time and was stopped. Ask it again.",
        ));
        tracing::warn!(session_id = %m.session_id, number = m.number, since = %m.updated_at, "message stalled; failed it");
        self.sessions.save(m, &lease, true).await?;
        Ok(())
    }

    /// Saves `m`, spilling a large transcript to S3 (a DynamoDB item holds 400 KB).
    async fn save(&self, m: &ChatMessage, lease: &str, release: bool) -> Result<(), AgentError> {
        let mut m = m.clone();
        let size = serde_json::to_vec(&m).map_or(0, |v| v.len());
        if size > 300 * 1024 {
            let key = format!(
                "{}/sessions/{}/{:06}.json",
                crate::keys::results_prefix(&m.owner, &m.job_id),
                m.session_id,
                m.number
            );
            let body = serde_json::to_vec(&m.transcript).expect("a transcript is JSON");
            self.objects.put(&key, body, "application/json").await?;
            m.transcript.clear();
            m.transcript_key = Some(key);
        }
        if !self.sessions.save(&m, lease, release).await? {
            tracing::warn!(
                "lost the message's lease while working on it; the other worker's save stands"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
