//! The OpenAPI 3.1 document of the whole REST API (`docs/openapi.json`, served by the api
//! function at `GET /v1/openapi.json`): the routes of the api, status and agent functions as
//! template.yaml declares them, with their parameters, bodies and every status they answer.
//!
//! Made here, not at run time: the component schemas of the job snapshot, the rule document and
//! the query document are derived from their Rust types (schemars, the generator the engine
//! already uses for `docs/rules.schema.json` and `docs/query.schema.json`); the rest (bodies the
//! handlers build as JSON) is written below, beside the route table. The committed file is
//! checked against [`document`] by `infra/tests/openapi.rs`, which also checks the route table
//! against template.yaml; regenerate with
//! `TESSERA_WRITE_SCHEMA=1 cargo test -p tessera-infra --test openapi`. How it is tested with
//! schemathesis: docs/openapi.md.

mod ops;
mod schemas;

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};
use tessera_shared::engine::query::QueryDocument;
use tessera_shared::engine::rules::RuleDocument;
use tessera_shared::job::{JobSnapshot, JobState, Progress};

use ops::{operations, responses};
use schemas::written_schemas;

/// Where the document is served.
pub const PATH: &str = "/v1/openapi.json";

pub(crate) fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

pub(crate) fn response_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{name}") })
}

/// A JSON answer with `schema`.
pub(crate) fn answer(description: &str, schema: Value) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": schema } }
    })
}

/// An answer with a `Location` header (202s and 201s that point at a status URL).
pub(crate) fn answer_at(description: &str, schema: Value) -> Value {
    let mut a = answer(description, schema);
    a["headers"] = json!({ "Location": {
        "description": "Where to follow the resource.",
        "schema": { "type": "string" }
    }});
    a
}

pub(crate) fn string() -> Value {
    json!({ "type": "string" })
}

pub(crate) fn nullable_string() -> Value {
    json!({ "type": ["string", "null"] })
}

pub(crate) fn count() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

pub(crate) fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties })
}

/// A request body object that refuses unknown fields (`#[serde(deny_unknown_fields)]`).
pub(crate) fn closed_object(required: &[&str], properties: Value) -> Value {
    let mut o = object(required, properties);
    o["additionalProperties"] = json!(false);
    o
}

pub(crate) fn path_param(name: &str, description: &str) -> Value {
    json!({
        "name": name, "in": "path", "required": true,
        "description": description, "schema": { "type": "string" }
    })
}

pub(crate) fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

pub(crate) fn json_body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

/// The whole document.
pub fn document() -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    for root in [
        generator.subschema_for::<JobSnapshot>(),
        generator.subschema_for::<JobState>(),
        generator.subschema_for::<Progress>(),
        generator.subschema_for::<RuleDocument>(),
        generator.subschema_for::<QueryDocument>(),
    ] {
        debug_assert!(root.get("$ref").is_some(), "a named schema: {root:?}");
    }
    let mut schemas = generator.take_definitions(true);
    for (name, schema) in written_schemas().as_object().expect("an object").clone() {
        let clash = schemas.insert(name.clone(), schema);
        assert!(clash.is_none(), "schema {name} is both derived and written");
    }
    let schemas: Map<String, Value> = {
        let mut v: Vec<_> = schemas.into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.into_iter().collect()
    };
    let mut paths = Map::new();
    for op in operations() {
        let item = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        item[op.method] = op.to_json();
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Tessera",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The REST API of Tessera, a serverless CSV backend: uploads, jobs, exports, queries, workflows, reference files and the agent. Every route but /v1/health and /v1/openapi.json needs `Authorization: Bearer <JWT>`. Errors are `{\"error\": {\"code\", \"message\", \"request_id\", \"details\"?}}`. Made by tessera-infra's openapi module (docs/openapi.md).",
        },
        "servers": [{ "url": "http://127.0.0.1:3000", "description": "`tessera up`" }],
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "API Gateway's JWT authorizer (locally: `tessera token`)." },
            },
            "responses": responses(),
            "schemas": schemas,
        },
    })
}

/// The operations as `METHOD /path` (template.yaml's spelling, greedy `{key+}` as `{key}`).
pub fn routes() -> Vec<String> {
    let mut r: Vec<String> = operations()
        .iter()
        .map(|o| format!("{} {}", o.method.to_uppercase(), o.path))
        .collect();
    r.sort();
    r
}

/// The routes that need no token.
pub fn public_routes() -> Vec<String> {
    let mut r: Vec<String> = operations()
        .iter()
        .filter(|o| o.public)
        .map(|o| format!("{} {}", o.method.to_uppercase(), o.path))
        .collect();
    r.sort();
    r
}
