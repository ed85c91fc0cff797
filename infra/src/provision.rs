//! Creating Tessera's resources in the emulator from [`crate::resources::spec`], idempotently:
//! the bucket (CORS, lifecycle, S3 -> SQS notification), the jobs table (keys, owner index,
//! TTL, stream) and the three queues (upload events, chunk tasks, agent tasks) with their
//! dead-letter queues and redrive policies.
//!
//! Names come from the spec; a stack may add a suffix so that many stacks share one emulator
//! (moto is one process) without colliding. Not here: starting the emulator, polling queues.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, CorsConfiguration, CorsRule,
    Event, ExpirationStatus, FilterRule, FilterRuleName, LifecycleRule, LifecycleRuleFilter,
    NotificationConfiguration, NotificationConfigurationFilter, QueueConfiguration, S3KeyFilter,
};
use aws_sdk_sqs::types::QueueAttributeName;
use tessera_shared::aws::Clients;

use crate::resources::{QueueSpec, Resources};

/// A provisioning step failed. Names the step and the resource.
#[derive(Debug, thiserror::Error)]
#[error("creating {what} in the AWS emulator failed: {detail}")]
pub struct ProvisionError {
    pub what: String,
    pub detail: String,
}

fn err<E: std::error::Error>(what: impl Into<String>, e: E) -> ProvisionError {
    let detail = aws_smithy_types::error::display::DisplayErrorContext(&e).to_string();
    ProvisionError {
        what: what.into(),
        detail,
    }
}

/// One queue as created.
#[derive(Debug, Clone)]
pub struct QueueNames {
    pub name: String,
    pub url: String,
    pub arn: String,
    pub dlq_name: String,
    pub dlq_url: String,
    pub dlq_arn: String,
}

/// The concrete names of one stack's resources.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub bucket: String,
    pub table: String,
    pub upload_events: QueueNames,
    pub chunk_tasks: QueueNames,
    pub agent_tasks: QueueNames,
}

/// Per-queue settings that tests may override (e.g. a short visibility timeout).
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueOverrides {
    pub visibility_timeout_secs: Option<u32>,
    pub max_receive_count: Option<u32>,
}

/// Test overrides of each queue's settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    pub upload_events: QueueOverrides,
    pub chunk_tasks: QueueOverrides,
    pub agent_tasks: QueueOverrides,
}

/// Creates (or updates) everything. `suffix` is appended to every name (`""` for the spec names).
pub async fn provision(
    clients: &Clients,
    spec: &Resources,
    suffix: &str,
    overrides: Overrides,
) -> Result<Provisioned, ProvisionError> {
    let bucket = format!("{}{suffix}", spec.bucket.name);
    let table = format!("{}{suffix}", spec.table.name);
    let upload_events = queue(
        clients,
        &spec.upload_events,
        suffix,
        overrides.upload_events,
    )
    .await?;
    let chunk_tasks = queue(clients, &spec.chunk_tasks, suffix, overrides.chunk_tasks).await?;
    let agent_tasks = queue(clients, &spec.agent_tasks, suffix, overrides.agent_tasks).await?;
    create_table(clients, spec, &table).await?;
    create_bucket(clients, spec, &bucket, &upload_events.arn).await?;
    Ok(Provisioned {
        bucket,
        table,
        upload_events,
        chunk_tasks,
        agent_tasks,
    })
}

async fn queue(
    clients: &Clients,
    q: &QueueSpec,
    suffix: &str,
    overrides: QueueOverrides,
) -> Result<QueueNames, ProvisionError> {
    let name = format!("{}{suffix}", q.name);
    let dlq_name = format!("{}{suffix}", q.dlq_name);
    let (dlq_url, dlq_arn) = create_queue(
        clients,
        &dlq_name,
        &[(
            QueueAttributeName::MessageRetentionPeriod,
            q.message_retention_secs.to_string(),
        )],
    )
    .await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": overrides.max_receive_count.unwrap_or(q.max_receive_count),
    });
    let visibility = overrides
        .visibility_timeout_secs
        .unwrap_or(q.visibility_timeout_secs);
    let (url, arn) = create_queue(
        clients,
        &name,
        &[
            (
                QueueAttributeName::VisibilityTimeout,
                visibility.to_string(),
            ),
            (
                QueueAttributeName::MessageRetentionPeriod,
                q.message_retention_secs.to_string(),
            ),
            (
                QueueAttributeName::ReceiveMessageWaitTimeSeconds,
                q.receive_wait_secs.to_string(),
            ),
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
        ],
    )
    .await?;
    Ok(QueueNames {
        name,
        url,
        arn,
        dlq_name,
        dlq_url,
        dlq_arn,
    })
}

/// CreateQueue (idempotent without attributes), then SetQueueAttributes, so re-running with
/// changed settings updates the queue instead of failing with QueueAlreadyExists.
async fn create_queue(
    clients: &Clients,
    name: &str,
    attrs: &[(QueueAttributeName, String)],
) -> Result<(String, String), ProvisionError> {
    let sqs = &clients.sqs;
    let what = || format!("queue {name}");
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| err(what(), e))?
        .queue_url
        .ok_or_else(|| ProvisionError {
            what: what(),
            detail: "CreateQueue returned no URL".into(),
        })?;
    let mut set = sqs.set_queue_attributes().queue_url(&url);
    for (k, v) in attrs {
        set = set.attributes(k.clone(), v);
    }
    set.send().await.map_err(|e| err(what(), e))?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| err(what(), e))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| ProvisionError {
            what: what(),
            detail: "GetQueueAttributes returned no QueueArn".into(),
        })?;
    Ok((url, arn))
}

