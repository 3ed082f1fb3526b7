//! Mutated frames of real captures through the single run and through `--jobs`: the same
//! records and source report (tcptrace_native::fuzzing::jobs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tcptrace_native::fuzzing::jobs(data));
