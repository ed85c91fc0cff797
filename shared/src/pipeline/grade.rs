//! A chunk's `model` sentiment rows graded: the rows the engine holds back are sampled (the
//! step's `sample` rate), sent in batches through the [`Grader`] while the job's cost is under
//! its limit, their grades put back, and the clean rows released. Each batch's usage (tokens,
//! cost, time waited) is added to the job's counters at once (an atomic `ADD`, which answers
//! the job's cost so far); once that reaches the job's limit, the rows left are written
//! `not_graded`. A throttled call is waited for here while the wait is short
//! ([`MAX_INLINE_WAIT`] each, [`MAX_CHUNK_WAIT`] in all); past that the chunk gives up with
//! `PipelineError::Throttled` and its task goes back on the queue with the delay (a Lambda does
//! not sleep long waiting for capacity).
//!
//! Not here: the calls, masking and schema (`crate::grading`), where grades go in a row (the
//! engine), the estimate before the run (`plan`).

use std::time::{Duration, Instant};

use tessera_engine::chunk::ChunkProcessor;
use tessera_engine::grading::{sampled, Grade, ModelRow};

use super::PipelineError;
use crate::grading::{Grader, Spent, Stop};
use crate::job::Job;
use crate::ledger::ModelUsage;
use crate::ports::JobLedger;

/// Rows held back before they are graded (a few calls' worth): bounds the clean rows a chunk
/// keeps in memory while it waits for grades.
pub(super) const GRADE_AT: usize = 4 * crate::grading::BATCH_ROWS;
/// Longest single wait for capacity inside a chunk.
pub(super) const MAX_INLINE_WAIT: Duration = Duration::from_secs(20);
/// Longest total wait for capacity inside one chunk run (the chunk function's timeout is 300 s).
pub(super) const MAX_CHUNK_WAIT: Duration = Duration::from_secs(90);
/// The sample's salt: fixed, so the same file and `sample` grade the same rows in every job
/// (and at every chunk size: the draw is the row's byte offset's hash).
pub const SAMPLE_SALT: u64 = 0x7e55_e7a5_a3b1_e000;

/// One chunk run's grading: what it spent and waited.
pub(super) struct ChunkGrading<'a> {
    job_id: &'a str,
    owner: &'a str,
    /// The job's cost limit (micro-dollars; 0: none recorded, so nothing is sent).
    max_micro_usd: u64,
    /// Per model step, the share of rows graded.
    sample_rates: &'a [f64],
    /// The job's cost reached its limit: the rows left are `not_graded`.
    capped: bool,
    pub spent: Spent,
    pub waited: Duration,
    /// What was already added to the job's counters.
    flushed: (Spent, Duration),
    throttles: u32,
    rows: u64,
}

impl<'a> ChunkGrading<'a> {
    pub fn new(job: &'a Job) -> Self {
        ChunkGrading {
            job_id: &job.id,
            owner: &job.owner,
            max_micro_usd: job.model_max_micro_usd,
            sample_rates: &job.model_sample_rates,
            capped: job.model_cost_micro_usd >= job.model_max_micro_usd,
            spent: Spent::default(),
            waited: Duration::ZERO,
            flushed: (Spent::default(), Duration::ZERO),
            throttles: 0,
            rows: 0,
        }
    }

    /// Adds what was spent and waited since the last call to the job's counters; marks the
    /// grading capped once the job's cost reaches its limit.
    async fn flush(&mut self, jobs: &dyn JobLedger) -> Result<(), PipelineError> {
        let (s, w) = self.flushed;
        let usage = ModelUsage {
            input_tokens: self.spent.input_tokens - s.input_tokens,
            output_tokens: self.spent.output_tokens - s.output_tokens,
            cost_micro_usd: self.spent.cost_micro_usd - s.cost_micro_usd,
            wait_ms: (self.waited.as_millis() - w.as_millis()) as u64,
        };
        if usage == ModelUsage::default() {
            return Ok(());
        }
        let total = jobs.add_model_usage(self.job_id, &usage).await?;
        self.flushed = (self.spent, self.waited);
        if total >= self.max_micro_usd {
            if !self.capped {
                tracing::info!(
                    job_id = self.job_id,
                    cost_micro_usd = total,
                    max_micro_usd = self.max_micro_usd,
                    "the job's model cost limit is reached; rows left are not graded"
                );
            }
            self.capped = true;
        }
        Ok(())
    }

    /// Grades every row `proc` holds back and writes their clean rows to `clean`.
    pub async fn grade(
        &mut self,
        grader: &Grader,
        jobs: &dyn JobLedger,
        proc: &mut ChunkProcessor,
        clean: &mut Vec<u8>,
    ) -> Result<(), PipelineError> {
        let rows: Vec<ModelRow> = proc.model_rows().to_vec();
        if rows.is_empty() {
            return Ok(());
        }
        let mut grades = vec![Grade::NotGraded; rows.len()];
        // The sample: drawn from each row's offset, so the same rows whatever the chunk size.
        let mut send = Vec::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            let rate = self
                .sample_rates
                .get(usize::from(r.step))
                .copied()
                .unwrap_or(1.0);
            if sampled(r.offset, SAMPLE_SALT ^ u64::from(r.step), rate) {
                send.push(i);
            } else {
                grades[i] = Grade::NotSampled;
            }
        }
        let send_rows: Vec<ModelRow> = send.iter().map(|&i| rows[i].clone()).collect();
        for range in Grader::batches(&send_rows) {
            if self.capped {
                // Left `not_graded`.
                continue;
            }
            let batch: Vec<&ModelRow> = send_rows[range.clone()].iter().collect();
            loop {
                match grader
                    .grade_batch(self.owner, &batch, self.throttles, &mut self.spent)
                    .await
                {
                    Ok(g) => {
                        for (k, g) in range.clone().zip(g) {
                            grades[send[k]] = g;
                        }
                        break;
                    }
                    Err(Stop::Wait(d)) => {
                        self.throttles += 1;
                        if d > MAX_INLINE_WAIT || self.waited + d > MAX_CHUNK_WAIT {
                            self.flush(jobs).await?;
                            return Err(PipelineError::Throttled(d));
                        }
                        tracing::info!(
                            wait_ms = d.as_millis() as u64,
                            "no model capacity; waiting"
                        );
                        let t = Instant::now();
                        tokio::time::sleep(d).await;
                        self.waited += t.elapsed();
                    }
                    Err(Stop::Budget(message)) => {
                        self.flush(jobs).await?;
                        return Err(PipelineError::Rules {
                            code: "budget_exceeded",
                            message,
                        });
                    }
                    Err(Stop::Model(message)) => {
                        self.flush(jobs).await?;
                        return Err(PipelineError::Rules {
                            code: "model_failed",
                            message,
                        });
                    }
                }
            }
            self.flush(jobs).await?;
        }
        self.rows += rows.len() as u64;
        proc.fill_model_rows(&grades, clean)?;
        Ok(())
    }

    pub fn log(&self, chunk: u32) {
        tracing::info!(
            job_id = self.job_id,
            chunk,
            rows = self.rows,
            calls = self.spent.calls,
            input_tokens = self.spent.input_tokens,
            output_tokens = self.spent.output_tokens,
            cost_micro_usd = self.spent.cost_micro_usd,
            retried_batches = self.spent.retried_batches,
            failed_batches = self.spent.failed_batches,
            waited_ms = self.waited.as_millis() as u64,
            capped = self.capped,
            "chunk graded"
        );
    }
}
