//! The scale model: how long a job (or a fleet of jobs) takes on AWS, what it costs, and which
//! AWS limit binds first, computed from figures measured on one machine and AWS's published
//! limits (`tessera model`; the figures, their sources and what is unverified: docs/scale.md).
//!
//! The model follows the pipeline's critical path: the planner (sniff + one SendMessageBatch per
//! 10 chunks), the chunk workers (Lambda concurrency as the SQS event-source mapping ramps it up,
//! each worker streaming one byte range at `min(engine rate x vCPU share, S3 per-connection
//! rate)`), then the finaliser (chunk results read 16 at a time and merged, outputs stitched with
//! UploadPartCopy 8 at a time). The workers are simulated in 50 ms steps, so a ramp that is
//! slower than the work shows up as the bound it is.
//!
//! Not here: anything that talks to AWS or measures; every figure is an input.

use std::fmt::Write as _;

/// Figures measured on this machine (defaults: docs/engine.md, docs/scale.md) or assumed where
/// a figure needs AWS to measure (marked so in docs/scale.md).
#[derive(Debug, Clone)]
pub struct Measured {
    /// Chunk engine, full profile + outputs, MB per CPU-second on one core.
    pub engine_mb_per_cpu_s: f64,
    /// CPU speed of a Lambda vCPU relative to the machine the engine rate was measured on.
    pub lambda_cpu_factor: f64,
    /// One ranged GET's streaming rate from S3 into a Lambda, MB/s (not measurable here).
    pub s3_get_mb_s: f64,
    /// Time to first byte of a GET, and latency of a small PUT, seconds.
    pub s3_latency_s: f64,
    /// Server-side copy rate of one UploadPartCopy, MB/s.
    pub s3_copy_mb_s: f64,
    /// A DynamoDB conditional write / transaction, seconds.
    pub ddb_latency_s: f64,
    /// Merging one chunk's profile state in the finaliser, seconds.
    pub merge_s_per_chunk: f64,
    /// Cold start of a chunk worker (sandbox + init), seconds.
    pub cold_start_s: f64,
    /// Share of the bytes written to the clean output (1.0 = nothing rejected).
    pub clean_share: f64,
}

impl Default for Measured {
    fn default() -> Self {
        Measured {
            engine_mb_per_cpu_s: 157.0,
            lambda_cpu_factor: 1.0,
            s3_get_mb_s: 90.0,
            s3_latency_s: 0.03,
            s3_copy_mb_s: 250.0,
            ddb_latency_s: 0.01,
            merge_s_per_chunk: 0.004,
            cold_start_s: 0.25,
            clean_share: 1.0,
        }
    }
}

/// AWS's published limits (defaults: the documented values, docs/scale.md cites each).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Lambda concurrent executions per account and region (default quota).
    pub account_concurrency: u32,
    /// Concurrency an SQS event-source mapping starts with on a busy queue.
    pub esm_initial: u32,
    /// Concurrency an SQS event-source mapping adds per minute.
    pub esm_per_minute: u32,
    /// Most concurrent invocations one SQS event-source mapping makes.
    pub esm_max: u32,
    /// S3 GET/HEAD requests per second per partitioned prefix.
    pub s3_get_per_prefix_s: f64,
    /// S3 PUT/COPY/POST/DELETE requests per second per partitioned prefix.
    pub s3_put_per_prefix_s: f64,
    /// DynamoDB write capacity units per second of one partition.
    pub ddb_partition_wcu_s: f64,
    /// Messages in flight on a standard SQS queue.
    pub sqs_in_flight: u32,
    /// Lambda's longest run, seconds (the chunk function is configured below it).
    pub chunk_timeout_s: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            account_concurrency: 1_000,
            esm_initial: 5,
            esm_per_minute: 300,
            esm_max: 1_250,
            s3_get_per_prefix_s: 5_500.0,
            s3_put_per_prefix_s: 3_500.0,
            ddb_partition_wcu_s: 1_000.0,
            sqs_in_flight: 120_000,
            chunk_timeout_s: 300.0,
        }
    }
}

