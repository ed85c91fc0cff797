//! Adapters from the domain to AWS: each takes an SDK client plus resource names and speaks
//! domain types. Errors keep the SDK detail for the log (`Display` of the source) while callers
//! map them to safe, coded messages.

pub mod connections;
pub mod jobs;
pub mod objects;
pub mod queue;
pub mod ranged;
pub mod rate;
pub mod sessions;
pub(crate) mod table;
pub mod workflows;

/// Export jobs' records (`store::ranged`).
pub mod exports {
    pub use super::ranged::{RangeCommit, RangeRecord};
    /// The export jobs adapter.
    pub type ExportStore = super::ranged::RangedStore<crate::export::job::ExportJob>;
}

pub use crate::ports::StoreError;

/// The partition key of a job and everything stored under it (chunks, exports, connections).
pub(crate) fn job_pk(id: &str) -> String {
    format!("JOB#{id}")
}

/// True when a DynamoDB request failed only because its condition did not hold.
pub(crate) fn is_conditional_failure<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

/// A conditional write's answer: `true` if it was applied, `false` if its condition did not
/// hold; any other failure is a service error of `op`.
pub(crate) fn applied<O, E, R>(
    res: Result<O, aws_sdk_dynamodb::error::SdkError<E, R>>,
    op: &'static str,
) -> Result<bool, StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match res {
        Ok(_) => Ok(true),
        Err(e) if is_conditional_failure(&e) => Ok(false),
        Err(e) => Err(StoreError::service(op, e)),
    }
}

impl StoreError {
    pub(crate) fn service<E>(op: &'static str, err: E) -> Self
    where
        E: std::error::Error + 'static,
    {
        // DisplayErrorContext prints the whole chain (service code, message, request id).
        let detail = aws_smithy_types::error::display::DisplayErrorContext(&err).to_string();
        if THROTTLING_CODES.iter().any(|c| detail.contains(c)) {
            StoreError::Busy { op, detail }
        } else {
            StoreError::Service { op, detail }
        }
    }
}

/// The error codes with which S3, DynamoDB and SQS refuse for load. Read from the error's text
/// (its code is in it) because `service` takes any error, including those with no metadata.
const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "SlowDown",
    "ServiceUnavailable",
    "RequestThrottled",
];

#[cfg(test)]
mod throttling_tests {
    use super::*;

    #[derive(Debug)]
    struct E(&'static str);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for E {}

    #[test]
    fn throttling_is_busy_and_the_rest_is_a_service_failure() {
        let busy = StoreError::service(
            "PutItem(job)",
            E("service error: ProvisionedThroughputExceededException: slow down"),
        );
        assert!(
            matches!(
                busy,
                StoreError::Busy {
                    op: "PutItem(job)",
                    ..
                }
            ),
            "{busy:?}"
        );
        let s3 = StoreError::service("PutObject", E("unhandled error (SlowDown)"));
        assert!(matches!(s3, StoreError::Busy { .. }));
        let other = StoreError::service("GetItem", E("ResourceNotFoundException: no table"));
        assert!(matches!(other, StoreError::Service { .. }));
    }
}
