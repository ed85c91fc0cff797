//! A job's compiled rules: its workflow version, reference files and mask key compiled against
//! its header, cached per worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tessera_engine::rules::{CompiledRules, ResolvedRefs};

use super::{Pipeline, PipelineError};
use crate::job::Job;

/// Compiled rules per (workflow, version, job) (a dry run's: ("", 0, job)): a job's chunks on a warm worker compile once.
/// Keyed by job too, because the header and the reference files are the job's.
pub(super) type RulesCache = Arc<Mutex<HashMap<(String, u32, String), Arc<CompiledRules>>>>;
/// Entries kept before the cache starts over (each is one compiled document).
const RULES_CACHE_ENTRIES: usize = 64;

impl Pipeline {
    /// The job's compiled rules (`None` without a workflow), from the cache or built: the
    /// version's document, its reference files (`refs/<owner>/<key>`), the mask key, compiled
    /// against the job's header. Failures the job cannot recover from are `PipelineError::Rules`.
    pub(super) async fn job_rules(
        &self,
        job: &Job,
    ) -> Result<Option<Arc<CompiledRules>>, PipelineError> {
        let rules_failure =
            |code: &'static str, message: String| PipelineError::Rules { code, message };
        // Where the document comes from: a workflow version, or a dry run's own record.
        let (key, rules_json, what) = match (&job.workflow, &job.rules_trial) {
            (Some(wf), _) => (
                (wf.id.clone(), wf.version, job.id.clone()),
                None,
                format!("workflow {} version {}", wf.id, wf.version),
            ),
            (None, Some(t)) => (
                (String::new(), 0, job.id.clone()),
                Some(t.rules_json.clone()),
                "the rules of this dry run".to_string(),
            ),
            (None, None) => return Ok(None),
        };
        if let Some(r) = self
            .rules_cache
            .lock()
            .ok()
            .and_then(|c| c.get(&key).cloned())
        {
            return Ok(Some(r));
        }
        let rules_json = match (rules_json, &job.workflow) {
            (Some(j), _) => j,
            (None, Some(wf)) => match self.workflows.version(&wf.id, wf.version).await? {
                Some(v) => v.rules_json,
                None => {
                    return Err(rules_failure(
                        "workflow_missing",
                        format!(
                            "Version {} of workflow {} no longer exists.",
                            wf.version, wf.id
                        ),
                    ))
                }
            },
            (None, None) => return Ok(None),
        };
        let doc = tessera_engine::rules::parse_document(&rules_json)
            .map_err(|errs| rules_failure("invalid_rules", describe(&errs)))?;
        let mut refs = ResolvedRefs::none();
        for r in doc.references() {
            let s3_key = crate::workflow::reference_key(&job.owner, &r.key)
                .map_err(|m| rules_failure("invalid_rules", m))?;
            // One ranged GET of at most MAX + 1 bytes: whatever size the file was declared or
            // had when listed, a worker never holds more than the limit (plus one byte to know).
            let max = crate::workflow::MAX_REFERENCE_BYTES;
            let Some(bytes) = self.objects.read_at_most(&s3_key, max).await? else {
                return Err(rules_failure(
                    "reference_missing",
                    format!(
                        "The reference file `{}` (a one_of list of {what}) does not exist. Upload it with POST /v1/references {{\"key\": \"{}\"}} and start a new job.",
                        r.key, r.key
                    ),
                ));
            };
            if bytes.len() as u64 > max {
                return Err(rules_failure(
                    "reference_too_large",
                    format!(
                        "The reference file `{}` is larger than {max} bytes (64 MiB), the most a reference may be. Keep only the column the rule reads.",
                        r.key,
                    ),
                ));
            }
            let values =
                tessera_engine::file::read_column_values(&bytes, &r.column).map_err(|e| {
                    rules_failure(
                        "reference_invalid",
                        format!("The reference file `{}` cannot be used: {e}", r.key),
                    )
                })?;
            refs.insert(r, values);
        }
        if doc.needs_mask_key() && self.config.mask_key.is_none() {
            return Err(rules_failure(
                "mask_key_missing",
                "The workflow masks values with tokens, and no mask key is configured (TESSERA_MASK_KEY_HEX). Ask the operator to set one.".into(),
            ));
        }
        let compiled =
            CompiledRules::compile(&doc, &job.columns, &refs, self.config.mask_key.as_deref())
                .map_err(|errs| {
                    rules_failure(
                        "invalid_rules",
                        format!("The workflow does not fit this file: {}", describe(&errs)),
                    )
                })?;
        let compiled = Arc::new(compiled);
        if let Ok(mut c) = self.rules_cache.lock() {
            if c.len() >= RULES_CACHE_ENTRIES {
                c.clear();
            }
            c.insert(key, compiled.clone());
        }
        Ok(Some(compiled))
    }
}

/// Validation errors as one line for a job's error message.
fn describe(errs: &[tessera_engine::rules::ValidationError]) -> String {
    errs.iter()
        .take(5)
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}
