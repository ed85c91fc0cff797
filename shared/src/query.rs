//! Queries over a completed job (issue 11's HTTP side): the query record, how a question maps
//! to its id (the result cache), and the range tasks of a query job.
//!
//! A query reads one object of a job: its clean output (`"source": "clean"`) or its upload
//! (`"source": "source"`). An object up to `Config::query_inline_max_bytes` is read within the
//! request; a larger one becomes a **query job**, a ranged job (`crate::ranged`): one task per
//! byte range on the chunk task queue, each writing its partial aggregate state to S3
//! (`results/<owner>/<job>/queries/<id>/parts/<range>`) and recording its completion once; the
//! worker completing the last range validates the quote-state guesses (re-reading the rare
//! mispredicted range with the known state), merges the states in range order, applies
//! having/order/limit and stores the result. Either way the answer is stored under the query's
//! record, so the same question is answered again from one read.
//!
//! The id is the question: a hash of the job, the version of its outputs and the normalised
//! document (parsed, then written back with every field in a fixed order), so the same
//! question asked twice, with its keys in another order or other whitespace, meets the same
//! record; a job's outputs never change once it is completed, so a stored answer stays right.
//!
//! Not here: the engine (`tessera_engine::query`), the work (`pipeline::queries`), HTTP.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tessera_engine::dialect::Dialect;
use tessera_engine::query::{QueryDocument, Schema, Source};
use tessera_engine::split::{self, ChunkTask};

use crate::job::{Job, JobError};
use crate::keys;
use crate::ranged::{RangedJob, RangedState};
use crate::task::{QueryRangeMessage, QUERY_RANGE_KIND};

/// Results up to this many bytes of JSON are kept in the query's record (one read answers a
/// repeated question); larger ones are stored in S3 and read from there.
pub const INLINE_RESULT_MAX_BYTES: usize = 100 * 1024;

/// Partitions (by group-key hash) a range's partial state is cut into when it holds more
/// groups than `Config::query_spill_groups`: the merger then holds one partition at a time.
pub const QUERY_PARTITIONS: u32 = 16;

/// How a query ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryMode {
    /// Within the request that asked it.
    Inline,
    /// As a query job on the chunk workers.
    Job,
}

/// A query's record (an item under its job: `store::ranged`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryJob {
    pub id: String,
    pub job_id: String,
    pub owner: String,
    pub state: RangedState,
    pub mode: QueryMode,
    /// Run of the record: 0, then one more each time the question is asked again after it
    /// failed (`crate::ranged::RangedJob::run`).
    #[serde(default)]
    pub run: u32,
    /// The normalised document (JSON text).
    pub document: String,
    /// The object read, its size, its header record's length, dialect and column types.
    pub object_key: String,
    pub object_size: u64,
    /// Its ETag when the query was prepared: every range's read is pinned to it (`If-Match`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_etag: Option<String>,
    pub header_len: u64,
    pub dialect: Dialect,
    pub schema: Schema,
    pub range_size: u64,
    pub range_count: u32,
    /// Progress, added to by each range's completion.
    #[serde(default)]
    pub ranges_done: u32,
    #[serde(default)]
    pub bytes_done: u64,
    /// Records read (exact once completed).
    #[serde(default)]
    pub rows: u64,
    /// CPU time of the ranges, in milliseconds.
    #[serde(default)]
    pub cpu_ms: u64,
    /// Bytes of the result (JSON), once completed.
    #[serde(default)]
    pub size: u64,
    /// Ranges read again because their guessed quote state was wrong.
    #[serde(default)]
    pub ranges_rerun: u32,
    /// The result (JSON text) when it is small ([`INLINE_RESULT_MAX_BYTES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Where the result (JSON) and its CSV are stored.
    pub result_key: String,
    pub csv_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Epoch seconds after which DynamoDB deletes the record (the job's TTL).
    pub expires_at: i64,
    /// A message for the agent's queue, sent when the query job ends (completed or failed):
    /// the conversation turn that asked it resumes (`crate::agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<String>,
}

impl RangedJob for QueryJob {
    const KIND: &'static str = "QUERY";
    fn job_id(&self) -> &str {
        &self.job_id
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn state(&self) -> RangedState {
        self.state
    }
    fn updated_at(&self) -> &str {
        &self.updated_at
    }
    fn range_count(&self) -> u32 {
        self.range_count
    }
    fn ranges_done(&self) -> u32 {
        self.ranges_done
    }
    fn expires_at(&self) -> i64 {
        self.expires_at
    }
    fn run(&self) -> u32 {
        self.run
    }
    /// Every part key a query job may have written: one partial state per range, or its
    /// [`QUERY_PARTITIONS`] partitions when it spilled.
    fn part_keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        for i in 0..self.range_count {
            out.push(keys::query_part_key(&self.owner, &self.job_id, &self.id, i));
            for p in 0..QUERY_PARTITIONS {
                out.push(keys::query_partition_key(
                    &self.owner,
                    &self.job_id,
                    &self.id,
                    i,
                    p,
                ));
            }
        }
        out
    }
}

