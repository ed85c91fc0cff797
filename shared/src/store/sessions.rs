//! Agent sessions and their messages in the jobs table (DynamoDB), in their own partition:
//!
//! | access pattern                          | key                                          |
//! |-----------------------------------------|----------------------------------------------|
//! | get a session (api, agent)              | `pk = SESSION#<id>`, `sk = META`             |
//! | one message (agent worker, api)         | `pk = SESSION#<id>`, `sk = MSG#<n:06>`       |
//! | the conversation, oldest first          | `pk = SESSION#<id>`, `sk begins_with MSG#`   |
//!
//! A session belongs to its owner and expires with its job (the job's `expires_at`). Message
//! numbers come from the session's counter (`ADD messages :1`), so they are ordered and unique.
//! A message is worked on under a lease ([`SessionStore::claim`]): a redelivered or continued
//! message is taken only when no live worker holds it, and every save is conditional on the
//! lease, so two workers never interleave a turn. Message items flow through the table's
//! stream to the status function, which pushes them to the job's subscribers.

use aws_sdk_dynamodb::types::ReturnValue;
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use super::table::{from_item, number, string, to_item, Table};
use super::StoreError;
use crate::agent::session::{ChatMessage, Session};
use crate::job::now_rfc3339;

/// The partition of a session.
pub fn session_pk(id: &str) -> String {
    format!("SESSION#{id}")
}

/// The sort key of message `n`.
pub fn message_sk(n: u32) -> String {
    format!("MSG#{n:06}")
}

#[derive(Serialize, Deserialize)]
struct SessionItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    session: Session,
}

#[derive(Serialize, Deserialize)]
struct MessageItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    message: ChatMessage,
}

/// The sessions adapter (same table as the jobs).
#[derive(Clone, Debug)]
pub struct SessionStore {
    table: Table,
}

impl SessionStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        SessionStore {
            table: Table::new(client, table),
        }
    }

    /// Creates a session (ids are made unique).
    pub async fn create(&self, s: &Session) -> Result<(), StoreError> {
        let item = SessionItem {
            pk: session_pk(&s.session_id),
            sk: "META".to_string(),
            session: s.clone(),
        };
        self.table
            .create(to_item(item, "session")?, "PutItem(session)")
            .await
    }

    pub async fn get(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let item: Option<SessionItem> = self
            .table
            .get(session_pk(id), "META", "session", "GetItem(session)")
            .await?;
        Ok(item.map(|i| i.session))
    }

    /// The next message number of session `id` (1, 2, ...).
    pub async fn next_message(&self, id: &str) -> Result<u32, StoreError> {
        let out = self
            .table
            .update(session_pk(id), "META")
            .update_expression("ADD messages :one SET updated_at = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":now", string(now_rfc3339()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| StoreError::service("UpdateItem(session counter)", e))?;
        out.attributes
            .and_then(|a| a.get("messages").cloned())
            .and_then(|v| v.as_n().ok().and_then(|n| n.parse().ok()))
            .ok_or_else(|| StoreError::Malformed {
                what: "session",
                detail: "no message counter".into(),
            })
    }

    /// Adds a message's tokens and estimated cost to its session's totals.
    pub async fn add_usage(
        &self,
        id: &str,
        input_tokens: u64,
        output_tokens: u64,
        cost_micro_usd: u64,
    ) -> Result<(), StoreError> {
        self.table
            .update(session_pk(id), "META")
            .update_expression("ADD input_tokens :i, output_tokens :o, cost_micro_usd :c")
            .expression_attribute_values(":i", number(input_tokens))
            .expression_attribute_values(":o", number(output_tokens))
            .expression_attribute_values(":c", number(cost_micro_usd))
            .send()
            .await
            .map_err(|e| StoreError::service("UpdateItem(session usage)", e))?;
        Ok(())
    }

    /// Writes a new message.
    pub async fn put_message(&self, m: &ChatMessage) -> Result<(), StoreError> {
        let item = MessageItem {
            pk: session_pk(&m.session_id),
            sk: message_sk(m.number),
            message: m.clone(),
        };
        self.table
            .create(to_item(item, "message")?, "PutItem(message)")
            .await
    }

    pub async fn message(&self, id: &str, n: u32) -> Result<Option<ChatMessage>, StoreError> {
        let item: Option<MessageItem> = self
            .table
            .get(session_pk(id), message_sk(n), "message", "GetItem(message)")
            .await?;
        Ok(item.map(|i| i.message))
    }

    /// Every message of session `id`, oldest first.
    pub async fn messages(&self, id: &str) -> Result<Vec<ChatMessage>, StoreError> {
        let items = self
            .table
            .query_prefix(session_pk(id), "MSG#", None, "Query(messages)")
            .await?;
        let mut out = items
            .into_iter()
            .map(|i| from_item::<MessageItem>(i, "message").map(|i| i.message))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|m| m.number);
        Ok(out)
    }

    /// Takes message `m` for `lease` until `until_ms` (epoch ms): only when it is not final and
    /// no live lease holds it. False: someone else works on it, or it is done.
    pub async fn claim(
        &self,
        m: &ChatMessage,
        lease: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let req = self
            .table
            .update(session_pk(&m.session_id), message_sk(m.number))
            .update_expression("SET lease = :lease, lease_until = :until")
            .condition_expression(
                "attribute_exists(pk) AND NOT #state IN (:answered, :failed) \
                 AND (attribute_not_exists(lease_until) OR lease_until < :now)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":lease", string(lease))
            .expression_attribute_values(":until", number(until_ms))
            .expression_attribute_values(":now", number(now_ms))
            .expression_attribute_values(":answered", string("answered"))
            .expression_attribute_values(":failed", string("failed"));
        super::applied(req.send().await, "UpdateItem(message claim)")
    }

    /// Saves `m` (the whole message) if `lease` still holds it; the lease is released when
    /// `release`. False: the lease was lost (another worker took the message over).
    pub async fn save(&self, m: &ChatMessage, lease: &str, release: bool) -> Result<bool, StoreError> {
        let mut msg = m.clone();
        msg.updated_at = now_rfc3339();
        if release {
            msg.lease = None;
            msg.lease_until = None;
        } else {
            msg.lease = Some(lease.to_string());
        }
        let item = to_item(
            MessageItem {
                pk: session_pk(&m.session_id),
                sk: message_sk(m.number),
                message: msg,
            },
            "message",
        )?;
        let res = self
            .table
            .client()
            .put_item()
            .table_name(self.table.name())
            .set_item(Some(item))
            .condition_expression("lease = :lease")
            .expression_attribute_values(":lease", string(lease))
            .send()
            .await;
        super::applied(res, "PutItem(message save)")
    }
}
