//! `tcptrace._native.Session`: the live capture's engine (crate::session) for Python.
//!
//! The capture loop (tcptrace/sources/live.py) hands in, per batch, a few bytes objects of
//! libpcap records (one per read from an interface); jsonl and csv bytes go straight to the
//! output, as connections end; the streamed table gets row tuples back from each call.

use std::fs::File;
use std::sync::{Arc, Mutex, PoisonError};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use super::capture::{on_frame_address, Tapped};
use super::{quiet_panics, row_tuple, to_python, Format, Sink, TableRow};
use crate::engine::{Options, RunError};
use crate::session::capture::{CaptureBuffer, Tap};
use crate::session::libpcap::{batch_of, PktHdr, Records};
use crate::session::savefile::SaveFile;
use crate::session::Session;
use crate::writers::csv::CsvWriter;
use crate::writers::json::write_jsonl;
use crate::writers::summary::Summary;

/// One live analysis: `output(out)` (jsonl, csv), optionally `save(path, linktype)`, then
/// `feed(reads, merge)` and `tick(now_ns)` as the capture goes, `close()` at its end; each
/// of those returns the table rows of the connections that ended (table format only).
#[pyclass(name = "Session")]
pub(super) struct LiveSession {
    session: Session,
    format: Format,
    summary: Summary,
    csv: CsvWriter,
    sink: Option<Sink>,
    save: Option<SaveFile<File>>,
    header: PktHdr,
    buf: Vec<u8>,
    /// Frames the `pcap_dispatch` callback collected since the last `feed_captured`.
    captured: Arc<Mutex<CaptureBuffer>>,
    /// The callback contexts handed out by `tap`: boxed, so their addresses stay put, and
    /// kept as long as the session (libpcap may call the callback with them until then).
    #[allow(clippy::vec_box)]
    // the Box is the point: a `Tapped` must not move when the Vec grows
    taps: Vec<Box<Tapped>>,
    /// Table rows of the connections written after a panic (the call raised).
    failed_rows: Option<Py<PyList>>,
}

/// What a call gives the table: (row, close.time_wait_until) per connection that ended.
type Rows = Vec<(TableRow, Option<f64>)>;

#[pymethods]
impl LiveSession {
    #[new]
    #[pyo3(signature = (interfaces, format, filter=None, msl_s=30.0, linger_s=1.0, max_flows=100_000, idle_timeout_s=None, long_bytes=8, panic_at_frame=None, tunnel_ports=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        interfaces: Vec<String>,
        format: &str,
        filter: Option<PyRef<'_, super::bpf::BpfFilter>>,
        msl_s: f64,
        linger_s: f64,
        max_flows: usize,
        idle_timeout_s: Option<f64>,
        long_bytes: usize,
        panic_at_frame: Option<u64>,
        tunnel_ports: Option<Vec<(String, u16)>>,
    ) -> PyResult<LiveSession> {
        let format = match format {
            "jsonl" => Format::Jsonl,
            "csv" => Format::Csv,
            "table" => Format::Table,
            other => {
                return Err(PyValueError::new_err(format!(
                    "a live session streams table, jsonl or csv, not {other:?}"
                )))
            }
        };
        let options = Options {
            filter: filter.map(|f| f.filter()),
            msl_s,
            linger_s,
            max_flows,
            idle_timeout_s,
            panic_at_frame,
            tunnels: super::tunnels_of(tunnel_ports.unwrap_or_default())?,
            ..Options::default()
        };
        let files = interfaces.iter().map(|i| format!("live:{i}")).collect();
        Ok(LiveSession {
            session: Session::new(files, options),
            format,
            summary: Summary::new(),
            csv: CsvWriter::new(),
            sink: None,
            save: None,
            header: PktHdr::new(long_bytes).map_err(PyValueError::new_err)?,
            buf: Vec::new(),
            captured: Arc::default(),
            taps: Vec::new(),
            failed_rows: None,
        })
    }

    /// Where jsonl and csv records go: a path (truncated first), "-" for the standard
    /// output, or a `write` callable.
    fn output(&mut self, out: &Bound<'_, PyAny>) -> PyResult<()> {
        self.sink = Some(Sink::of(out)?);
        Ok(())
    }

    /// Also save every frame fed to a pcap file (`live -w`), the frames of `linktype`.
    fn save(&mut self, py: Python<'_>, path: std::path::PathBuf, linktype: u32) -> PyResult<()> {
        // `-w -`: the capture goes to standard output (a duplicate of descriptor 1, so that
        // `tcptrace live -w - | tcpdump -r -` works; the report goes to -o FILE)
        let file = if path.as_os_str() == "-" {
            stdout_file()
        } else {
            File::create(&path)
        };
        let file = file.map_err(|e| super::os_error(py, e, &path))?;
        self.save = Some(SaveFile::new(file, linktype)?);
        Ok(())
    }

    /// Analyze one batch: `reads` are (records, linktype, ns_per_unit) per read from an
    /// interface, in the order read; `merge` (several interfaces) orders the frames by time.
    fn feed(
        &mut self,
        py: Python<'_>,
        reads: Vec<(Bound<'_, PyBytes>, u32, i64)>,
        merge: bool,
    ) -> PyResult<Py<PyList>> {
        let records: Vec<Records<'_>> = reads
            .iter()
            .map(|(bytes, linktype, unit)| Records {
                bytes: bytes.as_bytes(),
                linktype: *linktype,
                ns_per_unit: *unit,
            })
            .collect();
        let mut batch = batch_of(&records, self.header, merge).map_err(PyValueError::new_err)?;
        drop(records);
        self.session.number(&mut batch);
        if let Some(save) = self.save.as_mut() {
            save.write(&batch)?;
        }
        self.call(py, |session, emit| session.feed(&batch, emit))
    }

    /// The frames of one interface go straight to this session, not through Python: returns
    /// (callback, user), the addresses to give `pcap_dispatch` for the interface's handle
    /// (a `pcap_handler` and its context). Valid as long as this session.
    fn tap(&mut self, linktype: u32, ns_per_unit: i64) -> (usize, usize) {
        let tapped = Box::new(Tapped::new(
            Tap {
                linktype,
                ns_per_unit,
            },
            self.captured.clone(),
        ));
        let user = &*tapped as *const Tapped as usize;
        self.taps.push(tapped);
        (on_frame_address(), user)
    }

    /// Analyze the frames the callback collected since the last call (in the order read;
    /// by time with `merge`), as `feed` does.
    fn feed_captured(&mut self, py: Python<'_>, merge: bool) -> PyResult<Py<PyList>> {
        let mut batch = self
            .captured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(merge);
        self.session.number(&mut batch);
        if let Some(save) = self.save.as_mut() {
            save.write(&batch)?;
        }
        self.call(py, |session, emit| session.feed(&batch, emit))
    }

    /// Time passed with no traffic: connections that ended (or went idle) by `now_ns`.
    fn tick(&mut self, py: Python<'_>, now_ns: i64) -> PyResult<Py<PyList>> {
        self.call(py, |session, emit| session.tick(now_ns, emit))
    }

    /// The capture ended: every connection still open.
    fn close(&mut self, py: Python<'_>) -> PyResult<Py<PyList>> {
        self.call(py, |session, emit| session.close(emit))
    }

    /// A warning of the capture ("kind: message", once per kind), before the engine's own.
    fn warn(&mut self, kind: &str, message: &str) {
        self.session.source.warn_once(kind, message);
    }

    /// After a call raised EngineFailure: the table rows of the connections it still wrote.
    fn failed_rows(&mut self, py: Python<'_>) -> Py<PyList> {
        self.failed_rows
            .take()
            .unwrap_or_else(|| PyList::empty(py).unbind())
    }

    /// Connections held now.
    #[getter]
    fn open_connections(&self) -> usize {
        self.session.open_connections()
    }

    /// Connections reported so far.
    #[getter]
    fn finished(&self) -> u64 {
        self.session.finished()
    }

    /// The summary of the records so far (src/writers/summary.rs `as_dict`).
    fn summary(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python(py, &self.summary.as_dict())
    }

    /// The `source` part of the report.
    fn source_report(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python(py, &self.session.source_report())
    }

    /// Warnings so far, each "kind: message".
    fn warnings(&self) -> Vec<String> {
        let mut warnings = self.session.source.warnings.clone();
        warnings.extend(self.summary.warning()); // the scan sources' cap
        warnings
    }
}

