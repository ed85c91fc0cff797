//! The `unique` second pass of a finalizing job: the exact search for repeated keys (one task
//! per group of key partitions), then a re-run of the chunks that own repeats.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use tessera_engine::chunk::ChunkOptions;
use tessera_engine::dialect::Dialect;
use tessera_engine::rules::unique::Repeats;
use tessera_engine::split::{self, ChunkTask};

use super::steps::unique_item_done;
use super::{job_dialect, planned_source, Pipeline, PipelineError};
use crate::job::{Job, JobState};
use crate::keys::{self, PartKind};
use crate::ledger::UniqueStep;
use crate::task::{ChunkTaskMessage, QueueMessage, UniqueSearchMessage};

impl Pipeline {
    /// Where the `unique` second pass of a finalizing job stands, moving it on: starts the
    /// search (one task per group), or, once every group reported, gathers the repeats and
    /// starts the re-runs of the chunks that own them; `Done` once those reported (or when there
    /// is nothing to re-run). A finalizer taking over a stalled job re-sends what is waiting.
    pub(super) async fn unique_stage(
        &self,
        job: &Job,
        tasks: &[ChunkTask],
        summaries: &[tessera_engine::split::ChunkSummary],
        unique: &[(String, usize)],
    ) -> Result<UniqueStage, PipelineError> {
        if let Some(waiting) = &job.unique_waiting {
            if waiting.is_empty() {
                return Ok(UniqueStage::Done {
                    reruns: job.unique_reruns,
                });
            }
            let again = crate::job::waiting_items(waiting);
            tracing::warn!(job_id = %job.id, chunks = again.len(), "re-sending the unique re-runs that have not reported");
            self.send_unique_reruns(job, tasks, summaries, &again)
                .await?;
            return Ok(UniqueStage::Waiting);
        }
        match &job.unique_search_waiting {
            None => {
                let groups = self.unique_groups(job, tasks, unique).await?;
                if groups.is_empty() {
                    // No non-empty value anywhere: nothing can repeat.
                    return Ok(UniqueStage::Done { reruns: 0 });
                }
                let items: Vec<u32> = (0..groups.len() as u32).collect();
                if self
                    .jobs
                    .begin_unique_step(&job.id, UniqueStep::Search, &items)
                    .await?
                {
                    tracing::info!(job_id = %job.id, groups = items.len(), "searching for unique repeats");
                    self.send_unique_searches(job, &items).await?;
                }
                Ok(UniqueStage::Waiting)
            }
            Some(waiting) if !waiting.is_empty() => {
                let again = crate::job::waiting_items(waiting);
                tracing::warn!(job_id = %job.id, groups = again.len(), "re-sending the unique searches that have not reported");
                self.send_unique_searches(job, &again).await?;
                Ok(UniqueStage::Waiting)
            }
            Some(_) => {
                // Every group reported: gather the repeats they found.
                let reads: Vec<_> = (0..job.unique_searches)
                    .map(|g| {
                        let key = keys::part_key(&job.owner, &job.id, PartKind::UniqueFound, g);
                        async move { self.objects.read_all(&key).await }
                    })
                    .collect();
                let found: Vec<Vec<u8>> = futures::stream::iter(reads)
                    .buffered(UNIQUE_READ_CONCURRENCY)
                    .try_collect()
                    .await?;
                let mut duplicates: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
                for (g, bytes) in found.iter().enumerate() {
                    let f: UniqueFound = serde_json::from_slice(bytes).map_err(|e| {
                        PipelineError::Malformed(format!("unique search group {g}: {e}"))
                    })?;
                    if !f.found.is_empty() {
                        duplicates.entry(f.rule).or_default().extend(f.found);
                    }
                }
                for v in duplicates.values_mut() {
                    v.sort_unstable();
                }
                let starts: Vec<u64> = tasks.iter().map(|t| t.start).collect();
                let (chunks, known) =
                    tessera_engine::rules::unique::rerun_plan(&duplicates, &starts);
                if chunks.is_empty() {
                    return Ok(UniqueStage::Done { reruns: 0 });
                }
                tracing::info!(job_id = %job.id, repeats = duplicates.values().map(Vec::len).sum::<usize>(), chunks = chunks.len(), "re-running the chunks that own unique repeats");
                // Each re-run reads only the repeats in its own range.
                let writes: Vec<_> = chunks
                    .iter()
                    .map(|&i| {
                        let t = tasks[i as usize];
                        let mine: Repeats = known
                            .iter()
                            .map(|(rule, offs)| {
                                let set = offs
                                    .iter()
                                    .copied()
                                    .filter(|&o| o >= t.start && o < t.end)
                                    .collect();
                                (rule.clone(), set)
                            })
                            .collect();
                        let body = serde_json::to_vec(&mine).unwrap_or_default();
                        let key = keys::part_key(&job.owner, &job.id, PartKind::UniqueRepeats, i);
                        async move { self.objects.put(&key, body, "application/json").await }
                    })
                    .collect();
                futures::stream::iter(writes)
                    .buffer_unordered(UNIQUE_READ_CONCURRENCY)
                    .try_collect::<Vec<_>>()
                    .await?;
                if self
                    .jobs
                    .begin_unique_step(&job.id, UniqueStep::Rerun, &chunks)
                    .await?
                {
                    self.send_unique_reruns(job, tasks, summaries, &chunks)
                        .await?;
                }
                Ok(UniqueStage::Waiting)
            }
        }
    }

