//! Arbitrary bytes as a capture file through the whole engine and every writer
//! (tcptrace_native::fuzzing::engine).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tcptrace_native::fuzzing::engine(data));
