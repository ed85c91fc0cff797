//! What the model is shown of a dataset: its header and profile, compactly ([`describe`]), and a
//! few sample rows, projected and with long values cut ([`sample`]). Both are JSON values the
//! agent hands over as tool results or inside a `<dataset>` block: cell values and column names
//! are always data in a JSON string, never text of the prompt.
//!
//! Not here: loading the profile (the agent's stores), the model.

use serde_json::{json, Value};
use tessera_engine::profile::ProfileReport;

/// Longest value shown to the model (characters); longer ones are cut with a marker.
pub const MAX_CELL_CHARS: usize = 120;
/// Most sample rows one `sample_rows` call returns.
pub const MAX_SAMPLE_ROWS: usize = 30;
/// Most top values shown per column.
const TOP_VALUES: usize = 5;

/// `v` cut to [`MAX_CELL_CHARS`] characters (at a character boundary), marked when cut.
pub fn cut(v: &str) -> String {
    match v.char_indices().nth(MAX_CELL_CHARS) {
        None => v.to_string(),
        Some((i, _)) => format!("{}… [cut, {} chars]", &v[..i], v.chars().count()),
    }
}

fn scalar(v: Option<impl serde::Serialize>) -> Value {
    match v.map(|s| serde_json::to_value(s).unwrap_or(Value::Null)) {
        Some(Value::String(s)) => Value::String(cut(&s)),
        Some(other) => other,
        None => Value::Null,
    }
}

/// The dataset as the model sees it: rows, and per column its type, nulls, distinct count,
/// range, a few top values and the PII kinds the profile detected.
pub fn describe(profile: &ProfileReport) -> Value {
    let columns: Vec<Value> = profile
        .columns
        .iter()
        .map(|c| {
            json!({
                "name": cut(&c.name),
                "type": c.r#type,
                "values": c.count,
                "nulls": c.nulls,
                "distinct": c.distinct,
                "distinct_exact": c.distinct_exact,
                "min": scalar(c.min.as_ref()),
                "max": scalar(c.max.as_ref()),
                "top": c.top.iter().take(TOP_VALUES).map(|t| {
                    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
                    if let Some(s) = v.get("value").and_then(Value::as_str).map(cut) {
                        v["value"] = Value::String(s);
                    }
                    v
                }).collect::<Vec<_>>(),
                "pii": c.pii.keys().collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "rows": profile.rows,
        "rejected_rows": profile.rejected_rows,
        "columns": columns,
    })
}

/// Up to `limit` (at most [`MAX_SAMPLE_ROWS`]) sample rows of `columns` (all when empty), with
/// long values cut. Unknown columns are an error naming the known ones.
pub fn sample(profile: &ProfileReport, columns: &[String], limit: usize) -> Result<Value, String> {
    let names: Vec<&str> = profile.columns.iter().map(|c| c.name.as_str()).collect();
    let picks: Vec<usize> = if columns.is_empty() {
        (0..names.len()).collect()
    } else {
        columns
            .iter()
            .map(|c| {
                names.iter().position(|n| n == c).ok_or_else(|| {
                    format!(
                        "unknown column {:?}; the columns are {:?}",
                        cut(c),
                        names.iter().map(|n| cut(n)).collect::<Vec<_>>()
                    )
                })
            })
            .collect::<Result<_, _>>()?
    };
    let rows: Vec<Vec<String>> = profile
        .sample
        .iter()
        .take(limit.clamp(1, MAX_SAMPLE_ROWS))
        .map(|r| {
            picks
                .iter()
                .map(|&i| r.values.get(i).map(|v| cut(v)).unwrap_or_default())
                .collect()
        })
        .collect();
    Ok(json!({
        "columns": picks.iter().map(|&i| cut(names[i])).collect::<Vec<_>>(),
        "rows": rows,
        "sampled_from": profile.rows,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_at_a_character_boundary() {
        let v = "é".repeat(500);
        let c = cut(&v);
        assert!(c.starts_with(&"é".repeat(MAX_CELL_CHARS)));
        assert!(c.ends_with("[cut, 500 chars]"), "{c}");
        assert_eq!(cut("short"), "short");
    }
}
