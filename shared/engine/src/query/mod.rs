//! The query engine of issue 11: structured aggregate queries (filter, group by, aggregates,
//! having, order, limit) over a CSV of any size, answered exactly, map-reduced over the byte
//! ranges of the exact split. The language and its guarantees: docs/query.md; the JSON Schema:
//! docs/query.schema.json.
//!
//! Flow: [`parse_document`] (structure, JSON paths) -> [`compile`] against the file's
//! [`Schema`] (names, types; a [`Plan`]) -> per byte range, a [`PartialState`] fed record by
//! record ([`run_range`]) -> states [`merge`](PartialState::merge)d in any grouping ->
//! [`finish`] (having, order, offset, limit) -> [`QueryResult`]. A query job runs exactly
//! these steps with one task per range, shipping [`PartialState::to_bytes`].
//!
//! Module map: `doc` (the document types), `parse` (JSON to document), `compile`/`resolve`
//! (document to plan), `plan`, `value` (typed values, fixed-point decimals), `schema` (column
//! types), `agg` (aggregate states), `exec` (partial state), `finish`, `scan` (one range, push-based: a query task), `run` (local files).
//!
//! Not here: HTTP, S3, queues, caching of results.

mod agg;
mod compile;
mod doc;
mod error;
mod exec;
mod finish;
mod parse;
mod plan;
mod resolve;
mod run;
mod scan;
mod schema;
mod value;

pub use agg::{HLL_PRECISION, QUANTILE_ACCURACY};
pub use compile::{compile, QueryOptions};
pub use doc::*;
pub use error::{Problem, QueryError};
pub use exec::PartialState;
pub use finish::{finish, Finisher, QueryResult, AVG_DIGITS};
pub use parse::{from_value, parse_document};
pub use plan::Plan;
pub use run::{
    head_types, layout, query_bytes, query_file, query_source, run_range, Layout, RunOptions,
};
pub use scan::RangeQuery;
pub use schema::{Schema, TypeTally};
pub use value::Fixed;

/// The JSON Schema of [`QueryDocument`] (the content of `docs/query.schema.json`).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(QueryDocument)).expect("a schema is JSON")
}
