//! `--jobs N`: one run split by flow over N shards, output byte-identical to the single run.
//! `plan` holds the map / reduce / finalize steps as plain functions over plain data (so a
//! distributed executor can run them unchanged), `encode` the shards' record bytes and the
//! writer's id splice, `threads` the local executor on std threads and bounded channels; `scaleout` the same plan per
//! file and per partition for a distributed executor (`--executor dask`), over the
//! scratch files of `spill`.

pub mod encode;
pub mod plan;
pub mod scalechunks;
pub mod scaleclock;
pub mod scaleout;
pub mod scaletimes;
pub mod scaletunnels;
pub mod spill;
pub mod threads;

pub use encode::Encoding;
pub use threads::{run, run_on, Output, Report};
