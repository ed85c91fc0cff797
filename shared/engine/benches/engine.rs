//! `cargo bench -p tessera-engine --bench engine`
//!
//! Generates a deterministic CSV (mixed types, ~10% quoted fields, some embedded newlines, ~2%
//! empty values) under `<workspace>/bench-data/` (size: `TESSERA_BENCH_BYTES`, default 1 GiB),
//! then measures, each in a child process of this binary so peak RSS is per measurement:
//! - profile + outputs (clean and rejected rows written to a sink) and profile + a 10-rule
//!   workflow (not_null, type, range, regex, one_of, length, row compare, trim, partial mask,
//!   HMAC token) + outputs, over the whole file: the cost of rules, as the rate with rules
//!   against the profile-only job (profile + outputs: every job writes its clean and rejected
//!   outputs), target >= 70%, and against the bare profile;
//! - bare parse (the state machine only) and full profile (chunk processor, profile on, no
//!   outputs) with one worker, over a 64 MiB range and over the whole file;
//! - DuckDB `SUMMARIZE` (threads=1) and polars `describe()` (POLARS_MAX_THREADS=1) on the same
//!   file, when the Python modules are importable.
//!
//! The whole-file measurements run in `TESSERA_BENCH_ROUNDS` interleaved rounds (default 3); each
//! line reports its median round and all rounds' CPU seconds are printed. `TESSERA_BENCH_RULES_ONLY`
//! skips DuckDB and polars. `TESSERA_BENCH_FILE=export` runs them on the export-shaped file
//! (`TESSERA_BENCH_EXPORT_ROWS`, `TESSERA_BENCH_SEED`) with the same ten rule kinds.
//!
//! Throughput is MB of input per CPU-second (user + system, from getrusage), so other work on
//! the machine does not distort it. Results are printed as a table and as JSON lines.

use std::path::{Path, PathBuf};
use std::process::Command;

use tessera_engine::chunk::ChunkOptions;
use tessera_engine::dialect::{sniff_with_size, DialectOverrides};
use tessera_engine::file::{run_chunk, ReadAt};
use tessera_engine::parse::{Kernel, Outcome, Parser, ParserConfig, RecordBuf};
use tessera_engine::rules::{from_value, CompiledRules, ResolvedRefs};
use tessera_engine::split::ChunkTask;

#[path = "engine/parse.rs"]
mod parse_bench;

#[path = "common/bench_file.rs"]
mod bench_file;
use bench_file::{cpu_seconds, generate, peak_rss_mib, Rng, MIB};

#[path = "common/export_file.rs"]
mod export_file;

fn bare_parse(file: &std::fs::File, start: u64, end: u64, kernel: Option<Kernel>) -> u64 {
    let mut p = Parser::new(
        ParserConfig::default(),
        tessera_engine::parse::State::LineStart,
        start,
        end,
    );
    if let Some(k) = kernel {
        p = p.with_kernel(k);
    }
    let mut rec = RecordBuf::default();
    let mut buf = vec![0u8; 256 * 1024];
    let mut pos = start;
    let mut records = 0u64;
    'outer: loop {
        let n = file.read_at(&mut buf, pos).unwrap();
        if n == 0 {
            break;
        }
        pos += n as u64;
        let mut off = 0;
        while off < n {
            let (o, used) = p.parse(&buf[off..n], &mut rec);
            off += used;
            match o {
                Outcome::Record => records += 1,
                Outcome::Stop => break 'outer,
                Outcome::NeedInput => {}
            }
        }
    }
    if !matches!(p.state(), tessera_engine::parse::State::LineStart) {
        records += 1;
    }
    records
}

