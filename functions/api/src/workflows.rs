//! Saved workflows: `POST /v1/workflows`, `GET /v1/workflows` (the caller's, newest first),
//! `GET /v1/workflows/{id}` (latest version), `GET /v1/workflows/{id}/versions/{v}`,
//! `PUT /v1/workflows/{id}` (a new version; old ones stay readable), `DELETE`, and
//! `POST /v1/workflows/validate` (a document checked against a completed job's profile).
//!
//! A rule document is validated before it is saved (`tessera_shared::workflow`): 422
//! `invalid_rules` with `error.details.errors: [{path, message}]`. Unknown ids, deleted workflows
//! and other owners' workflows are all the same 404.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_shared::error::ApiError;
use tessera_shared::http::{Caller, JsonBody};
use tessera_shared::store::workflows::{UpdateOutcome, WorkflowHead, WorkflowVersion};

use crate::ApiState;

/// `POST /v1/workflows` body (and `PUT`, where name and description default to the latest's).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowBody {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub rules: Value,
}

const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 2000;
/// Largest rule document, as compact JSON (a version is one DynamoDB item, 400 KB at most).
pub const MAX_RULES_BYTES: usize = 256 * 1024;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_request", message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_shared::engine::rules::{MAX_REFERENCES, MAX_RULES};

    fn code(rules: &Value) -> (StatusCode, &'static str) {
        let e = check("w", "", rules, true).unwrap_err();
        (e.status, e.code)
    }

    #[test]
    fn documents_over_a_limit_are_refused_naming_it() {
        let rule = json!({"column": "a", "check": "not_null"});
        let ok = json!({"version": 1, "rules": vec![rule.clone(); MAX_RULES]});
        assert!(check("w", "", &ok, true).is_ok());
        let many = json!({"version": 1, "rules": vec![rule; MAX_RULES + 1]});
        assert_eq!(
            code(&many),
            (StatusCode::UNPROCESSABLE_ENTITY, "too_many_rules")
        );
        let e = check("w", "", &many, true).unwrap_err();
        assert!(e.message.contains("at most 500"), "{}", e.message);
        let refs: Vec<Value> = (0..=MAX_REFERENCES)
            .map(|i| json!({"column": "c", "check": {"one_of": {"ref": {"key": format!("l{i}.csv"), "column": "v"}}}}))
            .collect();
        let doc = json!({"version": 1, "rules": refs});
        assert_eq!(
            code(&doc),
            (StatusCode::UNPROCESSABLE_ENTITY, "too_many_references")
        );
        // The same file named twice counts once.
        let same: Vec<Value> = (0..=MAX_REFERENCES)
            .map(|_| json!({"column": "c", "check": {"one_of": {"ref": {"key": "l.csv", "column": "v"}}}}))
            .collect();
        assert!(check("w", "", &json!({"version": 1, "rules": same}), true).is_ok());
        let cols: serde_json::Map<String, Value> =
            (0..=10_000).map(|i| (format!("c{i}"), json!({}))).collect();
        let doc = json!({"version": 1, "columns": cols});
        assert_eq!(
            code(&doc),
            (StatusCode::UNPROCESSABLE_ENTITY, "too_many_column_specs")
        );
        let big = json!({"version": 1, "rules": [{"column": "a", "check": {"matches": {"pattern": "x".repeat(MAX_RULES_BYTES)}}}]});
        assert_eq!(
            code(&big),
            (StatusCode::PAYLOAD_TOO_LARGE, "rules_too_large")
        );
    }
}