/// List prices, us-east-1 (docs/scale.md: the date they were read; change them there).
#[derive(Debug, Clone)]
pub struct Prices {
    pub lambda_gb_s: f64,
    pub lambda_request: f64,
    pub s3_get: f64,
    pub s3_put: f64,
    pub sqs_request: f64,
    pub ddb_wru: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            // arm64, as template.yaml deploys.
            lambda_gb_s: 0.000_013_333_4,
            lambda_request: 0.20 / 1e6,
            s3_get: 0.0004 / 1e3,
            s3_put: 0.005 / 1e3,
            sqs_request: 0.40 / 1e6,
            ddb_wru: 0.625 / 1e6,
        }
    }
}

/// How the system is deployed for the run.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub chunk_size: u64,
    /// The chunk function's reserved/maximum concurrency (the ESM's `MaximumConcurrency`).
    pub max_concurrency: u32,
    pub chunk_memory_mb: u32,
    /// Output part size the chunk workers upload (pipeline: 8 MiB).
    pub output_part_bytes: u64,
    /// Concurrent result reads / stitch copies in the finaliser (pipeline: 16 / 8).
    pub result_read_concurrency: u32,
    pub stitch_concurrency: u32,
    /// SendMessageBatch calls the planner makes at once (store/queue.rs: one after another).
    pub enqueue_concurrency: u32,
}

impl Default for Deployment {
    fn default() -> Self {
        Deployment {
            chunk_size: 128 << 20,
            max_concurrency: 400,
            chunk_memory_mb: 2048,
            output_part_bytes: 8 << 20,
            result_read_concurrency: 16,
            stitch_concurrency: 8,
            enqueue_concurrency: 1,
        }
    }
}

/// Everything the model reads.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub measured: Measured,
    pub limits: Limits,
    pub prices: Prices,
    pub deployment: Deployment,
}

/// One step of the critical path.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: &'static str,
    pub seconds: f64,
}

/// A limit and how much of it the run uses at its peak (1.0 = all of it).
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    pub limit: &'static str,
    pub peak: f64,
    pub capacity: f64,
}

impl Load {
    pub fn share(&self) -> f64 {
        self.peak / self.capacity
    }
}

/// What the model predicts for a run.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub bytes: u64,
    pub jobs: usize,
    pub chunks: u64,
    pub total_s: f64,
    pub steps: Vec<Step>,
    pub peak_workers: u32,
    /// Seconds one worker spends on one full chunk.
    pub chunk_s: f64,
    pub per_worker_mb_s: f64,
    pub cost_usd: f64,
    pub loads: Vec<Load>,
}

impl Prediction {
    pub fn cost_per_gb(&self) -> f64 {
        self.cost_usd / (self.bytes as f64 / 1e9)
    }

    /// The limit closest to (or past) its capacity.
    pub fn binding(&self) -> &Load {
        self.loads
            .iter()
            .max_by(|a, b| a.share().total_cmp(&b.share()))
            .expect("the model always reports its loads")
    }
}

const MB: f64 = 1e6;

/// Concurrency the chunk function can have `t` seconds after the first chunk task is queued.
fn workers_at(t: f64, inp: &Inputs) -> u32 {
    let l = &inp.limits;
    let ramp = l.esm_initial as f64 + l.esm_per_minute as f64 * t / 60.0;
    (ramp as u32)
        .min(l.esm_max)
        .min(l.account_concurrency)
        .min(inp.deployment.max_concurrency)
        .max(1)
}

/// A worker's streaming rate, MB/s: the engine on its vCPU share (one parse thread, so at most
/// one vCPU), or the GET, whichever is slower.
pub fn per_worker_mb_s(inp: &Inputs) -> f64 {
    let m = &inp.measured;
    let vcpu = (inp.deployment.chunk_memory_mb as f64 / 1769.0).min(1.0);
    (m.engine_mb_per_cpu_s * vcpu * m.lambda_cpu_factor).min(m.s3_get_mb_s)
}

/// Seconds of one chunk task of `bytes` on a warm worker.
fn chunk_seconds(bytes: u64, inp: &Inputs) -> f64 {
    let m = &inp.measured;
    // First byte, the stream, the last output part's PUT, the completion transaction.
    m.s3_latency_s + bytes as f64 / MB / per_worker_mb_s(inp) + m.s3_latency_s + m.ddb_latency_s
}

