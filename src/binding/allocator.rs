//! The extension's heap: mimalloc instead of glibc's malloc, for the Rust side only
//! (Python's own objects keep CPython's allocators).
//!
//! A run allocates and frees about ten small blocks per connection (the record's address
//! texts and state histories, the handshake's sightings, the receive inboxes, the HTTP
//! parsers), and ends connections in bursts of thousands per sweep: glibc then spent about
//! 11 % of a run's samples in `_int_malloc`, `_int_free`, `malloc_consolidate` and
//! `unlink_chunk` (docs/performance.md, part 4). Here, so that `cargo test`, the fuzzers and
//! the crate used without the binding keep the system allocator.

#![allow(unsafe_code)]

use std::os::raw::{c_int, c_long};

#[global_allocator]
static HEAP: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` in the `mi_option_t` enumeration of the mimalloc that
/// libmimalloc-sys builds (v3's include/mimalloc.h; v2 has the same number).
const ARENA_EAGER_COMMIT: c_int = 4;

unsafe extern "C" {
    /// mimalloc's option setter (include/mimalloc.h), linked in by libmimalloc-sys.
    fn mi_option_set(option: c_int, value: c_long);
}

/// Commit arena memory as it is used, not the whole arena up front: with the default
/// (eager on Linux) the peak RSS of a 10M-packet run grew from 56 to about 80 MB, and
/// 130 MB with `--zeek --verify-checksums` (86 MB with glibc); lazily, 59 and 89 MB.
/// Called when the module is initialised, before the engine allocates.
pub fn configure() {
    // SAFETY: a plain setter of a global option value, valid for any option number below
    // `_mi_option_last`; it takes no pointer
    unsafe { mi_option_set(ARENA_EAGER_COMMIT, 0) };
}
