//! A user's jobs, newest first, a page at a time (the owner index).

use serde::{Deserialize, Serialize};

use super::{JobItem, JobStore, OWNER_INDEX};
use crate::job::{Job, JobState};
use crate::store::table::{from_item, string, Item};
use crate::store::StoreError;

/// Where a page of a user's job list ends: the owner index's key of the last job returned.
/// Callers turn it into an opaque cursor and back; [`JobStore::list_page`] checks it belongs to
/// the owner before DynamoDB sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerPageKey {
    pub pk: String,
    pub sk: String,
    pub gsi1pk: String,
    pub gsi1sk: String,
}

impl OwnerPageKey {
    fn to_item(&self) -> Item {
        Item::from([
            ("pk".to_string(), string(&self.pk)),
            ("sk".to_string(), string(&self.sk)),
            ("gsi1pk".to_string(), string(&self.gsi1pk)),
            ("gsi1sk".to_string(), string(&self.gsi1sk)),
        ])
    }

    fn from_item(item: &Item) -> Option<Self> {
        let get = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        Some(OwnerPageKey {
            pk: get("pk")?,
            sk: get("sk")?,
            gsi1pk: get("gsi1pk")?,
            gsi1sk: get("gsi1sk")?,
        })
    }

    /// Whether the key is a job key in `owner`'s partition of the index.
    pub fn belongs_to(&self, owner: &str) -> bool {
        self.gsi1pk == format!("OWNER#{owner}")
            && self.sk == "META"
            && self.pk.starts_with("JOB#")
            && self.gsi1sk.ends_with(&self.pk["JOB#".len()..])
    }
}

/// One page of a user's jobs.
#[derive(Debug, Clone)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Where the next page starts; `None` when the index is exhausted.
    pub next: Option<OwnerPageKey>,
}

impl JobStore {
    /// A Query of `owner`'s jobs on the owner index, newest first.
    fn by_owner(
        &self,
        owner: &str,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.table
            .query()
            .index_name(OWNER_INDEX)
            .key_condition_expression("gsi1pk = :o")
            .expression_attribute_values(":o", string(format!("OWNER#{owner}")))
            .scan_index_forward(false)
    }

    /// A user's jobs, newest first, at most `limit`.
    pub async fn list_for_owner(&self, owner: &str, limit: i32) -> Result<Vec<Job>, StoreError> {
        let out = self
            .by_owner(owner)
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::service("Query(by_owner)", e))?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|i| from_item::<JobItem>(i, "job").and_then(|it| Job::try_from(it.job)))
            .collect()
    }

    /// A page of `owner`'s jobs, newest first, optionally only those in `state`, starting after
    /// `start`. Reads index pages until `limit` jobs are found or the index is exhausted (the
    /// state filter is applied by DynamoDB after each page is read, so a page may hold fewer).
    pub async fn list_page(
        &self,
        owner: &str,
        state: Option<JobState>,
        limit: usize,
        start: Option<&OwnerPageKey>,
    ) -> Result<JobPage, StoreError> {
        let mut jobs = Vec::new();
        let mut from = start.map(OwnerPageKey::to_item);
        loop {
            let want = limit - jobs.len();
            // With a filter, read more than needed per page: sparse states would otherwise cost
            // one round trip per job.
            let page_limit = if state.is_some() {
                (want * 4).clamp(25, 200)
            } else {
                want
            };
            let mut q = self
                .by_owner(owner)
                .limit(page_limit as i32)
                .set_exclusive_start_key(from.take());
            if let Some(st) = state {
                q = q
                    .filter_expression("#state = :st")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":st", string(st.as_str()));
            }
            let out = q
                .send()
                .await
                .map_err(|e| StoreError::service("Query(by_owner)", e))?;
            let items = out.items.unwrap_or_default();
            let more_in_index = out
                .last_evaluated_key
                .as_ref()
                .is_some_and(|k| !k.is_empty());
            let count = items.len();
            for (i, item) in items.into_iter().enumerate() {
                let key = OwnerPageKey::from_item(&item);
                let it: JobItem = from_item(item, "job")?;
                jobs.push(Job::try_from(it.job)?);
                if jobs.len() == limit {
                    // Stop after this job; the next page starts after it (its own key is a valid
                    // ExclusiveStartKey), unless nothing can follow it.
                    let next = if i + 1 < count || more_in_index {
                        key
                    } else {
                        None
                    };
                    return Ok(JobPage { jobs, next });
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => from = Some(k),
                _ => return Ok(JobPage { jobs, next: None }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_keys_belong_to_their_owner_only() {
        let k = OwnerPageKey {
            pk: "JOB#j1".into(),
            sk: "META".into(),
            gsi1pk: "OWNER#alice".into(),
            gsi1sk: "2026-11-26T08:00:00.000Z#j1".into(),
        };
        assert!(k.belongs_to("alice"));
        assert!(!k.belongs_to("bob"));
        let item = k.to_item();
        assert_eq!(OwnerPageKey::from_item(&item), Some(k.clone()));
        let chunk = OwnerPageKey {
            sk: "CHUNK#000001".into(),
            ..k
        };
        assert!(!chunk.belongs_to("alice"));
    }
}