impl QueryJob {
    /// The byte ranges of the object (none for a header-only object).
    pub fn ranges(&self) -> Vec<ChunkTask> {
        split::plan(self.object_size, self.header_len, self.range_size.max(1))
    }

    /// Where its state is read: `GET /v1/jobs/{job}/queries/{id}`.
    pub fn status_url(&self) -> String {
        format!("/v1/jobs/{}/queries/{}", self.job_id, self.id)
    }

    /// Its progress as callers see it (the answer and the WebSocket push).
    pub fn progress(&self) -> serde_json::Value {
        let fraction = if self.object_size == 0 {
            1.0
        } else {
            self.bytes_done as f64 / self.object_size as f64
        };
        serde_json::json!({
            "ranges": self.range_count,
            "ranges_done": self.ranges_done,
            "bytes": self.object_size,
            "bytes_done": self.bytes_done,
            "fraction": fraction,
        })
    }

    /// The document, parsed back.
    pub fn parsed(&self) -> Result<QueryDocument, serde_json::Error> {
        serde_json::from_str(&self.document)
    }
}

/// The normalised text of `doc`: every field in its fixed order, no whitespace.
pub fn normalised(doc: &QueryDocument) -> String {
    serde_json::to_string(doc).expect("a query document is JSON")
}

/// The version of a completed job's outputs: the moment it completed (a final state never
/// changes, so neither do its outputs).
pub fn output_version(job: &Job) -> &str {
    &job.updated_at
}

/// The query id of `doc` over `job`: the first 128 bits of SHA-256 over the job id, the
/// version of its outputs and the normalised document, as 32 hex digits.
pub fn query_id(job: &Job, doc: &QueryDocument) -> String {
    let mut h = Sha256::new();
    for part in [
        job.id.as_str(),
        output_version(job),
        normalised(doc).as_str(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `id` has the shape of a query id (before any lookup).
pub fn is_query_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The object of `job` a query with `source` reads, if the job has it.
pub fn object_of(job: &Job, source: Source) -> Option<&str> {
    match source {
        Source::Clean => job.results.clean.as_deref(),
        Source::Source => Some(job.source_key.as_str()),
    }
}

/// One message per range of `query`.
pub fn query_tasks(query: &QueryJob) -> Vec<QueryRangeMessage> {
    query
        .ranges()
        .iter()
        .map(|t| QueryRangeMessage {
            kind: QUERY_RANGE_KIND.into(),
            job_id: query.job_id.clone(),
            owner: query.owner.clone(),
            query_id: query.id.clone(),
            run: query.run,
            index: t.index,
            start: t.start,
            end: t.end,
            start_in_quotes: t.start_in_quotes,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        let mut j = Job::awaiting_upload("j1", "alice", "f.csv", "text/csv", 10, 0);
        j.updated_at = "2026-12-03T10:00:00Z".into();
        j
    }

    fn doc(text: &str) -> QueryDocument {
        tessera_engine::query::parse_document(text.as_bytes()).unwrap()
    }

    #[test]
    fn the_same_question_in_another_spelling_has_the_same_id() {
        let a = doc(r#"{"version":1,"group_by":["a"],"aggregates":[{"fn":"count"}]}"#);
        let b = doc(r#"{ "aggregates": [ {"fn": "count"} ],
                 "group_by": ["a"], "version": 1 }"#);
        assert_eq!(query_id(&job(), &a), query_id(&job(), &b));
        assert!(is_query_id(&query_id(&job(), &a)));
    }

    #[test]
    fn another_question_job_or_output_version_has_another_id() {
        let a = doc(r#"{"version":1,"group_by":["a"],"aggregates":[{"fn":"count"}]}"#);
        let b = doc(r#"{"version":1,"group_by":["b"],"aggregates":[{"fn":"count"}]}"#);
        let j = job();
        let mut other = job();
        other.id = "j2".into();
        let mut later = job();
        later.updated_at = "2026-12-03T11:00:00Z".into();
        let ids = [
            query_id(&j, &a),
            query_id(&j, &b),
            query_id(&other, &a),
            query_id(&later, &a),
        ];
        for i in 0..ids.len() {
            for k in i + 1..ids.len() {
                assert_ne!(ids[i], ids[k], "{i} vs {k}");
            }
        }
    }

    #[test]
    fn query_ids_are_lowercase_hex_of_32() {
        assert!(!is_query_id("../etc"));
        assert!(!is_query_id(&"A".repeat(32)));
        assert!(is_query_id(&"0a".repeat(16)));
    }
}
