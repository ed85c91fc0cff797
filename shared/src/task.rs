//! The messages of the chunk task queue: a chunk's first run, a `unique` search group, a
//! chunk's `unique` re-run, an export or query range, and a group of rejected parts to rebase,
//! as one typed [`QueueMessage`].
//!
//! On the wire a message is told apart by its `kind` tag (`chunk`, `unique_search`,
//! `unique_rerun`, `export_range`, `query_range`, `rejected_rebase`). Messages written before the tag existed carry no `kind` (or
//! only `export_range`) and say what they are with flags, `unique_rerun: true` or
//! `unique_search: <group>`; they are still read, so the messages in flight during a deployment
//! are not lost. Chunk tasks are still written in that flag shape (a chunk message carries no
//! `kind`), byte for byte as before, so that a worker of the previous release reads what this
//! one sends; the writer can move to the tag once no such worker remains.

use serde::{Deserialize, Serialize};

/// One chunk's byte range of an uploaded file. Small (well under SQS's 256 KiB): the worker
/// reads the job record for the dialect and columns.
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
}

/// One search group of a job's `unique` second pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UniqueSearchMessage {
    pub job_id: String,
    pub owner: String,
    pub group: u32,
}

/// A message of the chunk task queue: chunk tasks and export ranges. The index names the
/// message within its batch (SQS entry ids).
pub trait QueueTask: serde::Serialize {
    fn index(&self) -> u32;
}

/// The `kind` of an export range message.
pub const EXPORT_RANGE_KIND: &str = "export_range";

/// Work for one export range: convert the records of `[start, end)` of a job's output and
/// write them as part `index` of the export (`docs/rules.md` § *Exports*). Travels on the chunk
/// task queue with `kind: "export_range"`; the export's settings are in its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRangeMessage {
    /// Always [`EXPORT_RANGE_KIND`] (read as the tag of [`QueueMessage`]).
    #[serde(default = "export_range_kind")]
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

fn export_range_kind() -> String {
    EXPORT_RANGE_KIND.into()
}

/// The `kind` of a query range message.
pub const QUERY_RANGE_KIND: &str = "query_range";

/// Work for one range of a query job: the partial aggregate state of the records `[start,
/// end)` of the object the query reads, written as part `index` (`crate::query`). Travels on
/// the chunk task queue with `kind: "query_range"`; the query's document is in its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryRangeMessage {
    /// Always [`QUERY_RANGE_KIND`].
    #[serde(default = "query_range_kind")]
    pub kind: String,
    pub job_id: String,
    pub owner: String,
    pub query_id: String,
    /// The query record's run the range belongs to (a message of an older run is ignored).
    #[serde(default)]
    pub run: u32,
    pub index: u32,
    /// Byte range `[start, end)` of the object whose records this range owns.
    pub start: u64,
    pub end: u64,
    /// Quote state at `start` when known; `None` = guess (validated by the merger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_in_quotes: Option<bool>,
}

fn query_range_kind() -> String {
    QUERY_RANGE_KIND.into()
}

/// A message of the chunk task queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QueueMessage {
    /// A chunk's first run.
    Chunk(ChunkTaskMessage),
    /// A search group of the `unique` second pass of a finalizing job.
    UniqueSearch(UniqueSearchMessage),
    /// A chunk run again during finalization with the `unique` repeats the second pass found in
    /// its range (read from its `unique-repeats` part).
    UniqueRerun(ChunkTaskMessage),
    /// An export job's range.
    ExportRange(ExportRangeMessage),
    /// A query job's range.
    QueryRange(QueryRangeMessage),
    /// A group of a finalizing job's rejected parts to rebase into one part of rejected.csv.
    RejectedRebase(RejectedRebaseMessage),
}

/// Work for one group of a finalizing job's rejected parts (`kind: "rejected_rebase"`): stream
/// each chunk's rejected part through the line-number rebaser, in order, into the group's part
/// of rejected.csv (`rejected-final/<group>`), the header first in group 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedRebaseMessage {
    pub job_id: String,
    pub owner: String,
    pub group: u32,
    /// `(chunk index, line base)` of each part of the group, in chunk order.
    pub chunks: Vec<(u32, u64)>,
    /// Whether the group's part begins with rejected.csv's header (group 0).
    pub header: bool,
}

