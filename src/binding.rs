//! The Python binding (`tcptrace._native`): a thin layer. Rust owns the hot loop and the
//! output bytes; Python sees one `Run` object per run, a few dicts per run (summary, source
//! report) and, for the table format only, one row tuple per connection.

use std::panic;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Once};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::analyzers::trace::{SegmentTrace, Selection, TraceSelect};
use crate::engine::{Engine, Options, Progress, RunError};
use crate::model::{ConnectionRecord, Role};
use crate::parallel::{self, encode::csv_header, Encoding};
use crate::writers::csv::CsvWriter;
use crate::writers::json::write_jsonl;
use crate::writers::spool::JsonSpool;
use crate::writers::summary::Summary;
use crate::writers::zeek::ZeekLogWriter;
use crate::writers::Value;

mod allocator;
mod bpf;
mod capture;
mod records;
mod scaleout;
mod session;
mod table;

/// Output bytes are handed to Python's `write` in pieces of about this size.
const FLUSH_BYTES: usize = 1 << 20;
/// Records (format "records") are handed to Python in lists of this many: one call into
/// Python per list, and memory bounded by the list.
const RECORD_BATCH: usize = 256;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Jsonl,
    Json,
    Csv,
    Table,
    /// Record dicts for Python's own use (`check`, `ladder`, `report`): each record with
    /// its segment trace, if traced, under a `trace` key; `out` receives lists of them.
    Records,
    /// `-f zeek`: a Zeek-style conn.log (implies the Zeek view).
    Zeek,
    /// The HTML report's table rows (JSON text, `crate::page`) to `out`, the rest of the
    /// page's data held for `page_data`.
    Page,
}

/// What the table format shows of a record (the table is for people: built in Python).
struct TableRow {
    id: u64,
    /// First packet, seconds since the epoch (the table shows it as UTC calendar time).
    start: f64,
    duration_ms: f64,
    client: (String, u16),
    server: (String, u16),
    outcome: &'static str,
    rtt_ms: Option<f64>,
    setup_ms: Option<f64>,
    time_wait: Option<&'static str>,
    rst: Option<&'static str>,
    probes: u64,
    requests: u64,
    http: bool,
    packets: (u64, u64),
    /// The tunnels as the csv column writes them ("gre:7>vxlan:1"); empty for plain traffic.
    tunnel: String,
    /// The health column's words ("rto:2 zw:1", `crate::health_label`); empty when healthy.
    health: String,
}

impl TableRow {
    fn of(r: &ConnectionRecord) -> TableRow {
        TableRow {
            id: r.id,
            start: r.first_ts,
            duration_ms: r.duration_ms,
            client: (r.client.ip.clone(), r.client.port),
            server: (r.server.ip.clone(), r.server.port),
            outcome: r.outcome.name(),
            rtt_ms: r.handshake.rtt_ms,
            setup_ms: r.handshake.setup_ms,
            time_wait: r.close.time_wait.map(|s| s.name()),
            rst: r.rst.as_ref().map(|r| r.kind.name()),
            probes: r.keepalive.probes.client + r.keepalive.probes.server,
            requests: r.reuse.requests,
            http: r.reuse.protocol.is_some(),
            packets: (r.packets.client, r.packets.server),
            tunnel: table::tunnel_label(r),
            health: crate::health_label::health_label(r),
        }
    }
}

/// Bytes read and frames decoded so far, readable from any thread during `Run.execute`.
#[pyclass(frozen, name = "Progress")]
struct PyProgress {
    inner: Arc<Progress>,
}

#[pymethods]
impl PyProgress {
    #[getter]
    fn bytes(&self) -> u64 {
        self.inner.bytes.load(Ordering::Relaxed)
    }
    #[getter]
    fn frames(&self) -> u64 {
        self.inner.frames.load(Ordering::Relaxed)
    }
    /// End the input before the next piece (from another thread while `execute` runs):
    /// the open connections are then reported as they stand and the report is completed.
    fn stop(&self) {
        self.inner.stop.store(true, Ordering::Relaxed);
    }
    #[getter]
    fn stopped(&self) -> bool {
        self.inner.stop.load(Ordering::Relaxed)
    }
}

