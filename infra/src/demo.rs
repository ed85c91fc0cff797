//! `tessera demo`: what a newcomer runs first. Uploads a file through the API ([`crate::upload`]:
//! any size, multipart in parallel parts), follows the job to its end, then shows what the
//! product is for: the column profile as a compact table, and the answer to one example query
//! chosen from that profile, asked through `POST /v1/jobs/{id}/queries` (answered within the
//! request, or as a query job the demo follows).
//!
//! Not here: starting the stack (the `tessera` command does it).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tessera_shared::engine::query::QueryResult;

use crate::upload::{error_text, upload_file, Api, UploadError, UploadOptions, Uploaded};

/// What went wrong, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error("the example query could not run: {0}")]
    Query(String),
}

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub upload: UploadOptions,
    /// How often the job is polled.
    pub poll: Duration,
    /// Print the job's progress line on stderr.
    pub progress: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            upload: UploadOptions::default(),
            poll: Duration::from_millis(250),
            progress: true,
        }
    }
}

/// The end of a demo: the final snapshot, and for a completed job its profile and example.
#[derive(Debug)]
pub struct Outcome {
    pub uploaded: Uploaded,
    pub snapshot: Value,
    /// From the upload's start to the job's end.
    pub elapsed: Duration,
    pub profile: Option<Value>,
    pub example: Option<Example>,
}

/// One example query and its answer.
#[derive(Debug)]
pub struct Example {
    /// What it asks, in words.
    pub description: String,
    /// The query document (docs/query.md).
    pub document: Value,
    pub result: QueryResult,
}

/// Uploads `file`, follows its job to a final state and, when it completed, reads the profile
/// and runs the example query. A failed or cancelled job is an `Ok` outcome: the caller shows
/// its snapshot.
pub async fn run(api: &Api, file: &Path, opts: &DemoOptions) -> Result<Outcome, DemoError> {
    let started = Instant::now();
    let uploaded = upload_file(api, file, &opts.upload).await?;
    let snapshot = follow(api, &uploaded.job_id, opts, started).await?;
    let elapsed = started.elapsed();
    let (mut profile, mut example) = (None, None);
    if snapshot["state"] == "completed" {
        let p = api
            .get(&format!("/v1/jobs/{}/profile", uploaded.job_id))
            .await?;
        let (description, document) = example_query(&p);
        let result = ask(api, &uploaded.job_id, &document, opts).await?;
        example = Some(Example {
            description,
            document,
            result,
        });
        profile = Some(p);
    }
    Ok(Outcome {
        uploaded,
        snapshot,
        elapsed,
        profile,
        example,
    })
}

