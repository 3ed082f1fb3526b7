//! Tunnel paths in a distributed run (`--executor dask`, docs/scale-out.md).
//!
//! The decoder numbers tunnel paths in a registry per run (`decode::encap`), in the order
//! their first frame is decoded, and a segment carries the number with a flip bit (its
//! direction against the registered path). A map reads one file alone, so its numbers are
//! its own. The numbers only serve equality (the flow table keys on them and looks the
//! path up when a connection opens; nothing orders or prints them), but the registered
//! path is the one of the frame that met it first, outer UDP source port included, and a
//! record's `encapsulation` is that path turned to its client's direction. So:
//!
//! - each map keeps, per path of its file, its *representatives*: the path's first segment
//!   in the single run's order, that frame's own layers (decoded again alone) and its flip
//!   bit against the file's registered path. A run over several files merges them, each
//!   file's frames handed on by read batch, then time, then frame order (the stable sort
//!   of `Captures::merge_step`); a run over one file reads it in its own order. A map does
//!   not know which run it is part of, so it keeps both: `earliest` and `first`;
//! - each reduce interns the representatives of every file in the order of their
//!   ordinals (`scaleout::clock`), which is the order in which the single run met them,
//!   so that the run's registry holds the same path, in the same direction, for every
//!   tunnel, and renumbers its segments (`Remap`).

use std::sync::{Arc, Mutex, PoisonError};

use crate::decode::encap::{SharedTunnels, TunnelRegistry};
use crate::decode::{decode_piece, Path as TunnelPath, Segment, TunnelKind, TunnelLayer, Tunnels};
use crate::sources::{FrameBatch, SourceStats};

use super::spill::{In, Out};

/// The kinds in the order the manifest numbers them.
const KINDS: [TunnelKind; 8] = [
    TunnelKind::Gre,
    TunnelKind::Erspan,
    TunnelKind::Vxlan,
    TunnelKind::Geneve,
    TunnelKind::IpInIp,
    TunnelKind::Teredo,
    TunnelKind::Gtp,
    TunnelKind::Ayiya,
];

/// One path of a file: where the single run first meets it, and as it meets it there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Representative {
    /// The segment's index in the file (`FileManifest::ts`).
    pub index: u64,
    /// Its flip bit against the file's registered path.
    pub flip: bool,
    /// The frame's own layers, outermost first.
    pub layers: Vec<TunnelLayer>,
}

/// A path's representatives: where a merge of several files meets it first, and where a
/// run over its file alone does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Representatives {
    pub earliest: Representative,
    pub first: Representative,
}

/// Where a merge meets a segment among its file's: (read batch, time, index in the file).
type MergeKey = (u32, i64, u64);

/// The map's side: the representatives of each of the file's paths so far.
#[derive(Default)]
pub struct Tracker {
    /// Per local path number - 1: the (read batch, time, index in the file) of its
    /// earliest segment in a merge, and the representatives.
    best: Vec<Option<(MergeKey, Representatives)>>,
}

impl Tracker {
    /// Note a read batch's segments (`first_index`: the file index of the first of them):
    /// a segment earlier in the single run's order than its path's representative so far
    /// replaces it, its frame decoded again alone to get its own layers.
    pub fn note(
        &mut self,
        read: u32,
        batch: &FrameBatch,
        segments: &[Segment],
        first_index: u64,
        tunnels: &Tunnels,
    ) {
        for (k, seg) in segments.iter().enumerate() {
            if seg.tunnel == 0 {
                continue;
            }
            let slot = (seg.tunnel >> 1) as usize - 1;
            if self.best.len() <= slot {
                self.best.resize(slot + 1, None);
            }
            let index = first_index + k as u64;
            let key = (read, seg.ts_ns, index);
            if self.best[slot]
                .as_ref()
                .is_some_and(|(best, _)| *best <= key)
            {
                continue;
            }
            let Some(layers) = own_layers(batch, seg, tunnels) else {
                continue;
            };
            let rep = Representative {
                index,
                flip: seg.tunnel & 1 == 1,
                layers,
            };
            match self.best[slot].as_mut() {
                Some((best, reps)) => {
                    *best = key;
                    reps.earliest = rep;
                }
                None => {
                    let first = rep.clone();
                    let reps = Representatives {
                        earliest: rep,
                        first,
                    };
                    self.best[slot] = Some((key, reps));
                }
            }
        }
    }

    /// The representatives, by local path number - 1 (None: a path no kept segment used,
    /// e.g. one seen only in frames with a bad checksum).
    pub fn finish(self) -> Vec<Option<Representatives>> {
        self.best
            .into_iter()
            .map(|best| best.map(|(_, reps)| reps))
            .collect()
    }
}

/// The layers of the segment's frame as a fresh registry would register them.
fn own_layers(batch: &FrameBatch, seg: &Segment, tunnels: &Tunnels) -> Option<Vec<TunnelLayer>> {
    let frame = *batch.frames.get(seg.frame_index as usize)?;
    let alone = FrameBatch {
        data: Arc::clone(&batch.data),
        frames: vec![frame],
        ..FrameBatch::default()
    };
    let fresh = Tunnels {
        ports: tunnels.ports.clone(),
        registry: SharedTunnels::default(),
    };
    let mut out = Vec::with_capacity(1);
    let (mut stats, mut unsupported) = (SourceStats::default(), Default::default());
    decode_piece(
        &alone,
        None,
        &mut stats,
        &mut unsupported,
        Some(&fresh),
        &mut out,
    );
    let registry = fresh
        .registry
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    registry.path(1).map(|path| path.to_vec())
}

