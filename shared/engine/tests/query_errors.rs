//! Bad queries: every structural and semantic error has a stable code and a JSON path, all
//! problems of a document are reported at once, and an unknown column comes with a
//! suggestion. Also: `too_many_groups` names its limit, and the published JSON Schema
//! (docs/query.schema.json) is the one the types derive.

use serde_json::{json, Value};
use tessera_engine::query::{
    compile, from_value, json_schema, parse_document, query_bytes, QueryError, QueryOptions,
    RunOptions, Schema, ValueType,
};

fn schema() -> Schema {
    use ValueType::*;
    Schema {
        columns: ["region", "amount", "qty", "ts", "day", "flag"]
            .map(std::string::String::from)
            .to_vec(),
        types: vec![String, Decimal, Integer, Timestamp, Date, Boolean],
    }
}

/// The problems of `doc`, as (code, path) pairs.
fn problems(doc: Value) -> Vec<(String, String)> {
    let err = from_value(doc.clone())
        .and_then(|d| compile(&d, &schema(), &QueryOptions::default()))
        .err()
        .unwrap_or_else(|| panic!("expected {doc} to be refused"));
    assert_eq!(err.code(), "invalid_query");
    err.problems()
        .iter()
        .map(|p| {
            assert!(!p.message.is_empty());
            (p.code.clone(), p.path.clone())
        })
        .collect()
}

fn with(body: Value) -> Value {
    let mut v = json!({"version": 1});
    v.as_object_mut()
        .unwrap()
        .extend(body.as_object().unwrap().clone());
    v
}

