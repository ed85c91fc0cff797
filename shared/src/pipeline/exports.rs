//! Export jobs' work on the chunk workers (the model: `export::job`). An export's ranges share
//! the chunk task queue; each range is converted into its part, and the worker completing the
//! last range stitches the parts into the export object.

use tessera_engine::chunk::Feed;
use tessera_engine::parse::{ParserConfig, RecordBuf};
use tessera_engine::range::RangeReader;
use tessera_engine::split::{self, ChunkTask};

use super::ranged::DeadRange;
use super::{Pipeline, PipelineError};
use crate::export::job::{ExportJob, ExportState};
use crate::export::{Converter, ExportError};
use crate::job::JobError;
use crate::keys;
use crate::ranged::RangedJob;
use crate::store::exports::{RangeCommit, RangeRecord};
use crate::store::objects::ObjectStore;
use crate::store::objects::{next_piece, open_planned, PartSink, Planned};
use crate::task::ExportRangeMessage;

/// How long an export may sit in `stitching` before a redelivered range takes the stitch over
/// (the chunk function's timeout is 300 s).
const STALE_STITCHING: std::time::Duration = std::time::Duration::from_secs(600);

/// How far past its end a range on a guessed start state reads before giving up (it is then
/// converted again with the known state): beyond the longest record.
const MAX_OVERRUN: u64 = 64 << 20;

/// An export still `queued` or `running` that has not moved for this long is failed
/// `export_stalled` when its status is read ([`fail_if_stalled`]). By then nothing can move it:
/// a range task is delivered at most 3 times (the chunk queue's `maxReceiveCount`), each for
/// at most the queue's 30-minute visibility timeout, and the dead-letter consumer fails the
/// export when the last delivery fails. What is left are exports whose tasks never ran: the
/// api stopped between saving the export and queueing its ranges, or a worker of an older
/// deployment skipped them during a stack update.
pub const EXPORT_STALLED_AFTER: std::time::Duration = std::time::Duration::from_secs(2 * 3600);

/// `export` as it should be shown: failed `export_stalled` (its parts removed, best effort) if
/// it is `queued` or `running` and has not moved for [`EXPORT_STALLED_AFTER`]; else unchanged.
/// The move is conditional on the export not having moved since it was read, so progress made
/// meanwhile wins.
pub async fn fail_if_stalled(
    exports: &crate::store::exports::ExportStore,
    objects: &crate::store::objects::ObjectStore,
    export: ExportJob,
) -> Result<ExportJob, crate::store::StoreError> {
    let error = JobError::new(
        "export_stalled",
        format!(
            "The export made no progress for {} hours and was stopped; nothing was written. Start it again with POST /v1/jobs/{}/exports.",
            EXPORT_STALLED_AFTER.as_secs() / 3600,
            export.job_id
        ),
    );
    super::ranged::fail_if_stalled(exports, objects, export, EXPORT_STALLED_AFTER, error).await
}
impl Pipeline {
    /// The export and the task of a range message, or `None` (logged) when no one can act on
    /// it: the export is unknown or the owners differ. Such a message is acknowledged.
    async fn export_of(
        &self,
        msg: &ExportRangeMessage,
    ) -> Result<Option<(ExportJob, ChunkTask)>, PipelineError> {
        let Some(export) = self.exports.get(&msg.job_id, &msg.export_id).await? else {
            tracing::warn!(job_id = %msg.job_id, export_id = %msg.export_id, "range of an unknown export ignored");
            return Ok(None);
        };
        if export.owner != msg.owner {
            tracing::warn!(job_id = %msg.job_id, export_id = %msg.export_id, "export range owner does not match the export; ignored");
            return Ok(None);
        }
        let task = ChunkTask {
            index: msg.index,
            start: msg.start,
            end: msg.end,
            start_in_quotes: msg.start_in_quotes,
        };
        Ok(Some((export, task)))
    }

