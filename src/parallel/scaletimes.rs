//! Time sanity in a distributed run (`--executor dask`, docs/scale-out.md): the
//! `time_backwards` and `time_jump` warnings of the single run (src/sources/clock.rs), same
//! counts, same first frame, same size.
//!
//! The single run's `ClockCheck` looks at every frame (not only the TCP segments) in the
//! order it reads them. Over one file that is the file's order, which its map sees whole:
//! the map runs the check itself and its manifest carries the result (`FileManifest::
//! clock`, a few numbers). Over several files it is the merge's order: each merge step
//! hands on, from every file's current batch, the frames up to the watermark (the smallest
//! latest timestamp of those batches), sorted stably by time. A map cannot summarise its
//! batches for that in a bounded way: the watermark that cuts a batch is another file's
//! batch end, any time at all, and the frame numbers that follow depend on how many of the
//! batch's frames lie below it (the rank of an arbitrary time among the batch's frames:
//! every frame's timestamp, in the worst case). What the merge needs of a batch is its
//! timestamps as a sorted multiset, not their file order, so the map writes them sorted
//! per batch and delta-encoded (`key.times`, a varint a frame: 1 to 3 bytes for frames
//! microseconds to milliseconds apart), and the client alone reads them back: it replays
//! the merge (`replay_merge`, shared with the reduces' segment clock) and runs the single
//! run's `ClockCheck` over each merged step. Within a step the frames are sorted, so a
//! step back can only come at a step's first frame; jumps can come anywhere.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::sources::clock::{ClockCheck, ClockSteps, Steps};
use crate::sources::Frame;

use super::spill::{self, In, Out, TIMES_MAGIC};

fn times_path(scratch: &Path, key: &str) -> PathBuf {
    scratch.join(format!("{key}.times"))
}

/// Writes a file's frame timestamps, a batch at a time, under a temporary name; `finish`
/// renames it complete (a task run again replaces it whole).
pub struct TimesWriter {
    out: BufWriter<File>,
    tmp: PathBuf,
    target: PathBuf,
    sorted: Vec<i64>,
    buf: Out,
}

impl TimesWriter {
    /// The `times` file of the file mapped under `key`.
    pub fn create(scratch: &Path, key: &str) -> Result<TimesWriter, String> {
        let target = times_path(scratch, key);
        let tmp = target.with_extension(format!("times.{}.tmp", std::process::id()));
        let file = File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        out.write_all(&Out::new(TIMES_MAGIC).buf)
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        Ok(TimesWriter {
            out,
            tmp,
            target,
            sorted: Vec::new(),
            buf: Out::default(),
        })
    }

    /// One read batch: its frames' timestamps sorted, the first whole, then the steps.
    pub fn batch(&mut self, frames: &[Frame]) -> Result<(), String> {
        self.sorted.clear();
        self.sorted.extend(frames.iter().map(|f| f.ts_ns));
        self.sorted.sort_unstable();
        let buf = &mut self.buf;
        buf.buf.clear();
        buf.u64(self.sorted.len() as u64);
        let mut previous = None;
        for &ts in &self.sorted {
            match previous {
                None => buf.i64(ts),
                Some(p) => buf.varint(ts.wrapping_sub(p) as u64),
            }
            previous = Some(ts);
        }
        (self.out.write_all(&buf.buf)).map_err(|e| format!("{}: {e}", self.tmp.display()))
    }

    /// Flush and rename the file to its name: it is complete.
    pub fn finish(self) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("{}: {e}", self.tmp.display());
        let file = self.out.into_inner().map_err(|e| fail(e.into_error()))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.target)
            .map_err(|e| format!("{}: {e}", self.target.display()))
    }
}

/// A file's `times` file read back a batch at a time (each batch's timestamps, sorted):
/// the client holds the encoded bytes and one batch of each file decoded.
struct TimesReader<'a> {
    input: In<'a>,
}

