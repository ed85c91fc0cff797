//! Unit and property tests of the profile as a whole (per-sketch tests live with each sketch).

use super::*;
use crate::profile::classify::classify;
use proptest::prelude::*;
use std::collections::HashMap;

/// Owned record text + field ends, to build a borrowed [`Record`].
struct Owned {
    text: String,
    ends: Vec<usize>,
}

impl Owned {
    fn new<S: AsRef<str>>(fields: &[S]) -> Self {
        let mut text = String::new();
        let mut ends = Vec::new();
        for f in fields {
            text.push_str(f.as_ref());
            ends.push(text.len());
        }
        Owned { text, ends }
    }
    fn record(&self) -> Record<'_> {
        Record::new(&self.text, &self.ends)
    }
}

/// A row of the generated file: clean fields, or a rejected record.
#[derive(Debug, Clone)]
enum Row {
    Clean(Vec<String>),
    Rejected(RejectReason),
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("c{i}")).collect()
}

/// Profile rows[range] as one chunk; offsets are the rows' cumulative byte positions.
fn profile(cols: usize, rows: &[(u64, Row)], opts: &ProfileOptions) -> ProfileState {
    let mut p = ProfileState::new(names(cols), opts);
    for (off, row) in rows {
        match row {
            Row::Clean(f) => p.observe(*off, &Owned::new(f).record()),
            Row::Rejected(r) => p.observe_rejected(*off, *r),
        }
        p.add_bytes(7);
    }
    p
}

fn column_of<S: AsRef<str>>(values: &[S]) -> ColumnReport {
    let mut p = ProfileState::new(names(1), &ProfileOptions::default());
    for (i, v) in values.iter().enumerate() {
        p.observe(i as u64, &Owned::new(&[v.as_ref()]).record());
    }
    p.report().columns.remove(0)
}

