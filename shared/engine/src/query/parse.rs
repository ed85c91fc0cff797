//! From JSON text to a [`QueryDocument`], with every structural problem located by a JSON
//! path. serde reports the first problem with its path (`serde_path_to_error`); the untagged
//! parts of the language (predicates, group keys) are checked by hand first, because serde's
//! untagged enums only say that "no variant matched".
//!
//! Not here: names and types (`compile`).

use serde_json::Value;

use super::doc::QueryDocument;
use super::error::{Problem, QueryError};

const OPS: &[&str] = &[
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "in",
    "between",
    "is_null",
    "contains",
    "starts_with",
    "matches",
];
const BUCKETS: &[&str] = &["hour", "day", "week", "month", "year"];
const TRANSFORMS: &[&str] = &["lower", "trim"];

/// Parses and structurally checks a query document.
pub fn parse_document(text: &[u8]) -> Result<QueryDocument, QueryError> {
    let v: Value = serde_json::from_slice(text).map_err(|e| {
        QueryError::Invalid(vec![Problem::new(
            "invalid_json",
            "$",
            format!("the query is not JSON: {e}"),
        )])
    })?;
    from_value(v)
}

/// [`parse_document`] for an already parsed JSON value.
pub fn from_value(v: Value) -> Result<QueryDocument, QueryError> {
    let mut problems = Vec::new();
    shape(&v, &mut problems);
    if !problems.is_empty() {
        return Err(QueryError::Invalid(problems));
    }
    serde_path_to_error::deserialize::<_, QueryDocument>(v).map_err(|e| {
        let path = json_path(&e.path().to_string());
        let msg = e.inner().to_string();
        let code = if msg.starts_with("unknown field") {
            "unknown_field"
        } else if msg.starts_with("missing field") {
            "missing_argument"
        } else if msg.starts_with("unknown variant") {
            "invalid_value"
        } else {
            "invalid_document"
        };
        QueryError::Invalid(vec![Problem::new(
            code,
            path,
            format!("{msg} (the language: docs/query.md, the schema: docs/query.schema.json)"),
        )])
    })
}

/// `filter.and[1].op` -> `$.filter.and[1].op` (serde_path_to_error says `.` for the root).
fn json_path(p: &str) -> String {
    if p == "." || p.is_empty() {
        "$".into()
    } else {
        format!("$.{p}")
    }
}

fn shape(v: &Value, out: &mut Vec<Problem>) {
    let Some(o) = v.as_object() else {
        out.push(Problem::new(
            "invalid_document",
            "$",
            "a query is a JSON object such as {\"version\": 1, \"aggregates\": [{\"fn\": \"count\"}]}",
        ));
        return;
    };
    if let Some(f) = o.get("filter") {
        predicate(f, "$.filter", false, out);
    }
    if let Some(h) = o.get("having") {
        predicate(h, "$.having", true, out);
    }
    if let Some(Value::Array(keys)) = o.get("group_by") {
        for (i, k) in keys.iter().enumerate() {
            group_key(k, &format!("$.group_by[{i}]"), out);
        }
    }
    if let Some(Value::Array(aggs)) = o.get("aggregates") {
        for (i, a) in aggs.iter().enumerate() {
            if let Some(f) = a.get("filter") {
                predicate(f, &format!("$.aggregates[{i}].filter"), false, out);
            }
        }
    }
}

