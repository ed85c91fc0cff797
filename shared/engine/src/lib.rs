//! Tessera's CSV engine: exact byte-range splitting, a resumable push parser, and a
//! mergeable column profile. Pure code: no AWS, no async; callers own the bytes
//! (the `file` module is the one adapter that reads local files, for `tessera process`).
//!
//! Module map (each depends only on the ones above it; `tests/module_graph.rs` checks there is
//! no cycle; docs/engine.md "Module layout"):
//! - [`error`], [`record`]: the one error type; the borrowed record view and rejected-row reasons.
//! - [`parse`]: the push-based, resumable RFC 4180 state machine (csv-core style).
//! - `names`: making header names and rule ids unique, in linear time.
//! - [`csv_write`]: writing fields and rows in the output format.
//! - [`dialect`]: sniffing delimiter, quote, header, line ending, BOM, encoding; the column limit.
//! - [`split`]: byte-range planning and the quote-parity speculation that keeps splitting exact.
//! - [`byte_range`]: how one range's parse begins and ends (shared by `chunk` and `range`).
//! - [`range`]: the records of one byte range, for read-only passes.
//! - [`rejected`]: the rejected output's header and the rebasing of its line numbers.
//! - [`profile`]: the mergeable column profile (exact counters plus sketches).
//! - [`grading`]: the pure parts of the `model` sentiment engine (PII masked out of text,
//!   batches, the model's answer checked, the sample).
//! - [`rules`]: the rule document, its compilation and its per-record evaluation.
//! - [`chunk`]: one chunk's work: parse the records it owns, profile them, write clean/rejected parts.
//! - [`query`]: structured aggregate queries, map-reduced over byte ranges (docs/query.md).
//! - [`file`](mod@file): parallel processing of a local file with exactly the chunk worker's code.

pub mod byte_range;
pub mod chunk;
pub mod csv_write;
pub mod dialect;
pub mod error;
pub mod file;
pub mod grading;
mod names;
pub mod parse;
pub mod profile;
pub mod query;
pub mod range;
pub mod record;
pub mod rejected;
pub mod rules;
pub mod sentiment;
pub mod split;

pub use chunk::{ChunkOptions, ChunkProcessor, ChunkResult, Feed};
pub use dialect::{sniff, sniff_with_size, Dialect, DialectOverrides, LineEnding, Sniffed};
pub use error::EngineError;
pub use file::{process_bytes, process_file, ProcessOptions, ProcessSummary};
pub use split::{plan, validate, ChunkSummary, ChunkTask};
