//! The S3 adapter's stitching (`ObjectStore::concat`) against the emulator: sources of every
//! size class around S3's 5 MiB part minimum, in one object, byte for byte. Large sources are
//! copied by S3 (whole or as a range after a small run), small ones gathered into uploaded
//! parts (`plan_concat`, unit-tested for its invariants).

use tessera_e2e::*;
use tessera_shared::store::objects::{plan_concat, ConcatPart, ObjectStore, MIN_PART};

const M: usize = 1024 * 1024;

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[3] ^ seed)
        .collect()
}

#[tokio::test]
async fn concat_stitches_large_and_small_sources_exactly() {
    let stack = stack_with(|o| o.no_pollers = true).await;
    let objects = ObjectStore::new(stack.clients.s3.clone(), &stack.config.bucket);
    let shapes: Vec<Vec<usize>> = vec![
        // A header, a large part (copied as a range after the header's part), a large one
        // (copied whole), small ones around an empty one.
        vec![100, 12 * M, 6 * M, 3 * M, 0, 2 * M],
        // Only small sources, more than 5 MiB in all.
        vec![2 * M, 2 * M, 2 * M, 1],
        // Below 5 MiB in all: one plain PUT.
        vec![10, 0, 20],
    ];
    for (n, shape) in shapes.iter().enumerate() {
        let mut keys = Vec::new();
        let mut want = Vec::new();
        for (i, &len) in shape.iter().enumerate() {
            let key = format!("results/t/{n}/parts/{i}");
            let data = bytes(len, i as u8);
            want.extend_from_slice(&data);
            objects.put(&key, data, "text/csv").await.unwrap();
            keys.push(key);
        }
        let dest = format!("results/t/{n}/all.csv");
        let total = objects.concat(&dest, &keys, "text/csv").await.unwrap();
        assert_eq!(total, want.len() as u64);
        let got = objects.read_all(&dest).await.unwrap();
        assert_eq!(got.len(), want.len(), "shape {shape:?}");
        assert!(got == want, "shape {shape:?}: contents differ");
    }
    // The first shape used both kinds of copy.
    let sizes: Vec<u64> = shapes[0].iter().map(|&s| s as u64).collect();
    let plan = plan_concat(&sizes);
    assert!(plan
        .iter()
        .any(|p| matches!(p, ConcatPart::Copy { range: Some(_), .. })));
    assert!(plan
        .iter()
        .any(|p| matches!(p, ConcatPart::Copy { range: None, .. })));
    assert!(MIN_PART == 5 * M as u64);
    stack.shutdown().await;
}
