//! The query engine against DuckDB: generated CSV files (quoted delimiters, quotes and
//! newlines, null spellings, unparsable values, mixed types) and three dozen queries each; the
//! engine's answer must be identical for every chunk size and worker count, and DuckDB's
//! answer to the equivalent SQL (tests/query_duckdb.py) must match it: exactly for exact
//! aggregates, within the documented error for `quantile` and approximate `count_distinct`.
//!
//! Needs python3 with duckdb==1.5.6 (.ci/run installs it); fails, never skips, without them.

mod query_common;

use std::process::Command;

use serde_json::json;
use tessera_engine::query::{from_value, query_bytes, QueryResult, RunOptions};

fn run(data: &[u8], q: &serde_json::Value, chunk: u64, workers: usize) -> QueryResult {
    let doc = from_value(q.clone()).unwrap_or_else(|e| panic!("{q}: {e}"));
    let opts = RunOptions {
        chunk_size: chunk,
        workers,
        ..RunOptions::default()
    };
    query_bytes(data, &doc, &opts).unwrap_or_else(|e| panic!("{q}: {e}"))
}

#[test]
fn answers_match_duckdb_and_do_not_depend_on_chunking() {
    let dir = std::env::temp_dir().join(format!("tessera-query-duckdb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cases = Vec::new();
    for (seed, rows, crlf) in [(1u64, 600usize, false), (2, 350, true), (3, 1500, false)] {
        let data = query_common::csv(seed, rows, crlf);
        if seed == 3 {
            // One range of this file is long enough for the per-buffer UTF-8 check; the
            // 61-byte ranges check record by record: both must agree.
            assert!(data.len() > 64 << 10, "{}", data.len());
        }
        let path = dir.join(format!("gen-{seed}.csv"));
        std::fs::write(&path, &data).unwrap();
        for q in query_common::queries() {
            let whole = run(&data, &q, 1 << 30, 1);
            for (chunk, workers) in [(997, 2), (4096, 1), (61, 2)] {
                let got = run(&data, &q, chunk, workers);
                assert_eq!(
                    got, whole,
                    "chunk {chunk}, workers {workers}, seed {seed}: {q}"
                );
            }
            cases.push(json!({
                "file": path.to_str().unwrap(),
                "columns": query_common::COLUMNS,
                "query": q,
                "result": whole,
            }));
        }
    }
    let spec = json!({
        "null_tokens": tessera_engine::profile::DEFAULT_NULL_TOKENS.iter().chain(&[""]).collect::<Vec<_>>(),
        "cases": cases,
    });
    let spec_path = dir.join("cases.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/query_duckdb.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&spec_path)
        .output()
        .expect("python3 must be installed (with `pip install duckdb==1.5.6`) for this test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "DuckDB disagrees (or python3/duckdb is missing: pip install duckdb==1.5.6):\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("{} passed, 0 failed", cases.len())),
        "{stdout}"
    );
    println!("{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