/// One analysis run: `execute(write)` reads every capture and writes the records;
/// then `summary()`, `source_report()`, and `rows()` (table) or `write_connections(write)`
/// (json) finish the report.
#[pyclass(name = "Run")]
struct Run {
    engine: Engine,
    format: Format,
    summary: Summary,
    spool: Option<JsonSpool>,
    rows: table::TableRows,
    executed: bool,
    /// Where the report goes, from `execute` on.
    sink: Option<Sink>,
    /// Shard threads (`--jobs`); 1: the single-thread engine.
    jobs: usize,
    /// A `--jobs` run's source report and warnings (the engine's own otherwise).
    report: Option<parallel::Report>,
    /// Records format: only the records of traced connections are written.
    traced_only: bool,
    /// Page format: the report's data (`report_page` makes it).
    page: Option<crate::page::PageData>,
}

#[pymethods]
impl Run {
    #[new]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments
    #[pyo3(signature = (paths, format, filter=None, msl_s=30.0, linger_s=0.5, max_flows=1_000_000, panic_at_frame=None, jobs=1, *, zeek=false, verify_checksums=false, zeek_server_ports=None, tunnel_ports=None, per_file=false))]
    fn new(
        paths: Vec<std::path::PathBuf>,
        format: &str,
        filter: Option<PyRef<'_, bpf::BpfFilter>>,
        msl_s: f64,
        linger_s: f64,
        max_flows: usize,
        panic_at_frame: Option<u64>,
        jobs: usize,
        zeek: bool,
        verify_checksums: bool,
        zeek_server_ports: Option<Vec<u16>>,
        tunnel_ports: Option<Vec<(String, u16)>>,
        per_file: bool,
    ) -> PyResult<Run> {
        let format = match format {
            "jsonl" => Format::Jsonl,
            "json" => Format::Json,
            "csv" => Format::Csv,
            "table" => Format::Table,
            "records" => Format::Records,
            "zeek" => Format::Zeek,
            "page" => Format::Page,
            other => return Err(PyValueError::new_err(format!("unknown format {other:?}"))),
        };
        let options = Options {
            panic_at_frame,
            per_file,
            ..options_of(
                filter,
                msl_s,
                linger_s,
                max_flows,
                zeek || format == Format::Zeek,
                verify_checksums,
                zeek_server_ports,
                tunnel_ports,
            )?
        };
        if jobs > parallel::MAX_JOBS {
            return Err(PyValueError::new_err(format!(
                "jobs={jobs}: at most {} shard threads",
                parallel::MAX_JOBS
            )));
        }
        // records for Python (check, ladder, report) come from one thread, and so do the
        // files of --per-file (each is one capture: its flows are not split)
        let jobs = if matches!(format, Format::Records | Format::Page) || per_file {
            1
        } else {
            jobs.max(1)
        };
        let spool = if format == Format::Json {
            Some(JsonSpool::new().map_err(|e| PyRuntimeError::new_err(e.to_string()))?)
        } else {
            None
        };
        // a name that is not UTF-8 (os.fsencode bytes) is shown with \xNN escapes
        let paths = paths
            .iter()
            .map(|p| crate::names::display_name(p))
            .collect();
        Ok(Run {
            engine: Engine::new(paths, options),
            format,
            summary: Summary::new(),
            spool,
            rows: table::TableRows::default(),
            executed: false,
            sink: None,
            jobs,
            report: None,
            traced_only: false,
            page: None,
        })
    }

    /// Page format, before `execute`: trace every connection (at most `limit` segments
    /// each) and embed the traces `crate::page::picks` picks, `budget` segments in all.
    fn report_page(&mut self, limit: u64, budget: u64) -> PyResult<()> {
        if self.format != Format::Page {
            return Err(PyValueError::new_err("report_page needs the page format"));
        }
        if limit > 0 && budget > 0 {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            self.engine.trace(TraceSelect {
                selection: Selection::All,
                limit: Some(limit),
            });
        }
        self.page = Some(crate::page::PageData::new(limit, budget));
        Ok(())
    }

