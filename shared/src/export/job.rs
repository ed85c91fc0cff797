//! Export jobs: a conversion of a job's output too large to finish within an API request
//! (`Config::export_sync_max_bytes`), done in parallel by the chunk workers.
//!
//! The api plans the output object into byte ranges with the engine's `split::plan` (the output
//! is CSV the engine wrote, so it splits exactly like an upload) and sends one
//! [`ExportRangeMessage`] per range on the chunk task queue. A worker converts the records its
//! range owns (`tessera_engine::range::RangeReader`: the chunk's ownership rule and quote-state
//! guess) into part `results/<owner>/<job>/exports/<id>/parts/<range>`, and records the
//! completion with its quote-parity facts in one transaction (`store::exports`). The worker that
//! completes the last range wins `running -> stitching`, validates the guesses with
//! `split::validate` (re-converting the rare mispredicted range with the known state),
//! concatenates the parts in order into `exports/<id>.<ext>` (`ObjectStore::concat`:
//! UploadPartCopy for parts of 5 MiB or more) and moves the export to `completed`. Range 0's
//! part starts with the CSV header; JSON Lines has none.
//!
//! Failures: a range that cannot be converted (engine error, the output changed under it)
//! fails the export with a stable code; a range that exhausts its deliveries fails it from the
//! dead-letter consumer; a stitch that cannot finish fails it. The export object is written
//! only by the stitch, in one PUT or one completed multipart upload, before the move to
//! `completed`: no reader is ever handed a half-written export.
//!
//! This module: the export job's model; the work is `pipeline::exports`.

use serde::{Deserialize, Serialize};
use tessera_engine::split::{self, ChunkTask};

use super::{Format, Output};
use crate::job::JobError;
use crate::keys;
use crate::task::{ExportRangeMessage, EXPORT_RANGE_KIND};

/// Lifecycle of an export job (the ranged jobs' lifecycle).
pub use crate::ranged::RangedState as ExportState;

/// The export job record (an item under its job: `store::exports`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportJob {
    pub id: String,
    pub job_id: String,
    pub owner: String,
    pub state: ExportState,
    pub output: Output,
    pub format: Format,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    pub formula_escape: bool,
    /// The output object converted, its size when planned, and its header record's length.
    pub source_key: String,
    pub source_size: u64,
    /// Its ETag when planned: every range's read is pinned to it (`If-Match`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_etag: Option<String>,
    pub header_len: u64,
    pub range_size: u64,
    pub range_count: u32,
    /// Progress, added to by each range's completion.
    #[serde(default)]
    pub ranges_done: u32,
    #[serde(default)]
    pub bytes_done: u64,
    /// Data rows converted (exact once completed).
    #[serde(default)]
    pub rows: u64,
    /// Size of the export object, once completed.
    #[serde(default)]
    pub size: u64,
    /// Ranges the stitcher converted again because their guessed quote state was wrong.
    #[serde(default)]
    pub ranges_rerun: u32,
    /// Where the export is written.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Epoch seconds after which DynamoDB deletes the record (the job's TTL).
    pub expires_at: i64,
}

impl crate::ranged::RangedJob for ExportJob {
    const KIND: &'static str = "EXPORT";
    fn job_id(&self) -> &str {
        &self.job_id
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn state(&self) -> ExportState {
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
    /// Every key the export may have written besides the export object: its range parts.
    fn part_keys(&self) -> Vec<String> {
        (0..self.range_count)
            .map(|i| keys::export_part_key(&self.owner, &self.job_id, &self.id, i))
            .collect()
    }
}

impl ExportJob {
    /// The byte ranges of the output (none for a header-only output).
    pub fn ranges(&self) -> Vec<ChunkTask> {
        split::plan(self.source_size, self.header_len, self.range_size.max(1))
    }
}

/// One message per range of `export`.
pub fn export_tasks(export: &ExportJob) -> Vec<ExportRangeMessage> {
    export
        .ranges()
        .iter()
        .map(|t| ExportRangeMessage {
            kind: EXPORT_RANGE_KIND.into(),
            job_id: export.job_id.clone(),
            owner: export.owner.clone(),
            export_id: export.id.clone(),
            index: t.index,
            start: t.start,
            end: t.end,
            start_in_quotes: t.start_in_quotes,
        })
        .collect()
}
