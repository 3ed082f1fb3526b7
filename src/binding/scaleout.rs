//! The steps of a distributed run (`--executor dask`, tcptrace/scaleout.py) as plain
//! functions over paths and numbers, so that Dask can ship them to its workers: `map`
//! (a file), `reduce` (a partition), `finalize` (the client's: the records in the single
//! run's order, written to the run's output). Each releases the GIL while it works.

use std::path::PathBuf;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::engine::{Engine, Options, RunError};
use crate::parallel::encode::csv_header;
use crate::parallel::scalechunks::{self, PartStart};
use crate::parallel::scaleclock;
use crate::parallel::scaleout::{self, Digest, Part};
use crate::parallel::{self, Encoding};
use crate::writers::spool::JsonSpool;
use crate::writers::summary::Summary;
use crate::writers::zeek::ZeekLogWriter;

use super::{
    bpf, created, finish_execute, options_of, table, Format, Run, Sink, TableRow, FLUSH_BYTES,
};

fn encoding_of(format: &str) -> PyResult<Encoding> {
    match format {
        "jsonl" => Ok(Encoding::Jsonl),
        "csv" => Ok(Encoding::Csv),
        "zeek" => Ok(Encoding::Zeek),
        "json" => Ok(Encoding::Json),
        "table" => Ok(Encoding::Table),
        other => Err(PyValueError::new_err(format!(
            "format {other:?} is not supported with --executor dask yet"
        ))),
    }
}

/// The chunk size the single run's merge reads each of `files` files with.
#[pyfunction]
pub fn scale_chunk(files: usize) -> usize {
    crate::sources::merge_chunk(files)
}

/// A part's start as plain data: (byte, bytes left in its chunk, frames of its batch
/// before it, frames before it, reads before it, timestamp of the frame before it).
type PartTuple = (u64, u64, u64, u64, u32, Option<i64>);

/// The parts a large plain pcap file at `open` is mapped in (read in chunks of `chunk`
/// bytes, cut about every `part_bytes`): the starts of the parts after the first, empty
/// when the file is mapped whole (`parallel::scalechunks::plan`). Reads the whole file.
#[pyfunction]
pub fn scale_plan(py: Python<'_>, open: PathBuf, chunk: usize, part_bytes: u64) -> Vec<PartTuple> {
    let open = crate::names::display_name(&open);
    let starts = py.detach(|| scalechunks::plan(&open, chunk, part_bytes));
    starts
        .into_iter()
        .map(|s| {
            let PartStart {
                position,
                chunk_left,
                batch_frames,
                frames_before,
                reads_before,
                previous_ts,
            } = s;
            (
                position,
                chunk_left,
                batch_frames,
                frames_before,
                reads_before,
                previous_ts,
            )
        })
        .collect()
}

/// Map one file (at `open`, named `path` as the user gave it) into `partitions` partitions
/// under `scratch` (names from `key`): (first timestamp in ns or None, the capture's error
/// or None). With `part` (its number, its start from `scale_plan` or None for the first,
/// the next part's first byte or None for the last), only that part of a pcap file.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (open, path, key, scratch, partitions, chunk, *, part=None, filter=None, msl_s=30.0, linger_s=0.5, max_flows=1_000_000, zeek=false, verify_checksums=false, zeek_server_ports=None, tunnel_ports=None))]
pub fn scale_map(
    py: Python<'_>,
    open: PathBuf,
    path: PathBuf,
    key: &str,
    scratch: PathBuf,
    partitions: usize,
    chunk: usize,
    part: Option<(u32, Option<PartTuple>, Option<u64>)>,
    filter: Option<PyRef<'_, bpf::BpfFilter>>,
    msl_s: f64,
    linger_s: f64,
    max_flows: usize,
    zeek: bool,
    verify_checksums: bool,
    zeek_server_ports: Option<Vec<u16>>,
    tunnel_ports: Option<Vec<(String, u16)>>,
) -> PyResult<(Option<i64>, Option<String>)> {
    let options = options_of(
        filter,
        msl_s,
        linger_s,
        max_flows,
        zeek,
        verify_checksums,
        zeek_server_ports,
        tunnel_ports,
    )?;
    let open = crate::names::display_name(&open);
    let path = crate::names::display_name(&path);
    let part = part.map(|(index, start, end)| Part {
        index,
        start: start.map(
            |(position, chunk_left, batch_frames, frames_before, reads_before, previous_ts)| {
                PartStart {
                    position,
                    chunk_left,
                    batch_frames,
                    frames_before,
                    reads_before,
                    previous_ts,
                }
            },
        ),
        end,
    });
    let done = py.detach(|| {
        let part = part.as_ref();
        scaleout::map_file(
            &open, &path, key, &options, partitions, chunk, &scratch, part,
        )
    });
    let manifest = done.map_err(PyRuntimeError::new_err)?;
    Ok((manifest.first_ts, manifest.error))
}

