//! Ranged jobs in the jobs table (DynamoDB), under their job's partition: export jobs
//! (`EXPORT#`) and query jobs (`QUERY#`). Both are "one task per byte range of an object, one
//! completion per range, the last completion assembles the result", so one adapter serves both,
//! generic over the record ([`RangedJob`]):
//!
//! | access pattern                         | key                                                 |
//! |----------------------------------------|-----------------------------------------------------|
//! | get a ranged job (api, workers)        | `pk = JOB#<job>`, `sk = <KIND>#<id>`                |
//! | a range's completion (idempotency)     | `pk = JOB#<job>`, `sk = <KIND>#<id>#R<range:06>`    |
//! | every range of a ranged job (assembly) | `pk = JOB#<job>`, `sk begins_with <KIND>#<id>#R`    |
//!
//! A record replaced after it failed starts run `n` ([`RangedJob::run`]); its range items are
//! `<KIND>#<id>#<n>#R<range:06>`, apart from the failed run's.
//!
//! As for chunks, a range's completion is one transaction: the range item is created only if
//! absent and the record's counters are added to in the same write (only while it is
//! `queued`/`running`), so a redelivered range cannot count twice and a failed record takes no
//! more completions. The worker whose commit brings `ranges_done` to `range_count` sees it when
//! it reads the record back, and the conditional move `running -> stitching` lets exactly one
//! caller assemble. The status stream's filter admits `META`, `COUNTER` and `QUERY#` items
//! without a range suffix (query progress is pushed; exports and range items cause no pushes).

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use super::job_pk;
use super::table::{from_item, number, string, to_item, to_value, Table};
use super::StoreError;
use crate::job::{now_rfc3339, JobError};
use crate::ranged::{RangedJob, RangedState};

fn record_sk<J: RangedJob>(id: &str) -> String {
    format!("{}#{id}", J::KIND)
}

/// The prefix of a run's range items: `<KIND>#<id>#R` (run 0), `<KIND>#<id>#<run>#R` after.
fn ranges_prefix<J: RangedJob>(id: &str, run: u32) -> String {
    match run {
        0 => format!("{}#{id}#R", J::KIND),
        n => format!("{}#{id}#{n}#R", J::KIND),
    }
}

fn range_sk<J: RangedJob>(id: &str, run: u32, index: u32) -> String {
    format!("{}{index:06}", ranges_prefix::<J>(id, run))
}

#[derive(Serialize, Deserialize)]
struct RecordItem<J> {
    pk: String,
    sk: String,
    #[serde(flatten)]
    record: J,
}

/// One range's completion record: what the assembler needs (rows and the quote-parity facts
/// that `split::validate` checks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeRecord {
    pub index: u32,
    pub rows: u64,
    pub bytes: u64,
    pub summary: tessera_engine::split::ChunkSummary,
    /// CPU time the range took, in milliseconds (query ranges; 0 for exports).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cpu_ms: u64,
    /// Partitions the range's part was cut into (a query range whose state spilled by key
    /// hash); 0 = one part.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub partitions: u32,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize)]
struct RangeItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    range: RangeRecord,
    expires_at: i64,
}

/// Outcome of recording a range's completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeCommit {
    /// This call recorded it and added the counters.
    Committed,
    /// Recorded before (a redelivered message): nothing changed.
    AlreadyDone,
    /// The record no longer takes completions (failed, or already stitching/completed).
    NotActive,
}

/// The ranged jobs adapter (same table as the jobs), for one kind of record.
#[derive(Debug)]
pub struct RangedStore<J> {
    table: Table,
    _record: std::marker::PhantomData<fn() -> J>,
}

impl<J> Clone for RangedStore<J> {
    fn clone(&self) -> Self {
        RangedStore {
            table: self.table.clone(),
            _record: std::marker::PhantomData,
        }
    }
}