impl LiveSession {
    /// Run one step of the session, writing (jsonl, csv) or collecting (table) its records.
    fn call<F>(&mut self, py: Python<'_>, step: F) -> PyResult<Py<PyList>>
    where
        F: FnOnce(
                &mut Session,
                &mut dyn FnMut(crate::model::ConnectionRecord) -> Result<(), String>,
            ) -> Result<(), RunError>
            + Send,
    {
        quiet_panics();
        let format = self.format;
        let LiveSession {
            session,
            summary,
            csv,
            sink,
            buf,
            ..
        } = self;
        let mut rows: Rows = Vec::new();
        let mut failure: Option<PyErr> = None;
        let result = py.detach(|| {
            let outcome = step(session, &mut |record| {
                summary.add(&record);
                match format {
                    Format::Jsonl => write_jsonl(buf, &record),
                    Format::Csv => csv.write(&record, buf),
                    _ => rows.push((TableRow::of(&record), record.close.time_wait_until)),
                }
                Ok(())
            });
            // records before a failure are written; a step's records go out together
            let flushed = match sink.as_mut() {
                Some(out) => out.write(buf, &mut failure),
                None => {
                    buf.clear();
                    Ok(())
                }
            };
            match outcome {
                Ok(()) => flushed.map_err(RunError::Emit),
                Err(e) => Err(e),
            }
        });
        let list = PyList::empty(py);
        for (row, until) in rows {
            list.append(PyTuple::new(
                py,
                [
                    row_tuple(py, row)?.into_any(),
                    until.into_pyobject(py)?.into_any(),
                ],
            )?)?;
        }
        // a panic keeps the rows read before it for Python to print (`failed_rows`)
        let panicked = matches!(result, Err(RunError::Panic { .. })) && failure.is_none();
        match super::finish_execute(py, result, &mut failure) {
            Ok(()) => Ok(list.unbind()),
            Err(err) => {
                if panicked {
                    self.failed_rows = Some(list.unbind());
                }
                Err(err)
            }
        }
    }
}

/// Standard output as a file of its own (a duplicate of descriptor 1).
#[cfg(unix)]
fn stdout_file() -> std::io::Result<File> {
    use std::os::fd::AsFd;
    Ok(File::from(std::io::stdout().as_fd().try_clone_to_owned()?))
}

#[cfg(not(unix))]
fn stdout_file() -> std::io::Result<File> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}
