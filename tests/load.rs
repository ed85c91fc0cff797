//! `tessera load` in small (issue 15): 6 concurrent jobs of mixed sizes from 3 owners with API
//! traffic, then again beside the hostile owner (header bombs, declared-size mismatches). Only
//! exactness is asserted (every job's counts and clean/rejected bytes equal the engine's run on
//! the same file; the hostile owner's mismatches fail `size_mismatch`); the timing bound is
//! `tessera load`'s business, run by hand (docs/local.md § *Load*).

use std::time::Duration;

use tessera_e2e::emulator_url;
use tessera_infra::load::{run, LoadOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_load_is_exact_with_and_without_a_hostile_owner() {
    let opts = LoadOptions {
        owners: 3,
        jobs: 6,
        sizes: vec![20_000, 150_000, 700_000],
        chunk_size: 128 * 1024,
        chunk_concurrency: 2,
        hostile: true,
        job_timeout: Duration::from_secs(240),
        work_dir: std::env::temp_dir().join(format!("tessera-load-test-{}", std::process::id())),
        ..LoadOptions::default()
    };
    let report = run(&opts, emulator_url())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let hostile = report.beside_hostile.as_ref().expect("the hostile run");
    for f in [&report.quiet, hostile] {
        assert_eq!((f.jobs, f.exact), (6, 6));
        assert_eq!(f.completion.len(), 6);
        assert_eq!(f.api_errors, 0, "no 5xx and no failed call");
        assert!(!f.health_latency.is_empty());
    }
    assert!(
        hostile.hostile.get("size_mismatch").copied().unwrap_or(0) >= 2,
        "{:?}",
        hostile.hostile
    );
    assert!(
        hostile.hostile.get("completed").copied().unwrap_or(0) >= 2,
        "header bombs (9,999 names) are within the column limit: {:?}",
        hostile.hostile
    );
    assert_eq!(hostile.hostile.len(), 2, "{:?}", hostile.hostile);
    std::fs::remove_dir_all(&opts.work_dir).ok();
}
