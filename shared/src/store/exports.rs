//! Export jobs in the jobs table (DynamoDB), under their job's partition:
//!
//! | access pattern                         | key                                                     |
//! |----------------------------------------|---------------------------------------------------------|
//! | get an export (api, workers)           | `pk = JOB#<job>`, `sk = EXPORT#<export>`                |
//! | a range's completion (idempotency)     | `pk = JOB#<job>`, `sk = EXPORT#<export>#R<range:06>`    |
//! | every range of an export (stitcher)    | `pk = JOB#<job>`, `sk begins_with EXPORT#<export>#R`    |
//!
//! As for chunks, a range's completion is one transaction: the range item is created only if
//! absent and the export's counters are added to in the same write (only while the export is
//! `queued`/`running`), so a redelivered range cannot count twice and a failed export takes no
//! more completions. The worker whose commit brings `ranges_done` to `range_count` sees it when
//! it reads the export back, and the conditional move `running -> stitching` lets exactly one
//! caller stitch. The status stream's filter admits only `META` and `COUNTER` items, so these
//! items cause no pushes.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use super::job_pk;
use super::table::{from_item, number, string, to_item, to_value, Table};
use super::StoreError;
use crate::export::job::{ExportJob, ExportState};
use crate::job::{now_rfc3339, JobError};

fn export_sk(export_id: &str) -> String {
    format!("EXPORT#{export_id}")
}

fn range_sk(export_id: &str, index: u32) -> String {
    format!("EXPORT#{export_id}#R{index:06}")
}

#[derive(Serialize, Deserialize)]
struct ExportItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    export: ExportJob,
}

/// One range's completion record: what the stitcher needs (rows and the quote-parity facts
/// that `split::validate` checks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeRecord {
    pub index: u32,
    pub rows: u64,
    pub bytes: u64,
    pub summary: tessera_engine::split::ChunkSummary,
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
    /// The export no longer takes completions (failed, or already stitching/completed).
    NotActive,
}

/// The export jobs adapter (same table as the jobs).
#[derive(Clone, Debug)]
pub struct ExportStore {
    table: Table,
}