#[test]
fn pii_shares_of_non_null_values_and_old_states_decode() {
    let c = column_of(&[
        "jane@x.io",
        "jane@x.io",
        "a",
        "",
        "4111111111111111",
        "NULL",
        "10.0.0.1",
        "jane@x.io",
    ]);
    let want: BTreeMap<String, f64> = [("card", 1.0 / 6.0), ("email", 0.5), ("ip", 1.0 / 6.0)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(c.pii, want);
    assert!(column_of(&["a", "b"]).pii.is_empty());
    // A state written before the detectors existed has no `pii`: it decodes as zeros.
    let mut p = ProfileState::new(names(1), &ProfileOptions::default());
    p.observe(0, &Owned::new(&["jane@x.io"]).record());
    let mut v: serde_json::Value = serde_json::from_slice(&p.to_bytes()).unwrap();
    let mut removed = 0;
    fn strip(v: &mut serde_json::Value, n: &mut usize) {
        match v {
            serde_json::Value::Object(m) => {
                *n += usize::from(m.remove("pii").is_some());
                m.values_mut().for_each(|x| strip(x, n));
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| strip(x, n)),
            _ => {}
        }
    }
    strip(&mut v, &mut removed);
    assert_eq!(removed, 1);
    let old = ProfileState::from_bytes(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert!(old.report().columns[0].pii.is_empty());
}

#[test]
fn type_inference_picks_the_narrowest_type() {
    let t = |vals: &[&str]| column_of(vals).r#type;
    assert_eq!(t(&["1", "-2", "+3", "-0"]), ColumnType::Integer);
    assert_eq!(t(&["1", "2.5", "1e5"]), ColumnType::Decimal);
    assert_eq!(t(&["1", "007"]), ColumnType::String);
    assert_eq!(t(&["true", "FALSE", ""]), ColumnType::Boolean);
    assert_eq!(t(&["yes", "no"]), ColumnType::String);
    assert_eq!(t(&["2024-01-01", "1999-12-31"]), ColumnType::Date);
    assert_eq!(
        t(&[
            "2024-01-01",
            "2024-01-01T10:00:00Z",
            "2024-01-02 03:04:05+02:00"
        ]),
        ColumnType::Timestamp
    );
    assert_eq!(t(&["2024-01-01", "5"]), ColumnType::String);
    assert_eq!(t(&["", "NULL", "NA"]), ColumnType::Empty);
    assert_eq!(t(&[]), ColumnType::Empty);
}

#[test]
fn type_counts_and_nulls() {
    let c = column_of(&[
        "1",
        "2.5",
        "x",
        "",
        "NULL",
        "null",
        "N/A",
        "2024-01-01",
        "true",
        "NaN",
        "none",
    ]);
    assert_eq!(c.nulls, 6);
    assert_eq!(c.count, 5);
    assert_eq!(
        c.type_counts,
        TypeCounts {
            integer: 1,
            decimal: 2,
            boolean: 1,
            date: 1,
            timestamp: 1,
            string: 5
        }
    );
    // Null tokens are exact and case-sensitive: "nULL" is a value.
    assert_eq!(column_of(&["nULL"]).nulls, 0);
}

#[test]
fn typed_min_max() {
    let c = column_of(&["10", "-5", "7", "", "3"]);
    assert_eq!(
        (c.min, c.max),
        (Some(Scalar::Int(-5)), Some(Scalar::Int(10)))
    );
    let c = column_of(&["10", "9.5", "-0.25", "1e2"]);
    assert_eq!(
        (c.min, c.max),
        (Some(Scalar::Float(-0.25)), Some(Scalar::Float(100.0)))
    );
    let c = column_of(&["2024-03-01", "2023-12-31", "2024-02-29"]);
    assert_eq!(
        (c.min, c.max),
        (
            Some(Scalar::Text("2023-12-31".into())),
            Some(Scalar::Text("2024-03-01".into()))
        )
    );
    // Chronological, not lexical: 10:00+05:00 is 05:00Z, before 06:00Z.
    let c = column_of(&[
        "2024-01-01T06:00:00Z",
        "2024-01-01T10:00:00+05:00",
        "2024-01-01",
    ]);
    assert_eq!(
        (c.min, c.max),
        (
            Some(Scalar::Text("2024-01-01".into())),
            Some(Scalar::Text("2024-01-01T06:00:00Z".into()))
        )
    );
    let c = column_of(&["pear", "apple", "zebra", "Zulu"]);
    assert_eq!(
        (c.min, c.max),
        (
            Some(Scalar::Text("Zulu".into())),
            Some(Scalar::Text("zebra".into()))
        )
    );
    // Dates inside a string column still count for the lexical min/max.
    let c = column_of(&["2024-01-01", "abc", "1999-12-31", "Zed", "2030-05-05"]);
    assert_eq!(
        (c.min, c.max),
        (
            Some(Scalar::Text("1999-12-31".into())),
            Some(Scalar::Text("abc".into()))
        )
    );
    let c = column_of(&["2024-01-01", "x"]);
    assert_eq!(c.min, Some(Scalar::Text("2024-01-01".into())));
    let c = column_of(&["true", "true"]);
    assert_eq!(
        (c.min, c.max),
        (Some(Scalar::Bool(true)), Some(Scalar::Bool(true)))
    );
    // Numeric compare for integers, not lexical ("9" < "10").
    let c = column_of(&["9", "10"]);
    assert_eq!(c.max, Some(Scalar::Int(10)));
}

#[test]
fn lexical_bounds_at_the_eight_byte_edge() {
    let vals = [
        "abcdefgh",
        "abcdefghi",
        "abcdefg",
        "a\u{0}",
        "a",
        "abcdefgh\u{0}",
        "b",
    ];
    let mut sorted = vals.to_vec();
    sorted.sort_unstable();
    for perm in 0..vals.len() {
        let mut v = vals.to_vec();
        v.rotate_left(perm);
        let c = column_of(&v);
        assert_eq!(c.min, Some(Scalar::Text(sorted[0].to_string())));
        assert_eq!(
            c.max,
            Some(Scalar::Text(sorted[sorted.len() - 1].to_string()))
        );
    }
    let c = column_of(&["abcdefgh", "abcdefghi", "abcdefg"]);
    assert_eq!(c.max, Some(Scalar::Text("abcdefghi".into())));
    assert_eq!(c.min, Some(Scalar::Text("abcdefg".into())));
}

#[test]
fn mean_stddev_quantiles() {
    let c = column_of(&["2", "4", "4", "4", "5", "5", "7", "9"]);
    assert_eq!(c.mean, Some(5.0));
    assert!((c.stddev.unwrap() - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
    let vals: Vec<String> = (1..=1000).map(|i| i.to_string()).collect();
    let c = column_of(&vals);
    let q = c.quantiles.unwrap();
    for (est, exact) in [(q.p50, 500.0), (q.p90, 900.0), (q.p99, 990.0)] {
        assert!((est - exact).abs() <= 0.01 * exact, "{est} vs {exact}");
    }
    let c = column_of(&["a", "b"]);
    assert_eq!((c.mean, c.stddev, c.quantiles), (None, None, None));
    assert_eq!(column_of(&["3"]).stddev, None);
}

#[test]
fn lengths_count_chars() {
    let c = column_of(&["héllo", "ab", "", "日本語です"]);
    assert_eq!((c.min_length, c.max_length), (Some(2), Some(5)));
    assert_eq!(column_of(&[""]).min_length, None);
}

#[test]
fn distinct_and_top_are_exact_when_small() {
    let c = column_of(&["a", "b", "a", "c", "a", "b", ""]);
    assert_eq!(c.distinct, 3);
    assert!(c.distinct_exact);
    assert_eq!(c.top_error, 0);
    let top: Vec<(&str, u64)> = c.top.iter().map(|t| (t.value.as_str(), t.count)).collect();
    assert_eq!(top, vec![("a", 3), ("b", 2), ("c", 1)]);
}

#[test]
fn distinct_large_within_two_percent() {
    let vals: Vec<String> = (0..100_000).map(|i| format!("v{i}")).collect();
    let c = column_of(&vals);
    assert!(!c.distinct_exact);
    let err = (c.distinct as f64 - 100_000.0).abs() / 100_000.0;
    assert!(err < 0.02, "{}", c.distinct);
}

#[test]
fn rejected_and_ragged_rows() {
    let mut p = ProfileState::new(names(2), &ProfileOptions::default());
    p.observe(0, &Owned::new(&["1", "2"]).record());
    p.observe(4, &Owned::new(&["1"]).record());
    p.observe_rejected(6, RejectReason::StrayQuote);
    p.observe_rejected(9, RejectReason::RaggedRow);
    p.add_bytes(12);
    let r = p.report();
    assert_eq!((r.rows, r.bytes, r.rejected_rows), (1, 12, 3));
    assert_eq!(r.rejected["ragged_row"], 2);
    assert_eq!(r.rejected["stray_quote"], 1);
    assert_eq!(r.rejected["nul_byte"], 0);
    assert_eq!(r.rejected.len(), 5);
}

#[test]
fn sample_is_uniform_size_and_in_file_order() {
    let opts = ProfileOptions {
        sample_size: 10,
        ..Default::default()
    };
    let mut p = ProfileState::new(names(1), &opts);
    for i in 0..5u64 {
        p.observe(i * 3, &Owned::new(&[i.to_string()]).record());
    }
    assert_eq!(p.report().sample.len(), 5);
    for i in 5..10_000u64 {
        p.observe(i * 3, &Owned::new(&[i.to_string()]).record());
    }
    let s = p.report().sample;
    assert_eq!(s.len(), 10);
    assert!(s.windows(2).all(|w| w[0].offset < w[1].offset));
    assert!(s.iter().all(|r| r.values[0] == (r.offset / 3).to_string()));
    // Spread over the file, not clustered at the start.
    assert!(s.iter().any(|r| r.offset > 15_000));
}

#[test]
fn bytes_round_trip_and_keep_working() {
    let opts = ProfileOptions::default();
    let rows: Vec<(u64, Row)> = (0..3000u64)
        .map(|i| {
            (
                i * 10,
                Row::Clean(vec![
                    i.to_string(),
                    format!("s{}", i % 7),
                    format!("{}.5", i % 300),
                ]),
            )
        })
        .collect();
    let (a, b) = rows.split_at(1700);
    let whole = profile(3, &rows, &opts);
    let pa = profile(3, a, &opts);
    let back = ProfileState::from_bytes(&pa.to_bytes()).unwrap();
    assert_eq!(back.report(), pa.report());
    let mut merged = back;
    merged.merge(&ProfileState::from_bytes(&profile(3, b, &opts).to_bytes()).unwrap());
    assert_reports_match(&merged.report(), &whole.report(), &rows, &opts);
    assert!(matches!(
        ProfileState::from_bytes(b"{}"),
        Err(ProfileError::Decode(_))
    ));
}

#[test]
fn default_options_large_file_merges_within_bounds() {
    // Past every exact threshold of the defaults: dense HLL, reduced heavy hitters, full sample.
    let opts = ProfileOptions::default();
    let mut x = 7u64;
    let rows: Vec<(u64, Row)> = (0..40_000u64)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let heavy = if x.is_multiple_of(5) {
                "hot".to_string()
            } else {
                format!("k{}", x % 9000)
            };
            let fields = vec![
                i.to_string(),
                format!("{}.{:02}", x % 3000, (x >> 20) % 100),
                heavy,
                format!(
                    "2020-{:02}-{:02}T{:02}:00:00Z",
                    x % 12 + 1,
                    (x >> 8) % 28 + 1,
                    (x >> 16) % 24
                ),
            ];
            (i * 40, Row::Clean(fields))
        })
        .collect();
    let whole = profile(4, &rows, &opts);
    let mut merged = ProfileState::new(names(4), &opts);
    for piece in cut(&rows, &[3, 9_999, 10_000, 25_123, 39_998]).iter().rev() {
        merged.merge(&ProfileState::from_bytes(&profile(4, piece, &opts).to_bytes()).unwrap());
    }
    assert_reports_match(&merged.report(), &whole.report(), &rows, &opts);
    let r = merged.report();
    assert_eq!(r.columns[2].top[0].value, "hot");
    assert!(r.columns[2].top_error > 0);
    assert_eq!(r.columns[3].r#type, ColumnType::Timestamp);
    assert_eq!(r.sample.len(), 100);
    let err = (r.columns[0].distinct as f64 - 40_000.0).abs() / 40_000.0;
    assert!(err < 0.02, "{}", r.columns[0].distinct);
}

#[test]
fn report_json_has_the_documented_schema() {
    let mut p = ProfileState::new(vec!["n".into(), "s".into()], &ProfileOptions::default());
    for (i, (a, b)) in [("1", "x"), ("2", ""), ("3", "y")].iter().enumerate() {
        p.observe(i as u64 * 4, &Owned::new(&[a, b]).record());
    }
    p.observe_rejected(20, RejectReason::NulByte);
    let json = serde_json::to_value(p.report()).unwrap();
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&json),
        [
            "bytes",
            "columns",
            "rejected",
            "rejected_rows",
            "rows",
            "sample",
            "schema_version"
        ]
    );
    assert_eq!(
        keys(&json["columns"][0]),
        [
            "count",
            "distinct",
            "distinct_exact",
            "max",
            "max_length",
            "mean",
            "min",
            "min_length",
            "name",
            "nulls",
            "pii",
            "quantiles",
            "stddev",
            "top",
            "top_error",
            "type",
            "type_counts"
        ]
    );
    assert_eq!(json["columns"][0]["type"], "integer");
    assert_eq!(json["columns"][0]["min"], 1);
    let p50 = json["columns"][0]["quantiles"]["p50"].as_f64().unwrap();
    assert!((p50 - 2.0).abs() <= 0.02, "{p50}");
    assert_eq!(json["columns"][1]["type"], "string");
    assert_eq!(json["columns"][1]["min"], "x");
    assert_eq!(json["columns"][1]["mean"], serde_json::Value::Null);
    assert_eq!(
        json["columns"][1]["top"][0],
        serde_json::json!({"value": "x", "count": 1})
    );
    assert_eq!(json["rejected"]["nul_byte"], 1);
    assert_eq!(
        json["sample"][0],
        serde_json::json!({"offset": 0, "values": ["1", "x"]})
    );
    let back: ProfileReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, p.report());
}

