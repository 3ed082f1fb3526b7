//! Arbitrary bytes as a capture file through the readers (tcptrace_native::fuzzing::readers).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tcptrace_native::fuzzing::readers(data));
