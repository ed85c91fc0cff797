//! The whole local stack in one process, as a library: the emulator (found or started), the
//! resources (created idempotently), the gateway over the api, status and agent routers, and
//! the event-source mappings that feed the planner, chunk and agent worker handlers from their
//! queues.
//!
//! `tessera up` and `tessera demo` start it with the spec's names; tests start one per test
//! with unique names against one shared emulator, so stacks never see each other's messages.
//!
//! The agent's model ([`AgentModelSource`]): a test hands one in ([`StackOptions::agent_model`],
//! e.g. the real Bedrock client pointed at a scripted Converse server, with `TESSERA_MODEL_ID`
//! in [`StackOptions::env`]); otherwise `AgentState::new` picks it from the configuration:
//! `TESSERA_MODEL_ID` reached at `TESSERA_BEDROCK_ENDPOINT` or, when that is unset, at real
//! Bedrock with the machine's own AWS credentials (the default chain) while everything else
//! stays on the emulator; with no model id, no model: rules come from profile suggestions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tessera_shared::aws::Clients;
use tessera_shared::config::{Config, ConfigError, DEFAULT_CHUNK_SIZE};
use tessera_shared::model::ChatModel;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::{JwtKey, KeyError};
use crate::emulator::{Emulator, EmulatorError};
use crate::esm::{self, Handler, Mapping};
use crate::provision::{self, Overrides, ProvisionError, Provisioned, QueueOverrides};
use crate::streams::{StartingPosition, StreamHandler, StreamMapping};
use crate::ws::{WsGateway, WsOptions};

/// Where the gateway's token key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `<dir>/jwt.key`, created when missing (what `tessera up` and `tessera token` share).
    File(PathBuf),
    /// Random, in memory (tests).
    Random,
}

/// Where the running stack's agent gets its model (for `tessera up`'s banner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentModelSource {
    /// No `TESSERA_MODEL_ID`: rules come from profile suggestions, questions fail
    /// `model_not_configured`.
    None,
    /// Given in [`StackOptions::agent_model`], called `model_id`.
    Given { model_id: String },
    /// `TESSERA_MODEL_ID` at `TESSERA_BEDROCK_ENDPOINT`.
    Endpoint { model_id: String, endpoint: String },
    /// `TESSERA_MODEL_ID` at Bedrock itself in `region`, signed with the machine's AWS
    /// credentials (the default chain: environment, shared files, ...).
    Bedrock { model_id: String, region: String },
}

impl AgentModelSource {
    fn of(opts: &StackOptions, config: &Config) -> Result<Self, StackError> {
        let Some(model_id) = config.model_id.clone() else {
            return match opts.agent_model {
                Some(_) => Err(StackError::ModelWithoutId),
                None => Ok(AgentModelSource::None),
            };
        };
        Ok(match (&opts.agent_model, &config.bedrock_endpoint) {
            (Some(_), _) => AgentModelSource::Given { model_id },
            (None, Some(endpoint)) => AgentModelSource::Endpoint {
                model_id,
                endpoint: endpoint.clone(),
            },
            (None, None) => AgentModelSource::Bedrock {
                model_id,
                region: config.region.clone(),
            },
        })
    }
}

