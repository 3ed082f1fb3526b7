//! The native engine of tcptrace.
//!
//! The modules follow the data: `sources` (capture files -> frame batches) -> `decode`
//! (frames -> TCP segments) -> `filter` (--filter) -> `flows` (4-tuples -> connections) ->
//! `connection` (both endpoints' `states` machines, `reassembly`, the `analyzers`) ->
//! `model` (the connection record; `zeek`, Zeek's view of it, and `checksum`, for
//! --verify-checksums, when asked for) -> `writers` (jsonl, json, csv bytes and the summary) ->
//! `engine` (the pipeline for one run). `binding` is the only module that knows Python.

// No unsafe code in the engine; the binding layer may need it (PyO3's generated code).
#![deny(unsafe_code)]

pub mod analyzers;
pub mod checksum;
pub mod connection;
pub mod decode;
pub mod duplicates;
pub mod engine;
pub mod filter;
pub mod flows;
pub mod fuzzing;
pub mod health_label;
pub mod model;
pub mod names;
pub mod page;
pub mod parallel;
pub mod reassembly;
pub mod recycle;
pub mod resume;
pub mod seqnum;
pub mod session;
pub mod sources;
pub mod states;
pub mod writers;
pub mod zeek;

#[cfg(feature = "python")]
#[allow(unsafe_code)]
mod binding;
