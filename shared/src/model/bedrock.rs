//! [`ChatModel`] on Amazon Bedrock Runtime's Converse API (`aws-sdk-bedrockruntime`): domain
//! requests to SDK shapes, SDK replies and errors back to domain types.
//!
//! The client is built from the shared SDK configuration (region, credentials) with its own
//! endpoint: `TESSERA_BEDROCK_ENDPOINT` when set (a local Converse server), otherwise Bedrock
//! itself, never the AWS emulator's endpoint that the other clients use locally.
//!
//! Retry policy: the SDK's standard retries (3 attempts, exponential backoff with jitter) stay on
//! for transient failures (5xx, `ModelNotReadyException`, connection errors), but a
//! `ThrottlingException` is never retried by the SDK: it comes back at once as
//! [`ModelError::Throttled`], because the agent owns throttling (it settles its shared token
//! bucket and puts the message back on its queue with a delay instead of sleeping in a Lambda).
//!
//! Errors are classified by the SDK's typed `ConverseError` variants, never by message text.
//!
//! Not here: the conversation loop, prompts, limits (the agent's use cases); streaming.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_bedrockruntime::config::interceptors::InterceptorContext;
use aws_sdk_bedrockruntime::config::retry::{ClassifyRetry, RetryAction, RetryConfig};
use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_bedrockruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse::{ConverseError, ConverseOutput};
use aws_sdk_bedrockruntime::types as sdk;
use aws_sdk_bedrockruntime::Client;

use super::document::{to_document, to_json};
use super::{
    ChatModel, ContentBlock, ConverseRequest, Message, ModelError, ModelReply, Role, StopReason,
    ToolChoice, ToolResult, ToolResultContent, ToolSpec, ToolStatus, ToolUse, Usage,
};
use crate::config::Config;

/// The Bedrock Runtime adapter. Cheap to clone.
#[derive(Clone, Debug)]
pub struct BedrockModel {
    client: Client,
}

impl BedrockModel {
    /// Wraps a client built elsewhere (its retry policy is then the builder's business).
    pub fn new(client: Client) -> Self {
        BedrockModel { client }
    }

    /// The production client: the shared SDK configuration, the endpoint
    /// `cfg.bedrock_endpoint` (`None`: Bedrock's own endpoint for the region, even when the
    /// other clients talk to a local emulator), [`retry_policy`].
    pub fn from_config(sdk: &aws_config::SdkConfig, cfg: &Config) -> Self {
        let mut builder = aws_sdk_bedrockruntime::config::Builder::from(sdk);
        builder.set_endpoint_url(cfg.bedrock_endpoint.clone());
        Self::with_policy(builder, retry_policy())
    }

    /// A client for a Converse server on this machine (tests, a local run against a scripted
    /// model): static credentials, region `us-east-1`, `retry` (with the same rule that
    /// throttling is never retried by the SDK).
    pub fn local(endpoint: &str, retry: RetryConfig) -> Self {
        let builder = aws_sdk_bedrockruntime::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "local-access-key",
                "local-secret-key",
                None,
                None,
                "tessera-local",
            ))
            .endpoint_url(endpoint);
        Self::with_policy(builder, retry)
    }

    fn with_policy(builder: aws_sdk_bedrockruntime::config::Builder, retry: RetryConfig) -> Self {
        let conf = builder
            .retry_config(retry)
            .retry_classifier(ThrottlingIsTheCallersJob)
            .build();
        BedrockModel::new(Client::from_conf(conf))
    }
}

/// The SDK retry configuration of production clients: standard mode, 3 attempts.
pub fn retry_policy() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(3)
}

/// Forbids SDK retries of `ThrottlingException` (see the module docs); has no opinion on
/// anything else, so the standard classifiers decide.
#[derive(Debug)]
struct ThrottlingIsTheCallersJob;

impl ClassifyRetry for ThrottlingIsTheCallersJob {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let throttled = ctx
            .output_or_error()
            .and_then(|r| r.err())
            .and_then(|e| e.as_operation_error())
            .and_then(|e| e.downcast_ref::<ConverseError>())
            .is_some_and(|e| matches!(e, ConverseError::ThrottlingException(_)));
        if throttled {
            RetryAction::RetryForbidden
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "tessera: throttling is retried by the agent, not the SDK"
    }
}

#[async_trait]
impl ChatModel for BedrockModel {
    async fn converse(&self, request: ConverseRequest) -> Result<ModelReply, ModelError> {
        let parts = SdkRequest::try_from(&request)?;
        let out = self
            .client
            .converse()
            .model_id(&request.model_id)
            .set_system(parts.system)
            .set_messages(Some(parts.messages))
            .inference_config(parts.inference)
            .set_tool_config(parts.tool_config)
            .send()
            .await
            .map_err(from_sdk_error)?;
        reply_from(out)
    }
}

