//! The chunk task: one SQS message per byte range of an uploaded file.

use serde::{Deserialize, Serialize};

/// Work for one chunk worker. Small (well under SQS's 256 KiB): the worker reads the job record
/// for the dialect and columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkTaskMessage {
    pub job_id: String,
    pub owner: String,
    pub index: u32,
    /// Byte range `[start, end)` of the source object whose records this chunk owns.
    pub start: u64,
    pub end: u64,
    /// Quote state at `start` when known (a re-run after a parity misprediction); `None` = guess.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_in_quotes: Option<bool>,
    /// A re-run of a finished chunk during finalisation, with the `unique` repeats the second
    /// pass found in its range (read from its `unique-repeats` part), instead of a first run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unique_rerun: bool,
    /// A search group of the `unique` second pass (its number; `index` is the same and the
    /// byte range is empty) instead of a chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_search: Option<u32>,
}
