//! The `tessera` command: run the local stack (`up`), try it end to end (`demo`), mint a token
//! the local gateway accepts (`token`), and process or query a local file without any AWS
//! (`process`, `query`, `rules suggest`); run the chunk function as a process of its own
//! (`worker chunk`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use tessera_infra::auth::{tessera_home, JwtKey};
use tessera_infra::demo::DemoOptions;
use tessera_infra::stack::{AgentModelSource, KeySource, LocalStack, StackOptions};
use tessera_infra::upload::{Api, UploadOptions};
use tessera_infra::worker::WorkerOptions;

mod cli;
use cli::model::ModelArgs;
use cli::parse_size;

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "Tessera's local runtime: the whole serverless stack on one machine."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the AWS emulator (if none runs), create the resources, serve the API on
    /// 127.0.0.1 and run the queue pollers until Ctrl-C.
    ///
    /// The agent's model comes from the environment: TESSERA_MODEL_ID (a Bedrock model or
    /// inference profile id; unset: no model, rules come from profile suggestions) reached at
    /// TESSERA_BEDROCK_ENDPOINT, or, when that is unset, at real Bedrock with this machine's AWS
    /// credentials and AWS_REGION while everything else stays on the emulator.
    Up(StackArgs),
    /// Upload FILE through the API (one presigned PUT, or parallel parts above the multipart
    /// threshold), follow the job, print the totals, the column profile and an example query.
    Demo {
        /// The CSV file to upload.
        file: PathBuf,
        /// Print the final job snapshot as JSON on stdout instead of a summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        upload: DemoUploadArgs,
        #[command(flatten)]
        stack: StackArgs,
    },
    /// Load the local stack: JOBS concurrent jobs of mixed sizes from OWNERS owners with API
    /// traffic (job list, status polling), every job checked exact against the engine run here;
    /// then again beside a hostile owner (header bombs, declared-size mismatches). Prints API
    /// latency, job completion times and peak memory, and exits non-zero when a job is not
    /// exact or the other owners' p99 completion beside the hostile owner passes
    /// RATIO x the p99 without it + SLACK seconds (docs/local.md § *Load*). Starts its own
    /// emulator on a free port.
    Load {
        #[arg(long, default_value_t = 50)]
        jobs: usize,
        #[arg(long, default_value_t = 10)]
        owners: usize,
        /// Byte-range size of chunk tasks.
        #[arg(long, default_value_t = 512 * 1024)]
        chunk_size: u64,
        /// Concurrent chunk workers (Lambda concurrency).
        #[arg(long, default_value_t = 4)]
        chunk_concurrency: usize,
        /// Skip the run beside the hostile owner.
        #[arg(long)]
        no_hostile: bool,
        /// The hostile owner sends no header bombs (only size mismatches).
        #[arg(long)]
        no_bombs: bool,
        /// The hostile owner sends no size mismatches (only header bombs).
        #[arg(long)]
        no_liars: bool,
        #[arg(long, default_value_t = 3.0)]
        ratio: f64,
        #[arg(long, default_value_t = 10)]
        slack_secs: u64,
    },
    /// Print a token the local gateway accepts (`Authorization: Bearer <token>`).
    Token {
        /// The `sub` claim: the owner of the jobs made with this token.
        #[arg(long, default_value = "demo-user")]
        sub: String,
        /// Hours until the token expires.
        #[arg(long, default_value_t = 12)]
        hours: u64,
    },
    /// Process a local file with the chunk engine on this machine's cores (no AWS, no emulator):
    /// writes clean.csv, rejected.csv, profile.json and summary.json (counts, violations per rule).
    Process {
        file: PathBuf,
        /// Bytes per chunk.
        #[arg(long, default_value_t = 64 << 20)]
        chunk_size: u64,
        /// Worker threads (0 = all cores).
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// Output directory.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Only write profile.json.
        #[arg(long)]
        profile_only: bool,
        /// Field delimiter (one ASCII character, `\t` for tab); sniffed when absent.
        #[arg(long)]
        delimiter: Option<String>,
        /// A rule document (JSON, docs/rules.md) to check, clean and mask the rows with;
        /// `one_of` references are read as local CSV files (paths relative to the rule file).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// File holding the key of `token` masks (its bytes, trailing newline removed).
        #[arg(long)]
        mask_key_file: Option<PathBuf>,
    },
    /// Answer a query document (docs/query.md) over a local CSV file with the query engine on
    /// this machine's cores, range by range like a query job (no AWS, no emulator).
    Query {
        /// The CSV file.
        file: PathBuf,
        /// The query document (JSON); or give it with --query.
        query_file: Option<PathBuf>,
        /// The query document (JSON).
        #[arg(long = "query")]
        query: Option<PathBuf>,
        /// Bytes per range.
        #[arg(long, default_value_t = 64 << 20)]
        chunk_size: u64,
        /// Worker threads (0 = all cores).
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// Groups allowed before the query fails with too_many_groups.
        #[arg(long, default_value_t = 1_000_000)]
        max_groups: usize,
        /// Print exactly the result object as JSON on stdout instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Predict a job's time to a completed profile on AWS, its cost per GB and the first AWS
    /// limit that binds, from figures measured here (docs/scale.md); also a 1 TB job and a
    /// fleet of concurrent jobs of mixed sizes.
    Model(ModelArgs),
    /// Run a function's queue worker in this process, configured from the environment
    /// (TESSERA_AWS_ENDPOINT, TESSERA_BUCKET, TESSERA_JOBS_TABLE, TESSERA_CHUNK_QUEUE_URL, ...,
    /// as a Lambda function is), until SIGTERM or Ctrl-C. Pair it with a stack that leaves that
    /// queue alone (docs/local.md § *Worker processes*).
    Worker {
        #[command(subcommand)]
        function: WorkerFunction,
    },
    /// Rule documents for local files: `tessera rules suggest FILE [--out RULES.json]`.
    Rules {
        #[command(subcommand)]
        command: cli::rules::RulesCommand,
    },
}