impl<'a> TimesReader<'a> {
    fn new(bytes: &'a [u8], what: &'a str) -> Result<TimesReader<'a>, String> {
        Ok(TimesReader {
            input: In::new(bytes, TIMES_MAGIC, what)?,
        })
    }

    /// The next batch, None after the last.
    fn next(&mut self) -> Result<Option<Vec<i64>>, String> {
        if self.input.at_end() {
            return Ok(None);
        }
        let n = self.input.count(1)?;
        let mut ts = Vec::with_capacity(n);
        let mut previous: Option<i64> = None;
        for _ in 0..n {
            let t = match previous {
                None => self.input.i64()?,
                Some(p) => p.wrapping_add(self.input.varint()? as i64),
            };
            ts.push(t);
            previous = Some(t);
        }
        Ok(Some(ts))
    }
}

/// The frames' timestamp steps as the single run's `ClockCheck` finds them (see the
/// module's comment): `own` is each file's own check (its map's), `batches` each file's
/// batch ends (latest timestamps), `parts` where each file's `times` files are: per part
/// of the file (one, unless a large file was mapped a part at a time), its key and whether
/// its first batch continues the part before's last (`scalechunks`).
pub fn time_steps(
    scratch: &Path,
    parts: &[Vec<(String, bool)>],
    own: &[ClockSteps],
    batches: &[Vec<i64>],
) -> Result<ClockSteps, String> {
    if let [one] = own {
        return Ok(*one);
    }
    // per file, per part: what it is and its bytes
    let mut files: Vec<Vec<(String, Vec<u8>, bool)>> = Vec::with_capacity(parts.len());
    for (keys, ends) in parts.iter().zip(batches) {
        let mut read = Vec::with_capacity(keys.len());
        // a file read by no batch (it could not be opened) has no times file
        if !ends.is_empty() {
            for (key, continues) in keys {
                let path = times_path(scratch, key);
                read.push((path.display().to_string(), spill::read(&path)?, *continues));
            }
        }
        files.push(read);
    }
    let mut readers = Vec::with_capacity(files.len());
    for file in &files {
        let mut chain = Vec::with_capacity(file.len());
        for (what, bytes, continues) in file {
            chain.push((TimesReader::new(bytes, what)?, *continues));
        }
        readers.push(PartTimes {
            parts: chain,
            at: 0,
        });
    }
    let mut failed = None;
    let steps = merged_steps(parts.len(), |file, read| {
        let reader = readers.get_mut(file)?;
        let end = batches.get(file)?.get(read as usize).copied();
        let what = (files.get(file))
            .and_then(|f| f.first())
            .map_or("", |(w, _, _)| w.as_str());
        // a batch's latest frame is its sorted last: anything else is a foreign file
        match (reader.next(), end) {
            (Ok(None), None) => None,
            (Ok(Some(ts)), Some(end)) if ts.last() == Some(&end) => Some(ts),
            (Err(err), _) => {
                failed.get_or_insert(err);
                None
            }
            _ => {
                failed.get_or_insert(format!("{what}: frame times unlike its manifest's"));
                None
            }
        }
    });
    match failed {
        Some(err) => Err(err),
        None => Ok(steps),
    }
}

/// A file's batches through its parts' `times` files in turn: a batch a part ends with
/// and the next part begins with (`continues`) is one batch of the single run, its two
/// sorted runs merged.
struct PartTimes<'a> {
    parts: Vec<(TimesReader<'a>, bool)>,
    at: usize,
}

impl PartTimes<'_> {
    fn next(&mut self) -> Result<Option<Vec<i64>>, String> {
        while let Some((reader, _)) = self.parts.get_mut(self.at) {
            let Some(mut ts) = reader.next()? else {
                self.at += 1;
                continue;
            };
            // while the part is done and the next goes on with this batch
            while self
                .parts
                .get(self.at)
                .is_some_and(|(r, _)| r.input.at_end())
            {
                self.at += 1;
                let Some((next, true)) = self.parts.get_mut(self.at) else {
                    break;
                };
                let rest = next.next()?.unwrap_or_default();
                ts = merge_sorted(&ts, &rest);
            }
            return Ok(Some(ts));
        }
        Ok(None)
    }
}