/// Write a file's representatives (in a manifest).
pub fn write(out: &mut Out, reps: &[Option<Representatives>]) {
    out.u64(reps.len() as u64);
    for rep in reps {
        let Some(rep) = rep else {
            out.u8(0);
            continue;
        };
        out.u8(1);
        write_one(out, &rep.earliest);
        write_one(out, &rep.first);
    }
}

fn write_one(out: &mut Out, rep: &Representative) {
    out.u64(rep.index);
    out.u8(u8::from(rep.flip));
    out.u64(rep.layers.len() as u64);
    for l in &rep.layers {
        let kind = KINDS.iter().position(|k| *k == l.kind).unwrap_or(0);
        out.u8(kind as u8);
        out.u8(u8::from(l.id.is_some()));
        out.u32(l.id.unwrap_or(0));
        out.u128(l.src);
        out.u128(l.dst);
        out.u16(l.sport);
        out.u16(l.dport);
        out.u8(u8::from(l.over_udp));
    }
}

/// Read what `write` wrote.
pub fn read(input: &mut In) -> Result<Vec<Option<Representatives>>, String> {
    let mut reps = Vec::new();
    for _ in 0..input.count(1)? {
        if input.u8()? == 0 {
            reps.push(None);
            continue;
        }
        let earliest = read_one(input)?;
        let first = read_one(input)?;
        reps.push(Some(Representatives { earliest, first }));
    }
    Ok(reps)
}

fn read_one(input: &mut In) -> Result<Representative, String> {
    let index = input.u64()?;
    let flip = input.u8()? != 0;
    let mut layers = Vec::new();
    for _ in 0..input.count(43)? {
        let kind = *KINDS
            .get(input.u8()? as usize)
            .ok_or("a tunnel layer's kind is unknown")?;
        let has_id = input.u8()? != 0;
        let id = input.u32()?;
        layers.push(TunnelLayer {
            kind,
            id: has_id.then_some(id),
            src: input.u128()?,
            dst: input.u128()?,
            sport: input.u16()?,
            dport: input.u16()?,
            over_udp: input.u8()? != 0,
        });
    }
    Ok(Representative {
        index,
        flip,
        layers,
    })
}

/// The run's registry and each file's local numbers in it.
pub struct Remap {
    /// The registry the reduce's flow table looks paths up in.
    pub registry: SharedTunnels,
    /// Per file, per local path number - 1: the run's number shifted left by one, with
    /// the flip bit that turns the file's registered direction into the run's (None: a
    /// path no segment uses).
    files: Vec<Vec<Option<u32>>>,
}

impl Remap {
    /// Intern every file's representatives in the single run's order: by `ordinal` of
    /// their segment (file, index in the file). `merged`: the run reads several files (a
    /// large file's parts are each a "file" here, but the run reads one file).
    pub fn new<O: Fn(usize, u64) -> Option<u64>>(
        files: &[&[Option<Representatives>]],
        merged: bool,
        ordinal: O,
    ) -> Result<Remap, String> {
        let pick = |r: &Representatives| -> Representative {
            if merged {
                r.earliest.clone()
            } else {
                r.first.clone()
            }
        };
        let reps: Vec<Vec<Option<Representative>>> = files
            .iter()
            .map(|f| f.iter().map(|r| r.as_ref().map(pick)).collect())
            .collect();
        let mut order: Vec<(u64, usize, usize)> = Vec::new();
        for (f, file) in reps.iter().enumerate() {
            for (slot, rep) in file.iter().enumerate() {
                if let Some(rep) = rep {
                    let at = ordinal(f, rep.index)
                        .ok_or("a tunnel path's segment is not in its manifest")?;
                    order.push((at, f, slot));
                }
            }
        }
        order.sort_unstable();
        let mut registry = TunnelRegistry::default();
        let mut files: Vec<Vec<Option<u32>>> = reps.iter().map(|f| vec![None; f.len()]).collect();
        let mut path = TunnelPath::default();
        for (_, f, slot) in order {
            let Some(rep) = reps[f][slot].as_ref() else {
                continue;
            };
            path.clear();
            for layer in &rep.layers {
                path.push(*layer);
            }
            let id = registry
                .intern(&path)
                .ok_or("more tunnel paths than a run tracks (tunnel_table_full)")?;
            // the file's direction against the run's: the representative's against both
            files[f][slot] = Some(id ^ u32::from(rep.flip));
        }
        Ok(Remap {
            registry: Arc::new(Mutex::new(registry)),
            files,
        })
    }

    /// `Segment::tunnel` of file `file`'s segment in the run's numbering.
    pub fn tunnel(&self, file: usize, local: u32) -> Result<u32, String> {
        if local == 0 {
            return Ok(0);
        }
        let slot = (local >> 1) as usize - 1;
        let run = self
            .files
            .get(file)
            .and_then(|f| f.get(slot))
            .copied()
            .flatten();
        run.map(|id| id ^ (local & 1))
            .ok_or_else(|| "a segment's tunnel path is not in its manifest".to_string())
    }
}