    /// Handles one export range message (see the module docs). Only transient failures return
    /// an error, so SQS redelivers the message.
    pub async fn export_range_message(&self, msg: ExportRangeMessage) -> Result<(), PipelineError> {
        let Some((export, task)) = self.export_of(&msg).await? else {
            return Ok(());
        };
        let span = tracing::info_span!("export_range", job_id = %export.job_id, export_id = %export.id, range = task.index);
        tracing::Instrument::instrument(self.export_range(export, task), span).await
    }

    async fn export_range(&self, export: ExportJob, task: ChunkTask) -> Result<(), PipelineError> {
        match export.state {
            ExportState::Queued | ExportState::Running => {}
            ExportState::Stitching => return self.stitch_if_done(&export).await,
            s => {
                tracing::info!(state = s.as_str(), "export not active; range skipped");
                return Ok(());
            }
        }
        if self.exports.range_done(&export, task.index).await? {
            tracing::info!("range already done (redelivery)");
            return self.stitch_if_done(&export).await;
        }
        let started = std::time::Instant::now();
        let record = match self.convert_range(&export, &task).await {
            Ok(r) => r,
            Err(PipelineError::Engine(e)) => {
                return self
                    .fail_export(
                        &export,
                        "export_conversion_failed",
                        format!("Range {} of the output could not be converted ({}). Report the job id if this repeats.", task.index, e.code()),
                        e.to_string(),
                    )
                    .await
            }
            Err(PipelineError::SourceChanged(detail)) => {
                return self
                    .fail_export(
                        &export,
                        "export_source_changed",
                        "The job's output changed or disappeared while it was being exported. Ask for the export again.",
                        detail,
                    )
                    .await
            }
            Err(e) => return Err(e),
        };
        match self.exports.complete_range(&export, &record).await? {
            RangeCommit::Committed => {
                tracing::info!(
                    rows = record.rows,
                    bytes = record.bytes,
                    ms = started.elapsed().as_millis() as u64,
                    "export range done"
                );
                let Some(now) = self.exports.get(&export.job_id, &export.id).await? else {
                    return Ok(());
                };
                self.stitch_if_done(&now).await
            }
            RangeCommit::AlreadyDone => self.stitch_if_done(&export).await,
            RangeCommit::NotActive => {
                // Failed while this range ran: its part must not outlive the export.
                let key =
                    keys::export_part_key(&export.owner, &export.job_id, &export.id, task.index);
                if let Err(e) = self.objects.delete_keys(&[key]).await {
                    tracing::warn!(error = %e, "could not delete the part of a failed export; the bucket's expiry rule will");
                }
                Ok(())
            }
        }
    }

    /// Converts the records range `task` owns into its part and returns its completion record.
    async fn convert_range(
        &self,
        export: &ExportJob,
        task: &ChunkTask,
    ) -> Result<RangeRecord, PipelineError> {
        let mut conv = Converter::new(export.format, export.columns.clone(), export.formula_escape);
        let header = self
            .objects
            .read_range(&export.source_key, 0, export.header_len)
            .await?;
        let mut header_out = Vec::new();
        conv.feed(&header, &mut header_out)
            .map_err(export_engine_error)?;
        if !conv.has_header() {
            return Err(PipelineError::SourceChanged(
                "the output's header record does not end where it was planned".into(),
            ));
        }
        let mut sink = PartSink::new(
            self.objects.clone(),
            keys::export_part_key(&export.owner, &export.job_id, &export.id, task.index),
            export.format.content_type(),
        );
        if task.index == 0 {
            // Range 0's part starts with the header (empty for JSON Lines), so stitching is a
            // plain concatenation.
            sink.buf.extend_from_slice(&header_out);
        }
        let read_from = tessera_engine::chunk::read_start(task);
        let mut body = open_planned(
            &self.objects,
            &export.source_key,
            read_from,
            Planned {
                size: export.source_size,
                etag: export.source_etag.as_deref(),
            },
            ("output", "export"),
        )
        .await?;
        let mut reader = RangeReader::new(task, ParserConfig::default(), MAX_OVERRUN);
        let mut failed: Option<ExportError> = None;
        loop {
            let Some(bytes) = next_piece(&mut body).await? else {
                break;
            };
            let state = reader.feed(&bytes, &mut |rec: &RecordBuf| {
                if failed.is_none() {
                    failed = conv.push_record(rec, &mut sink.buf).err();
                }
            })?;
            if let Some(e) = failed.take() {
                return Err(export_engine_error(e));
            }
            sink.flush_if_full().await?;
            if state == Feed::Done {
                break;
            }
        }
        drop(body);
        let summary = reader.finish(&mut |rec: &RecordBuf| {
            if failed.is_none() {
                failed = conv.push_record(rec, &mut sink.buf).err();
            }
        })?;
        if let Some(e) = failed.take() {
            return Err(export_engine_error(e));
        }
        sink.close().await?;
        Ok(RangeRecord {
            index: task.index,
            rows: conv.rows,
            bytes: task.end - task.start,
            summary,
            cpu_ms: 0,
            partitions: 0,
        })
    }