#[test]
fn incompatible_states_do_not_merge() {
    let opts = ProfileOptions::default();
    let mut a = ProfileState::new(names(2), &opts);
    let b = ProfileState::new(names(3), &opts);
    assert!(matches!(
        a.try_merge(&b),
        Err(ProfileError::Incompatible(_))
    ));
    let c = ProfileState::new(
        names(2),
        &ProfileOptions {
            top_k: 3,
            ..Default::default()
        },
    );
    assert!(a.try_merge(&c).is_err());
}

#[test]
fn state_size_for_fifty_columns() {
    let opts = ProfileOptions::default();
    let mut p = ProfileState::new(names(50), &opts);
    for i in 0..20_000u64 {
        let fields: Vec<String> = (0..50u64)
            .map(|c| match c % 5 {
                0 => (i * 31 + c).to_string(),
                1 => format!("{}.{:02}", i % 5000, i % 100),
                2 => format!("2024-{:02}-{:02}", i % 12 + 1, i % 28 + 1),
                3 => format!("name{}", i % 50),
                _ => format!("id-{i}-{c}"),
            })
            .collect();
        p.observe(i * 400, &Owned::new(&fields).record());
    }
    let n = p.to_bytes().len();
    eprintln!("state bytes for 50 columns x 20k rows: {n}");
    assert!(n < 3_000_000, "{n}");
}