/// The chunks of a set of jobs, simulated over the ramping worker pool in 50 ms steps: the
/// time the last one finishes and the most workers busy at once.
fn simulate(chunks: &[u64], inp: &Inputs) -> (f64, u32) {
    const DT: f64 = 0.05;
    // Per started worker: when it is free again, and whether it has had a chunk (a worker still
    // starting cold is not busy).
    let mut free_at: Vec<(f64, bool)> = Vec::new();
    let mut next = 0usize;
    let mut t = 0.0;
    let mut peak = 0u32;
    let mut end: f64 = 0.0;
    while next < chunks.len() {
        let cap = workers_at(t, inp) as usize;
        while free_at.len() < cap {
            free_at.push((t + inp.measured.cold_start_s, false));
        }
        for (slot, working) in free_at.iter_mut() {
            if next == chunks.len() {
                break;
            }
            if *slot <= t {
                *slot = t + chunk_seconds(chunks[next], inp);
                *working = true;
                end = end.max(*slot);
                next += 1;
            }
        }
        let busy = free_at.iter().filter(|&&(f, w)| w && f > t).count() as u32;
        peak = peak.max(busy);
        t += DT;
    }
    (end, peak)
}

fn chunk_sizes(size: u64, chunk: u64) -> Vec<u64> {
    let n = size.div_ceil(chunk).max(1);
    (0..n)
        .map(|i| chunk.min(size.saturating_sub(i * chunk)).max(1))
        .collect()
}

/// Requests per chunk task: (S3 GET, S3 PUT-class, DynamoDB WRU, SQS).
fn requests_per_chunk(bytes: u64, inp: &Inputs) -> (f64, f64, f64, f64) {
    let clean = bytes as f64 * inp.measured.clean_share;
    let parts = (clean / inp.deployment.output_part_bytes as f64)
        .ceil()
        .max(1.0);
    // Clean parts (+ create/complete), the rejected part, the chunk's result state.
    let puts = parts + 2.0 + 1.0 + 1.0;
    // The completion transaction writes the chunk item and the shard counter (2 x 2 WRU).
    let wru = 4.0;
    // Receive, delete, and the planner's share of one SendMessageBatch per 10 chunks.
    let sqs = 2.1;
    (1.0, puts, wru, sqs)
}

/// Seconds the finaliser of a job of `chunks` (of `bytes` in all) takes.
fn finalise_seconds(chunks: u64, bytes: u64, inp: &Inputs) -> f64 {
    let (m, d) = (&inp.measured, &inp.deployment);
    let read = (chunks as f64 / d.result_read_concurrency as f64).ceil() * m.s3_latency_s;
    let merge = chunks as f64 * m.merge_s_per_chunk;
    // Clean output copied part by part, `stitch_concurrency` copies at a time.
    let copy_each = (bytes as f64 / chunks as f64) * m.clean_share / MB / m.s3_copy_mb_s;
    let copies =
        (chunks as f64 / d.stitch_concurrency as f64).ceil() * (copy_each + m.s3_latency_s);
    read + merge + copies + 3.0 * m.ddb_latency_s + 2.0 * m.s3_latency_s
}

