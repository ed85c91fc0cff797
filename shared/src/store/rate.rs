//! The language model's rate buckets and each owner's daily usage, in the jobs table (DynamoDB),
//! shared by every Lambda instance. The arithmetic is [`crate::rate`]'s; this module reads and
//! writes its items.
//!
//! | access pattern                               | key                                                |
//! |----------------------------------------------|----------------------------------------------------|
//! | a model's bucket, all owners (global)         | `pk = RATE#<model>`, `sk = GLOBAL`                 |
//! | a model's bucket for one owner                | `pk = RATE#<model>`, `sk = OWNER#<owner>`          |
//! | an owner's usage and budget on a UTC day      | `pk = USAGE#<owner>`, `sk = DAY#<YYYY-MM-DD>`      |
//! | a reservation settled (once only)             | `pk = USAGE#<owner>`, `sk = SETTLED#<reservation>` |
//!
//! A bucket item holds both levels in thousandths (`requests_milli`, `tokens_milli`), the time
//! of their last refill (`refilled_at_ms`) and a `bucket_version`. A reservation reads both
//! buckets and the owner's day in one strongly consistent `BatchGetItem`, computes the refill
//! and the debit, and writes all three in **one `TransactWriteItems`**: each bucket only if its
//! `bucket_version` is still the one read (absent: only if still absent), the day's
//! `committed_micro_usd` (spent + held) only if it still leaves room for this call's worst case.
//! So both buckets are debited or neither, and a debit is always computed from the level it
//! replaces: two callers that read the same level cannot both write, whatever the interleaving.
//! The loser's transaction is cancelled; it pauses a random time scaled by the round trip it
//! measured ([`backoff`], "full jitter") and reads again, at most [`MAX_ATTEMPTS`] times, then
//! it is told to wait. Why a version and not a conditional `ADD`: the refill is
//! `min(capacity, level + elapsed x rate)`, and DynamoDB has no `min` in update expressions and
//! no arithmetic on attributes in conditions, so the new level must be computed from the one
//! read, and the version makes that read-compute-write atomic.
//!
//! A settle is the same kind of transaction: the `SETTLED#` marker (created only if absent, so a
//! repeated settle changes nothing), the day's counters (`ADD`), and both buckets credited or
//! charged (versioned, as above) when the call used other than it reserved.
//!
//! Items expire (`expires_at`): buckets a day after their last write (an absent bucket is full,
//! as is one idle for a period), usage after 400 days, settle markers after 7 days.
//!
//! Not here: the limits' arithmetic ([`crate::rate`]), the model call, what the agent does on
//! `Wait`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use serde::Deserialize;

use super::table::{from_item, number, string, Item, Table};
use super::StoreError;
use crate::ports::{RateBuckets, UsageReader};
use crate::rate::{
    backoff, call_cost, check_budget, day_of, day_string, decide, precheck, settle_levels,
    unused_tokens, Admission, Clock, DayUsage, Decision, Levels, Limits, RateError, Reservation,
    Scope, Settled, SystemClock, TokenUsage,
};

/// Tries of a reservation or settle whose buckets moved under it before it gives up (a
/// reservation then answers `Wait`, a settle [`StoreError::Busy`]).
pub const MAX_ATTEMPTS: u32 = 10;

const BUCKET_TTL_SECS: i64 = 24 * 3600;
const USAGE_TTL_SECS: i64 = 400 * 24 * 3600;
const SETTLED_TTL_SECS: i64 = 7 * 24 * 3600;

/// Partition key of a model's buckets.
fn rate_pk(model: &str) -> String {
    format!("RATE#{model}")
}

fn bucket_sk(scope: &Scope) -> String {
    match scope {
        Scope::Global => "GLOBAL".into(),
        Scope::Owner(owner) => format!("OWNER#{owner}"),
    }
}

/// Partition key of an owner's usage.
fn usage_pk(owner: &str) -> String {
    format!("USAGE#{owner}")
}

