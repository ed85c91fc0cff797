//! The agent function wired into the local stack: its routes behind the gateway (JWT, owner),
//! its worker on the agent queue, and its model, the real Bedrock Runtime client talking to a
//! scripted Converse server (`tessera_infra::converse`). A rule request answered by the model
//! comes back with the model's document and its dry run over the job's sample; a question posted
//! to a session is answered by the worker from the agent queue and read back from the session.
//!
//! This proves the wiring (routes, queue, poller, model injection, configuration); the agent's
//! behaviour (tool loops, repairs, bounds, injection, limits) has its own tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_e2e::*;
use tessera_infra::converse::{ConverseServer, Step};
use tessera_infra::stack::AgentModelSource;
use tessera_shared::model::bedrock::{retry_policy, BedrockModel};
use tessera_shared::model::ChatModel;

/// An inference profile id: the form a deployment most often configures (and one with a `:`,
/// which the client must escape in the request path).
const MODEL_ID: &str = "us.anthropic.claude-3-5-haiku-20241022-v1:0";
const TIMEOUT: Duration = Duration::from_secs(180);

/// Eight people, one without a name.
const CSV: &[u8] = b"id,name,score\n1,alice,10\n2,bob,20\n3,,30\n4,dan,40\n5,erin,50\n6,frank,60\n7,grace,70\n8,heidi,80\n";

/// Polls `GET /v1/sessions/{id}` until message `n` is final; returns it. Panics with the last
/// session snapshot after [`TIMEOUT`].
async fn wait_message(c: &Client, session: &str, n: &Value) -> Value {
    let until = Instant::now() + TIMEOUT;
    loop {
        let a = c.get(&format!("/v1/sessions/{session}")).await;
        assert_eq!(a.status, StatusCode::OK, "GET session: {:?}", a.body);
        let m = a.body["messages"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| &m["message_id"] == n))
            .cloned()
            .unwrap_or_else(|| panic!("message {n} is not in the session: {}", a.body));
        if matches!(m["state"].as_str(), Some("answered" | "failed")) {
            return m;
        }
        assert!(
            Instant::now() < until,
            "message {n} not final after {TIMEOUT:?}: {}",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_and_sessions_reach_the_agent_and_its_model() {
    let model = ConverseServer::start()
        .await
        .expect("the scripted Converse server starts");
    // The production client and retry policy, pointed at the scripted server.
    let client: Arc<dyn ChatModel> = Arc::new(BedrockModel::local(model.url(), retry_policy()));
    let stack = stack_with(|o| {
        o.agent_model = Some(client);
        o.env.push(("TESSERA_MODEL_ID", MODEL_ID.into()));
    })
    .await;
    assert_eq!(
        stack.agent_model,
        AgentModelSource::Given {
            model_id: MODEL_ID.into()
        }
    );
    assert!(
        stack
            .config
            .agent_queue_url
            .as_deref()
            .is_some_and(|u| u == stack.resources.agent_tasks.url),
        "every function is configured with the agent queue: {:?}",
        stack.config.agent_queue_url
    );
    let c = Client::new(&stack, "agent-owner");
    let job = c.upload("people.csv", CSV.len() as u64, CSV.to_vec()).await;
    let done = c.wait_final(&job, TIMEOUT).await;
    assert_eq!(done["state"], "completed", "{done}");

    // Rules from plain English: the model proposes `not_null` on `name` through the tool.
    model.push(Step::tool_use(
        "propose_rules",
        json!({
            "rules": {"version": 1, "rules": [{"column": "name", "check": "not_null"}]},
            "reasons": [{"rule_id": "name_not_null", "why": "Every person has a name."}]
        }),
    ));
    let a = c
        .post_json(
            "/v1/rules/generate",
            &json!({"job_id": job, "prompt": "Every row needs a name."}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let b = &a.body;
    assert_eq!(b["source"], "model", "{b}");
    assert_eq!(b["job_id"], job.as_str());
    assert_eq!(
        b["rules"],
        json!({"version": 1, "rules": [{"column": "name", "check": "not_null"}]})
    );
    assert_eq!(b["reasons"][0]["rule_id"], "name_not_null", "{b}");
    // The dry run went through the engine over the profile's sample (all 8 rows of this file):
    // exactly the row without a name is rejected.
    assert_eq!(b["dry_run"]["sample_rows"], 8, "{b}");
    assert_eq!(b["dry_run"]["rejected_rows"], 1, "{b}");
    assert_eq!(b["dry_run"]["violations"]["name_not_null"], 1, "{b}");
    let asked = model.requests();
    assert_eq!(asked.len(), 1, "one model call, no repairs");
    assert_eq!(asked[0].model_id, MODEL_ID);
    assert!(asked[0].signed, "the real client signs its requests");
    assert_eq!(
        asked[0].body["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "propose_rules"
    );
    assert!(
        asked[0].body["inferenceConfig"]["maxTokens"].as_u64() > Some(0),
        "every call is bounded: {}",
        asked[0].body
    );

    // A session and a question: 202 at once, the answer from the worker on the agent queue.
    let s = c.post_json("/v1/sessions", &json!({"job_id": job})).await;
    assert_eq!(s.status, StatusCode::CREATED, "{:?}", s.body);
    let session = s.body["session_id"]
        .as_str()
        .expect("session_id")
        .to_string();
    let answer = "There are 8 people; one of them has no name.";
    model.push(Step::text(answer));
    let m = c
        .post_json(
            &format!("/v1/sessions/{session}/messages"),
            &json!({"text": "How many people are in the file?"}),
        )
        .await;
    assert_eq!(m.status, StatusCode::ACCEPTED, "{:?}", m.body);
    let n = m.body["message_id"].clone();
    assert!(n.is_u64(), "{:?}", m.body);
    let msg = wait_message(&c, &session, &n).await;
    assert_eq!(msg["state"], "answered", "{msg}");
    assert_eq!(msg["answer"]["text"], answer, "{msg}");
    assert_eq!(msg["text"], "How many people are in the file?");
    let asked = model.requests();
    assert_eq!(asked.len(), 2, "one more model call, by the worker");
    assert!(
        asked[1]
            .body
            .to_string()
            .contains("How many people are in the file?"),
        "the question reached the model: {}",
        asked[1].body
    );
    assert_eq!(model.pending(), 0);

    // The routes are the caller's: another owner's session is a 404, and no token is a 401
    // from the gateway before the agent runs.
    let other = Client::new(&stack, "someone-else");
    let a = other.get(&format!("/v1/sessions/{session}")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{:?}", a.body);
    let a = Client::anonymous(&stack)
        .post_json("/v1/sessions", &json!({"job_id": job}))
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{:?}", a.body);

    stack.shutdown().await;
}

/// Without a model the agent still answers rule requests, from the profile, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_model_rules_come_from_the_profile() {
    let stack = stack().await;
    assert_eq!(stack.agent_model, AgentModelSource::None);
    let c = Client::new(&stack, "agent-owner");
    let job = c.upload("people.csv", CSV.len() as u64, CSV.to_vec()).await;
    let done = c.wait_final(&job, TIMEOUT).await;
    assert_eq!(done["state"], "completed", "{done}");
    let a = c
        .post_json(
            "/v1/rules/generate",
            &json!({"job_id": job, "prompt": "Suggest checks."}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["source"], "profile", "{:?}", a.body);
    assert_eq!(a.body["dry_run"]["sample_rows"], 8, "{:?}", a.body);
    stack.shutdown().await;
}
