//! The clock step of a distributed run (`--executor dask`, docs/scale-out.md): the single
//! run's feed replayed once, between the maps and the reduces, so that no reduce holds the
//! whole run's segment timestamps and ordinals (16 bytes a segment).
//!
//! `plan` reads every manifest, replays the clock (`scaleout::clock`) and writes what the
//! reduces and the client need of it: `run.clock` (the slice ends, the reads in the run's
//! order, whether several files are merged, and the ordinals of the tunnel paths'
//! representatives) and, per manifest, `KEY.ordinals` (its segments' ordinals in file
//! order, and its bad-checksum segments' places in the ledger). A reduce reads the clock
//! file and each manifest's ordinals in turn, keeping only those of its own segments.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::scaleout::{self, clock, files_of, joined, read_manifest};
use super::scaletunnels::Representatives;
use super::spill::{self, In, Out, CLOCK_MAGIC, ORDINALS_MAGIC};

/// What a reduce and the client need of the clock besides each segment's ordinal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunClock {
    /// The run reads several files (a merge): the tunnel paths' representatives are the
    /// merge's (`scaletunnels`).
    pub merged: bool,
    /// The slice ends: the ordinal of the slice's last segment and its latest timestamp.
    pub cuts: Vec<(u64, i64)>,
    /// The reads the single run makes, in its order: (file, read number).
    pub reads: Vec<(usize, u32)>,
    /// Per manifest, per representative's segment index: its ordinal.
    pub representatives: Vec<HashMap<u64, u64>>,
}

fn clock_path(scratch: &Path) -> PathBuf {
    scratch.join("run.clock")
}

fn ordinals_path(scratch: &Path, key: &str) -> PathBuf {
    scratch.join(format!("{key}.ordinals"))
}

/// The clock step over the manifests `keys` (in the run's order; a large file's parts in
/// turn): `run.clock` and each manifest's `KEY.ordinals`, each written whole or not at all.
pub fn plan(scratch: &Path, keys: &[String]) -> Result<(), String> {
    let mut manifests = Vec::with_capacity(keys.len());
    for key in keys {
        manifests.push(read_manifest(scratch, key)?);
    }
    let files = files_of(&manifests);
    let lens: Vec<(usize, usize)> = (manifests.iter())
        .map(|m| (m.ts.len(), m.bad_ts.len()))
        .collect();
    let reps: Vec<Vec<Option<Representatives>>> = (manifests.iter_mut())
        .map(|m| std::mem::take(&mut m.tunnels))
        .collect();
    let replayed = clock(&joined(manifests));
    let mut out = Out::new(CLOCK_MAGIC);
    out.u8(u8::from(files.len() > 1));
    out.u64(replayed.cuts.len() as u64);
    for &(last, latest) in &replayed.cuts {
        out.u64(last);
        out.i64(latest);
    }
    out.u64(replayed.reads.len() as u64);
    for &(file, read) in &replayed.reads {
        out.u32(file as u32);
        out.u32(read);
    }
    // per manifest: its slice of its file's ordinals and ledger places
    let mut part = 0usize;
    out.u64(keys.len() as u64);
    for (f, range) in files.iter().enumerate() {
        let all = replayed.ordinals.get(f).map_or(&[][..], Vec::as_slice);
        let all_bad = replayed.bad.get(f).map_or(&[][..], Vec::as_slice);
        let (mut at, mut at_bad) = (0, 0);
        for &(n, b) in lens.get(range.clone()).unwrap_or_default() {
            let ordinals = all.get(at..at + n).unwrap_or_default();
            let places = all_bad.get(at_bad..at_bad + b).unwrap_or_default();
            (at, at_bad) = (at + n, at_bad + b);
            // the ordinals of its tunnel paths' representatives
            let found: Vec<(u64, u64)> = (reps.get(part).map_or(&[][..], Vec::as_slice).iter())
                .flatten()
                .flat_map(|r| [r.earliest.index, r.first.index])
                .filter_map(|index| Some((index, *ordinals.get(index as usize)?)))
                .collect();
            out.u64(found.len() as u64);
            for (index, ordinal) in found {
                out.u64(index);
                out.u64(ordinal);
            }
            let key = keys.get(part).ok_or("more manifests than keys")?;
            write_ordinals(scratch, key, ordinals, places)?;
            part += 1;
        }
    }
    spill::write_atomically(&clock_path(scratch), &out.buf)
}

fn write_ordinals(
    scratch: &Path,
    key: &str,
    ordinals: &[u64],
    places: &[(u64, u64)],
) -> Result<(), String> {
    let mut out = Out::new(ORDINALS_MAGIC);
    out.u64(ordinals.len() as u64);
    ordinals.iter().for_each(|&o| out.u64(o));
    out.u64(places.len() as u64);
    for &(at, rank) in places {
        out.u64(at);
        out.u64(rank);
    }
    spill::write_atomically(&ordinals_path(scratch, key), &out.buf)
}

/// A manifest's segments' ordinals (file order), and its bad-checksum segments' places in
/// the ledger: (the ordinal they go in before, their rank).
pub type Ordinals = (Vec<u64>, Vec<(u64, u64)>);

/// The manifest `key`'s ordinals and ledger places (`plan` wrote them).
pub fn read_ordinals(scratch: &Path, key: &str) -> Result<Ordinals, String> {
    let path = ordinals_path(scratch, key);
    let bytes = spill::read(&path)?;
    let what = path.display().to_string();
    let mut i = In::new(&bytes, ORDINALS_MAGIC, &what)?;
    let n = i.count(8)?;
    let mut ordinals = Vec::with_capacity(n);
    for _ in 0..n {
        ordinals.push(i.u64()?);
    }
    let n = i.count(16)?;
    let mut places = Vec::with_capacity(n);
    for _ in 0..n {
        places.push((i.u64()?, i.u64()?));
    }
    Ok((ordinals, places))
}

/// The run's clock (`plan` wrote it).
pub fn read_clock(scratch: &Path) -> Result<RunClock, String> {
    let path = clock_path(scratch);
    let bytes = spill::read(&path)?;
    let what = path.display().to_string();
    let mut i = In::new(&bytes, CLOCK_MAGIC, &what)?;
    let merged = i.u8()? != 0;
    let n = i.count(16)?;
    let mut cuts = Vec::with_capacity(n);
    for _ in 0..n {
        cuts.push((i.u64()?, i.i64()?));
    }
    let n = i.count(8)?;
    let mut reads = Vec::with_capacity(n);
    for _ in 0..n {
        reads.push((i.u32()? as usize, i.u32()?));
    }
    let mut representatives = Vec::new();
    for _ in 0..i.count(8)? {
        let mut of_part = HashMap::new();
        for _ in 0..i.count(16)? {
            let index = i.u64()?;
            of_part.insert(index, i.u64()?);
        }
        representatives.push(of_part);
    }
    Ok(RunClock {
        merged,
        cuts,
        reads,
        representatives,
    })
}

/// The manifests `keys`, without their timestamps (the clock step replayed them): what
/// the client and the reduces keep of them.
pub fn light_manifests(
    scratch: &Path,
    keys: &[String],
) -> Result<Vec<scaleout::FileManifest>, String> {
    let mut manifests = Vec::with_capacity(keys.len());
    for key in keys {
        let mut m = read_manifest(scratch, key)?;
        m.ts = Vec::new();
        m.bad_ts = Vec::new();
        manifests.push(m);
    }
    Ok(manifests)
}
