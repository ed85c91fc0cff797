//! Killed workers (issue 15, item 3): the chunk function runs as OS processes of its own
//! ([`tessera_infra::worker`], what `tessera worker chunk` runs) beside a stack that leaves the
//! chunk queue to them (`StackOptions::no_chunk_pollers`); a test SIGKILLs one in the middle of
//! its work, as Lambda's timeout or a crash would, starts a fresh one, and checks the job ends
//! `completed` with exactly the outputs of the same job run without a kill.
//!
//! "In the middle" is made certain with the fault proxy ([`tessera_infra::faults`]): it holds
//! one S3 answer of the worker (the chunk's source read; the finalizer's `clean.csv` write)
//! for minutes, the test waits until the proxy has that request in hand, and kills then.
//!
//! The worker processes are this test binary run again (`--exact worker_process` with
//! [`WORKER_ENV`] set and the stack's [`LocalStack::function_env`]), so they always run the code
//! under test; `tessera worker chunk` calls the same [`tessera_infra::worker::run_chunk`].

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_e2e::*;
use tessera_infra::faults::{Fault, FaultProxy, Rule, RuleHandle, Service};
use tessera_infra::worker::WorkerOptions;
use tessera_shared::store::objects::ObjectStore;

/// Set in a worker process: [`worker_process`] then runs the chunk worker until it is killed.
const WORKER_ENV: &str = "TESSERA_KILL_TEST_WORKER";

/// Bytes per chunk: the file below makes 3 chunks.
const CHUNK: u64 = 16 * 1024;
/// The chunk queue's visibility timeout in these tests: how long a killed worker's message stays
/// hidden before SQS hands it out again.
const VISIBILITY_SECS: u32 = 6;
/// `TESSERA_STALE_FINALIZING_SECS` of the finalizer test. It must stay below the visibility
/// timeout minus the time from a message's receipt to the move to `finalizing` (docs/pipeline.md
/// § *A finalizer that dies*): 6 - 2 leaves 4 s for that on this loaded machine.
const STALE_FINALIZING_SECS: u32 = 2;
/// How long the proxy holds the answer the killed worker waits for (far past the test).
const HOLD: Duration = Duration::from_secs(300);
const JOB_TIMEOUT: Duration = Duration::from_secs(60);

/// Not a test of its own: the body of the worker processes the tests start (it returns at once
/// in a normal run).
#[test]
fn worker_process() {
    if std::env::var_os(WORKER_ENV).is_none() {
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,tessera_infra=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let config = tessera_shared::config::Config::from_env()
            .unwrap_or_else(|e| panic!("worker configuration: {e}"));
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        let opts = WorkerOptions {
            concurrency: 1,
            wait_secs: 1,
        };
        tessera_infra::worker::run_chunk(Arc::new(config), &opts, stopped)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    });
}

/// A chunk worker process.
struct Worker {
    child: tokio::process::Child,
    log: PathBuf,
}

impl Worker {
    /// Starts a worker with the stack's function configuration; its log goes to a file.
    fn start(stack: &LocalStack, name: &str) -> Worker {
        let dir = std::env::temp_dir().join("tessera-kill");
        std::fs::create_dir_all(&dir).expect("log directory");
        let log = dir.join(format!("{name}-{}.log", std::process::id()));
        let file = std::fs::File::create(&log).expect("worker log");
        let child = tokio::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "worker_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WORKER_ENV, "1")
            // The pipeline's info lines say which path a worker took (tests read them).
            .env("RUST_LOG", "warn,tessera_infra=info,tessera_shared=info")
            .envs(stack.function_env.iter().map(|(k, v)| (k, v)))
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("starting a worker process");
        Worker { child, log }
    }