    /// Sends the `unique` search tasks of `groups`.
    pub(super) async fn send_unique_searches(
        &self,
        job: &Job,
        groups: &[u32],
    ) -> Result<(), PipelineError> {
        let msgs: Vec<QueueMessage> = groups
            .iter()
            .map(|&group| {
                QueueMessage::UniqueSearch(UniqueSearchMessage {
                    job_id: job.id.clone(),
                    owner: job.owner.clone(),
                    group,
                })
            })
            .collect();
        self.queue.send_all(&msgs).await?;
        Ok(())
    }

    /// One search group of the `unique` second pass: finds its repeats, writes them to its
    /// `unique-found` part and reports back; the last group to report carries the job on.
    pub(super) async fn unique_search_message(
        &self,
        group: u32,
        job: Job,
    ) -> Result<(), PipelineError> {
        if job.state != JobState::Finalizing {
            tracing::info!(job_id = %job.id, group, state = job.state.as_str(), "job not finalizing; unique search skipped");
            return Ok(());
        }
        if !crate::job::is_waiting(job.unique_search_waiting.as_ref(), group) {
            tracing::info!(job_id = %job.id, group, "unique search already reported (redelivery)");
            return self.finalize_if_done(&job.id).await;
        }
        let rules = self.job_rules(&job).await?;
        let unique = rules.as_ref().map(|r| r.unique_rules()).unwrap_or_default();
        let tasks = split::plan(job.declared_size, job.header_len, job.chunk_size.max(1));
        // The headers are read once: they give the groups and the group's key ranges.
        let headers = self.unique_headers(&job, &tasks, unique.len()).await?;
        let g = *unique_groups_of(&job, &headers, unique.len())
            .get(group as usize)
            .ok_or_else(|| {
                PipelineError::Malformed(format!("unique search group {group} does not exist"))
            })?;
        let column = unique[g.rule as usize].1;
        let found = match self.unique_search(&job, &tasks, &headers, column, g).await {
            Ok(found) => found,
            Err(PipelineError::SourceChanged(detail)) => {
                let message = format!(
                    "The uploaded file could not be read again for the unique check: {detail}. \
                     The file was replaced or removed after its upload; upload it again as a new job."
                );
                return self.fail(&job, "source_changed", message).await;
            }
            Err(e) => return Err(e),
        };
        tracing::info!(job_id = %job.id, group, repeats = found.len(), "unique search group done");
        let body = serde_json::to_vec(&UniqueFound {
            rule: unique[g.rule as usize].0.clone(),
            found,
        })
        .map_err(|e| PipelineError::Malformed(e.to_string()))?;
        self.objects
            .put(
                &keys::part_key(&job.owner, &job.id, PartKind::UniqueFound, group),
                body,
                "application/json",
            )
            .await?;
        match unique_item_done(&*self.jobs, &job.id, UniqueStep::Search, group).await? {
            Some(job) => self.finalize(&job).await,
            None => Ok(()),
        }
    }

