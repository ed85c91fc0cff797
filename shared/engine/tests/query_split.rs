//! The answer of a query does not depend on how the file is cut: every chunk size from one
//! byte up and any worker count give the same result object as one range, and partial states
//! shipped as bytes and merged in any order (as a query job merges them) give it too.

mod query_common;

use proptest::prelude::*;
use tessera_engine::query::{
    compile, finish, from_value, layout, query_bytes, run_range, Finisher, PartialState,
    QueryOptions, QueryResult, RunOptions,
};
use tessera_engine::split::{plan, validate, ChunkSummary, ChunkTask};

/// `q` with the column types fixed (tiny files would otherwise type every column as text).
fn typed(q: &serde_json::Value) -> serde_json::Value {
    let mut q = q.clone();
    q["types"] = serde_json::json!({"id": "integer", "amount": "decimal", "qty": "integer",
        "ts": "timestamp", "day": "date", "flag": "boolean", "score": "decimal"});
    q
}

fn run(data: &[u8], q: &serde_json::Value, chunk: u64, workers: usize) -> QueryResult {
    let doc = from_value(typed(q)).unwrap();
    let opts = RunOptions {
        chunk_size: chunk,
        workers,
        ..RunOptions::default()
    };
    query_bytes(data, &doc, &opts).unwrap_or_else(|e| panic!("{q}: {e}"))
}