    /// SIGKILL, as Lambda's timeout or a crash: no cleanup, no message handed back.
    async fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL");
        let status = self.child.wait().await.expect("worker exit");
        // Killed by signal 9, SIGKILL.
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The file of both tests: quoted delimiters and newlines, plus records with a field too few
/// (rejected), over 3 chunks.
fn data() -> Vec<u8> {
    let mut out = Vec::new();
    for (i, line) in tricky_csv(40_000, 15, "\n")
        .split_inclusive(|b| *b == b'\n')
        .enumerate()
    {
        out.extend_from_slice(line);
        if i > 0 && i % 97 == 0 {
            out.extend_from_slice(format!("{i},short,row\n").as_bytes());
        }
    }
    out
}

/// What must equal between the job run with a kill and without.
#[derive(Debug, PartialEq)]
struct Outputs {
    rows: Value,
    rejected_rows: Value,
    columns: Value,
    profile: Value,
    clean: Vec<u8>,
    rejected: Vec<u8>,
}

async fn outputs(stack: &LocalStack, c: &Client, job: &Value) -> Outputs {
    let id = job["job_id"].as_str().expect("job_id");
    let objects = ObjectStore::new(stack.clients.s3.clone(), &stack.config.bucket);
    let read = |name: &str| {
        let key = format!("results/alice/{id}/{name}");
        let objects = &objects;
        async move {
            objects
                .read_all(&key)
                .await
                .unwrap_or_else(|e| panic!("{key}: {e}"))
        }
    };
    let profile = c.get(&format!("/v1/jobs/{id}/profile")).await;
    assert_eq!(profile.status, 200, "{:?}", profile.body);
    Outputs {
        rows: job["rows"].clone(),
        rejected_rows: job["rejected_rows"].clone(),
        columns: job["columns"].clone(),
        profile: profile.body,
        clean: read("clean.csv").await,
        rejected: read("rejected.csv").await,
    }
}

/// The job on a stack with its usual in-process chunk pollers, no faults, no kill.
async fn baseline(data: &[u8]) -> Outputs {
    let stack = stack_with(|o| o.chunk_size = CHUNK).await;
    let alice = Client::new(&stack, "alice");
    let id = alice
        .upload("k.csv", data.len() as u64, data.to_vec())
        .await;
    let done = alice.wait_final(&id, JOB_TIMEOUT).await;
    assert_eq!(done["state"], "completed", "baseline: {done}");
    assert_eq!(done["progress"]["chunks_total"], 3, "baseline: {done}");
    let out = outputs(&stack, &alice, &done).await;
    let records = reference_records(data).len() as u64;
    let (rows, rejected) = (
        out.rows.as_u64().unwrap(),
        out.rejected_rows.as_u64().unwrap(),
    );
    assert!(rejected > 0, "the file has rejected records: {done}");
    assert_eq!(
        rows + rejected,
        records,
        "baseline: rows in = clean + rejected"
    );
    stack.shutdown().await;
    out
}

/// A stack whose AWS calls go through a fault proxy, whose chunk queue is left to worker
/// processes, with a short visibility timeout.
async fn kill_stack(env: Vec<(&'static str, String)>) -> (LocalStack, FaultProxy) {
    let proxy = FaultProxy::start(emulator_url())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = proxy.url.clone();
    let stack = stack_with(|o| {
        o.emulator_url = Some(url);
        o.chunk_size = CHUNK;
        o.no_chunk_pollers = true;
        o.chunk_visibility_secs = Some(VISIBILITY_SECS);
        o.upload_visibility_secs = Some(3);
        o.env.extend(env);
    })
    .await;
    (stack, proxy)
}

async fn state(c: &Client, id: &str) -> Value {
    let a = c.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    a.body
}

/// Waits until the job is in `want` (the planner has queued its chunks, nobody works them yet).
async fn wait_state(c: &Client, id: &str, want: &str) {
    let until = Instant::now() + JOB_TIMEOUT;
    loop {
        let job = state(c, id).await;
        if job["state"] == want {
            return;
        }
        assert!(Instant::now() < until, "job never reached {want}: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the proxy holds the request the rule picks.
async fn wait_held(hold: &RuleHandle, worker: &Worker, what: &str) {
    let until = Instant::now() + JOB_TIMEOUT;
    while hold.injected() == 0 {
        assert!(
            Instant::now() < until,
            "the worker never sent {what}; its log:\n{}",
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_chunk_is_replaced_and_the_job_completes_exactly() {
    let started = Instant::now();
    let data = data();
    let expected = baseline(&data).await;
    let (stack, proxy) = kill_stack(vec![]).await;
    let alice = Client::new(&stack, "alice");
    let id = alice.upload("k.csv", data.len() as u64, data.clone()).await;
    wait_state(&alice, &id, "processing").await;

    // Worker A's first chunk reads the source; the proxy holds that read. Killing A then is
    // killing it mid-chunk: its message was received, nothing of the chunk was committed.
    let hold = proxy.plan.add(
        Rule::new(Service::S3, "GetObject", 1, Fault::Delay(HOLD))
            .key_contains(&format!("{id}/source")),
    );
    let mut a = Worker::start(&stack, "mid-chunk-a");
    wait_held(&hold, &a, "its chunk's source read").await;
    a.kill().await;
    let killed = Instant::now();
    let job = state(&alice, &id).await;
    assert_eq!(job["state"], "processing", "{job}");
    assert_eq!(job["progress"]["chunks_done"], 0, "{job}");

    // Worker B runs the two chunks nobody took at once, and A's after its visibility timeout.
    let mut b = Worker::start(&stack, "mid-chunk-b");
    let done = alice.wait_final(&id, JOB_TIMEOUT).await;
    let after_kill = killed.elapsed();
    assert_eq!(
        done["state"],
        "completed",
        "{done}\nworker B's log:\n{}",
        b.log()
    );
    assert_eq!(outputs(&stack, &alice, &done).await, expected);
    assert_eq!(hold.injected(), 1);
    println!(
        "mid-chunk kill: completed {:.1} s after the kill (visibility timeout {VISIBILITY_SECS} s), test {:.1} s",
        after_kill.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    b.kill().await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finalizer_killed_mid_write_is_taken_over_and_the_job_completes_exactly() {
    let started = Instant::now();
    let data = data();
    let expected = baseline(&data).await;
    let (stack, proxy) = kill_stack(vec![(
        "TESSERA_STALE_FINALIZING_SECS",
        STALE_FINALIZING_SECS.to_string(),
    )])
    .await;
    let alice = Client::new(&stack, "alice");
    let id = alice.upload("k.csv", data.len() as u64, data.clone()).await;
    wait_state(&alice, &id, "processing").await;

    // Worker A runs the three chunks, wins the finalization with the last, and writes the
    // outputs: the proxy holds its write of clean.csv, and A is killed there.
    let hold = proxy.plan.add(
        Rule::new(Service::S3, "PutObject", 1, Fault::Delay(HOLD))
            .key_contains(&format!("{id}/clean.csv")),
    );
    let mut a = Worker::start(&stack, "finalizer-a");
    wait_held(&hold, &a, "its write of clean.csv").await;
    let job = state(&alice, &id).await;
    assert_eq!(job["state"], "finalizing", "{job}");
    a.kill().await;
    let killed = Instant::now();

    // Worker B gets the last chunk's message back after the visibility timeout, finds the job
    // `finalizing` with no change for longer than the stale age, takes the finalization over
    // and completes it.
    let mut b = Worker::start(&stack, "finalizer-b");
    let done = alice.wait_final(&id, JOB_TIMEOUT).await;
    let after_kill = killed.elapsed();
    assert_eq!(
        done["state"],
        "completed",
        "{done}\nworker B's log:\n{}",
        b.log()
    );
    assert!(
        b.log().contains("taking over a stalled finalization"),
        "B completed the job by a takeover; its log:\n{}",
        b.log()
    );
    assert_eq!(outputs(&stack, &alice, &done).await, expected);
    assert_eq!(hold.injected(), 1);
    println!(
        "finalizer kill: completed {:.1} s after the kill (visibility {VISIBILITY_SECS} s, stale age {STALE_FINALIZING_SECS} s), test {:.1} s",
        after_kill.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    b.kill().await;
    stack.shutdown().await;
}

/// The finalization of a job whose chunks all finished while it was still `queued` (a small job
/// and a slow planner): no chunk worker could claim it then, and the planner used to finalize it
/// itself, where a death was never taken over (its notification, delivered again, is a duplicate
/// once the job is past `queued`). The planner now hands it to the chunk queue, so a killed
/// finalizer is taken over as above. Before that change this test failed: the held write was the
/// (unkillable, in-process) planner's and the job stayed `finalizing`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finalization_the_planner_hands_over_survives_a_killed_finalizer() {
    let started = Instant::now();
    let data = data();
    let expected = baseline(&data).await;
    let (stack, proxy) = kill_stack(vec![(
        "TESSERA_STALE_FINALIZING_SECS",
        STALE_FINALIZING_SECS.to_string(),
    )])
    .await;
    let alice = Client::new(&stack, "alice");
    let created = alice.create_upload("k.csv", data.len() as u64).await;
    let id = created["job_id"].as_str().expect("job_id").to_string();
    // The planner's move `queued -> processing` answers 10 s late: worker A runs all three
    // chunks meanwhile, while the job is `queued`.
    let slow_planner = proxy.plan.add(
        Rule::new(
            Service::DynamoDb,
            "UpdateItem",
            1,
            Fault::Delay(Duration::from_secs(10)),
        )
        .body_contains("\"processing\""),
    );
    let hold = proxy.plan.add(
        Rule::new(Service::S3, "PutObject", 1, Fault::Delay(HOLD))
            .key_contains(&format!("{id}/clean.csv")),
    );
    let mut a = Worker::start(&stack, "handed-over-a");
    let put = alice
        .http
        .put(created["upload"]["url"].as_str().expect("upload.url"))
        .body(data.clone())
        .send()
        .await
        .expect("presigned PUT");
    assert_eq!(put.status(), 200);
    wait_held(&hold, &a, "its write of clean.csv").await;
    assert_eq!(slow_planner.injected(), 1, "the planner was slowed");
    let job = state(&alice, &id).await;
    assert_eq!(job["state"], "finalizing", "{job}");
    // A claimed the finalization from the task the planner sent again, not from its own last
    // chunk (whose commit found the job still `queued`).
    assert!(
        a.log().contains("chunk already done (redelivery)"),
        "A finalized from the planner's hand-over; its log:\n{}",
        a.log()
    );
    a.kill().await;
    let killed = Instant::now();

    let mut b = Worker::start(&stack, "handed-over-b");
    let done = alice.wait_final(&id, JOB_TIMEOUT).await;
    let after_kill = killed.elapsed();
    assert_eq!(
        done["state"],
        "completed",
        "{done}\nworker A's log:\n{}\nworker B's log:\n{}",
        a.log(),
        b.log()
    );
    assert!(
        b.log().contains("taking over a stalled finalization"),
        "B completed the job by a takeover; its log:\n{}",
        b.log()
    );
    assert_eq!(outputs(&stack, &alice, &done).await, expected);
    println!(
        "handed-over finalizer kill: completed {:.1} s after the kill, test {:.1} s",
        after_kill.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    b.kill().await;
    stack.shutdown().await;
}
