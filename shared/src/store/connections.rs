//! WebSocket connections and their job subscriptions, in the jobs table (one table: the
//! stream that carries job changes must not see these as jobs, so they use other sort keys).
//!
//! | access pattern                           | key                                          |
//! |------------------------------------------|----------------------------------------------|
//! | a connection (owner, its subscriptions)  | `pk = CONN#<conn>`, `sk = META`              |
//! | connections subscribed to a job          | `pk = JOB#<job>`, `sk begins_with SUB#`      |
//! | when a job's progress was last pushed    | `pk = JOB#<job>`, `sk = PUSH`                |
//!
//! Every item has the TTL attribute `expires_at` (connections and subscriptions: 2 hours, API
//! Gateway's maximum connection duration), so what a lost `$disconnect` leaves behind expires.
//! Not here: sending messages (the status function's notifier) or deciding what to send.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::job_pk;
use super::table::{number, string, Item, Table};
use super::StoreError;
use crate::job::now_rfc3339;

/// API Gateway closes a WebSocket connection after 2 hours; its items live as long.
pub const CONNECTION_TTL_SECS: i64 = 2 * 3600;

fn conn_pk(id: &str) -> String {
    format!("CONN#{id}")
}

fn sub_sk(conn: &str) -> String {
    format!("SUB#{conn}")
}

fn expires_at() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() + CONNECTION_TTL_SECS
}

/// A stored connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: String,
    /// The verified `sub` of the token presented at `$connect`.
    pub owner: String,
    pub connected_at: String,
    /// Jobs this connection is subscribed to.
    pub jobs: Vec<String>,
}

/// The connections adapter (same table as the jobs).
#[derive(Clone, Debug)]
pub struct ConnectionStore {
    table: Table,
}

impl ConnectionStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        ConnectionStore {
            table: Table::new(client, table),
        }
    }

    /// Records a new connection of `owner` (`$connect`).
    pub async fn put_connection(&self, id: &str, owner: &str) -> Result<(), StoreError> {
        let item = Item::from([
            ("pk".to_string(), string(conn_pk(id))),
            ("sk".to_string(), string("META")),
            ("owner".to_string(), string(owner)),
            ("connected_at".to_string(), string(now_rfc3339())),
            ("expires_at".to_string(), number(expires_at())),
        ]);
        self.table.put(item, "PutItem(connection)").await
    }

    /// Reads a connection (strongly consistent).
    pub async fn connection(&self, id: &str) -> Result<Option<Connection>, StoreError> {
        let Some(item) = self
            .table
            .get_raw(conn_pk(id), "META", None, "GetItem(connection)")
            .await?
        else {
            return Ok(None);
        };
        let text = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        let jobs = item
            .get("jobs")
            .and_then(|v| v.as_ss().ok())
            .cloned()
            .unwrap_or_default();
        Ok(Some(Connection {
            id: id.to_string(),
            owner: text("owner"),
            connected_at: text("connected_at"),
            jobs,
        }))
    }

    /// Subscribes a connection to a job: the subscription item under the job (so "connections
    /// of a job" is one Query) and the job in the connection's set (so a disconnect finds it).
    /// The caller has checked that the connection's owner owns the job.
    pub async fn subscribe(&self, conn: &str, owner: &str, job_id: &str) -> Result<(), StoreError> {
        let item = Item::from([
            ("pk".to_string(), string(job_pk(job_id))),
            ("sk".to_string(), string(sub_sk(conn))),
            ("connection_id".to_string(), string(conn)),
            ("owner".to_string(), string(owner)),
            ("expires_at".to_string(), number(expires_at())),
        ]);
        self.table.put(item, "PutItem(subscription)").await?;
        self.table
            .update(conn_pk(conn), "META")
            .update_expression("ADD jobs :j")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":j", AttributeValue::Ss(vec![job_id.to_string()]))
            .send()
            .await
            .map_err(|e| StoreError::service("UpdateItem(connection jobs)", e))?;
        Ok(())
    }

    /// Removes one subscription (unsubscribe). Removing what is not there is not an error.
    pub async fn unsubscribe(&self, conn: &str, job_id: &str) -> Result<(), StoreError> {
        self.delete_subscription(conn, job_id).await?;
        let res = self
            .table
            .update(conn_pk(conn), "META")
            .update_expression("DELETE jobs :j")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":j", AttributeValue::Ss(vec![job_id.to_string()]))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if super::is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(StoreError::service("UpdateItem(connection jobs)", e)),
        }
    }

    async fn delete_subscription(&self, conn: &str, job_id: &str) -> Result<(), StoreError> {
        self.table
            .delete(job_pk(job_id), sub_sk(conn), "DeleteItem(subscription)")
            .await
    }

    /// Deletes a connection and all its subscriptions (`$disconnect`, or a push that found the
    /// connection gone). `also_job` names a subscription known from elsewhere (the push that
    /// got 410), deleted even when the connection item has already expired.
    pub async fn remove_connection(
        &self,
        conn: &str,
        also_job: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut jobs = self
            .connection(conn)
            .await?
            .map(|c| c.jobs)
            .unwrap_or_default();
        if let Some(j) = also_job {
            if !jobs.iter().any(|x| x == j) {
                jobs.push(j.to_string());
            }
        }
        for job in &jobs {
            self.delete_subscription(conn, job).await?;
        }
        self.table
            .delete(conn_pk(conn), "META", "DeleteItem(connection)")
            .await
    }

    /// Connection ids subscribed to a job (one Query, all pages).
    pub async fn subscribers(&self, job_id: &str) -> Result<Vec<String>, StoreError> {
        let items = self
            .table
            .query_prefix(
                job_pk(job_id),
                "SUB#",
                Some("connection_id"),
                "Query(subscriptions)",
            )
            .await?;
        Ok(items
            .iter()
            .filter_map(|item| item.get("connection_id").and_then(|v| v.as_s().ok()))
            .cloned()
            .collect())
    }

    /// Claims the right to push a progress message for `job_id` at `now_ms`: a conditional
    /// write that succeeds only if the last push was at least `interval_ms` ago. It is in the
    /// table, not in memory, because in AWS many status instances (one per stream shard, and
    /// new ones over time) push for the same job. Returns whether this caller may push.
    pub async fn claim_push(
        &self,
        job_id: &str,
        now_ms: i64,
        interval_ms: i64,
    ) -> Result<bool, StoreError> {
        let res = self
            .table
            .update(job_pk(job_id), "PUSH")
            .update_expression("SET last_push_ms = :now, expires_at = :exp")
            .condition_expression("attribute_not_exists(last_push_ms) OR last_push_ms <= :cutoff")
            .expression_attribute_values(":now", number(now_ms))
            .expression_attribute_values(":cutoff", number(now_ms - interval_ms))
            .expression_attribute_values(":exp", number(expires_at()))
            .send()
            .await;
        super::applied(res, "UpdateItem(push slot)")
    }
}

#[async_trait::async_trait]
impl crate::ports::Connections for ConnectionStore {
    async fn subscribers(&self, job_id: &str) -> Result<Vec<String>, StoreError> {
        ConnectionStore::subscribers(self, job_id).await
    }
    async fn remove_connection(
        &self,
        conn: &str,
        also_job: Option<&str>,
    ) -> Result<(), StoreError> {
        ConnectionStore::remove_connection(self, conn, also_job).await
    }
    async fn claim_push(
        &self,
        job_id: &str,
        now_ms: i64,
        interval_ms: i64,
    ) -> Result<bool, StoreError> {
        ConnectionStore::claim_push(self, job_id, now_ms, interval_ms).await
    }
}
