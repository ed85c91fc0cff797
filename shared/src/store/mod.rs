//! Adapters from the domain to AWS: each takes an SDK client plus resource names and speaks
//! domain types. Errors keep the SDK detail for the log (`Display` of the source) while callers
//! map them to safe, coded messages.

pub mod connections;
pub mod exports;
pub mod jobs;
pub mod objects;
pub mod queue;
pub(crate) mod table;
pub mod workflows;

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
        StoreError::Service {
            op,
            detail: aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
        }
    }
}
