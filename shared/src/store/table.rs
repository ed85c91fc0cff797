//! One DynamoDB table as every store uses it: items read and written by key, conditional
//! writes that answer whether they applied, queries read to the last page, and transactions
//! retried while they conflict. The stores keep only their keys, expressions and items.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::delete_item::builders::DeleteItemFluentBuilder;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::builders::UpdateBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StoreError;

/// A DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// A DynamoDB string value.
pub(crate) fn string(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A DynamoDB number value.
pub(crate) fn number(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// `v` as an item (`what` names it in the error).
pub(crate) fn to_item<T: Serialize>(v: T, what: &'static str) -> Result<Item, StoreError> {
    serde_dynamo::to_item(v).map_err(|e| StoreError::Malformed {
        what,
        detail: e.to_string(),
    })
}

/// `v` as one attribute value (`what` names it in the error).
pub(crate) fn to_value<T: Serialize>(
    v: &T,
    what: &'static str,
) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(v).map_err(|e| StoreError::Malformed {
        what,
        detail: e.to_string(),
    })
}

/// An item decoded (`what` names it in the error).
pub(crate) fn from_item<T: DeserializeOwned>(
    item: Item,
    what: &'static str,
) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Malformed {
        what,
        detail: e.to_string(),
    })
}

/// The table and the client that reaches it.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    client: Client,
    name: String,
}

