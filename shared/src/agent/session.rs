//! A session's records: the session (its job, owner, totals) and its messages (the user's
//! text, the tool calls made for it with their inputs and results, the answer, and the turn's
//! conversation with the model, kept so a turn that waits for a query job or for model
//! capacity resumes where it stopped).
//!
//! Not here: storage (`store::sessions`), the loop (`agent::chat`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::JobError;
use crate::model::{Message, ToolResult, Usage};

/// A conversation about one job's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub session_id: String,
    pub job_id: String,
    pub owner: String,
    pub created_at: String,
    pub updated_at: String,
    /// Messages asked so far (the counter message numbers come from).
    #[serde(default)]
    pub messages: u32,
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    /// Estimated cost of the session's model calls, in millionths of a US dollar.
    #[serde(default)]
    pub cost_micro_usd: u64,
    /// The job's expiry: a session goes with its job.
    pub expires_at: i64,
}

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    Queued,
    Running,
    /// A tool started a query job; the turn resumes when it ends.
    WaitingForQuery,
    /// The model's capacity (rate buckets, or the service throttled): the turn is back on the
    /// queue with a delay.
    WaitingForModelCapacity,
    Answered,
    Failed,
}

impl MessageState {
    pub fn is_final(self) -> bool {
        matches!(self, MessageState::Answered | MessageState::Failed)
    }
}

/// A state a message entered, and when (RFC 3339).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateMark {
    pub state: MessageState,
    pub at: String,
}

/// At most this many marks are kept (a turn that waits for capacity many times keeps its first
/// marks and its last).
const MAX_MARKS: usize = 32;

/// One tool call, as the conversation shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub tool: String,
    pub input: Value,
    /// `ok` or `error`.
    pub status: String,
    /// What the tool answered (compact: a query's result rows are cut).
    pub result: Value,
}

/// A chart of a result, where a picture helps: the first aggregate over the first key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartSpec {
    /// `bar` (categories) or `line` (a date or time key).
    pub kind: String,
    pub x: String,
    pub y: String,
    /// `[x, y]` pairs, in the result's order.
    pub points: Vec<(Value, Value)>,
}

/// The answer to a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub text: String,
    /// The last query result the answer rests on (`columns`, `rows`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<ChartSpec>,
    /// The turn stopped at a bound (`tool_calls`, `tokens`, `max_tokens`) before the model
    /// finished: this is the best answer with what was found so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<String>,
}

/// A query job a tool call waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingQuery {
    pub tool_use_id: String,
    /// The query document (as the model wrote it, validated).
    pub query: Value,
    pub query_id: String,
    /// Results of the other tool calls of the same model reply, held until this one is done.
    #[serde(default)]
    pub held_results: Vec<ToolResult>,
}

/// One message of a session and everything done for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub session_id: String,
    /// 1, 2, ... within the session.
    pub number: u32,
    pub job_id: String,
    pub owner: String,
    pub state: MessageState,
    /// The states the message went through, in order (what a page polling every half second
    /// would miss: a query job that ran between two polls).
    #[serde(default)]
    pub states: Vec<StateMark>,
    /// The user's text.
    pub text: String,
    #[serde(default)]
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// The turn's conversation with the model (to resume it); kept in S3 instead when large
    /// (`transcript_key`).
    #[serde(default)]
    pub transcript: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingQuery>,
    #[serde(default)]
    pub usage: Usage,
    #[serde(default)]
    pub model_calls: u32,
    #[serde(default)]
    pub tool_calls: u32,
    /// Estimated cost of this message's model calls, in millionths of a US dollar.
    #[serde(default)]
    pub cost_micro_usd: u64,
    /// Throttles met so far (the backoff grows with them).
    #[serde(default)]
    pub throttles: u32,
    /// The last query result (for the answer's table and chart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
    pub expires_at: i64,
}

impl ChatMessage {
    /// Moves the message to `state`, marking the change in `states`.
    pub fn enter(&mut self, state: MessageState) {
        self.state = state;
        if self.states.last().map(|m| m.state) == Some(state) {
            return;
        }
        if self.states.len() >= MAX_MARKS {
            self.states.remove(MAX_MARKS / 2);
        }
        self.states.push(StateMark {
            state,
            at: crate::job::now_rfc3339(),
        });
    }
}

/// The agent queue's message: work on message `number` of session `session_id` (a new
/// message, a continuation after a query job, or a retry after throttling).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentTask {
    pub kind: String,
    pub session_id: String,
    pub number: u32,
}

impl AgentTask {
    pub const KIND: &'static str = "agent_message";

    pub fn new(session_id: &str, number: u32) -> Self {
        AgentTask {
            kind: Self::KIND.into(),
            session_id: session_id.to_string(),
            number,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> ChatMessage {
        serde_json::from_value(serde_json::json!({
            "session_id": "s", "number": 1, "job_id": "j", "owner": "o", "state": "queued",
            "text": "t", "created_at": "", "updated_at": "", "expires_at": 0
        }))
        .unwrap()
    }

    #[test]
    fn states_are_marked_once_per_change_and_bounded() {
        let mut m = message();
        assert!(m.states.is_empty(), "an old record without marks reads");
        m.enter(MessageState::Queued);
        m.enter(MessageState::Running);
        m.enter(MessageState::Running);
        m.enter(MessageState::WaitingForQuery);
        m.enter(MessageState::Running);
        let path: Vec<_> = m.states.iter().map(|s| s.state).collect();
        use MessageState::*;
        assert_eq!(path, [Queued, Running, WaitingForQuery, Running]);
        for _ in 0..100 {
            m.enter(WaitingForModelCapacity);
            m.enter(Running);
        }
        m.enter(Answered);
        assert_eq!(m.states.len(), MAX_MARKS);
        assert_eq!(m.states[0].state, Queued, "the first marks stay");
        assert_eq!(m.states.last().unwrap().state, Answered, "the last one too");
        assert_eq!(m.state, Answered);
    }
}
