//! Exactness on a real-size file, end to end through `process_file` with several threads:
//! `TESSERA_BIG_CSV=bench-data/engine-1024mib.csv cargo test -p tessera-engine --release
//! --test big_file -- --ignored` (the bench generates that file). Compares the outputs of one
//! chunk with those of many small chunks, byte for byte.

use std::path::PathBuf;

use tessera_engine::file::{process_file, ProcessOptions};

#[test]
#[ignore = "needs TESSERA_BIG_CSV (a large file) and a release build"]
fn many_chunks_equal_one_chunk_on_a_big_file() {
    let path = PathBuf::from(std::env::var("TESSERA_BIG_CSV").expect("set TESSERA_BIG_CSV"));
    let size = std::fs::metadata(&path).unwrap().len();
    let base = std::env::temp_dir().join(format!("tessera-big-{}", std::process::id()));
    let run = |name: &str, chunk_size: u64| {
        let out_dir = base.join(name);
        let s = process_file(
            &path,
            &ProcessOptions {
                chunk_size,
                workers: 0,
                out_dir: out_dir.clone(),
                ..ProcessOptions::default()
            },
        )
        .unwrap();
        (s, out_dir)
    };
    let (one, one_dir) = run("one", size);
    let small = std::env::var("TESSERA_BIG_CHUNK")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7_777_777);
    let (many, many_dir) = run("many", small);
    eprintln!(
        "one chunk: {} rows in {:.1}s; {} chunks ({} re-run): {:.1}s",
        one.rows, one.elapsed_seconds, many.chunks, many.reruns, many.elapsed_seconds
    );
    assert_eq!(
        (one.rows, one.rejected_rows),
        (many.rows, many.rejected_rows)
    );
    for f in ["clean.csv", "rejected.csv"] {
        let a = std::fs::read(one_dir.join(f)).unwrap();
        let b = std::fs::read(many_dir.join(f)).unwrap();
        assert!(a == b, "{f} differs");
    }
    std::fs::remove_dir_all(&base).unwrap();
}
