//! Tessera's CSV engine: exact byte-range splitting, a resumable push parser, and a
//! mergeable column profile. Pure code: no AWS, no async; callers own the bytes
//! (the `file` module is the one adapter that reads local files, for `tessera process`).
//!
//! Module map:
//! - [`record`]: the borrowed record view and the rejected-row reasons shared by parser and profile.
//! - [`dialect`]: sniffing delimiter, quote, header, line ending, BOM, encoding.
//! - [`parse`]: the push-based, resumable RFC 4180 state machine (csv-core style).
//! - [`split`]: byte-range planning and the quote-parity speculation that keeps splitting exact.
//! - [`chunk`]: one chunk's work: parse the records it owns, profile them, write clean/rejected parts.
//! - [`range`]: the records of one byte range (the chunk's ownership rule and speculation), for read-only passes.
//! - [`profile`]: the mergeable column profile (exact counters plus sketches).
//! - [`file`]: parallel processing of a local file with exactly the chunk worker's code.

pub mod chunk;
pub mod dialect;
pub mod error;
pub mod file;
pub mod parse;
pub mod profile;
pub mod range;
pub mod record;
pub mod rules;
pub mod sentiment;
pub mod split;

pub use chunk::{ChunkOptions, ChunkProcessor, ChunkResult, Feed};
pub use dialect::{sniff, sniff_with_size, Dialect, DialectOverrides, LineEnding, Sniffed};
pub use error::EngineError;
pub use file::{process_bytes, process_file, ProcessOptions, ProcessSummary};
pub use split::{plan, validate, ChunkSummary, ChunkTask};