/// Two sorted runs as one.
fn merge_sorted(a: &[i64], b: &[i64]) -> Vec<i64> {
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
        if x <= y {
            merged.push(x);
            i += 1;
        } else {
            merged.push(y);
            j += 1;
        }
    }
    merged.extend_from_slice(a.get(i..).unwrap_or_default());
    merged.extend_from_slice(b.get(j..).unwrap_or_default());
    merged
}

/// `ClockCheck` over several files' batches merged as `Captures::merge_step` merges them:
/// `read(file, n)` gives read number n of a file (its timestamps, sorted), None at its end.
fn merged_steps(files: usize, mut read: impl FnMut(usize, u32) -> Option<Vec<i64>>) -> ClockSteps {
    let mut check = ClockCheck::default();
    let mut steps = ClockSteps::default();
    let mut frames: Vec<Frame> = Vec::new();
    replay_merge(
        files,
        |file, n| {
            let ts = read(file, n)?;
            Some((ts.last().copied().unwrap_or(i64::MIN), ts))
        },
        |step| {
            frames.clear();
            frames.extend(step.iter().map(|&(ts_ns, _, _)| Frame {
                ts_ns,
                ..Frame::default()
            }));
            check.observe(&frames, &mut steps);
        },
    );
    steps
}

/// A file's batch being merged: its items (index in the batch) in time order, those
/// before `taken` handed on (a merge step takes every item up to its watermark: always a
/// prefix in time order), its latest frame, and whether frames of it are left.
struct Current {
    latest: i64,
    by_time: Vec<(i64, u32)>,
    start: u64,
    taken: usize,
    frames_left: bool,
}

/// Replay `Captures::merge_step` over `files` files known by their batches: `read(file,
/// n)` gives a file's read number n (its latest frame timestamp and the timestamps of its
/// items, segments or frames, in file order), None at the file's end, and is called in
/// the single run's order of reads; `step` gets each merge step's items in the order the
/// merge hands them on: (timestamp, file, index of the item in its file).
pub fn replay_merge(
    files: usize,
    mut read: impl FnMut(usize, u32) -> Option<(i64, Vec<i64>)>,
    mut step: impl FnMut(&[(i64, usize, u64)]),
) {
    let mut next = vec![0u32; files];
    let mut start = vec![0u64; files];
    let mut live: Vec<usize> = (0..files).collect();
    let mut current: Vec<Option<Current>> = (0..files).map(|_| None).collect();
    let mut items: Vec<(i64, usize, u64)> = Vec::new();
    loop {
        // refill the files whose frames ran out (a read each; a file done leaves `live`)
        for i in live.clone() {
            if current[i].as_ref().is_some_and(|c| c.frames_left) {
                continue;
            }
            match read(i, next[i]) {
                Some((latest, ts)) => {
                    let mut by_time: Vec<(i64, u32)> = (ts.iter().enumerate())
                        .map(|(k, &t)| (t, k as u32))
                        .collect();
                    // stable: equal times keep the frame order
                    by_time.sort_by_key(|&(t, _)| t);
                    current[i] = Some(Current {
                        latest,
                        by_time,
                        start: start[i],
                        taken: 0,
                        frames_left: true,
                    });
                    start[i] += ts.len() as u64;
                    next[i] += 1;
                }
                None => {
                    live.retain(|&j| j != i);
                    current[i] = None;
                }
            }
        }
        let held: Vec<usize> = (0..files)
            .filter(|&i| current[i].as_ref().is_some_and(|c| c.frames_left))
            .collect();
        let Some(watermark) = held
            .iter()
            .filter_map(|&i| current[i].as_ref().map(|c| c.latest))
            .min()
        else {
            break;
        };
        items.clear();
        for &i in &held {
            let Some(cur) = current[i].as_mut() else {
                continue;
            };
            while let Some(&(t, k)) = cur.by_time.get(cur.taken) {
                if t > watermark {
                    break;
                }
                items.push((t, i, cur.start + u64::from(k)));
                cur.taken += 1;
            }
            cur.frames_left = cur.latest > watermark;
        }
        // stable: ties keep file order, then frame order (the concat's order)
        items.sort_by_key(|&(t, _, _)| t);
        step(&items);
    }
}