    /// Page format, after `execute`: the page's data besides the rows and the summary
    /// (tcptrace/report/html.py `write_page` reads it). Floats come packed (`array("d")`).
    fn page_data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let Some(page) = self.page.as_ref() else {
            return Err(PyRuntimeError::new_err("not a page run"));
        };
        let packed = |values: &[f64]| {
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
            PyBytes::new(py, &bytes)
        };
        let d = PyDict::new(py);
        d.set_item("rows", page.rows)?;
        d.set_item("strings", &page.strings)?;
        d.set_item("t0", page.t0)?;
        d.set_item("t_end", page.t_end)?;
        d.set_item("rtt_ms", packed(&page.rtt_ms))?;
        let time_wait = PyList::empty(py);
        let t0 = if page.rows == 0 { 0.0 } else { page.t0 };
        for series in page.time_wait.swept(t0) {
            let steps: Vec<f64> = series
                .steps
                .iter()
                .flat_map(|&(t, n)| [t, n as f64])
                .collect();
            time_wait.append((series.key, series.peak, packed(&steps)))?;
        }
        d.set_item("time_wait", time_wait)?;
        let health = PyDict::new(py);
        for (sent, (cause, _)) in page.health.sent.iter().zip(crate::page::health::CAUSES) {
            let since: Vec<f64> = sent.iter().map(|t| t - t0).collect();
            health.set_item(cause, packed(&since))?;
        }
        health.set_item("unplaced", page.health.unplaced)?;
        let (steps, peak) = page.health.stalled(t0);
        let steps: Vec<f64> = steps.iter().flat_map(|&(t, n)| [t, n as f64]).collect();
        health.set_item("stalled", (peak, packed(&steps)))?;
        health.set_item("periods", page.health.shut.len())?;
        health.set_item("span", (page.health.last_packet - t0).max(0.0))?;
        d.set_item("health", health)?;
        let traces = PyList::empty(py);
        let mut rows = Vec::new();
        for picked in page.picked() {
            let t = picked.trace;
            rows.clear();
            crate::page::write_trace_rows(&mut rows, t);
            let text = PyBytes::new(py, &rows);
            traces.append((picked.id, t.total, t.truncated(), picked.why, text))?;
        }
        d.set_item("traces", traces)?;
        Ok(d)
    }

    /// Trace segments (before `execute`; records format): of every connection
    /// (`select` None), of connection `select` (an id), of the connections whose ids
    /// `select` lists, or of those whose client is `select` (host, port); at most `limit` segments each. `traced_only`: leave out the
    /// records of connections not traced.
    #[pyo3(signature = (select=None, limit=None, traced_only=false))]
    fn trace(
        &mut self,
        select: Option<&Bound<'_, PyAny>>,
        limit: Option<usize>,
        traced_only: bool,
    ) -> PyResult<()> {
        let selection = match select {
            None => Selection::All,
            Some(value) => match value.extract::<u64>() {
                Ok(id) => Selection::Id(id),
                Err(_) if value.is_instance_of::<PyList>() => {
                    let mut ids: Vec<u64> = value.extract()?;
                    ids.sort_unstable();
                    ids.dedup();
                    Selection::Ids(ids)
                }
                Err(_) => match value.extract::<(String, u16)>() {
                    Ok((host, port)) => Selection::Endpoint(Role::Client, host, port),
                    Err(_) => {
                        let (side, host, port): (String, String, u16) = value.extract()?;
                        let role = match side.as_str() {
                            "client" => Role::Client,
                            "server" => Role::Server,
                            other => {
                                return Err(PyValueError::new_err(format!(
                                    "a side is \"client\" or \"server\", not {other:?}"
                                )))
                            }
                        };
                        Selection::Endpoint(role, host, port)
                    }
                },
            },
        };
        self.engine.trace(TraceSelect { selection, limit });
        self.traced_only = traced_only;
        Ok(())
    }

    fn progress(&self) -> PyProgress {
        PyProgress {
            inner: self.engine.progress.clone(),
        }
    }

    /// Read the captures, writing jsonl/csv bytes through `write` as connections end
    /// (json and table are held until the end). `out` is where the report goes: a path
    /// (the file is written by Rust, truncated first), "-" for the process's standard output
    /// (Python's own buffer flushed first), or a `write` callable (a stream Python replaced).
    /// Raises tcptrace.errors.CaptureError for an unreadable capture and
    /// tcptrace.errors.EngineFailure for a panic (after writing what was read); an error
    /// writing the output propagates (OSError, or what `write` raised).
    fn execute(&mut self, py: Python<'_>, out: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.executed {
            return Err(PyRuntimeError::new_err("a Run executes once"));
        }
        self.executed = true;
        quiet_panics();
        if self.jobs > 1 {
            return self.execute_parallel(py, out);
        }
        let format = self.format;
        let traced_only = self.traced_only;
        let Run {
            engine,
            summary,
            spool,
            rows,
            sink,
            page,
            ..
        } = self;
        let out = sink.insert(Sink::of(out)?);
        let mut failure: Option<PyErr> = None;
        let mut buf: Vec<u8> = Vec::with_capacity(FLUSH_BYTES + 4096);
        let mut csv = CsvWriter::new();
        let mut batch: Vec<(ConnectionRecord, Option<Box<SegmentTrace>>)> = Vec::new();
        let mut zeek_log = ZeekLogWriter::new();
        let result = py.detach(|| {
            let outcome = engine.run_traced(|record, trace| {
                if traced_only && trace.is_none() {
                    return Ok(());
                }
                // the summary is part of the json document and of the table only
                if matches!(format, Format::Json | Format::Table | Format::Page) {
                    summary.add(&record);
                }
                match format {
                    Format::Jsonl => write_jsonl(&mut buf, &record),
                    Format::Csv => csv.write(&record, &mut buf),
                    Format::Json => {
                        if let Some(spool) = spool.as_mut() {
                            spool.add(&record).map_err(|e| e.to_string())?;
                        }
                    }
                    Format::Table => rows.push(&TableRow::of(&record)),
                    Format::Records => {
                        batch.push((record, trace));
                        if batch.len() >= RECORD_BATCH {
                            out.records(&mut batch, &mut failure)?;
                        }
                    }
                    Format::Zeek => zeek_log.write(&record, &mut buf),
                    Format::Page => {
                        if let Some(page) = page.as_mut() {
                            page.add(&record, trace, &mut buf);
                        }
                    }
                }
                if buf.len() >= FLUSH_BYTES {
                    out.write(&mut buf, &mut failure)?;
                }
                Ok(())
            });
            end_output(outcome, format, &mut zeek_log, &mut buf, |buf| {
                out.records(&mut batch, &mut failure)
                    .and_then(|()| out.write(buf, &mut failure))
            })
        });
        let result = created(out, result, &mut failure);
        finish_execute(py, result, &mut failure)
    }

    /// `--resume STATE` (src/resume.rs), before `execute`: the run reads first the frames a
    /// previous run left in STATE (if it exists), copied to the pcap file `frames` (the
    /// caller removes it), and with `hold` holds its open connections at the end, the
    /// oldest written instead past `max_bytes` of frames (`--resume-max-bytes`). Returns
    /// the number of connections resumed (None: no STATE yet).
    #[pyo3(signature = (state, frames, hold=true, max_bytes=None))]
    fn resume_from(
        &mut self,
        py: Python<'_>,
        state: std::path::PathBuf,
        frames: std::path::PathBuf,
        hold: bool,
        max_bytes: Option<u64>,
    ) -> PyResult<Option<usize>> {
        let resumed = crate::resume::read_state(&state, &frames)
            .map_err(|e| tcptrace_error(py, "TcptraceError", &e))?;
        let count = resumed.as_ref().map(|r| r.ids.len());
        self.engine.resume_from(resumed, hold);
        self.engine.resume_cap.max_bytes = max_bytes;
        Ok(count)
    }

    /// `--resume STATE`, after `execute`: write the connections held at the end (their
    /// frames, read again from the run's inputs) to STATE. Returns (connections, frames,
    /// bytes of frames, connections closed early by `--resume-max-bytes`).
    fn write_state(
        &mut self,
        py: Python<'_>,
        state: std::path::PathBuf,
    ) -> PyResult<(usize, u64, u64, usize)> {
        let held = self.engine.held.take().unwrap_or_default();
        let capped = std::mem::take(&mut self.engine.resume_cap.capped);
        let (paths, options, _) = self.engine.parts();
        let (paths, ports) = (paths.to_vec(), options.tunnels.ports.clone());
        let next_id = self.engine.next_id();
        let carried = py
            .detach(|| crate::resume::write_state(&state, &paths, &ports, &held, &capped, next_id))
            .map_err(|e| tcptrace_error(py, "TcptraceError", &e))?;
        let closed = self.engine.resume_cap.closed;
        Ok((carried.connections, carried.frames, carried.bytes, closed))
    }

    /// The capture-wide summary (src/writers/summary.rs `as_dict`; json, table and page
    /// runs: the other formats carry none, and do not pay for it).
    fn summary(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python(py, &self.summary.as_dict())
    }

    /// The `source` part of the report (files, packets, skipped, warnings, table counts).
    fn source_report(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.report.as_ref().and_then(|r| r.source_report.as_ref()) {
            Some(report) => to_python(py, report),
            None => to_python(py, &self.engine.source_report()),
        }
    }

    /// `--per-file`: (path, first id, next id) of each file read, in order (after `execute`).
    fn file_ids(&self) -> Vec<(String, u64, u64)> {
        self.engine.file_ids.clone()
    }

    /// Warnings of the run, each "kind: message".
    fn warnings(&self) -> Vec<String> {
        let mut warnings = match &self.report {
            Some(report) => report.warnings.clone(),
            None => self.engine.source.warnings.clone(),
        };
        warnings.extend(self.summary.warning()); // the scan sources' cap
        warnings
    }

    /// Table rows sorted by id, those from `start` to `stop` (all by default): (id, client,
    /// server, outcome, rtt_ms, setup_ms, time_wait, rst, probes, requests, http, (packets
    /// client, packets server)). Taken a slice at a time, a large table never becomes one
    /// list of tuples. `tunnel`: each tuple ends with the connection's tunnel path as well
    /// ("vxlan:42"; "" for plain traffic). `health`: then with its health words ("rto:2 zw:1";
    /// "" for a healthy connection).
    #[pyo3(signature = (start=0, stop=None, *, tunnel=false, health=false))]
    fn rows(
        &mut self,
        py: Python<'_>,
        start: usize,
        stop: Option<usize>,
        tunnel: bool,
        health: bool,
    ) -> PyResult<Py<PyList>> {
        if start == 0 {
            self.rows.sort();
        }
        let stop = stop.unwrap_or(usize::MAX).min(self.rows.len());
        let slice = self
            .rows
            .slice(start, stop)
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("the table's rows: {e}")))?;
        let list = PyList::empty(py);
        for mut r in slice {
            let path = std::mem::take(&mut r.tunnel);
            let words = std::mem::take(&mut r.health);
            let row = row_tuple(py, r)?;
            if tunnel || health {
                let mut cells: Vec<_> = row.iter().collect();
                if tunnel {
                    cells.push(path.into_pyobject(py)?.into_any());
                }
                if health {
                    cells.push(words.into_pyobject(py)?.into_any());
                }
                list.append(PyTuple::new(py, cells)?)?;
            } else {
                list.append(row)?;
            }
        }
        Ok(list.unbind())
    }

    /// How many table rows the run holds.
    fn row_count(&self) -> usize {
        self.rows.len()
    }

    /// How many of the table rows came through a tunnel.
    fn tunnelled_rows(&self) -> usize {
        self.rows.tunnelled()
    }

    /// How many of the table rows have something in the health column.
    fn unhealthy_rows(&self) -> usize {
        self.rows.unhealthy()
    }

    /// The json document's connections, in id order, from the spool: everything after
    /// `"connections": ` to the end of the document, to the run's output.
    fn write_connections(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(spool) = self.spool.take() else {
            return Err(PyRuntimeError::new_err("not a json run"));
        };
        let Some(out) = self.sink.as_mut() else {
            return Err(PyRuntimeError::new_err("write_connections before execute"));
        };
        let mut buf: Vec<u8> = Vec::new();
        let mut failure = None;
        let mut chunked = ChunkedSink {
            out,
            buf: &mut buf,
            failure: &mut failure,
        };
        let done = py.detach(|| spool.finish(&mut chunked));
        let rest = match self.sink.as_mut() {
            Some(out) => out.write(&mut buf, &mut failure),
            None => Ok(()),
        };
        if let Some(err) = failure {
            return Err(err);
        }
        done.map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        rest.map_err(PyRuntimeError::new_err)
    }

    /// Bytes Python made (the json document's head, the table) to the run's output, in order.
    fn write(&mut self, data: &[u8]) -> PyResult<()> {
        let Some(out) = self.sink.as_mut() else {
            return Err(PyRuntimeError::new_err("write before execute"));
        };
        let mut buf = data.to_vec();
        let mut failure = None;
        out.write(&mut buf, &mut failure)
            .map_err(|message| failure.unwrap_or_else(|| PyRuntimeError::new_err(message)))
    }
}

