//! The operations, one per route of template.yaml's HTTP API, and the answers they share.

use serde_json::{json, Value};

use super::*;

/// One operation: what every operation shares (401 unless public, 503 when a store is busy,
/// 413 over API Gateway's payload limit), its own answers, and for a JSON body the extractor's
/// answers (400 malformed, 415 not JSON, 422 wrong fields).
pub(crate) struct Op {
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    pub(crate) id: &'static str,
    pub(crate) tag: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) public: bool,
    pub(crate) params: Vec<Value>,
    pub(crate) body: Option<Value>,
    pub(crate) responses: Vec<(&'static str, Value)>,
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

    pub(crate) fn to_json(&self) -> Value {
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
pub(crate) fn operations() -> Vec<Op> {
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
pub(crate) fn responses() -> Value {
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