/// How to start a stack.
#[derive(Clone)]
pub struct StackOptions {
    /// Use the emulator at this URL (e.g. one shared by a test binary). `None`: use the one
    /// answering on `emulator_port`, or install and start one there.
    pub emulator_url: Option<String>,
    pub emulator_port: u16,
    /// Gateway port on 127.0.0.1; 0 picks a free one.
    pub http_port: u16,
    /// Append `-<random>` to every resource name, so stacks can share one emulator.
    pub unique_names: bool,
    pub chunk_size: u64,
    pub max_upload_bytes: Option<u64>,
    /// Overrides of `TESSERA_EXPORT_SYNC_MAX_BYTES` and `TESSERA_EXPORT_RANGE_SIZE` (tests force
    /// small outputs through export jobs with several ranges).
    pub export_sync_max_bytes: Option<u64>,
    pub export_range_size: Option<u64>,
    /// More configuration variables for the functions (e.g. `TESSERA_QUERY_INLINE_MAX_BYTES`),
    /// applied last.
    pub env: Vec<(&'static str, String)>,
    /// Concurrent pollers of the chunk queue (Lambda concurrency).
    pub chunk_concurrency: usize,
    /// Concurrent pollers of the agent queue (AgentWorkerFunction's concurrency).
    pub agent_concurrency: usize,
    /// The agent's model, called with the configuration's `TESSERA_MODEL_ID` (put it in
    /// [`StackOptions::env`]; the stack refuses to start without one). `None`: the model
    /// `AgentState::new` makes from the configuration (see the module docs).
    pub agent_model: Option<Arc<dyn ChatModel>>,
    /// Visibility timeout overrides (tests shorten them to see redelivery quickly).
    pub chunk_visibility_secs: Option<u32>,
    pub upload_visibility_secs: Option<u32>,
    pub agent_visibility_secs: Option<u32>,
    /// Override of every queue's maxReceiveCount.
    pub max_receive_count: Option<u32>,
    /// Long-poll wait of the pollers (at most 20 s).
    pub poll_wait_secs: u32,
    /// Test hook: every chunk message is delivered twice (see [`esm::Mapping::duplicate_messages`]).
    pub duplicate_chunk_messages: bool,
    /// Do not run the planner/chunk pollers (tests that drive the queues by hand).
    pub no_pollers: bool,
    /// Run every poller but the chunk queue's: its tasks are left to worker processes
    /// ([`crate::worker`], `tessera worker chunk`) started with [`LocalStack::function_env`], which
    /// a test can kill.
    pub no_chunk_pollers: bool,
    /// Where the jobs-table stream poller starts (`LATEST` like a new Lambda mapping; tests use
    /// `TRIM_HORIZON` so no change made while it starts is missed).
    pub stream_start: StartingPosition,
    /// WebSocket test hooks (e.g. no `$disconnect`, to exercise the 410 cleanup).
    pub ws: WsOptions,
    pub key: KeySource,
    /// Where the emulator log goes when this stack starts one.
    pub home: PathBuf,
    pub region: String,
}

impl std::fmt::Debug for StackOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackOptions")
            .field("emulator_url", &self.emulator_url)
            .field("emulator_port", &self.emulator_port)
            .field("http_port", &self.http_port)
            .field("unique_names", &self.unique_names)
            .field("chunk_size", &self.chunk_size)
            .field("env", &self.env)
            .field("chunk_concurrency", &self.chunk_concurrency)
            .field("agent_concurrency", &self.agent_concurrency)
            .field("agent_model", &self.agent_model.as_ref().map(|_| "given"))
            .field("no_pollers", &self.no_pollers)
            .field("no_chunk_pollers", &self.no_chunk_pollers)
            .field("key", &self.key)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Default for StackOptions {
    fn default() -> Self {
        let home = crate::auth::tessera_home();
        StackOptions {
            emulator_url: None,
            emulator_port: crate::emulator::DEFAULT_PORT,
            http_port: 3000,
            unique_names: false,
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_upload_bytes: None,
            export_sync_max_bytes: None,
            export_range_size: None,
            env: Vec::new(),
            chunk_concurrency: 2,
            agent_concurrency: 2,
            agent_model: None,
            chunk_visibility_secs: None,
            upload_visibility_secs: None,
            agent_visibility_secs: None,
            max_receive_count: None,
            // Long polls return as soon as a message arrives; the wait only bounds how long a
            // shutdown waits for the last poll (which must finish: see `esm::run`).
            poll_wait_secs: 5,
            duplicate_chunk_messages: false,
            no_pollers: false,
            no_chunk_pollers: false,
            stream_start: StartingPosition::Latest,
            ws: WsOptions::default(),
            key: KeySource::File(home.clone()),
            home,
            region: "us-east-1".into(),
        }
    }
}

impl StackOptions {
    /// Options for a test: the given emulator, unique names, any free port, an in-memory key,
    /// 64 KiB chunks, short polls, a 20 s chunk visibility timeout, and no model unless the
    /// test gives one (a `TESSERA_MODEL_ID` in the developer's environment never reaches a
    /// test's agent).
    pub fn for_tests(emulator_url: &str) -> Self {
        StackOptions {
            emulator_url: Some(emulator_url.to_string()),
            env: vec![
                ("TESSERA_MODEL_ID", String::new()),
                ("TESSERA_BEDROCK_ENDPOINT", String::new()),
            ],
            http_port: 0,
            unique_names: true,
            chunk_size: 64 * 1024,
            poll_wait_secs: 1,
            chunk_visibility_secs: Some(20),
            upload_visibility_secs: Some(20),
            key: KeySource::Random,
            stream_start: StartingPosition::TrimHorizon,
            home: std::env::temp_dir().join("tessera-tests"),
            ..StackOptions::default()
        }
    }
}

/// Why the stack could not start.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Emulator(#[from] EmulatorError),
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot listen on 127.0.0.1:{port}: {source}. Stop whatever uses the port or pick another with --port")]
    Bind { port: u16, source: std::io::Error },
    #[error("the agent was given a model but no model id to call it with: set TESSERA_MODEL_ID in the stack's env")]
    ModelWithoutId,
}