/// Reduce partition `partition` of the files `keys` (in the run's order).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (scratch, keys, partition, format, *, msl_s=30.0, linger_s=0.5, max_flows=1_000_000, zeek=false, verify_checksums=false, zeek_server_ports=None, tunnel_ports=None))]
pub fn scale_reduce(
    py: Python<'_>,
    scratch: PathBuf,
    keys: Vec<String>,
    partition: usize,
    format: &str,
    msl_s: f64,
    linger_s: f64,
    max_flows: usize,
    zeek: bool,
    verify_checksums: bool,
    zeek_server_ports: Option<Vec<u16>>,
    tunnel_ports: Option<Vec<(String, u16)>>,
) -> PyResult<()> {
    let encoding = encoding_of(format)?;
    let options = options_of(
        None,
        msl_s,
        linger_s,
        max_flows,
        zeek || format == "zeek",
        verify_checksums,
        zeek_server_ports,
        tunnel_ports,
    )?;
    py.detach(|| {
        scaleout::reduce_partition(&scratch, &keys, partition, &options, encoding)
            .map_err(PyRuntimeError::new_err)
    })?;
    Ok(())
}

/// The clock step over the mapped files `keys` (in the run's order), once every map is
/// done and before any reduce (`parallel::scaleclock`).
#[pyfunction]
pub fn scale_clock(py: Python<'_>, scratch: PathBuf, keys: Vec<String>) -> PyResult<()> {
    py.detach(|| scaleclock::plan(&scratch, &keys))
        .map_err(PyRuntimeError::new_err)
}

