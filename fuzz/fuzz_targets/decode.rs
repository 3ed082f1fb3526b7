//! Arbitrary bytes as frames of every link type through the decoder
//! (tcptrace_native::fuzzing::decode).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tcptrace_native::fuzzing::decode(data));
