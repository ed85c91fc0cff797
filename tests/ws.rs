//! Live status over the local WebSocket API, end to end: a real WebSocket client against the
//! local gateway, the status function's routes, the jobs table's stream read from the emulator
//! by the stream poller, and pushes through the `@connections` management endpoint.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_e2e::*;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn ws_url(stack: &LocalStack, token: Option<&str>) -> String {
    let base = stack.http_url.replacen("http://", "ws://", 1);
    match token {
        Some(t) => format!("{base}/v1/ws?token={t}"),
        None => format!("{base}/v1/ws"),
    }
}

async fn connect(stack: &LocalStack, sub: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(ws_url(stack, Some(&stack.token(sub))))
        .await
        .expect("WebSocket connect with a valid token");
    ws
}

/// The next text message as JSON; panics after `timeout`.
async fn next_json(ws: &mut Ws, timeout: Duration) -> Value {
    loop {
        let msg = tokio::time::timeout(timeout, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no WebSocket message within {timeout:?}"))
            .expect("the connection is open")
            .expect("a WebSocket message");
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).expect("messages are JSON"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected message {other:?}"),
        }
    }
}

async fn send(ws: &mut Ws, text: String) {
    ws.send(Message::Text(text.into())).await.expect("send");
}

async fn subscribe(ws: &mut Ws, job: &str) {
    send(
        ws,
        json!({ "action": "subscribe", "job_id": job }).to_string(),
    )
    .await;
}

fn refused_with(
    res: Result<(Ws, tungstenite::handshake::client::Response), tungstenite::Error>,
) -> u16 {
    match res {
        Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("the connection was accepted"),
    }
}

fn small_csv(rows: usize) -> Vec<u8> {
    let mut out = b"id,name,amount\n".to_vec();
    for i in 0..rows {
        out.extend_from_slice(format!("{i},name {i},{}.{:02}\n", i * 3, i % 100).as_bytes());
    }
    out
}

#[tokio::test]
async fn connect_needs_a_valid_token() {
    let stack = stack().await;
    assert_eq!(
        refused_with(tokio_tungstenite::connect_async(ws_url(&stack, None)).await),
        401
    );
    let other = tessera_infra::auth::JwtKey::random().mint("alice", Duration::from_secs(60));
    for bad in [other.as_str(), "garbage"] {
        assert_eq!(
            refused_with(tokio_tungstenite::connect_async(ws_url(&stack, Some(bad))).await),
            401,
            "token {bad}"
        );
    }
    let mut ws = connect(&stack, "alice").await;
    ws.close(None).await.unwrap();
    stack.shutdown().await;
}

#[tokio::test]
async fn errors_are_messages_and_the_connection_stays_usable() {
    let stack = stack().await;
    let alice = Client::new(&stack, "alice");
    let bob = Client::new(&stack, "bob");
    let data = small_csv(50);
    let alice_job = alice.upload("a.csv", data.len() as u64, data.clone()).await;
    let bob_job = bob.upload("b.csv", data.len() as u64, data).await;
    let t = Duration::from_secs(10);

    let mut ws = connect(&stack, "bob").await;
    // Another owner's job is not found (not forbidden), like GET /v1/jobs/{id}.
    subscribe(&mut ws, &alice_job).await;
    let m = next_json(&mut ws, t).await;
    assert_eq!(
        (m["type"].as_str(), m["code"].as_str()),
        (Some("error"), Some("not_found")),
        "{m}"
    );
    assert!(m["message"].as_str().is_some_and(|s| !s.is_empty()), "{m}");
    subscribe(&mut ws, "not-a-job").await;
    assert_eq!(next_json(&mut ws, t).await["code"], "not_found");

    send(&mut ws, "{not json".into()).await;
    assert_eq!(next_json(&mut ws, t).await["code"], "bad_message");
    send(&mut ws, json!({ "action": "subscribe" }).to_string()).await;
    assert_eq!(next_json(&mut ws, t).await["code"], "bad_message");
    send(
        &mut ws,
        json!({ "action": "dance", "job_id": bob_job }).to_string(),
    )
    .await;
    assert_eq!(next_json(&mut ws, t).await["code"], "unknown_action");
    let big = json!({ "action": "subscribe", "job_id": bob_job, "pad": "x".repeat(40 * 1024) });
    send(&mut ws, big.to_string()).await;
    let m = next_json(&mut ws, t).await;
    assert_eq!(m["code"], "message_too_large", "{m}");

    // Still usable: a valid subscribe gets `subscribed`, then the current snapshot at once.
    subscribe(&mut ws, &bob_job).await;
    let m = next_json(&mut ws, t).await;
    assert_eq!(m, json!({ "type": "subscribed", "job_id": bob_job }));
    let m = next_json(&mut ws, t).await;
    assert!(
        m["type"].as_str().is_some_and(|s| s.starts_with("job.")),
        "{m}"
    );
    assert_eq!(m["job"]["job_id"], bob_job);
    let polled = bob.get(&format!("/v1/jobs/{bob_job}")).await.body;
    assert_eq!(
        m["job"]["filename"], polled["filename"],
        "the same snapshot as GET"
    );

    send(
        &mut ws,
        json!({ "action": "unsubscribe", "job_id": bob_job }).to_string(),
    )
    .await;
    // The job is still running: its pushes may come before the reply.
    let m = loop {
        let m = next_json(&mut ws, t).await;
        if !m["type"].as_str().is_some_and(|s| s.starts_with("job.")) {
            break m;
        }
    };
    assert_eq!(m["type"], "unsubscribed", "{m}");
    ws.close(None).await.unwrap();
    stack.shutdown().await;
}