impl Run {
    /// `execute` on shard threads (`--jobs`): the records come renumbered, in the single
    /// run's order, already encoded by the shards (json and table: with the record).
    fn execute_parallel(&mut self, py: Python<'_>, out: &Bound<'_, PyAny>) -> PyResult<()> {
        let format = self.format;
        let jobs = self.jobs;
        let encoding = match format {
            Format::Jsonl => Encoding::Jsonl,
            Format::Json => Encoding::Json,
            Format::Csv => Encoding::Csv,
            Format::Table => Encoding::Table,
            Format::Zeek => Encoding::Zeek,
            Format::Records | Format::Page => {
                return Err(PyValueError::new_err(
                    "the records format runs on one thread",
                ))
            }
        };
        let Run {
            engine,
            summary,
            spool,
            rows,
            sink,
            report,
            ..
        } = self;
        let out = sink.insert(Sink::of(out)?);
        let mut failure: Option<PyErr> = None;
        let mut buf: Vec<u8> = Vec::with_capacity(FLUSH_BYTES + 4096);
        let mut header = format == Format::Csv;
        let mut zeek_log = ZeekLogWriter::new();
        let mut one: Vec<u8> = Vec::new();
        let (paths, options, progress) = engine.parts();
        let zeek = options.zeek;
        let (result, made) = py.detach(|| {
            let (outcome, made) =
                parallel::run(paths, options, jobs, encoding, progress, |record| {
                    if let Some(r) = record.record {
                        summary.add(r);
                    }
                    match format {
                        Format::Records | Format::Page => {}
                        Format::Zeek => {
                            zeek_log.begin(&mut buf);
                            record.write_to(&mut buf);
                        }
                        Format::Jsonl => record.write_to(&mut buf),
                        Format::Csv => {
                            if std::mem::take(&mut header) {
                                buf.extend_from_slice(&csv_header(zeek));
                            }
                            record.write_to(&mut buf);
                        }
                        Format::Json => {
                            if let Some(spool) = spool.as_mut() {
                                one.clear();
                                record.write_to(&mut one);
                                spool
                                    .add_indented(record.id, &one)
                                    .map_err(|e| e.to_string())?;
                            }
                        }
                        Format::Table => {
                            if let Some(r) = record.record {
                                let mut row = TableRow::of(r);
                                row.id = record.id;
                                rows.push(&row);
                            }
                        }
                    }
                    if buf.len() >= FLUSH_BYTES {
                        out.write(&mut buf, &mut failure)?;
                    }
                    Ok(())
                });
            let outcome = end_output(outcome, format, &mut zeek_log, &mut buf, |buf| {
                out.write(buf, &mut failure)
            });
            (outcome, made)
        });
        *report = Some(made);
        let result = created(out, result, &mut failure);
        finish_execute(py, result, &mut failure)
    }
}

