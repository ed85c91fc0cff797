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

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};
use tessera_shared::engine::query::QueryDocument;
use tessera_shared::engine::rules::RuleDocument;
use tessera_shared::job::{JobSnapshot, JobState, Progress};

/// Where the document is served.
pub const PATH: &str = "/v1/openapi.json";

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn response_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{name}") })
}

/// A JSON answer with `schema`.
fn answer(description: &str, schema: Value) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": schema } }
    })
}

/// An answer with a `Location` header (202s and 201s that point at a status URL).
fn answer_at(description: &str, schema: Value) -> Value {
    let mut a = answer(description, schema);
    a["headers"] = json!({ "Location": {
        "description": "Where to follow the resource.",
        "schema": { "type": "string" }
    }});
    a
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn nullable_string() -> Value {
    json!({ "type": ["string", "null"] })
}

fn count() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties })
}

/// A request body object that refuses unknown fields (`#[serde(deny_unknown_fields)]`).
fn closed_object(required: &[&str], properties: Value) -> Value {
    let mut o = object(required, properties);
    o["additionalProperties"] = json!(false);
    o
}

fn path_param(name: &str, description: &str) -> Value {
    json!({
        "name": name, "in": "path", "required": true,
        "description": description, "schema": { "type": "string" }
    })
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn json_body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

/// One operation: what every operation shares (401 unless public, 503 when a store is busy,
/// 413 over API Gateway's payload limit), its own answers, and for a JSON body the extractor's
/// answers (400 malformed, 415 not JSON, 422 wrong fields).
struct Op {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    public: bool,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Vec<(&'static str, Value)>,
}

impl Op {
    fn new(method: &'static str, path: &'static str, id: &'static str, tag: &'static str) -> Self {
        Op {
            method,
            path,
            id,
            tag,
            summary: "",
            public: false,
            params: Vec::new(),
            body: None,
            responses: Vec::new(),
        }
    }
    fn summary(mut self, s: &'static str) -> Self {
        self.summary = s;
        self
    }
    fn public(mut self) -> Self {
        self.public = true;
        self
    }
    fn param(mut self, p: Value) -> Self {
        self.params.push(p);
        self
    }
    fn body(mut self, schema: Value) -> Self {
        self.body = Some(json_body(schema));
        self
    }
    fn answers(mut self, status: &'static str, r: Value) -> Self {
        self.responses.push((status, r));
        self
    }

    fn to_json(&self) -> Value {
        let mut responses = Map::new();
        for (status, r) in &self.responses {
            responses.insert(status.to_string(), r.clone());
        }
        let mut shared = vec![("413", "PayloadTooLarge"), ("503", "Busy")];
        if !self.public {
            shared.push(("401", "Unauthorized"));
        }
        if self.body.is_some() {
            shared.extend([
                ("400", "BadRequest"),
                ("415", "UnsupportedMediaType"),
                ("422", "Unprocessable"),
            ]);
        }
        for (status, name) in shared {
            responses
                .entry(status.to_string())
                .or_insert_with(|| response_ref(name));
        }
        let mut responses: Vec<(String, Value)> = responses.into_iter().collect();
        responses.sort_by(|a, b| a.0.cmp(&b.0));
        let mut op = json!({
            "operationId": self.id,
            "tags": [self.tag],
            "summary": self.summary,
            "responses": responses.into_iter().collect::<Map<_, _>>(),
        });
        if self.public {
            op["security"] = json!([]);
        }
        if !self.params.is_empty() {
            op["parameters"] = Value::Array(self.params.clone());
        }
        if let Some(b) = &self.body {
            op["requestBody"] = b.clone();
        }
        op
    }
}

/// The operations, one per route of template.yaml's HTTP API.
fn operations() -> Vec<Op> {
    let job = || {
        path_param(
            "id",
            "A job id (another owner's job is a 404 like a missing one).",
        )
    };
    let upload_job = || path_param("job", "The job id of a multipart upload.");
    let workflow = || path_param("id", "A workflow id.");
    let session = || path_param("id", "A session id.");
    let r = response_ref;
    let s = schema_ref;
    vec![
        Op::new("get", "/v1/health", "health", "meta")
            .summary("Liveness and version; no token needed.")
            .public()
            .answers("200", answer("Up.", s("Health"))),
        Op::new("get", PATH, "openapi", "meta")
            .summary("This document; no token needed.")
            .public()
            .answers("200", answer("The OpenAPI 3.1 document.", json!({ "type": "object" }))),
        // Uploads.
        Op::new("post", "/v1/uploads", "createUpload", "uploads")
            .summary("A job for a file, and where to PUT it (one presigned PUT or a multipart plan).")
            .body(s("CreateUpload"))
            .answers("201", answer("The job and its upload.", s("UploadCreated")))
            .answers("404", r("NotFound"))
            .answers("413", r("PayloadTooLarge")),
        Op::new("get", "/v1/uploads/{job}/parts", "listUploadParts", "uploads")
            .summary("Resume a multipart upload: the parts S3 holds and fresh URLs for missing ones.")
            .param(upload_job())
            .param(query_param("from", "First part number to give URLs for (default 1).", json!({ "type": "integer", "minimum": 1 })))
            .answers("200", answer("The upload's parts.", s("PartsStatus")))
            .answers("400", r("BadRequest"))
            .answers("404", r("NotFound"))
            .answers("409", r("Conflict")),
        Op::new("post", "/v1/uploads/{job}/complete", "completeUpload", "uploads")
            .summary("Complete a multipart upload with its parts' ETags (the same answer every time once completed).")
            .param(upload_job())
            .body(s("CompleteUpload"))
            .answers("200", answer("Completed.", s("UploadCompleted")))
            .answers("404", r("NotFound"))
            .answers("409", r("Conflict")),
        Op::new("delete", "/v1/uploads/{job}", "abortUpload", "uploads")
            .summary("Abort a multipart upload and cancel its job.")
            .param(upload_job())
            .answers("200", answer("The cancelled job.", s("JobSnapshot")))
            .answers("404", r("NotFound"))
            .answers("409", r("Conflict")),
        // Jobs.
        Op::new("get", "/v1/jobs", "listJobs", "jobs")
            .summary("The caller's jobs, newest first.")
            .param(query_param("state", "Only jobs in this state (empty: all).", json!({ "anyOf": [s("JobState"), { "const": "" }] })))
            .param(query_param("limit", "Page size, 1 to 100 (default 50).", json!({ "type": "integer", "minimum": 1, "maximum": 100 })))
            .param(query_param("cursor", "`next_cursor` of the previous page.", string()))
            .answers("200", answer("A page of jobs.", s("JobList")))
            .answers("400", r("BadRequest"))
            .answers("422", r("Unprocessable")),
        Op::new("get", "/v1/jobs/{id}", "getJob", "jobs")
            .summary("A job's snapshot (the status function).")
            .param(job())
            .answers("200", answer("The job.", s("JobSnapshot")))
            .answers("404", r("NotFound")),
        Op::new("post", "/v1/jobs/{id}/cancel", "cancelJob", "jobs")
            .summary("Cancel a job that is not final; its partial outputs are deleted.")
            .param(job())
            .answers("200", answer("The cancelled job.", s("JobSnapshot")))
            .answers("404", r("NotFound"))
            .answers("409", r("Conflict")),
        Op::new("post", "/v1/jobs/{id}/retry", "retryJob", "jobs")
            .summary("Run again the chunks of a job that failed in its chunks.")
            .param(job())
            .answers("202", answer("Requeued.", s("RetryAccepted")))
            .answers("404", r("NotFound"))
            .answers("409", r("Conflict")),
        Op::new("get", "/v1/jobs/{id}/profile", "getProfile", "jobs")
            .summary("A completed job's column profile (docs/profile.md).")
            .param(job())
            .answers("200", answer("profile.json as stored.", json!({ "type": "object" })))
            .answers("404", r("NotFound"))
            .answers("409", r("Conflict")),
        // Exports.
        Op::new("post", "/v1/jobs/{id}/exports", "createExport", "exports")
            .summary("Export a completed job's clean or rejected output as CSV or JSON Lines.")
            .param(job())
            .body(s("CreateExport"))
            .answers("201", answer("Converted within the request (or the stored output linked).", s("ExportCreated")))
            .answers("202", answer_at("An export job (a large output).", s("ExportJobStarted")))
            .answers("404", r("NotFound"))
            .answers("409", r("Conflict")),
        Op::new("get", "/v1/jobs/{id}/exports/{export_id}", "getExport", "exports")
            .summary("An export job's state, and its link once completed.")
            .param(job())
            .param(path_param("export_id", "The export id of a 202 answer."))
            .answers("200", answer("The export job.", s("Export")))
            .answers("404", r("NotFound")),
        // Queries.
        Op::new("post", "/v1/jobs/{id}/queries", "createQuery", "queries")
            .summary("An exact aggregate query over a completed job (docs/query.md).")
            .param(job())
            .body(s("QueryDocument"))
            .answers("200", answer("Answered within the request.", s("Query")))
            .answers("202", answer_at("A query job.", s("Query")))
            .answers("404", r("NotFound"))
            .answers("409", r("Conflict"))
            .answers("413", r("PayloadTooLarge")),
        Op::new("get", "/v1/jobs/{id}/queries/{query_id}", "getQuery", "queries")
            .summary("A query's state, and its result once completed.")
            .param(job())
            .param(path_param("query_id", "The query id."))
            .answers("200", answer("The query.", s("Query")))
            .answers("404", r("NotFound")),
        // Agent.
        Op::new("post", "/v1/rules/generate", "generateRules", "agent")
            .summary("A rule document from plain English (or the profile's suggestions), dry-run on the job's sample. Saves nothing.")
            .body(s("GenerateRules"))
            .answers("200", answer("The proposal.", s("RulesProposal")))
            .answers("404", r("NotFound"))
            .answers("409", r("Conflict")),
        Op::new("post", "/v1/rules/dry-runs", "createDryRun", "agent")
            .summary("Run a rule document (not saved) over every record of a completed job's file.")
            .body(s("CreateDryRun"))
            .answers("202", answer_at("Started.", s("DryRunStarted")))
            .answers("404", r("NotFound"))
            .answers("409", r("Conflict")),
        Op::new("get", "/v1/rules/dry-runs/{id}", "getDryRun", "agent")
            .summary("A dry run's state and, once completed, its violations per rule.")
            .param(path_param("id", "The dry run id."))
            .answers("200", answer("The dry run.", s("DryRun")))
            .answers("404", r("NotFound")),
        Op::new("get", "/v1/usage", "getUsage", "agent")
            .summary("The caller's model usage on a UTC day against the daily budget.")
            .param(query_param("day", "A UTC date, YYYY-MM-DD (default today).", json!({ "type": "string", "format": "date" })))
            .answers("200", answer("The day's usage.", s("Usage")))
            .answers("400", r("BadRequest"))
            .answers("422", r("Unprocessable")),
        Op::new("post", "/v1/sessions", "createSession", "agent")
            .summary("A conversation about a completed job.")
            .body(s("CreateSession"))
            .answers("201", answer_at("The session.", s("Session")))
            .answers("404", r("NotFound"))
            .answers("409", r("Conflict")),
        Op::new("get", "/v1/sessions/{id}", "getSession", "agent")
            .summary("A session and every message.")
            .param(session())
            .answers("200", answer("The session.", s("Session")))
            .answers("404", r("NotFound")),
        Op::new("post", "/v1/sessions/{id}/messages", "postMessage", "agent")
            .summary("Ask a question; answered on the agent's queue.")
            .param(session())
            .body(s("PostMessage"))
            .answers("202", answer_at("Queued.", s("MessageAccepted")))
            .answers("404", r("NotFound"))
            .answers("409", r("Conflict")),
        // Workflows.
        Op::new("post", "/v1/workflows", "createWorkflow", "workflows")
            .summary("Save a rule document as a workflow (version 1).")
            .body(s("CreateWorkflow"))
            .answers("201", answer("The workflow.", s("Workflow"))),
        Op::new("get", "/v1/workflows", "listWorkflows", "workflows")
            .summary("The caller's workflows, newest first (up to 100).")
            .answers("200", answer("The workflows.", s("WorkflowList"))),
        Op::new("post", "/v1/workflows/validate", "validateWorkflow", "workflows")
            .summary("Check a rule document against a completed job's profile. Saves nothing.")
            .body(s("ValidateWorkflow"))
            .answers("200", answer("It fits.", s("WorkflowValid")))
            .answers("404", r("NotFound"))
            .answers("409", r("Conflict")),
        Op::new("get", "/v1/workflows/{id}", "getWorkflow", "workflows")
            .summary("A workflow's latest version.")
            .param(workflow())
            .answers("200", answer("The latest version.", s("Workflow")))
            .answers("404", r("NotFound")),
        Op::new("put", "/v1/workflows/{id}", "updateWorkflow", "workflows")
            .summary("A new version of a workflow.")
            .param(workflow())
            .body(s("UpdateWorkflow"))
            .answers("200", answer("The new version.", s("Workflow")))
            .answers("404", r("NotFound"))
            .answers("409", r("Conflict")),
        Op::new("delete", "/v1/workflows/{id}", "deleteWorkflow", "workflows")
            .summary("Delete a workflow from the API (its versions stay stored for the jobs that ran them).")
            .param(workflow())
            .answers("200", answer("Deleted.", s("WorkflowDeleted")))
            .answers("404", r("NotFound")),
        Op::new("get", "/v1/workflows/{id}/versions/{version}", "getWorkflowVersion", "workflows")
            .summary("One version of a workflow.")
            .param(workflow())
            .param(json!({ "name": "version", "in": "path", "required": true, "description": "A version number (1 and up).", "schema": { "type": "integer", "minimum": 1 } }))
            .answers("200", answer("The version.", s("Workflow")))
            .answers("404", r("NotFound")),
        // References.
        Op::new("post", "/v1/references", "createReference", "references")
            .summary("A presigned PUT for a reference file that `one_of` rules name by key.")
            .body(s("CreateReference"))
            .answers("201", answer("Where to PUT the file.", s("ReferenceUpload"))),
        Op::new("get", "/v1/references", "listReferences", "references")
            .summary("The caller's reference files in key order.")
            .param(query_param("limit", "Page size, 1 to 1,000 (empty or left out: 1,000).", json!({ "anyOf": [{ "type": "integer", "minimum": 1, "maximum": 1000 }, { "const": "" }] })))
            .param(query_param("cursor", "`next_cursor` of the previous page.", string()))
            .answers("200", answer("A page of files.", s("ReferenceList")))
            .answers("400", r("BadRequest"))
            .answers("422", r("Unprocessable")),
        Op::new("delete", "/v1/references/{key}", "deleteReference", "references")
            .summary("Delete a reference file (later jobs naming it fail `reference_missing`).")
            .param(path_param("key", "The reference key, e.g. `lists/codes.csv` (its `/` may be sent as is or as `%2F`)."))
            .answers("204", json!({ "description": "Deleted." }))
            .answers("400", r("BadRequest"))
            .answers("404", r("NotFound")),
    ]
}

/// The answers every operation may give, by name.
fn responses() -> Value {
    let error = |description: &str| answer(description, schema_ref("Error"));
    let mut busy = error("A store refused for load; nothing was done. Send the request again after `Retry-After` seconds (`service_busy`).");
    busy["headers"] = json!({ "Retry-After": { "description": "Seconds to wait.", "schema": { "type": "integer" } } });
    json!({
        "BadRequest": error("The request is malformed (e.g. `malformed_json`, `invalid_cursor`, `invalid_state`); the code and message say what to fix."),
        "Unauthorized": error("No valid bearer token (`unauthorized`)."),
        "NotFound": error("No such resource for this caller (`not_found`, `version_not_found`, `upload_not_found`): another owner's is a 404 like a missing one."),
        "Conflict": error("The resource is not in a state that allows this (e.g. `job_not_completed`, `job_final`, `not_retryable`, `upload_completed`, `workflow_busy`); the message gives the state."),
        "PayloadTooLarge": error("Too large: the body above API Gateway's 10 MB (`payload_too_large`), or a declared size above a limit (`file_too_large`, `query_too_large`, `rules_too_large`)."),
        "UnsupportedMediaType": error("The body is not `application/json` (`unsupported_media_type`), or the upload's content type is not accepted (`unsupported_content_type`)."),
        "Unprocessable": error("The request is well formed but cannot be done as asked (`invalid_request`, `invalid_rules`, `invalid_query` with `error.details.errors`, `invalid_limit`, ...)."),
        "Busy": busy,
    })
}

/// The component schemas written here (the derived ones are added by [`document`]).
fn written_schemas() -> Value {
    let s = schema_ref;
    let url_ttl = || {
        json!({
            "url": string(),
            "expires_in": count(),
            "expires_at": { "type": "string", "format": "date-time" },
        })
    };
    let workflow_pick = closed_object(
        &["id"],
        json!({ "id": string(), "version": { "type": ["integer", "null"], "minimum": 0 } }),
    );
    let entries: Vec<(&str, Value)> = vec![
        (
            "Error",
            object(
                &["error"],
                json!({
                    "error": object(&["code", "message", "request_id"], json!({
                        "code": { "type": "string", "description": "Stable, machine-readable." },
                        "message": { "type": "string", "description": "What is wrong and what to do." },
                        "request_id": { "type": "string", "description": "Finds the detail in the logs." },
                        "details": { "type": "object", "description": "Structured detail, e.g. `errors: [{path, message}]`." },
                    })),
                }),
            ),
        ),
        (
            "Health",
            object(
                &["status", "version"],
                json!({ "status": { "const": "ok" }, "version": string() }),
            ),
        ),
        (
            "CreateUpload",
            closed_object(
                &["filename", "size", "content_type"],
                json!({
                    "filename": string(),
                    "size": { "type": "integer", "minimum": 0, "description": "Declared size in bytes." },
                    "content_type": { "type": "string", "description": "text/csv, application/csv, text/plain, text/tab-separated-values or application/vnd.ms-excel." },
                    "multipart": { "type": ["boolean", "null"] },
                    "part_size": { "type": ["integer", "null"], "minimum": 0 },
                    "workflow": { "oneOf": [workflow_pick.clone(), { "type": "null" }] },
                }),
            ),
        ),
        (
            "UploadCreated",
            object(
                &["job_id", "upload", "status_url"],
                json!({
                    "job_id": string(),
                    "upload": { "oneOf": [s("SingleUpload"), s("MultipartPlan")] },
                    "status_url": string(),
                }),
            ),
        ),
        (
            "SingleUpload",
            object(
                &[
                    "kind",
                    "method",
                    "url",
                    "headers",
                    "expires_in",
                    "expires_at",
                ],
                {
                    let mut p = url_ttl();
                    p["kind"] = json!({ "const": "single" });
                    p["method"] = json!({ "const": "PUT" });
                    p["headers"] =
                        json!({ "type": "object", "additionalProperties": { "type": "string" } });
                    p
                },
            ),
        ),
        (
            "MultipartPlan",
            object(
                &[
                    "kind",
                    "upload_id",
                    "part_size",
                    "part_count",
                    "parts",
                    "routes",
                    "expires_in",
                    "expires_at",
                ],
                json!({
                    "kind": { "const": "multipart" },
                    "upload_id": string(),
                    "part_size": count(),
                    "part_count": count(),
                    "parts": { "type": "array", "items": s("PartUrl") },
                    "next_from": count(),
                    "routes": object(&["parts", "complete", "abort"], json!({ "parts": string(), "complete": string(), "abort": string() })),
                    "expires_in": count(),
                    "expires_at": string(),
                }),
            ),
        ),
        (
            "PartUrl",
            object(
                &["part_number", "url"],
                json!({ "part_number": count(), "url": string() }),
            ),
        ),
        (
            "PartsStatus",
            object(
                &[
                    "job_id",
                    "upload_id",
                    "part_size",
                    "part_count",
                    "uploaded",
                    "missing_count",
                    "missing",
                    "expires_in",
                    "expires_at",
                ],
                json!({
                    "job_id": string(),
                    "upload_id": string(),
                    "part_size": count(),
                    "part_count": count(),
                    "uploaded": { "type": "array", "items": object(&["part_number", "etag", "size"], json!({ "part_number": count(), "etag": string(), "size": count() })) },
                    "missing_count": count(),
                    "missing": { "type": "array", "items": s("PartUrl") },
                    "next_from": count(),
                    "expires_in": count(),
                    "expires_at": string(),
                }),
            ),
        ),
        (
            "CompleteUpload",
            closed_object(
                &["parts"],
                json!({
                    "upload_id": nullable_string(),
                    "parts": { "type": "array", "items": closed_object(&["part_number", "etag"], json!({ "part_number": { "type": "integer", "minimum": 0 }, "etag": string() })) },
                }),
            ),
        ),
        (
            "UploadCompleted",
            object(
                &["job_id", "upload_id", "size", "part_count", "status_url"],
                json!({
                    "job_id": string(), "upload_id": string(), "size": count(), "part_count": count(), "status_url": string(),
                }),
            ),
        ),
        (
            "JobList",
            object(
                &["jobs"],
                json!({
                    "jobs": { "type": "array", "items": s("JobSnapshot") },
                    "next_cursor": string(),
                }),
            ),
        ),
        (
            "RetryAccepted",
            object(
                &["job_id", "chunks_requeued", "job"],
                json!({
                    "job_id": string(), "chunks_requeued": count(), "job": s("JobSnapshot"),
                }),
            ),
        ),
        (
            "CreateExport",
            closed_object(
                &["output", "format"],
                json!({
                    "output": { "enum": ["clean", "rejected"] },
                    "format": { "enum": ["csv", "jsonl"] },
                    "columns": { "type": ["array", "null"], "items": string() },
                    "formula_escape": { "type": ["boolean", "null"] },
                }),
            ),
        ),
        (
            "ExportCreated",
            object(
                &[
                    "export_id",
                    "url",
                    "expires_in",
                    "expires_at",
                    "key",
                    "rows",
                ],
                {
                    let mut p = url_ttl();
                    p["export_id"] = nullable_string();
                    p["key"] = string();
                    p["rows"] = count();
                    p
                },
            ),
        ),
        (
            "ExportJobStarted",
            object(
                &["export_id", "state", "status_url", "ranges", "bytes"],
                json!({
                    "export_id": string(), "state": string(), "status_url": string(), "ranges": count(), "bytes": count(),
                }),
            ),
        ),
        (
            "Export",
            object(
                &[
                    "export_id",
                    "job_id",
                    "state",
                    "output",
                    "format",
                    "formula_escape",
                    "progress",
                    "created_at",
                    "updated_at",
                ],
                json!({
                    "export_id": string(),
                    "job_id": string(),
                    "state": { "enum": ["queued", "running", "completed", "failed"] },
                    "output": { "enum": ["clean", "rejected"] },
                    "format": { "enum": ["csv", "jsonl"] },
                    "columns": { "type": ["array", "null"], "items": string() },
                    "formula_escape": { "type": "boolean" },
                    "progress": { "type": "object" },
                    "created_at": string(),
                    "updated_at": string(),
                    "url": string(),
                    "expires_in": count(),
                    "expires_at": string(),
                    "key": string(),
                    "rows": count(),
                    "size": count(),
                    "completed_at": nullable_string(),
                    "error": { "type": ["object", "null"] },
                }),
            ),
        ),
        (
            "Query",
            object(
                &[
                    "query_id",
                    "job_id",
                    "state",
                    "mode",
                    "status_url",
                    "progress",
                    "created_at",
                    "updated_at",
                ],
                json!({
                    "query_id": string(),
                    "job_id": string(),
                    "state": { "enum": ["queued", "running", "completed", "failed"] },
                    "mode": string(),
                    "query": {},
                    "status_url": string(),
                    "progress": { "type": "object" },
                    "created_at": string(),
                    "updated_at": string(),
                    "cached": { "type": "boolean" },
                    "result": { "type": "object" },
                    "bytes_scanned": count(),
                    "rows_read": count(),
                    "cpu_seconds": { "type": "number", "minimum": 0 },
                    "completed_at": nullable_string(),
                    "csv": object(&["url", "expires_in"], json!({ "url": string(), "expires_in": count() })),
                    "error": { "type": ["object", "null"] },
                }),
            ),
        ),
        (
            "GenerateRules",
            closed_object(
                &["job_id", "prompt"],
                json!({
                    "job_id": string(),
                    "prompt": { "type": "string", "description": "1 to 4,000 characters." },
                    "workflow": { "oneOf": [workflow_pick, { "type": "null" }] },
                    "dry_run": { "enum": ["sample", "file"] },
                }),
            ),
        ),
        (
            "RulesProposal",
            object(
                &[
                    "source", "rules", "reasons", "dry_run", "repairs", "usage", "job_id",
                ],
                json!({
                    "source": { "enum": ["model", "profile"] },
                    "rules": { "type": "object" },
                    "reasons": { "type": "array", "items": object(&["rule_id", "why"], json!({ "rule_id": string(), "why": string() })) },
                    "dry_run": { "type": "object" },
                    "fallback": string(),
                    "repairs": count(),
                    "usage": { "type": "object" },
                    "job_id": string(),
                    "file_dry_run": s("DryRunStarted"),
                }),
            ),
        ),
        (
            "CreateDryRun",
            closed_object(
                &["job_id", "rules"],
                json!({ "job_id": string(), "rules": s("RuleDocument") }),
            ),
        ),
        (
            "DryRunStarted",
            object(
                &["dry_run_id", "job_id", "state", "status_url", "job_url"],
                json!({
                    "dry_run_id": string(), "job_id": string(), "state": s("JobState"), "status_url": string(), "job_url": string(),
                }),
            ),
        ),
        (
            "DryRun",
            object(
                &[
                    "dry_run_id",
                    "job_id",
                    "state",
                    "progress",
                    "rows",
                    "clean_rows",
                    "rejected_rows",
                    "job_url",
                ],
                json!({
                    "dry_run_id": string(),
                    "job_id": string(),
                    "state": s("JobState"),
                    "progress": s("Progress"),
                    "rows": count(),
                    "clean_rows": count(),
                    "rejected_rows": count(),
                    "violations": { "type": "object", "additionalProperties": count() },
                    "error": s("JobError"),
                    "job_url": string(),
                }),
            ),
        ),
        (
            "Usage",
            object(
                &[
                    "day",
                    "input_tokens",
                    "output_tokens",
                    "calls",
                    "cost_micro_usd",
                    "held_micro_usd",
                    "budget_micro_usd",
                    "remaining_micro_usd",
                    "resets_at",
                    "model_configured",
                ],
                json!({
                    "day": string(),
                    "input_tokens": count(),
                    "output_tokens": count(),
                    "calls": count(),
                    "cost_micro_usd": count(),
                    "held_micro_usd": count(),
                    "budget_micro_usd": count(),
                    "remaining_micro_usd": count(),
                    "cost": string(),
                    "budget": string(),
                    "remaining": string(),
                    "resets_at": string(),
                    "model_configured": { "type": "boolean" },
                }),
            ),
        ),
        (
            "CreateSession",
            closed_object(&["job_id"], json!({ "job_id": string() })),
        ),
        (
            "Session",
            object(
                &[
                    "session_id",
                    "job_id",
                    "created_at",
                    "expires_at",
                    "usage",
                    "messages",
                ],
                json!({
                    "session_id": string(),
                    "job_id": string(),
                    "created_at": string(),
                    "expires_at": { "type": "integer" },
                    "usage": { "type": "object" },
                    "messages": { "type": "array", "items": object(&["message_id", "state", "text"], json!({
                        "message_id": count(),
                        "state": { "enum": ["queued", "running", "waiting_for_query", "waiting_for_model_capacity", "answered", "failed"] },
                        "text": string(),
                    })) },
                }),
            ),
        ),
        (
            "PostMessage",
            closed_object(
                &["text"],
                json!({ "text": { "type": "string", "description": "1 to 4,000 characters." } }),
            ),
        ),
        (
            "MessageAccepted",
            object(
                &["session_id", "message_id", "state", "status_url"],
                json!({
                    "session_id": string(), "message_id": count(), "state": string(), "status_url": string(),
                }),
            ),
        ),
        (
            "CreateWorkflow",
            closed_object(
                &["name", "rules"],
                json!({
                    "name": { "type": "string", "description": "1 to 200 bytes." },
                    "description": { "type": ["string", "null"], "description": "At most 2,000 bytes." },
                    "rules": s("RuleDocument"),
                }),
            ),
        ),
        (
            "UpdateWorkflow",
            closed_object(
                &["rules"],
                json!({
                    "name": { "type": ["string", "null"], "description": "1 to 200 bytes; the latest's when left out." },
                    "description": { "type": ["string", "null"], "description": "At most 2,000 bytes; the latest's when left out." },
                    "rules": s("RuleDocument"),
                }),
            ),
        ),
        (
            "ValidateWorkflow",
            closed_object(
                &["rules", "job_id"],
                json!({ "rules": s("RuleDocument"), "job_id": string() }),
            ),
        ),
        (
            "WorkflowValid",
            object(
                &["valid", "job_id", "rule_ids"],
                json!({
                    "valid": { "const": true }, "job_id": string(), "rule_ids": { "type": "array", "items": string() },
                }),
            ),
        ),
        (
            "Workflow",
            object(
                &[
                    "workflow_id",
                    "version",
                    "latest_version",
                    "name",
                    "description",
                    "rules",
                    "created_at",
                    "updated_at",
                ],
                json!({
                    "workflow_id": string(),
                    "version": count(),
                    "latest_version": count(),
                    "name": string(),
                    "description": string(),
                    "rules": { "type": "object" },
                    "created_at": string(),
                    "updated_at": string(),
                }),
            ),
        ),
        (
            "WorkflowList",
            object(
                &["workflows"],
                json!({
                    "workflows": { "type": "array", "items": object(&["workflow_id", "latest_version", "name", "description", "created_at", "updated_at"], json!({
                        "workflow_id": string(), "latest_version": count(), "name": string(), "description": string(), "created_at": string(), "updated_at": string(),
                    })) },
                }),
            ),
        ),
        (
            "WorkflowDeleted",
            object(
                &["workflow_id", "deleted"],
                json!({ "workflow_id": string(), "deleted": { "const": true } }),
            ),
        ),
        (
            "CreateReference",
            closed_object(
                &["key", "size"],
                json!({
                    "key": { "type": "string", "description": "Relative key, e.g. `lists/codes.csv`." },
                    "size": { "type": "integer", "minimum": 0 },
                }),
            ),
        ),
        (
            "ReferenceUpload",
            object(
                &["key", "upload"],
                json!({
                    "key": string(),
                    "upload": object(&["method", "url", "headers", "expires_in"], json!({
                        "method": { "const": "PUT" },
                        "url": string(),
                        "headers": { "type": "object", "additionalProperties": { "type": "string" } },
                        "expires_in": count(),
                    })),
                }),
            ),
        ),
        (
            "ReferenceList",
            object(
                &["references", "next_cursor"],
                json!({
                    "references": { "type": "array", "items": object(&["key", "size", "last_modified"], json!({
                        "key": string(), "size": count(), "last_modified": nullable_string(),
                    })) },
                    "next_cursor": nullable_string(),
                }),
            ),
        ),
    ];
    Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
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