/// A running stack. Call [`LocalStack::shutdown`] to stop it (dropping it stops the tasks too).
pub struct LocalStack {
    /// `http://127.0.0.1:<port>`, the gateway.
    pub http_url: String,
    /// The emulator's URL (also `config.endpoint`).
    pub emulator_url: String,
    /// The configuration every handler of this stack runs with.
    pub config: Arc<Config>,
    /// The variables `config` was read from (names, endpoints, queue URLs, the stack's own
    /// settings and [`StackOptions::env`]): a function process started with them (and the rest
    /// of this process's environment) runs with the same configuration, like a Lambda
    /// function configured by template.yaml.
    pub function_env: Vec<(String, String)>,
    /// SDK clients against the emulator.
    pub clients: Clients,
    /// The concrete resource names.
    pub resources: Provisioned,
    /// The gateway's token key.
    pub key: JwtKey,
    /// The emulated WebSocket API (`ws://127.0.0.1:<port>/v1/ws`).
    pub ws: Arc<WsGateway>,
    /// Where the agent's model is.
    pub agent_model: AgentModelSource,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    emulator: Option<Emulator>,
}

impl std::fmt::Debug for LocalStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStack")
            .field("http_url", &self.http_url)
            .field("emulator_url", &self.emulator_url)
            .finish()
    }
}