impl Table {
    pub(crate) fn new(client: Client, name: impl Into<String>) -> Self {
        Table {
            client,
            name: name.into(),
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// One `BatchGetItem` of `keys` in this table (the caller handles unprocessed keys).
    pub(crate) async fn batch_get(
        &self,
        keys: aws_sdk_dynamodb::types::KeysAndAttributes,
        op: &'static str,
    ) -> Result<aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput, StoreError> {
        self.client
            .batch_get_item()
            .request_items(&self.name, keys)
            .send()
            .await
            .map_err(|e| StoreError::service(op, e))
    }

    /// A `Query` of this table, for the caller to complete (one page; see [`Self::query_all`]).
    pub(crate) fn query(&self) -> QueryFluentBuilder {
        self.client.query().table_name(&self.name)
    }

    /// Item `(pk, sk)` read strongly consistent, `projection` only if given; `None` if absent.
    pub(crate) async fn get_raw(
        &self,
        pk: impl Into<String>,
        sk: impl Into<String>,
        projection: Option<&str>,
        op: &'static str,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .key("pk", string(pk))
            .key("sk", string(sk))
            .consistent_read(true)
            .set_projection_expression(projection.map(str::to_string))
            .send()
            .await
            .map_err(|e| StoreError::service(op, e))?;
        Ok(out.item)
    }

    /// Item `(pk, sk)` decoded as `T` (`what` names it), read strongly consistent.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        pk: impl Into<String>,
        sk: impl Into<String>,
        what: &'static str,
        op: &'static str,
    ) -> Result<Option<T>, StoreError> {
        match self.get_raw(pk, sk, None, op).await? {
            None => Ok(None),
            Some(item) => from_item(item, what).map(Some),
        }
    }

    /// Whether item `(pk, sk)` exists (strongly consistent; reads its key only).
    pub(crate) async fn exists(
        &self,
        pk: impl Into<String>,
        sk: impl Into<String>,
        op: &'static str,
    ) -> Result<bool, StoreError> {
        Ok(self.get_raw(pk, sk, Some("pk"), op).await?.is_some())
    }

    /// Writes `item`, replacing any item with its key.
    pub(crate) async fn put(&self, item: Item, op: &'static str) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::service(op, e))?;
        Ok(())
    }

    /// Writes `item` unless an item with its key exists; false (nothing written) if one does.
    pub(crate) async fn put_new(&self, item: Item, op: &'static str) -> Result<bool, StoreError> {
        let res = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        super::applied(res, op)
    }

    /// [`Self::put_new`], where an existing item is an error (ids are made unique).
    pub(crate) async fn create(&self, item: Item, op: &'static str) -> Result<(), StoreError> {
        if self.put_new(item, op).await? {
            Ok(())
        } else {
            Err(StoreError::Service {
                op,
                detail: "an item with this key exists".into(),
            })
        }
    }

    /// An `UpdateItem` of item `(pk, sk)`, for the caller to add expressions to and send
    /// (with [`super::applied`] when it is conditional).
    pub(crate) fn update(
        &self,
        pk: impl Into<String>,
        sk: impl Into<String>,
    ) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.name)
            .key("pk", string(pk))
            .key("sk", string(sk))
    }

    /// Deletes item `(pk, sk)`; deleting what is not there is not an error.
    pub(crate) async fn delete(
        &self,
        pk: impl Into<String>,
        sk: impl Into<String>,
        op: &'static str,
    ) -> Result<(), StoreError> {
        self.delete_builder(pk, sk)
            .send()
            .await
            .map_err(|e| StoreError::service(op, e))?;
        Ok(())
    }

    fn delete_builder(
        &self,
        pk: impl Into<String>,
        sk: impl Into<String>,
    ) -> DeleteItemFluentBuilder {
        self.client
            .delete_item()
            .table_name(&self.name)
            .key("pk", string(pk))
            .key("sk", string(sk))
    }

    /// The items of partition `pk` whose sort key begins with `prefix`, every page, strongly
    /// consistent unless `projection` is given (a projection is for eventually consistent
    /// lists).
    pub(crate) async fn query_prefix(
        &self,
        pk: impl Into<String>,
        prefix: impl Into<String>,
        projection: Option<&str>,
        op: &'static str,
    ) -> Result<Vec<Item>, StoreError> {
        let (pk, prefix) = (pk.into(), prefix.into());
        self.query_all(
            |q| {
                q.key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                    .expression_attribute_values(":pk", string(&pk))
                    .expression_attribute_values(":p", string(&prefix))
                    .set_projection_expression(projection.map(str::to_string))
                    .consistent_read(projection.is_none())
            },
            op,
        )
        .await
    }

    /// Every item of a query, page after page: `query` sets its conditions on a builder for
    /// this table.
    pub(crate) async fn query_all(
        &self,
        query: impl Fn(QueryFluentBuilder) -> QueryFluentBuilder,
        op: &'static str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = query(self.client.query().table_name(&self.name))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::service(op, e))?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// A `Put` of `item` for a transaction, only if no item has its key.
    pub(crate) fn put_new_in_transaction(
        &self,
        item: Item,
        op: &'static str,
    ) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::service(op, e))
    }

    /// An `Update` of item `(pk, sk)` for a transaction, for the caller to complete.
    pub(crate) fn update_in_transaction(
        &self,
        pk: impl Into<String>,
        sk: impl Into<String>,
    ) -> UpdateBuilder {
        Update::builder()
            .table_name(&self.name)
            .key("pk", string(pk))
            .key("sk", string(sk))
    }

    /// Sends a transaction of one conditional `put` and one `update` ([`Self::transact`]).
    pub(crate) async fn transact_put_update(
        &self,
        put: Put,
        update: Update,
        op: &'static str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let items = [
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(update).build(),
        ];
        self.transact(&items, op).await
    }

    /// Sends a transaction, again while it is cancelled only for transient reasons (another
    /// transaction on the same item at the same moment — a shard counter at 125 completions/s,
    /// an export item, the job item — or throttling: nothing was written), pausing
    /// `10 << min(attempt, 5)` ms, at most 8 tries (~1.2 s in all); then the error goes back and
    /// SQS redelivers the message. Never mistakes a conflict for a failed condition.
    /// `Ok(None)`: committed; `Ok(Some(reasons))`: cancelled because a condition did not hold.
    pub(crate) async fn transact(
        &self,
        items: &[TransactWriteItem],
        op: &'static str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let mut attempt = 0u32;
        loop {
            let e = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.to_vec()))
                .send()
                .await
            {
                Ok(_) => return Ok(None),
                Err(e) => e,
            };
            let Some(reasons) = cancellation_reasons(&e) else {
                return Err(StoreError::service(op, e));
            };
            if !reasons.iter().any(|c| is_transient_reason(c)) {
                return Ok(Some(reasons));
            }
            attempt += 1;
            if attempt >= 8 {
                return Err(StoreError::service(op, e));
            }
            tracing::info!(op, attempt, ?reasons, "transaction conflicted; retrying");
            tokio::time::sleep(std::time::Duration::from_millis(10 << attempt.min(5))).await;
        }
    }
}

/// The codes of a cancelled transaction's reasons (`None`: the error is not a cancellation).
pub(crate) fn cancellation_reasons<R>(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> Option<Vec<String>> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
    match e.as_service_error()? {
        E::TransactionCanceledException(t) => Some(
            t.cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None").to_string())
                .collect(),
        ),
        _ => None,
    }
}

/// Cancellation reasons that say "not now" rather than "no".
pub(crate) fn is_transient_reason(code: &str) -> bool {
    matches!(
        code,
        "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
    )
}