    /// Sends the `unique` re-run tasks of `chunks` (each with its known start state).
    pub(super) async fn send_unique_reruns(
        &self,
        job: &Job,
        tasks: &[ChunkTask],
        summaries: &[tessera_engine::split::ChunkSummary],
        chunks: &[u32],
    ) -> Result<(), PipelineError> {
        let msgs: Vec<QueueMessage> = chunks
            .iter()
            .map(|&i| {
                let t = tasks[i as usize];
                QueueMessage::UniqueRerun(ChunkTaskMessage {
                    job_id: job.id.clone(),
                    owner: job.owner.clone(),
                    index: i,
                    start: t.start,
                    end: t.end,
                    start_in_quotes: Some(summaries[i as usize].assumed_start_in_quotes),
                })
            })
            .collect();
        self.queue.send_all(&msgs).await?;
        Ok(())
    }

    /// A chunk's `unique` re-run: runs it again with the repeats in its range, reports back,
    /// and the last one to report finishes the job. Redelivered after reporting, it only helps
    /// a stalled finalization along, like any chunk message of a finalizing job.
    pub(super) async fn unique_rerun(
        &self,
        task: ChunkTaskMessage,
        job: Job,
    ) -> Result<(), PipelineError> {
        if job.state != JobState::Finalizing {
            tracing::info!(job_id = %job.id, chunk = task.index, state = job.state.as_str(), "job not finalizing; unique re-run skipped");
            return Ok(());
        }
        if !crate::job::is_waiting(job.unique_waiting.as_ref(), task.index) {
            tracing::info!(job_id = %job.id, chunk = task.index, "unique re-run already reported (redelivery)");
            return self.finalize_if_done(&job.id).await;
        }
        let bytes = self
            .objects
            .read_all(&keys::part_key(
                &job.owner,
                &job.id,
                PartKind::UniqueRepeats,
                task.index,
            ))
            .await?;
        let repeats: Repeats = serde_json::from_slice(&bytes).map_err(|e| {
            PipelineError::Malformed(format!("chunk {} unique repeats: {e}", task.index))
        })?;
        let engine_task = ChunkTask {
            index: task.index,
            start: task.start,
            end: task.end,
            start_in_quotes: task.start_in_quotes,
        };
        match self
            .run_chunk_with(&job, &engine_task, Some(Arc::new(repeats)))
            .await
        {
            Ok(_) => {}
            // It ran once already with the same bytes and rules; a failure now is the file
            // or the workflow changing under the job.
            Err(PipelineError::Engine(e)) => return self.fail(&job, e.code(), e.to_string()).await,
            Err(PipelineError::SourceChanged(detail)) => {
                let message = format!(
                    "Chunk {} could not read the uploaded file again for the unique check: \
                     {detail}. Upload the file again as a new job.",
                    task.index
                );
                return self.fail(&job, "source_changed", message).await;
            }
            Err(PipelineError::Rules { code, message }) => {
                return self.fail(&job, code, message).await
            }
            Err(e) => return Err(e),
        }
        match unique_item_done(&*self.jobs, &job.id, UniqueStep::Rerun, task.index).await? {
            Some(job) => self.finalize(&job).await,
            None => Ok(()),
        }
    }

    /// The chunks' `unique` key headers read from each chunk's keys object (one small GET per
    /// chunk, 16 at a time), and their bytes end to end in chunk order (the job's header index).
    pub(super) async fn read_unique_headers(
        &self,
        job: &Job,
        tasks: &[ChunkTask],
        rules: usize,
    ) -> Result<(Vec<crate::unique::KeysIndex>, Vec<u8>), PipelineError> {
        let parts = crate::unique::partitions_for(job.declared_size);
        let hlen = crate::unique::header_len(rules, parts);
        let reads: Vec<_> = tasks
            .iter()
            .map(|t| {
                let key = keys::part_key(&job.owner, &job.id, PartKind::Unique, t.index);
                self.read_piece(key, 0, hlen)
            })
            .collect();
        let heads: Vec<Vec<u8>> = futures::stream::iter(reads)
            .buffered(UNIQUE_READ_CONCURRENCY)
            .try_collect()
            .await?;
        let mut index = Vec::with_capacity(heads.len() * hlen as usize);
        let mut headers = Vec::with_capacity(heads.len());
        for (t, head) in tasks.iter().zip(&heads) {
            headers.push(
                crate::unique::KeysIndex::parse(head, rules, parts).map_err(|e| {
                    PipelineError::Malformed(format!("unique keys of chunk {}: {e}", t.index))
                })?,
            );
            index.extend_from_slice(&head[..hlen as usize]);
        }
        Ok((headers, index))
    }

