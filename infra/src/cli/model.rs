//! `tessera model`: reads the flags (and optionally measures the engine here), runs the scale
//! model of [`tessera_infra::model`] for the size asked, 1 TB and a fleet, prints the predictions.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::parse_size;

#[derive(Args)]
pub struct ModelArgs {
    /// File size, e.g. 50GB, 1TB, 300MiB.
    #[arg(long, default_value = "50GB", value_parser = parse_size)]
    size: u64,
    /// Byte range per chunk task.
    #[arg(long, default_value = "128MiB", value_parser = parse_size)]
    chunk_size: u64,
    /// Most concurrent chunk workers (the event-source mapping's MaximumConcurrency).
    #[arg(long, default_value_t = 400)]
    max_concurrency: u32,
    /// The chunk function's memory, MB (its vCPU share is memory / 1769).
    #[arg(long, default_value_t = 2048)]
    memory_mb: u32,
    /// Jobs of the mixed fleet (70% 10 MB, 25% 1 GB, 4% 10 GB, 1% 50 GB); 0 skips it.
    #[arg(long, default_value_t = 1000)]
    fleet: usize,
    /// Measure the engine's MB per CPU-second here on FILE (profile + outputs, one worker)
    /// instead of the default figure from docs/engine.md.
    #[arg(long)]
    measure: Option<PathBuf>,
    /// The engine's MB per CPU-second (instead of the default or --measure).
    #[arg(long)]
    engine_mb_s: Option<f64>,
    /// One ranged GET's rate from S3 into a Lambda, MB/s (unmeasurable here: docs/scale.md).
    #[arg(long, default_value_t = 90.0)]
    s3_mb_s: f64,
    /// Concurrent UploadPartCopy calls of the finaliser's stitch (the pipeline's: 8).
    #[arg(long, default_value_t = 8)]
    stitch_concurrency: u32,
    /// Concurrent SendMessageBatch calls of the planner (the pipeline's: 1).
    #[arg(long, default_value_t = 1)]
    enqueue_concurrency: u32,
    /// Print the predictions as JSON.
    #[arg(long)]
    json: bool,
}

/// CPU seconds this process has used (user + system).
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// The chunk engine's MB per CPU-second on `file`: profile + clean/rejected outputs, one worker.
fn measure_engine(file: &Path) -> Result<f64> {
    use tessera_shared::engine::file::{process_file, ProcessOptions};
    let out = std::env::temp_dir().join(format!("tessera-model-{}", std::process::id()));
    let opts = ProcessOptions {
        workers: 1,
        out_dir: out.clone(),
        ..ProcessOptions::default()
    };
    let before = cpu_seconds();
    let summary = process_file(file, &opts)
        .with_context(|| format!("measuring the engine on {}", file.display()))?;
    let cpu = cpu_seconds() - before;
    let _ = std::fs::remove_dir_all(&out);
    if summary.bytes < 16 << 20 {
        bail!(
            "{} has {} bytes: measure on at least 16 MiB so start-up costs do not dominate",
            file.display(),
            summary.bytes
        );
    }
    Ok(summary.bytes as f64 / 1e6 / cpu.max(1e-9))
}

pub fn model(a: ModelArgs) -> Result<()> {
    use tessera_infra::model::{mixed_fleet, predict, render, Inputs};
    let mut inp = Inputs::default();
    if let Some(f) = &a.measure {
        let rate = measure_engine(f)?;
        eprintln!("measured on {}: {rate:.0} MB per CPU-second", f.display());
        inp.measured.engine_mb_per_cpu_s = rate;
    }
    if let Some(r) = a.engine_mb_s {
        inp.measured.engine_mb_per_cpu_s = r;
    }
    inp.measured.s3_get_mb_s = a.s3_mb_s;
    inp.deployment.chunk_size = a.chunk_size;
    inp.deployment.max_concurrency = a.max_concurrency;
    inp.deployment.chunk_memory_mb = a.memory_mb;
    inp.deployment.stitch_concurrency = a.stitch_concurrency.max(1);
    inp.deployment.enqueue_concurrency = a.enqueue_concurrency.max(1);
    let mut runs = vec![
        (format!("{} bytes", a.size), vec![a.size]),
        ("1 TB".to_string(), vec![1_000_000_000_000]),
    ];
    if a.fleet > 0 {
        runs.push((
            format!("{} concurrent mixed jobs", a.fleet),
            mixed_fleet(a.fleet),
        ));
    }
    let mut json = Vec::new();
    for (title, sizes) in runs {
        let p = predict(&sizes, &inp);
        if a.json {
            json.push(serde_json::json!({
                "run": title, "bytes": p.bytes, "jobs": p.jobs, "chunks": p.chunks,
                "seconds": p.total_s, "peak_workers": p.peak_workers,
                "per_worker_mb_s": p.per_worker_mb_s, "cost_usd": p.cost_usd,
                "cost_per_gb_usd": p.cost_per_gb(),
                "steps": p.steps.iter().map(|s| serde_json::json!({"step": s.name, "seconds": s.seconds})).collect::<Vec<_>>(),
                "binding": {"limit": p.binding().limit, "share": p.binding().share()},
            }));
        } else {
            println!("{}", render(&title, &p));
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    Ok(())
}
