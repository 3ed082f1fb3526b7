//! `analyze --resume STATE` (issue 20, docs/scale-out.md "--resume STATE"): the connections
//! still open at the end of a run are handed on to the next run as their *frames*, not
//! their state. Serialising a live connection would be most of the engine (both state
//! machines, reassembly, every analyzer, the Zeek view): a second format to keep in step
//! with each analyzer. Replaying the frames is exact and needs nothing of them.
//!
//! STATE: 8-byte magic `TTRESUME`, u16 version; the next id (u64); the held connections,
//! then the connections closed early by `--resume-max-bytes` whose continuation is still
//! to come (each list: count u64; each: the canonical 4-tuple, two u128 addresses and the
//! u32 ports, then id u64, previous id flag u8 and u64); the frames' pcap (length u64,
//! then a nanosecond pcap file). Little-endian; every read is bounds-checked: a damaged or
//! foreign file is a one-line error, never a panic. A connection's id goes by its 4-tuple:
//! the one the replay of its frames opens takes it back, in whatever order they open
//! (version 1 listed ids alone, in the order the connections had opened: a continuation
//! opens late with an early id).
//!
//! `--resume-max-bytes` (`cap_held`): the frames STATE would carry are measured first
//! (a pass over the run's inputs like the one that copies them, skipped when all the
//! frames the run read fit), and the oldest held connections are written by the run as
//! they stand until the rest fit: STATE's frames are then at most the bound.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::decode::{decode_frame_in, Path as TunnelPath, TunnelPorts};
use crate::flows::{canonical_first, FastMap, Finished, HeldFlow};
use crate::sources::{Captures, FrameBatch, SourceStats};

const MAGIC: &[u8; 8] = b"TTRESUME";
/// The format version a STATE carries (a reader refuses another).
pub const VERSION: u16 = 2;
/// A pcap file's header with nanosecond timestamps, little-endian (the link type after).
const PCAP_NS_MAGIC: [u8; 4] = [0x4d, 0x3c, 0xb2, 0xa1];
const SNAPLEN: u32 = 262_144;
/// Bytes of a connection's entry in STATE: 4-tuple, id, previous id.
const FLOW_ENTRY: u64 = 16 + 16 + 4 + 8 + 1 + 8;
/// The largest next id a STATE may give: 2^53, the integers a JSON reader keeps exact.
const MAX_NEXT_ID: u64 = 1 << 53;
/// Bytes a frame takes in STATE's pcap: its record header, then its captured bytes.
const RECORD_HEADER: u64 = 16;

/// What a previous run handed on, its frames copied to a pcap file of their own.
pub struct Resumed {
    pub next_id: u64,
    /// The held connections (`first_ns` 0): the connection their frames open again takes
    /// the id back (`FlowTable::reuse_ids`).
    pub ids: Vec<HeldFlow>,
    /// The connections closed early by `--resume-max-bytes` (`first_ns` 0): their
    /// continuation takes their id back (`FlowTable::continue_capped`).
    pub capped: Vec<HeldFlow>,
    /// The frames, as a pcap file the run reads before its own (removed by the caller).
    pub frames: PathBuf,
}

