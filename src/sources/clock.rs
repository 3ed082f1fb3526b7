//! Time sanity: frames whose timestamp goes back, or leaps more than a day ahead of the
//! frame before them, in the order the engine reads them (a merge: by time already).
//!
//! Either is a damaged timestamp (a flipped bit puts a frame 46 years ahead), a clock set
//! while capturing, or captures of different days merged. The analysis goes on (each
//! connection's clock never goes back: connection.rs), and the run says where it happened:
//! one warning per kind with the first frame and the count (engine.rs `warn_evictions`).

use super::Frame;

/// A step forward longer than this between two consecutive frames is a jump.
pub const JUMP_NS: i64 = 86_400 * 1_000_000_000;

/// A step back longer than this is warned about: multi-queue NICs and pcapng files with
/// several interfaces reorder frames by microseconds, which is no damage.
pub const BACK_NS: i64 = 1_000_000_000;

/// One kind of step: how many, and the first (1-based frame number, size in ns).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Steps {
    pub count: u64,
    pub first: Option<(u64, i64)>,
}

impl Steps {
    fn add(&mut self, frame: u64, size_ns: i64) {
        self.count += 1;
        self.first.get_or_insert((frame, size_ns));
    }
}

/// What the frames' timestamps did, for `SourceStats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockSteps {
    /// Steps back of more than `BACK_NS`.
    pub backwards: Steps,
    /// Steps forward of more than `JUMP_NS`.
    pub jumps: Steps,
}

/// Follows the timestamps of the frames one source hands on.
#[derive(Debug, Default)]
pub struct ClockCheck {
    frames: u64,
    previous_ns: Option<i64>,
}

impl ClockCheck {
    /// A check that goes on after `frames` frames, the last of them at `previous_ns` (a
    /// part of a large file mapped alone: `parallel::scalechunks`).
    pub fn resume(frames: u64, previous_ns: Option<i64>) -> ClockCheck {
        ClockCheck {
            frames,
            previous_ns,
        }
    }

    /// Look at the next frames, in order; steps found are added to `steps`.
    ///
    /// The previous timestamp and the frame count stay in registers through the loop (a
    /// step is rare: its bookkeeping is out of line); a first frame with no previous one
    /// is a step of 0, which is neither kind.
    #[inline]
    pub fn observe(&mut self, frames: &[Frame], steps: &mut ClockSteps) {
        let Some(first) = frames.first() else {
            return;
        };
        let mut previous = self.previous_ns.unwrap_or(first.ts_ns);
        for (i, frame) in frames.iter().enumerate() {
            let step = frame.ts_ns.saturating_sub(previous);
            if !(-BACK_NS..=JUMP_NS).contains(&step) {
                note_step(steps, self.frames + i as u64 + 1, step);
            }
            previous = frame.ts_ns;
        }
        self.frames += frames.len() as u64;
        self.previous_ns = Some(previous);
    }
}

/// A step back of more than BACK_NS or ahead of more than JUMP_NS, at frame `frame`.
#[cold]
#[inline(never)]
fn note_step(steps: &mut ClockSteps, frame: u64, step: i64) {
    if step < -BACK_NS {
        steps.backwards.add(frame, step.saturating_neg());
    } else {
        steps.jumps.add(frame, step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn frames(seconds: &[i64]) -> Vec<Frame> {
        (seconds.iter())
            .map(|&s| Frame {
                ts_ns: 1_700_000_000 * S + s * S,
                ..Frame::default()
            })
            .collect()
    }

    #[test]
    fn a_frame_46_years_ahead_is_a_jump_then_a_step_back() {
        let mut check = ClockCheck::default();
        let mut steps = ClockSteps::default();
        let ahead = 46 * 365 * 86_400;
        check.observe(&frames(&[0, 1]), &mut steps);
        check.observe(&frames(&[ahead, 2, 1, 3]), &mut steps);
        assert_eq!(
            steps.jumps,
            Steps {
                count: 1,
                first: Some((3, (ahead - 1) * S))
            }
        );
        // back from the jump; 2 -> 1 is a second back, not more
        assert_eq!(
            steps.backwards,
            Steps {
                count: 1,
                first: Some((4, (ahead - 2) * S))
            }
        );
    }
}
