//! The agent function (issue 12): Bedrock Converse with tool use, over `tessera_shared::agent`.
//! Two entry points: the HTTP routes ([`app`], binary `tessera-agent`) and the agent queue's
//! worker ([`handle`], binary `tessera-agent-worker`).
//!
//! Routes (all owned by the caller like every other resource; another owner's job or session
//! is a 404 like a missing one):
//! - `POST /v1/rules/generate {job_id, prompt, workflow?: {id, version?}}` -> 200 a rule
//!   document with a reason per rule and its dry run on the job's sample, from the model
//!   (`"source": "model"`) or the profile (`"source": "profile"`, with `fallback` saying why
//!   when a model was asked). Nothing is saved.
//! - `POST /v1/sessions {job_id}` -> 201 a session about a completed job.
//! - `POST /v1/sessions/{id}/messages {text}` -> 202 `{message_id, status_url}`; the answer
//!   arrives over the WebSocket (`message.answer`) and at:
//! - `GET /v1/sessions/{id}` -> the session and its whole conversation.
//! - `POST /v1/rules/dry-runs {job_id, rules}`, `GET /v1/rules/dry-runs/{id}`: a rule document
//!   run over the whole file as a job, nothing saved ([`dry_runs`]).
//! - `GET /v1/usage[?day=YYYY-MM-DD]`: the caller's model usage on a UTC day and what is left
//!   of the daily budget ([`usage`]).

pub mod dry_runs;
pub mod usage;

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_shared::agent::limits::RateAdmission;
use tessera_shared::agent::session::{ChatMessage, Session};
use tessera_shared::agent::{Agent, AgentLimits, MAX_MESSAGE_CHARS};
use tessera_shared::aws::Clients;
use tessera_shared::config::Config;
use tessera_shared::error::ApiError;
use tessera_shared::http::{Caller, JsonBody};
use tessera_shared::job::{now_rfc3339, Job, JobState};
use tessera_shared::model::bedrock::BedrockModel;
use tessera_shared::model::ChatModel;
use tessera_shared::pipeline::queries::QueryStore;
use tessera_shared::ports::UsageReader;
use tessera_shared::store::jobs::JobStore;
use tessera_shared::store::objects::ObjectStore;
use tessera_shared::store::queue::TaskQueue;
use tessera_shared::store::rate::RateStore;
use tessera_shared::store::sessions::SessionStore;
use tessera_shared::store::workflows::WorkflowStore;

/// Time `POST /v1/rules/generate` gives the model before it answers with the profile's
/// suggestions (API Gateway's HTTP APIs answer by 29 s).
pub const GENERATE_BUDGET: std::time::Duration = std::time::Duration::from_secs(22);

/// What the handlers need, built once per process.
#[derive(Clone)]
pub struct AgentState {
    pub agent: Agent,
    pub workflows: WorkflowStore,
    /// Owners' daily model usage (the rate store's day items).
    pub usage: Arc<dyn UsageReader>,
}

impl AgentState {
    pub fn new(config: Arc<Config>, clients: &Clients) -> Self {
        // A Converse endpoint of its own (a local scripted model) gets local static
        // credentials (nothing to look up on a machine without AWS credentials); real Bedrock
        // takes the usual credential chain even when the rest runs locally.
        let model: Option<Arc<dyn ChatModel>> = config.model_id.as_ref().map(|_| {
            Arc::new(match &config.bedrock_endpoint {
                Some(endpoint) => {
                    BedrockModel::local(endpoint, tessera_shared::model::bedrock::retry_policy())
                }
                None => BedrockModel::from_config(&clients.model_sdk, &config),
            }) as Arc<dyn ChatModel>
        });
        Self::with_model(config, clients, model)
    }

