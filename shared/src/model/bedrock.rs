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
mod tests {
    use super::*;
    use crate::model::InferenceConfig;
    use aws_sdk_bedrockruntime::types::error as sdk_err;
    use serde_json::json;

    fn request() -> ConverseRequest {
        ConverseRequest {
            model_id: "us.anthropic.claude-3-5-haiku-20241022-v1:0".into(),
            system: Some("Answer from the tools only.".into()),
            messages: vec![
                Message::user_text("How many rows?"),
                Message {
                    role: Role::Assistant,
                    content: vec![
                        ContentBlock::Text("Let me count.".into()),
                        ContentBlock::ToolUse(ToolUse {
                            tool_use_id: "tu-1".into(),
                            name: "run_query".into(),
                            input: json!({"aggregates": [{"count": null}], "limit": -1, "p": 0.5}),
                        }),
                    ],
                },
                Message::tool_results(vec![
                    ToolResult::ok_json("tu-1", json!({"rows": 42})),
                    ToolResult::ok_json("tu-2", json!([1, 2])),
                    ToolResult::error_text("tu-3", "unknown column"),
                ]),
            ],
            tools: vec![ToolSpec {
                name: "run_query".into(),
                description: "Runs a query.".into(),
                input_schema: json!({"type": "object", "required": ["aggregates"]}),
            }],
            tool_choice: Some(ToolChoice::Tool("run_query".into())),
            inference: InferenceConfig {
                max_tokens: 512,
                temperature: Some(0.0),
            },
        }
    }