#[test]
fn every_chunk_size_from_one_byte_gives_one_answer() {
    let data = query_common::csv(11, 40, false);
    let queries = query_common::queries();
    for q in &queries {
        let whole = run(&data, q, 1 << 30, 1);
        for chunk in [1, 2, 3, 5, 8, 13, 64, 333] {
            assert_eq!(
                run(&data, q, chunk, 1 + (chunk as usize % 3)),
                whole,
                "chunk {chunk}: {q}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn random_files_and_cuts(seed in 0u64..10_000, rows in 0usize..60, crlf: bool,
                             chunk in 1u64..400, workers in 1usize..4, which in 0usize..36) {
        let data = query_common::csv(seed, rows, crlf);
        let queries = query_common::queries();
        let q = &queries[which % queries.len()];
        prop_assert_eq!(run(&data, q, chunk, workers), run(&data, q, 1 << 30, 1));
    }
}

/// What a query job does: one task per range, each state shipped as bytes; the last
/// completion reads them all back and merges (here in reverse order, pairwise as a tree).
#[test]
fn shipped_states_merge_in_any_order() {
    let data = query_common::csv(5, 300, true);
    let size = data.len() as u64;
    let opts = RunOptions::default();
    let lay = layout(&data[..], size).unwrap();
    for q in query_common::queries() {
        let doc = from_value(typed(&q)).unwrap();
        let p = compile(&doc, &lay.schema, &QueryOptions::default()).unwrap();
        let tasks = plan(size, lay.header_len, 700);
        let mut outs: Vec<(PartialState, ChunkSummary)> = tasks
            .iter()
            .map(|t| run_range(&data[..], size, t, &lay.dialect, &p, &opts).unwrap())
            .collect();
        let sums: Vec<ChunkSummary> = outs.iter().map(|o| o.1).collect();
        for (i, k) in validate(&sums) {
            let t = ChunkTask {
                start_in_quotes: Some(k),
                ..tasks[i as usize]
            };
            outs[i as usize] = run_range(&data[..], size, &t, &lay.dialect, &p, &opts).unwrap();
        }
        let mut shipped: Vec<PartialState> = outs
            .iter()
            .rev()
            .map(|o| PartialState::from_bytes(&o.0.to_bytes()).unwrap())
            .collect();
        while shipped.len() > 1 {
            let b = shipped.pop().unwrap();
            let mut a = shipped.pop().unwrap();
            a.merge(&p, &b).unwrap();
            shipped.insert(0, a);
        }
        let merged = finish(&p, &shipped[0]).unwrap();
        assert_eq!(merged, run(&data, &q, 1 << 30, 1), "{q}");
        // Spilled: every range's state cut into partitions by key hash, each partition merged
        // over the ranges and finished on its own, gives the same answer.
        for parts in [1, 2, 7] {
            let mut by_part: Vec<PartialState> =
                (0..parts).map(|_| PartialState::new(&p)).collect();
            for o in &outs {
                for (i, piece) in o.0.partitions(&p, parts).unwrap().iter().enumerate() {
                    let shipped = PartialState::from_bytes(&piece.to_bytes()).unwrap();
                    by_part[i].merge(&p, &shipped).unwrap();
                }
            }
            let mut f = Finisher::new(&p);
            for part in &by_part {
                f.add(&p, part).unwrap();
            }
            assert_eq!(f.finish(&p).unwrap(), merged, "{parts} partitions: {q}");
        }
        // A merged state shipped again (a tree of merges) still gives the same answer.
        let again = PartialState::from_bytes(&shipped[0].to_bytes()).unwrap();
        assert_eq!(finish(&p, &again).unwrap(), merged, "{q}");
    }
}

#[test]
fn a_state_of_another_query_is_refused() {
    let data = query_common::csv(6, 20, false);
    let lay = layout(&data[..], data.len() as u64).unwrap();
    let qs = query_common::queries();
    let a = compile(
        &from_value(qs[0].clone()).unwrap(),
        &lay.schema,
        &QueryOptions::default(),
    )
    .unwrap();
    let b = compile(
        &from_value(qs[2].clone()).unwrap(),
        &lay.schema,
        &QueryOptions::default(),
    )
    .unwrap();
    let mut sa = PartialState::new(&a);
    let err = sa.merge(&a, &PartialState::new(&b)).unwrap_err();
    assert_eq!(err.code(), "bad_state");
}

/// Malformed records (invalid UTF-8, a NUL byte, a ragged row, a character cut by every
/// read-buffer boundary) are skipped and counted the same way by long ranges (checked per
/// buffer) and short ones (checked per record).
#[test]
fn malformed_records_are_counted_alike() {
    let mut data = b"k,v\n".to_vec();
    let mut i = 0;
    while data.len() < 300 << 10 {
        let line = match i % 997 {
            5 => b"bad\xff\xfe,1\n".to_vec(),
            7 => b"nul\x00,2\n".to_vec(),
            9 => b"ragged,3,4\n".to_vec(),
            _ => format!("Z\u{fc}rich \u{6771}\u{4eac},{}\n", i % 13).into_bytes(),
        };
        data.extend_from_slice(&line);
        i += 1;
    }
    let q = serde_json::json!({"version": 1, "group_by": ["k"], "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "v"}]});
    let doc = from_value(q).unwrap();
    let mut answers = Vec::new();
    for (chunk, buf) in [
        (1 << 30, 256 << 10),
        (1 << 30, 1000),
        (100 << 10, 4093),
        (997, 256 << 10),
    ] {
        let opts = RunOptions {
            chunk_size: chunk,
            workers: 2,
            read_buffer_bytes: buf,
            ..RunOptions::default()
        };
        answers.push(query_bytes(&data, &doc, &opts).unwrap());
    }
    assert!(
        answers[0].rejected_rows >= 3 * (i / 997),
        "{}",
        answers[0].rejected_rows
    );
    for a in &answers[1..] {
        assert_eq!(a, &answers[0]);
    }
}

/// The server types columns from the job's profile, the local command from the records it
/// reads: on a file read whole, both give the same types.
#[test]
fn profile_and_local_inference_agree() {
    use tessera_engine::file::{process_bytes, ProcessOptions};
    use tessera_engine::query::Schema;
    for seed in [21, 22] {
        let data = query_common::csv(seed, 400, seed == 22);
        let out = process_bytes(
            &data,
            &ProcessOptions {
                profile_only: true,
                ..ProcessOptions::default()
            },
        )
        .unwrap();
        let from_profile = Schema::from_profile(&out.profile.report());
        let local = layout(&data[..], data.len() as u64).unwrap().schema;
        assert_eq!(from_profile, local);
        assert!(
            local
                .types
                .contains(&tessera_engine::query::ValueType::Decimal),
            "{local:?}"
        );
    }
}

/// A query task is fed its range's bytes as they arrive, in slices of any size (UTF-8
/// characters cut anywhere): the answer is the one of a whole read.
#[test]
fn a_range_fed_in_slices_of_any_size() {
    use tessera_engine::query::RangeQuery;
    let mut data = b"k,v\n".to_vec();
    let mut i = 0u32;
    while data.len() < 100 << 10 {
        let line = match i % 211 {
            3 => b"bad\xff,1\n".to_vec(),
            _ => format!("Z\u{fc}rich \u{6771}\u{4eac} \u{1F600},{}\n", i % 13).into_bytes(),
        };
        data.extend_from_slice(&line);
        i += 1;
    }
    let q = serde_json::json!({"version": 1, "group_by": ["k"], "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "v"}]});
    let want = query_bytes(
        &data,
        &from_value(q.clone()).unwrap(),
        &RunOptions::default(),
    )
    .unwrap();
    assert!(want.rejected_rows > 0 && want.rows.len() == 1, "{want:?}");
    let lay = layout(&data[..], data.len() as u64).unwrap();
    let p = compile(
        &from_value(q).unwrap(),
        &lay.schema,
        &QueryOptions::default(),
    )
    .unwrap();
    let task = ChunkTask {
        index: 0,
        start: lay.header_len,
        end: data.len() as u64,
        start_in_quotes: Some(false),
    };
    for piece in [1, 2, 3, 5, 4096, 65537] {
        let mut scan = RangeQuery::new(&task, &lay.dialect, &p, 1 << 20);
        for s in data[lay.header_len as usize..].chunks(piece) {
            scan.feed(s).unwrap();
        }
        let (state, _) = scan.finish().unwrap();
        assert_eq!(finish(&p, &state).unwrap(), want, "slices of {piece}");
    }
}
