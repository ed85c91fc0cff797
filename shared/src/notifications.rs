//! S3 event notifications as they arrive in SQS message bodies.
//!
//! Three shapes reach the planner: the real AWS `ObjectCreated` record list, the one-off
//! `s3:TestEvent` S3 sends when a notification is configured, and the emulator's records, which
//! lack `userIdentity`/`requestParameters` (so `aws_lambda_events::s3::S3Event` rejects them) and
//! percent-encode the whole key including `/`. Keys in S3 events are form-encoded (`+` is a
//! space); [`decode_key`] undoes that. The parse is lenient about absent fields and strict about
//! what matters (event name, bucket, key, size).

use serde::Deserialize;

/// One object-created notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCreated {
    pub event_name: String,
    pub bucket: String,
    /// Decoded key.
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub sequencer: Option<String>,
}

/// What an SQS message body from S3 turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `s3:TestEvent`: nothing to do.
    Test,
    /// Zero or more records (non-ObjectCreated records are dropped here and logged by the caller).
    Records(Vec<ObjectCreated>),
}

/// The body was not an S3 notification at all.
#[derive(Debug, thiserror::Error)]
#[error("message body is not an S3 event notification: {0}")]
pub struct NotificationError(String);

#[derive(Deserialize)]
struct Lenient {
    #[serde(rename = "Records", default)]
    records: Option<Vec<LenientRecord>>,
    #[serde(rename = "Event", default)]
    event: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LenientRecord {
    #[serde(default)]
    event_name: Option<String>,
    s3: LenientS3,
}

#[derive(Deserialize)]
struct LenientS3 {
    bucket: LenientBucket,
    object: LenientObject,
}

#[derive(Deserialize)]
struct LenientBucket {
    name: String,
}

#[derive(Deserialize)]
struct LenientObject {
    key: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default, rename = "eTag")]
    etag: Option<String>,
    #[serde(default)]
    sequencer: Option<String>,
}

/// Parses an SQS message body sent by S3.
pub fn parse(body: &str) -> Result<Notification, NotificationError> {
    // The typed AWS shape first: it is what production sends.
    if let Ok(ev) = serde_json::from_str::<aws_lambda_events::s3::S3Event>(body) {
        if !ev.records.is_empty() {
            let mut out = Vec::new();
            for r in ev.records {
                let (Some(bucket), Some(key)) = (r.s3.bucket.name, r.s3.object.key) else {
                    return Err(NotificationError("record without bucket or key".into()));
                };
                out.push(ObjectCreated {
                    event_name: r.event_name.unwrap_or_default(),
                    bucket,
                    key: decode_key(&key),
                    size: r.s3.object.size.map(|s| s as u64),
                    etag: r.s3.object.e_tag,
                    sequencer: r.s3.object.sequencer,
                });
            }
            return Ok(Notification::Records(
                out.into_iter()
                    .filter(|o| o.event_name.starts_with("ObjectCreated"))
                    .collect(),
            ));
        }
    }
    let lenient: Lenient =
        serde_json::from_str(body).map_err(|e| NotificationError(e.to_string()))?;
    if lenient.event.as_deref() == Some("s3:TestEvent") {
        return Ok(Notification::Test);
    }
    let Some(records) = lenient.records else {
        return Err(NotificationError("neither Records nor a TestEvent".into()));
    };
    Ok(Notification::Records(
        records
            .into_iter()
            .filter(|r| {
                r.event_name
                    .as_deref()
                    .unwrap_or("")
                    .starts_with("ObjectCreated")
            })
            .map(|r| ObjectCreated {
                event_name: r.event_name.unwrap_or_default(),
                bucket: r.s3.bucket.name,
                key: decode_key(&r.s3.object.key),
                size: r.s3.object.size,
                etag: r.s3.object.etag,
                sequencer: r.s3.object.sequencer,
            })
            .collect(),
    ))
}

/// Decodes an S3 event key: form encoding (`+` = space) then percent-decoding.
pub fn decode_key(key: &str) -> String {
    let plus = key.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_shape_with_encoded_key() {
        let body = include_str!("../../events/planner-s3-put.json");
        let outer: serde_json::Value = serde_json::from_str(body).unwrap();
        let inner = outer["Records"][0]["body"].as_str().unwrap();
        let Notification::Records(r) = parse(inner).unwrap() else {
            panic!("not records")
        };
        assert_eq!(r.len(), 1);
        assert!(r[0].key.starts_with("uploads/"), "{}", r[0].key);
        assert!(r[0].key.ends_with("/source"));
    }

    #[test]
    fn emulator_shape_without_user_identity() {
        let body = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-11-26T08:00:00.000Z","eventName":"ObjectCreated:Put","s3":{"s3SchemaVersion":"1.0","configurationId":"c","bucket":{"name":"b","arn":"arn:aws:s3:::b"},"object":{"key":"uploads%2Fa%2Bb%2Fj1%2Fsource","size":12,"eTag":"e","versionId":null,"sequencer":"0"}}}]}"#;
        let Notification::Records(r) = parse(body).unwrap() else {
            panic!("not records")
        };
        assert_eq!(r[0].key, "uploads/a+b/j1/source");
        assert_eq!(r[0].size, Some(12));
    }

    #[test]
    fn test_event_and_garbage() {
        let t = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-26T08:00:00.000Z","Bucket":"b","RequestId":"r","HostId":"h"}"#;
        assert_eq!(parse(t).unwrap(), Notification::Test);
        assert!(parse("not json").is_err());
        assert!(parse("{}").is_err());
    }

    #[test]
    fn form_encoding_is_undone() {
        assert_eq!(decode_key("my+file%2B1.csv"), "my file+1.csv");
    }
}