impl LocalStack {
    /// Starts everything and returns once the gateway listens and the pollers run.
    pub async fn start(opts: StackOptions) -> Result<LocalStack, StackError> {
        let (emulator_url, emulator) = match &opts.emulator_url {
            Some(url) => (url.clone(), None),
            None => {
                let (port, home) = (opts.emulator_port, opts.home.clone());
                let em = tokio::task::spawn_blocking(move || Emulator::ensure(port, &home))
                    .await
                    .expect("emulator start does not panic")?;
                (em.url(), Some(em))
            }
        };
        let key = match &opts.key {
            KeySource::File(dir) => JwtKey::load_or_create(dir)?,
            KeySource::Random => JwtKey::random(),
        };
        let suffix = if opts.unique_names {
            format!("-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
        } else {
            String::new()
        };
        // Resource creation needs clients, clients need a config; the config needs the names.
        // Build a bootstrap config first, then the real one.
        let spec = crate::resources::spec();
        let boot = config_of(&stack_env(&opts, &emulator_url, &Provisioned::bootstrap()))?;
        let clients = Clients::from_config(&boot).await;
        let overrides = |visibility_timeout_secs| QueueOverrides {
            visibility_timeout_secs,
            max_receive_count: opts.max_receive_count,
        };
        let resources = provision::provision(
            &clients,
            &spec,
            &suffix,
            Overrides {
                upload_events: overrides(opts.upload_visibility_secs),
                chunk_tasks: overrides(opts.chunk_visibility_secs),
                agent_tasks: overrides(opts.agent_visibility_secs),
            },
        )
        .await?;
        // The gateway's port is part of the configuration (the WebSocket management endpoint).
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.http_port))
            .await
            .map_err(|source| StackError::Bind {
                port: opts.http_port,
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| StackError::Bind {
                port: opts.http_port,
                source,
            })?
            .port();
        let mut env = stack_env(&opts, &emulator_url, &resources);
        env.insert(
            "TESSERA_WS_ENDPOINT",
            crate::ws::management_endpoint(&format!("http://127.0.0.1:{port}")),
        );
        let config = Arc::new(config_of(&env)?);
        let mut function_env: Vec<(String, String)> =
            env.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        function_env.sort();
        let clients = Clients::from_config(&config).await;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        // The gateway.
        let api = tessera_api::app(tessera_api::ApiState::new(config.clone(), &clients));
        let status =
            tessera_status::app(tessera_status::StatusState::new(config.clone(), &clients));
        let ws_state = tessera_status::ws::WsState::new(config.clone(), &clients);
        let ws = WsGateway::new(key.clone(), ws_state.clone(), opts.ws);
        let agent_model = AgentModelSource::of(&opts, &config)?;
        let agent = match &opts.agent_model {
            Some(model) => {
                tessera_agent::AgentState::with_model(config.clone(), &clients, Some(model.clone()))
            }
            None => tessera_agent::AgentState::new(config.clone(), &clients),
        };
        let app = crate::gateway::router_with_agent(
            api,
            status,
            Some(tessera_agent::app(agent.clone())),
            key.clone(),
        )
        .merge(crate::ws::router(ws.clone()));
        let mut rx = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let serve = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|v| *v).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "gateway stopped");
            }
        }));

        // The jobs table's stream -> the status function's pushes.
        let stream_handler: StreamHandler = Arc::new(move |ev| {
            let st = ws_state.clone();
            Box::pin(async move { tessera_status::stream::handle(&st, ev).await })
        });
        tasks.push(tokio::spawn(crate::streams::run(
            StreamMapping {
                table: resources.table.clone(),
                region: config.region.clone(),
                batch_size: 100,
                starting_position: opts.stream_start,
                idle_wait: Duration::from_millis(250),
            },
            clients.dynamodb.clone(),
            aws_sdk_dynamodbstreams::Client::new(&clients.sdk),
            stream_handler,
            shutdown_rx.clone(),
        )));

        // The event-source mappings.
        if !opts.no_pollers {
            let planner = tessera_planner::PlannerState::new(config.clone(), &clients);
            let planner_handler: Handler = Arc::new(move |ev| {
                let st = planner.clone();
                Box::pin(async move { tessera_planner::handle(&st, ev).await })
            });
            // The chunk workers grade `model` sentiment steps with the agent's model.
            let chunk = tessera_chunk::ChunkState::with_model(
                config.clone(),
                &clients,
                opts.agent_model.clone(),
            );
            let chunk_handler: Handler = Arc::new(move |ev| {
                let st = chunk.clone();
                Box::pin(async move { tessera_chunk::handle(&st, ev).await })
            });
            let dead_uploads = tessera_planner::PlannerState::new(config.clone(), &clients);
            let dead_upload_handler: Handler = Arc::new(move |ev| {
                let st = dead_uploads.clone();
                Box::pin(async move { tessera_planner::handle_dead_letters(&st, ev).await })
            });
            let dead = tessera_chunk::ChunkState::new(config.clone(), &clients);
            let dead_letter_handler: Handler = Arc::new(move |ev| {
                let st = dead.clone();
                Box::pin(async move { tessera_chunk::handle_dead_letters(&st, ev).await })
            });
            let mapping = |function, q: &provision::QueueNames, batch_size, duplicate| Mapping {
                function,
                queue_url: q.url.clone(),
                queue_arn: q.arn.clone(),
                region: config.region.clone(),
                batch_size,
                wait_secs: opts.poll_wait_secs,
                duplicate_messages: duplicate,
            };
            tasks.push(tokio::spawn(esm::run(
                mapping(
                    "planner",
                    &resources.upload_events,
                    spec.upload_events.batch_size,
                    false,
                ),
                clients.sqs.clone(),
                planner_handler,
                shutdown_rx.clone(),
            )));
            // The upload events' dead-letter queue, like PlannerDeadLetterFunction's mapping.
            tasks.push(tokio::spawn(esm::run(
                Mapping {
                    function: "planner-dlq",
                    queue_url: resources.upload_events.dlq_url.clone(),
                    queue_arn: resources.upload_events.dlq_arn.clone(),
                    region: config.region.clone(),
                    batch_size: 10,
                    wait_secs: opts.poll_wait_secs,
                    duplicate_messages: false,
                },
                clients.sqs.clone(),
                dead_upload_handler,
                shutdown_rx.clone(),
            )));
            // The chunk tasks' dead-letter queue, like ChunkDeadLetterFunction's mapping.
            tasks.push(tokio::spawn(esm::run(
                Mapping {
                    function: "chunk-dlq",
                    queue_url: resources.chunk_tasks.dlq_url.clone(),
                    queue_arn: resources.chunk_tasks.dlq_arn.clone(),
                    region: config.region.clone(),
                    batch_size: 10,
                    wait_secs: opts.poll_wait_secs,
                    duplicate_messages: false,
                },
                clients.sqs.clone(),
                dead_letter_handler,
                shutdown_rx.clone(),
            )));
            let chunk_pollers = if opts.no_chunk_pollers {
                0
            } else {
                opts.chunk_concurrency.max(1)
            };
            for _ in 0..chunk_pollers {
                tasks.push(tokio::spawn(esm::run(
                    mapping(
                        "chunk",
                        &resources.chunk_tasks,
                        spec.chunk_tasks.batch_size,
                        opts.duplicate_chunk_messages,
                    ),
                    clients.sqs.clone(),
                    chunk_handler.clone(),
                    shutdown_rx.clone(),
                )));
            }
            // The agent queue -> AgentWorkerFunction (conversation turns, continuations).
            let agent_handler: Handler = Arc::new(move |ev| {
                let st = agent.clone();
                Box::pin(async move { tessera_agent::handle(&st, ev).await })
            });
            for _ in 0..opts.agent_concurrency.max(1) {
                tasks.push(tokio::spawn(esm::run(
                    mapping(
                        "agent",
                        &resources.agent_tasks,
                        spec.agent_tasks.batch_size,
                        false,
                    ),
                    clients.sqs.clone(),
                    agent_handler.clone(),
                    shutdown_rx.clone(),
                )));
            }
        }
        tracing::info!(http = port, emulator = %emulator_url, "local stack running");
        Ok(LocalStack {
            http_url: format!("http://127.0.0.1:{port}"),
            emulator_url,
            config,
            function_env,
            clients,
            resources,
            key,
            ws,
            agent_model,
            shutdown,
            tasks,
            emulator,
        })
    }

    /// A token the gateway accepts, for `sub`, valid for 12 hours.
    pub fn token(&self, sub: &str) -> String {
        self.key.mint(sub, Duration::from_secs(12 * 3600))
    }

    /// Whether this stack started the emulator (and will stop it).
    pub fn started_emulator(&self) -> bool {
        self.emulator.as_ref().is_some_and(Emulator::started_here)
    }

    /// Stops the gateway and pollers (in-flight handlers finish their batch), then the emulator
    /// if this stack started it.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks.drain(..) {
            if tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .is_err()
            {
                tracing::warn!("a stack task did not stop within 30 s");
            }
        }
        if let Some(em) = self.emulator.take() {
            let _ = tokio::task::spawn_blocking(move || em.stop()).await;
        }
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Provisioned {
    /// Placeholder names for the configuration that builds the clients that provision.
    fn bootstrap() -> Self {
        let q = provision::QueueNames {
            name: "bootstrap".into(),
            url: "http://bootstrap".into(),
            arn: "bootstrap".into(),
            dlq_name: "bootstrap".into(),
            dlq_url: "http://bootstrap".into(),
            dlq_arn: "bootstrap".into(),
        };
        Provisioned {
            bucket: "bootstrap".into(),
            table: "bootstrap".into(),
            upload_events: q.clone(),
            chunk_tasks: q.clone(),
            agent_tasks: q,
        }
    }
}

