//! `tessera query`: a query document over a local file, run by the engine over its byte ranges.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// `tessera query`: parse, validate, run over the file's byte ranges, print.
pub fn run_query(
    file: &Path,
    query: &Path,
    chunk_size: u64,
    workers: usize,
    max_groups: usize,
    json: bool,
) -> Result<()> {
    use tessera_shared::engine::query::{parse_document, query_file, QueryOptions, RunOptions};
    if chunk_size == 0 {
        bail!("--chunk-size must be at least 1 byte");
    }
    let text = std::fs::read(query)
        .with_context(|| format!("reading the query document {}", query.display()))?;
    let opts = RunOptions {
        chunk_size,
        workers,
        query: QueryOptions {
            max_groups,
            ..QueryOptions::default()
        },
        ..RunOptions::default()
    };
    let result = parse_document(&text).and_then(|doc| query_file(file, &doc, &opts));
    let result = match result {
        Ok(r) => r,
        Err(e) if !e.problems().is_empty() => {
            let list: Vec<String> = e.problems().iter().map(|p| format!("  {p}")).collect();
            bail!(
                "{} is not a valid query:\n{}",
                query.display(),
                list.join("\n")
            );
        }
        Err(e) => {
            return Err(anyhow::anyhow!("{e}")).context(format!("querying {}", file.display()))
        }
    };
    if json {
        println!("{}", serde_json::to_string(&result)?);
        return Ok(());
    }
    let cell = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut table = vec![result.columns.clone()];
    table.extend(result.rows.iter().map(|r| r.iter().map(cell).collect()));
    let widths: Vec<usize> = (0..result.columns.len())
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    let unparsed: Vec<String> = result
        .unparsed
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(c, n)| format!("{c}: {n}"))
        .collect();
    eprintln!(
        "{} of {} groups shown; {} rows read, {} matched, {} rejected{}",
        result.rows.len(),
        result.total_rows,
        result.rows_scanned,
        result.rows_matched,
        result.rejected_rows,
        if unparsed.is_empty() {
            String::new()
        } else {
            format!("; unparsed values (read as null): {}", unparsed.join(", "))
        }
    );
    Ok(())
}
