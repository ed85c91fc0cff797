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

impl crate::store::queue::QueueTask for ChunkTaskMessage {
    fn index(&self) -> u32 {
        self.index
    }
}

/// The `kind` of an export range message, on the chunk task queue beside chunk tasks (which
/// have no `kind`).
pub const EXPORT_RANGE_KIND: &str = "export_range";

/// Work for one export range: convert the records of `[start, end)` of a job's output and
/// write them as part `index` of the export (`docs/rules.md` § *Exports*). Travels on the chunk
/// task queue with `kind: "export_range"`; the export's settings are in its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRangeMessage {
    /// Always [`EXPORT_RANGE_KIND`].
    pub kind: String,
    pub job_id: String,
    pub owner: String,
    pub export_id: String,
    pub index: u32,
    /// Byte range `[start, end)` of the output object whose records this range owns.
    pub start: u64,
    pub end: u64,
    /// Quote state at `start` when known; `None` = guess (validated by the stitcher).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_in_quotes: Option<bool>,
}

impl crate::store::queue::QueueTask for ExportRangeMessage {
    fn index(&self) -> u32 {
        self.index
    }
}

/// A message of the chunk task queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueMessage {
    Chunk(ChunkTaskMessage),
    ExportRange(ExportRangeMessage),
}

/// Reads a chunk queue message by its `kind` (none: a chunk task).
pub fn parse_queue_message(body: &str) -> Result<QueueMessage, serde_json::Error> {
    #[derive(Deserialize)]
    struct Kind {
        #[serde(default)]
        kind: Option<String>,
    }
    match serde_json::from_str::<Kind>(body)?.kind.as_deref() {
        Some(EXPORT_RANGE_KIND) => Ok(QueueMessage::ExportRange(serde_json::from_str(body)?)),
        None => Ok(QueueMessage::Chunk(serde_json::from_str(body)?)),
        Some(other) => Err(serde::de::Error::custom(format!(
            "unknown message kind `{other}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_told_apart_by_kind() {
        let chunk = r#"{"job_id":"j","owner":"o","index":1,"start":0,"end":9}"#;
        assert!(matches!(
            parse_queue_message(chunk),
            Ok(QueueMessage::Chunk(ChunkTaskMessage { index: 1, .. }))
        ));
        let m = ExportRangeMessage {
            kind: EXPORT_RANGE_KIND.into(),
            job_id: "j".into(),
            owner: "o".into(),
            export_id: "e".into(),
            index: 2,
            start: 5,
            end: 9,
            start_in_quotes: None,
        };
        let body = serde_json::to_string(&m).unwrap();
        assert_eq!(
            parse_queue_message(&body).unwrap(),
            QueueMessage::ExportRange(m)
        );
        assert!(parse_queue_message(r#"{"kind":"other"}"#).is_err());
        assert!(parse_queue_message("nope").is_err());
    }
}