// ---------------------------------------------------------------- property tests

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (-50i64..50).prop_map(|i| i.to_string()),
        2 => (-1000i64..1000, 0u32..100).prop_map(|(a, b)| format!("{a}.{b:02}")),
        1 => (2000i32..2003, 1u32..13, 1u32..29).prop_map(|(y, m, d)| format!("{y}-{m:02}-{d:02}")),
        1 => (0u32..24, 0u32..60, -2i32..3).prop_map(|(h, m, o)| format!("2024-05-06T{h:02}:{m:02}:00{}", if o == 0 { "Z".to_string() } else { format!("{o:+03}:00") })),
        1 => prop_oneof![Just("true".to_string()), Just("false".to_string())],
        2 => "[a-e]{0,3}",
        1 => prop_oneof![Just(String::new()), Just("NULL".to_string()), Just("é日".to_string()), Just("007".to_string())],
        2 => pii_value(),
    ]
}

/// Values for the PII detectors, valid and near misses, repeated so that both the heavy-hitters
/// path (mask cached in the slot) and the new-value path are taken.
fn pii_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-c]{1,2}@[a-c]\\.(io|c)",
        Just("4111111111111111".to_string()),
        Just("4111 1111 1111 1112".to_string()),
        Just("123-45-6789".to_string()),
        Just("666-45-6789".to_string()),
        Just("DE89 3704 0044 0532 0130 00".to_string()),
        Just("GB82WEST12345698765431".to_string()),
        (0u32..300, 0u32..3).prop_map(|(a, b)| format!("10.0.{b}.{a}")),
        Just("fe80::1".to_string()),
        Just("+14155552671".to_string()),
        (100u32..103).prop_map(|a| format!("({a}) 555-2671")),
    ]
}