    #[test]
    fn request_maps_to_sdk_shapes() {
        let r = SdkRequest::try_from(&request()).unwrap();
        assert_eq!(
            r.system,
            Some(vec![sdk::SystemContentBlock::Text(
                "Answer from the tools only.".into()
            )])
        );
        assert_eq!(r.inference.max_tokens, Some(512));
        assert_eq!(r.inference.temperature, Some(0.0));
        assert_eq!(r.messages.len(), 3);
        assert_eq!(r.messages[1].role, sdk::ConversationRole::Assistant);
        let sdk::ContentBlock::ToolUse(tu) = &r.messages[1].content[1] else {
            panic!("{:?}", r.messages[1])
        };
        assert_eq!(
            (tu.tool_use_id.as_str(), tu.name.as_str()),
            ("tu-1", "run_query")
        );
        assert_eq!(
            to_json(&tu.input),
            json!({"aggregates": [{"count": null}], "limit": -1, "p": 0.5})
        );
        let results: Vec<_> = r.messages[2]
            .content
            .iter()
            .map(|b| match b {
                sdk::ContentBlock::ToolResult(t) => t.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            results[0].content,
            vec![sdk::ToolResultContentBlock::Json(to_document(
                &json!({"rows": 42})
            ))]
        );
        assert_eq!(results[0].status, Some(sdk::ToolResultStatus::Success));
        // JSON that is not an object goes as text (Converse takes only objects as `json`).
        assert_eq!(
            results[1].content,
            vec![sdk::ToolResultContentBlock::Text("[1,2]".into())]
        );
        assert_eq!(results[2].status, Some(sdk::ToolResultStatus::Error));
        let tc = r.tool_config.unwrap();
        assert_eq!(
            tc.tool_choice,
            Some(sdk::ToolChoice::Tool(
                sdk::SpecificToolChoice::builder()
                    .name("run_query")
                    .build()
                    .unwrap()
            ))
        );
        let sdk::Tool::ToolSpec(spec) = &tc.tools[0] else {
            panic!("{tc:?}")
        };
        assert_eq!(
            spec.input_schema,
            Some(sdk::ToolInputSchema::Json(to_document(
                &json!({"type": "object", "required": ["aggregates"]})
            )))
        );
    }

    #[test]
    fn requests_the_service_would_refuse_are_refused_before_the_call() {
        let mut r = request();
        r.inference.max_tokens = 0;
        assert!(
            matches!(SdkRequest::try_from(&r), Err(ModelError::Invalid(m)) if m.contains("max_tokens"))
        );
        let mut r = request();
        r.inference.max_tokens = u32::MAX;
        assert!(matches!(
            SdkRequest::try_from(&r),
            Err(ModelError::Invalid(_))
        ));
        let mut r = request();
        r.tools.clear();
        assert!(
            matches!(SdkRequest::try_from(&r), Err(ModelError::Invalid(m)) if m.contains("tool choice"))
        );
        // No tools, no choice: no toolConfig at all (Converse refuses an empty tool list).
        r.tool_choice = None;
        assert!(SdkRequest::try_from(&r).unwrap().tool_config.is_none());
    }

    fn output(blocks: Vec<sdk::ContentBlock>, stop: sdk::StopReason) -> ConverseOutput {
        ConverseOutput::builder()
            .output(sdk::ConverseOutput::Message(
                sdk::Message::builder()
                    .role(sdk::ConversationRole::Assistant)
                    .set_content(Some(blocks))
                    .build()
                    .unwrap(),
            ))
            .stop_reason(stop)
            .usage(
                sdk::TokenUsage::builder()
                    .input_tokens(100)
                    .output_tokens(20)
                    .total_tokens(120)
                    .build()
                    .unwrap(),
            )
            .metrics(
                sdk::ConverseMetrics::builder()
                    .latency_ms(850)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn reply_maps_to_domain() {
        let out = output(
            vec![
                sdk::ContentBlock::Text("Counting.".into()),
                sdk::ContentBlock::ToolUse(
                    sdk::ToolUseBlock::builder()
                        .tool_use_id("tu-9")
                        .name("run_query")
                        .input(to_document(&json!({"limit": 10, "ratio": 1.5})))
                        .build()
                        .unwrap(),
                ),
            ],
            sdk::StopReason::ToolUse,
        );
        let reply = reply_from(out).unwrap();
        assert_eq!(reply.stop_reason, StopReason::ToolUse);
        assert_eq!(
            reply.usage,
            Usage {
                input_tokens: 100,
                output_tokens: 20,
                total_tokens: 120
            }
        );
        assert_eq!(reply.latency, Some(Duration::from_millis(850)));
        assert_eq!(reply.text(), "Counting.");
        let uses: Vec<_> = reply.tool_uses().collect();
        assert_eq!(
            uses,
            [&ToolUse {
                tool_use_id: "tu-9".into(),
                name: "run_query".into(),
                input: json!({"limit": 10, "ratio": 1.5})
            }]
        );
        // The assistant message goes back to the SDK unchanged.
        let back = to_sdk_message(&reply.to_message()).unwrap();
        let again = reply_from(output(back.content, sdk::StopReason::ToolUse)).unwrap();
        assert_eq!(again.content, reply.content);
    }

    #[test]
    fn stop_reasons_map_and_unknown_ones_are_kept() {
        let table = [
            (sdk::StopReason::EndTurn, StopReason::EndTurn),
            (sdk::StopReason::ToolUse, StopReason::ToolUse),
            (sdk::StopReason::MaxTokens, StopReason::MaxTokens),
            (sdk::StopReason::StopSequence, StopReason::StopSequence),
            (
                sdk::StopReason::GuardrailIntervened,
                StopReason::GuardrailIntervened,
            ),
            (
                sdk::StopReason::ContentFiltered,
                StopReason::ContentFiltered,
            ),
            (
                sdk::StopReason::ModelContextWindowExceeded,
                StopReason::Other("model_context_window_exceeded".into()),
            ),
            (
                sdk::StopReason::from("a_future_reason"),
                StopReason::Other("a_future_reason".into()),
            ),
        ];
        for (s, want) in table {
            assert_eq!(stop_reason_from(&s), want, "{s:?}");
        }
    }

    #[test]
    fn a_reply_with_unmodelled_content_is_refused_not_dropped() {
        let out = output(
            vec![
                sdk::ContentBlock::Text("x".into()),
                sdk::ContentBlock::CitationsContent(sdk::CitationsContentBlock::builder().build()),
            ],
            sdk::StopReason::EndTurn,
        );
        let err = reply_from(out).unwrap_err();
        assert!(
            matches!(&err, ModelError::Other(m) if m.contains("citationsContent")),
            "{err}"
        );
    }

    #[test]
    fn service_errors_are_classified_by_variant() {
        let table: Vec<(ConverseError, &str)> = vec![
            (
                ConverseError::ThrottlingException(
                    sdk_err::ThrottlingException::builder()
                        .message("slow down")
                        .build(),
                ),
                "model_throttled",
            ),
            (
                ConverseError::ServiceUnavailableException(
                    sdk_err::ServiceUnavailableException::builder().build(),
                ),
                "model_unavailable",
            ),
            (
                ConverseError::InternalServerException(
                    sdk_err::InternalServerException::builder().build(),
                ),
                "model_unavailable",
            ),
            (
                ConverseError::ModelNotReadyException(
                    sdk_err::ModelNotReadyException::builder().build(),
                ),
                "model_not_ready",
            ),
            (
                ConverseError::ValidationException(
                    sdk_err::ValidationException::builder()
                        .message("messages.0: too long")
                        .build(),
                ),
                "model_request_invalid",
            ),
            (
                ConverseError::AccessDeniedException(
                    sdk_err::AccessDeniedException::builder().build(),
                ),
                "model_access_denied",
            ),
            (
                ConverseError::ResourceNotFoundException(
                    sdk_err::ResourceNotFoundException::builder().build(),
                ),
                "model_not_found",
            ),
            (
                ConverseError::ModelTimeoutException(
                    sdk_err::ModelTimeoutException::builder().build(),
                ),
                "model_timeout",
            ),
            (
                ConverseError::ModelErrorException(sdk_err::ModelErrorException::builder().build()),
                "model_error",
            ),
            (ConverseError::unhandled("something new"), "model_error"),
        ];
        for (e, code) in table {
            assert_eq!(from_service_error(&e).code(), code, "{e:?}");
        }
        let e = from_service_error(&ConverseError::ValidationException(
            sdk_err::ValidationException::builder()
                .message("messages.0: too long")
                .build(),
        ));
        // The service's message is kept for the log.
        assert!(e.to_string().contains("messages.0: too long"), "{e}");
    }
}