/// The end of `execute`'s output: the Zeek log's footer after a whole run, then what is
/// buffered, written by `flush` whatever the outcome (what was read before a failure stays
/// written); the run's outcome, or the write's error after a run that went well.
fn end_output(
    outcome: Result<(), RunError>,
    format: Format,
    zeek_log: &mut ZeekLogWriter,
    buf: &mut Vec<u8>,
    flush: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
) -> Result<(), RunError> {
    if outcome.is_ok() && format == Format::Zeek {
        zeek_log.finish(buf);
    }
    let flushed = flush(buf);
    outcome.and(flushed.map_err(RunError::Emit))
}

/// A successful run's output file exists even when no byte was written to it.
fn created(
    out: &mut Sink,
    result: Result<(), RunError>,
    failure: &mut Option<PyErr>,
) -> Result<(), RunError> {
    result?;
    out.open().map_err(|err| {
        let message = err.to_string();
        *failure = Some(err);
        RunError::Emit(message)
    })
}

/// A run's outcome as Python sees it: the write error as raised, CaptureError for an
/// unreadable capture, EngineFailure for a panic (after writing what was read).
fn finish_execute(
    py: Python<'_>,
    result: Result<(), RunError>,
    failure: &mut Option<PyErr>,
) -> PyResult<()> {
    match result {
        Ok(()) => Ok(()),
        Err(RunError::Emit(message)) => Err(failure
            .take()
            .unwrap_or_else(|| PyRuntimeError::new_err(message))),
        Err(RunError::Capture(err)) => Err(tcptrace_error(py, "CaptureError", &err.0)),
        Err(RunError::Panic { at, message }) => {
            if let Some(err) = failure.take() {
                return Err(err);
            }
            Err(tcptrace_error(
                py,
                "EngineFailure",
                &format!("internal error in the native engine at {at}: {message}"),
            ))
        }
    }
}

