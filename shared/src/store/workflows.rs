//! Saved workflows (a name, a description and a rule document), versioned, in the jobs table.
//!
//! | access pattern                          | key                                                  |
//! |-----------------------------------------|------------------------------------------------------|
//! | a workflow's head (latest version, name) | `pk = WF#<id>`, `sk = HEAD`                          |
//! | one version (immutable)                 | `pk = WF#<id>`, `sk = V#<000001>`                    |
//! | a user's workflows, newest first        | GSI `by_owner`: `gsi1pk = WFOWNER#<sub>`, `gsi1sk = <created_at>#<id>` |
//!
//! The owner partition of workflows is `WFOWNER#<sub>`, not `OWNER#<sub>...`, so no `sub` can
//! make a workflow appear in a job list (the job list queries `gsi1pk = OWNER#<sub>`). Only the
//! head item carries the index keys. A new version is one transaction: the version item is
//! created only if absent and the head moves only from the version the writer read, so two
//! concurrent updates cannot both claim version n+1. Deleting marks the head (`deleted_at`) and
//! takes it out of the index; version items stay, so the jobs that ran them can still read them.
//!
//! Not here: validating the rule document (the api does that with the engine).

use super::s;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use super::jobs::OWNER_INDEX;
use super::StoreError;
use crate::job::now_rfc3339;

fn wf_pk(id: &str) -> String {
    format!("WF#{id}")
}

fn version_sk(v: u32) -> String {
    format!("V#{v:06}")
}

fn owner_pk(owner: &str) -> String {
    format!("WFOWNER#{owner}")
}

/// One immutable version of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowVersion {
    pub workflow_id: String,
    pub owner: String,
    pub version: u32,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The rule document as JSON text (validated when it was saved).
    pub rules_json: String,
    pub created_at: String,
}

/// A workflow's head: its latest version and when it changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowHead {
    pub workflow_id: String,
    pub owner: String,
    pub latest_version: u32,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct HeadItem {
    pk: String,
    sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<String>,
    #[serde(flatten)]
    head: WorkflowHead,
}

#[derive(Serialize, Deserialize)]
struct VersionItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    version: WorkflowVersion,
}

/// What an update found.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOutcome {
    /// The new version was written.
    Updated(WorkflowVersion),
    /// The workflow does not exist, is another owner's, or was deleted.
    NotFound,
    /// Another update won the race for the next version; read again and retry.
    Conflict,
}

/// The workflow store (items in the jobs table).
#[derive(Clone)]
pub struct WorkflowStore {
    client: Client,
    table: String,
}

fn malformed(e: impl ToString) -> StoreError {
    StoreError::Malformed {
        what: "workflow",
        detail: e.to_string(),
    }
}

fn to_item<T: Serialize>(v: T) -> Result<HashMap<String, AttributeValue>, StoreError> {
    serde_dynamo::to_item(v).map_err(malformed)
}

fn is_cancelled<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|c| {
            c == "TransactionCanceledException" || c == "ConditionalCheckFailedException"
        })
}

