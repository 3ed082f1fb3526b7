//! Arbitrary bytes as a capture file (opened by content: pcap, pcapng, either gzip-compressed)
//! through the readers. Errors are fine; a panic, an out-of-bounds frame or a frame count
//! that disagrees with the stats is a bug.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tcptrace_native::sources::frames_of_bytes;

fuzz_target!(|data: &[u8]| {
    let (batches, stats, _error) = frames_of_bytes(data);
    let mut frames = 0u64;
    for batch in &batches {
        assert!(!batch.is_empty(), "an empty batch was yielded");
        for frame in &batch.frames {
            let end = frame.offset.checked_add(frame.caplen as usize);
            assert!(end.is_some_and(|end| end <= batch.data.len()), "frame outside its buffer");
        }
        frames += batch.len() as u64;
    }
    assert_eq!(frames, stats.frames);
});