async fn create_table(
    clients: &Clients,
    spec: &Resources,
    table: &str,
) -> Result<(), ProvisionError> {
    let ddb = &clients.dynamodb;
    let t = &spec.table;
    let what = || format!("table {table}");
    let key = |name: &str, kt: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kt)
            .build()
    };
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let exists = ddb.describe_table().table_name(table).send().await.is_ok();
    if !exists {
        let mut req = ddb
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(t.hash_key, KeyType::Hash).map_err(|e| err(what(), e))?)
            .key_schema(key(t.range_key, KeyType::Range).map_err(|e| err(what(), e))?)
            .attribute_definitions(attr(t.hash_key).map_err(|e| err(what(), e))?)
            .attribute_definitions(attr(t.range_key).map_err(|e| err(what(), e))?)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(t.stream_view_type))
                    .build()
                    .map_err(|e| err(what(), e))?,
            );
        for ix in &t.indexes {
            req = req
                .attribute_definitions(attr(ix.hash_key).map_err(|e| err(what(), e))?)
                .attribute_definitions(attr(ix.range_key).map_err(|e| err(what(), e))?)
                .global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(ix.name)
                        .key_schema(key(ix.hash_key, KeyType::Hash).map_err(|e| err(what(), e))?)
                        .key_schema(key(ix.range_key, KeyType::Range).map_err(|e| err(what(), e))?)
                        .projection(
                            Projection::builder()
                                .projection_type(ProjectionType::All)
                                .build(),
                        )
                        .build()
                        .map_err(|e| err(what(), e))?,
                );
        }
        match req.send().await {
            Ok(_) => {}
            // Created concurrently by another process: fine.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(err(what(), e)),
        }
    }
    let ttl_on = ddb
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .ok()
        .and_then(|o| o.time_to_live_description)
        .is_some_and(|d| {
            d.attribute_name.as_deref() == Some(t.ttl_attribute)
                && d.time_to_live_status
                    .is_some_and(|s| s.as_str() == "ENABLED")
        });
    if !ttl_on {
        ddb.update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(t.ttl_attribute)
                    .build()
                    .map_err(|e| err(what(), e))?,
            )
            .send()
            .await
            .map_err(|e| err(format!("TTL of table {table}"), e))?;
    }
    Ok(())
}

async fn create_bucket(
    clients: &Clients,
    spec: &Resources,
    bucket: &str,
    queue_arn: &str,
) -> Result<(), ProvisionError> {
    let s3 = &clients.s3;
    let b = &spec.bucket;
    let what = || format!("bucket {bucket}");
    match s3.create_bucket().bucket(bucket).send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error().is_some_and(|s| {
                s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
            }) => {}
        Err(e) => return Err(err(what(), e)),
    }
    let mut rule = CorsRule::builder()
        .allowed_methods("PUT")
        .allowed_methods("GET")
        .allowed_methods("HEAD")
        .allowed_origins("*")
        .allowed_headers("*")
        .max_age_seconds(3000);
    for h in &b.cors_expose_headers {
        rule = rule.expose_headers(*h);
    }
    s3.put_bucket_cors()
        .bucket(bucket)
        .cors_configuration(
            CorsConfiguration::builder()
                .cors_rules(rule.build().map_err(|e| err(what(), e))?)
                .build()
                .map_err(|e| err(what(), e))?,
        )
        .send()
        .await
        .map_err(|e| err(format!("CORS of bucket {bucket}"), e))?;
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(
                    LifecycleRule::builder()
                        .id("abort-incomplete-multipart")
                        .status(ExpirationStatus::Enabled)
                        .filter(LifecycleRuleFilter::builder().prefix("").build())
                        .abort_incomplete_multipart_upload(
                            AbortIncompleteMultipartUpload::builder()
                                .days_after_initiation(b.abort_incomplete_multipart_days as i32)
                                .build(),
                        )
                        .build()
                        .map_err(|e| err(what(), e))?,
                )
                .build()
                .map_err(|e| err(what(), e))?,
        )
        .send()
        .await
        .map_err(|e| err(format!("lifecycle of bucket {bucket}"), e))?;
    let filter = S3KeyFilter::builder()
        .filter_rules(
            FilterRule::builder()
                .name(FilterRuleName::Prefix)
                .value(b.notify_prefix)
                .build(),
        )
        .filter_rules(
            FilterRule::builder()
                .name(FilterRuleName::Suffix)
                .value(b.notify_suffix)
                .build(),
        )
        .build();
    let qc = QueueConfiguration::builder()
        .id("uploads-to-planner")
        .queue_arn(queue_arn)
        .events(Event::from("s3:ObjectCreated:*"))
        .filter(
            NotificationConfigurationFilter::builder()
                .key(filter)
                .build(),
        )
        .build()
        .map_err(|e| err(what(), e))?;
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(qc)
                .build(),
        )
        .send()
        .await
        .map_err(|e| err(format!("notification of bucket {bucket}"), e))?;
    Ok(())
}