impl WorkflowStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        WorkflowStore {
            client,
            table: table.into(),
        }
    }

    /// Creates workflow `id` with version 1.
    pub async fn create(
        &self,
        id: &str,
        owner: &str,
        name: &str,
        description: &str,
        rules_json: &str,
    ) -> Result<WorkflowVersion, StoreError> {
        let now = now_rfc3339();
        let version = WorkflowVersion {
            workflow_id: id.into(),
            owner: owner.into(),
            version: 1,
            name: name.into(),
            description: description.into(),
            rules_json: rules_json.into(),
            created_at: now.clone(),
        };
        let head = HeadItem {
            pk: wf_pk(id),
            sk: "HEAD".into(),
            gsi1pk: Some(owner_pk(owner)),
            gsi1sk: Some(format!("{now}#{id}")),
            head: WorkflowHead {
                workflow_id: id.into(),
                owner: owner.into(),
                latest_version: 1,
                name: name.into(),
                description: description.into(),
                created_at: now.clone(),
                updated_at: now,
                deleted_at: None,
            },
        };
        let put_head = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(head)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(malformed)?;
        let put_version = self.put_version(&version)?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put_head).build())
            .transact_items(TransactWriteItem::builder().put(put_version).build())
            .send()
            .await
            .map_err(|e| StoreError::service("TransactWriteItems(workflow create)", e))?;
        Ok(version)
    }

    fn put_version(&self, v: &WorkflowVersion) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(VersionItem {
                pk: wf_pk(&v.workflow_id),
                sk: version_sk(v.version),
                version: v.clone(),
            })?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(malformed)
    }

    /// The head of workflow `id` (deleted ones included: check `deleted_at`).
    pub async fn head(&self, id: &str) -> Result<Option<WorkflowHead>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(wf_pk(id)))
            .key("sk", s("HEAD"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::service("GetItem(workflow head)", e))?;
        out.item
            .map(|i| serde_dynamo::from_item::<_, HeadItem>(i).map(|h| h.head))
            .transpose()
            .map_err(malformed)
    }

    /// Version `version` of workflow `id`, whatever the head says (a deleted workflow's versions
    /// stay readable for the jobs that ran them).
    pub async fn version(
        &self,
        id: &str,
        version: u32,
    ) -> Result<Option<WorkflowVersion>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(wf_pk(id)))
            .key("sk", s(version_sk(version)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::service("GetItem(workflow version)", e))?;
        out.item
            .map(|i| serde_dynamo::from_item::<_, VersionItem>(i).map(|v| v.version))
            .transpose()
            .map_err(malformed)
    }

    /// `owner`'s workflows (not deleted), newest first, at most `limit`.
    pub async fn list(&self, owner: &str, limit: i32) -> Result<Vec<WorkflowHead>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OWNER_INDEX)
            .key_condition_expression("gsi1pk = :o")
            .expression_attribute_values(":o", s(owner_pk(owner)))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::service("Query(by_owner workflows)", e))?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|i| {
                serde_dynamo::from_item::<_, HeadItem>(i)
                    .map(|h| h.head)
                    .map_err(malformed)
            })
            .collect()
    }

    /// Writes version `head.latest_version + 1` if the head is still at the version read.
    pub async fn update(
        &self,
        head: &WorkflowHead,
        name: &str,
        description: &str,
        rules_json: &str,
    ) -> Result<UpdateOutcome, StoreError> {
        let now = now_rfc3339();
        let version = WorkflowVersion {
            workflow_id: head.workflow_id.clone(),
            owner: head.owner.clone(),
            version: head.latest_version + 1,
            name: name.into(),
            description: description.into(),
            rules_json: rules_json.into(),
            created_at: now.clone(),
        };
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(wf_pk(&head.workflow_id)))
            .key("sk", s("HEAD"))
            .update_expression(
                "SET latest_version = :n, #name = :name, description = :d, updated_at = :now",
            )
            .condition_expression(
                "attribute_exists(pk) AND latest_version = :old AND attribute_not_exists(deleted_at)",
            )
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":n", AttributeValue::N(version.version.to_string()))
            .expression_attribute_values(":old", AttributeValue::N(head.latest_version.to_string()))
            .expression_attribute_values(":name", s(name))
            .expression_attribute_values(":d", s(description))
            .expression_attribute_values(":now", s(now))
            .build()
            .map_err(malformed)?;
        let res = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(
                TransactWriteItem::builder()
                    .put(self.put_version(&version)?)
                    .build(),
            )
            .send()
            .await;
        match res {
            Ok(_) => Ok(UpdateOutcome::Updated(version)),
            Err(e) if is_cancelled(&e) => match self.head(&head.workflow_id).await? {
                Some(h) if h.deleted_at.is_none() => Ok(UpdateOutcome::Conflict),
                _ => Ok(UpdateOutcome::NotFound),
            },
            Err(e) => Err(StoreError::service(
                "TransactWriteItems(workflow update)",
                e,
            )),
        }
    }

    /// Marks workflow `id` deleted and takes it out of the owner's list. False if it was not
    /// there (or already deleted).
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(wf_pk(id)))
            .key("sk", s("HEAD"))
            .update_expression("SET deleted_at = :now, updated_at = :now REMOVE gsi1pk, gsi1sk")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(deleted_at)")
            .expression_attribute_values(":now", s(now_rfc3339()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_cancelled(&e) => Ok(false),
            Err(e) => Err(StoreError::service("UpdateItem(workflow delete)", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_version_and_stay_out_of_job_lists() {
        assert_eq!(version_sk(1), "V#000001");
        assert!(version_sk(9) < version_sk(10));
        assert!(!owner_pk("alice").starts_with("OWNER#"));
    }
}