#[derive(Subcommand)]
enum WorkerFunction {
    /// The chunk function: poll the chunk queue (TESSERA_CHUNK_QUEUE_URL) and run each task
    /// through the chunk handler, deleting what succeeded, as Lambda's event-source mapping does.
    Chunk {
        /// Concurrent pollers (Lambda concurrency).
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Long-poll wait in seconds (1-20); a clean stop waits for the last poll.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
        wait_secs: u32,
    },
}

#[derive(Args, Clone)]
struct DemoUploadArgs {
    /// Part size of a multipart upload (5MiB-5GiB), e.g. 16MiB; default: the API's.
    #[arg(long, value_parser = parse_size)]
    part_size: Option<u64>,
    /// Parts uploaded at once (memory used: this many parts).
    #[arg(long, default_value_t = 4)]
    parallel_parts: usize,
}

#[derive(Args, Clone)]
struct StackArgs {
    /// Port of the local API on 127.0.0.1.
    #[arg(long, env = "TESSERA_HTTP_PORT", default_value_t = 3000)]
    port: u16,
    /// Port of the AWS emulator on 127.0.0.1 (started there when none answers).
    #[arg(long, env = "TESSERA_EMULATOR_PORT", default_value_t = tessera_infra::emulator::DEFAULT_PORT)]
    emulator_port: u16,
    /// Byte-range size of chunk tasks.
    #[arg(long, env = "TESSERA_CHUNK_SIZE", default_value_t = tessera_shared::config::DEFAULT_CHUNK_SIZE)]
    chunk_size: u64,
    /// Concurrent chunk workers (Lambda concurrency).
    #[arg(long, default_value_t = 2)]
    chunk_concurrency: usize,
}

