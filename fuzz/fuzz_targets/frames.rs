//! The frames of real captures, mutated (headers and payloads), through the whole engine
//! (tcptrace_native::fuzzing::frames; seeds: fuzz/seeds.py).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tcptrace_native::fuzzing::frames(data));
