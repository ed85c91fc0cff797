//! The OpenAPI document (docs/openapi.json, docs/openapi.md): the committed file is what
//! `tessera_infra::openapi::document` makes, its operations are exactly template.yaml's HTTP
//! routes (public ones included), and the api function serves it at `/v1/openapi.json` without a
//! token through the local gateway. Whether the running API answers as it says is schemathesis'
//! job (`.ci/schemathesis`).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::Value;
use serde_yaml::Value as Yaml;
use tessera_infra::openapi;
use tower::ServiceExt;

const WRITE_HINT: &str =
    "regenerate it with TESSERA_WRITE_SCHEMA=1 cargo test -p tessera-infra --test openapi";

fn committed_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
}

#[test]
fn committed_document_matches_the_generator() {
    let generated = serde_json::to_string_pretty(&openapi::document()).unwrap() + "\n";
    if std::env::var_os("TESSERA_WRITE_SCHEMA").is_some() {
        std::fs::write(committed_path(), &generated).unwrap();
    }
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date; {WRITE_HINT}"
    );
    // The api function embeds the file at build time: the served bytes are the committed ones.
    assert!(
        tessera_api::OPENAPI_JSON == committed,
        "the api function embeds another document; {WRITE_HINT}, then rebuild"
    );
}

/// Every `Method`/`Path` (and whether it has `Auth.Authorizer: NONE`) of the HttpApi events.
fn template_routes() -> (BTreeSet<String>, BTreeSet<String>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let t: Yaml = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (mut all, mut public) = (BTreeSet::new(), BTreeSet::new());
    for (_, res) in t["Resources"].as_mapping().unwrap() {
        let Some(events) = res["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (_, ev) in events {
            if ev["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let p = &ev["Properties"];
            let route = format!(
                "{} {}",
                p["Method"].as_str().unwrap(),
                p["Path"].as_str().unwrap().replace("+}", "}")
            );
            if p["Auth"]["Authorizer"].as_str() == Some("NONE") {
                public.insert(route.clone());
            }
            all.insert(route);
        }
    }
    (all, public)
}

#[test]
fn operations_are_exactly_the_template_routes() {
    let (all, public) = template_routes();
    let documented: BTreeSet<String> = openapi::routes().into_iter().collect();
    assert_eq!(
        documented, all,
        "the document and template.yaml disagree on the routes"
    );
    let open: BTreeSet<String> = openapi::public_routes().into_iter().collect();
    assert_eq!(
        open, public,
        "the document and template.yaml disagree on the public routes"
    );
    assert_eq!(
        open,
        BTreeSet::from([
            "GET /v1/health".to_string(),
            format!("GET {}", openapi::PATH)
        ])
    );
}

#[test]
fn every_operation_documents_its_statuses_and_every_reference_resolves() {
    let doc = openapi::document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in &refs {
        let pointer = r.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let statuses: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            assert!(
                statuses.iter().any(|s| s.starts_with('2')),
                "{method} {path}: no success answer"
            );
            // Load shedding and the gateway's payload limit can answer any route.
            for s in ["413", "503"] {
                assert!(
                    statuses.iter().any(|x| *x == s),
                    "{method} {path}: {s} missing"
                );
            }
            let public = op.get("security") == Some(&serde_json::json!([]));
            assert_eq!(
                statuses.iter().any(|x| *x == "401"),
                !public,
                "{method} {path}: 401 iff the route needs a token"
            );
        }
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// The gateway over the api, status and agent functions, with AWS clients towards nothing: only
/// for answers given before a handler reads a store.
async fn gateway_without_stores(key: tessera_infra::auth::JwtKey) -> axum::Router {
    let config = tessera_shared::config::Config::from_lookup(|k| match k {
        "TESSERA_BUCKET" => Some("b".into()),
        "TESSERA_JOBS_TABLE" => Some("t".into()),
        "TESSERA_CHUNK_QUEUE_URL" => Some("http://127.0.0.1:9/q".into()),
        "TESSERA_AWS_ENDPOINT" => Some("http://127.0.0.1:9".into()),
        _ => None,
    })
    .unwrap();
    let config = Arc::new(config);
    let clients = tessera_shared::aws::Clients::from_config(&config).await;
    let api = tessera_api::app(tessera_api::ApiState::new(config.clone(), &clients));
    let status = tessera_status::app(tessera_status::StatusState::new(config.clone(), &clients));
    let agent = tessera_agent::app(tessera_agent::AgentState::new(config, &clients));
    tessera_infra::gateway::router_with_agent(api, status, Some(agent), key)
}

#[tokio::test]
async fn the_api_serves_the_document_without_a_token() {
    let gw = gateway_without_stores(tessera_infra::auth::JwtKey::random()).await;
    let resp = gw
        .clone()
        .oneshot(Request::get(openapi::PATH).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE].to_str().unwrap(),
        "application/json"
    );
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let served: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        served == openapi::document(),
        "the served document is not the generated one; {WRITE_HINT}, then rebuild"
    );
    // Its neighbours still need a token.
    let resp = gw
        .oneshot(Request::get("/v1/jobs").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// Found by schemathesis: a query parameter given twice (`?limit=1&limit=1`) was axum's
/// plain-text 400, not the documented JSON error. Every route with a query string now answers
/// 400 `invalid_query_string` in the error shape.
#[tokio::test]
async fn a_repeated_query_parameter_is_a_coded_json_error_on_every_route_with_a_query() {
    let key = tessera_infra::auth::JwtKey::random();
    let token = key.mint("owner", std::time::Duration::from_secs(600));
    let gw = gateway_without_stores(key).await;
    for uri in [
        "/v1/jobs?state=queued&state=queued",
        "/v1/jobs?limit=1&limit=2",
        "/v1/references?limit=1&limit=1",
        "/v1/uploads/some-job/parts?from=1&from=2",
        "/v1/usage?day=2026-01-01&day=2026-01-02",
    ] {
        let resp = gw
            .clone()
            .oneshot(
                Request::get(uri)
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE].to_str().unwrap(),
            "application/json",
            "{uri}"
        );
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "invalid_query_string", "{uri}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("duplicate field"), "{uri}: {message}");
        assert!(body["error"]["request_id"].is_string(), "{uri}");
    }
}

/// Found by schemathesis (`negative_data_rejection`): `GET /v1/jobs?state=` and
/// `GET /v1/references?limit=` answer 200 (an empty value means "not given"), which the
/// document first called invalid. It now says so; an empty `limit` on `/v1/jobs` and an empty
/// `from` on `/v1/uploads/{job}/parts` stay invalid (422 / 400), as documented.
#[test]
fn empty_query_values_the_handlers_accept_are_documented() {
    let doc = openapi::document();
    let param = |path: &str, name: &str| -> Value {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} has no parameter {name}"))["schema"]
            .clone()
    };
    let allows_empty = |schema: &Value| {
        schema["anyOf"]
            .as_array()
            .is_some_and(|alts| alts.iter().any(|a| a["const"] == ""))
    };
    assert!(allows_empty(&param("/v1/jobs", "state")));
    assert!(allows_empty(&param("/v1/references", "limit")));
    assert!(!allows_empty(&param("/v1/jobs", "limit")));
    assert!(!allows_empty(&param("/v1/uploads/{job}/parts", "from")));
}
