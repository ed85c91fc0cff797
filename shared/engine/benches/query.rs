//! `cargo bench -p tessera-engine --bench query`
//!
//! The query engine against DuckDB (`threads=1`) and polars (one thread,
//! `POLARS_MAX_THREADS=1`) on two files:
//!
//! - the engine bench file (the generator of `benches/engine.rs`, so
//!   `bench-data/engine-<N>mib.csv` is shared; size: `TESSERA_BENCH_BYTES`, default 1 GiB):
//!   a group-by of count, sum and avg of `amount` by `category` (4 values), and a filtered
//!   count (`score >= 500`);
//! - a file shaped like a real export (the generator of the engine bench's bare-parse
//!   comparison, `common/export_file.rs`: ISO timestamps, ~1M distinct e-mails, free text with
//!   quotes and commas; `TESSERA_BENCH_EXPORT_ROWS` rows, default 10,000,000, about 1.1 GB, seed
//!   `TESSERA_BENCH_SEED`, default 1): count, sum and avg of `amount` by `region` (20 values),
//!   and a count of the rows whose `created_at` is in March 2024.
//!
//! Each measurement runs in a child process (ours: this binary with `--child`, one worker
//! thread; DuckDB and polars: python3 with the pinned modules), in `TESSERA_BENCH_ROUNDS`
//! interleaved rounds (default 3; each round runs every query on every engine, the engine that
//! goes first rotating from round to round), and reports per engine the median round, every
//! round, the spread ((max - min) / median), MB of input per CPU-second (user + system from
//! getrusage, so other work on the machine distorts it less than wall time would) and the peak
//! RSS of the process. The engines' counts are compared (a mismatch is printed, loudly).
//! Fails with the install line when python3, `duckdb==1.5.6` or `polars==2.1.0` is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use tessera_engine::query::{from_value, query_file, RunOptions};

#[path = "common/bench_file.rs"]
mod bench_file;
use bench_file::{cpu_seconds, generate, peak_rss_mib, Rng, MIB};

#[path = "common/export_file.rs"]
mod export_file;

const PIP: &str = "pip install duckdb==1.5.6 polars==2.1.0";

struct Query {
    /// `bench` or `export`.
    file: &'static str,
    name: &'static str,
    what: &'static str,
    doc: Value,
    /// DuckDB SQL over `read_csv(?)`; the count column is named `n`.
    sql: &'static str,
    /// A polars expression over the lazy frame `lf` (`scan_csv` with its default type
    /// inference; timestamps parsed in the expression); the count column is named `n`.
    polars: &'static str,
}