/// Asks `document` over the job through the API, following a query job to its end.
async fn ask(
    api: &Api,
    job_id: &str,
    document: &Value,
    opts: &DemoOptions,
) -> Result<QueryResult, DemoError> {
    let mut answer = api
        .post(&format!("/v1/jobs/{job_id}/queries"), document)
        .await?;
    while answer["state"] == "queued" || answer["state"] == "running" {
        // A query job ends by itself (completed, or failed with a code: stalled at worst).
        tokio::time::sleep(opts.poll).await;
        let url = answer["status_url"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        answer = api.get(&url).await?;
    }
    if answer["state"] != "completed" {
        return Err(DemoError::Query(error_text(&answer["error"])));
    }
    serde_json::from_value(answer["result"].clone()).map_err(|e| DemoError::Query(e.to_string()))
}

/// Polls the job until it is `completed`, `failed` or `cancelled`, redrawing a progress line.
async fn follow(
    api: &Api,
    job_id: &str,
    opts: &DemoOptions,
    started: Instant,
) -> Result<Value, UploadError> {
    let mut last_line = String::new();
    loop {
        let snap = api.get(&format!("/v1/jobs/{job_id}")).await?;
        let line = job_line(&snap, started.elapsed());
        if opts.progress && line != last_line {
            eprint!("\r{line}\x1b[K");
            last_line = line;
        }
        if matches!(
            snap["state"].as_str(),
            Some("completed" | "failed" | "cancelled")
        ) {
            if opts.progress {
                eprintln!();
            }
            return Ok(snap);
        }
        tokio::time::sleep(opts.poll).await;
    }
}

fn job_line(snap: &Value, elapsed: Duration) -> String {
    let p = &snap["progress"];
    let fraction = p["fraction"].as_f64().unwrap_or(0.0).clamp(0.0, 1.0);
    let width = 30;
    let filled = (fraction * width as f64).round() as usize;
    format!(
        "job    [{}{}] {:>3.0}% {:<11} chunks {}/{} rows {} ({:.1} s)",
        "#".repeat(filled),
        ".".repeat(width - filled),
        fraction * 100.0,
        snap["state"].as_str().unwrap_or("?"),
        p["chunks_done"],
        p["chunks_total"],
        snap["rows"],
        elapsed.as_secs_f64()
    )
}

/// Chooses an example query from a profile: count and average of the first decimal column (else
/// the first integer column that is not an identifier), grouped by the string column with the fewest distinct values (2 to 50);
/// whichever of the two exists; else a plain count. The averaged column is read as the type the
/// profile found, so the local answer matches the server's reading of the file.
pub fn example_query(profile: &Value) -> (String, Value) {
    let empty = vec![];
    let columns = profile["columns"].as_array().unwrap_or(&empty);
    // An integer column whose values are (nearly) all distinct is an id or a row number: its
    // average means nothing. (Distinct counts above 1024 are estimates, hence "nearly".) A
    // decimal column is the likelier measure (an amount, a price), so it goes first.
    let id_like = |c: &&Value| {
        let count = c["count"].as_u64().unwrap_or(0) as f64;
        c["distinct"].as_u64().unwrap_or(0) as f64 >= 0.9 * count
    };
    let numeric = columns.iter().find(|c| c["type"] == "decimal").or_else(|| {
        columns
            .iter()
            .filter(|c| c["type"] == "integer")
            .find(|c| !id_like(c))
    });
    let key = columns
        .iter()
        .filter(|c| c["type"] == "string")
        .filter_map(|c| Some((c["distinct"].as_u64()?, c)))
        .filter(|(d, _)| (2..=50).contains(d))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    let name = |c: &Value| c["name"].as_str().unwrap_or("").to_string();
    let mut aggregates = vec![json!({"fn": "count"})];
    let mut doc = json!({"version": 1, "source": "source"});
    let mut words = String::from("rows");
    if let Some(n) = numeric {
        aggregates.push(json!({"fn": "avg", "column": name(n)}));
        doc["types"] = json!({ name(n): n["type"] });
        words = format!("rows and average {}", name(n));
    }
    if let Some(k) = key {
        doc["group_by"] = json!([name(k)]);
        doc["order_by"] = json!([{"aggregate": 0, "desc": true}]);
        doc["limit"] = json!(10);
        words = format!("{words} per {}, most rows first", name(k));
    }
    doc["aggregates"] = json!(aggregates);
    (words, doc)
}

impl Outcome {
    /// The text a completed demo prints: the totals, the profile table and the example answer.
    pub fn render(&self, filename: &str) -> String {
        let s = &self.snapshot;
        let columns = s["columns"].as_array().map(|c| c.len()).unwrap_or(0);
        let how = match self.uploaded.parts {
            0 => "one PUT".to_string(),
            n => format!("{n} parts"),
        };
        let mut out = format!(
            "completed {filename}: {} rows, {} rejected, {columns} columns, {} bytes in {:.1} s \
             (upload {:.1} s in {how}, {:.1} MB/s; job {})\n",
            s["rows"],
            s["rejected_rows"],
            self.uploaded.size,
            self.elapsed.as_secs_f64(),
            self.uploaded.elapsed.as_secs_f64(),
            self.uploaded.size as f64 / 1e6 / self.uploaded.elapsed.as_secs_f64().max(1e-3),
            self.uploaded.job_id,
        );
        if let Some(p) = &self.profile {
            out.push_str(&format!(
                "\nProfile (GET /v1/jobs/{}/profile):\n",
                self.uploaded.job_id
            ));
            out.push_str(&profile_table(p));
        }
        if let Some(e) = &self.example {
            out.push_str(&format!(
                "\nExample query: {} (POST /v1/jobs/{}/queries with this document):\n  {}\n",
                e.description, self.uploaded.job_id, e.document
            ));
            out.push_str(&result_table(&e.result));
        }
        out
    }
}

/// column, type, nulls, distinct, min, max, top value — one line per column.
pub fn profile_table(profile: &Value) -> String {
    let mut rows = vec![[
        "column",
        "type",
        "nulls",
        "distinct",
        "min",
        "max",
        "top value",
    ]
    .map(String::from)
    .to_vec()];
    for c in profile["columns"].as_array().into_iter().flatten() {
        let distinct = match c["distinct_exact"].as_bool() {
            Some(false) => format!("~{}", c["distinct"]),
            _ => c["distinct"].to_string(),
        };
        // A most frequent value seen once says only that no value repeats, and one whose count
        // is within the summary's error (`top_error`: too many distinct values to count them
        // all) may not be frequent at all: leave both out. An inexact count is marked `~`.
        let error = c["top_error"].as_u64().unwrap_or(0);
        let top = match c["top"]
            .get(0)
            .map(|t| (t, t["count"].as_u64().unwrap_or(0)))
        {
            Some((t, n)) if n > 1 && n > error => {
                let approx = if error > 0 { "~" } else { "" };
                format!("{} ({approx}{n})", cell(&t["value"]))
            }
            _ => String::new(),
        };
        rows.push(vec![
            cell(&c["name"]),
            cell(&c["type"]),
            c["nulls"].to_string(),
            distinct,
            cell(&c["min"]),
            cell(&c["max"]),
            top,
        ]);
    }
    table(&rows)
}

/// A query result as a table (keys, then aggregates).
pub fn result_table(r: &QueryResult) -> String {
    let mut rows = vec![r.columns.clone()];
    rows.extend(r.rows.iter().map(|row| row.iter().map(cell).collect()));
    let mut out = table(&rows);
    if r.total_rows > r.rows.len() as u64 {
        out.push_str(&format!("({} of {} groups)\n", r.rows.len(), r.total_rows));
    }
    out
}

/// A JSON value as a short cell: strings bare, null empty, at most 28 characters, one line.
fn cell(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > 28 {
        format!("{}…", text.chars().take(27).collect::<String>())
    } else {
        text
    }
}

/// Left-aligned columns two spaces apart, a rule under the header.
fn table(rows: &[Vec<String>]) -> String {
    let n = rows.first().map(Vec::len).unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |v| v.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |r: &Vec<String>| {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        format!("  {}\n", cells.join("  ").trim_end())
    };
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        out.push_str(&line(r));
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&format!("  {}\n", rule.join("  ")));
        }
    }
    out
}

