//! Shared by the query tests: a seeded CSV generator with quoted fields (delimiters, quotes,
//! newlines), null spellings, unparsable values and mixed types, and the query list.

#![allow(dead_code)]

use serde_json::{json, Value};

/// xorshift64*: deterministic, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

pub const COLUMNS: &[&str] = &[
    "id", "region", "status", "amount", "qty", "ts", "day", "flag", "email", "score",
];

const NULLS: &[&str] = &["", "NULL", "NA", "null", "N/A"];
const REGIONS: &[&str] = &[
    "north",
    "South",
    "  east ",
    "we,st",
    "q\"uote",
    "multi\nline",
    "Ünïcode",
    "north ",
];
const STATUS: &[&str] = &["open", "closed", "pending", "OPEN"];

fn null_or(r: &mut Rng, pct: u64, f: impl FnOnce(&mut Rng) -> String) -> String {
    if r.below(100) < pct {
        r.pick(NULLS).to_string()
    } else {
        f(r)
    }
}

fn decimal(r: &mut Rng) -> String {
    let whole = r.below(2000) as i64 - 500;
    match r.below(4) {
        0 => format!("{whole}"),
        1 => format!("{whole}.{}", r.below(10)),
        2 => format!("{whole}.{:02}", r.below(100)),
        _ => format!("{whole}.{:04}", r.below(10000)),
    }
}

fn date(r: &mut Rng) -> (u64, u64, u64) {
    (2023 + r.below(2), 1 + r.below(12), 1 + r.below(28))
}

/// One field's text.
fn field(r: &mut Rng, col: &str, id: usize) -> String {
    match col {
        "id" => id.to_string(),
        "region" => null_or(r, 8, |r| r.pick(REGIONS).to_string()),
        "status" => null_or(r, 5, |r| r.pick(STATUS).to_string()),
        "amount" => null_or(r, 10, |r| {
            if r.below(20) == 0 {
                r.pick(&["abc", "1,5", "12.5.1", "--3"]).to_string()
            } else {
                decimal(r)
            }
        }),
        "qty" => null_or(r, 10, |r| {
            if r.below(15) == 0 {
                r.pick(&["x", "many", "7 pcs"]).to_string()
            } else {
                format!("{}", r.below(50) as i64 - 10)
            }
        }),
        "ts" => null_or(r, 10, |r| {
            let (y, m, d) = date(r);
            match r.below(10) {
                0 => "2024-13-01 00:00:00".to_string(),
                1 => format!("{y}-{m:02}-{d:02}"),
                2..=5 => format!(
                    "{y}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
                    r.below(24),
                    r.below(60),
                    r.below(60)
                ),
                _ => format!(
                    "{y}-{m:02}-{d:02} {:02}:{:02}:{:02}",
                    r.below(24),
                    r.below(60),
                    r.below(60)
                ),
            }
        }),
        "day" => null_or(r, 10, |r| {
            if r.below(20) == 0 {
                "not a date".into()
            } else {
                let (y, m, d) = date(r);
                format!("{y}-{m:02}-{d:02}")
            }
        }),
        "flag" => null_or(r, 10, |r| {
            r.pick(&["true", "false", "TRUE", "False", "maybe"])
                .to_string()
        }),
        "email" => null_or(r, 5, |r| format!("user{}@example.com", r.below(40))),
        // Mixed: mostly numbers, sometimes words, so it is decimal with unparsed words.
        "score" => null_or(r, 5, |r| {
            if r.below(3) == 0 {
                r.pick(&["high", "low", "n/a?"]).to_string()
            } else {
                decimal(r)
            }
        }),
        _ => unreachable!(),
    }
}

/// A CSV file of `rows` records: fields quoted when they must be and at random otherwise.
pub fn csv(seed: u64, rows: usize, crlf: bool) -> Vec<u8> {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let eol = if crlf { "\r\n" } else { "\n" };
    let mut out = COLUMNS.join(",");
    out.push_str(eol);
    for id in 0..rows {
        let fields: Vec<String> = COLUMNS
            .iter()
            .map(|c| {
                let t = field(&mut r, c, id);
                let must =
                    t.contains([',', '"', '\n', '\r']) || t.starts_with(' ') || t.ends_with(' ');
                if must || (r.below(7) == 0 && !t.is_empty()) {
                    format!("\"{}\"", t.replace('"', "\"\""))
                } else {
                    t
                }
            })
            .collect();
        out.push_str(&fields.join(","));
        out.push_str(eol);
    }
    out.into_bytes()
}

