//! Tessera outside AWS: the local runtime that runs the same handler code in one process
//! against an AWS emulator (moto server) speaking the real wire protocols.
//!
//! - [`emulator`]: find, install (pinned) and start moto on 127.0.0.1;
//! - [`provision`]: create the bucket, table and queues of [`resources::spec`] in it;
//! - [`gateway`]: API Gateway's HTTP API (routing, JWT check, payload limit, request context);
//! - [`esm`]: Lambda's SQS event-source mappings (long polls, batches, partial failures);
//! - [`ws`]: API Gateway's WebSocket API (upgrade with a token, route events, `@connections`);
//! - [`streams`]: Lambda's DynamoDB-stream event-source mapping (the jobs table -> status pushes);
//! - [`faults`]: a proxy in front of the emulator that injects scripted faults (tests);
//! - [`stack`]: all of the above started together, as `tessera up` and the tests use it;
//! - [`worker`]: the chunk queue's worker as a process of its own (`tessera worker chunk`), one
//!   a test can kill mid-task;
//! - [`model`]: the scale model of a deployed job and fleet (`tessera model`, docs/scale.md);
//! - [`upload`]: upload a local file through the API (single PUT or parallel parts, progress);
//! - [`demo`]: `tessera demo`'s use case: upload, follow the job, profile table, example query;
//! - [`web`]: the browser page (static files embedded in the binary) and its `config.json`.
//!
//! The `tessera` command (`src/main.rs`) is a thin layer over [`stack`] and [`auth`].

pub mod auth;
pub mod converse;
pub mod demo;
pub mod emulator;
pub mod esm;
pub mod faults;
pub mod gateway;
pub mod model;
pub mod openapi;
pub mod provision;
pub mod resources;
pub mod stack;
pub mod streams;
pub mod upload;
pub mod web;
pub mod worker;
pub mod ws;
