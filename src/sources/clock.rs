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
    #[inline]
    pub fn observe(&mut self, frames: &[Frame], steps: &mut ClockSteps) {
        for frame in frames {
            self.frames += 1;
            if let Some(previous) = self.previous_ns {
                let step = frame.ts_ns.saturating_sub(previous);
                if step < -BACK_NS {
                    steps.backwards.add(self.frames, step.saturating_neg());
                } else if step > JUMP_NS {
                    steps.jumps.add(self.frames, step);
                }
            }
            self.previous_ns = Some(frame.ts_ns);
        }
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