/// A table row as the Python table code takes it (tcptrace.report.text.table_cells).
fn row_tuple(py: Python<'_>, r: TableRow) -> PyResult<Bound<'_, PyTuple>> {
    PyTuple::new(
        py,
        [
            r.id.into_pyobject(py)?.into_any(),
            r.start.into_pyobject(py)?.into_any(),
            r.duration_ms.into_pyobject(py)?.into_any(),
            (r.client.0, r.client.1).into_pyobject(py)?.into_any(),
            (r.server.0, r.server.1).into_pyobject(py)?.into_any(),
            r.outcome.into_pyobject(py)?.into_any(),
            r.rtt_ms.into_pyobject(py)?.into_any(),
            r.setup_ms.into_pyobject(py)?.into_any(),
            r.time_wait.into_pyobject(py)?.into_any(),
            r.rst.into_pyobject(py)?.into_any(),
            r.probes.into_pyobject(py)?.into_any(),
            r.requests.into_pyobject(py)?.into_any(),
            pyo3::types::PyBool::new(py, r.http).to_owned().into_any(),
            r.packets.into_pyobject(py)?.into_any(),
        ],
    )
}

/// Where a report's bytes go. Rust writes files and the standard output itself (no bytes
/// object per megabyte, no call into Python); a stream Python replaced (a test's capture)
/// gets them through its `write`.
enum Sink {
    /// A file, opened (created, truncated) at its first byte: by then the captures were
    /// opened and their first frames read, so a capture that cannot be read destroys no
    /// earlier output (tcptrace/outputs.py).
    File {
        path: std::path::PathBuf,
        file: Option<std::fs::File>,
    },
    Stdout,
    Python(Py<PyAny>),
}

impl Sink {
    fn of(out: &Bound<'_, PyAny>) -> PyResult<Sink> {
        if let Ok(path) = out.extract::<std::path::PathBuf>() {
            if path.as_os_str() == "-" {
                return Ok(Sink::Stdout);
            }
            return Ok(Sink::File { path, file: None });
        }
        Ok(Sink::Python(out.clone().unbind()))
    }

    /// Create (truncate) the output file now if no byte opened it yet: a run that ends
    /// without output still leaves its (empty) report.
    fn open(&mut self) -> Result<(), PyErr> {
        if let Sink::File { path, file } = self {
            if file.is_none() {
                let opened = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&*path)
                    .map_err(|e| Python::attach(|py| os_error(py, e, path)))?;
                *file = Some(opened);
            }
        }
        Ok(())
    }

    /// Hand the records of `batch` to Python's callable as a list of dicts, and empty it;
    /// an error is kept in `failure` (as Python raised it).
    fn records(
        &mut self,
        batch: &mut Vec<(ConnectionRecord, Option<Box<SegmentTrace>>)>,
        failure: &mut Option<PyErr>,
    ) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let Sink::Python(each) = self else {
            batch.clear();
            return Err("the records format needs a callable".into());
        };
        let result = Python::attach(|py| {
            let list = PyList::empty(py);
            for (record, trace) in batch.drain(..) {
                list.append(records::record_dict(py, &record, trace.as_deref())?)?;
            }
            each.call1(py, (list,)).map(|_| ())
        });
        batch.clear();
        result.map_err(|err| {
            let message = err.to_string();
            *failure = Some(err);
            message
        })
    }

    /// Write and empty `buf`; an error is kept in `failure` (as Python raised it).
    fn write(&mut self, buf: &mut Vec<u8>, failure: &mut Option<PyErr>) -> Result<(), String> {
        if buf.is_empty() {
            return Ok(());
        }
        let result = match self.open() {
            Err(err) => Err(err),
            Ok(()) => self.write_all(buf),
        };
        buf.clear();
        result.map_err(|err| {
            let message = err.to_string();
            *failure = Some(err);
            message
        })
    }

    fn write_all(&mut self, buf: &[u8]) -> PyResult<()> {
        use std::io::Write;
        match self {
            Sink::File {
                path,
                file: Some(file),
            } => file
                .write_all(buf)
                .map_err(|e| Python::attach(|py| os_error(py, e, path))),
            Sink::File { file: None, .. } => Ok(()),
            Sink::Stdout => {
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(buf)
                    .and_then(|()| stdout.flush())
                    .map_err(PyErr::from)
            }
            Sink::Python(write) => {
                Python::attach(|py| write.call1(py, (PyBytes::new(py, buf),)).map(|_| ()))
            }
        }
    }
}