/// Write the records of the reduced partitions to `out` (a path, "-", or a `write`
/// callable) in the single run's order. Returns a `Run` done executing, as if it had read
/// the files itself: its `source_report()`, `warnings()`, and for json and table its
/// `summary()`, `rows()`, `write_connections()` and `write()` finish the report.
#[pyfunction]
#[pyo3(signature = (scratch, keys, partitions, format, out, *, zeek=false))]
pub fn scale_finalize(
    py: Python<'_>,
    scratch: PathBuf,
    keys: Vec<String>,
    partitions: usize,
    format: &str,
    out: &Bound<'_, PyAny>,
    zeek: bool,
) -> PyResult<Py<Run>> {
    let encoding = encoding_of(format)?;
    let zeek = zeek || format == "zeek";
    let (format, spool) = match encoding {
        Encoding::Jsonl => (Format::Jsonl, None),
        Encoding::Csv => (Format::Csv, None),
        Encoding::Zeek => (Format::Zeek, None),
        Encoding::Table => (Format::Table, None),
        Encoding::Json => (
            Format::Json,
            Some(JsonSpool::new().map_err(|e| PyRuntimeError::new_err(e.to_string()))?),
        ),
    };
    let mut run = Run {
        engine: Engine::new(Vec::new(), Options::default()),
        format,
        summary: Summary::new(),
        spool,
        rows: table::TableRows::default(),
        executed: true,
        sink: Some(Sink::of(out)?),
        jobs: 1,
        report: None,
        traced_only: false,
        page: None,
    };
    let Run {
        summary,
        spool,
        rows,
        sink,
        report,
        ..
    } = &mut run;
    let Some(sink) = sink.as_mut() else {
        return Err(PyRuntimeError::new_err("no output"));
    };
    let mut failure: Option<PyErr> = None;
    let mut buf: Vec<u8> = Vec::with_capacity(FLUSH_BYTES + 4096);
    let mut zeek_log = ZeekLogWriter::new();
    let mut header = encoding == Encoding::Csv;
    let (result, made) = py.detach(|| {
        let manifests =
            scaleclock::light_manifests(&scratch, &keys).map_err(PyRuntimeError::new_err)?;
        let steps =
            scaleout::time_steps(&scratch, &keys, &manifests).map_err(PyRuntimeError::new_err)?;
        let files = scaleout::joined(manifests);
        let reads = (scaleclock::read_clock(&scratch).map_err(PyRuntimeError::new_err)?).reads;
        let finished = scaleout::finalize(&scratch, partitions, encoding, |id, bytes, digest| {
            if let (Some(d), Format::Json | Format::Table) = (digest, format) {
                summary.add_entry(&d.entry());
            }
            match format {
                Format::Zeek => {
                    zeek_log.begin(&mut buf);
                    buf.extend_from_slice(bytes);
                }
                Format::Csv => {
                    if std::mem::take(&mut header) {
                        buf.extend_from_slice(&csv_header(zeek));
                    }
                    buf.extend_from_slice(bytes);
                }
                Format::Json => {
                    if let Some(spool) = spool.as_mut() {
                        spool.add_indented(id, bytes).map_err(|e| e.to_string())?;
                    }
                }
                Format::Table => {
                    if let Some(d) = digest {
                        rows.push(&row_of(id, d));
                    }
                }
                // `format` comes from `encoding_of`: never the records or page runs
                Format::Jsonl | Format::Records | Format::Page => buf.extend_from_slice(bytes),
            }
            if buf.len() >= FLUSH_BYTES {
                sink.write(&mut buf, &mut failure)?;
            }
            Ok(())
        });
        let stats = match finished {
            Ok(stats) => stats,
            Err(message) => return Ok((Err(message), None)),
        };
        if format == Format::Zeek {
            zeek_log.finish(&mut buf);
        }
        let flushed = sink.write(&mut buf, &mut failure);
        let (source_report, warnings) = scaleout::source_of(&files, &reads, steps, &stats);
        let made = parallel::Report {
            source_report: Some(source_report),
            warnings,
        };
        Ok::<_, PyErr>((flushed, Some(made)))
    })?;
    *report = made;
    let result = result.map_err(RunError::Emit);
    let result = created(sink, result, &mut failure);
    finish_execute(py, result, &mut failure)?;
    Py::new(py, run)
}

/// A table row from a record's digest, under its global id.
fn row_of(id: u64, d: &Digest) -> TableRow {
    TableRow {
        id,
        start: d.first_ts,
        duration_ms: d.duration_ms,
        client: d.client.clone(),
        server: d.server.clone(),
        outcome: d.outcome.name(),
        rtt_ms: d.rtt_ms,
        setup_ms: d.setup_ms,
        time_wait: d.time_wait.map(|s| s.name()),
        rst: d.rst.map(|(kind, _)| kind.name()),
        probes: d.probes.0 + d.probes.1,
        requests: d.requests,
        http: d.protocol.is_some(),
        packets: d.packets,
        tunnel: d.tunnel.clone(),
        health: d.health.clone(),
    }
}

/// Add the functions to the module.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(scale_chunk, module)?)?;
    module.add_function(wrap_pyfunction!(scale_plan, module)?)?;
    module.add_function(wrap_pyfunction!(scale_map, module)?)?;
    module.add_function(wrap_pyfunction!(scale_clock, module)?)?;
    module.add_function(wrap_pyfunction!(scale_reduce, module)?)?;
    module.add_function(wrap_pyfunction!(scale_finalize, module)?)?;
    Ok(())
}
