//! The AWS resources Tessera needs, described once. The local runtime creates exactly these in
//! the emulator; `infra/tests/template.rs` checks that `template.yaml` declares the same names,
//! keys and settings, so local and AWS cannot drift apart.

/// A queue with its dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// Logical id in template.yaml.
    pub logical_id: &'static str,
    /// Name of the queue locally (in AWS the stack name is prefixed).
    pub name: &'static str,
    pub visibility_timeout_secs: u32,
    pub message_retention_secs: u32,
    pub receive_wait_secs: u32,
    pub dlq_logical_id: &'static str,
    pub dlq_name: &'static str,
    pub max_receive_count: u32,
    /// Batch size of the Lambda event-source mapping that consumes it.
    pub batch_size: u32,
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: &'static str,
    pub hash_key: &'static str,
    pub range_key: &'static str,
}

/// The jobs table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub logical_id: &'static str,
    pub name: &'static str,
    pub hash_key: &'static str,
    pub range_key: &'static str,
    pub indexes: Vec<IndexSpec>,
    pub ttl_attribute: &'static str,
    pub stream_view_type: &'static str,
}

/// The data bucket and its notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSpec {
    pub logical_id: &'static str,
    pub name: &'static str,
    /// Objects under this prefix with this suffix notify the upload-events queue.
    pub notify_prefix: &'static str,
    pub notify_suffix: &'static str,
    /// Days after which incomplete multipart uploads are aborted.
    pub abort_incomplete_multipart_days: u32,
    /// Headers the browser may read (CORS ExposeHeaders).
    pub cors_expose_headers: Vec<&'static str>,
}

/// Everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub bucket: BucketSpec,
    pub table: TableSpec,
    pub upload_events: QueueSpec,
    pub chunk_tasks: QueueSpec,
    /// The agent's tasks: conversation turns to answer, and continuations of turns that wait
    /// for a query job or for model capacity (sent with a delay).
    pub agent_tasks: QueueSpec,
}

/// The single description of Tessera's resources.
pub fn spec() -> Resources {
    Resources {
        bucket: BucketSpec {
            logical_id: "DataBucket",
            name: "tessera-local-data",
            notify_prefix: "uploads/",
            notify_suffix: "/source",
            abort_incomplete_multipart_days: 1,
            cors_expose_headers: vec!["ETag"],
        },
        table: TableSpec {
            logical_id: "JobsTable",
            name: "tessera-jobs",
            hash_key: "pk",
            range_key: "sk",
            indexes: vec![IndexSpec {
                name: tessera_shared::store::jobs::OWNER_INDEX,
                hash_key: "gsi1pk",
                range_key: "gsi1sk",
            }],
            ttl_attribute: "expires_at",
            stream_view_type: "NEW_AND_OLD_IMAGES",
        },
        upload_events: QueueSpec {
            logical_id: "UploadEventsQueue",
            name: "tessera-upload-events",
            // 6x the planner's 60 s timeout, as AWS recommends for SQS event sources.
            visibility_timeout_secs: 360,
            message_retention_secs: 1_209_600,
            receive_wait_secs: 20,
            dlq_logical_id: "UploadEventsDLQ",
            dlq_name: "tessera-upload-events-dlq",
            max_receive_count: 5,
            batch_size: 10,
        },
        chunk_tasks: QueueSpec {
            logical_id: "ChunkTasksQueue",
            name: "tessera-chunk-tasks",
            // 6x the chunk function's 300 s timeout.
            visibility_timeout_secs: 1800,
            message_retention_secs: 1_209_600,
            receive_wait_secs: 20,
            dlq_logical_id: "ChunkTasksDLQ",
            dlq_name: "tessera-chunk-tasks-dlq",
            max_receive_count: tessera_shared::pipeline::MAX_CHUNK_DELIVERIES,
            batch_size: 1,
        },
        agent_tasks: QueueSpec {
            logical_id: "AgentTasksQueue",
            name: "tessera-agent-tasks",
            // 6x the agent worker's 120 s timeout. It must also outlast the worker's 150 s lease
            // on a message: a redelivery that finds the lease still held is acknowledged (another
            // worker has the message), so an earlier one would drop the turn of a crashed worker.
            visibility_timeout_secs: 720,
            message_retention_secs: 1_209_600,
            receive_wait_secs: 20,
            dlq_logical_id: "AgentDeadLetterQueue",
            dlq_name: "tessera-agent-tasks-dlq",
            max_receive_count: 5,
            // One turn per invocation: a turn runs model calls and tools for up to the timeout.
            batch_size: 1,
        },
    }
}