/// Checks the body; returns the rule document as compact JSON text.
/// `model_configured`: whether the deployment has a language model (a `model` sentiment step
/// is refused without one).
fn check(
    name: &str,
    description: &str,
    rules: &Value,
    model_configured: bool,
) -> Result<String, ApiError> {
    if name.trim().is_empty() || name.len() > MAX_NAME {
        return Err(invalid(format!(
            "`name` must be 1 to {MAX_NAME} bytes long."
        )));
    }
    if description.len() > MAX_DESCRIPTION {
        return Err(invalid(format!(
            "`description` must be at most {MAX_DESCRIPTION} bytes long."
        )));
    }
    let text = rules.to_string();
    if text.len() > MAX_RULES_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "rules_too_large",
            format!(
                "The rule document is {} bytes as compact JSON; at most {MAX_RULES_BYTES} (256 KiB) are accepted. Remove rules, or move long value lists into a reference file.",
                text.len()
            ),
        ));
    }
    // Counts before any rule is parsed or compiled: a huge document costs one pass.
    if let Err(e) = tessera_shared::engine::rules::check_limits(rules) {
        let message = format!("The rule document is over a limit: {}", e.message);
        return Err(ApiError::unprocessable(e.code, message.clone())
            .with_details(json!({ "errors": [{ "path": e.path, "message": message }] })));
    }
    if let Err(errs) = tessera_shared::workflow::validate_document(rules, model_configured) {
        let first = errs
            .first()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "invalid".into());
        return Err(ApiError::unprocessable(
            "invalid_rules",
            format!(
                "The rule document has {} problem(s); the first: {first}. Each is in error.details.errors with its JSON path.",
                errs.len()
            ),
        )
        .with_details(json!({ "errors": errs })));
    }
    Ok(text)
}

/// `POST /v1/workflows/validate` body: a rule document and the completed job whose data it is
/// meant for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateBody {
    pub rules: Value,
    pub job_id: String,
}

/// `POST /v1/workflows/validate`: checks a rule document as saving does, then against the
/// profile of one of the caller's completed jobs (unknown columns, declared types the values do
/// not fit: `rules::against_profile`). 200 `{valid: true, job_id, rule_ids}`, or 422
/// `invalid_rules` with every problem's JSON path in `error.details.errors`. Saves nothing.
pub async fn validate_against_job(
    State(st): State<ApiState>,
    caller: Caller,
    JsonBody(req): JsonBody<ValidateBody>,
) -> Result<Json<Value>, ApiError> {
    let text = check("validate", "", &req.rules, st.config.model_id.is_some())?;
    let job = crate::owned_job(&st, &caller, &req.job_id).await?;
    ApiError::require_completed(
        &job,
        "a document is checked against its profile once it is completed.",
    )?;
    let doc = tessera_shared::engine::rules::parse_document(&text)
        .map_err(|_| ApiError::internal(&"a validated document did not parse"))?;
    let profile = st.objects.read_profile(&job).await?;
    let errs = tessera_shared::engine::rules::against_profile(&doc, &profile);
    if let Some(first) = errs.first() {
        return Err(ApiError::unprocessable(
            "invalid_rules",
            format!(
                "The rule document does not fit the data of job {}: {} problem(s); the first: {first}. Each is in error.details.errors with its JSON path.",
                job.id,
                errs.len()
            ),
        )
        .with_details(json!({ "errors": errs })));
    }
    Ok(Json(json!({
        "valid": true,
        "job_id": job.id,
        "rule_ids": doc.rule_ids(),
    })))
}

fn version_json(v: &WorkflowVersion, head: &WorkflowHead) -> Value {
    json!({
        "workflow_id": v.workflow_id,
        "version": v.version,
        "latest_version": head.latest_version,
        "name": v.name,
        "description": v.description,
        "rules": serde_json::from_str::<Value>(&v.rules_json).unwrap_or(Value::Null),
        "created_at": v.created_at,
        "updated_at": head.updated_at,
    })
}

fn head_json(h: &WorkflowHead) -> Value {
    json!({
        "workflow_id": h.workflow_id,
        "latest_version": h.latest_version,
        "name": h.name,
        "description": h.description,
        "created_at": h.created_at,
        "updated_at": h.updated_at,
    })
}

/// The caller's live workflow `id`, or 404.
pub(crate) async fn owned_head(
    st: &ApiState,
    caller: &Caller,
    id: &str,
) -> Result<WorkflowHead, ApiError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::not_found("workflow"));
    }
    match st.workflows.head(id).await? {
        Some(h) if h.owner == caller.owner && h.deleted_at.is_none() => Ok(h),
        _ => Err(ApiError::not_found("workflow")),
    }
}