/// The SDK shapes of a request (everything but the model id).
#[derive(Debug)]
struct SdkRequest {
    system: Option<Vec<sdk::SystemContentBlock>>,
    messages: Vec<sdk::Message>,
    inference: sdk::InferenceConfiguration,
    tool_config: Option<sdk::ToolConfiguration>,
}

impl TryFrom<&ConverseRequest> for SdkRequest {
    type Error = ModelError;

    fn try_from(r: &ConverseRequest) -> Result<Self, ModelError> {
        let max_tokens = i32::try_from(r.inference.max_tokens)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                ModelError::Invalid(format!(
                    "max_tokens must be between 1 and {}, got {}",
                    i32::MAX,
                    r.inference.max_tokens
                ))
            })?;
        if r.tools.is_empty() && r.tool_choice.is_some() {
            return Err(ModelError::Invalid(
                "a tool choice needs tools to choose from".into(),
            ));
        }
        let tool_config = if r.tools.is_empty() {
            None
        } else {
            Some(tool_config(&r.tools, r.tool_choice.as_ref())?)
        };
        Ok(SdkRequest {
            system: r
                .system
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(|s| vec![sdk::SystemContentBlock::Text(s.clone())]),
            messages: r
                .messages
                .iter()
                .map(to_sdk_message)
                .collect::<Result<_, _>>()?,
            inference: sdk::InferenceConfiguration::builder()
                .max_tokens(max_tokens)
                .set_temperature(r.inference.temperature)
                .build(),
            tool_config,
        })
    }
}

fn built<T>(r: Result<T, aws_sdk_bedrockruntime::error::BuildError>) -> Result<T, ModelError> {
    r.map_err(|e| ModelError::Invalid(e.to_string()))
}

fn to_sdk_message(m: &Message) -> Result<sdk::Message, ModelError> {
    let content = m
        .content
        .iter()
        .map(to_sdk_block)
        .collect::<Result<Vec<_>, _>>()?;
    built(
        sdk::Message::builder()
            .role(match m.role {
                Role::User => sdk::ConversationRole::User,
                Role::Assistant => sdk::ConversationRole::Assistant,
            })
            .set_content(Some(content))
            .build(),
    )
}

fn to_sdk_block(b: &ContentBlock) -> Result<sdk::ContentBlock, ModelError> {
    Ok(match b {
        ContentBlock::Text(t) => sdk::ContentBlock::Text(t.clone()),
        ContentBlock::ToolUse(t) => sdk::ContentBlock::ToolUse(built(
            sdk::ToolUseBlock::builder()
                .tool_use_id(&t.tool_use_id)
                .name(&t.name)
                .input(to_document(&t.input))
                .build(),
        )?),
        ContentBlock::ToolResult(r) => sdk::ContentBlock::ToolResult(to_sdk_result(r)?),
    })
}

fn to_sdk_result(r: &ToolResult) -> Result<sdk::ToolResultBlock, ModelError> {
    let content = match &r.content {
        ToolResultContent::Json(v) if v.is_object() => {
            sdk::ToolResultContentBlock::Json(to_document(v))
        }
        // Converse takes only a JSON object as `json` content; other JSON goes as its text.
        ToolResultContent::Json(v) => sdk::ToolResultContentBlock::Text(v.to_string()),
        ToolResultContent::Text(t) => sdk::ToolResultContentBlock::Text(t.clone()),
    };
    built(
        sdk::ToolResultBlock::builder()
            .tool_use_id(&r.tool_use_id)
            .content(content)
            .status(match r.status {
                ToolStatus::Ok => sdk::ToolResultStatus::Success,
                ToolStatus::Error => sdk::ToolResultStatus::Error,
            })
            .build(),
    )
}