    /// Stitches the export if every range is done and this caller wins the claim, or takes
    /// over a stitch that stalled.
    async fn stitch_if_done(&self, export: &ExportJob) -> Result<(), PipelineError> {
        let Some(export) = self
            .claim_assembly(&self.exports, export, STALE_STITCHING)
            .await?
        else {
            return Ok(());
        };
        match self.try_stitch(&export).await {
            Ok(()) => Ok(()),
            Err(PipelineError::Engine(e)) => {
                let message = match &e {
                    tessera_engine::error::EngineError::UnbalancedQuote { .. } => {
                        "The output ends inside a quoted field, so it cannot be converted. Report the job id.".to_string()
                    }
                    _ => "The output could not be converted. Report the job id.".to_string(),
                };
                self.fail_export(&export, "export_invalid_output", message, e.to_string())
                    .await
            }
            Err(e) => {
                self.fail_export(
                    &export,
                    "export_failed",
                    "Tessera could not assemble this export. Ask for it again; if it fails again, report the job id.",
                    e.to_string(),
                )
                .await
            }
        }
    }

    /// Validates the ranges' quote-state guesses (re-converting mispredicted ranges), then
    /// concatenates the parts in order into the export object and completes the export.
    async fn try_stitch(&self, export: &ExportJob) -> Result<(), PipelineError> {
        let started = std::time::Instant::now();
        let tasks = export.ranges();
        let mut records = self.exports.ranges(export).await?;
        super::ranged::check_records(&records, &tasks).map_err(PipelineError::Malformed)?;
        let summaries: Vec<_> = records.iter().map(|r| r.summary).collect();
        let reruns = split::validate(&summaries);
        for &(index, in_quotes) in &reruns {
            let mut t = tasks[index as usize];
            t.start_in_quotes = Some(in_quotes);
            tracing::info!(
                range = index,
                in_quotes,
                "re-converting a range whose quote state was mispredicted"
            );
            records[index as usize] = self.convert_range(export, &t).await?;
        }
        let summaries: Vec<_> = records.iter().map(|r| r.summary).collect();
        split::check_complete(&summaries)?;
        let rows: u64 = records.iter().map(|r| r.rows).sum();
        let parts = export.part_keys();
        let size = self
            .objects
            .concat(&export.key, &parts, export.format.content_type())
            .await?;
        if self
            .exports
            .mark_completed(export, rows, size, reruns.len() as u32, Vec::new())
            .await?
        {
            tracing::info!(
                rows,
                size,
                ranges = tasks.len(),
                reruns = reruns.len(),
                stitch_ms = started.elapsed().as_millis() as u64,
                "export completed"
            );
        } else {
            // Failed while stitching (the dead-letter consumer): the object must not stay.
            tracing::warn!("export failed while it was stitched; removing the object");
            let _ = self
                .objects
                .delete_keys(std::slice::from_ref(&export.key))
                .await;
        }
        if let Err(e) = self.objects.delete_keys(&parts).await {
            tracing::warn!(error = %e, "could not delete an export's parts; the bucket's expiry rule will");
        }
        Ok(())
    }