/// Predict a set of jobs started at the same moment (one job: a slice of one size).
pub fn predict(sizes: &[u64], inp: &Inputs) -> Prediction {
    let d = &inp.deployment;
    let m = &inp.measured;
    let per_job: Vec<Vec<u64>> = sizes
        .iter()
        .map(|&s| chunk_sizes(s, d.chunk_size))
        .collect();
    let all: Vec<u64> = per_job.iter().flatten().copied().collect();
    let bytes: u64 = sizes.iter().sum();
    let planner = m.cold_start_s
        + m.s3_latency_s
        + 2.0 * m.ddb_latency_s
        + (per_job.iter().map(Vec::len).max().unwrap_or(1) as f64
            / (10.0 * d.enqueue_concurrency as f64))
            .ceil()
            * m.s3_latency_s;
    let (work, peak) = simulate(&all, inp);
    let biggest = sizes.iter().copied().max().unwrap_or(0);
    let fin = finalise_seconds(biggest.div_ceil(d.chunk_size).max(1), biggest, inp);
    let steps = vec![
        Step {
            name: "upload event -> planner (sniff, plan, enqueue)",
            seconds: planner,
        },
        Step {
            name: "chunk workers (ramp + ranges)",
            seconds: work,
        },
        Step {
            name: "finalise (merge, stitch, manifest)",
            seconds: fin,
        },
    ];
    let total_s = steps.iter().map(|s| s.seconds).sum();

    let chunk_s = chunk_seconds(d.chunk_size, inp);
    let (mut gets, mut puts, mut wru, mut sqs) = (0.0, 0.0, 0.0, 0.0);
    for &c in &all {
        let (g, p, w, q) = requests_per_chunk(c, inp);
        gets += g;
        puts += p;
        wru += w;
        sqs += q;
    }
    for (job, chunks) in sizes.iter().zip(&per_job) {
        gets += chunks.len() as f64; // results read by the finaliser
        puts += chunks.len() as f64 + 4.0; // one copy per part, create/complete, manifest
        let _ = job;
    }
    let gb_s: f64 =
        all.iter().map(|&c| chunk_seconds(c, inp)).sum::<f64>() * d.chunk_memory_mb as f64 / 1024.0;
    let p = &inp.prices;
    let cost_usd = gb_s * p.lambda_gb_s
        + (all.len() as f64 + 2.0 * sizes.len() as f64) * p.lambda_request
        + gets * p.s3_get
        + puts * p.s3_put
        + sqs * p.sqs_request
        + wru * p.ddb_wru;

    // Peak request rates of the busiest job (its own prefixes and partitions).
    let job_workers = peak.min(per_job.iter().map(|c| c.len() as u32).max().unwrap_or(1)) as f64;
    let (_, puts_per_chunk, wru_per_chunk, _) = requests_per_chunk(d.chunk_size, inp);
    let loads = vec![
        Load {
            limit: "Lambda account concurrency",
            peak: peak as f64,
            capacity: inp.limits.account_concurrency as f64,
        },
        Load {
            limit: "SQS event-source mapping ramp (workers wanted vs reached)",
            peak: (all.len() as u32).min(d.max_concurrency) as f64,
            capacity: workers_at(work, inp) as f64,
        },
        Load {
            limit: "S3 PUT per prefix (one job's results/<owner>/<job>/)",
            peak: job_workers * puts_per_chunk / chunk_s,
            capacity: inp.limits.s3_put_per_prefix_s,
        },
        Load {
            limit: "S3 GET per prefix (one job's source object)",
            peak: job_workers * (1.0 / chunk_s) * 1.0,
            capacity: inp.limits.s3_get_per_prefix_s,
        },
        Load {
            limit: "DynamoDB partition WCU (16 shards per job)",
            peak: job_workers * wru_per_chunk / chunk_s / 16.0,
            capacity: inp.limits.ddb_partition_wcu_s,
        },
        Load {
            limit: "Lambda timeout (one chunk's time)",
            peak: chunk_s,
            capacity: inp.limits.chunk_timeout_s,
        },
        Load {
            limit: "SQS messages in flight",
            peak: peak as f64,
            capacity: inp.limits.sqs_in_flight as f64,
        },
    ];
    Prediction {
        bytes,
        jobs: sizes.len(),
        chunks: all.len() as u64,
        total_s,
        steps,
        peak_workers: peak,
        chunk_s,
        per_worker_mb_s: per_worker_mb_s(inp),
        cost_usd,
        loads,
    }
}

/// The fleet of the issue: `n` jobs of mixed sizes started together: 70% of 10 MB, 25% of 1 GB,
/// 4% of 10 GB, 1% of 50 GB (a fixed mix, so runs compare).
pub fn mixed_fleet(n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| match i % 100 {
            0 => 50_000_000_000,
            1..=4 => 10_000_000_000,
            5..=29 => 1_000_000_000,
            _ => 10_000_000,
        })
        .collect()
}

