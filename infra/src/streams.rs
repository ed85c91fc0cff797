//! Lambda's DynamoDB-stream event-source mapping, locally: reads the jobs table's stream with
//! the streams API the emulator implements (DescribeTable for the stream ARN, DescribeStream,
//! GetShardIterator, GetRecords) and hands each non-empty batch to the status function's stream
//! handler as the `aws_lambda_events::dynamodb::Event` Lambda would deliver.
//!
//! Like the mapping: per shard, one batch at a time, in order; the starting position is
//! `LATEST` (`tessera up`) or `TRIM_HORIZON` (tests: nothing written before the poller starts
//! is missed); records reported in `batchItemFailures` are retried from the first failed one
//! (up to [`MAX_RETRIES`] times, then skipped, like `MaximumRetryAttempts`). Shards that close
//! and split are not followed: the emulator keeps one shard per table.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::Engine;
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

/// The stream handler the mapping feeds.
pub type StreamHandler =
    Arc<dyn Fn(Event) -> BoxFuture<'static, DynamoDbEventResponse> + Send + Sync>;

/// Retries of a batch whose records were reported as failed.
pub const MAX_RETRIES: usize = 2;

/// Where a new poller starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    Latest,
    TrimHorizon,
}

/// One stream mapping.
#[derive(Debug, Clone)]
pub struct StreamMapping {
    pub table: String,
    pub region: String,
    pub batch_size: i32,
    pub starting_position: StartingPosition,
    /// Wait after an empty read (Lambda polls each shard about four times a second).
    pub idle_wait: Duration,
}

/// A stream attribute value as the Lambda event carries it (`{"S": ...}`, `{"N": ...}`, ...).
pub fn attribute_json(v: &AttributeValue) -> Value {
    let b64 = |b: &aws_sdk_dynamodbstreams::primitives::Blob| {
        Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
    };
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": image_json(m) }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        _ => json!({ "NULL": true }),
    }
}

fn image_json(m: &std::collections::HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), attribute_json(v)))
            .collect::<Map<_, _>>(),
    )
}

