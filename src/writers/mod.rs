//! Records in, bytes out: jsonl, json (spooled, written in id order), csv, and the
//! capture-wide summary. (Owned by the writers work.)

pub mod blake2b;
pub mod csv;
#[cfg(test)]
pub(crate) mod fixture;
pub mod floats;
pub mod health;
pub mod json;
pub mod jsonl;
pub mod rtt;
pub mod scans;
pub mod spool;
pub mod summary;
pub mod zeek;

pub use csv::CsvWriter;
pub use json::{write_indented, write_jsonl};
pub use spool::JsonSpool;
pub use summary::Summary;
pub use zeek::ZeekLogWriter;

/// A JSON-like value handed to Python as dicts and lists (the summary and the source
/// report: one per run, never one per connection). Maps keep their insertion order.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Map(Vec<(String, Value)>),
}