/// A column generator: mostly one kind (so each type is reached), sometimes mixed.
fn column_values(rows: usize) -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        proptest::collection::vec(value(), rows),
        proptest::collection::vec((-30i64..30).prop_map(|i| i.to_string()), rows),
        proptest::collection::vec(
            (0u32..400).prop_map(|i| format!("{}.{}", i / 10, i % 10)),
            rows
        ),
        proptest::collection::vec((1u32..29).prop_map(|d| format!("2021-02-{d:02}")), rows),
        proptest::collection::vec(
            prop_oneof![Just("true".to_string()), Just("".to_string())],
            rows
        ),
    ]
}

fn file(cols: usize) -> impl Strategy<Value = Vec<(u64, Row)>> {
    (0usize..120)
        .prop_flat_map(move |n| {
            (
                proptest::collection::vec(column_values(n), cols),
                proptest::collection::vec(prop_oneof![10 => Just(None), 1 => Just(Some(RejectReason::RaggedRow)), 1 => Just(Some(RejectReason::StrayQuote))], n),
            )
        })
        .prop_map(|(columns, rejects)| {
            let mut off = 0u64;
            let mut rows = Vec::new();
            for (i, rej) in rejects.into_iter().enumerate() {
                let fields: Vec<String> = columns.iter().map(|c| c[i].clone()).collect();
                let len = fields.iter().map(|f| f.len() as u64 + 1).sum::<u64>();
                rows.push((off, match rej {
                    Some(r) => Row::Rejected(r),
                    None => Row::Clean(fields),
                }));
                off += len.max(1);
            }
            rows
        })
}