impl StackArgs {
    fn options(&self) -> StackOptions {
        StackOptions {
            http_port: self.port,
            emulator_port: self.emulator_port,
            chunk_size: self.chunk_size,
            chunk_concurrency: self.chunk_concurrency,
            ..StackOptions::default()
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,tessera_infra=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Token { sub, hours } => {
            let key = JwtKey::load_or_create(&tessera_home())?;
            println!("{}", key.mint(&sub, Duration::from_secs(hours * 3600)));
            Ok(())
        }
        Command::Process {
            file,
            chunk_size,
            workers,
            out,
            profile_only,
            delimiter,
            rules,
            mask_key_file,
        } => process(
            &file,
            chunk_size,
            workers,
            out,
            profile_only,
            delimiter,
            rules.as_deref(),
            mask_key_file.as_deref(),
        ),
        Command::Query {
            file,
            query_file,
            query,
            chunk_size,
            workers,
            max_groups,
            json,
        } => {
            let Some(q) = query.or(query_file) else {
                bail!("give the query document: tessera query FILE QUERY.json (or --query QUERY.json)");
            };
            cli::query::run_query(&file, &q, chunk_size, workers, max_groups, json)
        }
        Command::Model(args) => cli::model::model(args),
        Command::Load {
            jobs,
            owners,
            chunk_size,
            chunk_concurrency,
            no_hostile,
            no_bombs,
            no_liars,
            ratio,
            slack_secs,
        } => {
            let opts = tessera_infra::load::LoadOptions {
                jobs,
                owners: owners.max(1),
                chunk_size,
                chunk_concurrency,
                hostile: !(no_hostile || (no_bombs && no_liars)),
                bombs: !no_bombs,
                liars: !no_liars,
                bound_ratio: ratio,
                bound_slack: Duration::from_secs(slack_secs),
                ..Default::default()
            };
            runtime()?.block_on(load(opts))
        }
        Command::Rules { command } => cli::rules::run(command),
        Command::Up(args) => runtime()?.block_on(up(args)),
        Command::Worker {
            function:
                WorkerFunction::Chunk {
                    concurrency,
                    wait_secs,
                },
        } => runtime()?.block_on(worker_chunk(WorkerOptions {
            concurrency,
            wait_secs,
        })),
        Command::Demo {
            file,
            json,
            upload,
            stack,
        } => runtime()?.block_on(demo(&file, json, upload, stack)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn up(args: StackArgs) -> Result<()> {
    let opts = args.options();
    let stack = LocalStack::start(opts.clone())
        .await
        .context("the local stack could not start")?;
    let home = match &opts.key {
        KeySource::File(d) => d.display().to_string(),
        KeySource::Random => "-".into(),
    };
    let model = match &stack.agent_model {
        AgentModelSource::None => {
            "none (rules from profile suggestions; set TESSERA_MODEL_ID for a model)".to_string()
        }
        AgentModelSource::Given { model_id } => model_id.clone(),
        AgentModelSource::Endpoint { model_id, endpoint } => format!("{model_id} at {endpoint}"),
        AgentModelSource::Bedrock { model_id, region } => {
            format!("{model_id} on Amazon Bedrock in {region} (your AWS credentials; billed)")
        }
    };
    eprintln!(
        "Tessera is running.\n  API:       {}/v1 (try: curl {}/v1/health)\n  emulator:  {}{}\n  bucket:    {}\n  table:     {}\n  queues:    {}, {}, {}\n  model:     {model}\n  token key: {home}/jwt.key\n\nGet a token with `tessera token`, or try `tessera demo tests/data/sample.csv` in another terminal.\nCtrl-C stops everything.",
        stack.http_url,
        stack.http_url,
        stack.emulator_url,
        if stack.started_emulator() { " (started here; stopped on exit)" } else { " (already running; left running)" },
        stack.resources.bucket,
        stack.resources.table,
        stack.resources.upload_events.name,
        stack.resources.chunk_tasks.name,
        stack.resources.agent_tasks.name,
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    eprintln!("stopping...");
    stack.shutdown().await;
    Ok(())
}

async fn load(opts: tessera_infra::load::LoadOptions) -> Result<()> {
    let dir = std::env::temp_dir().join("tessera-load");
    let emulator = tessera_infra::emulator::Emulator::start_on_free_port(&dir)
        .context("the AWS emulator could not start")?;
    eprintln!(
        "load: {} jobs from {} owners{} on {}",
        opts.jobs,
        opts.owners,
        if opts.hostile {
            ", then again beside a hostile owner"
        } else {
            ""
        },
        emulator.url()
    );
    let report = tessera_infra::load::run(&opts, &emulator.url()).await?;
    print!("{}", tessera_infra::load::render(&opts, &report));
    drop(emulator);
    if !report.bound_ok {
        bail!("the other owners' completion time beside the hostile owner exceeded the bound");
    }
    Ok(())
}

async fn worker_chunk(opts: WorkerOptions) -> Result<()> {
    let config = tessera_shared::config::Config::from_env()
        .context("the worker reads its configuration from TESSERA_* variables")?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = stop.send(true);
    });
    tessera_infra::worker::run_chunk(std::sync::Arc::new(config), &opts, stopped).await?;
    Ok(())
}

async fn demo(file: &Path, json: bool, upload: DemoUploadArgs, args: StackArgs) -> Result<()> {
    // Fail before starting anything when the file cannot be read.
    tokio::fs::metadata(file).await.with_context(|| {
        format!(
            "cannot read {}; pass the path of a CSV file",
            file.display()
        )
    })?;
    // Use a running `tessera up` on the port, or start the stack here for the demo's duration.
    let port = args.port;
    let running =
        tokio::task::spawn_blocking(move || tessera_infra::emulator::answers(port)).await?;
    let (base, key, stack) = if running {
        (
            format!("http://127.0.0.1:{port}"),
            JwtKey::load_or_create(&tessera_home())?,
            None,
        )
    } else {
        eprintln!("No API answers on 127.0.0.1:{port}; starting the local stack for this demo...");
        let stack = LocalStack::start(args.options())
            .await
            .context("the local stack could not start")?;
        (stack.http_url.clone(), stack.key.clone(), Some(stack))
    };
    let api = Api {
        http: reqwest::Client::new(),
        base,
        token: key.mint("demo-user", Duration::from_secs(3600)),
    };
    let opts = DemoOptions {
        upload: UploadOptions {
            part_size: upload.part_size,
            concurrency: upload.parallel_parts,
            ..UploadOptions::default()
        },
        ..DemoOptions::default()
    };
    let result = tessera_infra::demo::run(&api, file, &opts).await;
    if let Some(stack) = stack {
        stack.shutdown().await;
    }
    let outcome = result?;
    if json {
        // Scripts read exactly the final snapshot here.
        println!("{}", serde_json::to_string_pretty(&outcome.snapshot)?);
    }
    if outcome.snapshot["state"] != "completed" {
        bail!("{}", tessera_infra::demo::failure(&outcome.snapshot));
    }
    if !json {
        let filename = file.file_name().map(|n| n.to_string_lossy().into_owned());
        print!(
            "{}",
            outcome.render(filename.as_deref().unwrap_or("the file"))
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn process(
    file: &Path,
    chunk_size: u64,
    workers: usize,
    out: PathBuf,
    profile_only: bool,
    delimiter: Option<String>,
    rules: Option<&Path>,
    mask_key_file: Option<&Path>,
) -> Result<()> {
    use tessera_shared::engine::file::{process_file, ProcessOptions};
    if chunk_size == 0 {
        bail!("--chunk-size must be at least 1 byte");
    }
    if !file.is_file() {
        bail!(
            "{} is not a readable file; pass the path of a CSV file",
            file.display()
        );
    }
    let mut opts = ProcessOptions {
        chunk_size,
        workers,
        out_dir: out.clone(),
        profile_only,
        ..ProcessOptions::default()
    };
    if let Some(d) = delimiter {
        let b = match d.as_str() {
            "\\t" | "tab" | "\t" => b'\t',
            s if s.len() == 1 && s.is_ascii() => s.as_bytes()[0],
            _ => bail!("--delimiter must be one ASCII character (or \\t for tab), got {d:?}"),
        };
        opts.dialect.delimiter = Some(b);
    }
    let compiled = match rules {
        Some(r) => Some(compile_rules(file, r, mask_key_file, &opts)?),
        None => None,
    };
    opts.chunk.rules = compiled.clone();
    let summary = process_file(file, &opts).with_context(|| {
        format!(
            "processing {} (outputs in {})",
            file.display(),
            out.display()
        )
    })?;
    println!(
        "{}: {} rows, {} rejected, {} columns, {} bytes in {} chunks ({} re-run) in {:.2} s -> {}",
        file.display(),
        summary.rows,
        summary.rejected_rows,
        summary.columns.len(),
        summary.bytes,
        summary.chunks,
        summary.reruns,
        summary.elapsed_seconds,
        out.display()
    );
    let mut report = serde_json::to_value(&summary)?;
    let failed = compiled.as_ref().and_then(|c| {
        c.threshold_exceeded(
            summary.rows + summary.rule_rejected_rows,
            &summary.violations,
        )
    });
    if let Some(f) = &failed {
        report["failed"] = serde_json::to_value(f)?;
    }
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_vec_pretty(&report)?,
    )
    .with_context(|| format!("writing {}", out.join("summary.json").display()))?;
    for (rule, n) in &summary.violations {
        println!("  rule {rule}: {n} violations");
    }
    if let Some(f) = failed {
        bail!("{f} (outputs are in {})", out.display());
    }
    Ok(())
}

/// Reads, validates and compiles `--rules` against FILE's header.
fn compile_rules(
    file: &Path,
    rules: &Path,
    mask_key_file: Option<&Path>,
    opts: &tessera_shared::engine::file::ProcessOptions,
) -> Result<std::sync::Arc<tessera_shared::engine::rules::CompiledRules>> {
    use std::io::Read as _;
    use tessera_shared::engine::rules::{parse_document, CompiledRules, ResolvedRefs};
    let text = std::fs::read_to_string(rules)
        .with_context(|| format!("reading the rule document {}", rules.display()))?;
    let list = |errs: Vec<tessera_shared::engine::rules::ValidationError>| {
        errs.iter()
            .map(|e| format!("  {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let doc = parse_document(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a valid rule document:\n{}",
            rules.display(),
            list(e)
        )
    })?;
    let refused = tessera_shared::engine::rules::refuse_model_engine(
        &doc,
        "the `model` sentiment engine calls a language model and runs in a deployment's chunk \
         workers (`tessera up`, AWS), not in `tessera process`; use \"engine\": \"lexicon\" \
         here",
    );
    if !refused.is_empty() {
        bail!("{} cannot run here:\n{}", rules.display(), list(refused));
    }
    let mut refs = ResolvedRefs::none();
    let base = rules.parent().unwrap_or(Path::new("."));
    for r in doc.references() {
        let path = base.join(&r.key);
        let data = std::fs::read(&path)
            .with_context(|| format!("reading the reference file {}", path.display()))?;
        let values = tessera_shared::engine::file::read_column_values(&data, &r.column)
            .with_context(|| format!("reading column `{}` of {}", r.column, path.display()))?;
        refs.insert(r, values);
    }
    let key = match mask_key_file {
        Some(p) => {
            let mut k = std::fs::read(p)
                .with_context(|| format!("reading the mask key file {}", p.display()))?;
            while k.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                k.pop();
            }
            if k.is_empty() {
                bail!("the mask key file {} is empty", p.display());
            }
            Some(k)
        }
        None => None,
    };
    let mut head = Vec::new();
    std::fs::File::open(file)
        .with_context(|| format!("opening {}", file.display()))?
        .take(tessera_shared::engine::file::SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .with_context(|| format!("reading {}", file.display()))?;
    let size = std::fs::metadata(file)?.len();
    let sniffed = tessera_shared::engine::sniff_with_size(&head, size, &opts.dialect)
        .with_context(|| format!("reading the header of {}", file.display()))?;
    let compiled =
        CompiledRules::compile(&doc, &sniffed.columns, &refs, key.as_deref()).map_err(|e| {
            anyhow::anyhow!(
                "{} does not fit {}:\n{}",
                rules.display(),
                file.display(),
                list(e)
            )
        })?;
    Ok(std::sync::Arc::new(compiled))
}