    /// With a given model (tests point the real Bedrock client at a scripted server).
    pub fn with_model(
        config: Arc<Config>,
        clients: &Clients,
        model: Option<Arc<dyn ChatModel>>,
    ) -> Self {
        let table = &config.jobs_table;
        let rates = Arc::new(RateStore::new(
            clients.dynamodb.clone(),
            table,
            config.model_limits.clone(),
        ));
        AgentState {
            workflows: WorkflowStore::new(clients.dynamodb.clone(), table),
            usage: rates.clone(),
            agent: Agent {
                model,
                admission: Some(Arc::new(RateAdmission(rates))),
                limits: AgentLimits::default(),
                jobs: JobStore::new(clients.dynamodb.clone(), table),
                objects: ObjectStore::new(clients.s3.clone(), &config.bucket),
                queries: QueryStore::new(clients.dynamodb.clone(), table),
                sessions: SessionStore::new(clients.dynamodb.clone(), table),
                chunk_queue: TaskQueue::new(clients.sqs.clone(), &config.chunk_queue_url),
                agent_queue: config
                    .agent_queue_url
                    .as_ref()
                    .map(|u| TaskQueue::new(clients.sqs.clone(), u)),
                config,
            },
        }
    }
}

/// The agent's routes.
pub fn app(state: AgentState) -> Router {
    Router::new()
        .route("/v1/rules/generate", post(generate_rules))
        .route("/v1/rules/dry-runs", post(dry_runs::create))
        .route("/v1/rules/dry-runs/{id}", get(dry_runs::get))
        .route("/v1/usage", get(usage::get))
        .route("/v1/sessions", post(create_session))
        .route("/v1/sessions/{id}", get(get_session))
        .route("/v1/sessions/{id}/messages", post(post_message))
        .fallback(tessera_shared::http::not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(
            tessera_shared::http::request_id_layer,
        ))
}

/// Handles one batch of the agent queue; only messages that failed in a way worth retrying
/// are reported back.
pub async fn handle(state: &AgentState, event: SqsEvent) -> SqsBatchResponse {
    tessera_shared::lambda::handle_sqs_batch(event, |body| async move {
        state.agent.handle_task(&body).await
    })
    .await
}

pub(crate) async fn completed_job(
    st: &AgentState,
    caller: &Caller,
    id: &str,
) -> Result<Job, ApiError> {
    let job = tessera_shared::control::owned_job(&st.agent.jobs, &caller.owner, id).await?;
    if job.state != JobState::Completed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "job_not_completed",
            format!(
                "The job is {}; the agent works on a job once it is completed.",
                job.state.as_str()
            ),
        ));
    }
    Ok(job)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowPick {
    pub id: String,
    #[serde(default)]
    pub version: Option<u32>,
}

/// `POST /v1/rules/generate` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateRules {
    pub job_id: String,
    pub prompt: String,
    #[serde(default)]
    pub workflow: Option<WorkflowPick>,
    /// `sample` (the default: the job's sample rows, in the answer) or `file`: also start a
    /// dry run of the proposal over the whole file (`file_dry_run` in the answer).
    #[serde(default)]
    pub dry_run: DryRunScope,
}

/// How far `POST /v1/rules/generate` tries its proposal.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DryRunScope {
    #[default]
    Sample,
    File,
}

async fn generate_rules(
    State(st): State<AgentState>,
    caller: Caller,
    JsonBody(req): JsonBody<GenerateRules>,
) -> Result<Json<Value>, ApiError> {
    if req.prompt.trim().is_empty() || req.prompt.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ApiError::unprocessable(
            "invalid_prompt",
            format!("`prompt` must be 1 to {MAX_MESSAGE_CHARS} characters."),
        ));
    }
    let job = completed_job(&st, &caller, &req.job_id).await?;
    let existing = match &req.workflow {
        None => None,
        Some(w) => {
            let head = match st.workflows.head(&w.id).await? {
                Some(h) if h.owner == caller.owner && h.deleted_at.is_none() => h,
                _ => return Err(ApiError::not_found("workflow")),
            };
            let v = st
                .workflows
                .version(&w.id, w.version.unwrap_or(head.latest_version))
                .await?
                .ok_or_else(|| ApiError::not_found("workflow"))?;
            Some(serde_json::from_str::<Value>(&v.rules_json).map_err(|e| ApiError::internal(&e))?)
        }
    };
    let profile = st.agent.profile(&job).await?;
    let gate = st.agent.gate(&caller.owner, 0);
    let generating = tessera_shared::agent::rules::generate(
        st.agent.model(),
        &gate,
        &st.agent.limits,
        &profile,
        &req.prompt,
        existing.as_ref(),
        st.agent.config.mask_key.as_deref(),
    );
    // API Gateway answers by 29 s: a slow model gives way to the profile's suggestions.
    let answer = match tokio::time::timeout(GENERATE_BUDGET, generating).await {
        Ok(a) => a,
        Err(_) => {
            tracing::warn!(job_id = %job.id, "the model did not answer in time; profile suggestions instead");
            let mut a = tessera_shared::agent::rules::from_profile(
                &profile,
                st.agent.config.mask_key.as_deref(),
            );
            a.fallback = Some("model_timeout".into());
            a
        }
    };
    tracing::info!(job_id = %job.id, source = answer.source, fallback = ?answer.fallback, repairs = answer.repairs, tokens = answer.usage.total_tokens, "rules generated");
    let mut body = serde_json::to_value(&answer).map_err(|e| ApiError::internal(&e))?;
    body["job_id"] = json!(job.id);
    if req.dry_run == DryRunScope::File {
        let trial = dry_runs::start(&st, &job, &answer.rules).await?;
        body["file_dry_run"] = dry_runs::started_json(&trial, &job);
    }
    Ok(Json(body))
}

