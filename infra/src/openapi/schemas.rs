//! The component schemas written by hand (bodies the handlers build as JSON); the derived ones
//! are added by [`super::document`].

use serde_json::{json, Value};

use super::*;

/// The component schemas written here (the derived ones are added by [`document`]).
pub(crate) fn written_schemas() -> Value {
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