/// The Lambda event record for one stream record.
pub fn event_record(r: &Record, region: &str, stream_arn: &str) -> Option<EventRecord> {
    let d = r.dynamodb.as_ref()?;
    let created = d
        .approximate_creation_date_time
        .map(|t| t.secs())
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": created,
        "Keys": d.keys.as_ref().map(image_json).unwrap_or_else(|| json!({})),
        "SequenceNumber": d.sequence_number,
        "SizeBytes": d.size_bytes.unwrap_or(0),
        "StreamViewType": d.stream_view_type.as_ref().map(|v| v.as_str()),
    });
    if let Some(img) = &d.new_image {
        dynamodb["NewImage"] = image_json(img);
    }
    if let Some(img) = &d.old_image {
        dynamodb["OldImage"] = image_json(img);
    }
    let v = json!({
        "eventID": r.event_id,
        "eventName": r.event_name.as_ref().map(|n| n.as_str()),
        "eventVersion": r.event_version.as_deref().unwrap_or("1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    });
    match serde_json::from_value(v) {
        Ok(rec) => Some(rec),
        Err(e) => {
            tracing::error!(error = %e, "stream record does not fit the Lambda event shape");
            None
        }
    }
}

/// Runs the mapping until `shutdown` turns true.
pub async fn run(
    m: StreamMapping,
    ddb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    handler: StreamHandler,
    mut shutdown: watch::Receiver<bool>,
) {
    let span = tracing::info_span!("stream-mapping", table = %m.table);
    let _g = span.enter();
    let Some((arn, shards)) = describe(&m, &ddb, &streams).await else {
        return;
    };
    let tasks: Vec<_> = shards
        .into_iter()
        .map(|shard| {
            tokio::spawn(poll_shard(
                m.clone(),
                streams.clone(),
                arn.clone(),
                shard,
                handler.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    let _ = shutdown.wait_for(|v| *v).await;
    for t in tasks {
        let _ = t.await;
    }
}

async fn describe(
    m: &StreamMapping,
    ddb: &aws_sdk_dynamodb::Client,
    streams: &aws_sdk_dynamodbstreams::Client,
) -> Option<(String, Vec<String>)> {
    let table = match ddb.describe_table().table_name(&m.table).send().await {
        Ok(t) => t.table?,
        Err(e) => {
            tracing::error!(error = %aws_smithy_types::error::display::DisplayErrorContext(&e), "DescribeTable failed: no stream pushes");
            return None;
        }
    };
    let Some(arn) = table.latest_stream_arn else {
        tracing::error!("the jobs table has no stream: no WebSocket pushes");
        return None;
    };
    let desc = match streams.describe_stream().stream_arn(&arn).send().await {
        Ok(d) => d.stream_description?,
        Err(e) => {
            tracing::error!(error = %aws_smithy_types::error::display::DisplayErrorContext(&e), "DescribeStream failed: no stream pushes");
            return None;
        }
    };
    let shards = desc
        .shards
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| s.shard_id)
        .collect();
    Some((arn, shards))
}

async fn poll_shard(
    m: StreamMapping,
    streams: aws_sdk_dynamodbstreams::Client,
    arn: String,
    shard: String,
    handler: StreamHandler,
    shutdown: watch::Receiver<bool>,
) {
    let kind = match m.starting_position {
        StartingPosition::Latest => ShardIteratorType::Latest,
        StartingPosition::TrimHorizon => ShardIteratorType::TrimHorizon,
    };
    let mut iterator = match streams
        .get_shard_iterator()
        .stream_arn(&arn)
        .shard_id(&shard)
        .shard_iterator_type(kind)
        .send()
        .await
    {
        Ok(o) => o.shard_iterator,
        Err(e) => {
            tracing::error!(shard, error = %aws_smithy_types::error::display::DisplayErrorContext(&e), "GetShardIterator failed");
            return;
        }
    };
    let mut last_seq: Option<String> = None;
    while let Some(it) = iterator.take() {
        if *shutdown.borrow() {
            break;
        }
        let out = match streams
            .get_records()
            .shard_iterator(&it)
            .limit(m.batch_size)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(shard, error = %aws_smithy_types::error::display::DisplayErrorContext(&e), "GetRecords failed; retrying");
                tokio::time::sleep(m.idle_wait).await;
                iterator = Some(it);
                continue;
            }
        };
        iterator = out.next_shard_iterator;
        let raw = out.records.unwrap_or_default();
        if let Some(seq) = raw
            .iter()
            .rev()
            .find_map(|r| r.dynamodb.as_ref()?.sequence_number.clone())
        {
            last_seq = Some(seq);
        }
        let records: Vec<EventRecord> = raw
            .iter()
            .filter_map(|r| event_record(r, &m.region, &arn))
            .collect();
        if records.is_empty() {
            tokio::time::sleep(m.idle_wait).await;
            // The emulator (moto 5.1) restores a deep copy of its tables when a
            // TransactWriteItems fails a condition, stream shard included: iterators taken
            // before then read a shard nothing is added to any more (found with the model
            // engine's rate-bucket transactions: pushes stopped after the first conflict). An
            // idle poll therefore resumes from a fresh iterator after the last record read,
            // which on AWS is the same position.
            if let Some(seq) = &last_seq {
                match streams
                    .get_shard_iterator()
                    .stream_arn(&arn)
                    .shard_id(&shard)
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(seq)
                    .send()
                    .await
                {
                    Ok(o) if o.shard_iterator.is_some() => iterator = o.shard_iterator,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(shard, error = %aws_smithy_types::error::display::DisplayErrorContext(&e), "GetShardIterator (resume) failed; keeping the iterator")
                    }
                }
            }
            continue;
        }
        deliver(&handler, records).await;
    }
}

/// Hands a batch to the handler; retries from the first failed record.
async fn deliver(handler: &StreamHandler, mut records: Vec<EventRecord>) {
    for attempt in 0..=MAX_RETRIES {
        let mut ev = Event::default();
        ev.records = records.clone();
        let resp = handler(ev).await;
        let failed: Vec<&str> = resp
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.as_deref())
            .collect();
        let first = records.iter().position(|r| {
            r.change
                .sequence_number
                .as_deref()
                .is_some_and(|s| failed.contains(&s))
        });
        match first {
            None => return,
            Some(i) => {
                tracing::warn!(attempt, failed = failed.len(), "stream batch items failed");
                records.drain(..i);
            }
        }
    }
    tracing::error!(
        records = records.len(),
        "stream records skipped after retries"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_become_lambda_event_records() {
        let rec = Record::builder()
            .event_id("e1")
            .event_name(aws_sdk_dynamodbstreams::types::OperationType::Modify)
            .dynamodb(
                aws_sdk_dynamodbstreams::types::StreamRecord::builder()
                    .keys("pk", AttributeValue::S("JOB#j".into()))
                    .keys("sk", AttributeValue::S("META".into()))
                    .new_image("n", AttributeValue::N("3".into()))
                    .new_image(
                        "m",
                        AttributeValue::M([("b".to_string(), AttributeValue::Bool(true))].into()),
                    )
                    .new_image("jobs", AttributeValue::Ss(vec!["a".into()]))
                    .sequence_number("42")
                    .size_bytes(10)
                    .stream_view_type(
                        aws_sdk_dynamodbstreams::types::StreamViewType::NewAndOldImages,
                    )
                    .build(),
            )
            .build();
        let r = event_record(&rec, "us-east-1", "arn:stream").expect("fits");
        assert_eq!(r.event_name, "MODIFY");
        assert_eq!(r.change.sequence_number.as_deref(), Some("42"));
        assert_eq!(r.event_source_arn.as_deref(), Some("arn:stream"));
        assert_eq!(r.change.keys.len(), 2);
        assert_eq!(r.change.new_image.len(), 3);
        assert!(r.change.old_image.is_empty());
    }
}