#[test]
fn every_error_has_a_code_and_a_path() {
    let count = json!([{"fn": "count"}]);
    let table: Vec<(Value, &str, &str)> = vec![
        (json!([1]), "invalid_document", "$"),
        (
            json!({"aggregates": [{"fn": "count"}]}),
            "missing_argument",
            "$",
        ),
        (
            with(json!({"aggregates": count, "colour": 1})),
            "unknown_field",
            "$.colour",
        ),
        (
            json!({"version": 2, "aggregates": count}),
            "unsupported_version",
            "$.version",
        ),
        (with(json!({})), "empty_query", "$"),
        (
            with(json!({"source": "elsewhere", "aggregates": count})),
            "invalid_value",
            "$.source",
        ),
        (
            with(json!({"limit": -1, "aggregates": count})),
            "invalid_document",
            "$.limit",
        ),
        (
            with(json!({"aggregates": [{"fn": "median", "column": "qty"}]})),
            "invalid_value",
            "$.aggregates[0].fn",
        ),
        (
            with(json!({"aggregates": [{"fn": "sum", "column": "qty", "extra": 1}]})),
            "unknown_field",
            "$.aggregates[0].extra",
        ),
        (
            with(
                json!({"filter": {"column": "regoin", "op": "eq", "value": "x"}, "aggregates": count}),
            ),
            "unknown_column",
            "$.filter.column",
        ),
        (
            with(
                json!({"filter": {"and": [{"column": "qty", "op": "eq", "value": 1}, {"column": "qty", "op": "equals", "value": 1}]}, "aggregates": count}),
            ),
            "invalid_value",
            "$.filter.and[1].op",
        ),
        (
            with(
                json!({"filter": {"and": [{"column": "qty", "op": "eq", "value": "ten"}]}, "aggregates": count}),
            ),
            "type_mismatch",
            "$.filter.and[0].value",
        ),
        (
            with(
                json!({"filter": {"column": "ts", "op": "gt", "value": "yesterday"}, "aggregates": count}),
            ),
            "type_mismatch",
            "$.filter.value",
        ),
        (
            with(
                json!({"filter": {"column": "flag", "op": "eq", "value": 1}, "aggregates": count}),
            ),
            "type_mismatch",
            "$.filter.value",
        ),
        (
            with(
                json!({"filter": {"column": "qty", "op": "contains", "value": "1"}, "aggregates": count}),
            ),
            "type_mismatch",
            "$.filter.op",
        ),
        (
            with(
                json!({"filter": {"column": "region", "op": "matches", "value": "(("}, "aggregates": count}),
            ),
            "invalid_value",
            "$.filter.value",
        ),
        (
            with(
                json!({"filter": {"column": "qty", "op": "between", "value": [1]}, "aggregates": count}),
            ),
            "type_mismatch",
            "$.filter.value",
        ),
        (
            with(json!({"filter": {"column": "qty", "op": "in", "value": 3}, "aggregates": count})),
            "type_mismatch",
            "$.filter.value",
        ),
        (
            with(json!({"filter": {"column": "qty", "op": "gt"}, "aggregates": count})),
            "missing_argument",
            "$.filter",
        ),
        (
            with(
                json!({"filter": {"column": "qty", "op": "is_null", "value": 1}, "aggregates": count}),
            ),
            "unexpected_argument",
            "$.filter.value",
        ),
        (
            with(json!({"filter": {"not": {"op": "eq", "value": 1}}, "aggregates": count})),
            "missing_argument",
            "$.filter.not",
        ),
        (
            with(
                json!({"filter": {"and": {"column": "qty", "op": "eq", "value": 1}}, "aggregates": count}),
            ),
            "invalid_document",
            "$.filter.and",
        ),
        (
            with(json!({"filter": {"and": [], "or": []}, "aggregates": count})),
            "unexpected_argument",
            "$.filter",
        ),
        (
            with(
                json!({"filter": {"column": "qty", "op": "eq", "value": 1, "note": "x"}, "aggregates": count}),
            ),
            "unknown_field",
            "$.filter.note",
        ),
        (
            with(json!({"group_by": [{"column": "ts", "bucket": "fortnight"}]})),
            "invalid_value",
            "$.group_by[0].bucket",
        ),
        (
            with(json!({"group_by": [{"column": "ts", "buckets": "day"}]})),
            "unknown_field",
            "$.group_by[0].buckets",
        ),
        (
            with(json!({"group_by": [7]})),
            "invalid_document",
            "$.group_by[0]",
        ),
        (
            with(json!({"group_by": [{"column": "region", "bucket": "day"}]})),
            "type_mismatch",
            "$.group_by[0].bucket",
        ),
        (
            with(json!({"group_by": [{"column": "day", "bucket": "hour"}]})),
            "type_mismatch",
            "$.group_by[0].bucket",
        ),
        (
            with(json!({"group_by": [{"column": "qty", "width": 0}]})),
            "invalid_value",
            "$.group_by[0].width",
        ),
        (
            with(json!({"group_by": [{"column": "qty", "edges": [5, 1]}]})),
            "invalid_value",
            "$.group_by[0].edges",
        ),
        (
            with(json!({"group_by": [{"column": "qty", "transform": "lower"}]})),
            "type_mismatch",
            "$.group_by[0].transform",
        ),
        (
            with(json!({"group_by": [{"column": "qty", "width": 2, "edges": [1]}]})),
            "invalid_value",
            "$.group_by[0]",
        ),
        (
            with(json!({"group_by": ["nope"]})),
            "unknown_column",
            "$.group_by[0]",
        ),
        (
            with(json!({"aggregates": [{"fn": "sum"}]})),
            "missing_argument",
            "$.aggregates[0]",
        ),
        (
            with(json!({"aggregates": [{"fn": "sum", "column": "region"}]})),
            "type_mismatch",
            "$.aggregates[0].column",
        ),
        (
            with(json!({"aggregates": [{"fn": "avg", "column": "amonut"}]})),
            "unknown_column",
            "$.aggregates[0].column",
        ),
        (
            with(json!({"aggregates": [{"fn": "count_if"}]})),
            "missing_argument",
            "$.aggregates[0]",
        ),
        (
            with(
                json!({"aggregates": [{"fn": "count", "filter": {"column": "qty", "op": "is_null"}}]}),
            ),
            "unexpected_argument",
            "$.aggregates[0].filter",
        ),
        (
            with(json!({"aggregates": [{"fn": "quantile", "column": "qty", "q": 1.5}]})),
            "invalid_value",
            "$.aggregates[0].q",
        ),
        (
            with(json!({"aggregates": [{"fn": "sum", "column": "qty", "approx": true}]})),
            "unexpected_argument",
            "$.aggregates[0].approx",
        ),
        (
            with(json!({"aggregates": [{"fn": "top", "column": "qty", "k": 0}]})),
            "invalid_value",
            "$.aggregates[0].k",
        ),
        (
            with(json!({"aggregates": [{"fn": "corr", "column": "qty"}]})),
            "missing_argument",
            "$.aggregates[0]",
        ),
        (
            with(json!({"aggregates": [{"fn": "corr", "column": "qty", "other": "day"}]})),
            "type_mismatch",
            "$.aggregates[0].other",
        ),
        (
            with(
                json!({"aggregates": [{"fn": "count_if", "filter": {"column": "zz", "op": "is_null"}}]}),
            ),
            "unknown_column",
            "$.aggregates[0].filter.column",
        ),
        (
            with(
                json!({"group_by": ["region"], "aggregates": count, "order_by": [{"key": "qty"}]}),
            ),
            "unknown_key",
            "$.order_by[0].key",
        ),
        (
            with(
                json!({"group_by": ["region"], "aggregates": count, "order_by": [{"aggregate": 3}]}),
            ),
            "aggregate_out_of_range",
            "$.order_by[0].aggregate",
        ),
        (
            with(
                json!({"group_by": ["region"], "aggregates": count, "order_by": [{"desc": true}]}),
            ),
            "invalid_value",
            "$.order_by[0]",
        ),
        (
            with(
                json!({"group_by": ["region"], "aggregates": [{"fn": "top", "column": "qty"}], "order_by": [{"aggregate": 0}]}),
            ),
            "invalid_value",
            "$.order_by[0]",
        ),
        (
            with(
                json!({"group_by": ["region"], "aggregates": count, "having": {"aggregate": 0, "op": "gt", "value": "many"}}),
            ),
            "type_mismatch",
            "$.having.value",
        ),
        (
            with(
                json!({"group_by": ["region"], "aggregates": count, "having": {"aggregate": 0, "op": "contains", "value": 1}}),
            ),
            "invalid_value",
            "$.having.op",
        ),
        (
            with(
                json!({"group_by": ["region"], "aggregates": count, "having": {"and": [{"aggregate": 5, "op": "gt", "value": 1}]}}),
            ),
            "aggregate_out_of_range",
            "$.having.and[0].aggregate",
        ),
        (
            with(
                json!({"group_by": ["region"], "aggregates": count, "having": {"column": "region", "op": "gt", "value": 1}}),
            ),
            "unknown_field",
            "$.having.column",
        ),
        (
            with(json!({"types": {"qtty": "integer"}, "aggregates": count})),
            "unknown_column",
            "$.types.qtty",
        ),
        (
            with(json!({"types": {"qty": "float"}, "aggregates": count})),
            "invalid_value",
            "$.types.qty",
        ),
    ];
    for (doc, code, path) in table {
        let got = problems(doc.clone());
        assert!(
            got.contains(&(code.to_string(), path.to_string())),
            "{doc}: expected {code} at {path}, got {got:?}"
        );
    }
}