#[tokio::test]
async fn pushes_follow_a_200_chunk_job_and_are_coalesced() {
    const CHUNK: u64 = 8 * 1024;
    let stack = stack_with(|o| {
        o.chunk_size = CHUNK;
        o.chunk_concurrency = 4;
    })
    .await;
    let alice = Client::new(&stack, "alice");
    // Just under 200 chunks' worth of bytes.
    let mut data = small_csv(0);
    let mut i = 0;
    while data.len() < (199 * CHUNK + CHUNK / 2) as usize {
        data.extend_from_slice(format!("{i},name {i},{}.{:02}\n", i * 7, i % 100).as_bytes());
        i += 1;
    }
    let expected_rows = reference_records(&data).len() as u64;
    let chunks = (data.len() as u64).div_ceil(CHUNK);
    assert_eq!(chunks, 200);

    let created = alice.create_upload("big.csv", data.len() as u64).await;
    let job = created["job_id"].as_str().unwrap().to_string();
    let mut ws = connect(&stack, "alice").await;
    subscribe(&mut ws, &job).await;
    assert_eq!(
        next_json(&mut ws, Duration::from_secs(10)).await["type"],
        "subscribed"
    );
    let first = next_json(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(first["job"]["state"], "awaiting_upload", "{first}");

    let started = Instant::now();
    let url = created["upload"]["url"].as_str().unwrap();
    let put = alice.http.put(url).body(data).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::OK);

    let mut progress = 0usize;
    let mut states = Vec::new();
    let mut last_done = 0u64;
    let last = loop {
        let m = next_json(&mut ws, Duration::from_secs(120)).await;
        let state = m["job"]["state"].as_str().unwrap_or("").to_string();
        if states.last() != Some(&state) {
            states.push(state.clone());
        }
        let done = m["job"]["progress"]["chunks_done"].as_u64().unwrap_or(0);
        assert!(done >= last_done, "progress never goes back: {m}");
        last_done = done;
        match m["type"].as_str() {
            Some("job.progress") => progress += 1,
            Some("job.completed") => break m,
            other => panic!("unexpected {other:?}: {m}"),
        }
    };
    let elapsed = started.elapsed();
    assert_eq!(last["job"]["rows"], expected_rows, "{last}");
    assert_eq!(last["job"]["progress"]["chunks_done"], 200);
    assert_eq!(last["job"]["state"], "completed");
    eprintln!(
        "200-chunk job: {} messages after the upload ({progress} job.progress + 1 job.completed) in {:.1} s; states seen {states:?}",
        progress + 1,
        elapsed.as_secs_f64()
    );
    // Coalescing: at most one progress push per 250 ms, plus the state changes (queued,
    // processing, finalizing) that are always pushed.
    let allowed = (elapsed.as_millis() / 250) as usize + 1 + 3;
    assert!(
        progress <= allowed,
        "{progress} progress messages in {elapsed:?}"
    );
    assert!(
        progress < 200,
        "{progress} progress messages for 200 chunks"
    );
    ws.close(None).await.unwrap();
    stack.shutdown().await;
}

async fn item(stack: &LocalStack, pk: &str, sk: &str) -> bool {
    stack
        .clients
        .dynamodb
        .get_item()
        .table_name(&stack.resources.table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
        .is_some()
}

async fn subscriber_ids(stack: &LocalStack, job: &str) -> Vec<String> {
    stack
        .clients
        .dynamodb
        .query()
        .table_name(&stack.resources.table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :s)")
        .expression_attribute_values(":pk", AttributeValue::S(format!("JOB#{job}")))
        .expression_attribute_values(":s", AttributeValue::S("SUB#".into()))
        .send()
        .await
        .expect("Query")
        .items
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.get("connection_id")?.as_s().ok().cloned())
        .collect()
}