    /// Fails the export with `code` and the caller-safe `message` (the detail goes to the log
    /// only) and removes its parts, best effort.
    async fn fail_export(
        &self,
        export: &ExportJob,
        code: &str,
        message: impl Into<String>,
        detail: String,
    ) -> Result<(), PipelineError> {
        self.fail_ranged(&self.exports, export, code, message.into(), &detail)
            .await?;
        Ok(())
    }

    /// An export range that reached the dead-letter queue: a running export whose range has
    /// no completion fails `export_attempts_exhausted`; one stuck stitching for longer than a
    /// stitch can live fails `export_failed`. Anything else is left as it is.
    pub async fn dead_export_range(&self, msg: ExportRangeMessage) -> Result<(), PipelineError> {
        let Some((export, task)) = self.export_of(&msg).await? else {
            return Ok(());
        };
        match self
            .dead_range(&self.exports, &export, task.index, STALE_STITCHING)
            .await?
        {
            DeadRange::Ignore => Ok(()),
            DeadRange::Exhausted => {
                self.fail_export(
                    &export,
                    "export_attempts_exhausted",
                    format!(
                        "Range {} of the output (bytes {}-{}) was tried {} times and never finished. Ask for the export again; if it fails again, report the job id.",
                        task.index, task.start, task.end, super::MAX_CHUNK_DELIVERIES
                    ),
                    "dead-lettered".into(),
                )
                .await
            }
            DeadRange::NeverAssembled => {
                self.fail_export(
                    &export,
                    "export_failed",
                    "Tessera could not assemble this export: every attempt stopped before finishing. Ask for it again; if it fails again, report the job id.",
                    "stitch never finished".into(),
                )
                .await
            }
        }
    }
}

/// Conversion errors are the data's (an engine error); store errors stay transient.
fn export_engine_error(e: ExportError) -> PipelineError {
    match e {
        ExportError::Engine(e) => PipelineError::Engine(e),
        ExportError::Store(e) => PipelineError::Store(e),
        // The api checked the columns against this header when it planned the export.
        ExportError::UnknownColumn { .. } => PipelineError::SourceChanged(e.to_string()),
    }
}

/// Output buffered by a synchronous export before it goes to S3 as one multipart part.
const PART: usize = 8 * 1024 * 1024;

/// Streams `src` through `conv` into `dest` (one PUT when small, multipart otherwise). Memory:
/// the network buffer plus one 8 MiB part. Returns the data rows written.
pub async fn export_object(
    objects: &ObjectStore,
    src: &str,
    dest: &str,
    mut conv: Converter,
    content_type: &str,
) -> Result<u64, ExportError> {
    let mut body = objects.stream_from(src, 0).await?;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut upload: Option<crate::store::objects::MultipartWriter> = None;
    loop {
        let next = body
            .try_next()
            .await
            .map_err(|e| crate::store::StoreError::Service {
                op: "GetObject(stream)",
                detail: e.to_string(),
            })?;
        let Some(bytes) = next else { break };
        if let Err(e) = conv.feed(&bytes, &mut buf) {
            if let Some(u) = &upload {
                u.abort().await;
            }
            return Err(e);
        }
        if buf.len() >= PART {
            if upload.is_none() {
                upload = Some(objects.start_multipart(dest, content_type).await?);
            }
            let part = std::mem::take(&mut buf);
            upload.as_mut().expect("started").write_part(part).await?;
        }
    }
    conv.finish(&mut buf)?;
    match upload {
        None => objects.put(dest, buf, content_type).await?,
        Some(mut u) => {
            if !buf.is_empty() {
                u.write_part(buf).await?;
            }
            u.complete().await?;
        }
    }
    Ok(conv.rows)
}
