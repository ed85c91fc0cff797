//! `cargo bench -p tessera-engine --bench query`
//!
//! The query engine against DuckDB (`threads=1`) on the engine bench file (the same
//! generator as `benches/engine.rs`, so `bench-data/engine-<N>mib.csv` is shared; size:
//! `TESSERA_BENCH_BYTES`, default 1 GiB): a group-by of count, sum and avg by one key
//! (`category`), and a filtered count (`score >= 500`). Each measurement runs in a child
//! process (ours: this binary with `--child`, one worker thread; DuckDB: python3 with the
//! pinned `duckdb`), in `TESSERA_BENCH_ROUNDS` interleaved rounds (default 3), and reports
//! the median round, the spread of all rounds, and MB of input per CPU-second (user + system
//! from getrusage), so other work on the machine does not distort it. Fails when python3 or
//! duckdb is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use tessera_engine::query::{from_value, query_file, RunOptions};

#[path = "common/bench_file.rs"]
mod bench_file;
use bench_file::{cpu_seconds, generate, peak_rss_mib, MIB};

fn queries() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "group_by",
            json!({"version": 1, "source": "source", "group_by": ["category"],
                   "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "amount"}, {"fn": "avg", "column": "amount"}]}),
            "SELECT category, count(*), sum(amount), avg(amount) FROM read_csv(?) GROUP BY category",
        ),
        (
            "filtered_count",
            json!({"version": 1, "source": "source",
                   "filter": {"column": "score", "op": "ge", "value": 500},
                   "aggregates": [{"fn": "count"}]}),
            "SELECT count(*) FROM read_csv(?) WHERE score >= 500",
        ),
    ]
}

const DUCKDB: &str = r#"
import sys, resource, json, duckdb
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
con = duckdb.connect(config={"threads": 1})
c0 = cpu()
rows = con.execute(sys.argv[2], [sys.argv[1]]).fetchall()
c1 = cpu()
print(json.dumps({"cpu_s": c1 - c0, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rows": len(rows), "first": str(sorted(rows, key=str)[0])}))
"#;

fn child(name: &str, path: &Path) {
    let (_, q, _) = queries().into_iter().find(|q| q.0 == name).unwrap();
    let doc = from_value(q).unwrap();
    let opts = RunOptions {
        workers: 1,
        ..RunOptions::default()
    };
    let c0 = cpu_seconds();
    let r = query_file(path, &doc, &opts).unwrap();
    let cpu = cpu_seconds() - c0;
    println!(
        "{}",
        json!({"cpu_s": cpu, "peak_rss_mib": peak_rss_mib(), "rows": r.rows.len(), "first": r.rows[0]})
    );
}

fn last_json(out: &std::process::Output, what: &str) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what} failed (python3 with duckdb==1.5.6 is required): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap()
}

fn ours(name: &str, path: &Path) -> Value {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--child", name, path.to_str().unwrap()])
        .output()
        .unwrap();
    last_json(&out, "the query child")
}

fn duckdb(sql: &str, path: &Path) -> Value {
    let out = Command::new("python3")
        .args(["-c", DUCKDB, path.to_str().unwrap(), sql])
        .output()
        .expect("python3 is required");
    last_json(&out, "duckdb")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() >= 4 && args[1] == "--child" {
        child(&args[2], Path::new(&args[3]));
        return;
    }
    let size: u64 = std::env::var("TESSERA_BENCH_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1 << 30);
    let rounds: usize = std::env::var("TESSERA_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench-data");
    let path = root.join(format!("engine-{}mib.csv", size / MIB));
    generate(&path, size);
    let mb = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;
    println!(
        "file: {} ({mb:.0} MB), {rounds} interleaved rounds, one thread each",
        path.display()
    );
    let qs = queries();
    let mut runs: Vec<[Vec<Value>; 2]> = qs.iter().map(|_| Default::default()).collect();
    for round in 1..=rounds {
        for (i, (name, _, sql)) in qs.iter().enumerate() {
            let a = ours(name, &path);
            let b = duckdb(sql, &path);
            println!("round {round} {name}: tessera {a}\n  duckdb {b}");
            runs[i][0].push(a);
            runs[i][1].push(b);
        }
    }
    println!(
        "\n| query | engine | median CPU s | all rounds CPU s | MB per CPU-s | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|");
    for (i, (name, _, _)) in qs.iter().enumerate() {
        let mut medians = [0.0; 2];
        for (e, engine) in ["tessera", "duckdb"].iter().enumerate() {
            let mut cpu: Vec<f64> = runs[i][e]
                .iter()
                .map(|v| v["cpu_s"].as_f64().unwrap())
                .collect();
            cpu.sort_by(f64::total_cmp);
            let med = cpu[cpu.len() / 2];
            medians[e] = med;
            let rss = runs[i][e]
                .iter()
                .map(|v| v["peak_rss_mib"].as_f64().unwrap())
                .fold(0.0, f64::max);
            let all: Vec<String> = cpu.iter().map(|c| format!("{c:.2}")).collect();
            println!(
                "| {name} | {engine} | {med:.2} | {} | {:.0} | {rss:.0} |",
                all.join(", "),
                mb / med
            );
        }
        println!(
            "| {name} | tessera / duckdb speed | {:.2}x | | | |",
            medians[1] / medians[0]
        );
        println!(
            "{}",
            json!({"query": name, "tessera_cpu_s": medians[0], "duckdb_cpu_s": medians[1], "mb": mb})
        );
    }
}