impl<J: RangedJob> RangedStore<J> {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        RangedStore {
            table: Table::new(client, table),
            _record: std::marker::PhantomData,
        }
    }

    fn item(record: &J) -> RecordItem<J> {
        RecordItem {
            pk: job_pk(record.job_id()),
            sk: record_sk::<J>(record.id()),
            record: record.clone(),
        }
    }

    /// Creates a record; fails if the id exists.
    pub async fn create(&self, record: &J) -> Result<(), StoreError> {
        self.table
            .create(to_item(Self::item(record), J::KIND)?, "PutItem(ranged job)")
            .await
    }

    /// Creates a record unless one with its id exists (false then: nothing written). Query
    /// ids are derived from the question, so the same question asked twice meets its record.
    pub async fn create_new(&self, record: &J) -> Result<bool, StoreError> {
        self.table
            .put_new(to_item(Self::item(record), J::KIND)?, "PutItem(ranged job)")
            .await
    }

    /// Writes `record` in place of a failed one with the same id (a query asked again after it
    /// failed); false when the stored one is not failed (someone else replaced it first).
    pub async fn replace_failed(&self, record: &J) -> Result<bool, StoreError> {
        let req = self
            .table
            .client()
            .put_item()
            .table_name(self.table.name())
            .set_item(Some(to_item(Self::item(record), J::KIND)?))
            .condition_expression("#state = :failed")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":failed", string(RangedState::Failed.as_str()));
        super::applied(req.send().await, "PutItem(ranged job, replace)")
    }

    /// Reads a record (strongly consistent).
    pub async fn get(&self, job_id: &str, id: &str) -> Result<Option<J>, StoreError> {
        let item: Option<RecordItem<J>> = self
            .table
            .get(
                job_pk(job_id),
                record_sk::<J>(id),
                J::KIND,
                "GetItem(ranged job)",
            )
            .await?;
        Ok(item.map(|it| it.record))
    }

    /// Whether range `index` of `record`'s run has a completion record.
    pub async fn range_done(&self, record: &J, index: u32) -> Result<bool, StoreError> {
        self.table
            .exists(
                job_pk(record.job_id()),
                range_sk::<J>(record.id(), record.run(), index),
                "GetItem(ranged job range)",
            )
            .await
    }

    /// Records a range's completion and adds it to the record's counters, in one transaction
    /// (see the module docs). Moves a `queued` record to `running`.
    pub async fn complete_range(
        &self,
        record: &J,
        range: &RangeRecord,
    ) -> Result<RangeCommit, StoreError> {
        let pk = job_pk(record.job_id());
        let item = RangeItem {
            pk: pk.clone(),
            sk: range_sk::<J>(record.id(), record.run(), range.index),
            range: range.clone(),
            expires_at: record.expires_at(),
        };
        let put = self
            .table
            .put_new_in_transaction(to_item(item, "range")?, "Put(range) builder")?;
        let update = self
            .table
            .update_in_transaction(&pk, record_sk::<J>(record.id()))
            .update_expression(
                "ADD ranges_done :one, #rows :rows, bytes_done :bytes, cpu_ms :cpu \
                 SET #state = :running, updated_at = :now",
            )
            .condition_expression("#state IN (:queued, :running)")
            .expression_attribute_names("#rows", "rows")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":rows", number(range.rows))
            .expression_attribute_values(":bytes", number(range.bytes))
            .expression_attribute_values(":cpu", number(range.cpu_ms))
            .expression_attribute_values(":running", string(RangedState::Running.as_str()))
            .expression_attribute_values(":queued", string(RangedState::Queued.as_str()))
            .expression_attribute_values(":now", string(now_rfc3339()))
            .build()
            .map_err(|e| StoreError::service("Update(ranged job) builder", e))?;
        match self
            .table
            .transact_put_update(put, update, "TransactWriteItems(range)")
            .await?
        {
            None => Ok(RangeCommit::Committed),
            Some(_) => Ok(if self.range_done(record, range.index).await? {
                RangeCommit::AlreadyDone
            } else {
                RangeCommit::NotActive
            }),
        }
    }

    /// Every range completion record of `record`'s run, by index.
    pub async fn ranges(&self, record: &J) -> Result<Vec<RangeRecord>, StoreError> {
        let items = self
            .table
            .query_prefix(
                job_pk(record.job_id()),
                ranges_prefix::<J>(record.id(), record.run()),
                None,
                "Query(ranges)",
            )
            .await?;
        let mut out = items
            .into_iter()
            .map(|item| from_item::<RangeItem>(item, "range").map(|it| it.range))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|r| r.index);
        Ok(out)
    }

    /// One conditional `UpdateItem` of the record's item; false when the condition failed.
    async fn update_if(
        &self,
        record: &J,
        set: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let mut req = self
            .table
            .update(job_pk(record.job_id()), record_sk::<J>(record.id()))
            .update_expression(format!("SET {set}, updated_at = :now"))
            .condition_expression(condition)
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":now", string(now_rfc3339()));
        for (k, v) in names {
            req = req.expression_attribute_names(*k, *v);
        }
        for (k, v) in values {
            req = req.expression_attribute_values(k, v);
        }
        super::applied(req.send().await, "UpdateItem(ranged job)")
    }

    /// `running -> stitching` once every range is done; exactly one caller wins.
    pub async fn claim_stitching(&self, record: &J) -> Result<bool, StoreError> {
        self.update_if(
            record,
            "#state = :stitching",
            "#state = :running AND ranges_done >= :count",
            &[],
            vec![
                (":stitching", string(RangedState::Stitching.as_str())),
                (":running", string(RangedState::Running.as_str())),
                (":count", number(record.range_count())),
            ],
        )
        .await
    }

    /// Takes over an assembly whose worker died: the record is still `stitching` and has not
    /// moved since `updated_at`.
    pub async fn reclaim_stitching(&self, record: &J) -> Result<bool, StoreError> {
        self.update_if(
            record,
            "#state = :stitching",
            "#state = :stitching AND updated_at = :seen",
            &[],
            vec![
                (":stitching", string(RangedState::Stitching.as_str())),
                (":seen", string(record.updated_at())),
            ],
        )
        .await
    }

    /// `stitching -> completed` with the exact row count, the result's size, how many ranges
    /// were run again, and the record's own result attributes (`extra`: name, value).
    pub async fn mark_completed(
        &self,
        record: &J,
        rows: u64,
        size: u64,
        reruns: u32,
        extra: Vec<(&'static str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let mut set = String::from(
            "#state = :completed, #rows = :rows, #size = :size, ranges_rerun = :reruns, completed_at = :now",
        );
        let mut names = vec![("#rows", "rows"), ("#size", "size")];
        let mut values = vec![
            (":completed", string(RangedState::Completed.as_str())),
            (":stitching", string(RangedState::Stitching.as_str())),
            (":rows", number(rows)),
            (":size", number(size)),
            (":reruns", number(reruns)),
        ];
        let extra_names: Vec<(String, String)> = (0..extra.len())
            .map(|i| (format!("#x{i}"), format!(":x{i}")))
            .collect();
        for ((name, value), (n, v)) in extra.into_iter().zip(&extra_names) {
            set.push_str(&format!(", {n} = {v}"));
            names.push((n.as_str(), name));
            values.push((v.as_str(), value));
        }
        self.update_if(record, &set, "#state = :stitching", &names, values)
            .await
    }

    /// `queued`/`running` -> `failed` with `error`, only if the record has not moved since it
    /// was read (same state, same `updated_at`).
    pub async fn mark_stalled(&self, record: &J, error: &JobError) -> Result<bool, StoreError> {
        self.fail_if(
            record,
            error,
            "#state = :seen_state AND updated_at = :seen AND #state IN (:queued, :running)",
            vec![
                (":seen_state", string(record.state().as_str())),
                (":seen", string(record.updated_at())),
            ],
        )
        .await
    }

    /// Any non-final state -> `failed` with a stable code and a message safe to show.
    pub async fn mark_failed(&self, record: &J, error: &JobError) -> Result<bool, StoreError> {
        self.fail_if(
            record,
            error,
            "#state IN (:queued, :running, :stitching)",
            vec![(":stitching", string(RangedState::Stitching.as_str()))],
        )
        .await
    }

    /// `-> failed` with `error` if `condition` holds (it may name `:queued` and `:running`,
    /// and whatever `values` adds).
    async fn fail_if(
        &self,
        record: &J,
        error: &JobError,
        condition: &str,
        mut values: Vec<(&'static str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let err = to_value(error, "error")?;
        values.extend([
            (":failed", string(RangedState::Failed.as_str())),
            (":queued", string(RangedState::Queued.as_str())),
            (":running", string(RangedState::Running.as_str())),
            (":err", err),
        ]);
        self.update_if(
            record,
            "#state = :failed, #error = :err",
            condition,
            &[("#error", "error")],
            values,
        )
        .await
    }
}
