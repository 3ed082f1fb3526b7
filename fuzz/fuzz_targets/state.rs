//! Arbitrary bytes as an `analyze --resume` STATE file, read and its frames replayed with
//! the ids it hands on (tcptrace_native::fuzzing::state).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tcptrace_native::fuzzing::state(data));