fn day_sk(day: &str) -> String {
    format!("DAY#{day}")
}

fn settled_sk(reservation: &str) -> String {
    format!("SETTLED#{reservation}")
}

/// A bucket item as stored.
#[derive(Debug, Deserialize)]
struct BucketItem {
    requests_milli: i64,
    tokens_milli: i64,
    refilled_at_ms: i64,
    bucket_version: u64,
}

/// A bucket as read: its levels and the version a write must still find.
#[derive(Debug, Clone, Copy)]
struct Stored {
    levels: Levels,
    version: u64,
}

impl From<BucketItem> for Stored {
    fn from(b: BucketItem) -> Self {
        Stored {
            levels: Levels {
                requests_milli: b.requests_milli,
                tokens_milli: b.tokens_milli,
                refilled_at_ms: b.refilled_at_ms,
            },
            version: b.bucket_version,
        }
    }
}

/// A day's usage item as stored (`committed_micro_usd` = spent + held).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UsageItem {
    input_tokens: u64,
    output_tokens: u64,
    call_count: u64,
    cost_micro_usd: u64,
    committed_micro_usd: u64,
}

impl UsageItem {
    fn into_usage(self, day: String) -> DayUsage {
        DayUsage {
            day,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            calls: self.call_count,
            cost_micro_usd: self.cost_micro_usd,
            held_micro_usd: self.committed_micro_usd.saturating_sub(self.cost_micro_usd),
        }
    }
}

/// The rate buckets and usage adapter.
#[derive(Clone, Debug)]
pub struct RateStore {
    table: Table,
    limits: Arc<Limits>,
    clock: Arc<dyn Clock>,
}

impl RateStore {
    /// The store on table `table` (the jobs table), with the system clock.
    pub fn new(client: Client, table: impl Into<String>, limits: Limits) -> Self {
        RateStore {
            table: Table::new(client, table),
            limits: Arc::new(limits),
            clock: Arc::new(SystemClock),
        }
    }

