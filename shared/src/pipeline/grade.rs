//! A chunk's `model` sentiment rows graded: the rows the engine holds back are sent in
//! batches through the [`Grader`], their grades put back, and the clean rows released. A
//! throttled call is waited for here while the wait is short ([`MAX_INLINE_WAIT`] each,
//! [`MAX_CHUNK_WAIT`] in all); past that the chunk gives up with `PipelineError::Throttled`
//! and its task goes back on the queue with the delay (a Lambda does not sleep long waiting
//! for capacity).
//!
//! Not here: the calls, masking and schema (`crate::grading`), where grades go in a row (the
//! engine).

use std::time::{Duration, Instant};

use tessera_engine::chunk::ChunkProcessor;
use tessera_engine::grading::ModelRow;

use super::PipelineError;
use crate::grading::{Grader, Spent, Stop};

/// Rows held back before they are graded (a few calls' worth): bounds the clean rows a chunk
/// keeps in memory while it waits for grades.
pub(super) const GRADE_AT: usize = 4 * crate::grading::BATCH_ROWS;
/// Longest single wait for capacity inside a chunk.
pub(super) const MAX_INLINE_WAIT: Duration = Duration::from_secs(20);
/// Longest total wait for capacity inside one chunk run (the chunk function's timeout is 300 s).
pub(super) const MAX_CHUNK_WAIT: Duration = Duration::from_secs(90);

/// One chunk run's grading: what it spent and waited.
pub(super) struct ChunkGrading<'a> {
    owner: &'a str,
    pub spent: Spent,
    pub waited: Duration,
    throttles: u32,
    rows: u64,
}

impl<'a> ChunkGrading<'a> {
    pub fn new(owner: &'a str) -> Self {
        ChunkGrading {
            owner,
            spent: Spent::default(),
            waited: Duration::ZERO,
            throttles: 0,
            rows: 0,
        }
    }

    /// Grades every row `proc` holds back and writes their clean rows to `clean`.
    pub async fn grade(
        &mut self,
        grader: &Grader,
        proc: &mut ChunkProcessor,
        clean: &mut Vec<u8>,
    ) -> Result<(), PipelineError> {
        let rows: Vec<ModelRow> = proc.model_rows().to_vec();
        if rows.is_empty() {
            return Ok(());
        }
        let mut grades = Vec::with_capacity(rows.len());
        for range in Grader::batches(&rows) {
            let batch: Vec<&ModelRow> = rows[range].iter().collect();
            loop {
                match grader
                    .grade_batch(self.owner, &batch, self.throttles, &mut self.spent)
                    .await
                {
                    Ok(g) => {
                        grades.extend(g);
                        break;
                    }
                    Err(Stop::Wait(d)) => {
                        self.throttles += 1;
                        if d > MAX_INLINE_WAIT || self.waited + d > MAX_CHUNK_WAIT {
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
                        return Err(PipelineError::Rules {
                            code: "budget_exceeded",
                            message,
                        })
                    }
                    Err(Stop::Model(message)) => {
                        return Err(PipelineError::Rules {
                            code: "model_failed",
                            message,
                        })
                    }
                }
            }
        }
        self.rows += rows.len() as u64;
        proc.fill_model_rows(&grades, clean)?;
        Ok(())
    }

    pub fn log(&self, job_id: &str, chunk: u32) {
        tracing::info!(
            job_id,
            chunk,
            rows = self.rows,
            calls = self.spent.calls,
            input_tokens = self.spent.input_tokens,
            output_tokens = self.spent.output_tokens,
            cost_micro_usd = self.spent.cost_micro_usd,
            retried_batches = self.spent.retried_batches,
            failed_batches = self.spent.failed_batches,
            waited_ms = self.waited.as_millis() as u64,
            "chunk graded"
        );
    }
}
