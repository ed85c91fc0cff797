//! Exactness: decimal sums in fixed point (no f64 drift), averages rounded half-even to 12
//! fraction digits, overflow reported rather than rounded, and the result shape of issue 11
//! (counts as integers, sums and averages as strings, null for an empty group's undefined
//! values).

use serde_json::{json, Value};
use tessera_engine::query::{from_value, query_bytes, QueryResult, RunOptions};

fn ask(data: &str, q: Value, chunk: u64) -> QueryResult {
    let mut doc = json!({"version": 1, "source": "source"});
    doc.as_object_mut()
        .unwrap()
        .extend(q.as_object().unwrap().clone());
    let opts = RunOptions {
        chunk_size: chunk,
        workers: 2,
        ..RunOptions::default()
    };
    query_bytes(data.as_bytes(), &from_value(doc).unwrap(), &opts).unwrap()
}

#[test]
fn sums_of_decimals_are_exact_for_every_chunking() {
    // 0.1 ten thousand times: 1000 exactly (an f64 sum gives 999.9999999999062).
    let mut data = String::from("x\n");
    for _ in 0..10_000 {
        data.push_str("0.1\n");
    }
    let q = json!({"aggregates": [{"fn": "sum", "column": "x"}, {"fn": "avg", "column": "x"}, {"fn": "count"}]});
    for chunk in [1 << 20, 4096, 333, 17] {
        let r = ask(&data, q.clone(), chunk);
        assert_eq!(
            r.rows,
            vec![vec![json!("1000"), json!("0.1"), json!(10_000)]],
            "chunk {chunk}"
        );
    }
}

#[test]
fn averages_round_half_even_at_twelve_digits() {
    let cases = [
        ("1\n2\n", "1.5"),
        ("1\n1\n2\n", "1.333333333333"),
        ("2\n2\n1\n", "1.666666666667"),
        ("0.0000000000005\n", "0"), // a tie: to the even digit 0
        ("0.0000000000015\n", "0.000000000002"), // a tie: to the even digit 2
        ("-0.0000000000025\n", "-0.000000000002"),
        ("99999999999999999999.99\n0.01\n", "50000000000000000000"),
    ];
    for (rows, want) in cases {
        let q = json!({"types": {"x": "decimal"}, "aggregates": [{"fn": "avg", "column": "x"}]});
        let r = ask(&format!("x\n{rows}"), q, 1 << 20);
        assert_eq!(r.rows[0][0], json!(want), "{rows:?}");
    }
}

#[test]
fn empty_groups_and_unparsed_values() {
    let data = "k,x\na,1.50\na,oops\nb,\nb,NULL\nc,-2\n";
    let q = json!({"group_by": ["k"], "aggregates": [
        {"fn": "count"}, {"fn": "count", "column": "x"}, {"fn": "sum", "column": "x"},
        {"fn": "avg", "column": "x"}, {"fn": "min", "column": "x"},
        {"fn": "stddev", "column": "x"}, {"fn": "null_count", "column": "x"}]});
    let r = ask(data, q, 3);
    let n = Value::Null;
    assert_eq!(
        r.rows,
        vec![
            vec![
                json!("a"),
                json!(2),
                json!(1),
                json!("1.5"),
                json!("1.5"),
                json!("1.5"),
                n.clone(),
                json!(1)
            ],
            vec![
                json!("b"),
                json!(2),
                json!(0),
                n.clone(),
                n.clone(),
                n.clone(),
                n.clone(),
                json!(2)
            ],
            vec![
                json!("c"),
                json!(1),
                json!(1),
                json!("-2"),
                json!("-2"),
                json!("-2"),
                n.clone(),
                json!(0)
            ],
        ]
    );
    assert_eq!(r.unparsed["x"], 1);
    assert_eq!(r.types["x"], tessera_engine::query::ValueType::Decimal);
    // Without keys there is always one row, even when nothing matches.
    let q = json!({"filter": {"column": "k", "op": "eq", "value": "zz"},
                   "aggregates": [{"fn": "count"}, {"fn": "max", "column": "x"}]});
    assert_eq!(ask(data, q, 1 << 20).rows, vec![vec![json!(0), n]]);
}

#[test]
fn a_sum_beyond_38_digits_is_an_error_not_a_rounding() {
    let big = "9".repeat(37);
    let data = format!("x\n{}", format!("{big}\n").repeat(20));
    let doc = json!({"version": 1, "types": {"x": "decimal"}, "aggregates": [{"fn": "sum", "column": "x"}]});
    let err = query_bytes(
        data.as_bytes(),
        &from_value(doc).unwrap(),
        &RunOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "overflow");
    assert!(err.to_string().contains("sum(x)"), "{err}");
}

#[test]
fn stddev_and_corr_do_not_depend_on_chunking() {
    let mut data = String::from("x,y\n");
    for i in 0..3000u64 {
        data.push_str(&format!(
            "{}.{:02},{}\n",
            1_000_000 + i * 7 % 101,
            i % 100,
            (i * 13) % 97
        ));
    }
    let q = json!({"aggregates": [{"fn": "stddev", "column": "x"},
        {"fn": "corr", "column": "x", "other": "y"}, {"fn": "quantile", "column": "x", "q": 0.5}]});
    let whole = ask(&data, q.clone(), 1 << 20);
    let sd = whole.rows[0][0].as_f64().unwrap();
    assert!(sd > 29.0 && sd < 30.0, "{sd}");
    for chunk in [4096, 999, 61] {
        assert_eq!(ask(&data, q.clone(), chunk), whole, "chunk {chunk}");
    }
}

/// A query that reads no column at all (a bare `count`, with or without a filter-free
/// `count_if`-less plan) counts records; it once indexed an empty value list and panicked.
#[test]
fn a_bare_count_reads_no_column() {
    let mut data = String::from("a,b\n");
    for i in 0..1_000 {
        data.push_str(&format!("{i},x\n"));
    }
    for chunk in [1 << 20, 97, 5] {
        let r = ask(&data, json!({"aggregates": [{"fn": "count"}]}), chunk);
        assert_eq!(r.rows, vec![vec![json!(1_000)]], "chunk {chunk}");
    }
}