    /// The chunks' `unique` key headers for a search task: from the job's header index (one
    /// GET; the finalizer writes it before it sends the searches), or, should that be missing
    /// or of another shape, from each chunk's keys object.
    pub(super) async fn unique_headers(
        &self,
        job: &Job,
        tasks: &[ChunkTask],
        rules: usize,
    ) -> Result<Vec<crate::unique::KeysIndex>, PipelineError> {
        let parts = crate::unique::partitions_for(job.declared_size);
        let hlen = crate::unique::header_len(rules, parts) as usize;
        let key = keys::part_key(&job.owner, &job.id, PartKind::UniqueIndex, 0);
        match self.objects.read_all(&key).await {
            Ok(bytes) if bytes.len() == hlen * tasks.len() => {
                let parsed: Result<Vec<_>, String> = bytes
                    .chunks(hlen)
                    .map(|h| crate::unique::KeysIndex::parse(h, rules, parts))
                    .collect();
                match parsed {
                    Ok(headers) => return Ok(headers),
                    Err(e) => {
                        tracing::warn!(job_id = %job.id, error = %e, "unique header index unreadable; reading each chunk's header")
                    }
                }
            }
            Ok(bytes) => {
                tracing::warn!(job_id = %job.id, len = bytes.len(), "unique header index of another shape; reading each chunk's header")
            }
            Err(e) => {
                tracing::warn!(job_id = %job.id, error = %e, "no unique header index; reading each chunk's header")
            }
        }
        Ok(self.read_unique_headers(job, tasks, rules).await?.0)
    }

    /// The search groups of the `unique` pass: per rule, runs of adjacent partitions holding
    /// about `GROUP_BYTES` of keys. Deterministic (from the chunks' immutable headers), so a
    /// finalizer taking over finds the same groups. Writes the job's header index on the way,
    /// so that each search task reads one object instead of one per chunk.
    pub(super) async fn unique_groups(
        &self,
        job: &Job,
        tasks: &[ChunkTask],
        unique: &[(String, usize)],
    ) -> Result<Vec<UniqueGroup>, PipelineError> {
        let (headers, index) = self.read_unique_headers(job, tasks, unique.len()).await?;
        self.objects
            .put(
                &keys::part_key(&job.owner, &job.id, PartKind::UniqueIndex, 0),
                index,
                "application/octet-stream",
            )
            .await?;
        Ok(unique_groups_of(job, &headers, unique.len()))
    }

    /// One search group of the `unique` pass: reads the group's keys from every chunk (one
    /// ranged GET each, 16 at a time; `headers` are the chunks' key headers, in chunk order),
    /// sorts them, and verifies the candidates (equal hashes) against the source values, so
    /// collisions are removed. `(repeat offset, first offset)`.
    pub(super) async fn unique_search(
        &self,
        job: &Job,
        tasks: &[ChunkTask],
        headers: &[crate::unique::KeysIndex],
        column: usize,
        group: UniqueGroup,
    ) -> Result<Vec<(u64, u64)>, PipelineError> {
        use tessera_engine::rules::unique::{candidate_groups, decode, exact_duplicates};
        let r = group.rule as usize;
        let dialect = job_dialect(job)?;
        let reads: Vec<_> = tasks
            .iter()
            .zip(headers)
            .map(|(t, h)| {
                let (start, len) = h.range(r, group.from, group.to);
                let key = keys::part_key(&job.owner, &job.id, PartKind::Unique, t.index);
                self.read_piece(key, start, len)
            })
            .collect();
        let pieces: Vec<Vec<u8>> = futures::stream::iter(reads)
            .buffered(UNIQUE_READ_CONCURRENCY)
            .try_collect()
            .await?;
        let mut entries: Vec<(u64, u64)> = Vec::new();
        for p in &pieces {
            entries.extend(decode(p));
        }
        drop(pieces);
        let groups = candidate_groups(&mut entries);
        drop(entries);
        let reads: Vec<_> = groups
            .iter()
            .flatten()
            .map(|&off| self.value_at(job, &dialect, off, column))
            .collect();
        let values: HashMap<u64, String> = futures::stream::iter(reads)
            .buffer_unordered(UNIQUE_READ_CONCURRENCY)
            .try_collect()
            .await?;
        let mut found = exact_duplicates(&groups, |off| values.get(&off).cloned().ok_or(()))
            .map_err(|()| PipelineError::Malformed("a candidate value was not read".into()))?;
        found.sort_unstable();
        Ok(found)
    }

