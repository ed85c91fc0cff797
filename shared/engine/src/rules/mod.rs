//! Data rules: the versioned rule document (checks, transforms, masks, what a violation does),
//! its validation with JSON paths, and its evaluation per record at chunk speed.
//!
//! How a caller uses it (the contract is in docs/rules.md):
//! 1. [`parse_document`] the JSON (every structural error, with its path);
//! 2. load the reference lists it names ([`RuleDocument::references`]) and the mask key;
//! 3. [`CompiledRules::compile`] against the file's header (every semantic error, with its path);
//! 4. put the `Arc<CompiledRules>` in `ChunkOptions.rules`; each chunk's `ChunkResult` then
//!    carries `violations` per rule id (add them up) and `unique_keys` (the second pass in
//!    [`unique`]); the clean header is [`CompiledRules::output_columns`];
//! 5. after the merge, [`RuleDocument::threshold_exceeded`] says whether the job fails.
//!
//! Inside: `doc` and `validate` (the document and its structural checks), `ids` and `threshold`
//! (pure functions of the document), `compile/` (one module per step, one function per check and
//! transform kind) building `compiled` (the immutable compiled form), evaluated per record by
//! `run` (checks, details, a chunk's outcome) and `clean_row` (the transformed row), with `mask`,
//! `sha2x`, `fixed`, `value` and `unique` beneath them.
//!
//! Not here: loading reference files or keys (I/O belongs to the caller), the profile.

mod clean_row;
mod compile;
mod compiled;
pub mod doc;
mod fixed;
mod ids;
pub mod mask;
mod run;
mod sha2x;
pub mod suggest;
mod threshold;
pub mod unique;
pub mod validate;
pub mod value;

#[cfg(test)]
mod tests;

pub use compile::ResolvedRefs;
pub use compiled::{CompiledRules, VIOLATIONS_COLUMN};
pub use doc::*;
pub use run::{RuleOutcome, RuleRunner, Verdict};
pub use threshold::ThresholdExceeded;
pub use unique::UniqueKeys;
pub use validate::{
    against_profile, from_value, parse_document, refuse_model_engine, ValidationError,
    MAX_COST_REQUIRED, MODEL_ENGINE_UNAVAILABLE,
};
pub use validate::{check_limits, LimitExceeded, MAX_COLUMN_SPECS, MAX_REFERENCES, MAX_RULES};

/// The JSON Schema of [`RuleDocument`] (the content of `docs/rules.schema.json`).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RuleDocument)).expect("a schema is JSON")
}