impl QueueMessage {
    /// The job the message is about.
    pub fn job_id(&self) -> &str {
        match self {
            QueueMessage::Chunk(t) | QueueMessage::UniqueRerun(t) => &t.job_id,
            QueueMessage::UniqueSearch(s) => &s.job_id,
            QueueMessage::ExportRange(r) => &r.job_id,
            QueueMessage::QueryRange(r) => &r.job_id,
            QueueMessage::RejectedRebase(r) => &r.job_id,
        }
    }

    /// The job's owner, as the sender saw it.
    pub fn owner(&self) -> &str {
        match self {
            QueueMessage::Chunk(t) | QueueMessage::UniqueRerun(t) => &t.owner,
            QueueMessage::UniqueSearch(s) => &s.owner,
            QueueMessage::ExportRange(r) => &r.owner,
            QueueMessage::QueryRange(r) => &r.owner,
            QueueMessage::RejectedRebase(r) => &r.owner,
        }
    }
}

/// The message shape before the `kind` tag: a chunk task with its flags (what chunk tasks are
/// still written as).
#[derive(Serialize, Deserialize)]
struct FlaggedTask {
    #[serde(flatten)]
    task: ChunkTaskMessage,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    unique_rerun: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unique_search: Option<u32>,
}

impl Serialize for QueueMessage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let flagged = |task: &ChunkTaskMessage, unique_rerun, unique_search| FlaggedTask {
            task: task.clone(),
            unique_rerun,
            unique_search,
        };
        match self {
            QueueMessage::Chunk(t) => flagged(t, false, None).serialize(s),
            QueueMessage::UniqueRerun(t) => flagged(t, true, None).serialize(s),
            QueueMessage::UniqueSearch(m) => {
                let t = ChunkTaskMessage {
                    job_id: m.job_id.clone(),
                    owner: m.owner.clone(),
                    index: m.group,
                    start: 0,
                    end: 0,
                    start_in_quotes: None,
                };
                flagged(&t, false, Some(m.group)).serialize(s)
            }
            QueueMessage::ExportRange(r) => r.serialize(s),
            QueueMessage::QueryRange(r) => r.serialize(s),
            QueueMessage::RejectedRebase(r) => {
                #[derive(Serialize)]
                struct Tagged<'a> {
                    kind: &'static str,
                    #[serde(flatten)]
                    m: &'a RejectedRebaseMessage,
                }
                Tagged {
                    kind: "rejected_rebase",
                    m: r,
                }
                .serialize(s)
            }
        }
    }
}

impl QueueTask for QueueMessage {
    fn index(&self) -> u32 {
        match self {
            QueueMessage::Chunk(t) | QueueMessage::UniqueRerun(t) => t.index,
            QueueMessage::UniqueSearch(m) => m.group,
            QueueMessage::ExportRange(r) => r.index,
            QueueMessage::QueryRange(r) => r.index,
            QueueMessage::RejectedRebase(r) => r.group,
        }
    }
}

impl QueueTask for ExportRangeMessage {
    fn index(&self) -> u32 {
        self.index
    }
}

impl QueueTask for QueryRangeMessage {
    fn index(&self) -> u32 {
        self.index
    }
}