/// The prediction as the text `tessera model` prints.
pub fn render(title: &str, p: &Prediction) -> String {
    let mut s = String::new();
    let gb = p.bytes as f64 / 1e9;
    let _ = writeln!(
        s,
        "{title}: {gb:.1} GB in {} job(s), {} chunks -> {:.1} s to a completed profile",
        p.jobs, p.chunks, p.total_s
    );
    let _ = writeln!(
        s,
        "  per worker {:.0} MB/s, {:.2} s per full chunk, peak {} workers",
        p.per_worker_mb_s, p.chunk_s, p.peak_workers
    );
    let _ = writeln!(s, "  critical path:");
    for st in &p.steps {
        let _ = writeln!(s, "    {:>7.2} s  {}", st.seconds, st.name);
    }
    let _ = writeln!(
        s,
        "  cost: ${:.4} in all, ${:.5} per GB",
        p.cost_usd,
        p.cost_per_gb()
    );
    let _ = writeln!(s, "  limits (peak / capacity):");
    for l in &p.loads {
        let _ = writeln!(
            s,
            "    {:>6.1}%  {} ({:.1} / {:.0})",
            l.share() * 100.0,
            l.limit,
            l.peak,
            l.capacity
        );
    }
    let b = p.binding();
    let _ = writeln!(
        s,
        "  first limit to bind: {} ({:.0}% of it{})",
        b.limit,
        b.share() * 100.0,
        if b.share() > 1.0 { ": OVER" } else { "" }
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_file_exactly() {
        let c = chunk_sizes(1_000, 300);
        assert_eq!(c, vec![300, 300, 300, 100]);
        assert_eq!(chunk_sizes(0, 300), vec![1]);
    }

    #[test]
    fn the_ramp_is_capped_by_every_concurrency_limit() {
        let mut inp = Inputs::default();
        assert_eq!(workers_at(0.0, &inp), 5);
        assert_eq!(workers_at(60.0, &inp), 305);
        assert_eq!(workers_at(600.0, &inp), 400);
        inp.deployment.max_concurrency = 5_000;
        assert_eq!(workers_at(600.0, &inp), 1_000);
    }

    #[test]
    fn a_slower_engine_or_a_slower_s3_makes_workers_slower() {
        let mut inp = Inputs::default();
        let base = per_worker_mb_s(&inp);
        assert_eq!(base, 90.0, "S3 binds at 2048 MB");
        inp.measured.s3_get_mb_s = 1_000.0;
        assert!((per_worker_mb_s(&inp) - 157.0).abs() < 1e-9);
        inp.deployment.chunk_memory_mb = 1024;
        assert!((per_worker_mb_s(&inp) - 157.0 * 1024.0 / 1769.0).abs() < 1e-9);
    }

    #[test]
    fn one_worker_processes_chunks_one_after_another() {
        let mut inp = Inputs::default();
        inp.limits.esm_initial = 1;
        inp.limits.esm_per_minute = 0;
        let one = chunk_seconds(100_000_000, &inp);
        let (end, peak) = simulate(&[100_000_000; 4], &inp);
        assert_eq!(peak, 1);
        // Four chunks back to back after the cold start, give or take one 50 ms step each.
        let want = inp.measured.cold_start_s + 4.0 * one;
        assert!((end - want).abs() < 0.25, "{end} vs {want}");
    }

    #[test]
    fn more_workers_never_make_a_job_slower() {
        let mut inp = Inputs::default();
        let mut last = f64::MAX;
        for c in [10, 50, 100, 200, 400] {
            inp.deployment.max_concurrency = c;
            let p = predict(&[50_000_000_000], &inp);
            assert!(p.total_s <= last + 1e-9, "{c}: {} > {last}", p.total_s);
            last = p.total_s;
        }
    }

    #[test]
    fn cost_grows_with_bytes_and_binding_is_reported() {
        let inp = Inputs::default();
        let small = predict(&[1_000_000_000], &inp);
        let big = predict(&[50_000_000_000], &inp);
        assert!(big.cost_usd > 10.0 * small.cost_usd);
        assert_eq!(big.chunks, 50_000_000_000u64.div_ceil(128 << 20));
        assert!(!big.binding().limit.is_empty());
        assert!(render("50 GB", &big).contains("first limit to bind"));
    }

    #[test]
    fn the_mixed_fleet_has_its_stated_mix() {
        let f = mixed_fleet(1_000);
        assert_eq!(f.iter().filter(|&&s| s == 50_000_000_000).count(), 10);
        assert_eq!(f.iter().filter(|&&s| s == 10_000_000_000).count(), 40);
        assert_eq!(f.iter().filter(|&&s| s == 1_000_000_000).count(), 250);
        assert_eq!(f.iter().filter(|&&s| s == 10_000_000).count(), 700);
    }
}
