//! The push form of the pipeline, for a live capture: the caller hands in frame batches as
//! they are captured, clock ticks while the wire is quiet, and a final close; records come
//! out as connections end. It runs the steps of `engine.rs` in the order tcptrace/engine.py
//! `Analysis.records` runs them for a frame source that is not a file: each batch is decoded
//! and filtered whole, then fed to the flow table in slices of `FEED_SLICE` segments, the
//! table swept and drained after each slice; a tick moves the table's clock and drains it.
//! The same batches and ticks give the Python engine's records in its order.

pub mod capture;
pub mod libpcap;
pub mod savefile;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::panic::{self, AssertUnwindSafe};

use crate::decode::{decode_piece, Segment};
use crate::engine::{
    panic_message, source_report, warn_damage, warn_evictions, Options, RunError, FEED_SLICE,
};
use crate::flows::FlowTable;
use crate::model::ConnectionRecord;
use crate::sources::{FrameBatch, FramePlace, Origin, SourceStats};
use crate::writers::Value;

/// One live analysis: `feed`, `tick` in any order, then `close` once.
pub struct Session {
    options: Options,
    /// Sources (`live:IFACE` per interface), frames fed, skips and warnings.
    pub source: SourceStats,
    table: FlowTable,
    segments: Vec<Segment>,
    segments_total: u64,
    filtered_out: u64,
    unsupported: BTreeSet<u32>,
    frames_fed: u64,
    finished: u64,
    /// Closed, or failed on a panic: the table was emptied, later calls do nothing.
    done: bool,
}

impl Session {
    /// A session reporting `files` (one name per capture interface) as its sources.
    pub fn new(files: Vec<String>, options: Options) -> Session {
        let table = crate::engine::new_table(&options);
        Session {
            options,
            source: SourceStats {
                files,
                ..SourceStats::default()
            },
            table,
            segments: Vec::with_capacity(4096),
            segments_total: 0,
            filtered_out: 0,
            unsupported: BTreeSet::new(),
            frames_fed: 0,
            finished: 0,
            done: false,
        }
    }

    /// Connections held now (the status line's "open").
    pub fn open_connections(&self) -> usize {
        self.table.len()
    }

    /// Records handed out so far (the status line's "finished").
    pub fn finished(&self) -> u64 {
        self.finished
    }

    /// Number the frames of the next batch to `feed` in the capture (from 1, every
    /// interface's in the order fed: the frame numbers of the `--write` file), so that a
    /// damage warning names its first frame.
    pub fn number(&self, batch: &mut FrameBatch) {
        batch.origin = Origin::File {
            file: FramePlace::CAPTURE,
            before: self.frames_fed,
        };
    }

    /// Analyze one batch of captured frames (in capture order); `emit` gets each record
    /// of a connection that ended, as tcptrace/engine.py emits them.
    pub fn feed<E: FnMut(ConnectionRecord) -> Result<(), String>>(
        &mut self,
        batch: &FrameBatch,
        mut emit: E,
    ) -> Result<(), RunError> {
        if self.done || batch.is_empty() {
            return Ok(());
        }
        let frames_before = self.frames_fed;
        self.frames_fed += batch.len() as u64;
        self.source.frames += batch.len() as u64;
        self.segments.clear();
        self.filtered_out += decode_piece(
            batch,
            self.options.filter.as_ref(),
            &mut self.source,
            &mut self.unsupported,
            Some(&self.options.tunnels),
            &mut self.segments,
        );
        self.segments_total += self.segments.len() as u64;
        let segments = std::mem::take(&mut self.segments);
        let result = self.feed_slices(&segments, batch, frames_before, &mut emit);
        self.segments = segments;
        result
    }

