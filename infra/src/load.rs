//! `tessera load`: many concurrent jobs from several owners on the local stack, with API traffic
//! beside them, every job checked exact against the engine run locally on the same bytes, and
//! the figures printed: API latency, job completion times, the process's peak memory. Then the
//! same owners again beside a hostile owner (header bombs, declared-size mismatches): the other
//! owners' completion times with and without it, and a bound on the slowdown (`docs/local.md`
//! § *Load*). Not a timed test: a command to run by hand; `tests/load.rs` runs a small
//! exactness-only version.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::stack::{LocalStack, StackOptions};

/// What a load run does.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Owners sending the ordinary jobs.
    pub owners: usize,
    /// Jobs in all, spread over the owners.
    pub jobs: usize,
    /// File sizes, cycled over the jobs (bytes).
    pub sizes: Vec<usize>,
    /// Chunk size of the stack.
    pub chunk_size: u64,
    /// Chunk workers of the stack (Lambda concurrency).
    pub chunk_concurrency: usize,
    /// Run a second time beside a hostile owner, and check the bound.
    pub hostile: bool,
    /// What the hostile owner uploads: header bombs, size mismatches (both by default).
    pub bombs: bool,
    pub liars: bool,
    /// How many uploads the hostile owner makes in all (4 at a time, started with the others).
    pub hostile_uploads: usize,
    /// Bound on the other owners' p99 completion time beside the hostile owner: at most
    /// `ratio` × the p99 without it, plus `slack`.
    pub bound_ratio: f64,
    pub bound_slack: Duration,
    /// Give up on a job after this long.
    pub job_timeout: Duration,
    /// Where the local reference outputs go.
    pub work_dir: std::path::PathBuf,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            owners: 10,
            jobs: 50,
            sizes: vec![10_000, 60_000, 300_000, 1_000_000, 2_500_000],
            chunk_size: 512 * 1024,
            chunk_concurrency: 4,
            hostile: true,
            bombs: true,
            liars: true,
            hostile_uploads: 16,
            bound_ratio: 3.0,
            bound_slack: Duration::from_secs(10),
            job_timeout: Duration::from_secs(600),
            work_dir: std::env::temp_dir().join("tessera-load"),
        }
    }
}

/// The figures of one run.
#[derive(Debug, Clone, Default)]
pub struct RunFigures {
    pub jobs: usize,
    pub exact: usize,
    /// Completion times of the ordinary jobs (upload start to `completed` seen), seconds.
    pub completion: Vec<f64>,
    /// Every API call's latency, milliseconds.
    pub api_latency: Vec<f64>,
    pub api_errors: usize,
    /// `GET /v1/health` latency, milliseconds: the health route touches no AWS service, so it
    /// shows whether the stack's own runtime keeps answering (not the emulator).
    pub health_latency: Vec<f64>,
    /// The hostile owner's jobs, by final error code.
    pub hostile: std::collections::BTreeMap<String, usize>,
    pub wall: f64,
}

/// Both runs, and whether the bound held.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub quiet: RunFigures,
    pub beside_hostile: Option<RunFigures>,
    pub peak_rss_kib: u64,
    pub bound_ok: bool,
}

/// The `q` quantile (0..=1) of `v` (nearest rank).
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

/// A CSV of at least `min_bytes`: `id,name,amount,note`; every 7th record has an extra field
/// (rejected), every 11th a quoted note with a comma and a line break.
pub fn load_csv(min_bytes: usize, seed: u64) -> Vec<u8> {
    let mut s = String::with_capacity(min_bytes + 128);
    s.push_str("id,name,amount,note\n");
    let mut i = 0u64;
    while s.len() < min_bytes {
        let note = if i.is_multiple_of(11) {
            format!("\"a, b\nline {i}\"")
        } else {
            format!("note {}", (i * 31 + seed) % 977)
        };
        let amount = (i * 7919 + seed) % 100_000;
        if i % 7 == 3 {
            s += &format!("{i},name {i},{amount},{note},extra\n");
        } else {
            s += &format!("{i},name {i},{amount},{note}\n");
        }
        i += 1;
    }
    s.into_bytes()
}

/// A header bomb: `names` copies of one column name (every one must be made unique), a few
/// records.
fn header_bomb(names: usize) -> Vec<u8> {
    let mut s = vec!["x"; names].join(",");
    s.push('\n');
    for r in 0..3 {
        s.push_str(&vec![r.to_string(); names].join(","));
        s.push('\n');
    }
    s.into_bytes()
}

