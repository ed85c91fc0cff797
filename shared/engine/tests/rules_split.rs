//! With rules, chunked processing gives the same clean rows, rejected rows (with rule ids and
//! details), violation counts and unique repeats as one sequential run, at chunk sizes down to
//! one byte and read buffers down to one byte.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;
use tessera_engine::chunk::ChunkOptions;
use tessera_engine::file::{process_bytes, ProcessOptions};
use tessera_engine::rules::{from_value, CompiledRules, ResolvedRefs};

fn rules() -> Arc<CompiledRules> {
    let doc = from_value(&json!({
        "version": 1,
        "columns": {
            "a": {"transforms": ["trim", {"case": "upper"}]},
            "b": {"type": "integer", "transforms": [{"mask": {"token": {"length": 8}}}]},
            "c": {"transforms": [{"mask": "partial"}], "rename": "c_masked"},
            "d": {"type": "integer", "drop": true}
        },
        "rules": [
            {"column": "a", "check": "not_null"},
            {"column": "b", "check": {"type": "integer"}, "on_violation": "flag"},
            {"column": "b", "check": {"range": {"min": 0, "max": 50}}},
            {"column": "c", "check": {"matches": {"pattern": "^[a-z ,\"\n]*$"}}, "on_violation": "flag"},
            {"column": "c", "check": {"length": {"max": 6}}, "on_violation": {"fail": {"max_count": 1000}}},
            {"column": "a", "check": {"one_of": {"values": ["x", "y", " x", "z"]}}, "on_violation": "flag"},
            {"check": {"compare": {"left": "d", "op": ">=", "right": "b"}}, "on_violation": "flag"},
            {"column": "a", "check": "unique", "on_violation": "flag"}
        ]
    }))
    .unwrap();
    let columns: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    Arc::new(CompiledRules::compile(&doc, &columns, &ResolvedRefs::none(), Some(b"k")).unwrap())
}

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[0-9]{1,3}",
        "-?[0-9]{1,2}",
        "[a-z ]{1,8}",
        Just(" x ".to_string()),
        "[xyz]",
        "[a-z,\n]{1,5}".prop_map(|s| format!("\"{s}\"")),
        Just("\"a\"\"b\"".to_string()),
    ]
}

fn file() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(prop::collection::vec(field(), 3..=5), 0..25),
        prop::sample::select(vec!["\n", "\r\n"]),
    )
        .prop_map(|(rows, nl)| {
            let mut s = format!("a,b,c,d{nl}");
            for r in rows {
                s.push_str(&r.join(","));
                s.push_str(nl);
            }
            s.into_bytes()
        })
}

fn run(data: &[u8], chunk_size: u64, buf: usize) -> (Vec<u8>, Vec<u8>, String) {
    let opts = ProcessOptions {
        chunk_size,
        workers: 1,
        read_buffer_bytes: buf,
        chunk: ChunkOptions {
            rules: Some(rules()),
            ..ChunkOptions::default()
        },
        ..ProcessOptions::default()
    };
    let out = process_bytes(data, &opts).unwrap();
    let s = &out.summary;
    let counters = format!(
        "{} {} {} {:?} {:?}",
        s.rows, s.rejected_rows, s.rule_rejected_rows, s.violations, s.duplicates
    );
    (out.clean, out.rejected, counters)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rules_split_exactly(data in file(), cs in 1u64..48, buf in 1usize..9) {
        let one = run(&data, 1 << 30, 1 << 16);
        let many = run(&data, cs, buf);
        prop_assert_eq!(String::from_utf8_lossy(&one.0), String::from_utf8_lossy(&many.0));
        prop_assert_eq!(String::from_utf8_lossy(&one.1), String::from_utf8_lossy(&many.1));
        prop_assert_eq!(&one.2, &many.2);
    }
}
