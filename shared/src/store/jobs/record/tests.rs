//! The stored form converted both ways, and items as earlier versions wrote them.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;

fn job() -> Job {
    Job {
        dialect: Some(Dialect::default()),
        columns: vec!["a".into(), "b".into()],
        chunk_count: 3,
        chunks_done: 1,
        failed_chunks: vec![2],
        workflow: Some(WorkflowRef {
            id: "wf".into(),
            version: 2,
        }),
        unique_waiting: Some(BTreeMap::from([("1".to_string(), true)])),
        upload_id: Some("up".into()),
        ..Job::awaiting_upload("j1", "alice", "a.csv", "text/csv", 10, 99)
    }
}

#[test]
fn a_job_survives_its_record_and_its_item() {
    let j = job();
    let record = JobRecord::from(&j);
    assert_eq!(record.created_at, j.created_at.to_string());
    assert_eq!(
        record.dialect.as_ref().unwrap()["delimiter"],
        json!(b',' as u32)
    );
    assert_eq!(Job::try_from(record.clone()).unwrap(), j);
    // Through the DynamoDB item too (what `JobStore` writes and reads). The `unique` waiting
    // maps are written only by the store's own updates, never with the whole item.
    let item: crate::store::table::Item = serde_dynamo::to_item(&record).unwrap();
    assert!(!item.contains_key("unique_waiting"));
    let back: JobRecord = serde_dynamo::from_item(item).unwrap();
    let j = Job {
        unique_waiting: None,
        ..j
    };
    assert_eq!(back, JobRecord::from(&j));
    assert_eq!(Job::try_from(back).unwrap(), j);
}

#[test]
fn an_item_written_before_the_optional_attributes_reads() {
    // The attributes every version wrote; none of the later optional ones.
    let old = json!({
        "id": "j0", "owner": "bob", "state": "completed", "filename": "x.csv",
        "content_type": "text/csv", "declared_size": 5, "source_key": "sources/bob/j0",
        "created_at": "2026-01-02T03:04:05.006Z", "updated_at": "2026-01-02T03:04:06.007Z",
        "dialect": {"delimiter": 59, "quote": 34, "has_header": true, "line_ending": "lf", "bom": false},
        "columns": ["a"], "header_len": 2, "chunk_size": 5, "chunk_count": 1, "chunks_done": 1,
        "bytes_done": 5, "rows": 1, "rejected_rows": 0, "error": null,
        "results": {"profile": null, "clean": "c", "rejected": null, "manifest": null},
        "expires_at": 7
    });
    let record: JobRecord = serde_json::from_value(old.clone()).unwrap();
    let j = Job::try_from(record.clone()).unwrap();
    assert_eq!(j.dialect.unwrap().delimiter, b';');
    assert_eq!(j.updated_at.to_string(), "2026-01-02T03:04:06.007Z");
    assert!(j.workflow.is_none() && j.failed_chunks.is_empty() && j.scored_rows == 0);
    // Written back, the timestamps and the dialect are the same text as read.
    let again = JobRecord::from(&j);
    assert_eq!(again, record);
    let written = serde_json::to_value(&again).unwrap();
    for key in ["created_at", "updated_at", "dialect", "results"] {
        assert_eq!(written[key], old[key], "{key}");
    }
}

#[test]
fn a_record_that_no_version_wrote_is_malformed() {
    let mut record = JobRecord::from(&job());
    record.updated_at = "yesterday".into();
    assert!(matches!(
        Job::try_from(record),
        Err(StoreError::Malformed { what: "job", .. })
    ));
    // A dialect that is not one reads as none (the chunk that needs it fails `Malformed`).
    let mut record = JobRecord::from(&job());
    record.dialect = Some(json!({"delimiter": "comma"}));
    assert_eq!(Job::try_from(record).unwrap().dialect, None);
}