    fn feed_slices<E: FnMut(ConnectionRecord) -> Result<(), String>>(
        &mut self,
        segments: &[Segment],
        batch: &FrameBatch,
        frames_before: u64,
        emit: &mut E,
    ) -> Result<(), RunError> {
        let panic_at = self.options.panic_at_frame;
        for slice in segments.chunks(FEED_SLICE) {
            let table = &mut self.table;
            let fed = panic::catch_unwind(AssertUnwindSafe(|| {
                if let Some(frame) = panic_at {
                    let at = slice
                        .iter()
                        .position(|s| frames_before + u64::from(s.frame_index) + 1 == frame);
                    if let Some(at) = at {
                        // the segments before it are handled, as a real failure there would
                        table.feed_segments(&slice[..at], &batch.data);
                        panic!("forced panic at frame {frame} (TCPTRACE_PANIC_AT_FRAME)");
                    }
                }
                table.feed(slice, &batch.data);
            }));
            if let Err(payload) = fed {
                let frame = match panic_at {
                    Some(frame) => frame,
                    None => frames_before + u64::from(self.table.current_frame()) + 1,
                };
                return Err(self.after_panic(frame, payload, emit));
            }
            self.drain(emit)?;
        }
        Ok(())
    }

    /// Time passed with no traffic (`now_ns`, the wall clock): connections that ended more
    /// than the linger ago, or went idle, are emitted.
    pub fn tick<E: FnMut(ConnectionRecord) -> Result<(), String>>(
        &mut self,
        now_ns: i64,
        mut emit: E,
    ) -> Result<(), RunError> {
        if self.done {
            return Ok(());
        }
        let table = &mut self.table;
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| table.tick(now_ns))) {
            return Err(self.after_panic(self.frames_fed, payload, &mut emit));
        }
        self.drain(&mut emit)
    }

    /// The capture ended: emit every connection still held, then warn about decode damage.
    pub fn close<E: FnMut(ConnectionRecord) -> Result<(), String>>(
        &mut self,
        mut emit: E,
    ) -> Result<(), RunError> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        let msl_s = self.options.msl_s;
        for mut conn in self.table.close() {
            self.finished += 1;
            emit(conn.record(msl_s)).map_err(RunError::Emit)?;
        }
        warn_damage(&mut self.source, &self.unsupported);
        warn_evictions(&mut self.source, &self.table.stats);
        Ok(())
    }

    fn drain<E: FnMut(ConnectionRecord) -> Result<(), String>>(
        &mut self,
        emit: &mut E,
    ) -> Result<(), RunError> {
        let msl_s = self.options.msl_s;
        for mut conn in self.table.drain() {
            self.finished += 1;
            emit(conn.record(msl_s)).map_err(RunError::Emit)?;
        }
        Ok(())
    }

    /// After a panic: write the connections still held (each may fail on its own), warn,
    /// and report the panic; the session is done.
    fn after_panic<E: FnMut(ConnectionRecord) -> Result<(), String>>(
        &mut self,
        frame: u64,
        payload: Box<dyn std::any::Any + Send>,
        emit: &mut E,
    ) -> RunError {
        self.done = true;
        let message = panic_message(&payload);
        let msl_s = self.options.msl_s;
        let table = &mut self.table;
        if let Ok(held) = panic::catch_unwind(AssertUnwindSafe(|| table.close())) {
            for mut conn in held {
                if let Ok(record) = panic::catch_unwind(AssertUnwindSafe(|| conn.record(msl_s))) {
                    self.finished += 1;
                    if emit(record).is_err() {
                        break;
                    }
                }
            }
        }
        warn_damage(&mut self.source, &self.unsupported);
        warn_evictions(&mut self.source, &self.table.stats);
        let at = match self.source.files.as_slice() {
            [one] => format!("{one}, frame {frame}"),
            many => format!("frame {frame} of a capture on {} interfaces", many.len()),
        };
        RunError::Panic { at, message }
    }

    /// The `source` part of the report, as for `analyze` (the caller adds the `live` part).
    pub fn source_report(&self) -> Value {
        source_report(
            &self.source,
            self.segments_total,
            self.filtered_out,
            &self.table.stats,
        )
    }
}