fn predicate(v: &Value, path: &str, having: bool, out: &mut Vec<Problem>) {
    let hint = if having {
        "a having predicate is {\"and\": [...]}, {\"or\": [...]}, {\"not\": ...} or {\"aggregate\": 0 | \"key\": \"name\", \"op\": \"gt\", \"value\": 1}"
    } else {
        "a predicate is {\"and\": [...]}, {\"or\": [...]}, {\"not\": ...} or {\"column\": \"name\", \"op\": \"eq\", \"value\": ...}"
    };
    let Some(o) = v.as_object() else {
        out.push(Problem::new("invalid_document", path, hint));
        return;
    };
    for (k, list) in [("and", true), ("or", true), ("not", false)] {
        let Some(inner) = o.get(k) else { continue };
        if o.len() != 1 {
            out.push(Problem::new(
                "unexpected_argument",
                path,
                format!("`{k}` stands alone in its object; {hint}"),
            ));
            return;
        }
        match (list, inner) {
            (true, Value::Array(items)) => {
                for (i, p) in items.iter().enumerate() {
                    predicate(p, &format!("{path}.{k}[{i}]"), having, out);
                }
            }
            (true, _) => out.push(Problem::new(
                "invalid_document",
                format!("{path}.{k}"),
                format!("`{k}` takes an array of predicates"),
            )),
            (false, p) => predicate(p, &format!("{path}.not"), having, out),
        }
        return;
    }
    let allowed: &[&str] = if having {
        &["key", "aggregate", "op", "value"]
    } else {
        &["column", "op", "value"]
    };
    for k in o.keys() {
        if !allowed.contains(&k.as_str()) {
            out.push(Problem::new(
                "unknown_field",
                format!("{path}.{k}"),
                format!("unknown field `{k}`; {hint}"),
            ));
        }
    }
    let target = if having {
        o.contains_key("key") || o.contains_key("aggregate")
    } else {
        matches!(o.get("column"), Some(Value::String(_)))
    };
    if !target {
        let what = if having {
            "`key` (a group key's result column name) or `aggregate` (an index)"
        } else {
            "`column` (a column name)"
        };
        out.push(Problem::new(
            "missing_argument",
            path,
            format!("a comparison needs {what}; {hint}"),
        ));
    }
    match o.get("op") {
        Some(Value::String(op)) if OPS.contains(&op.as_str()) => {}
        Some(op) => out.push(Problem::new(
            "invalid_value",
            format!("{path}.op"),
            format!("unknown operator {op}; use one of {}", OPS.join(", ")),
        )),
        None => out.push(Problem::new(
            "missing_argument",
            path,
            format!("a comparison needs `op`, one of {}", OPS.join(", ")),
        )),
    }
}

fn group_key(v: &Value, path: &str, out: &mut Vec<Problem>) {
    let o = match v {
        Value::String(_) => return,
        Value::Object(o) => o,
        _ => {
            out.push(Problem::new(
                "invalid_document",
                path,
                "a group key is a column name or {\"column\": \"ts\", \"bucket\": \"month\"} (or `width`, `edges`, `transform`)",
            ));
            return;
        }
    };
    for k in o.keys() {
        if !["column", "bucket", "width", "edges", "transform"].contains(&k.as_str()) {
            out.push(Problem::new(
                "unknown_field",
                format!("{path}.{k}"),
                format!("unknown field `{k}`; a derived key has `column` and one of `bucket`, `width`, `edges`, `transform`"),
            ));
        }
    }
    if !matches!(o.get("column"), Some(Value::String(_))) {
        out.push(Problem::new(
            "missing_argument",
            path,
            "a derived key needs `column` (a column name)",
        ));
    }
    for (k, allowed) in [("bucket", BUCKETS), ("transform", TRANSFORMS)] {
        if let Some(x) = o.get(k) {
            if !x.as_str().is_some_and(|s| allowed.contains(&s)) {
                out.push(Problem::new(
                    "invalid_value",
                    format!("{path}.{k}"),
                    format!("`{k}` is one of {}", allowed.join(", ")),
                ));
            }
        }
    }
    if let Some(w) = o.get("width") {
        if !w.is_number() {
            out.push(Problem::new(
                "invalid_value",
                format!("{path}.width"),
                "`width` is a positive number",
            ));
        }
    }
    if let Some(e) = o.get("edges") {
        if !e.as_array().is_some_and(|a| a.iter().all(Value::is_number)) {
            out.push(Problem::new(
                "invalid_value",
                format!("{path}.edges"),
                "`edges` is an array of increasing numbers",
            ));
        }
    }
}