#[tokio::test]
async fn a_gone_connection_is_removed_when_a_push_gets_410() {
    // API Gateway delivers $disconnect on a best-effort basis: without it, the push finds out.
    let stack = stack_with(|o| o.ws.deliver_disconnect = false).await;
    let alice = Client::new(&stack, "alice");
    let job = alice.create_upload("a.csv", 100).await["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ws = connect(&stack, "alice").await;
    subscribe(&mut ws, &job).await;
    assert_eq!(
        next_json(&mut ws, Duration::from_secs(10)).await["type"],
        "subscribed"
    );
    next_json(&mut ws, Duration::from_secs(10)).await;
    let subs = subscriber_ids(&stack, &job).await;
    assert_eq!(subs.len(), 1, "one subscription item");
    let conn = subs[0].clone();
    assert!(item(&stack, &format!("CONN#{conn}"), "META").await);

    // Abrupt close: drop the socket without a close frame.
    drop(ws);
    let until = Instant::now() + Duration::from_secs(10);
    while stack.ws.connection_count() > 0 {
        assert!(
            Instant::now() < until,
            "the gateway did not notice the closed socket"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No $disconnect reaches the function, so only a push can find out the socket is gone: a
    // push already in flight for this job may do so now, the cancel below does otherwise. Either
    // way the items can only disappear through a 410.

    // A job change: the push gets 410 and deletes the connection and its subscription.
    let a = alice
        .post_json(&format!("/v1/jobs/{job}/cancel"), &json!({}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let conn_left = item(&stack, &format!("CONN#{conn}"), "META").await;
        let subs_left = subscriber_ids(&stack, &job).await;
        if !conn_left && subs_left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < until,
            "connection items still there: conn {conn_left}, subs {subs_left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn disconnect_removes_the_connection_items() {
    let stack = stack().await;
    let alice = Client::new(&stack, "alice");
    let job = alice.create_upload("a.csv", 100).await["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ws = connect(&stack, "alice").await;
    subscribe(&mut ws, &job).await;
    assert_eq!(
        next_json(&mut ws, Duration::from_secs(10)).await["type"],
        "subscribed"
    );
    // The snapshot follows the subscription item.
    next_json(&mut ws, Duration::from_secs(10)).await;
    let conn = subscriber_ids(&stack, &job)
        .await
        .pop()
        .expect("subscribed");
    ws.close(None).await.unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while item(&stack, &format!("CONN#{conn}"), "META").await
        || !subscriber_ids(&stack, &job).await.is_empty()
    {
        assert!(
            Instant::now() < until,
            "$disconnect did not remove the items"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack.shutdown().await;
}

fn sample(name: &str) -> Value {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read sample")).expect(name)
}

/// The samples in events/ (for `cargo lambda invoke`) are handled by the status function's
/// WebSocket and stream entry points against the emulator.
#[tokio::test]
async fn websocket_and_stream_samples_are_handled() {
    use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
    let stack = stack().await;
    let st = tessera_status::ws::WsState::new(stack.config.clone(), &stack.clients);

    let connect: ApiGatewayWebsocketProxyRequest =
        serde_json::from_value(sample("status-ws-connect.json")).unwrap();
    let conn = connect.request_context.connection_id.clone().unwrap();
    assert_eq!(
        tessera_status::ws::handle(&st, connect).await.status_code,
        200
    );
    assert!(item(&stack, &format!("CONN#{conn}"), "META").await);

    // The sample's job does not exist here: the reply (not_found) goes to a connection the
    // local API does not know, so the 410 removes the connection, as in AWS.
    let subscribe: ApiGatewayWebsocketProxyRequest =
        serde_json::from_value(sample("status-ws-subscribe.json")).unwrap();
    assert_eq!(
        tessera_status::ws::handle(&st, subscribe).await.status_code,
        200
    );
    assert!(!item(&stack, &format!("CONN#{conn}"), "META").await);

    let ev: aws_lambda_events::dynamodb::Event =
        serde_json::from_value(sample("status-dynamodb-stream.json")).unwrap();
    let resp = tessera_status::stream::handle(&st, ev).await;
    assert!(resp.batch_item_failures.is_empty());
    stack.shutdown().await;
}

/// The next message about `job` (its `job_id` at the top or in `job`), skipping others.
async fn next_about(ws: &mut Ws, job: &str, t: Duration) -> Value {
    loop {
        let m = next_json(ws, t).await;
        if m["job_id"] == job || m["job"]["job_id"] == job {
            return m;
        }
    }
}

#[tokio::test]
async fn a_cancel_is_pushed_as_job_cancelled_and_unsubscribe_stops_pushes() {
    let stack = stack().await;
    let alice = Client::new(&stack, "alice");
    let new_job = |name: &'static str| {
        let alice = &alice;
        async move {
            alice.create_upload(name, 100).await["job_id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let (kept, dropped) = (new_job("a.csv").await, new_job("b.csv").await);
    let t = Duration::from_secs(10);
    let mut ws = connect(&stack, "alice").await;
    for job in [&kept, &dropped] {
        subscribe(&mut ws, job).await;
        // Stream pushes for the job subscribed first (its creation) may interleave with this
        // subscription's replies; they are legitimate, so skip messages about other jobs.
        let m = next_about(&mut ws, job, t).await;
        assert_eq!(m["type"], "subscribed", "{m}");
        let m = next_about(&mut ws, job, t).await;
        assert_eq!(m["job"]["job_id"], *job, "{m}");
    }
    send(
        &mut ws,
        json!({ "action": "unsubscribe", "job_id": dropped }).to_string(),
    )
    .await;
    // Pushes about the job (its creation, in flight) may come before the reply.
    let m = loop {
        let m = next_about(&mut ws, &dropped, t).await;
        if m["type"] != "job.progress" {
            break m;
        }
    };
    assert_eq!(m["type"], "unsubscribed", "{m}");

    for job in [&dropped, &kept] {
        let a = alice
            .post_json(&format!("/v1/jobs/{job}/cancel"), &json!({}))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    }
    // Only the job still subscribed is pushed, as job.cancelled; nothing more about the
    // unsubscribed one (progress pushes of `kept` from before the cancel may come first).
    let m = loop {
        let m = next_json(&mut ws, Duration::from_secs(20)).await;
        // A progress push already in flight when the unsubscribe landed may still arrive; the
        // cancellation, which happened after it, must not.
        assert!(
            m["job"]["job_id"] != *dropped || m["type"] == "job.progress",
            "push after unsubscribe: {m}"
        );
        if m["type"] != "job.progress" {
            break m;
        }
    };
    assert_eq!(m["type"], "job.cancelled", "{m}");
    assert_eq!(m["job"]["job_id"], kept);
    assert_eq!(m["job"]["state"], "cancelled");
    ws.close(None).await.unwrap();
    stack.shutdown().await;
}

/// A query job's progress and completion reach its job's subscribers; another owner's
/// connection cannot subscribe to the job, so it sees none of it.
#[tokio::test]
async fn a_query_job_is_pushed_to_its_job_subscribers() {
    let stack = stack_with(|o| {
        o.env.push(("TESSERA_QUERY_INLINE_MAX_BYTES", "0".into()));
        o.env.push(("TESSERA_QUERY_RANGE_SIZE", "4096".into()));
    })
    .await;
    let alice = Client::new(&stack, "alice");
    let data = small_csv(2_000);
    let job = alice.upload("q.csv", data.len() as u64, data).await;
    assert_eq!(
        alice.wait_final(&job, Duration::from_secs(60)).await["state"],
        "completed"
    );
    let mut ws = connect(&stack, "alice").await;
    subscribe(&mut ws, &job).await;
    // The subscription is acknowledged before anything else about the job.
    let ack = next_json(&mut ws, Duration::from_secs(10)).await;
    assert_ne!(ack["type"], "error", "{ack}");
    let mut bob = connect(&stack, "bob").await;
    subscribe(&mut bob, &job).await;
    assert_eq!(
        next_json(&mut bob, Duration::from_secs(10)).await["type"],
        "error"
    );

    let a = alice
        .post_json(
            &format!("/v1/jobs/{job}/queries"),
            &json!({"version": 1, "aggregates": [{"fn": "count"}]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.body);
    let qid = a.body["query_id"].as_str().unwrap().to_string();
    let until = Instant::now() + Duration::from_secs(60);
    let mut types = Vec::new();
    loop {
        let m = next_about(&mut ws, &job, Duration::from_secs(30)).await;
        let t = m["type"].as_str().unwrap_or("").to_string();
        if !t.starts_with("query.") {
            continue;
        }
        assert_eq!(m["query"]["query_id"], qid.as_str(), "{m}");
        types.push(t.clone());
        if t == "query.completed" {
            let g = alice.get(m["query"]["status_url"].as_str().unwrap()).await;
            assert_eq!(g.body["result"]["rows"], json!([[2000]]), "{:?}", g.body);
            break;
        }
        assert_ne!(t, "query.failed", "{m}");
        assert!(Instant::now() < until, "no query.completed: {types:?}");
    }
    assert!(types.len() >= 2, "progress before completion: {types:?}");
    // Nothing about alice's query reached bob.
    let quiet = tokio::time::timeout(Duration::from_millis(500), bob.next()).await;
    assert!(quiet.is_err(), "bob got {quiet:?}");
    stack.shutdown().await;
}
