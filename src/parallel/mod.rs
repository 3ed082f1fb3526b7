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

/// The most shards a run takes. Each holds a flow table, its buffers and a thread (about
/// 0.2 MB of memory each once running, several MB reserved), and one reader feeds them
/// all, so beyond the cores nothing is gained; a larger number is a typo (`--jobs 100000`
/// asked for tens of GB and ended in an allocation abort).
pub const MAX_JOBS: usize = 256;
pub use threads::{run, run_on, Output, Report};

/// What the executors' tests compare against: the bundled captures and the single run.
#[cfg(test)]
mod testing {
    use crate::engine::{Engine, Options};
    use crate::writers::json::write_jsonl;
    use crate::writers::Value;

    /// A bundled capture (`pcaps/NAME`).
    pub fn capture(name: &str) -> String {
        format!("{}/pcaps/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    /// The jsonl and source report of the single run over `paths`.
    pub fn single(paths: &[String], options: &Options) -> (Vec<u8>, Value) {
        let mut engine = Engine::new(paths.to_vec(), options.clone());
        let mut out = Vec::new();
        engine
            .run(|r| {
                write_jsonl(&mut out, &r);
                Ok(())
            })
            .unwrap();
        (out, engine.source_report())
    }

    /// `got` is what the single run `want` wrote: the same jsonl (compared as text, for a
    /// readable difference) and the same source report.
    #[track_caller]
    pub fn assert_same_run(got: &(Vec<u8>, Value), want: &(Vec<u8>, Value), context: &str) {
        assert_eq!(
            String::from_utf8_lossy(&got.0),
            String::from_utf8_lossy(&want.0),
            "{context}"
        );
        assert_eq!(got.1, want.1, "{context}");
    }
}