    /// Bytes `[start, start+len)` of an object (nothing for `len` 0).
    pub(super) async fn read_piece(
        &self,
        key: String,
        start: u64,
        len: u64,
    ) -> Result<Vec<u8>, PipelineError> {
        Ok(self.objects.read_range(&key, start, len).await?)
    }

    /// Field `column` of the record that starts at byte `offset` of the job's source (a record
    /// start is outside quotes, so parsing from there is exact). Reads 64 KiB, more for longer
    /// records.
    pub(super) async fn value_at(
        &self,
        job: &Job,
        dialect: &Dialect,
        offset: u64,
        column: usize,
    ) -> Result<(u64, String), PipelineError> {
        let defaults = ChunkOptions::default();
        let cfg = tessera_engine::parse::ParserConfig {
            delimiter: dialect.delimiter,
            quote: dialect.quote,
            max_field_bytes: defaults.max_field_bytes,
            max_record_bytes: defaults.max_record_bytes,
        };
        let mut window: u64 = 64 << 10;
        loop {
            let len = window.min(job.declared_size.saturating_sub(offset));
            // Pinned like the chunk reads: a value read from another object would find or hide
            // repeats that the job's own bytes do not have.
            let bytes = crate::store::objects::read_planned(
                &self.objects,
                &job.source_key,
                offset,
                len,
                planned_source(job),
            )
            .await?;
            let at_eof = offset + len >= job.declared_size;
            let found = tessera_engine::rules::unique::field_at_start(&bytes, cfg, column, at_eof)?;
            if let Some(v) = found {
                return Ok((offset, v));
            }
            window *= 4;
        }
    }
}

/// Concurrent S3 reads of the `unique` pass (headers, key groups, values).
pub(super) const UNIQUE_READ_CONCURRENCY: usize = 16;

/// Where a finalizing job's `unique` second pass stands.
pub(super) enum UniqueStage {
    /// Tasks are out; the last one to report calls the finalizer again.
    Waiting,
    /// Done; `reruns` chunks were re-run with repeats.
    Done { reruns: u32 },
}

/// One search group of the `unique` pass (rule index, partitions `from..to`).
#[derive(Debug, Clone, Copy)]
pub(super) struct UniqueGroup {
    rule: u32,
    from: u32,
    to: u32,
}

/// The search groups of the `unique` pass from the chunks' key headers: per rule, runs of
/// adjacent partitions holding about `GROUP_BYTES` of keys.
pub(super) fn unique_groups_of(
    job: &Job,
    headers: &[crate::unique::KeysIndex],
    rules: usize,
) -> Vec<UniqueGroup> {
    let parts = crate::unique::partitions_for(job.declared_size);
    let mut groups = Vec::new();
    for r in 0..rules {
        let totals: Vec<u64> = (0..parts)
            .map(|p| headers.iter().map(|h| h.count(r, p)).sum())
            .collect();
        for (from, to) in crate::unique::group_partitions(&totals, crate::unique::GROUP_BYTES) {
            groups.push(UniqueGroup {
                rule: r as u32,
                from,
                to,
            });
        }
    }
    groups
}

/// What a search group found: `(repeat offset, first offset)` for its rule.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct UniqueFound {
    rule: String,
    found: Vec<(u64, u64)>,
}
