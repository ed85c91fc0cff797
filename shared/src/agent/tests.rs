//! Pure unit tests of the agent's use cases over an in-memory model (a queue of replies): the
//! repair loop of rules from plain English, its fallbacks, and charts of results.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::{json, Value};
use tessera_engine::chunk::ChunkOptions;
use tessera_engine::file::{process_bytes, ProcessOptions};
use tessera_engine::profile::ProfileReport;

use super::chat::chart_of;
use super::limits::Gate;
use super::rules::generate;
use super::AgentLimits;
use crate::model::{
    ChatModel, ContentBlock, ConverseRequest, ModelError, ModelReply, StopReason, ToolUse, Usage,
};

/// Answers with the queued replies, in order, and records the requests.
#[derive(Default)]
struct Scripted {
    replies: Mutex<VecDeque<Result<ModelReply, ModelError>>>,
    seen: Mutex<Vec<ConverseRequest>>,
}

#[async_trait]
impl ChatModel for Scripted {
    async fn converse(&self, request: ConverseRequest) -> Result<ModelReply, ModelError> {
        self.seen.lock().unwrap().push(request);
        self.replies
            .lock()
            .unwrap()
            .pop_front()
            .expect("the test scripted fewer replies than were asked for")
    }
}

fn propose(rules: Value) -> Result<ModelReply, ModelError> {
    Ok(ModelReply {
        content: vec![ContentBlock::ToolUse(ToolUse {
            tool_use_id: "t1".into(),
            name: "propose_rules".into(),
            input: json!({"rules": rules, "reasons": [{"rule_id": "r1", "why": "because"}]}),
        })],
        stop_reason: StopReason::ToolUse,
        usage: Usage {
            input_tokens: 100,
            output_tokens: 20,
            total_tokens: 120,
        },
        latency: None,
    })
}

fn profile() -> ProfileReport {
    let mut csv = String::from("id,status,amount\n");
    for i in 0..50 {
        csv.push_str(&format!("{i},{},{}.5\n", ["open", "closed"][i % 2], i));
    }
    let opts = ProcessOptions {
        workers: 1,
        profile_only: true,
        chunk: ChunkOptions::default(),
        ..ProcessOptions::default()
    };
    process_bytes(csv.as_bytes(), &opts)
        .unwrap()
        .profile
        .report()
}

fn gate() -> Gate<'static> {
    Gate::new("alice", None, 0)
}

fn good() -> Value {
    json!({"version": 1, "rules": [{"id": "r1", "column": "amount", "check": {"range": {"min": 0, "max": 30}}}]})
}

#[tokio::test]
async fn a_valid_proposal_is_dry_run_on_the_sample() {
    let m = Scripted::default();
    m.replies.lock().unwrap().push_back(propose(good()));
    let p = profile();
    let a = generate(
        Some((&m, "model-x")),
        &gate(),
        &AgentLimits::default(),
        &p,
        "amounts up to 30",
        None,
        None,
    )
    .await;
    assert_eq!(a.source, "model");
    assert_eq!(a.repairs, 0);
    assert_eq!(a.rules, good());
    assert_eq!(a.reasons[0].why, "because");
    // Amounts 0.5 .. 49.5: 20 of the 50 rows are above 30.
    assert_eq!(a.dry_run.sample_rows, 50);
    assert_eq!(a.dry_run.rejected_rows, 20);
    assert_eq!(a.usage.total_tokens, 120);
    let req = &m.seen.lock().unwrap()[0];
    assert_eq!(req.tools.len(), 1);
    assert!(req.inference.max_tokens > 0);
}

#[tokio::test]
async fn problems_go_back_to_the_model_with_their_paths() {
    let m = Scripted::default();
    let bad = json!({"version": 1, "rules": [{"column": "amont", "check": "not_null"}]});
    m.replies.lock().unwrap().push_back(propose(bad));
    m.replies.lock().unwrap().push_back(propose(good()));
    let p = profile();
    let a = generate(
        Some((&m, "model-x")),
        &gate(),
        &AgentLimits::default(),
        &p,
        "x",
        None,
        None,
    )
    .await;
    assert_eq!((a.source, a.repairs), ("model", 1));
    let seen = m.seen.lock().unwrap();
    let last = seen[1].messages.last().unwrap();
    let ContentBlock::ToolResult(r) = &last.content[0] else {
        panic!("a tool result: {last:?}")
    };
    let text = serde_json::to_string(&r.content).unwrap();
    assert!(
        text.contains("/rules/0/column") && text.contains("amont"),
        "{text}"
    );
}

#[tokio::test]
async fn after_two_repairs_or_a_model_error_the_profile_answers() {
    let p = profile();
    let bad = json!({"version": 1, "rules": [{"column": "nope", "check": "not_null"}]});
    let m = Scripted::default();
    for _ in 0..3 {
        m.replies.lock().unwrap().push_back(propose(bad.clone()));
    }
    let a = generate(
        Some((&m, "model-x")),
        &gate(),
        &AgentLimits::default(),
        &p,
        "x",
        None,
        None,
    )
    .await;
    assert_eq!(a.source, "profile");
    assert_eq!(a.fallback.as_deref(), Some("model_rules_invalid"));
    assert_eq!(m.seen.lock().unwrap().len(), 3);
    assert_eq!(
        a.dry_run.rejected_rows, 0,
        "profile suggestions hold on their data"
    );

    let m = Scripted::default();
    m.replies
        .lock()
        .unwrap()
        .push_back(Err(ModelError::AccessDenied("no".into())));
    let a = generate(
        Some((&m, "model-x")),
        &gate(),
        &AgentLimits::default(),
        &p,
        "x",
        None,
        None,
    )
    .await;
    assert_eq!(a.fallback.as_deref(), Some("model_unavailable"));

    let a = generate(None, &gate(), &AgentLimits::default(), &p, "x", None, None).await;
    assert_eq!((a.source, a.fallback), ("profile", None));
}

#[test]
fn charts_only_where_a_picture_helps() {
    let by_region = json!({"columns": ["region", "count"], "rows": [["a", 3], ["b", 5]]});
    let c = chart_of(&by_region, 1).unwrap();
    assert_eq!(
        (c.kind.as_str(), c.x.as_str(), c.y.as_str()),
        ("bar", "region", "count")
    );
    assert_eq!(c.points.len(), 2);
    let by_month = json!({"columns": ["month(ts)", "sum(x)"],
        "rows": [["2026-01-01T00:00:00Z", "1.5"], ["2026-02-01T00:00:00Z", "2"]]});
    assert_eq!(chart_of(&by_month, 1).unwrap().kind, "line");
    let one_row = json!({"columns": ["count"], "rows": [[3]]});
    assert!(chart_of(&one_row, 0).is_none());
    let text = json!({"columns": ["k", "top(x)"], "rows": [["a", [{"value": "v"}]], ["b", []]]});
    assert!(chart_of(&text, 1).is_none());
}
