//! The language-model port: one narrow trait, [`ChatModel`], with one call, `converse`, over
//! domain types that know nothing of the AWS SDK. The agent's use cases (rules from plain
//! English, questions answered with tools) hold an `Arc<dyn ChatModel>` and run their tool-use
//! loops over it; [`bedrock::BedrockModel`] implements it with Bedrock Runtime's Converse API.
//!
//! The shapes follow Converse's conversation model because every model worth calling speaks
//! it: a system prompt, alternating user/assistant messages whose content is text, tool uses
//! (the model asks for a tool with a JSON input) and tool results (the caller's answer, JSON or
//! text, ok or error), the tools on offer with their input JSON Schemas, and inference limits
//! with `max_tokens` always set (an unbounded answer is never asked for).
//!
//! Not here: the tool-use loop, its bounds, prompts, the rate limiter or cost accounting (the
//! agent's use cases, which call this port); streaming (`ConverseStream`); images, documents,
//! guardrails, caching and reasoning blocks (no use case needs them yet: an adapter refuses a
//! reply that carries one rather than dropping it).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod bedrock;
mod document;
mod error;

pub use error::ModelError;

/// A conversational model that can call tools.
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// One turn: the whole conversation so far in, the model's next message out.
    async fn converse(&self, request: ConverseRequest) -> Result<ModelReply, ModelError>;
}

/// Everything one `converse` call sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConverseRequest {
    /// A model id (`anthropic.claude-3-5-haiku-20241022-v1:0`), an inference profile id
    /// (`us.anthropic...`) or an ARN.
    pub model_id: String,
    /// The system prompt, if any.
    pub system: Option<String>,
    /// The conversation, oldest first; it starts with a user message and roles alternate.
    pub messages: Vec<Message>,
    /// Tools the model may ask for. A conversation that holds tool uses or results must keep
    /// offering its tools (the service refuses it otherwise).
    pub tools: Vec<ToolSpec>,
    /// How the model must choose among `tools`; `None` is the model's default (auto).
    pub tool_choice: Option<ToolChoice>,
    pub inference: InferenceConfig,
}

/// Inference limits. `max_tokens` is not optional: every call is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InferenceConfig {
    /// Most tokens the answer may have (at least 1).
    pub max_tokens: u32,
    /// Sampling temperature; `None` is the model's default.
    pub temperature: Option<f32>,
}

impl InferenceConfig {
    pub fn new(max_tokens: u32) -> Self {
        InferenceConfig {
            max_tokens,
            temperature: None,
        }
    }
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentBlock>,
}

impl Message {
    /// A user message of one text block.
    pub fn user_text(text: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: vec![ContentBlock::Text(text.into())],
        }
    }

    /// The user message that answers the model's tool uses.
    pub fn tool_results(results: Vec<ToolResult>) -> Self {
        Message {
            role: Role::User,
            content: results.into_iter().map(ContentBlock::ToolResult).collect(),
        }
    }
}

/// A piece of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum ContentBlock {
    Text(String),
    ToolUse(ToolUse),
    ToolResult(ToolResult),
}

/// The model asks for a tool to be run with `input` (a JSON object the model wrote: check it
/// against the tool's schema before use, it may not conform).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolUse {
    /// Links the result to this request.
    pub tool_use_id: String,
    pub name: String,
    pub input: Value,
}

/// The caller's answer to a [`ToolUse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    pub tool_use_id: String,
    pub content: ToolResultContent,
    pub status: ToolStatus,
}

impl ToolResult {
    /// A successful result carrying JSON.
    pub fn ok_json(tool_use_id: impl Into<String>, value: Value) -> Self {
        ToolResult {
            tool_use_id: tool_use_id.into(),
            content: ToolResultContent::Json(value),
            status: ToolStatus::Ok,
        }
    }

    /// A failed tool use, explained to the model so it can correct its input.
    pub fn error_text(tool_use_id: impl Into<String>, text: impl Into<String>) -> Self {
        ToolResult {
            tool_use_id: tool_use_id.into(),
            content: ToolResultContent::Text(text.into()),
            status: ToolStatus::Error,
        }
    }
}

/// What a tool answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolResultContent {
    Json(Value),
    Text(String),
}

/// Whether the tool ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolStatus {
    Ok,
    Error,
}

/// A tool on offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// The input's JSON Schema (an object schema).
    pub input_schema: Value,
}

/// How the model must use the tools on offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// Answer with text or ask for any tool.
    Auto,
    /// Ask for at least one tool.
    Any,
    /// Ask for this tool.
    Tool(String),
}

/// The model's next message and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReply {
    /// The assistant message's content.
    pub content: Vec<ContentBlock>,
    pub stop_reason: StopReason,
    pub usage: Usage,
    /// The service's own measure of the call, when it gave one.
    pub latency: Option<Duration>,
}

impl ModelReply {
    /// The tools the model asked for, in order.
    pub fn tool_uses(&self) -> impl Iterator<Item = &ToolUse> {
        self.content.iter().filter_map(|b| match b {
            ContentBlock::ToolUse(t) => Some(t),
            _ => None,
        })
    }

    /// The text blocks, joined by a blank line.
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self
            .content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        texts.join("\n\n")
    }

    /// The reply as the assistant message to append to the conversation.
    pub fn to_message(&self) -> Message {
        Message {
            role: Role::Assistant,
            content: self.content.clone(),
        }
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// It finished its answer.
    EndTurn,
    /// It waits for the results of the tools it asked for.
    ToolUse,
    /// It reached `max_tokens`: the answer is cut.
    MaxTokens,
    StopSequence,
    GuardrailIntervened,
    ContentFiltered,
    /// Any other reason, as the service named it (e.g. `model_context_window_exceeded`).
    Other(String),
}

/// Tokens a call used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub total_tokens: u32,
}

#[cfg(test)]
mod serde_tests {
    use super::*;

    /// Conversations are stored (an agent turn that waits is saved and resumed): every block
    /// kind round-trips through JSON. A text block once could not be serialised at all.
    #[test]
    fn messages_round_trip_through_json() {
        let m = Message {
            role: Role::Assistant,
            content: vec![
                ContentBlock::Text("hello".into()),
                ContentBlock::ToolUse(ToolUse {
                    tool_use_id: "t1".into(),
                    name: "run_query".into(),
                    input: serde_json::json!({"query": {"version": 1}}),
                }),
                ContentBlock::ToolResult(ToolResult::error_text("t1", "bad")),
                ContentBlock::ToolResult(ToolResult::ok_json("t2", serde_json::json!({"a": 1}))),
            ],
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Message>(&text).unwrap(), m);
        let item: serde_dynamo::Item = serde_dynamo::to_item(&m).unwrap();
        assert_eq!(serde_dynamo::from_item::<_, Message>(item).unwrap(), m);
    }
}