/// The job's failure as one sentence.
pub fn failure(snapshot: &Value) -> String {
    format!(
        "job {} {}: {}",
        snapshot["job_id"].as_str().unwrap_or("?"),
        snapshot["state"].as_str().unwrap_or("has no state"),
        snapshot["error"]["message"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| error_text(snapshot))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: &str, distinct: u64, count: u64) -> Value {
        json!({"name": name, "type": ty, "distinct": distinct, "distinct_exact": true,
               "count": count, "nulls": 0, "min": 1, "max": 9, "top": [{"value": "a", "count": 3}]})
    }

    #[test]
    fn example_groups_a_non_id_number_by_the_smallest_string_column() {
        let p = json!({"columns": [col("id", "integer", 100, 100), col("qty", "integer", 5, 100),
            col("name", "string", 90, 100), col("city", "string", 4, 100),
            col("flag", "string", 1, 100), col("amount", "decimal", 80, 100)]});
        let (words, doc) = example_query(&p);
        assert_eq!(words, "rows and average amount per city, most rows first");
        assert_eq!(doc["group_by"], json!(["city"]));
        assert_eq!(
            doc["aggregates"],
            json!([{"fn": "count"}, {"fn": "avg", "column": "amount"}])
        );
        assert_eq!(doc["types"], json!({"amount": "decimal"}));
        tessera_shared::engine::query::parse_document(doc.to_string().as_bytes())
            .expect("a valid query");
    }

    #[test]
    fn example_falls_back_to_a_plain_count() {
        let p =
            json!({"columns": [col("id", "integer", 100, 100), col("note", "string", 100, 100)]});
        let (words, doc) = example_query(&p);
        assert_eq!(words, "rows");
        assert_eq!(doc["aggregates"], json!([{"fn": "count"}]));
        assert!(doc.get("group_by").is_none());
        tessera_shared::engine::query::parse_document(doc.to_string().as_bytes())
            .expect("a valid query");
        // Without a decimal column, an integer that is not an id is averaged.
        let p = json!({"columns": [col("id", "integer", 95, 100), col("qty", "integer", 5, 100)]});
        assert_eq!(example_query(&p).0, "rows and average qty");
    }

    #[test]
    fn profile_table_has_one_line_per_column_and_short_cells() {
        let mut long = col("note", "string", 5, 5);
        long["max"] = json!("x".repeat(100));
        long["distinct_exact"] = json!(false);
        let mut noisy = col("amount", "decimal", 5, 5);
        noisy["top_error"] = json!(3);
        let mut heavy = col("city", "string", 5, 5);
        heavy["top"] = json!([{"value": "Porto", "count": 40}]);
        heavy["top_error"] = json!(3);
        let t =
            profile_table(&json!({"columns": [col("id", "integer", 3, 3), long, noisy, heavy]}));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 6, "{t}");
        assert!(
            lines[4].trim_end().ends_with('9'),
            "a count within the error is hidden: {t}"
        );
        assert!(lines[5].ends_with("Porto (~40)"), "{t}");
        assert!(lines[0].contains("column") && lines[0].contains("top value"));
        assert!(
            lines[2].starts_with("  id ") && lines[2].contains("a (3)"),
            "{t}"
        );
        assert!(lines[3].contains("~5") && lines[3].contains('…'), "{t}");
    }
}
