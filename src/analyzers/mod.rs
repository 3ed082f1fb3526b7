//! Analyzers: each watches one aspect of a connection, fed typed events by the connection
//! core, and fills its part of the record. (Owned by the connection-core work; `http` by
//! the HTTP work.)

pub mod http;