impl ExportStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        ExportStore {
            table: Table::new(client, table),
        }
    }

    /// Creates an export; fails if the id exists.
    pub async fn create(&self, export: &ExportJob) -> Result<(), StoreError> {
        let item = ExportItem {
            pk: job_pk(&export.job_id),
            sk: export_sk(&export.id),
            export: export.clone(),
        };
        self.table
            .create(to_item(item, "export")?, "PutItem(export)")
            .await
    }

    /// Reads an export (strongly consistent).
    pub async fn get(
        &self,
        job_id: &str,
        export_id: &str,
    ) -> Result<Option<ExportJob>, StoreError> {
        let item: Option<ExportItem> = self
            .table
            .get(
                job_pk(job_id),
                export_sk(export_id),
                "export",
                "GetItem(export)",
            )
            .await?;
        Ok(item.map(|it| it.export))
    }

    /// Whether range `index` has a completion record.
    pub async fn range_done(
        &self,
        job_id: &str,
        export_id: &str,
        index: u32,
    ) -> Result<bool, StoreError> {
        self.table
            .exists(
                job_pk(job_id),
                range_sk(export_id, index),
                "GetItem(export range)",
            )
            .await
    }

    /// Records a range's completion and adds it to the export's counters, in one transaction
    /// (see the module docs). Moves a `queued` export to `running`.
    pub async fn complete_range(
        &self,
        export: &ExportJob,
        range: &RangeRecord,
    ) -> Result<RangeCommit, StoreError> {
        let pk = job_pk(&export.job_id);
        let item = RangeItem {
            pk: pk.clone(),
            sk: range_sk(&export.id, range.index),
            range: range.clone(),
            expires_at: export.expires_at,
        };
        let put = self
            .table
            .put_new_in_transaction(to_item(item, "export range")?, "Put(export range) builder")?;
        let update = self
            .table
            .update_in_transaction(&pk, export_sk(&export.id))
            .update_expression(
                "ADD ranges_done :one, #rows :rows, bytes_done :bytes \
                 SET #state = :running, updated_at = :now",
            )
            .condition_expression("#state IN (:queued, :running)")
            .expression_attribute_names("#rows", "rows")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":rows", number(range.rows))
            .expression_attribute_values(":bytes", number(range.bytes))
            .expression_attribute_values(":running", string(ExportState::Running.as_str()))
            .expression_attribute_values(":queued", string(ExportState::Queued.as_str()))
            .expression_attribute_values(":now", string(now_rfc3339()))
            .build()
            .map_err(|e| StoreError::service("Update(export) builder", e))?;
        match self
            .table
            .transact_put_update(put, update, "TransactWriteItems(export range)")
            .await?
        {
            None => Ok(RangeCommit::Committed),
            Some(_) => Ok(
                if self
                    .range_done(&export.job_id, &export.id, range.index)
                    .await?
                {
                    RangeCommit::AlreadyDone
                } else {
                    RangeCommit::NotActive
                },
            ),
        }
    }

    /// Every range completion record of an export, by index.
    pub async fn ranges(
        &self,
        job_id: &str,
        export_id: &str,
    ) -> Result<Vec<RangeRecord>, StoreError> {
        let items = self
            .table
            .query_prefix(
                job_pk(job_id),
                format!("{}#R", export_sk(export_id)),
                None,
                "Query(export ranges)",
            )
            .await?;
        let mut out = items
            .into_iter()
            .map(|item| from_item::<RangeItem>(item, "export range").map(|it| it.range))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|r| r.index);
        Ok(out)
    }

    /// One conditional `UpdateItem` of the export item; false when the condition failed.
    async fn update_if(
        &self,
        export: &ExportJob,
        set: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let mut req = self
            .table
            .update(job_pk(&export.job_id), export_sk(&export.id))
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
        super::applied(req.send().await, "UpdateItem(export)")
    }

    /// `running -> stitching` once every range is done; exactly one caller wins.
    pub async fn claim_stitching(&self, export: &ExportJob) -> Result<bool, StoreError> {
        self.update_if(
            export,
            "#state = :stitching",
            "#state = :running AND ranges_done >= :count",
            &[],
            vec![
                (":stitching", string(ExportState::Stitching.as_str())),
                (":running", string(ExportState::Running.as_str())),
                (":count", number(export.range_count)),
            ],
        )
        .await
    }

    /// Takes over a stitch whose worker died: the export is still `stitching` and has not
    /// moved since `updated_at`.
    pub async fn reclaim_stitching(&self, export: &ExportJob) -> Result<bool, StoreError> {
        self.update_if(
            export,
            "#state = :stitching",
            "#state = :stitching AND updated_at = :seen",
            &[],
            vec![
                (":stitching", string(ExportState::Stitching.as_str())),
                (":seen", string(&export.updated_at)),
            ],
        )
        .await
    }

    /// `stitching -> completed` with the exact row count, the object's size and how many
    /// ranges were converted again.
    pub async fn mark_completed(
        &self,
        export: &ExportJob,
        rows: u64,
        size: u64,
        reruns: u32,
    ) -> Result<bool, StoreError> {
        self.update_if(
            export,
            "#state = :completed, #rows = :rows, #size = :size, ranges_rerun = :reruns, completed_at = :now",
            "#state = :stitching",
            &[("#rows", "rows"), ("#size", "size")],
            vec![
                (":completed", string(ExportState::Completed.as_str())),
                (":stitching", string(ExportState::Stitching.as_str())),
                (":rows", number(rows)),
                (":size", number(size)),
                (":reruns", number(reruns)),
            ],
        )
        .await
    }

    /// `queued`/`running` -> `failed` with `error`, only if the export has not moved since it
    /// was read (same state, same `updated_at`).
    pub async fn mark_stalled(
        &self,
        export: &ExportJob,
        error: &JobError,
    ) -> Result<bool, StoreError> {
        self.fail_if(
            export,
            error,
            "#state = :seen_state AND updated_at = :seen AND #state IN (:queued, :running)",
            vec![
                (":seen_state", string(export.state.as_str())),
                (":seen", string(&export.updated_at)),
            ],
        )
        .await
    }

    /// Any non-final state -> `failed` with a stable code and a message safe to show.
    pub async fn mark_failed(
        &self,
        export: &ExportJob,
        error: &JobError,
    ) -> Result<bool, StoreError> {
        self.fail_if(
            export,
            error,
            "#state IN (:queued, :running, :stitching)",
            vec![(":stitching", string(ExportState::Stitching.as_str()))],
        )
        .await
    }

    /// `-> failed` with `error` if `condition` holds (it may name `:queued` and `:running`,
    /// and whatever `values` adds).
    async fn fail_if(
        &self,
        export: &ExportJob,
        error: &JobError,
        condition: &str,
        mut values: Vec<(&'static str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let err = to_value(error, "export error")?;
        values.extend([
            (":failed", string(ExportState::Failed.as_str())),
            (":queued", string(ExportState::Queued.as_str())),
            (":running", string(ExportState::Running.as_str())),
            (":err", err),
        ]);
        self.update_if(
            export,
            "#state = :failed, #error = :err",
            condition,
            &[("#error", "error")],
            values,
        )
        .await
    }
}