fn small_opts() -> ProfileOptions {
    // Small sketches so the approximate regimes (HLL registers, Misra-Gries reductions,
    // sample eviction) are reached by small generated files.
    ProfileOptions {
        sample_size: 7,
        top_k: 3,
        top_capacity: 8,
        hll_precision: 10,
        exact_distinct_limit: 12,
        ..Default::default()
    }
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
        _ => false,
    }
}

/// Exact statistics equal, floating statistics within 1e-9, sketches within their bounds.
fn assert_reports_match(
    got: &ProfileReport,
    want: &ProfileReport,
    rows: &[(u64, Row)],
    opts: &ProfileOptions,
) {
    let strip = |r: &ProfileReport| {
        let mut r = r.clone();
        for c in &mut r.columns {
            c.mean = None;
            c.stddev = None;
            c.top.clear();
            c.top_error = 0;
        }
        r
    };
    assert_eq!(strip(got), strip(want));
    for (ci, (g, w)) in got.columns.iter().zip(&want.columns).enumerate() {
        assert!(close(g.mean, w.mean), "mean {:?} vs {:?}", g.mean, w.mean);
        assert!(
            close(g.stddev, w.stddev),
            "stddev {:?} vs {:?}",
            g.stddev,
            w.stddev
        );
        // Truth for this column.
        let mut truth: HashMap<&str, u64> = HashMap::new();
        let mut nums: Vec<f64> = Vec::new();
        for (_, row) in rows {
            if let Row::Clean(f) = row {
                let v = f[ci].as_str();
                if v.is_empty() || opts.null_tokens.iter().any(|t| t == v) {
                    continue;
                }
                *truth.entry(v).or_default() += 1;
                match classify(v) {
                    Class::Int(i) => nums.push(i as f64),
                    Class::Dec(x) => nums.push(x),
                    _ => {}
                }
            }
        }
        let n: u64 = truth.values().sum();
        // PII shares: exact counts of the detectors over the non-null values.
        let mut pii_truth = super::pii::PiiCounts::default();
        for (v, c) in &truth {
            for _ in 0..*c {
                pii_truth.add(super::pii::detect(v));
            }
        }
        let pii_want: BTreeMap<String, f64> = pii_truth
            .entries()
            .into_iter()
            .filter(|&(_, k)| k > 0)
            .map(|(name, k)| (name.to_string(), k as f64 / n as f64))
            .collect();
        assert_eq!(g.pii, pii_want);
        if w.r#type == ColumnType::String {
            let lo = truth.keys().min().map(|s| Scalar::Text(s.to_string()));
            let hi = truth.keys().max().map(|s| Scalar::Text(s.to_string()));
            assert_eq!((&w.min, &w.max), (&lo, &hi));
        }
        for r in [g, w] {
            assert!(r.top_error <= n / (opts.top_capacity as u64 / 2 + 1));
            for t in &r.top {
                let c = truth[t.value.as_str()];
                assert!(t.count <= c && c <= t.count + r.top_error, "{t:?} true {c}");
            }
            if r.distinct_exact {
                assert_eq!(r.distinct, truth.len() as u64);
            }
            if let Some(q) = &r.quantiles {
                nums.sort_by(f64::total_cmp);
                for (p, est) in [(0.5, q.p50), (0.9, q.p90), (0.99, q.p99)] {
                    let x = nums[(p * (nums.len() as f64 - 1.0)) as usize];
                    assert!(
                        (est - x).abs() <= opts.quantile_accuracy * x.abs() + 1e-9,
                        "p{p}: {est} vs {x}"
                    );
                }
            }
        }
        if g.top_error == 0 && w.top_error == 0 {
            assert_eq!(g.top, w.top);
        }
    }
}