/// `POST /v1/workflows` -> 201 `{workflow_id, version: 1, ...}`.
pub async fn create_workflow(
    State(st): State<ApiState>,
    caller: Caller,
    JsonBody(body): JsonBody<WorkflowBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = body.name.unwrap_or_default();
    let description = body.description.unwrap_or_default();
    let text = check(
        &name,
        &description,
        &body.rules,
        st.config.model_id.is_some(),
    )?;
    let id = uuid::Uuid::new_v4().to_string();
    let v = st
        .workflows
        .create(&id, &caller.owner, name.trim(), &description, &text)
        .await?;
    tracing::info!(workflow_id = %id, owner = %caller.owner, "workflow created");
    let head = WorkflowHead {
        workflow_id: id,
        owner: v.owner.clone(),
        latest_version: 1,
        name: v.name.clone(),
        description: v.description.clone(),
        created_at: v.created_at.clone(),
        updated_at: v.created_at.clone(),
        deleted_at: None,
    };
    Ok((StatusCode::CREATED, Json(version_json(&v, &head))))
}

/// `GET /v1/workflows` -> `{workflows: [...]}`, newest first (at most 100).
pub async fn list_workflows(
    State(st): State<ApiState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let heads = st.workflows.list(&caller.owner, 100).await?;
    Ok(Json(json!({
        "workflows": heads.iter().map(head_json).collect::<Vec<_>>()
    })))
}

/// `GET /v1/workflows/{id}`: the latest version.
pub async fn get_workflow(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let head = owned_head(&st, &caller, &id).await?;
    let v = st
        .workflows
        .version(&id, head.latest_version)
        .await?
        .ok_or_else(|| ApiError::not_found("workflow"))?;
    Ok(Json(version_json(&v, &head)))
}

/// `GET /v1/workflows/{id}/versions/{v}`.
pub async fn get_version(
    State(st): State<ApiState>,
    caller: Caller,
    Path((id, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let head = owned_head(&st, &caller, &id).await?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "version_not_found",
            format!("Workflow {id} has versions 1 to {}.", head.latest_version),
        )
    };
    let n: u32 = version.parse().map_err(|_| not_found())?;
    let v = st.workflows.version(&id, n).await?.ok_or_else(not_found)?;
    Ok(Json(version_json(&v, &head)))
}

/// `PUT /v1/workflows/{id}` -> 200 `{workflow_id, version: n+1, ...}`.
pub async fn update_workflow(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<WorkflowBody>,
) -> Result<Json<Value>, ApiError> {
    for _ in 0..3 {
        let head = owned_head(&st, &caller, &id).await?;
        let name = body.name.clone().unwrap_or_else(|| head.name.clone());
        let description = body
            .description
            .clone()
            .unwrap_or_else(|| head.description.clone());
        let text = check(
            &name,
            &description,
            &body.rules,
            st.config.model_id.is_some(),
        )?;
        match st
            .workflows
            .update(&head, name.trim(), &description, &text)
            .await?
        {
            UpdateOutcome::Updated(v) => {
                let head = WorkflowHead {
                    latest_version: v.version,
                    name: v.name.clone(),
                    description: v.description.clone(),
                    updated_at: v.created_at.clone(),
                    ..head
                };
                tracing::info!(workflow_id = %id, version = v.version, "workflow updated");
                return Ok(Json(version_json(&v, &head)));
            }
            UpdateOutcome::NotFound => return Err(ApiError::not_found("workflow")),
            UpdateOutcome::Conflict => continue,
        }
    }
    Err(crate::conflict(
        "workflow_busy",
        "The workflow was being updated by other requests at the same time. Read it again and retry.",
    ))
}

/// `DELETE /v1/workflows/{id}` -> 200 `{workflow_id, deleted: true}`. Jobs that ran a version
/// keep reading it.
pub async fn delete_workflow(
    State(st): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    owned_head(&st, &caller, &id).await?;
    if !st.workflows.delete(&id).await? {
        return Err(ApiError::not_found("workflow"));
    }
    tracing::info!(workflow_id = %id, "workflow deleted");
    Ok(Json(json!({ "workflow_id": id, "deleted": true })))
}
