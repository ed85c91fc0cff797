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

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use super::jobs::OWNER_INDEX;
use super::table::{from_item, number, string, Table};
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
    table: Table,
}

/// What the table's errors call a workflow item.
const WHAT: &str = "workflow";

impl WorkflowStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        WorkflowStore {
            table: Table::new(client, table),
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
        let put_head = self
            .table
            .put_new_in_transaction(super::table::to_item(head, WHAT)?, "Put(workflow head)")?;
        let put_version = self.put_version(&version)?;
        let items = [
            TransactWriteItem::builder().put(put_head).build(),
            TransactWriteItem::builder().put(put_version).build(),
        ];
        let op = "TransactWriteItems(workflow create)";
        match self.table.transact(&items, op).await? {
            None => Ok(version),
            Some(reasons) => Err(StoreError::Service {
                op,
                detail: format!("cancelled: {reasons:?}"),
            }),
        }
    }

    fn put_version(&self, v: &WorkflowVersion) -> Result<Put, StoreError> {
        let item = VersionItem {
            pk: wf_pk(&v.workflow_id),
            sk: version_sk(v.version),
            version: v.clone(),
        };
        self.table
            .put_new_in_transaction(super::table::to_item(item, WHAT)?, "Put(workflow version)")
    }

    /// The head of workflow `id` (deleted ones included: check `deleted_at`).
    pub async fn head(&self, id: &str) -> Result<Option<WorkflowHead>, StoreError> {
        let item: Option<HeadItem> = self
            .table
            .get(wf_pk(id), "HEAD", WHAT, "GetItem(workflow head)")
            .await?;
        Ok(item.map(|h| h.head))
    }

    /// Version `version` of workflow `id`, whatever the head says (a deleted workflow's versions
    /// stay readable for the jobs that ran them).
    pub async fn version(
        &self,
        id: &str,
        version: u32,
    ) -> Result<Option<WorkflowVersion>, StoreError> {
        let item: Option<VersionItem> = self
            .table
            .get(
                wf_pk(id),
                version_sk(version),
                WHAT,
                "GetItem(workflow version)",
            )
            .await?;
        Ok(item.map(|v| v.version))
    }

    /// `owner`'s workflows (not deleted), newest first, at most `limit`.
    pub async fn list(&self, owner: &str, limit: i32) -> Result<Vec<WorkflowHead>, StoreError> {
        let out = self
            .table
            .query()
            .index_name(OWNER_INDEX)
            .key_condition_expression("gsi1pk = :o")
            .expression_attribute_values(":o", string(owner_pk(owner)))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::service("Query(by_owner workflows)", e))?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|i| from_item::<HeadItem>(i, WHAT).map(|h| h.head))
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
        let update = self
            .table
            .update_in_transaction(wf_pk(&head.workflow_id), "HEAD")
            .update_expression(
                "SET latest_version = :n, #name = :name, description = :d, updated_at = :now",
            )
            .condition_expression(
                "attribute_exists(pk) AND latest_version = :old AND attribute_not_exists(deleted_at)",
            )
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":n", number(version.version))
            .expression_attribute_values(":old", number(head.latest_version))
            .expression_attribute_values(":name", string(name))
            .expression_attribute_values(":d", string(description))
            .expression_attribute_values(":now", string(now))
            .build()
            .map_err(|e| StoreError::service("Update(workflow head) builder", e))?;
        let items = [
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder()
                .put(self.put_version(&version)?)
                .build(),
        ];
        match self
            .table
            .transact(&items, "TransactWriteItems(workflow update)")
            .await?
        {
            None => Ok(UpdateOutcome::Updated(version)),
            Some(_) => match self.head(&head.workflow_id).await? {
                Some(h) if h.deleted_at.is_none() => Ok(UpdateOutcome::Conflict),
                _ => Ok(UpdateOutcome::NotFound),
            },
        }
    }

    /// Marks workflow `id` deleted and takes it out of the owner's list. False if it was not
    /// there (or already deleted).
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let res = self
            .table
            .update(wf_pk(id), "HEAD")
            .update_expression("SET deleted_at = :now, updated_at = :now REMOVE gsi1pk, gsi1sk")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(deleted_at)")
            .expression_attribute_values(":now", string(now_rfc3339()))
            .send()
            .await;
        super::applied(res, "UpdateItem(workflow delete)")
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