/// An OSError as Python's open() raises it (errno, strerror, filename), so the command line
/// reports "PATH: strerror" as for any file it cannot write.
fn os_error(py: Python<'_>, err: std::io::Error, path: &std::path::Path) -> PyErr {
    let errno = err.raw_os_error().unwrap_or(0);
    let strerror = py
        .import("os")
        .and_then(|os| os.getattr("strerror")?.call1((errno,)))
        .and_then(|s| s.extract::<String>())
        .unwrap_or_else(|_| err.to_string());
    PyErr::new::<pyo3::exceptions::PyOSError, _>((errno, strerror, path.to_path_buf()))
}

/// An io::Write that hands its bytes to Python's `write` about once per FLUSH_BYTES.
struct ChunkedSink<'a> {
    out: &'a mut Sink,
    buf: &'a mut Vec<u8>,
    failure: &'a mut Option<PyErr>,
}

impl std::io::Write for ChunkedSink<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= FLUSH_BYTES {
            self.out
                .write(self.buf, self.failure)
                .map_err(std::io::Error::other)?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An exception of tcptrace.errors (the CLI turns them into one line and exit status 2).
fn tcptrace_error(py: Python<'_>, class: &str, message: &str) -> PyErr {
    let made = py
        .import("tcptrace.errors")
        .and_then(|module| module.getattr(class))
        .and_then(|cls| cls.call1((message,)));
    match made {
        Ok(instance) => PyErr::from_value(instance),
        Err(err) => err,
    }
}

/// Panics are caught and reported in one line: the default hook's message and backtrace
/// hint on stderr would be noise around that line.
fn quiet_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| panic::set_hook(Box::new(|_| {})));
}

