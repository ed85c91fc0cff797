//! Tessera's shared library: the domain (jobs, chunk tasks, S3 notifications), typed
//! configuration, the one error type callers see, the AWS store adapters, and telemetry.
//! Function crates hold only their Lambda entry points and call into this crate.
//!
//! The CSV engine lives in its own pure crate (`tessera-engine`, under `shared/engine`) so the
//! parser, its fuzz target and its benchmark build without the AWS SDK; it is re-exported here.

pub mod agent;
pub mod aws;
pub mod config;
pub mod control;
pub mod error;
pub mod export;
pub mod grading;
pub mod http;
pub mod job;
pub mod keys;
pub mod lambda;
pub mod ledger;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
pub mod model;
pub mod notifications;
pub mod pipeline;
pub mod ports;
pub mod push;
pub mod query;
pub mod ranged;
pub mod rate;
pub mod store;
pub mod task;
pub mod telemetry;
pub mod unique;
pub mod upload;
pub mod workflow;

pub use tessera_engine as engine;