#[test]
fn all_problems_at_once_and_a_suggestion() {
    let err = from_value(with(json!({
        "filter": {"column": "Regoin", "op": "eq", "value": "x"},
        "group_by": ["qyt"],
        "aggregates": [{"fn": "sum", "column": "region"}]
    })))
    .and_then(|d| compile(&d, &schema(), &QueryOptions::default()))
    .unwrap_err();
    let p = err.problems();
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(
        p[0].message.contains("did you mean `region`?"),
        "{}",
        p[0].message
    );
    assert!(
        p[1].message.contains("did you mean `qty`?"),
        "{}",
        p[1].message
    );
    assert_eq!(p[2].code, "type_mismatch");
    let far = problems(with(json!({"group_by": ["zzzzzzzz"]})));
    assert_eq!(
        far,
        vec![("unknown_column".to_string(), "$.group_by[0]".to_string())]
    );
}

#[test]
fn not_json_is_invalid_json() {
    let err = parse_document(b"{\"version\": 1,").unwrap_err();
    assert_eq!(err.problems()[0].code, "invalid_json");
    assert_eq!(err.problems()[0].path, "$");
}

#[test]
fn too_many_groups_names_the_limit() {
    let mut data = b"id,v\n".to_vec();
    for i in 0..500 {
        data.extend_from_slice(format!("{i},{}\n", i % 7).as_bytes());
    }
    let doc = from_value(with(
        json!({"group_by": ["id"], "aggregates": [{"fn": "count"}]}),
    ))
    .unwrap();
    for chunk in [1 << 20, 100] {
        let opts = RunOptions {
            chunk_size: chunk,
            workers: 1,
            query: QueryOptions {
                max_groups: 300,
                ..QueryOptions::default()
            },
            ..RunOptions::default()
        };
        match query_bytes(&data, &doc, &opts) {
            Err(e @ QueryError::TooManyGroups { limit: 300 }) => {
                assert_eq!(e.code(), "too_many_groups");
                assert!(e.to_string().contains("300"), "{e}");
            }
            other => panic!("expected too_many_groups, got {other:?}"),
        }
    }
    let doc = from_value(with(
        json!({"group_by": ["v"], "aggregates": [{"fn": "count"}]}),
    ))
    .unwrap();
    let opts = RunOptions {
        query: QueryOptions {
            max_groups: 7,
            ..QueryOptions::default()
        },
        ..RunOptions::default()
    };
    assert_eq!(query_bytes(&data, &doc, &opts).unwrap().rows.len(), 7);
}