fn tool_config(
    tools: &[ToolSpec],
    choice: Option<&ToolChoice>,
) -> Result<sdk::ToolConfiguration, ModelError> {
    let tools = tools
        .iter()
        .map(|t| {
            built(
                sdk::ToolSpecification::builder()
                    .name(&t.name)
                    .description(&t.description)
                    .input_schema(sdk::ToolInputSchema::Json(to_document(&t.input_schema)))
                    .build(),
            )
            .map(sdk::Tool::ToolSpec)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let choice = match choice {
        None => None,
        Some(ToolChoice::Auto) => Some(sdk::ToolChoice::Auto(
            sdk::AutoToolChoice::builder().build(),
        )),
        Some(ToolChoice::Any) => Some(sdk::ToolChoice::Any(sdk::AnyToolChoice::builder().build())),
        Some(ToolChoice::Tool(name)) => Some(sdk::ToolChoice::Tool(built(
            sdk::SpecificToolChoice::builder().name(name).build(),
        )?)),
    };
    built(
        sdk::ToolConfiguration::builder()
            .set_tools(Some(tools))
            .set_tool_choice(choice)
            .build(),
    )
}

/// The domain reply of a Converse answer.
fn reply_from(out: ConverseOutput) -> Result<ModelReply, ModelError> {
    let Some(sdk::ConverseOutput::Message(message)) = out.output else {
        return Err(ModelError::Other("the reply carried no message".into()));
    };
    let content = message
        .content
        .into_iter()
        .map(block_from)
        .collect::<Result<Vec<_>, _>>()?;
    let usage = out.usage.map(|u| Usage {
        input_tokens: u32::try_from(u.input_tokens).unwrap_or(0),
        output_tokens: u32::try_from(u.output_tokens).unwrap_or(0),
        total_tokens: u32::try_from(u.total_tokens).unwrap_or(0),
    });
    Ok(ModelReply {
        content,
        stop_reason: stop_reason_from(&out.stop_reason),
        usage: usage.unwrap_or_default(),
        // The SDK fills a missing `metrics` with 0 ms: no real call takes 0 ms.
        latency: out
            .metrics
            .and_then(|m| u64::try_from(m.latency_ms).ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis),
    })
}

fn block_from(b: sdk::ContentBlock) -> Result<ContentBlock, ModelError> {
    let kind = match b {
        sdk::ContentBlock::Text(t) => return Ok(ContentBlock::Text(t)),
        sdk::ContentBlock::ToolUse(t) => {
            return Ok(ContentBlock::ToolUse(ToolUse {
                input: to_json(&t.input),
                tool_use_id: t.tool_use_id,
                name: t.name,
            }))
        }
        sdk::ContentBlock::ReasoningContent(_) => "reasoningContent",
        sdk::ContentBlock::Image(_) => "image",
        sdk::ContentBlock::Document(_) => "document",
        sdk::ContentBlock::CitationsContent(_) => "citationsContent",
        sdk::ContentBlock::ToolResult(_) => "toolResult",
        _ => "another kind",
    };
    Err(ModelError::Other(format!(
        "the reply carried a content block the port does not model ({kind})"
    )))
}

fn stop_reason_from(s: &sdk::StopReason) -> StopReason {
    match s {
        sdk::StopReason::EndTurn => StopReason::EndTurn,
        sdk::StopReason::ToolUse => StopReason::ToolUse,
        sdk::StopReason::MaxTokens => StopReason::MaxTokens,
        sdk::StopReason::StopSequence => StopReason::StopSequence,
        sdk::StopReason::GuardrailIntervened => StopReason::GuardrailIntervened,
        sdk::StopReason::ContentFiltered => StopReason::ContentFiltered,
        other => StopReason::Other(other.as_str().to_string()),
    }
}

/// A failed call as a [`ModelError`]: service errors by their typed variant; a timeout or a
/// connection that failed is [`ModelError::ServiceUnavailable`]; the rest (an unreadable
/// reply, a request the SDK could not build) is [`ModelError::Other`].
fn from_sdk_error<R: Debug>(err: SdkError<ConverseError, R>) -> ModelError {
    match err {
        SdkError::ServiceError(ctx) => from_service_error(ctx.err()),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            ModelError::ServiceUnavailable(DisplayErrorContext(&err).to_string())
        }
        _ => ModelError::Other(DisplayErrorContext(&err).to_string()),
    }
}

fn from_service_error(e: &ConverseError) -> ModelError {
    // Display is the error type and the service's message (`ValidationException: ...`), but
    // only the code for an error type this SDK version does not know: add what is missing.
    let mut detail = e.to_string();
    if let Some(code) = e.code().filter(|c| !detail.contains(c)) {
        detail = format!("{code}: {detail}");
    }
    if let Some(message) = e.message().filter(|m| !detail.contains(m)) {
        detail = format!("{detail}: {message}");
    }
    match e {
        ConverseError::ThrottlingException(_) => ModelError::Throttled(detail),
        ConverseError::ServiceUnavailableException(_)
        | ConverseError::InternalServerException(_) => ModelError::ServiceUnavailable(detail),
        ConverseError::ModelNotReadyException(_) => ModelError::ModelNotReady(detail),
        ConverseError::ValidationException(_) => ModelError::Invalid(detail),
        ConverseError::AccessDeniedException(_) => ModelError::AccessDenied(detail),
        ConverseError::ResourceNotFoundException(_) => ModelError::NotFound(detail),
        ConverseError::ModelTimeoutException(_) => ModelError::ModelTimeout(detail),
        // ModelErrorException, codes this SDK version does not know.
        _ => ModelError::Other(detail),
    }
}

#[cfg(test)]
mod tests;
