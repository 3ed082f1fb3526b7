//! The steps of a distributed run (`--executor dask`, tcptrace/scaleout.py) as plain
//! functions over paths and numbers, so that Dask can ship them to its workers: `map`
//! (a file), `reduce` (a partition), `finalize` (the client's: the records in the single
//! run's order, written to the run's output). Each releases the GIL while it works.

use std::path::PathBuf;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::engine::Options;
use crate::parallel::encode::csv_header;
use crate::parallel::scaleout::{self, FileManifest};
use crate::parallel::Encoding;
use crate::writers::zeek::ZeekLogWriter;

use super::{bpf, created, finish_execute, to_python, tunnels_of, Sink, FLUSH_BYTES};

/// The run's options, as `Run` takes them.
#[allow(clippy::too_many_arguments)]
fn options_of(
    filter: Option<PyRef<'_, bpf::BpfFilter>>,
    msl_s: f64,
    linger_s: f64,
    max_flows: usize,
    zeek: bool,
    verify_checksums: bool,
    zeek_server_ports: Option<Vec<u16>>,
    tunnel_ports: Option<Vec<(String, u16)>>,
) -> PyResult<Options> {
    Ok(Options {
        filter: filter.map(|f| f.filter()),
        msl_s,
        linger_s,
        max_flows,
        zeek,
        verify_checksums,
        zeek_server_ports: zeek_server_ports.map(|mut ports| {
            ports.sort_unstable();
            ports
        }),
        tunnels: tunnels_of(tunnel_ports.unwrap_or_default())?,
        ..Options::default()
    })
}

fn encoding_of(format: &str) -> PyResult<Encoding> {
    match format {
        "jsonl" => Ok(Encoding::Jsonl),
        "csv" => Ok(Encoding::Csv),
        "zeek" => Ok(Encoding::Zeek),
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

/// Map one file into `partitions` partitions under `scratch` (names from `key`):
/// (first timestamp in ns or None, the capture's error or None).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (path, key, scratch, partitions, chunk, *, filter=None, msl_s=30.0, linger_s=0.5, max_flows=1_000_000, zeek=false, verify_checksums=false, zeek_server_ports=None, tunnel_ports=None))]
pub fn scale_map(
    py: Python<'_>,
    path: PathBuf,
    key: &str,
    scratch: PathBuf,
    partitions: usize,
    chunk: usize,
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
    let path = crate::names::display_name(&path);
    let done = py.detach(|| scaleout::map_file(&path, key, &options, partitions, chunk, &scratch));
    let manifest = done.map_err(PyRuntimeError::new_err)?;
    Ok((manifest.first_ts, manifest.error))
}

fn manifests(scratch: &std::path::Path, keys: &[String]) -> PyResult<Vec<FileManifest>> {
    keys.iter()
        .map(|k| scaleout::read_manifest(scratch, k))
        .collect::<Result<_, _>>()
        .map_err(PyRuntimeError::new_err)
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
        let manifests = manifests(&scratch, &keys)?;
        scaleout::reduce_partition(&scratch, &keys, &manifests, partition, &options, encoding)
            .map_err(PyRuntimeError::new_err)
    })?;
    Ok(())
}

/// Write the records of the reduced partitions to `out` (a path, "-", or a `write`
/// callable) in the single run's order: (the source report, the warnings).
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
) -> PyResult<(Py<PyAny>, Vec<String>)> {
    let encoding = encoding_of(format)?;
    let zeek = zeek || format == "zeek";
    let mut sink = Sink::of(out)?;
    let mut failure: Option<PyErr> = None;
    let mut buf: Vec<u8> = Vec::with_capacity(FLUSH_BYTES + 4096);
    let mut zeek_log = ZeekLogWriter::new();
    let mut header = encoding == Encoding::Csv;
    let (result, report) = py.detach(|| {
        let manifests = manifests(&scratch, &keys)?;
        let reads = scaleout::clock(&manifests).reads;
        let finished = scaleout::finalize(&scratch, partitions, encoding, |bytes| {
            if encoding == Encoding::Zeek {
                zeek_log.begin(&mut buf);
            }
            if std::mem::take(&mut header) {
                buf.extend_from_slice(&csv_header(zeek));
            }
            buf.extend_from_slice(bytes);
            if buf.len() >= FLUSH_BYTES {
                sink.write(&mut buf, &mut failure)?;
            }
            Ok(())
        });
        let stats = match finished {
            Ok(stats) => stats,
            Err(message) => return Ok((Err(message), None)),
        };
        if encoding == Encoding::Zeek {
            zeek_log.finish(&mut buf);
        }
        let flushed = sink.write(&mut buf, &mut failure);
        Ok::<_, PyErr>((
            flushed,
            Some(scaleout::source_of(&manifests, &reads, &stats)),
        ))
    })?;
    let result = result.map_err(crate::engine::RunError::Emit);
    let result = created(&mut sink, result, &mut failure);
    finish_execute(py, result, &mut failure)?;
    let (report, warnings) =
        report.unwrap_or_else(|| (crate::writers::Value::Map(Vec::new()), Vec::new()));
    Ok((to_python(py, &report)?, warnings))
}

/// Add the functions to the module.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(scale_chunk, module)?)?;
    module.add_function(wrap_pyfunction!(scale_map, module)?)?;
    module.add_function(wrap_pyfunction!(scale_reduce, module)?)?;
    module.add_function(wrap_pyfunction!(scale_finalize, module)?)?;
    Ok(())
}