/// A file's own check as the manifest keeps it: per kind (backwards, then jumps) the count
/// and the first (frame, size).
pub fn write_steps(out: &mut Out, steps: &ClockSteps) {
    for s in [steps.backwards, steps.jumps] {
        out.u64(s.count);
        out.u8(u8::from(s.first.is_some()));
        let (frame, size) = s.first.unwrap_or((0, 0));
        out.u64(frame);
        out.i64(size);
    }
}

/// What `write_steps` wrote.
pub fn read_steps(input: &mut In) -> Result<ClockSteps, String> {
    let mut kinds = [Steps::default(); 2];
    for kind in &mut kinds {
        let count = input.u64()?;
        let has_first = input.u8()? != 0;
        let first = (input.u64()?, input.i64()?);
        *kind = Steps {
            count,
            first: has_first.then_some(first),
        };
    }
    let [backwards, jumps] = kinds;
    Ok(ClockSteps { backwards, jumps })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    const DAY: i64 = 86_400 * S;

    /// The single run's check over frames in the given order.
    fn check(ts: &[i64]) -> ClockSteps {
        let frames: Vec<Frame> = (ts.iter())
            .map(|&ts_ns| Frame {
                ts_ns,
                ..Frame::default()
            })
            .collect();
        let mut steps = ClockSteps::default();
        ClockCheck::default().observe(&frames, &mut steps);
        steps
    }

    #[test]
    fn steps_back_come_at_a_step_start_and_jumps_anywhere() {
        // a: batch 1 [0, 10 s, 3 days], batch 2 [2 s, 4 days]; b: [5 s, 1 day + 20 s]
        let sorted = |mut v: Vec<i64>| {
            v.sort_unstable();
            v
        };
        let a = vec![
            sorted(vec![10 * S, 0, 3 * DAY]),
            sorted(vec![2 * S, 4 * DAY]),
        ];
        let b = vec![vec![5 * S, DAY + 20 * S]];
        // step 1 (watermark 1 day 20 s): 0, 5 s, 10 s, 1 day 20 s; step 2 (b done, a
        // holds 3 days, watermark 3 days): 3 days; step 3 (a's batch 2 read): 2 s, 4 days
        let want = check(&[0, 5 * S, 10 * S, DAY + 20 * S, 3 * DAY, 2 * S, 4 * DAY]);
        assert_eq!(want.jumps.count, 3);
        assert_eq!(want.backwards.first, Some((6, 3 * DAY - 2 * S)));
        let files = [a, b];
        let read = |f: usize, n: u32| files[f].get(n as usize).cloned();
        assert_eq!(merged_steps(2, read), want);
    }

    #[test]
    fn times_round_trip_sorted_per_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = TimesWriter::create(dir.path(), "k").unwrap();
        let frames = |ts: &[i64]| -> Vec<Frame> {
            (ts.iter())
                .map(|&ts_ns| Frame {
                    ts_ns,
                    ..Frame::default()
                })
                .collect()
        };
        writer.batch(&frames(&[5, -3, i64::MAX, i64::MIN])).unwrap();
        writer.batch(&frames(&[7])).unwrap();
        writer.finish().unwrap();
        let bytes = std::fs::read(times_path(dir.path(), "k")).unwrap();
        let mut reader = TimesReader::new(&bytes, "k").unwrap();
        assert_eq!(reader.next(), Ok(Some(vec![i64::MIN, -3, 5, i64::MAX])));
        assert_eq!(reader.next(), Ok(Some(vec![7])));
        assert_eq!(reader.next(), Ok(None));
        // a batch cut short is an error, never a panic
        let cut = &bytes[..bytes.len() - 1];
        let mut reader = TimesReader::new(cut, "k").unwrap();
        assert!(reader.next().is_ok_and(|b| b.is_some()));
        assert!(reader.next().is_err());
    }
}