fn cut(rows: &[(u64, Row)], cuts: &[usize]) -> Vec<Vec<(u64, Row)>> {
    let mut idx: Vec<usize> = cuts.iter().map(|c| c % (rows.len() + 1)).collect();
    idx.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for i in idx.into_iter().chain([rows.len()]) {
        pieces.push(rows[start..i].to_vec());
        start = i;
    }
    pieces
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn merge_of_pieces_equals_whole(rows in file(3), cuts in proptest::collection::vec(0usize..1000, 0..6), seed in any::<u64>()) {
        let opts = small_opts();
        let whole = profile(3, &rows, &opts);
        let states: Vec<ProfileState> = cut(&rows, &cuts).iter().map(|p| profile(3, p, &opts)).collect();

        // Left fold in file order.
        let mut seq = ProfileState::new(names(3), &opts);
        for s in &states { seq.merge(s); }
        assert_reports_match(&seq.report(), &whole.report(), &rows, &opts);

        // Shuffled order (commutativity), through the byte encoding.
        let mut order: Vec<usize> = (0..states.len()).collect();
        let mut x = seed | 1;
        for i in (1..order.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut shuffled = ProfileState::new(names(3), &opts);
        for &i in &order {
            shuffled.merge(&ProfileState::from_bytes(&states[i].to_bytes()).unwrap());
        }
        assert_reports_match(&shuffled.report(), &whole.report(), &rows, &opts);

        // Tree-shaped (associativity): merge neighbours pairwise until one remains.
        let mut level = states.clone();
        while level.len() > 1 {
            level = level.chunks(2).map(|p| {
                let mut a = p[0].clone();
                if let Some(b) = p.get(1) { a.merge(b); }
                a
            }).collect();
        }
        let tree = level.pop().unwrap();
        assert_reports_match(&tree.report(), &whole.report(), &rows, &opts);
    }
}

#[test]
fn prefix8_is_the_zero_padded_big_endian_head() {
    let text = b"abcdefghijkl\xc3\xa9xyz";
    for n in 0..=text.len() {
        let b = &text[..n];
        let mut pad = [0u8; 8];
        let k = n.min(8);
        pad[..k].copy_from_slice(&b[..k]);
        assert_eq!(prefix8(b), u64::from_be_bytes(pad), "{n}");
    }
}