/// The connections held at the end of a run, split by `cap_held`.
#[derive(Default)]
pub struct Capped {
    /// The flows STATE carries.
    pub held: Vec<HeldFlow>,
    /// The flows closed early, and their connections (in the table's order) to write.
    pub capped: Vec<HeldFlow>,
    pub closed: Vec<Finished>,
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

/// A list of connections in STATE: count u64, then `FLOW_ENTRY` bytes each (`write_flows`).
fn read_flows(
    input: &mut impl Read,
    state: &Path,
    size: u64,
    header: &mut u64,
) -> Result<Vec<HeldFlow>, String> {
    let count = read_u64(input, state)?;
    if count > size / FLOW_ENTRY {
        return Err(damaged(state));
    }
    let mut flows = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let lo = u128::from_le_bytes(read_array(input, state)?);
        let hi = u128::from_le_bytes(read_array(input, state)?);
        let ports = u32::from_le_bytes(read_array(input, state)?);
        let id = read_u64(input, state)?;
        let flag = read_array::<1>(input, state)?[0];
        let previous = read_u64(input, state)?;
        flows.push(HeldFlow {
            lo,
            hi,
            ports,
            first_ns: 0,
            id,
            previous_id: (flag != 0).then_some(previous),
        });
    }
    *header += 8 + FLOW_ENTRY * count;
    Ok(flows)
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
    let header = read_header(&mut input, size, state)?;
    // (created only once the header holds: a foreign file leaves nothing behind)
    let fail = |e: std::io::Error| format!("{}: cannot write: {e}", frames.display());
    let mut out = BufWriter::new(File::create(frames).map_err(fail)?);
    copy_frames(&mut input, &mut out, header.pcap_length).map_err(|e| match e {
        CopyError::Write(e) => fail(e),
        CopyError::Damaged => damaged(state),
    })?;
    out.flush().map_err(fail)?;
    Ok(Some(Resumed {
        next_id: header.next_id,
        ids: header.ids,
        capped: header.capped,
        frames: frames.to_path_buf(),
    }))
}

/// STATE up to its frames (`size`: the whole file's bytes).
pub struct Header {
    pub next_id: u64,
    pub ids: Vec<HeldFlow>,
    pub capped: Vec<HeldFlow>,
    /// The bytes of the pcap that follows, of which `read_header` read the first 4.
    pub pcap_length: u64,
}

/// Read STATE's header, ids and the magic of its pcap, every length checked against
/// `size`; the frames follow in `input` (`copy_frames`).
pub fn read_header(input: &mut impl Read, size: u64, state: &Path) -> Result<Header, String> {
    if &read_array::<8>(input, state)? != MAGIC {
        return Err(damaged(state));
    }
    let version = u16::from_le_bytes(read_array(input, state)?);
    if version != VERSION {
        return Err(format!(
            "{}: resume file version {version}, expected {VERSION}",
            state.display()
        ));
    }
    let next_id = read_u64(input, state)?;
    let mut header = 8 + 2 + 8;
    let ids = read_flows(input, state, size, &mut header)?;
    let capped = read_flows(input, state, size, &mut header)?;
    // a run numbers from next_id on: an id handed on is below it, and it is far below
    // 2^53 (no run reaches that many connections; beyond it JSON readers lose digits)
    let ids_below = |flows: &[HeldFlow]| flows.iter().all(|f| f.id < next_id);
    if next_id > MAX_NEXT_ID || !ids_below(&ids) || !ids_below(&capped) {
        return Err(damaged(state));
    }
    let pcap_length = read_u64(input, state)?;
    header += 8;
    if header.checked_add(pcap_length) != Some(size) || pcap_length < 24 {
        return Err(damaged(state));
    }
    if read_array::<4>(input, state)? != PCAP_NS_MAGIC {
        return Err(damaged(state));
    }
    Ok(Header {
        next_id,
        ids,
        capped,
        pcap_length,
    })
}

/// Why the frames could not be copied out of STATE.
pub enum CopyError {
    Write(std::io::Error),
    /// STATE ends before (or goes on after) the length its header gives.
    Damaged,
}

/// Copy STATE's pcap (after the magic `read_header` took) to `out`, as a pcap file.
pub fn copy_frames(
    input: &mut impl Read,
    out: &mut impl Write,
    pcap_length: u64,
) -> Result<(), CopyError> {
    out.write_all(&PCAP_NS_MAGIC).map_err(CopyError::Write)?;
    let copied = std::io::copy(input, out).map_err(CopyError::Write)?;
    if copied + 4 != pcap_length {
        return Err(CopyError::Damaged);
    }
    Ok(())
}