/// `POST /v1/sessions` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    pub job_id: String,
}

async fn create_session(
    State(st): State<AgentState>,
    caller: Caller,
    JsonBody(req): JsonBody<CreateSession>,
) -> Result<Response, ApiError> {
    let job = completed_job(&st, &caller, &req.job_id).await?;
    let now = now_rfc3339();
    let s = Session {
        session_id: uuid::Uuid::new_v4().to_string(),
        job_id: job.id.clone(),
        owner: caller.owner.clone(),
        created_at: now.clone(),
        updated_at: now,
        messages: 0,
        input_tokens: 0,
        output_tokens: 0,
        cost_micro_usd: 0,
        expires_at: job.expires_at,
    };
    st.agent.sessions.create(&s).await?;
    let url = format!("/v1/sessions/{}", s.session_id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, url)],
        Json(session_json(&s, &[])),
    )
        .into_response())
}

async fn owned_session(st: &AgentState, caller: &Caller, id: &str) -> Result<Session, ApiError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::not_found("session"));
    }
    match st.agent.sessions.get(id).await? {
        Some(s) if s.owner == caller.owner => Ok(s),
        _ => Err(ApiError::not_found("session")),
    }
}

/// `POST /v1/sessions/{id}/messages` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    pub text: String,
}

async fn post_message(
    State(st): State<AgentState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<PostMessage>,
) -> Result<Response, ApiError> {
    let s = owned_session(&st, &caller, &id).await?;
    if req.text.trim().is_empty() || req.text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ApiError::unprocessable(
            "invalid_message",
            format!("`text` must be 1 to {MAX_MESSAGE_CHARS} characters."),
        ));
    }
    let m = st.agent.post_message(&s, &req.text).await?;
    let url = format!("/v1/sessions/{}", s.session_id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, url.clone())],
        Json(json!({
            "session_id": s.session_id,
            "message_id": m.number,
            "state": m.state,
            "status_url": url,
        })),
    )
        .into_response())
}

async fn get_session(
    State(st): State<AgentState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = owned_session(&st, &caller, &id).await?;
    let mut messages = st.agent.sessions.messages(&s.session_id).await?;
    for m in messages.iter_mut() {
        st.agent.fail_if_stalled(m).await?;
    }
    Ok(Json(session_json(&s, &messages)))
}

/// A message as callers see it (the model transcript and lease are internal).
pub fn message_json(m: &ChatMessage) -> Value {
    json!({
        "message_id": m.number,
        "state": m.state,
        "states": m.states,
        "text": m.text,
        "tool_calls": m.steps,
        "answer": m.answer,
        "error": m.error,
        "usage": {
            "input_tokens": m.usage.input_tokens,
            "output_tokens": m.usage.output_tokens,
            "model_calls": m.model_calls,
            "tool_calls": m.tool_calls,
            "cost_micro_usd": m.cost_micro_usd,
        },
        "created_at": m.created_at,
        "updated_at": m.updated_at,
    })
}

fn session_json(s: &Session, messages: &[ChatMessage]) -> Value {
    json!({
        "session_id": s.session_id,
        "job_id": s.job_id,
        "created_at": s.created_at,
        "expires_at": s.expires_at,
        "usage": {
            "input_tokens": s.input_tokens,
            "output_tokens": s.output_tokens,
            "cost_micro_usd": s.cost_micro_usd,
        },
        "messages": messages.iter().map(message_json).collect::<Vec<_>>(),
    })
}