/// The 10-rule workflow of the benchmark (token on `name`, or on the unique `id` for the
/// high-cardinality case, where the token cache never hits). On the export-shaped file (its
/// header starts `id,created_at`) the same ten rule kinds over its columns.
fn bench_rules(columns: &[String], mode: &str) -> std::sync::Arc<CompiledRules> {
    if columns.get(1).is_some_and(|c| c == "created_at") {
        return export_rules(columns, mode);
    }
    let token_col = if mode == "rules_token_id" {
        "id"
    } else {
        "name"
    };
    let mut doc = serde_json::json!({
        "version": 1,
        "columns": {
            "score": {"type": "integer"},
            "amount": {"type": "decimal", "transforms": [{"mask": "partial"}]},
            "comment": {"transforms": ["trim"]}
        },
        "rules": [
            {"column": "id", "check": "not_null"},
            {"column": "score", "check": {"type": "integer"}},
            {"column": "amount", "check": {"range": {"min": 0, "max": 99999.5}}},
            {"column": "day", "check": {"matches": {"pattern": "^20[0-9]{2}-[01][0-9]-[0-3][0-9]$"}}},
            {"column": "category", "check": {"one_of": {"values": ["A", "B", "C", "D"]}}},
            {"column": "comment", "check": {"length": {"max": 60}}, "on_violation": "flag"},
            {"check": {"compare": {"left": "amount", "op": ">=", "right": "score"}}, "on_violation": "flag"}
        ]
    });
    doc["columns"][token_col]["transforms"] =
        serde_json::json!([{"mask": {"token": {"length": 16}}}]);
    let doc = from_value(&doc).unwrap();
    std::sync::Arc::new(
        CompiledRules::compile(&doc, columns, &ResolvedRefs::none(), Some(b"bench key")).unwrap(),
    )
}

/// The ten rule kinds of [`bench_rules`] over the export-shaped file: token on `region` (20
/// values: the cache hits) or on the unique `id`.
fn export_rules(columns: &[String], mode: &str) -> std::sync::Arc<CompiledRules> {
    let token_col = if mode == "rules_token_id" {
        "id"
    } else {
        "region"
    };
    let mut doc = serde_json::json!({
        "version": 1,
        "columns": {
            "quantity": {"type": "integer"},
            "amount": {"type": "decimal", "transforms": [{"mask": "partial"}]},
            "note": {"transforms": ["trim"]}
        },
        "rules": [
            {"column": "id", "check": "not_null"},
            {"column": "quantity", "check": {"type": "integer"}},
            {"column": "amount", "check": {"range": {"min": 0, "max": 99999.5}}},
            {"column": "created_at", "check": {"matches": {"pattern": "^20[0-9]{2}-[01][0-9]-[0-3][0-9]T"}}},
            {"column": "active", "check": {"one_of": {"values": ["true", "false"]}}},
            {"column": "note", "check": {"length": {"max": 60}}, "on_violation": "flag"},
            {"check": {"compare": {"left": "amount", "op": ">=", "right": "quantity"}}, "on_violation": "flag"}
        ]
    });
    doc["columns"][token_col]["transforms"] =
        serde_json::json!([{"mask": {"token": {"length": 16}}}]);
    let doc = from_value(&doc).unwrap();
    std::sync::Arc::new(
        CompiledRules::compile(&doc, columns, &ResolvedRefs::none(), Some(b"bench key")).unwrap(),
    )
}

/// Runs in the child: one measurement, printed as one JSON line.
fn child(mode: &str, path: &Path, range: u64) {
    let file = std::fs::File::open(path).unwrap();
    let size = file.metadata().unwrap().len();
    let mut head = vec![0u8; (size as usize).min(1 << 20)];
    let n = file.read_at(&mut head, 0).unwrap();
    let sn = sniff_with_size(&head[..n], size, &DialectOverrides::default()).unwrap();
    let start = sn.header_len;
    let end = (start + range).min(size);
    let c0 = cpu_seconds();
    let records = match mode {
        "parse" => bare_parse(&file, start, end, None),
        "parse_old" => bare_parse(&file, start, end, Some(Kernel::Scalar)),
        "parse_portable" => bare_parse(&file, start, end, Some(Kernel::Portable)),
        #[cfg(target_arch = "x86_64")]
        "parse_sse2" => bare_parse(&file, start, end, Some(Kernel::Sse2)),
        "parse_csv" => parse_bench::csv_parse(&file, start, end),
        "profile" => {
            let task = ChunkTask {
                index: 0,
                start,
                end,
                start_in_quotes: Some(false),
            };
            let opts = ChunkOptions {
                emit_rows: false,
                ..ChunkOptions::default()
            };
            let r = run_chunk(
                &file,
                size,
                &task,
                &sn.dialect,
                &sn.columns,
                &opts,
                256 * 1024,
                &mut std::io::sink(),
                &mut std::io::sink(),
            )
            .unwrap();
            let _report = r.profile.report();
            r.rows + r.rejected_rows
        }
        "profile_out" | "rules" | "rules_token_id" => {
            let task = ChunkTask {
                index: 0,
                start,
                end,
                start_in_quotes: Some(false),
            };
            let opts = ChunkOptions {
                emit_rows: true,
                rules: (mode != "profile_out").then(|| bench_rules(&sn.columns, mode)),
                ..ChunkOptions::default()
            };
            let r = run_chunk(
                &file,
                size,
                &task,
                &sn.dialect,
                &sn.columns,
                &opts,
                256 * 1024,
                &mut std::io::sink(),
                &mut std::io::sink(),
            )
            .unwrap();
            let _report = r.profile.report();
            if mode != "profile_out" {
                eprintln!("violations: {:?}", r.violations);
            }
            r.rows + r.rejected_rows
        }
        _ => panic!("unknown mode {mode}"),
    };
    let cpu = cpu_seconds() - c0;
    let bytes = end - start;
    println!(
        "{{\"mode\":\"{mode}\",\"bytes\":{bytes},\"records\":{records},\"cpu_s\":{cpu:.3},\"mb_per_cpu_s\":{:.1},\"peak_rss_mib\":{:.1}}}",
        bytes as f64 / 1e6 / cpu,
        peak_rss_mib()
    );
}