/// Write STATE (under a temporary name, then renamed: a failed run leaves the old one):
/// the held connections' ids and, read again from `inputs` (the run's, the previous
/// STATE's frames first), the frames of their flows from each one's first segment on;
/// and the capped connections whose continuation is to come.
pub fn write_state(
    state: &Path,
    inputs: &[String],
    ports: &TunnelPorts,
    held: &[HeldFlow],
    capped: &[HeldFlow],
    next_id: u64,
) -> Result<Carried, String> {
    let mut held = held.to_vec();
    held.sort_unstable_by_key(|h| h.id);
    let first = first_segments(&held);
    let name = state
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = state.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result =
        write_to(&tmp, (inputs, ports), (&held, capped), &first, next_id).and_then(|carried| {
            fs::rename(&tmp, state)
                .map(|()| carried)
                .map_err(|e| format!("{}: cannot write: {e}", state.display()))
        });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A flow's canonical 4-tuple (`FlowKey` without the tunnel).
type Tuple = (u128, u128, u32);

/// Each held 4-tuple's first segment: STATE carries its frames from there on.
fn first_segments(held: &[HeldFlow]) -> FastMap<Tuple, i64> {
    let mut first: FastMap<Tuple, i64> =
        FastMap::with_capacity_and_hasher(held.len(), Default::default());
    for h in held {
        let at = first.entry((h.lo, h.hi, h.ports)).or_insert(h.first_ns);
        *at = (*at).min(h.first_ns);
    }
    first
}

/// Each frame of `inputs` STATE carries for the 4-tuples of `first` (from their first
/// segment on), with its 4-tuple: the one selection the measure and the copy share. The
/// frames are decoded as the run decoded them: through the UDP tunnels on `ports` (the
/// well-known ones and `--tunnel-port`'s).
fn each_held_frame(
    (inputs, ports): (&[String], &TunnelPorts),
    first: &FastMap<Tuple, i64>,
    mut each: impl FnMut(&FrameBatch, usize, Tuple) -> Result<(), String>,
) -> Result<(), String> {
    if first.is_empty() {
        return Ok(());
    }
    let mut captures = Captures::open(inputs, None).map_err(|e| e.0)?;
    let mut stats = SourceStats::default();
    while let Some(batch) = captures.next_batch(&mut stats).map_err(|e| e.0)? {
        for (i, frame) in batch.frames.iter().enumerate() {
            let decoded = decode_frame_in(
                &batch.data,
                frame,
                i as u32,
                Some(ports),
                &mut TunnelPath::default(),
            );
            let Ok(seg) = decoded else {
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
                Some(&from) if frame.ts_ns >= from => each(&batch, i, key)?,
                _ => {}
            }
        }
    }
    Ok(())
}

/// `--resume-max-bytes`: the connections held at the end of a run (`FlowTable::hold`)
/// split into those STATE carries and those closed now, written by the run as they stand
/// (the oldest first: earliest first segment). `read_bytes`: every frame's bytes the run
/// read, as STATE would count them; when they fit, nothing is measured.
pub fn cap_held(
    inputs: (&[String], &TunnelPorts),
    open: Vec<(HeldFlow, Finished)>,
    max_bytes: u64,
    read_bytes: u64,
) -> Result<Capped, String> {
    let flows: Vec<HeldFlow> = open.iter().map(|(flow, _)| *flow).collect();
    let capped = if read_bytes <= max_bytes {
        vec![false; flows.len()]
    } else {
        let mut sizes: FastMap<Tuple, u64> =
            FastMap::with_capacity_and_hasher(flows.len(), Default::default());
        each_held_frame(inputs, &first_segments(&flows), |batch, i, key| {
            *sizes.entry(key).or_default() += RECORD_HEADER + u64::from(batch.frames[i].caplen);
            Ok(())
        })?;
        oldest_past(&flows, &sizes, max_bytes)
    };
    let mut split = Capped::default();
    for ((flow, conn), capped) in open.into_iter().zip(capped) {
        if capped {
            split.capped.push(flow);
            split.closed.push(conn);
        } else {
            split.held.push(flow);
        }
    }
    Ok(split)
}

/// Which flows to close (true) so that the frames of the rest, `sizes` by 4-tuple, come to
/// at most `max_bytes`: the oldest 4-tuples first (earliest first segment, then lowest
/// id). The flows of one 4-tuple (in several tunnels) go together: STATE carries its
/// frames from the first one's on.
fn oldest_past(flows: &[HeldFlow], sizes: &FastMap<Tuple, u64>, max_bytes: u64) -> Vec<bool> {
    let mut tuples: HashMap<Tuple, (i64, u64)> = HashMap::with_capacity(flows.len());
    for flow in flows {
        let age = tuples
            .entry((flow.lo, flow.hi, flow.ports))
            .or_insert((flow.first_ns, flow.id));
        *age = (*age).min((flow.first_ns, flow.id));
    }
    let mut by_age: Vec<(i64, u64, Tuple)> = tuples
        .into_iter()
        .map(|(tuple, (first_ns, id))| (first_ns, id, tuple))
        .collect();
    by_age.sort_unstable();
    let size = |tuple: &Tuple| sizes.get(tuple).copied().unwrap_or(0);
    let mut total: u64 = by_age.iter().map(|(_, _, tuple)| size(tuple)).sum();
    let mut closed: std::collections::HashSet<Tuple> = std::collections::HashSet::new();
    for (_, _, tuple) in &by_age {
        if total <= max_bytes {
            break;
        }
        total -= size(tuple);
        closed.insert(*tuple);
    }
    flows
        .iter()
        .map(|flow| closed.contains(&(flow.lo, flow.hi, flow.ports)))
        .collect()
}

/// A list of connections: count u64, then each one's canonical 4-tuple (two u128
/// addresses, the u32 ports), id u64, previous id flag u8 and u64.
fn write_flows(out: &mut impl Write, flows: &[HeldFlow]) -> std::io::Result<()> {
    out.write_all(&(flows.len() as u64).to_le_bytes())?;
    for flow in flows {
        out.write_all(&flow.lo.to_le_bytes())?;
        out.write_all(&flow.hi.to_le_bytes())?;
        out.write_all(&flow.ports.to_le_bytes())?;
        out.write_all(&flow.id.to_le_bytes())?;
        out.write_all(&[u8::from(flow.previous_id.is_some())])?;
        out.write_all(&flow.previous_id.unwrap_or(0).to_le_bytes())?;
    }
    Ok(())
}

fn write_to(
    path: &Path,
    inputs: (&[String], &TunnelPorts),
    (held, capped): (&[HeldFlow], &[HeldFlow]),
    first: &FastMap<Tuple, i64>,
    next_id: u64,
) -> Result<Carried, String> {
    let fail = |e: std::io::Error| format!("{}: cannot write: {e}", path.display());
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).map_err(fail)?);
    out.write_all(MAGIC).map_err(fail)?;
    out.write_all(&VERSION.to_le_bytes()).map_err(fail)?;
    out.write_all(&next_id.to_le_bytes()).map_err(fail)?;
    write_flows(&mut out, held).map_err(fail)?;
    write_flows(&mut out, capped).map_err(fail)?;
    let length_at = 8 + 2 + 8 + 8 + 8 + FLOW_ENTRY * (held.len() + capped.len()) as u64;
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
    each_held_frame(inputs, first, |batch, i, _| {
        let frame = &batch.frames[i];
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
        carried.bytes += RECORD_HEADER + u64::from(frame.caplen);
        Ok(())
    })?;
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
        let carried =
            write_state(&state, &paths, &TunnelPorts::default(), &held, &[], next_id).unwrap();
        assert_eq!((carried.connections, carried.frames), (1, 264));
        let frames = dir.path().join("frames.pcap");
        let resumed = read_state(&state, &frames).unwrap().unwrap();
        let ids: Vec<_> = resumed.ids.iter().map(|h| (h.id, h.previous_id)).collect();
        assert_eq!((resumed.next_id, ids), (2, vec![(1, None)]));
        assert!(resumed.capped.is_empty());
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

    fn flow(lo: u128, first_ns: i64, id: u64) -> HeldFlow {
        HeldFlow {
            lo,
            hi: 99,
            ports: 80,
            first_ns,
            id,
            previous_id: None,
        }
    }

    #[test]
    fn the_oldest_are_closed_until_the_rest_fit() {
        // flows 1 and 2 share a 4-tuple (two tunnels): one size, closed together
        let flows = [
            flow(5, 300, 3),
            flow(1, 100, 1),
            flow(1, 400, 2),
            flow(7, 200, 4),
        ];
        let sizes: FastMap<Tuple, u64> = [((1, 99, 80), 50), ((5, 99, 80), 30), ((7, 99, 80), 20)]
            .into_iter()
            .collect();
        let closed = |max| oldest_past(&flows, &sizes, max);
        assert_eq!(closed(100), vec![false; 4]);
        assert_eq!(closed(99), vec![false, true, true, false]);
        assert_eq!(closed(50), vec![false, true, true, false]);
        assert_eq!(closed(49), vec![false, true, true, true]); // the 4-tuple of 200 ns
        assert_eq!(closed(30), vec![false, true, true, true]);
        assert_eq!(closed(29), vec![true; 4]);
        assert_eq!(closed(0), vec![true; 4]);
    }

    #[test]
    fn held_and_capped_connections_round_trip_by_their_4_tuples() {
        let paths = vec![capture("transfer/download.pcap")];
        let (_, held, next_id) = held_run(paths.clone());
        // numbered on as if the run had gone on: the capped ids below are under it
        let next_id = next_id + 10;
        let dir = tempfile::tempdir().unwrap();
        let (state, frames) = (dir.path().join("state"), dir.path().join("frames.pcap"));
        let capped = [
            HeldFlow {
                lo: u128::MAX,
                hi: 1 << 100,
                ports: 0xdead_beef,
                first_ns: 0,
                id: 9,
                previous_id: Some(4),
            },
            HeldFlow {
                previous_id: None,
                id: 11,
                ..flow(2, 0, 0)
            },
        ];
        write_state(
            &state,
            &paths,
            &TunnelPorts::default(),
            &held,
            &capped,
            next_id,
        )
        .unwrap();
        let resumed = read_state(&state, &frames).unwrap().unwrap();
        assert_eq!(resumed.capped, capped);
        let ids = [HeldFlow {
            first_ns: 0,
            ..held[0]
        }];
        assert_eq!((resumed.next_id, resumed.ids), (next_id, ids.to_vec()));
    }

    #[test]
    fn a_missing_state_is_a_first_run_and_a_cut_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let frames = dir.path().join("frames.pcap");
        assert!(read_state(&state, &frames).unwrap().is_none());
        let paths = vec![capture("transfer/download.pcap")];
        let (_, held, next_id) = held_run(paths.clone());
        write_state(&state, &paths, &TunnelPorts::default(), &held, &[], next_id).unwrap();
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

    #[test]
    fn ids_at_or_past_the_next_id_are_damage() {
        let paths = vec![capture("transfer/download.pcap")];
        let (_, held, next_id) = held_run(paths.clone());
        assert_eq!((held.len(), next_id), (1, 2));
        let header = |next_id: u64| {
            let dir = tempfile::tempdir().unwrap();
            let state = dir.path().join("state");
            write_state(&state, &paths, &TunnelPorts::default(), &held, &[], next_id).unwrap();
            let bytes = fs::read(&state).unwrap();
            read_header(&mut bytes.as_slice(), bytes.len() as u64, &state).map(|h| h.next_id)
        };
        assert_eq!(header(2), Ok(2));
        assert_eq!(header(1 << 53), Ok(1 << 53));
        // the held connection's id 1 is not below 1; no run numbers past 2^53 (nor to
        // u64::MAX, where the next id would overflow)
        for next_id in [1, (1 << 53) + 1, u64::MAX] {
            assert!(header(next_id).is_err_and(|e| e.ends_with("(or a damaged one)")));
        }
    }
}
