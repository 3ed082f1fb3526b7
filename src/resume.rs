//! `analyze --resume STATE` (issue 20, docs/scale-out.md "--resume STATE"): the connections
//! still open at the end of a run are handed on to the next run as their *frames*, not
//! their state. Serialising a live connection would be most of the engine (both state
//! machines, reassembly, every analyzer, the Zeek view): a second format to keep in step
//! with each analyzer. Replaying the frames is exact and needs nothing of them.
//!
//! STATE: 8-byte magic `TTRESUME`, u16 version; the next id (u64); the held connections'
//! ids in the order they opened (count u64; each: id u64, previous id flag u8 and u64);
//! the frames' pcap (length u64, then a nanosecond pcap file). Little-endian; every read
//! is bounds-checked: a damaged or foreign file is a one-line error, never a panic.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::decode::decode_frame;
use crate::flows::{canonical_first, HeldFlow};
use crate::sources::{Captures, SourceStats};

const MAGIC: &[u8; 8] = b"TTRESUME";
/// The format version a STATE carries (a reader refuses another).
pub const VERSION: u16 = 1;
/// A pcap file's header with nanosecond timestamps, little-endian (the link type after).
const PCAP_NS_MAGIC: [u8; 4] = [0x4d, 0x3c, 0xb2, 0xa1];
const SNAPLEN: u32 = 262_144;

/// What a previous run handed on, its frames copied to a pcap file of their own.
pub struct Resumed {
    pub next_id: u64,
    /// Ids and previous ids of the held connections, in the order they opened.
    pub ids: Vec<(u64, Option<u64>)>,
    /// The frames, as a pcap file the run reads before its own (removed by the caller).
    pub frames: PathBuf,
}

/// What `write_state` carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Carried {
    pub connections: usize,
    pub frames: u64,
    pub bytes: u64,
}

fn damaged(state: &Path) -> String {
    format!(
        "{}: not a tcptrace resume file (or a damaged one)",
        state.display()
    )
}

fn read_array<const N: usize>(input: &mut impl Read, state: &Path) -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    input.read_exact(&mut bytes).map_err(|_| damaged(state))?;
    Ok(bytes)
}

fn read_u64(input: &mut impl Read, state: &Path) -> Result<u64, String> {
    read_array(input, state).map(u64::from_le_bytes)
}

/// Read STATE, if it exists (None: a first run), its frames copied to `frames`.
pub fn read_state(state: &Path, frames: &Path) -> Result<Option<Resumed>, String> {
    let file = match File::open(state) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: cannot read: {e}", state.display())),
    };
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let mut input = BufReader::new(file);
    if &read_array::<8>(&mut input, state)? != MAGIC {
        return Err(damaged(state));
    }
    let version = u16::from_le_bytes(read_array(&mut input, state)?);
    if version != VERSION {
        return Err(format!(
            "{}: resume file version {version}, expected {VERSION}",
            state.display()
        ));
    }
    let next_id = read_u64(&mut input, state)?;
    let count = read_u64(&mut input, state)?;
    if count > size / 17 {
        return Err(damaged(state));
    }
    let mut ids = Vec::with_capacity(count as usize);
    let mut header = 8 + 2 + 8 + 8;
    for _ in 0..count {
        let id = read_u64(&mut input, state)?;
        let flag = read_array::<1>(&mut input, state)?[0];
        let previous = read_u64(&mut input, state)?;
        ids.push((id, (flag != 0).then_some(previous)));
        header += 17;
    }
    let length = read_u64(&mut input, state)?;
    header += 8;
    if header + length != size || length < 24 {
        return Err(damaged(state));
    }
    let magic = read_array::<4>(&mut input, state)?;
    if magic != PCAP_NS_MAGIC {
        return Err(damaged(state));
    }
    let fail = |e: std::io::Error| format!("{}: cannot write: {e}", frames.display());
    let mut out = BufWriter::new(File::create(frames).map_err(fail)?);
    out.write_all(&magic).map_err(fail)?;
    let copied = std::io::copy(&mut input, &mut out).map_err(fail)?;
    out.flush().map_err(fail)?;
    if copied + 4 != length {
        return Err(damaged(state));
    }
    Ok(Some(Resumed {
        next_id,
        ids,
        frames: frames.to_path_buf(),
    }))
}