/// Reads a chunk queue message: by its `kind` tag, or, without one, by the flags of the shape
/// before the tag.
pub fn parse_queue_message(body: &str) -> Result<QueueMessage, serde_json::Error> {
    #[derive(Deserialize)]
    struct Kind {
        #[serde(default)]
        kind: Option<String>,
    }
    if serde_json::from_str::<Kind>(body)?.kind.is_some() {
        return serde_json::from_str(body);
    }
    let FlaggedTask {
        task,
        unique_rerun,
        unique_search,
    } = serde_json::from_str(body)?;
    Ok(match (unique_search, unique_rerun) {
        (Some(group), _) => QueueMessage::UniqueSearch(UniqueSearchMessage {
            job_id: task.job_id,
            owner: task.owner,
            group,
        }),
        (None, true) => QueueMessage::UniqueRerun(task),
        (None, false) => QueueMessage::Chunk(task),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_rebase_message_round_trips_with_its_kind() {
        let m = QueueMessage::RejectedRebase(RejectedRebaseMessage {
            job_id: "j".into(),
            owner: "o".into(),
            group: 2,
            chunks: vec![(4, 100), (5, 230)],
            header: false,
        });
        let body = serde_json::to_string(&m).unwrap();
        assert!(body.contains("\"kind\":\"rejected_rebase\""), "{body}");
        assert_eq!(parse_queue_message(&body).unwrap(), m);
    }

    fn task(index: u32) -> ChunkTaskMessage {
        ChunkTaskMessage {
            job_id: "j".into(),
            owner: "o".into(),
            index,
            start: 0,
            end: 9,
            start_in_quotes: None,
        }
    }

    #[test]
    fn messages_are_told_apart_by_kind() {
        let chunk = r#"{"job_id":"j","owner":"o","index":1,"start":0,"end":9}"#;
        assert_eq!(
            parse_queue_message(chunk).unwrap(),
            QueueMessage::Chunk(task(1))
        );
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
        let q = QueryRangeMessage {
            kind: QUERY_RANGE_KIND.into(),
            job_id: "j".into(),
            owner: "o".into(),
            query_id: "q".into(),
            run: 1,
            index: 3,
            start: 5,
            end: 9,
            start_in_quotes: Some(true),
        };
        let body = serde_json::to_string(&q).unwrap();
        assert_eq!(
            parse_queue_message(&body).unwrap(),
            QueueMessage::QueryRange(q)
        );
        assert!(parse_queue_message(r#"{"kind":"other"}"#).is_err());
        assert!(parse_queue_message("nope").is_err());
    }

    /// Messages in flight from before the tag: the flags say what they are.
    #[test]
    fn the_flag_shape_is_still_read() {
        let rerun = r#"{"job_id":"j","owner":"o","index":4,"start":0,"end":9,"start_in_quotes":true,"unique_rerun":true}"#;
        let mut t = task(4);
        t.start_in_quotes = Some(true);
        assert_eq!(
            parse_queue_message(rerun).unwrap(),
            QueueMessage::UniqueRerun(t)
        );
        let search = r#"{"job_id":"j","owner":"o","index":3,"start":0,"end":0,"unique_search":3}"#;
        assert_eq!(
            parse_queue_message(search).unwrap(),
            QueueMessage::UniqueSearch(UniqueSearchMessage {
                job_id: "j".into(),
                owner: "o".into(),
                group: 3,
            })
        );
    }

    /// The tagged shape is read too.
    #[test]
    fn the_tagged_shape_is_read() {
        let search = r#"{"kind":"unique_search","job_id":"j","owner":"o","group":3}"#;
        assert!(matches!(
            parse_queue_message(search).unwrap(),
            QueueMessage::UniqueSearch(UniqueSearchMessage { group: 3, .. })
        ));
        let rerun =
            r#"{"kind":"unique_rerun","job_id":"j","owner":"o","index":4,"start":0,"end":9}"#;
        assert_eq!(
            parse_queue_message(rerun).unwrap(),
            QueueMessage::UniqueRerun(task(4))
        );
        let chunk = r#"{"kind":"chunk","job_id":"j","owner":"o","index":1,"start":0,"end":9}"#;
        assert_eq!(
            parse_queue_message(chunk).unwrap(),
            QueueMessage::Chunk(task(1))
        );
    }

    /// What is sent is what the previous release sent, byte for byte, and reads back the same.
    #[test]
    fn messages_are_written_in_the_flag_shape() {
        let cases = [
            (
                QueueMessage::Chunk(task(1)),
                r#"{"job_id":"j","owner":"o","index":1,"start":0,"end":9}"#,
            ),
            (
                QueueMessage::UniqueRerun(ChunkTaskMessage {
                    start_in_quotes: Some(false),
                    ..task(2)
                }),
                r#"{"job_id":"j","owner":"o","index":2,"start":0,"end":9,"start_in_quotes":false,"unique_rerun":true}"#,
            ),
            (
                QueueMessage::UniqueSearch(UniqueSearchMessage {
                    job_id: "j".into(),
                    owner: "o".into(),
                    group: 5,
                }),
                r#"{"job_id":"j","owner":"o","index":5,"start":0,"end":0,"unique_search":5}"#,
            ),
        ];
        for (message, wire) in cases {
            assert_eq!(serde_json::to_string(&message).unwrap(), wire);
            assert_eq!(parse_queue_message(wire).unwrap(), message);
        }
    }
}
