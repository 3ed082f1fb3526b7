//! Records in, bytes out: jsonl, json (spooled, written in id order), csv, and the
//! capture-wide summary. (Owned by the writers work.)

pub mod floats;

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
