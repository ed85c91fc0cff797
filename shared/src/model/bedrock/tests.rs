//! Conversions to and from the Bedrock SDK types, and the retry classifier.

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
            ConverseError::AccessDeniedException(sdk_err::AccessDeniedException::builder().build()),
            "model_access_denied",
        ),
        (
            ConverseError::ResourceNotFoundException(
                sdk_err::ResourceNotFoundException::builder().build(),
            ),
            "model_not_found",
        ),
        (
            ConverseError::ModelTimeoutException(sdk_err::ModelTimeoutException::builder().build()),
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