fn run_child(mode: &str, path: &Path, range: u64) -> Option<serde_json::Value> {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--child", mode, path.to_str().unwrap(), &range.to_string()])
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!("{mode} failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()?
        .to_string();
    println!("{line}");
    serde_json::from_str(&line).ok()
}

const DUCKDB: &str = r#"
import sys, time, resource, duckdb
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
con = duckdb.connect()
con.execute("SET threads=1")
c0 = cpu()
con.execute("SUMMARIZE SELECT * FROM read_csv_auto(?)", [sys.argv[1]]).fetchall()
c1 = cpu()
print('{"mode":"duckdb_summarize","cpu_s":%.3f,"peak_rss_mib":%.1f}' % (c1 - c0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
"#;

const POLARS: &str = r#"
import sys, resource, polars as pl
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
c0 = cpu()
try:
    d = pl.scan_csv(sys.argv[1]).describe()
except Exception:
    d = pl.read_csv(sys.argv[1]).describe()
c1 = cpu()
print('{"mode":"polars_describe","cpu_s":%.3f,"peak_rss_mib":%.1f}' % (c1 - c0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
"#;

fn run_python(script: &str, module: &str, path: &Path) -> Option<serde_json::Value> {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("{{\"mode\":\"{module}\",\"skipped\":\"python module not importable (pip install duckdb polars)\"}}");
        return None;
    }
    let out = Command::new("python3")
        .args(["-c", script, path.to_str().unwrap()])
        .env("POLARS_MAX_THREADS", "1")
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("{module} failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()?
        .to_string();
    println!("{line}");
    serde_json::from_str(&line).ok()
}

fn print_rules(
    prof: &Option<serde_json::Value>,
    prof_out: &Option<serde_json::Value>,
    rules: &Option<serde_json::Value>,
    rules_id: &Option<serde_json::Value>,
) {
    let f = |v: &Option<serde_json::Value>, k: &str| {
        v.as_ref()
            .and_then(|v| v.get(k))
            .and_then(|x| x.as_f64())
            .unwrap_or(f64::NAN)
    };
    println!("\n| whole file, 1 worker | CPU s | MB per CPU-s | peak RSS MiB |");
    println!("|---|---|---|---|");
    for (name, v) in [
        ("profile only (no outputs)", prof),
        ("profile + clean/rejected outputs", prof_out),
        (
            "profile + 10 rules + outputs (token on `name` or `region`)",
            rules,
        ),
        (
            "profile + 10 rules + outputs (token on unique `id`)",
            rules_id,
        ),
    ] {
        println!(
            "| {name} | {:.2} | {:.0} | {:.1} |",
            f(v, "cpu_s"),
            f(v, "mb_per_cpu_s"),
            f(v, "peak_rss_mib")
        );
    }
    // The target compares a job with rules to the same job without them: a profile-only job
    // also writes its clean and rejected outputs (the pipeline always does), so that line is
    // the baseline; the bare profile (no outputs: the engine's comparison with DuckDB and
    // polars) is shown beside it.
    let job = f(prof_out, "mb_per_cpu_s");
    let bare = f(prof, "mb_per_cpu_s");
    println!(
        "\nrate with rules vs the profile-only job (profile + its outputs): {:.0}% (token on name, or region on the export file), {:.0}% (token on id); target >= 70%",
        100.0 * f(rules, "mb_per_cpu_s") / job,
        100.0 * f(rules_id, "mb_per_cpu_s") / job
    );
    println!(
        "rate with rules vs the bare profile (no outputs written): {:.0}% (token on name, or region on the export file), {:.0}% (token on id)",
        100.0 * f(rules, "mb_per_cpu_s") / bare,
        100.0 * f(rules_id, "mb_per_cpu_s") / bare
    );
}

/// The run with the median CPU time (the upper median of an even count), its peak RSS
/// replaced by the largest of all runs; `None` if no run succeeded.
fn median_run(runs: &[Option<serde_json::Value>]) -> Option<serde_json::Value> {
    let cpu = |v: &serde_json::Value| v.get("cpu_s").and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
    let mut ok: Vec<&serde_json::Value> = runs.iter().flatten().collect();
    ok.sort_by(|a, b| cpu(a).total_cmp(&cpu(b)));
    let rss = ok
        .iter()
        .filter_map(|v| v.get("peak_rss_mib").and_then(|x| x.as_f64()))
        .fold(f64::NAN, f64::max);
    let mut m = (*ok.get(ok.len() / 2)?).clone();
    if let Some(o) = m.as_object_mut() {
        o.insert("peak_rss_mib".into(), rss.into());
        o.insert("runs".into(), (ok.len() as u64).into());
        o.insert(
            "cpu_s_all".into(),
            ok.iter().map(|v| cpu(v)).collect::<Vec<f64>>().into(),
        );
    }
    Some(m)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() >= 5 && args[1] == "--child" {
        child(&args[2], Path::new(&args[3]), args[4].parse().unwrap());
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo test --benches` probes; nothing to list
    }
    let size: u64 = std::env::var("TESSERA_BENCH_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1 << 30);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench-data");
    let path = root.join(format!("engine-{}mib.csv", size / MIB));
    generate(&path, size);
    let file_size = std::fs::metadata(&path).unwrap().len();
    println!("file: {} ({} bytes)", path.display(), file_size);
    let env_u64 = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    if std::env::var_os("TESSERA_BENCH_PARSE_ONLY").is_some() {
        // Bare parse only: ours, the csv crate, the old parser, the portable kernel, on the
        // bench file and on an export-shaped file (rows and seed from the environment).
        let rows = env_u64("TESSERA_BENCH_EXPORT_ROWS", 2_500_000);
        let seed = env_u64("TESSERA_BENCH_SEED", 1);
        let export = root.join(format!("export-{rows}rows-seed{seed}.csv"));
        parse_bench::generate_export(&export, rows, seed);
        let rounds = env_u64("TESSERA_BENCH_ROUNDS", 3).max(1) as usize;
        parse_bench::compare(&[&path, &export], rounds);
        return;
    }

    // `TESSERA_BENCH_FILE=export`: the whole-file measurements on the export-shaped file
    // (high-cardinality e-mails, timestamps, free text) instead of the bench file.
    let path = if std::env::var("TESSERA_BENCH_FILE").is_ok_and(|f| f == "export") {
        let rows = env_u64("TESSERA_BENCH_EXPORT_ROWS", 2_500_000);
        let seed = env_u64("TESSERA_BENCH_SEED", 1);
        let export = root.join(format!("export-{rows}rows-seed{seed}.csv"));
        parse_bench::generate_export(&export, rows, seed);
        println!("whole-file measurements on {}", export.display());
        export
    } else {
        path
    };
    let file_size = std::fs::metadata(&path).unwrap().len();
    let small = 64 * MIB;
    let parse_s = run_child("parse", &path, small);
    let parse_l = run_child("parse", &path, file_size);
    let prof_s = run_child("profile", &path, small);
    // The whole-file comparisons run in interleaved rounds (ours, DuckDB, polars, outputs,
    // rules), and each line reports its median round: on a shared machine one run of each
    // decides nothing (polars alone moved 6.1 -> 8.3 CPU-s between two runs).
    let rounds: usize = std::env::var("TESSERA_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let rules_only = std::env::var_os("TESSERA_BENCH_RULES_ONLY").is_some();
    let mut runs: [Vec<Option<serde_json::Value>>; 6] = Default::default();
    for round in 1..=rounds {
        println!("-- round {round} of {rounds}");
        runs[0].push(run_child("profile", &path, file_size));
        if !rules_only {
            runs[1].push(run_python(DUCKDB, "duckdb", &path));
            runs[2].push(run_python(POLARS, "polars", &path));
        }
        runs[3].push(run_child("profile_out", &path, file_size));
        runs[4].push(run_child("rules", &path, file_size));
        runs[5].push(run_child("rules_token_id", &path, file_size));
    }
    let cpu = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .and_then(|v| v.get("cpu_s"))
            .and_then(|x| x.as_f64())
            .unwrap_or(f64::NAN)
    };
    let paired = |i: usize| -> Vec<String> {
        runs[0]
            .iter()
            .zip(&runs[i])
            .map(|(p, o)| format!("{:.2}x", cpu(o) / cpu(p)))
            .collect()
    };
    if !rules_only {
        println!(
            "per round (same round's runs): profile vs DuckDB {:?}, vs polars {:?}",
            paired(1),
            paired(2)
        );
    }
    let rate = |base: usize, with: usize| -> Vec<String> {
        runs[base]
            .iter()
            .zip(&runs[with])
            .map(|(p, r)| format!("{:.0}%", 100.0 * cpu(p) / cpu(r)))
            .collect()
    };
    println!(
        "per round: rules rate vs the profile-only job {:?} (token on name, or region on the export file), {:?} (token on id); vs the bare profile {:?}, {:?}",
        rate(3, 4),
        rate(3, 5),
        rate(0, 4),
        rate(0, 5)
    );
    let [prof_l, duck, pol, prof_out, rules_l, rules_id] = runs.map(|r| median_run(&r));
    if rules_only {
        print_rules(&prof_l, &prof_out, &rules_l, &rules_id);
        return;
    }

    let f = |v: &Option<serde_json::Value>, k: &str| {
        v.as_ref()
            .and_then(|v| v.get(k))
            .and_then(|x| x.as_f64())
            .unwrap_or(f64::NAN)
    };
    let mb = file_size as f64 / 1e6;
    println!("\n| measurement | range | CPU s | MB per CPU-s | peak RSS MiB |");
    println!("|---|---|---|---|---|");
    for (name, v, range) in [
        ("bare parse", &parse_s, "64 MiB"),
        ("bare parse", &parse_l, "whole file"),
        ("full profile (1 worker)", &prof_s, "64 MiB"),
        ("full profile (1 worker)", &prof_l, "whole file"),
    ] {
        println!(
            "| {name} | {range} | {:.2} | {:.0} | {:.1} |",
            f(v, "cpu_s"),
            f(v, "mb_per_cpu_s"),
            f(v, "peak_rss_mib")
        );
    }
    for (name, v) in [
        ("DuckDB SUMMARIZE (threads=1)", &duck),
        ("polars describe (1 thread)", &pol),
    ] {
        println!(
            "| {name} | whole file | {:.2} | {:.0} | {:.1} |",
            f(v, "cpu_s"),
            mb / f(v, "cpu_s"),
            f(v, "peak_rss_mib")
        );
    }
    print_rules(&prof_l, &prof_out, &rules_l, &rules_id);
    let all = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .and_then(|v| v.get("cpu_s_all"))
            .map_or(String::from("-"), |x| x.to_string())
    };
    println!(
        "\nCPU s of every round, sorted (whole file): profile {}, DuckDB {}, polars {}, rules {}, rules (token on id) {}",
        all(&prof_l),
        all(&duck),
        all(&pol),
        all(&rules_l),
        all(&rules_id)
    );
    let ours = f(&prof_l, "cpu_s");
    println!(
        "\nmedians of {rounds} rounds: full profile speed-up per CPU-second: {:.2}x DuckDB SUMMARIZE (target >= 3x), {:.2}x polars describe (target >= 1.5x)",
        f(&duck, "cpu_s") / ours,
        f(&pol, "cpu_s") / ours
    );
}