/// The queries run on every generated file.
pub fn queries() -> Vec<Value> {
    let q = |body: Value| {
        let mut v = json!({"version": 1, "source": "source"});
        v.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        v
    };
    vec![
        q(
            json!({"aggregates": [{"fn": "count"}, {"fn": "count", "column": "amount"}, {"fn": "null_count", "column": "amount"}]}),
        ),
        q(
            json!({"aggregates": [{"fn": "sum", "column": "amount"}, {"fn": "avg", "column": "amount"}, {"fn": "min", "column": "amount"}, {"fn": "max", "column": "amount"}]}),
        ),
        q(
            json!({"group_by": ["region"], "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "amount"}, {"fn": "avg", "column": "amount"}]}),
        ),
        q(
            json!({"group_by": ["status", "flag"], "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "qty"}, {"fn": "avg", "column": "qty"}, {"fn": "min", "column": "qty"}, {"fn": "max", "column": "qty"}]}),
        ),
        q(
            json!({"filter": {"and": [{"column": "status", "op": "eq", "value": "open"}, {"column": "amount", "op": "ge", "value": 100}]},
                 "group_by": ["region", {"column": "ts", "bucket": "month"}],
                 "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "amount"}, {"fn": "avg", "column": "amount"}, {"fn": "count_distinct", "column": "email"}, {"fn": "min", "column": "ts"}, {"fn": "max", "column": "qty"}],
                 "order_by": [{"key": "region"}, {"aggregate": 1, "desc": true}]}),
        ),
        q(
            json!({"group_by": [{"column": "ts", "bucket": "day"}], "aggregates": [{"fn": "count"}], "order_by": [{"aggregate": 0, "desc": true}], "limit": 10}),
        ),
        q(
            json!({"group_by": [{"column": "ts", "bucket": "hour"}], "aggregates": [{"fn": "count"}, {"fn": "max", "column": "ts"}], "limit": 20, "offset": 5}),
        ),
        q(
            json!({"group_by": [{"column": "ts", "bucket": "week"}], "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "amount"}]}),
        ),
        q(
            json!({"group_by": [{"column": "ts", "bucket": "year"}], "aggregates": [{"fn": "count"}, {"fn": "min", "column": "day"}]}),
        ),
        q(
            json!({"group_by": [{"column": "day", "bucket": "month"}], "aggregates": [{"fn": "count"}, {"fn": "max", "column": "day"}]}),
        ),
        q(
            json!({"group_by": [{"column": "day", "bucket": "week"}], "aggregates": [{"fn": "count"}]}),
        ),
        q(
            json!({"group_by": [{"column": "amount", "width": 100}], "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "amount"}]}),
        ),
        q(json!({"group_by": [{"column": "qty", "width": 7}], "aggregates": [{"fn": "count"}]})),
        q(
            json!({"group_by": [{"column": "amount", "edges": [-100, 0, 10.5, 250]}], "aggregates": [{"fn": "count"}, {"fn": "avg", "column": "amount"}]}),
        ),
        q(
            json!({"group_by": [{"column": "region", "transform": "lower"}], "aggregates": [{"fn": "count"}]}),
        ),
        q(
            json!({"group_by": [{"column": "region", "transform": "trim"}], "aggregates": [{"fn": "count"}, {"fn": "count_distinct", "column": "status"}]}),
        ),
        q(
            json!({"group_by": ["status"], "aggregates": [{"fn": "stddev", "column": "amount"}, {"fn": "corr", "column": "amount", "other": "qty"}, {"fn": "stddev", "column": "qty"}]}),
        ),
        q(
            json!({"group_by": ["status"], "aggregates": [{"fn": "quantile", "column": "amount", "q": 0.5}, {"fn": "quantile", "column": "qty", "q": 0.9}, {"fn": "quantile", "column": "amount", "q": 0.0}]}),
        ),
        q(
            json!({"group_by": ["flag"], "aggregates": [{"fn": "top", "column": "region", "k": 3}, {"fn": "top", "column": "qty", "k": 5}]}),
        ),
        q(
            json!({"aggregates": [{"fn": "count_distinct", "column": "email"}, {"fn": "count_distinct", "column": "email", "approx": true}, {"fn": "count_distinct", "column": "amount"}, {"fn": "count_distinct", "column": "id", "approx": true}]}),
        ),
        q(
            json!({"group_by": ["region"], "aggregates": [{"fn": "count_if", "filter": {"column": "flag", "op": "eq", "value": true}}, {"fn": "count_if", "filter": {"not": {"column": "amount", "op": "gt", "value": 0}}}]}),
        ),
        q(
            json!({"filter": {"or": [{"column": "region", "op": "contains", "value": "th"}, {"column": "region", "op": "starts_with", "value": "we"}]}, "group_by": ["region"], "aggregates": [{"fn": "count"}]}),
        ),
        q(
            json!({"filter": {"column": "email", "op": "matches", "value": "^user[0-9]$"}, "group_by": ["email"], "aggregates": [{"fn": "count"}]}),
        ),
        q(
            json!({"filter": {"column": "qty", "op": "in", "value": [1, 2, 3, 40]}, "group_by": ["qty"], "aggregates": [{"fn": "count"}]}),
        ),
        q(
            json!({"filter": {"column": "amount", "op": "between", "value": [-10.5, 99.99]}, "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "amount"}]}),
        ),
        q(
            json!({"filter": {"column": "day", "op": "ge", "value": "2024-03-01"}, "group_by": ["status"], "aggregates": [{"fn": "count"}, {"fn": "min", "column": "day"}]}),
        ),
        q(
            json!({"filter": {"column": "ts", "op": "lt", "value": "2023-06-15 12:00:00"}, "aggregates": [{"fn": "count"}, {"fn": "max", "column": "ts"}]}),
        ),
        q(
            json!({"filter": {"not": {"column": "region", "op": "is_null"}}, "group_by": ["region"], "aggregates": [{"fn": "count"}], "having": {"aggregate": 0, "op": "gt", "value": 20}}),
        ),
        q(
            json!({"filter": {"column": "status", "op": "ne", "value": "open"}, "group_by": ["status", "region"], "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "score"}], "having": {"or": [{"aggregate": 1, "op": "lt", "value": 0}, {"key": "status", "op": "eq", "value": "closed"}]}, "order_by": [{"aggregate": 1}], "limit": 7}),
        ),
        q(
            json!({"group_by": ["email"], "aggregates": [{"fn": "count"}, {"fn": "max", "column": "amount"}], "order_by": [{"aggregate": 0, "desc": true}, {"aggregate": 1, "desc": true}], "limit": 5}),
        ),
        q(
            json!({"group_by": ["score"], "aggregates": [{"fn": "count"}], "order_by": [{"key": "score", "desc": true}], "limit": 15}),
        ),
        q(
            json!({"filter": {"column": "flag", "op": "eq", "value": false}, "group_by": ["flag", "status"], "aggregates": [{"fn": "count"}, {"fn": "min", "column": "region"}, {"fn": "max", "column": "region"}]}),
        ),
        q(
            json!({"filter": {"column": "status", "op": "eq", "value": "none such"}, "aggregates": [{"fn": "count"}, {"fn": "sum", "column": "amount"}, {"fn": "avg", "column": "amount"}, {"fn": "min", "column": "ts"}]}),
        ),
        q(
            json!({"filter": {"column": "status", "op": "eq", "value": "none such"}, "group_by": ["region"], "aggregates": [{"fn": "count"}]}),
        ),
        q(
            json!({"group_by": ["id"], "aggregates": [{"fn": "sum", "column": "amount"}], "order_by": [{"aggregate": 0, "desc": true}], "limit": 10, "offset": 3}),
        ),
        q(json!({"group_by": ["day", "flag"], "aggregates": [{"fn": "count"}], "limit": 50})),
    ]
}
