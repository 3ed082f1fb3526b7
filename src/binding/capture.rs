//! The `pcap_handler` that libpcap's `pcap_dispatch` calls for each captured frame, so the
//! per-frame loop of a live capture never enters Python: tcptrace/sources/live.py calls
//! `pcap_dispatch(handle, cnt, on_frame, tap)` through ctypes with the two addresses
//! `Session.tap` returns, and the frames land in the session's `CaptureBuffer`
//! (src/session/capture.rs) until `Session.feed_captured` analyzes them.
//!
//! libpcap is not linked: Python loads it at run time (ctypes), only the callback's address
//! crosses over. This is the one place of the crate that reads memory through raw pointers.
#![allow(unsafe_code)]

use std::os::raw::{c_long, c_uchar};
use std::sync::{Arc, Mutex, PoisonError};

use crate::session::capture::{CaptureBuffer, Tap};

/// `suseconds_t`, the type of `timeval.tv_usec`: a C long on Linux and the BSDs, a 32-bit
/// int on Apple platforms (followed by padding to the 8-byte alignment of `tv_sec`).
#[cfg(target_vendor = "apple")]
type Suseconds = i32;
#[cfg(not(target_vendor = "apple"))]
type Suseconds = c_long;

/// `struct timeval` (sys/time.h).
#[repr(C)]
#[derive(Clone, Copy)]
struct Timeval {
    tv_sec: c_long,
    tv_usec: Suseconds,
}

/// The leading fields of `struct pcap_pkthdr` (pcap/pcap.h), which every libpcap has in this
/// order; Apple's adds a `comment` array after them, never read here. With nanosecond
/// precision (`pcap_set_tstamp_precision`) `tv_usec` holds nanoseconds.
#[repr(C)]
#[derive(Clone, Copy)]
struct PcapPkthdr {
    ts: Timeval,
    caplen: u32,
    len: u32,
}

// 64-bit Linux and macOS: 8-byte tv_sec, tv_usec in 8 bytes (a long; an int + padding on
// macOS), then the two u32.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<PcapPkthdr>() == 24);

/// One interface's callback context: its link type and clock unit, and the session's buffer.
pub(super) struct Tapped {
    tap: Tap,
    buffer: Arc<Mutex<CaptureBuffer>>,
}

impl Tapped {
    pub(super) fn new(tap: Tap, buffer: Arc<Mutex<CaptureBuffer>>) -> Tapped {
        Tapped { tap, buffer }
    }
}

/// The `pcap_handler` (`void (*)(u_char *user, const struct pcap_pkthdr *h, const u_char
/// *bytes)`); `user` must be the address of a live `Tapped` (what `Session.tap` returned).
/// It never panics (a panic here would abort the process): no indexing, a poisoned lock is
/// used as is.
extern "C" fn on_frame(user: *mut c_uchar, h: *const PcapPkthdr, bytes: *const c_uchar) {
    if user.is_null() || h.is_null() {
        return;
    }
    // SAFETY: `user` is the pointer given to pcap_dispatch, which passes it through
    // unchanged (pcap_loop(3PCAP)); live.py passes the address of a boxed `Tapped` that
    // the Session keeps (in `taps`, never removed) while its capture runs. Only shared
    // access: the buffer behind it is behind a Mutex.
    let tapped = unsafe { &*(user as *const Tapped) };
    // SAFETY: libpcap calls the handler with `h` pointing to a valid pcap_pkthdr for the
    // duration of the call (pcap_loop(3PCAP)); read_unaligned makes no alignment assumption.
    let header = unsafe { std::ptr::read_unaligned(h) };
    let frame: &[u8] = if bytes.is_null() || header.caplen == 0 {
        &[]
    } else {
        // SAFETY: pcap_loop(3PCAP): `bytes` points to the first caplen bytes of the packet,
        // valid for the duration of the call; they are copied before the handler returns.
        unsafe { std::slice::from_raw_parts(bytes, header.caplen as usize) }
    };
    let mut buffer = tapped.buffer.lock().unwrap_or_else(PoisonError::into_inner);
    // i64::from: a no-op where C long is 64-bit, a widening where it is 32-bit
    #[allow(clippy::useless_conversion)]
    buffer.push(
        tapped.tap,
        i64::from(header.ts.tv_sec),
        i64::from(header.ts.tv_usec),
        header.len,
        frame,
    );
}

/// The callback's address, for ctypes.
pub(super) fn on_frame_address() -> usize {
    on_frame as extern "C" fn(*mut c_uchar, *const PcapPkthdr, *const c_uchar) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callback_appends_what_libpcap_hands_it() {
        let buffer = Arc::new(Mutex::new(CaptureBuffer::default()));
        let tapped = Box::new(Tapped::new(
            Tap {
                linktype: 1,
                ns_per_unit: 1,
            },
            buffer.clone(),
        ));
        let user = &*tapped as *const Tapped as *mut c_uchar;
        let header = PcapPkthdr {
            ts: Timeval {
                tv_sec: 1_700_000_000,
                tv_usec: 42,
            },
            caplen: 3,
            len: 1500,
        };
        on_frame(user, &header, b"abc".as_ptr());
        on_frame(user, std::ptr::null(), b"abc".as_ptr()); // ignored
        let batch = buffer.lock().unwrap().take(false);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch.frames[0].ts_ns, 1_700_000_000_000_000_042);
        assert_eq!((batch.frames[0].caplen, batch.frames[0].wirelen), (3, 1500));
        assert_eq!(batch.bytes(0), b"abc");
    }
}
