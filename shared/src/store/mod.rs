//! Adapters from the domain to AWS: each takes an SDK client plus resource names and speaks
//! domain types. Errors keep the SDK detail for the log (`Display` of the source) while callers
//! map them to safe, coded messages.

pub mod connections;
pub mod exports;
pub mod jobs;
pub mod objects;
pub mod queue;
pub mod workflows;

/// A failure talking to an AWS service. The text is for logs, never for callers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} failed: {detail}")]
    Service { op: &'static str, detail: String },
    #[error("stored item is malformed ({what}): {detail}")]
    Malformed { what: &'static str, detail: String },
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