fn to_python(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    Ok(match value {
        Value::Null => py.None(),
        Value::Bool(b) => pyo3::types::PyBool::new(py, *b)
            .to_owned()
            .into_any()
            .unbind(),
        Value::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Value::Float(f) => f.into_pyobject(py)?.into_any().unbind(),
        Value::Str(s) => s.into_pyobject(py)?.into_any().unbind(),
        Value::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item)?)?;
            }
            list.into_any().unbind()
        }
        Value::Map(entries) => {
            let dict = PyDict::new(py);
            for (key, item) in entries {
                dict.set_item(key, to_python(py, item)?)?;
            }
            dict.into_any().unbind()
        }
    })
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    allocator::configure();
    module.add_class::<Run>()?;
    module.add_class::<bpf::BpfFilter>()?;
    module.add_class::<PyProgress>()?;
    module.add_class::<session::LiveSession>()?;
    scaleout::register(module)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add("MAX_JOBS", parallel::MAX_JOBS)?;
    module.add("VOCABULARY", vocabulary(module.py())?)?;
    Ok(())
}

/// The names the records use for each enumeration, in declaration order (the output
/// schema lists the same; tests/test_schema.py holds them together).
fn vocabulary(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    use crate::model::{Outcome, ProbeAnswer, ProbeKind, RoleRule, RstKind};
    use crate::states::TcpState;

    let names = PyDict::new(py);
    names.set_item("states", TcpState::ALL.map(TcpState::name).to_vec())?;
    names.set_item("outcomes", Outcome::ALL.map(Outcome::name).to_vec())?;
    names.set_item("role_rules", RoleRule::ALL.map(RoleRule::name).to_vec())?;
    names.set_item("rst_kinds", RstKind::ALL.map(RstKind::name).to_vec())?;
    names.set_item("probe_kinds", ProbeKind::ALL.map(ProbeKind::name).to_vec())?;
    names.set_item(
        "probe_answers",
        ProbeAnswer::ALL.map(ProbeAnswer::name).to_vec(),
    )?;
    Ok(names)
}

/// A run's options from the binding's arguments (`Run`, the distributed run's tasks).
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

/// The decoder's tunnels with the user's extra UDP ports (`--tunnel-port KIND=PORT`).
pub(crate) fn tunnels_of(extra: Vec<(String, u16)>) -> PyResult<crate::decode::Tunnels> {
    let mut tunnels = crate::decode::Tunnels::default();
    for (kind, port) in extra {
        let tunnel = crate::decode::UdpTunnel::from_name(&kind)
            .ok_or_else(|| PyValueError::new_err(format!("unknown UDP tunnel {kind:?}")))?;
        tunnels.ports.add(port, tunnel);
    }
    Ok(tunnels)
}