    /// The same store reading time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    async fn usage(&self, owner: &str, day: String) -> Result<DayUsage, StoreError> {
        let item: Option<UsageItem> = self
            .table
            .get(usage_pk(owner), day_sk(&day), "usage", "GetItem(usage)")
            .await?;
        Ok(item.unwrap_or_default().into_usage(day))
    }

    /// Items `keys` in one strongly consistent `BatchGetItem`, in the order of `keys` (`None`
    /// for an absent item); `Ok(None)` if DynamoDB left some unread (throttled: try again).
    async fn read(
        &self,
        keys: &[(String, String)],
    ) -> Result<Option<Vec<Option<Item>>>, StoreError> {
        let mut ka = KeysAndAttributes::builder().consistent_read(true);
        for (pk, sk) in keys {
            ka = ka.keys(
                [
                    ("pk".to_string(), string(pk)),
                    ("sk".to_string(), string(sk)),
                ]
                .into(),
            );
        }
        let ka = ka
            .build()
            .map_err(|e| StoreError::service("BatchGetItem(rate) builder", e))?;
        let mut out = self.table.batch_get(ka, "BatchGetItem(rate)").await?;
        if out
            .unprocessed_keys
            .as_ref()
            .and_then(|u| u.get(self.table.name()))
            .is_some_and(|ka| !ka.keys().is_empty())
        {
            return Ok(None);
        }
        let mut items = out
            .responses
            .as_mut()
            .and_then(|r| r.remove(self.table.name()))
            .unwrap_or_default();
        let key_of = |item: &Item, k: &str| match item.get(k) {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => String::new(),
        };
        Ok(Some(
            keys.iter()
                .map(|(pk, sk)| {
                    let i = items
                        .iter()
                        .position(|it| key_of(it, "pk") == *pk && key_of(it, "sk") == *sk)?;
                    Some(items.swap_remove(i))
                })
                .collect(),
        ))
    }

    /// The buckets `scopes` of `model` and, if `owner_day` is given, that day's usage, read
    /// together; `Ok(None)`: try again.
    async fn read_state(
        &self,
        model: &str,
        scopes: [&Scope; 2],
        owner_day: Option<(&str, &str)>,
    ) -> Result<Option<([Option<Stored>; 2], Option<DayUsage>)>, StoreError> {
        let mut keys: Vec<(String, String)> = scopes
            .iter()
            .map(|s| (rate_pk(model), bucket_sk(s)))
            .collect();
        if let Some((owner, day)) = owner_day {
            keys.push((usage_pk(owner), day_sk(day)));
        }
        let Some(mut items) = self.read(&keys).await? else {
            return Ok(None);
        };
        let usage = match owner_day {
            None => None,
            Some((_, day)) => Some(
                match items.pop().flatten() {
                    None => UsageItem::default(),
                    Some(item) => from_item(item, "usage")?,
                }
                .into_usage(day.to_string()),
            ),
        };
        let bucket = |item: Option<Item>| -> Result<Option<Stored>, StoreError> {
            item.map(|i| from_item::<BucketItem>(i, "rate bucket").map(Stored::from))
                .transpose()
        };
        let mut items = items.into_iter();
        let global = bucket(items.next().flatten())?;
        let owner = bucket(items.next().flatten())?;
        Ok(Some(([global, owner], usage)))
    }

    /// The write of a bucket's new `levels`, only if it is still as it was read.
    fn bucket_write(
        &self,
        model: &str,
        scope: &Scope,
        seen: Option<Stored>,
        levels: Levels,
        now_ms: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let u = self
            .table
            .update_in_transaction(rate_pk(model), bucket_sk(scope))
            .update_expression(
                "SET requests_milli = :r, tokens_milli = :t, refilled_at_ms = :at, \
                 bucket_version = :v, expires_at = :exp",
            )
            .expression_attribute_values(":r", number(levels.requests_milli))
            .expression_attribute_values(":t", number(levels.tokens_milli))
            .expression_attribute_values(":at", number(levels.refilled_at_ms))
            .expression_attribute_values(":exp", number(now_ms / 1000 + BUCKET_TTL_SECS));
        let u = match seen {
            None => u
                .condition_expression("attribute_not_exists(pk)")
                .expression_attribute_values(":v", number(1)),
            Some(s) => u
                .condition_expression("bucket_version = :seen")
                .expression_attribute_values(":seen", number(s.version))
                .expression_attribute_values(":v", number(s.version + 1)),
        };
        let update = u
            .build()
            .map_err(|e| StoreError::service("Update(rate bucket) builder", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The hold of `held` micro-dollars on the owner's day, only if it leaves the day within
    /// budget.
    fn hold(
        &self,
        owner: &str,
        day: &str,
        held: u64,
        now_ms: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let limit = self.limits.daily_budget_micro_usd.saturating_sub(held);
        let update = self
            .table
            .update_in_transaction(usage_pk(owner), day_sk(day))
            .update_expression(
                "ADD committed_micro_usd :h SET expires_at = if_not_exists(expires_at, :exp)",
            )
            .condition_expression("attribute_not_exists(pk) OR committed_micro_usd <= :limit")
            .expression_attribute_values(":h", number(held))
            .expression_attribute_values(":limit", number(limit))
            .expression_attribute_values(":exp", number(now_ms / 1000 + USAGE_TTL_SECS))
            .build()
            .map_err(|e| StoreError::service("Update(usage hold) builder", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A settled call counted on its reservation's day, its hold replaced by its cost.
    fn count(
        &self,
        r: &Reservation,
        used: TokenUsage,
        cost: u64,
        now_ms: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = self
            .table
            .update_in_transaction(usage_pk(&r.owner), day_sk(&r.day))
            .update_expression(
                "ADD input_tokens :i, output_tokens :o, call_count :one, cost_micro_usd :c, \
                 committed_micro_usd :adj SET expires_at = if_not_exists(expires_at, :exp)",
            )
            .expression_attribute_values(":i", number(used.input_tokens))
            .expression_attribute_values(":o", number(used.output_tokens))
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":c", number(cost))
            .expression_attribute_values(
                ":adj",
                number(i128::from(cost) - i128::from(r.held_micro_usd)),
            )
            .expression_attribute_values(":exp", number(now_ms / 1000 + USAGE_TTL_SECS))
            .build()
            .map_err(|e| StoreError::service("Update(usage count) builder", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The marker that makes a settle apply once.
    fn settled_marker(
        &self,
        r: &Reservation,
        now_ms: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let item = [
            ("pk".to_string(), string(usage_pk(&r.owner))),
            ("sk".to_string(), string(settled_sk(&r.id))),
            (
                "expires_at".to_string(),
                number(now_ms / 1000 + SETTLED_TTL_SECS),
            ),
        ]
        .into_iter()
        .collect();
        let put = self
            .table
            .put_new_in_transaction(item, "Put(settled marker) builder")?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

/// Whether a cancelled transaction's item `i` failed its condition.
fn failed(reasons: &[String], i: usize) -> bool {
    reasons
        .get(i)
        .is_some_and(|c| c == "ConditionalCheckFailed")
}

#[async_trait]
impl RateBuckets for RateStore {
    async fn reserve(
        &self,
        model: &str,
        owner: &str,
        estimate: TokenUsage,
    ) -> Result<Admission, RateError> {
        let held = precheck(&self.limits, model, estimate)?;
        let owner_scope = Scope::Owner(owner.to_string());
        for attempt in 0..MAX_ATTEMPTS {
            let started = Instant::now();
            let now = self.clock.now_ms();
            let day = day_of(now);
            let scopes = [&Scope::Global, &owner_scope];
            let Some(([global, mine], Some(usage))) = self
                .read_state(model, scopes, Some((owner, &day_string(day))))
                .await?
            else {
                tokio::time::sleep(backoff(attempt, started.elapsed())).await;
                continue;
            };
            check_budget(&self.limits, &usage, held, day).map_err(RateError::BudgetExceeded)?;
            let decision = decide(
                &self.limits,
                global.map(|s| s.levels),
                mine.map(|s| s.levels),
                estimate.total(),
                now,
            );
            let (g, o, at_ms) = match decision {
                Decision::Wait(retry_after) => return Ok(Admission::Wait { retry_after }),
                Decision::Admit {
                    global,
                    owner,
                    at_ms,
                } => (global, owner, at_ms),
            };
            let items = [
                self.bucket_write(model, &Scope::Global, global, g, now)?,
                self.bucket_write(model, &owner_scope, mine, o, now)?,
                self.hold(owner, &usage.day, held, now)?,
            ];
            let Some(reasons) = self
                .table
                .transact(&items, "TransactWriteItems(rate reserve)")
                .await?
            else {
                return Ok(Admission::Admitted(Reservation {
                    id: uuid::Uuid::new_v4().to_string(),
                    model: model.to_string(),
                    owner: owner.to_string(),
                    tokens: estimate.total(),
                    day: usage.day,
                    held_micro_usd: held,
                    admitted_at_ms: at_ms,
                }));
            };
            if failed(&reasons, 2) {
                // Another call's hold took the room: refuse with today's figures, unless a
                // settle has given some back meanwhile.
                let usage = self.usage(owner, day_string(day)).await?;
                check_budget(&self.limits, &usage, held, day).map_err(RateError::BudgetExceeded)?;
            }
            tracing::debug!(
                model,
                owner,
                attempt,
                ?reasons,
                "rate buckets moved; reading again"
            );
            tokio::time::sleep(backoff(attempt, started.elapsed())).await;
        }
        // The buckets kept moving under us: they are busy, which is what `Wait` says.
        tracing::info!(
            model,
            owner,
            "rate reservation contended {MAX_ATTEMPTS} times; waiting"
        );
        Ok(Admission::Wait {
            retry_after: backoff(MAX_ATTEMPTS, Duration::ZERO),
        })
    }

    async fn settle(
        &self,
        reservation: &Reservation,
        used: TokenUsage,
    ) -> Result<Settled, RateError> {
        let r = reservation;
        let cost = call_cost(&self.limits, &r.model, used)?;
        let returned = unused_tokens(r, used);
        let owner_scope = Scope::Owner(r.owner.clone());
        for attempt in 0..MAX_ATTEMPTS {
            let started = Instant::now();
            let now = self.clock.now_ms();
            let mut items = vec![
                self.settled_marker(r, now)?,
                self.count(r, used, cost, now)?,
            ];
            if returned != 0 {
                let Some(([global, mine], _)) = self
                    .read_state(&r.model, [&Scope::Global, &owner_scope], None)
                    .await?
                else {
                    tokio::time::sleep(backoff(attempt, started.elapsed())).await;
                    continue;
                };
                for (scope, seen) in [(&Scope::Global, global), (&owner_scope, mine)] {
                    let levels =
                        settle_levels(&self.limits, scope, seen.map(|s| s.levels), returned, now);
                    items.push(self.bucket_write(&r.model, scope, seen, levels, now)?);
                }
            }
            let Some(reasons) = self
                .table
                .transact(&items, "TransactWriteItems(rate settle)")
                .await?
            else {
                return Ok(Settled::Applied {
                    cost_micro_usd: cost,
                    returned_tokens: returned,
                });
            };
            if failed(&reasons, 0) {
                return Ok(Settled::AlreadySettled);
            }
            tracing::debug!(reservation = %r.id, attempt, ?reasons, "rate buckets moved; reading again");
            tokio::time::sleep(backoff(attempt, started.elapsed())).await;
        }
        Err(RateError::Store(StoreError::Busy {
            op: "TransactWriteItems(rate settle)",
            detail: format!("the buckets moved under {MAX_ATTEMPTS} attempts"),
        }))
    }
}

#[async_trait]
impl UsageReader for RateStore {
    async fn day_usage(&self, owner: &str, day: time::Date) -> Result<DayUsage, StoreError> {
        self.usage(owner, day_string(day)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_their_own_prefixes() {
        assert_eq!(
            rate_pk("amazon.nova-lite-v1:0"),
            "RATE#amazon.nova-lite-v1:0"
        );
        assert_eq!(bucket_sk(&Scope::Global), "GLOBAL");
        assert_eq!(bucket_sk(&Scope::Owner("alice".into())), "OWNER#alice");
        assert_eq!(usage_pk("alice"), "USAGE#alice");
        assert_eq!(day_sk("2026-12-03"), "DAY#2026-12-03");
        assert_eq!(settled_sk("r1"), "SETTLED#r1");
    }

    #[test]
    fn usage_item_decodes_with_the_hold_derived() {
        let item: super::super::table::Item = [
            ("pk".to_string(), string("USAGE#alice")),
            ("sk".to_string(), string("DAY#2026-12-03")),
            ("input_tokens".to_string(), number(10)),
            ("output_tokens".to_string(), number(5)),
            ("call_count".to_string(), number(1)),
            ("cost_micro_usd".to_string(), number(90)),
            ("committed_micro_usd".to_string(), number(150)),
        ]
        .into_iter()
        .collect();
        let u: UsageItem = super::super::table::from_item(item, "usage").unwrap();
        assert_eq!(
            u.into_usage("2026-12-03".into()),
            DayUsage {
                day: "2026-12-03".into(),
                input_tokens: 10,
                output_tokens: 5,
                calls: 1,
                cost_micro_usd: 90,
                held_micro_usd: 60,
            }
        );
    }
}