/// The stack's own configuration variables: names, endpoint and settings, then
/// [`StackOptions::env`]. Every function of the stack runs with them, as every function in
/// template.yaml gets the queue URLs.
fn stack_env(
    opts: &StackOptions,
    endpoint: &str,
    resources: &Provisioned,
) -> HashMap<&'static str, String> {
    let mut m: HashMap<&'static str, String> = HashMap::new();
    m.insert("TESSERA_AWS_ENDPOINT", endpoint.to_string());
    m.insert("TESSERA_BUCKET", resources.bucket.clone());
    m.insert("TESSERA_JOBS_TABLE", resources.table.clone());
    m.insert("TESSERA_CHUNK_QUEUE_URL", resources.chunk_tasks.url.clone());
    m.insert("TESSERA_AGENT_QUEUE_URL", resources.agent_tasks.url.clone());
    m.insert("TESSERA_CHUNK_SIZE", opts.chunk_size.to_string());
    m.insert("AWS_REGION", opts.region.clone());
    if let Some(max) = opts.max_upload_bytes {
        m.insert("TESSERA_MAX_UPLOAD_BYTES", max.to_string());
    }
    if let Some(max) = opts.export_sync_max_bytes {
        m.insert("TESSERA_EXPORT_SYNC_MAX_BYTES", max.to_string());
    }
    if let Some(size) = opts.export_range_size {
        m.insert("TESSERA_EXPORT_RANGE_SIZE", size.to_string());
    }
    for (k, v) in &opts.env {
        m.insert(k, v.clone());
    }
    m
}

/// The configuration of `env`, then `TESSERA_*` variables from the process environment for
/// everything it does not set (presign TTL, sniff bytes, job TTL, and the agent's
/// `TESSERA_MODEL_ID` / `TESSERA_BEDROCK_ENDPOINT`).
fn config_of(env: &HashMap<&'static str, String>) -> Result<Config, ConfigError> {
    Config::from_lookup(|k| env.get(k).cloned().or_else(|| std::env::var(k).ok()))
}