/// One caller of the stack's API that records every call's latency.
#[derive(Clone)]
struct Caller {
    http: reqwest::Client,
    base: String,
    token: String,
    latencies: Arc<Mutex<(Vec<f64>, usize)>>,
}

impl Caller {
    async fn call(&self, rb: reqwest::RequestBuilder) -> Result<(u16, Value)> {
        let t = Instant::now();
        let resp = rb.bearer_auth(&self.token).send().await;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let mut l = self.latencies.lock().await;
        l.0.push(ms);
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                l.1 += 1;
                return Err(e.into());
            }
        };
        let status = resp.status().as_u16();
        if status >= 500 {
            l.1 += 1;
        }
        drop(l);
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    async fn get(&self, path: &str) -> Result<(u16, Value)> {
        self.call(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// Creates an upload declaring `declared` bytes and PUTs `data`; the job id.
    async fn upload(&self, name: &str, declared: usize, data: Vec<u8>) -> Result<String> {
        let (status, body) = self
            .call(
                self.http
                    .post(format!("{}/v1/uploads", self.base))
                    .json(&json!({"filename": name, "size": declared, "content_type": "text/csv"})),
            )
            .await?;
        if status != 201 {
            bail!("POST /v1/uploads answered {status}: {body}");
        }
        let url = body["upload"]["url"].as_str().context("upload.url")?;
        let mut put = self.http.put(url).body(data);
        if let Some(h) = body["upload"]["headers"].as_object() {
            for (k, v) in h {
                put = put.header(k.as_str(), v.as_str().unwrap_or_default());
            }
        }
        let r = put.send().await?;
        if !r.status().is_success() {
            bail!("PUT answered {}", r.status());
        }
        Ok(body["job_id"].as_str().context("job_id")?.to_string())
    }

    /// Polls the job until it is final (the status polling of the load).
    async fn wait_final(&self, id: &str, timeout: Duration) -> Result<Value> {
        let until = Instant::now() + timeout;
        loop {
            let (status, body) = self.get(&format!("/v1/jobs/{id}")).await?;
            if status == 200
                && matches!(
                    body["state"].as_str(),
                    Some("completed" | "failed" | "cancelled")
                )
            {
                return Ok(body);
            }
            if Instant::now() > until {
                bail!("job {id} not final after {timeout:?}: {body}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The expected outcome of a file: the engine's counts and outputs on this machine.
struct Expected {
    rows: u64,
    rejected: u64,
    clean: Vec<u8>,
    rejected_csv: Vec<u8>,
}

fn expected(data: &[u8], dir: &std::path::Path) -> Result<Expected> {
    use tessera_shared::engine::file::{process_file, ProcessOptions};
    std::fs::create_dir_all(dir)?;
    let src = dir.join("src.csv");
    std::fs::write(&src, data)?;
    let opts = ProcessOptions {
        chunk_size: 1 << 20,
        workers: 1,
        out_dir: dir.join("out"),
        ..ProcessOptions::default()
    };
    let s = process_file(&src, &opts).map_err(|e| anyhow::anyhow!("tessera process: {e}"))?;
    Ok(Expected {
        rows: s.rows,
        rejected: s.rejected_rows,
        clean: std::fs::read(dir.join("out/clean.csv"))?,
        rejected_csv: std::fs::read(dir.join("out/rejected.csv"))?,
    })
}

/// The peak resident memory of this process (the stack runs in it), KiB.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Starts a stack on the emulator at `emulator_url` for one run.
async fn start_stack(opts: &LoadOptions, emulator_url: &str) -> Result<LocalStack> {
    let mut so = StackOptions::for_tests(emulator_url);
    so.chunk_size = opts.chunk_size;
    so.chunk_concurrency = opts.chunk_concurrency;
    LocalStack::start(so)
        .await
        .context("the local stack could not start")
}

/// One run: the ordinary owners' jobs (and the hostile owner's uploads while they run).
async fn run_once(
    opts: &LoadOptions,
    stack: &LocalStack,
    files: &[(Vec<u8>, Arc<Expected>)],
    hostile: bool,
) -> Result<RunFigures> {
    let latencies = Arc::new(Mutex::new((Vec::new(), 0usize)));
    let http = reqwest::Client::new();
    let caller = |sub: &str| Caller {
        http: http.clone(),
        base: stack.http_url.clone(),
        token: stack.token(sub),
        latencies: latencies.clone(),
    };
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Instant::now();

    // The hostile owner: header bombs (9,999 copies of one name: the most columns allowed,
    // each to be made unique) and uploads of 2 MB declared as 10 bytes, 4 at a time, until the
    // others are done.
    let hostile_task = hostile.then(|| {
        let c = caller("hostile");
        let done = done.clone();
        let timeout = opts.job_timeout;
        let budget = opts.hostile_uploads;
        let kinds: Vec<bool> = [(opts.bombs, true), (opts.liars, false)]
            .iter()
            .filter(|k| k.0)
            .map(|k| k.1)
            .collect();
        tokio::spawn(async move {
            let bomb = header_bomb(9_999);
            let big = load_csv(2_000_000, 99);
            let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
            let mut n = 0u64;
            while (n as usize) < budget && !done.load(std::sync::atomic::Ordering::SeqCst) {
                let mut ids = Vec::new();
                for k in 0..4.min(budget - n as usize) {
                    n += 1;
                    let r = if kinds[k % kinds.len()] {
                        c.upload(&format!("bomb{n}.csv"), bomb.len(), bomb.clone())
                            .await
                    } else {
                        c.upload(&format!("liar{n}.csv"), 10, big.clone()).await
                    };
                    match r {
                        Ok(id) => ids.push(id),
                        Err(e) => *outcomes.entry(format!("upload refused: {e}")).or_default() += 1,
                    }
                }
                for id in ids {
                    let key = match c.wait_final(&id, timeout).await {
                        Ok(b) => match b["state"].as_str() {
                            Some("failed") => {
                                b["error"]["code"].as_str().unwrap_or("?").to_string()
                            }
                            s => s.unwrap_or("?").to_string(),
                        },
                        Err(e) => format!("not final: {e}"),
                    };
                    *outcomes.entry(key).or_default() += 1;
                }
            }
            outcomes
        })
    });

    // The runtime's own responsiveness: GET /v1/health every 200 ms.
    let health = Arc::new(Mutex::new((Vec::new(), 0usize)));
    let prober = {
        let c = Caller {
            latencies: health.clone(),
            ..caller("prober")
        };
        let done = done.clone();
        tokio::spawn(async move {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = c.get("/v1/health").await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    // API traffic beside the jobs: each owner lists its jobs every 500 ms.
    let listers: Vec<_> = (0..opts.owners)
        .map(|o| {
            let c = caller(&format!("owner-{o}"));
            let done = done.clone();
            tokio::spawn(async move {
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    let _ = c.get("/v1/jobs?limit=20").await;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
        })
        .collect();

    // The ordinary jobs, all at once: upload, poll to the end, check exact.
    let jobs: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(j, (data, exp))| {
            let owner = format!("owner-{}", j % opts.owners);
            let c = caller(&owner);
            let (data, exp) = (data.clone(), exp.clone());
            let objects = tessera_shared::store::objects::ObjectStore::new(
                stack.clients.s3.clone(),
                &stack.config.bucket,
            );
            let timeout = opts.job_timeout;
            tokio::spawn(async move {
                let t = Instant::now();
                let id = c.upload(&format!("load{j}.csv"), data.len(), data).await?;
                let fin = c.wait_final(&id, timeout).await?;
                let secs = t.elapsed().as_secs_f64();
                if fin["state"] != "completed" {
                    bail!("job {j} ({id}) ended {fin}");
                }
                let prefix = tessera_shared::keys::results_prefix(&owner, &id);
                let clean = objects.read_all(&format!("{prefix}/clean.csv")).await?;
                let rejected = objects.read_all(&format!("{prefix}/rejected.csv")).await?;
                let exact = fin["rows"] == exp.rows
                    && fin["rejected_rows"] == exp.rejected
                    && clean == exp.clean
                    && rejected == exp.rejected_csv;
                if !exact {
                    bail!(
                        "job {j} ({id}) is not exact: rows {} rejected {} (expected {} and {}), clean.csv {} bytes (expected {}), rejected.csv {} bytes (expected {})",
                        fin["rows"], fin["rejected_rows"], exp.rows, exp.rejected,
                        clean.len(), exp.clean.len(), rejected.len(), exp.rejected_csv.len()
                    );
                }
                Ok(secs)
            })
        })
        .collect();
    let mut completion = Vec::new();
    let mut failures = Vec::new();
    for j in jobs {
        match j.await? {
            Ok(s) => completion.push(s),
            Err(e) => failures.push(e.to_string()),
        }
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    for l in listers {
        l.await?;
    }
    prober.await?;
    let hostile = match hostile_task {
        Some(h) => h.await?,
        None => Default::default(),
    };
    let wall = started.elapsed().as_secs_f64();
    if !failures.is_empty() {
        bail!(
            "{} of {} jobs were not exact:\n  {}",
            failures.len(),
            files.len(),
            failures.join("\n  ")
        );
    }
    let l = latencies.lock().await;
    let health_latency = health.lock().await.0.clone();
    Ok(RunFigures {
        health_latency,
        jobs: files.len(),
        exact: completion.len(),
        completion,
        api_latency: l.0.clone(),
        api_errors: l.1,
        hostile,
        wall,
    })
}

/// Runs the load (and, with `opts.hostile`, again beside the hostile owner) on stacks of its
/// own on the emulator at `emulator_url`.
pub async fn run(opts: &LoadOptions, emulator_url: &str) -> Result<LoadReport> {
    let mut files = Vec::with_capacity(opts.jobs);
    for j in 0..opts.jobs {
        let data = load_csv(opts.sizes[j % opts.sizes.len()], j as u64);
        let exp = expected(&data, &opts.work_dir.join(format!("job{j}")))?;
        files.push((data, Arc::new(exp)));
    }
    let stack = start_stack(opts, emulator_url).await?;
    let quiet = run_once(opts, &stack, &files, false).await;
    stack.shutdown().await;
    let quiet = quiet?;
    eprint!("{}", render_run(opts, &quiet, "without the hostile owner"));
    let beside_hostile = if opts.hostile {
        let stack = start_stack(opts, emulator_url).await?;
        let r = run_once(opts, &stack, &files, true).await;
        stack.shutdown().await;
        Some(r?)
    } else {
        None
    };
    let bound_ok = beside_hostile.as_ref().is_none_or(|h| {
        quantile(&h.completion, 0.99)
            <= opts.bound_ratio * quantile(&quiet.completion, 0.99) + opts.bound_slack.as_secs_f64()
    });
    Ok(LoadReport {
        quiet,
        beside_hostile,
        peak_rss_kib: peak_rss_kib(),
        bound_ok,
    })
}

/// One run's figures as printed.
pub fn render_run(opts: &LoadOptions, f: &RunFigures, name: &str) -> String {
    format!(
            "{name}: {} jobs from {} owners, {} exact; wall {:.1} s\n  job completion s: p50 {:.2}  p99 {:.2}  max {:.2}\n  API latency ms ({} calls, {} errors): p50 {:.1}  p99 {:.1}  max {:.1}\n  /v1/health latency ms ({} calls): p50 {:.1}  p99 {:.1}  max {:.1}\n",
            f.jobs,
            opts.owners,
            f.exact,
            f.wall,
            quantile(&f.completion, 0.5),
            quantile(&f.completion, 0.99),
            quantile(&f.completion, 1.0),
            f.api_latency.len(),
            f.api_errors,
            quantile(&f.api_latency, 0.5),
            quantile(&f.api_latency, 0.99),
            quantile(&f.api_latency, 1.0),
            f.health_latency.len(),
            quantile(&f.health_latency, 0.5),
            quantile(&f.health_latency, 0.99),
            quantile(&f.health_latency, 1.0),
    )
}

/// The report as printed by `tessera load`.
pub fn render(opts: &LoadOptions, r: &LoadReport) -> String {
    let mut out = String::new();
    let line = |f: &RunFigures, name: &str| render_run(opts, f, name);
    out += &line(&r.quiet, "without the hostile owner");
    if let Some(h) = &r.beside_hostile {
        out += &line(h, "beside the hostile owner");
        let outcomes: Vec<String> = h.hostile.iter().map(|(k, n)| format!("{k} x{n}")).collect();
        out += &format!("  hostile owner's jobs: {}\n", outcomes.join(", "));
        out += &format!(
            "bound: p99 beside the hostile owner {:.2} s <= {:.1} x {:.2} s + {:.0} s = {:.2} s: {}\n",
            quantile(&h.completion, 0.99),
            opts.bound_ratio,
            quantile(&r.quiet.completion, 0.99),
            opts.bound_slack.as_secs_f64(),
            opts.bound_ratio * quantile(&r.quiet.completion, 0.99)
                + opts.bound_slack.as_secs_f64(),
            if r.bound_ok { "held" } else { "EXCEEDED" }
        );
    }
    out += &format!(
        "peak RSS of the stack process (stack, load clients and reference runs): {:.1} MiB\n",
        r.peak_rss_kib as f64 / 1024.0
    );
    out
}
