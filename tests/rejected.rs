//! rejected.csv stitched without one function carrying it (issue 15): each chunk's rejected part
//! is rebased (absolute line numbers) in groups of at least S3's 5 MiB part size, by the
//! finalizer when the rejected output is small and by chunk workers (`rejected_rebase` tasks)
//! above `TESSERA_REJECTED_INLINE_MAX_BYTES`; the groups are joined by `UploadPartCopy`. Both
//! ways give the bytes `tessera process` (the engine on local files) writes for the same file.

use std::time::Duration;

use tessera_e2e::*;
use tessera_shared::store::jobs::JobStore;
use tessera_shared::store::objects::ObjectStore;

/// Records `i,name,note`; every third has a fourth field (rejected: wrong field count) and every
/// fifth a quoted note with a line break, so line numbers and record numbers differ.
fn data(min_bytes: usize) -> Vec<u8> {
    let mut s = String::from("i,name,note\n");
    let mut i = 0u64;
    while s.len() < min_bytes {
        let note = if i.is_multiple_of(5) {
            format!("\"two\nlines {i}\"")
        } else {
            format!("note {i} padded a little")
        };
        if i.is_multiple_of(3) {
            s += &format!("{i},name {i},{note},extra\n");
        } else {
            s += &format!("{i},name {i},{note}\n");
        }
        i += 1;
    }
    s.into_bytes()
}

/// clean.csv and rejected.csv of `data` as `tessera process` writes them.
fn local_outputs(data: &[u8], dir: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    use tessera_shared::engine::file::{process_file, ProcessOptions};
    std::fs::create_dir_all(dir).unwrap();
    let src = dir.join("src.csv");
    std::fs::write(&src, data).unwrap();
    let opts = ProcessOptions {
        chunk_size: 300_007,
        workers: 2,
        out_dir: dir.join("out"),
        ..ProcessOptions::default()
    };
    process_file(&src, &opts).expect("process_file");
    (
        std::fs::read(dir.join("out/clean.csv")).unwrap(),
        std::fs::read(dir.join("out/rejected.csv")).unwrap(),
    )
}

/// Runs `data` as a job on a stack with 64 KiB chunks and the given inline limit; its clean and
/// rejected outputs, and how many rebase groups were fanned out to chunk workers.
async fn run(data: &[u8], inline_max: u64) -> (Vec<u8>, Vec<u8>, u32) {
    let stack = stack_with(|o| {
        o.chunk_size = 1 << 20;
        o.env
            .push(("TESSERA_REJECTED_INLINE_MAX_BYTES", inline_max.to_string()));
    })
    .await;
    let alice = Client::new(&stack, "alice");
    let id = alice
        .upload("r.csv", data.len() as u64, data.to_vec())
        .await;
    let done = alice.wait_final(&id, Duration::from_secs(240)).await;
    assert_eq!(done["state"], "completed", "{done}");
    let objects = ObjectStore::new(stack.clients.s3.clone(), &stack.config.bucket);
    let read = |name: &str| {
        let (objects, key) = (objects.clone(), format!("results/alice/{id}/{name}"));
        async move { objects.read_all(&key).await.unwrap() }
    };
    let (clean, rejected) = (read("clean.csv").await, read("rejected.csv").await);
    let job = JobStore::new(stack.clients.dynamodb.clone(), &stack.config.jobs_table)
        .get(&id)
        .await
        .unwrap()
        .unwrap();
    stack.shutdown().await;
    (clean, rejected, job.rebase_groups)
}

#[tokio::test]
async fn rejected_csv_is_the_same_rebased_inline_or_by_chunk_workers_small_and_large() {
    let dir = std::env::temp_dir().join(format!("tessera-rejected-{}", std::process::id()));
    // Small: 300 KB, every rejected part far below 5 MiB (one group). Large: 36 MB over 35
    // chunks, ~20 MB rejected: groups of at least 5 MiB (4), joined by UploadPartCopy.
    for (name, size, min_groups) in [("small", 300_000, 1), ("large", 36 << 20, 3)] {
        let data = data(size);
        let (clean, rejected) = local_outputs(&data, &dir.join(name));
        assert!(rejected.len() > size / 3, "{name}: {}", rejected.len());
        let inline = run(&data, u64::MAX).await;
        let fanned = run(&data, 0).await;
        assert_eq!(inline.2, 0, "{name}: rebased inline");
        assert!(
            fanned.2 >= min_groups && (fanned.2 == 1) == (name == "small"),
            "{name}: {} rebase groups fanned out",
            fanned.2
        );
        println!(
            "{name}: {} bytes, rejected.csv {} bytes, {} rebase groups fanned out",
            data.len(),
            rejected.len(),
            fanned.2
        );
        for (how, (c, r, _)) in [("inline", &inline), ("fanned out", &fanned)] {
            assert!(
                c == &clean,
                "{name} {how}: clean.csv differs from tessera process"
            );
            assert!(
                r == &rejected,
                "{name} {how}: rejected.csv differs from tessera process ({} vs {} bytes)",
                r.len(),
                rejected.len()
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
