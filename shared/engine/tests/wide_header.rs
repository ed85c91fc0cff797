//! Headers built to hurt the sniffer (issue 15): one name repeated tens of thousands of times
//! used to take 41 s to sniff (the de-duplication was quadratic). Now the names are made unique
//! in linear time and a first record over `MAX_COLUMNS` fields fails `too_many_columns`. The
//! tests assert the results; the elapsed times are printed (`--nocapture`) for the record.

use std::time::Instant;

use tessera_engine::dialect::{sniff, DialectOverrides, MAX_COLUMNS};
use tessera_engine::{process_bytes, EngineError, ProcessOptions};

fn header_of(name: &str, n: usize) -> Vec<u8> {
    let mut data = vec![name; n].join(",").into_bytes();
    data.extend_from_slice(b"\n");
    data.extend_from_slice(vec!["1"; n].join(",").as_bytes());
    data.extend_from_slice(b"\n");
    data
}

#[test]
fn a_header_over_the_column_limit_fails_too_many_columns() {
    for n in [MAX_COLUMNS + 1, 20_000, 60_000] {
        let data = header_of("id", n);
        let t = Instant::now();
        let err = sniff(&data, &DialectOverrides::default()).unwrap_err();
        eprintln!("{n} names, {} bytes: {:?}", data.len(), t.elapsed());
        assert!(
            matches!(err, EngineError::TooManyColumns { columns, limit } if columns == n && limit == MAX_COLUMNS),
            "{err:?}"
        );
        assert_eq!(err.code(), "too_many_columns");
        let msg = err.to_string();
        assert!(
            msg.contains(&n.to_string()) && msg.contains("10000"),
            "{msg}"
        );
        assert!(msg.contains("delimiter"), "says what to check: {msg}");
    }
}

/// The case end to end (`tessera process` runs this): 20,000 repeats of one name.
#[test]
fn processing_a_twenty_thousand_name_header_fails_fast_with_the_code() {
    let data = header_of("id", 20_000);
    let t = Instant::now();
    let err = process_bytes(&data, &ProcessOptions::default()).unwrap_err();
    eprintln!("process_bytes, 20000 names: {:?}", t.elapsed());
    assert_eq!(err.code(), "too_many_columns");
}

#[test]
fn a_headerless_record_over_the_column_limit_fails_too() {
    let data = header_of("1", 20_000);
    let overrides = DialectOverrides {
        has_header: Some(false),
        ..DialectOverrides::default()
    };
    let err = sniff(&data, &overrides).unwrap_err();
    assert_eq!(err.code(), "too_many_columns");
}

#[test]
fn ten_thousand_repeats_of_one_name_are_numbered() {
    let data = header_of("id", MAX_COLUMNS);
    let t = Instant::now();
    let sn = sniff(&data, &DialectOverrides::default()).unwrap();
    eprintln!(
        "{MAX_COLUMNS} names, {} bytes: {:?}",
        data.len(),
        t.elapsed()
    );
    assert_eq!(sn.columns.len(), MAX_COLUMNS);
    assert_eq!(sn.columns[0], "id");
    assert_eq!(sn.columns[1], "id_2");
    assert_eq!(sn.columns[MAX_COLUMNS - 1], format!("id_{MAX_COLUMNS}"));
}

/// The names of ordinary headers are what they always were: empty -> `col_<position>`, repeats
/// -> `_2`, `_3`..., a literal name that a repeat would take pushes the repeat on.
#[test]
fn ordinary_headers_keep_their_names() {
    let cases: [(&str, &[&str]); 5] = [
        ("id,name,amount\n", &["id", "name", "amount"]),
        (
            "id,,name,name,name_2\n", // the example in docs/engine.md
            &["id", "col_2", "name", "name_2", "name_2_2"],
        ),
        (
            "id,name,,name,col_3\n",
            &["id", "name", "col_3", "name_2", "col_3_2"],
        ),
        (
            "a,,a,b, ,a_2,a\n",
            &["a", "col_2", "a_2", "b", "col_5", "a_2_2", "a_3"],
        ),
        ("x,x_2,x,x,x_3\n", &["x", "x_2", "x_3", "x_4", "x_3_2"]),
    ];
    for (data, want) in cases {
        let sn = sniff(data.as_bytes(), &DialectOverrides::default()).unwrap();
        assert_eq!(sn.columns, want, "{data:?}");
    }
}