/// Write STATE (under a temporary name, then renamed: a failed run leaves the old one):
/// the held connections' ids and, read again from `inputs` (the run's, the previous
/// STATE's frames first), the frames of their flows from each one's first segment on.
pub fn write_state(
    state: &Path,
    inputs: &[String],
    held: &[HeldFlow],
    next_id: u64,
) -> Result<Carried, String> {
    let mut held = held.to_vec();
    held.sort_unstable_by_key(|h| h.id); // ids were given in the order connections opened
    let mut first: HashMap<(u128, u128, u32), i64> = HashMap::with_capacity(held.len());
    for h in &held {
        let at = first.entry((h.lo, h.hi, h.ports)).or_insert(h.first_ns);
        *at = (*at).min(h.first_ns);
    }
    let name = state
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = state.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = write_to(&tmp, inputs, &held, &first, next_id).and_then(|carried| {
        fs::rename(&tmp, state)
            .map(|()| carried)
            .map_err(|e| format!("{}: cannot write: {e}", state.display()))
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_to(
    path: &Path,
    inputs: &[String],
    held: &[HeldFlow],
    first: &HashMap<(u128, u128, u32), i64>,
    next_id: u64,
) -> Result<Carried, String> {
    let fail = |e: std::io::Error| format!("{}: cannot write: {e}", path.display());
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).map_err(fail)?);
    out.write_all(MAGIC).map_err(fail)?;
    out.write_all(&VERSION.to_le_bytes()).map_err(fail)?;
    out.write_all(&next_id.to_le_bytes()).map_err(fail)?;
    out.write_all(&(held.len() as u64).to_le_bytes())
        .map_err(fail)?;
    for h in held {
        out.write_all(&h.id.to_le_bytes()).map_err(fail)?;
        out.write_all(&[u8::from(h.previous_id.is_some())])
            .map_err(fail)?;
        out.write_all(&h.previous_id.unwrap_or(0).to_le_bytes())
            .map_err(fail)?;
    }
    let length_at = 8 + 2 + 8 + 8 + 17 * held.len() as u64;
    out.write_all(&0u64.to_le_bytes()).map_err(fail)?; // the pcap's length, set below
    out.write_all(&PCAP_NS_MAGIC).map_err(fail)?;
    out.write_all(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        .map_err(fail)?; // version 2.4, zone, sigfigs
    out.write_all(&SNAPLEN.to_le_bytes()).map_err(fail)?;
    out.write_all(&1u32.to_le_bytes()).map_err(fail)?; // link type, set below
    let mut carried = Carried {
        connections: held.len(),
        ..Carried::default()
    };
    let mut link: Option<u32> = None;
    if !first.is_empty() {
        let mut captures = Captures::open(inputs, None).map_err(|e| e.0)?;
        let mut stats = SourceStats::default();
        while let Some(batch) = captures.next_batch(&mut stats).map_err(|e| e.0)? {
            for (i, frame) in batch.frames.iter().enumerate() {
                let Ok(seg) = decode_frame(&batch.data, frame, i as u32) else {
                    continue;
                };
                let key = if canonical_first(&seg) {
                    (
                        seg.src,
                        seg.dst,
                        u32::from(seg.sport) << 16 | u32::from(seg.dport),
                    )
                } else {
                    (
                        seg.dst,
                        seg.src,
                        u32::from(seg.dport) << 16 | u32::from(seg.sport),
                    )
                };
                match first.get(&key) {
                    Some(&from) if frame.ts_ns >= from => {}
                    _ => continue,
                }
                if *link.get_or_insert(frame.linktype) != frame.linktype {
                    return Err(format!(
                        "--resume: the open connections' frames have several link types \
                         ({} and {}): not supported yet",
                        link.unwrap_or(0),
                        frame.linktype
                    ));
                }
                let secs = frame.ts_ns.div_euclid(1_000_000_000);
                let nanos = frame.ts_ns.rem_euclid(1_000_000_000) as u32;
                out.write_all(&(secs as u32).to_le_bytes()).map_err(fail)?;
                out.write_all(&nanos.to_le_bytes()).map_err(fail)?;
                out.write_all(&frame.caplen.to_le_bytes()).map_err(fail)?;
                out.write_all(&frame.wirelen.to_le_bytes()).map_err(fail)?;
                out.write_all(batch.bytes(i)).map_err(fail)?;
                carried.frames += 1;
                carried.bytes += 16 + u64::from(frame.caplen);
            }
        }
    }
    let mut file = out.into_inner().map_err(|e| fail(e.into_error()))?;
    let length = file.stream_position().map_err(fail)? - length_at - 8;
    file.seek(SeekFrom::Start(length_at)).map_err(fail)?;
    file.write_all(&length.to_le_bytes()).map_err(fail)?;
    file.seek(SeekFrom::Start(length_at + 8 + 20))
        .map_err(fail)?;
    file.write_all(&link.unwrap_or(1).to_le_bytes())
        .map_err(fail)?;
    file.sync_all().map_err(fail)?;
    Ok(carried)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, Options};

    fn capture(name: &str) -> String {
        format!("{}/pcaps/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    /// Run over `paths`, holding the connections open at the end: (ids written, held).
    fn held_run(paths: Vec<String>) -> (Vec<u64>, Vec<HeldFlow>, u64) {
        let mut engine = Engine::new(paths, Options::default());
        engine.resume_from(None, true);
        let mut ids = Vec::new();
        engine
            .run(|r| {
                ids.push(r.id);
                Ok(())
            })
            .unwrap();
        let held = engine.held.take().unwrap_or_default();
        (ids, held, engine.next_id())
    }

    #[test]
    fn a_state_round_trips_its_ids_and_frames() {
        // the whole transfer: its connection is still lingering in the table at the end
        let paths = vec![capture("transfer/download.pcap")];
        let (written, held, next_id) = held_run(paths.clone());
        assert_eq!((written, held.len(), next_id), (vec![], 1, 2));
        assert_eq!((held[0].id, held[0].previous_id), (1, None));
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let carried = write_state(&state, &paths, &held, next_id).unwrap();
        assert_eq!((carried.connections, carried.frames), (1, 264));
        let frames = dir.path().join("frames.pcap");
        let resumed = read_state(&state, &frames).unwrap().unwrap();
        assert_eq!((resumed.next_id, resumed.ids), (2, vec![(1, None)]));
        // the frames are a capture of their own: the same connection, the same id
        let mut engine = Engine::new(vec![], Options::default());
        let again = read_state(&state, &frames).unwrap();
        engine.resume_from(again, false);
        let mut records = Vec::new();
        engine
            .run(|r| {
                records.push(r);
                Ok(())
            })
            .unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].id, 1);
        assert_eq!(engine.source.frames, 264);
    }

    #[test]
    fn a_missing_state_is_a_first_run_and_a_cut_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let frames = dir.path().join("frames.pcap");
        assert!(read_state(&state, &frames).unwrap().is_none());
        let paths = vec![capture("transfer/download.pcap")];
        let (_, held, next_id) = held_run(paths.clone());
        write_state(&state, &paths, &held, next_id).unwrap();
        let whole = fs::read(&state).unwrap();
        let message = format!(
            "{}: not a tcptrace resume file (or a damaged one)",
            state.display()
        );
        for cut in [0, 9, 20, 40, 60, whole.len() - 1] {
            fs::write(&state, &whole[..cut]).unwrap();
            assert_eq!(read_state(&state, &frames).err(), Some(message.clone()));
        }
        let mut longer = whole.clone();
        longer.push(0);
        fs::write(&state, &longer).unwrap();
        assert_eq!(read_state(&state, &frames).err(), Some(message));
    }
}
