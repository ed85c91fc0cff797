//! Why a model call failed, with a stable code and whether trying again later may help.
//!
//! The text of each variant (the service's message, the SDK's error chain) is for the log; a
//! caller is shown [`ModelError::code`] and [`ModelError::public_message`] only, so nothing of
//! the request, the prompt or the account leaks through an error.

/// A failed `converse` call.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The service refused for load (`ThrottlingException`, 429). Retryable after a delay: the
    /// caller backs off (the Bedrock adapter does not retry this itself).
    #[error("model call throttled: {0}")]
    Throttled(String),
    /// The service is down or failed (`ServiceUnavailableException`, `InternalServerException`,
    /// or the endpoint could not be reached). Retryable.
    #[error("model service unavailable: {0}")]
    ServiceUnavailable(String),
    /// The model is not ready to serve yet (`ModelNotReadyException`). Retryable.
    #[error("model not ready: {0}")]
    ModelNotReady(String),
    /// The request was refused as malformed (`ValidationException`: too long a conversation,
    /// a bad schema, a bad model id format) or failed the port's own checks. Not retryable.
    #[error("model request invalid: {0}")]
    Invalid(String),
    /// The caller's role may not invoke this model (`AccessDeniedException`).
    #[error("model access denied: {0}")]
    AccessDenied(String),
    /// No such model or inference profile in this region (`ResourceNotFoundException`).
    #[error("model not found: {0}")]
    NotFound(String),
    /// The model took longer than the service allows (`ModelTimeoutException`, 408).
    #[error("model timed out: {0}")]
    ModelTimeout(String),
    /// Anything else: the model failed (`ModelErrorException`), an unknown error code, an
    /// unreadable reply, or a reply with content the port does not model.
    #[error("model call failed: {0}")]
    Other(String),
}

impl ModelError {
    /// A stable, machine-readable code (for answers, metrics and tests).
    pub fn code(&self) -> &'static str {
        match self {
            ModelError::Throttled(_) => "model_throttled",
            ModelError::ServiceUnavailable(_) => "model_unavailable",
            ModelError::ModelNotReady(_) => "model_not_ready",
            ModelError::Invalid(_) => "model_request_invalid",
            ModelError::AccessDenied(_) => "model_access_denied",
            ModelError::NotFound(_) => "model_not_found",
            ModelError::ModelTimeout(_) => "model_timeout",
            ModelError::Other(_) => "model_error",
        }
    }

    /// Whether the same call may succeed later, unchanged.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            ModelError::Throttled(_)
                | ModelError::ServiceUnavailable(_)
                | ModelError::ModelNotReady(_)
        )
    }

    /// A message safe to show a caller: says what happened, carries no service text.
    pub fn public_message(&self) -> &'static str {
        match self {
            ModelError::Throttled(_) => "the model is at capacity; the request will be retried",
            ModelError::ServiceUnavailable(_) => {
                "the model service is unavailable; try again later"
            }
            ModelError::ModelNotReady(_) => "the model is starting; try again shortly",
            ModelError::Invalid(_) => "the model refused the request",
            ModelError::AccessDenied(_) => "this deployment may not use the configured model",
            ModelError::NotFound(_) => "the configured model does not exist in this region",
            ModelError::ModelTimeout(_) => "the model took too long to answer",
            ModelError::Other(_) => "the model call failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_only_capacity_errors_retry() {
        let all = [
            ModelError::Throttled("t".into()),
            ModelError::ServiceUnavailable("s".into()),
            ModelError::ModelNotReady("n".into()),
            ModelError::Invalid("secret prompt text".into()),
            ModelError::AccessDenied("arn:aws:iam::123456789012:role/x".into()),
            ModelError::NotFound("f".into()),
            ModelError::ModelTimeout("m".into()),
            ModelError::Other("o".into()),
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), all.len());
        let retryable: Vec<_> = all
            .iter()
            .filter(|e| e.retryable())
            .map(|e| e.code())
            .collect();
        assert_eq!(
            retryable,
            ["model_throttled", "model_unavailable", "model_not_ready"]
        );
        // The detail is in the log text (Display); callers get `public_message`.
        assert!(all[3].to_string().contains("secret prompt text"));
    }
}