fn queries() -> Vec<Query> {
    vec![
        Query {
            file: "bench",
            name: "group_by",
            what: "count, sum, avg of `amount` by `category`",
            doc: json!({"version": 1, "source": "source", "group_by": ["category"],
                   "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "amount"}, {"fn": "avg", "column": "amount"}]}),
            sql: "SELECT category, count(*) AS n, sum(amount), avg(amount) FROM read_csv(?) GROUP BY category",
            polars: r#"lf.group_by("category").agg(pl.len().alias("n"), pl.col("amount").sum().alias("sum"), pl.col("amount").mean().alias("avg"))"#,
        },
        Query {
            file: "bench",
            name: "filtered_count",
            what: "count where `score >= 500`",
            doc: json!({"version": 1, "source": "source",
                   "filter": {"column": "score", "op": "ge", "value": 500},
                   "aggregates": [{"fn": "count"}]}),
            sql: "SELECT count(*) AS n FROM read_csv(?) WHERE score >= 500",
            polars: r#"lf.filter(pl.col("score") >= 500).select(pl.len().alias("n"))"#,
        },
        Query {
            file: "export",
            name: "group_by",
            what: "count, sum, avg of `amount` by `region`",
            doc: json!({"version": 1, "source": "source", "group_by": ["region"],
                   "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "amount"}, {"fn": "avg", "column": "amount"}]}),
            sql: "SELECT region, count(*) AS n, sum(amount), avg(amount) FROM read_csv(?) GROUP BY region",
            polars: r#"lf.group_by("region").agg(pl.len().alias("n"), pl.col("amount").sum().alias("sum"), pl.col("amount").mean().alias("avg"))"#,
        },
        Query {
            file: "export",
            name: "month_count",
            what: "count where `created_at` is in March 2024",
            doc: json!({"version": 1, "source": "source",
                   "filter": {"and": [
                       {"column": "created_at", "op": "ge", "value": "2024-03-01T00:00:00Z"},
                       {"column": "created_at", "op": "lt", "value": "2024-04-01T00:00:00Z"}]},
                   "aggregates": [{"fn": "count"}]}),
            sql: "SELECT count(*) AS n FROM read_csv(?) WHERE created_at >= TIMESTAMPTZ '2024-03-01 00:00:00+00' AND created_at < TIMESTAMPTZ '2024-04-01 00:00:00+00'",
            // An explicit format: with `try_parse_dates=True` polars took 7.9 CPU-s here, not 2.
            polars: r#"lf.filter(pl.col("created_at").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC").is_between(pl.datetime(2024, 3, 1, time_zone="UTC"), pl.datetime(2024, 4, 1, time_zone="UTC"), closed="left")).select(pl.len().alias("n"))"#,
        },
    ]
}

const ENGINES: [&str; 3] = ["tessera", "duckdb", "polars"];

/// Both python children print CPU seconds, peak RSS, and the sorted counts (column `n`).
const DUCKDB: &str = r#"
import sys, resource, json, duckdb
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
con = duckdb.connect(config={"threads": 1})
c0 = cpu()
cur = con.execute(sys.argv[2], [sys.argv[1]])
rows = cur.fetchall()
c1 = cpu()
n = [d[0] for d in cur.description].index("n")
print(json.dumps({"cpu_s": c1 - c0, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rows": len(rows), "counts": sorted(r[n] for r in rows), "version": duckdb.__version__}))
"#;

const POLARS: &str = r#"
import sys, resource, json, polars as pl
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
c0 = cpu()
lf = pl.scan_csv(sys.argv[1])
df = eval(sys.argv[2], {"pl": pl, "lf": lf}).collect()
c1 = cpu()
print(json.dumps({"cpu_s": c1 - c0, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rows": df.height, "counts": sorted(df["n"].to_list()), "version": pl.__version__, "threads": pl.thread_pool_size()}))
"#;

fn child(file: &str, name: &str, path: &Path) {
    let q = queries()
        .into_iter()
        .find(|q| q.file == file && q.name == name)
        .unwrap();
    let keys = q.doc["group_by"].as_array().map_or(0, Vec::len);
    let doc = from_value(q.doc).unwrap();
    let opts = RunOptions {
        workers: 1,
        ..RunOptions::default()
    };
    let c0 = cpu_seconds();
    let r = query_file(path, &doc, &opts).unwrap();
    let cpu = cpu_seconds() - c0;
    let mut counts: Vec<u64> = r
        .rows
        .iter()
        .map(|row| row[keys].as_u64().unwrap())
        .collect();
    counts.sort_unstable();
    println!(
        "{}",
        json!({"cpu_s": cpu, "peak_rss_mib": peak_rss_mib(), "rows": r.rows.len(), "counts": counts})
    );
}

fn last_json(out: &std::process::Output, what: &str) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what} failed (python3 with the pinned modules is required: {PIP}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap()
}

fn run(engine: &str, q: &Query, path: &Path) -> Value {
    let out = match engine {
        "tessera" => Command::new(std::env::current_exe().unwrap())
            .args(["--child", q.file, q.name, path.to_str().unwrap()])
            .output()
            .unwrap(),
        "duckdb" => Command::new("python3")
            .args(["-c", DUCKDB, path.to_str().unwrap(), q.sql])
            .output()
            .unwrap_or_else(|e| panic!("python3 is required ({PIP}): {e}")),
        _ => Command::new("python3")
            .args(["-c", POLARS, path.to_str().unwrap(), q.polars])
            .env("POLARS_MAX_THREADS", "1")
            .output()
            .unwrap_or_else(|e| panic!("python3 is required ({PIP}): {e}")),
    };
    last_json(&out, engine)
}

/// Fails early, with the install line, when a python module is missing.
fn check_python() {
    for module in ["duckdb", "polars"] {
        let ok = Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "python3 cannot import {module}: {PIP}");
    }
}

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(d)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() >= 5 && args[1] == "--child" {
        child(&args[2], &args[3], Path::new(&args[4]));
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo test --benches` probes; nothing to list
    }
    check_python();
    let size = env_u64("TESSERA_BENCH_BYTES", 1 << 30);
    let rows = env_u64("TESSERA_BENCH_EXPORT_ROWS", 10_000_000);
    let seed = env_u64("TESSERA_BENCH_SEED", 1);
    let rounds = env_u64("TESSERA_BENCH_ROUNDS", 3).max(1) as usize;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench-data");
    let bench = root.join(format!("engine-{}mib.csv", size / MIB));
    generate(&bench, size);
    let export = root.join(format!("export-{rows}rows-seed{seed}.csv"));
    export_file::generate_export(&export, rows, seed);
    let path_of = |file: &str| if file == "bench" { &bench } else { &export };
    let mb = |file: &str| std::fs::metadata(path_of(file)).unwrap().len() as f64 / 1e6;
    println!(
        "files: {} ({:.0} MB), {} ({:.0} MB); {rounds} interleaved rounds, one thread each; load average {}",
        bench.display(),
        mb("bench"),
        export.display(),
        mb("export"),
        load_average()
    );
    let qs = queries();
    // runs[query][engine] = one JSON line per round
    let mut runs: Vec<[Vec<Value>; 3]> = qs.iter().map(|_| Default::default()).collect();
    for round in 0..rounds {
        for (i, q) in qs.iter().enumerate() {
            for k in 0..ENGINES.len() {
                let e = (round + k) % ENGINES.len();
                let v = run(ENGINES[e], q, path_of(q.file));
                println!(
                    "round {} {}/{}: {} {v}",
                    round + 1,
                    q.file,
                    q.name,
                    ENGINES[e]
                );
                runs[i][e].push(v);
            }
        }
        println!("after round {}: load average {}", round + 1, load_average());
    }
    let versions: Vec<String> = (1..3)
        .map(|e| format!("{} {}", ENGINES[e], runs[0][e][0]["version"]))
        .collect();
    println!("\n{}", versions.join(", "));
    println!(
        "\n| file | query | engine | median CPU s | rounds CPU s (in order) | spread | MB per CPU-s | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut summary = Vec::new();
    for (i, q) in qs.iter().enumerate() {
        let mut medians = [0.0; 3];
        for (e, engine) in ENGINES.iter().enumerate() {
            let cpu: Vec<f64> = runs[i][e]
                .iter()
                .map(|v| v["cpu_s"].as_f64().unwrap())
                .collect();
            let mut sorted = cpu.clone();
            sorted.sort_by(f64::total_cmp);
            let med = sorted[sorted.len() / 2];
            medians[e] = med;
            let spread = (sorted[sorted.len() - 1] - sorted[0]) / med * 100.0;
            let rss = runs[i][e]
                .iter()
                .map(|v| v["peak_rss_mib"].as_f64().unwrap())
                .fold(0.0, f64::max);
            let all: Vec<String> = cpu.iter().map(|c| format!("{c:.2}")).collect();
            println!(
                "| {} | {} | {engine} | {med:.2} | {} | {spread:.0}% | {:.0} | {rss:.0} |",
                q.file,
                q.what,
                all.join(", "),
                mb(q.file) / med
            );
            if runs[i][e][0]["counts"] != runs[i][0][0]["counts"] {
                println!(
                    "| {} | {} | {engine} | **counts differ from tessera's**: {} vs {} | | | | |",
                    q.file, q.name, runs[i][e][0]["counts"], runs[i][0][0]["counts"]
                );
            }
        }
        summary.push(json!({"file": q.file, "query": q.name, "mb": mb(q.file),
            "tessera_cpu_s": medians[0], "duckdb_cpu_s": medians[1], "polars_cpu_s": medians[2],
            "speed_vs_duckdb": medians[1] / medians[0], "speed_vs_polars": medians[2] / medians[0]}));
    }
    println!("\nTessera speed per CPU-second (median / median; > 1: Tessera faster):");
    for s in &summary {
        println!(
            "  {}/{}: {:.2}x DuckDB, {:.2}x polars",
            s["file"].as_str().unwrap(),
            s["query"].as_str().unwrap(),
            s["speed_vs_duckdb"].as_f64().unwrap(),
            s["speed_vs_polars"].as_f64().unwrap()
        );
    }
    for s in summary {
        println!("{s}");
    }
}