#[test]
fn too_many_values_names_the_limit_and_approx_avoids_it() {
    let mut data = b"id,v\n".to_vec();
    for i in 0..500 {
        data.extend_from_slice(format!("{i},{}\n", i % 3).as_bytes());
    }
    let opts = |chunk| RunOptions {
        chunk_size: chunk,
        workers: 2,
        query: QueryOptions {
            max_values: 400,
            ..QueryOptions::default()
        },
        ..RunOptions::default()
    };
    for agg in [
        json!({"fn": "count_distinct", "column": "id"}),
        json!({"fn": "top", "column": "id"}),
    ] {
        let doc = from_value(with(json!({"aggregates": [agg]}))).unwrap();
        for chunk in [1 << 20, 50] {
            match query_bytes(&data, &doc, &opts(chunk)) {
                Err(e @ QueryError::TooManyValues { limit: 400 }) => {
                    assert_eq!(e.code(), "too_many_values");
                    assert!(e.to_string().contains("400"), "{e}");
                }
                other => panic!("expected too_many_values, got {other:?}"),
            }
        }
    }
    let doc = from_value(with(json!({"group_by": ["v"], "aggregates": [{"fn": "count_distinct", "column": "id", "approx": true}]}))).unwrap();
    let r = query_bytes(&data, &doc, &opts(50)).unwrap();
    let total: u64 = r.rows.iter().map(|row| row[1].as_u64().unwrap()).sum();
    assert_eq!(total, 500, "exact below 1024 values per group");
}

#[test]
fn published_schema_is_current() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/query.schema.json");
    let want = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
    if std::env::var_os("TESSERA_WRITE_SCHEMA").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/query.schema.json is out of date; regenerate it with \
         TESSERA_WRITE_SCHEMA=1 cargo test -p tessera-engine --test query_errors"
    );
}
