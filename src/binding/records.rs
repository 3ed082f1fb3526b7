//! Records (and their segment traces) as Python dicts, the shape of docs/output.md: what
//! `check`, `ladder` and `report` read. Built here rather than parsed from the jsonl bytes:
//! `json.loads` of 50k records took twice as long as the analysis that made them.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::analyzers::trace::SegmentTrace;
use crate::model::{ConnectionRecord, Endpoint, PerSide};

/// The record as `to_dict(record)` made it, the trace (if any) under `trace`.
pub fn record_dict<'py>(
    py: Python<'py>,
    r: &ConnectionRecord,
    trace: Option<&SegmentTrace>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "id"), r.id)?;
    if let Some(file) = &r.file {
        d.set_item(intern!(py, "file"), &**file)?;
    }
    d.set_item(intern!(py, "client"), endpoint(py, &r.client)?)?;
    d.set_item(intern!(py, "server"), endpoint(py, &r.server)?)?;
    d.set_item(intern!(py, "role_rule"), r.role_rule.name())?;
    d.set_item(intern!(py, "previous_id"), r.previous_id)?;
    d.set_item(intern!(py, "first_ts"), r.first_ts)?;
    d.set_item(intern!(py, "last_ts"), r.last_ts)?;
    d.set_item(intern!(py, "duration_ms"), r.duration_ms)?;
    d.set_item(intern!(py, "outcome"), r.outcome.name())?;

    let hs = &r.handshake;
    let h = PyDict::new(py);
    h.set_item(intern!(py, "complete"), hs.complete)?;
    h.set_item(intern!(py, "syn_to_synack_ms"), hs.syn_to_synack_ms)?;
    h.set_item(intern!(py, "synack_to_ack_ms"), hs.synack_to_ack_ms)?;
    h.set_item(intern!(py, "rtt_ms"), hs.rtt_ms)?;
    h.set_item(intern!(py, "setup_ms"), hs.setup_ms)?;
    h.set_item(intern!(py, "syn_retransmits"), hs.syn_retransmits)?;
    h.set_item(intern!(py, "synack_retransmits"), hs.synack_retransmits)?;
    h.set_item(intern!(py, "matched_by"), hs.matched_by)?;
    h.set_item(intern!(py, "ambiguity"), hs.ambiguity)?;
    h.set_item(intern!(py, "simultaneous_open"), hs.simultaneous_open)?;
    d.set_item(intern!(py, "handshake"), h)?;
    let options = PyDict::new(py);
    for (side, offered) in [("client", &r.options.client), ("server", &r.options.server)] {
        let value = match offered {
            None => None,
            Some(o) => {
                let each = PyDict::new(py);
                each.set_item(intern!(py, "mss"), o.mss)?;
                each.set_item(intern!(py, "wscale"), o.wscale)?;
                each.set_item(intern!(py, "sack_permitted"), o.sack_permitted)?;
                each.set_item(intern!(py, "timestamps"), o.timestamps)?;
                each.set_item(intern!(py, "tfo"), o.tfo.map(|t| t.name()))?;
                each.set_item(intern!(py, "data_bytes"), o.data_bytes)?;
                each.set_item(intern!(py, "ecn"), o.ecn)?;
                each.set_item(intern!(py, "rewritten"), o.rewritten_names())?;
                Some(each)
            }
        };
        options.set_item(side, value)?;
    }
    d.set_item(intern!(py, "options"), options)?;

    let c = &r.close;
    let close = PyDict::new(py);
    close.set_item(intern!(py, "initiator"), c.initiator.map(|s| s.name()))?;
    close.set_item(intern!(py, "time_wait"), c.time_wait.map(|s| s.name()))?;
    close.set_item(intern!(py, "time_wait_ts"), c.time_wait_ts)?;
    close.set_item(intern!(py, "time_wait_until"), c.time_wait_until)?;
    close.set_item(intern!(py, "fin_ts"), per_side(py, &c.fin_ts)?)?;
    d.set_item(intern!(py, "close"), close)?;

    match &r.half_close {
        Some(hc) => {
            let half = PyDict::new(py);
            half.set_item(intern!(py, "side"), hc.side.name())?;
            half.set_item(intern!(py, "bytes_after_fin"), hc.bytes_after_fin)?;
            half.set_item(intern!(py, "duration_ms"), hc.duration_ms)?;
            d.set_item(intern!(py, "half_close"), half)?;
        }
        None => d.set_item(intern!(py, "half_close"), py.None())?,
    }
    match &r.rst {
        Some(rst) => {
            let x = PyDict::new(py);
            x.set_item(intern!(py, "sender"), rst.sender.name())?;
            x.set_item(intern!(py, "state"), rst.state.name())?;
            x.set_item(intern!(py, "receiver_state"), rst.receiver_state.name())?;
            x.set_item(intern!(py, "kind"), rst.kind.name())?;
            x.set_item(intern!(py, "ts"), rst.ts)?;
            x.set_item(intern!(py, "count"), rst.count)?;
            d.set_item(intern!(py, "rst"), x)?;
        }
        None => d.set_item(intern!(py, "rst"), py.None())?,
    }
    match &r.probe {
        Some(p) => {
            let x = PyDict::new(py);
            x.set_item(intern!(py, "kind"), p.kind.name())?;
            x.set_item(intern!(py, "answer"), p.answer.name())?;
            x.set_item(intern!(py, "sender"), p.sender.name())?;
            d.set_item(intern!(py, "probe"), x)?;
        }
        None => d.set_item(intern!(py, "probe"), py.None())?,
    }

    let ka = &r.keepalive;
    let keepalive = PyDict::new(py);
    keepalive.set_item(intern!(py, "probes"), per_side(py, &ka.probes)?)?;
    keepalive.set_item(intern!(py, "acks"), per_side(py, &ka.acks)?)?;
    keepalive.set_item(intern!(py, "intervals_ms"), per_side(py, &ka.intervals_ms)?)?;
    d.set_item(intern!(py, "keepalive"), keepalive)?;

    let ru = &r.reuse;
    let reuse = PyDict::new(py);
    reuse.set_item(intern!(py, "protocol"), ru.protocol)?;
    reuse.set_item(intern!(py, "requests"), ru.requests)?;
    reuse.set_item(intern!(py, "responses"), ru.responses)?;
    reuse.set_item(intern!(py, "idle_gaps_ms"), &ru.idle_gaps_ms)?;
    d.set_item(intern!(py, "reuse"), reuse)?;

    let changes = |side: &[crate::model::StateChange]| -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for change in side {
            let item = PyDict::new(py);
            item.set_item(intern!(py, "ts"), change.ts)?;
            item.set_item(intern!(py, "state"), change.state.name())?;
            list.append(item)?;
        }
        Ok(list)
    };
    let states = PyDict::new(py);
    states.set_item(intern!(py, "client"), changes(&r.states.client)?)?;
    states.set_item(intern!(py, "server"), changes(&r.states.server)?)?;
    d.set_item(intern!(py, "states"), states)?;
    let final_state = PerSide::new(r.final_state.client.name(), r.final_state.server.name());
    d.set_item(intern!(py, "final_state"), per_side(py, &final_state)?)?;
    d.set_item(intern!(py, "packets"), per_side(py, &r.packets)?)?;
    d.set_item(intern!(py, "bytes"), per_side(py, &r.bytes)?)?;
    d.set_item(intern!(py, "unique_bytes"), per_side(py, &r.unique_bytes)?)?;
    d.set_item(
        intern!(py, "retransmitted_bytes"),
        per_side(py, &r.retransmitted_bytes)?,
    )?;
    d.set_item(intern!(py, "gap_bytes"), per_side(py, &r.gap_bytes)?)?;
    d.set_item(intern!(py, "anomalies"), per_side(py, &r.anomalies)?)?;
    d.set_item(intern!(py, "duplicates"), per_side(py, &r.duplicates)?)?;
    d.set_item(intern!(py, "short_frames"), per_side(py, &r.short_frames)?)?;
    health_dicts(py, &d, r)?;
    rtt_dicts(py, &d, r)?;
    let tunnels = PyList::empty(py);
    for layer in r.encapsulation.iter().flat_map(|path| path.iter()) {
        tunnels.append(tunnel_dict(py, layer)?)?;
    }
    d.set_item(intern!(py, "encapsulation"), tunnels)?;
    if let Some(trace) = trace {
        d.set_item(intern!(py, "trace"), trace_dict(py, trace)?)?;
    }
    Ok(d)
}

/// One tunnel layer as `writers::json::encapsulation` writes it.
fn tunnel_dict<'py>(
    py: Python<'py>,
    layer: &crate::decode::TunnelLayer,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "type"), layer.kind.name())?;
    if let (Some(name), Some(id)) = (layer.kind.id_name(), layer.id) {
        d.set_item(name, id)?;
    }
    let outer = PyDict::new(py);
    outer.set_item(
        intern!(py, "src"),
        crate::connection::address_text(layer.src),
    )?;
    outer.set_item(
        intern!(py, "dst"),
        crate::connection::address_text(layer.dst),
    )?;
    if layer.has_ports() {
        outer.set_item(intern!(py, "sport"), layer.sport)?;
        outer.set_item(intern!(py, "dport"), layer.dport)?;
    }
    d.set_item(intern!(py, "outer"), outer)?;
    Ok(d)
}

fn endpoint<'py>(py: Python<'py>, e: &Endpoint) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "ip"), &e.ip)?;
    d.set_item(intern!(py, "port"), e.port)?;
    Ok(d)
}

fn per_side<'py, T>(py: Python<'py>, p: &PerSide<T>) -> PyResult<Bound<'py, PyDict>>
where
    T: IntoPyObject<'py> + Clone,
{
    let d = PyDict::new(py);
    d.set_item(intern!(py, "client"), p.client.clone())?;
    d.set_item(intern!(py, "server"), p.server.clone())?;
    Ok(d)
}

/// `retransmissions` and `zero_window` (writers/health.rs writes the same keys).
fn health_dicts<'py>(
    py: Python<'py>,
    d: &Bound<'py, PyDict>,
    r: &ConnectionRecord,
) -> PyResult<()> {
    let retransmissions = PyDict::new(py);
    let zero_window = PyDict::new(py);
    for (side, tallies, zero) in [
        ("client", &r.retransmissions.client, &r.zero_window.client),
        ("server", &r.retransmissions.server, &r.zero_window.server),
    ] {
        let each = PyDict::new(py);
        for (key, tally) in crate::writers::health::tallies(tallies) {
            let t = PyDict::new(py);
            t.set_item(intern!(py, "segments"), tally.segments)?;
            t.set_item(intern!(py, "bytes"), tally.bytes)?;
            each.set_item(key, t)?;
        }
        retransmissions.set_item(side, each)?;
        let z = PyDict::new(py);
        z.set_item(intern!(py, "periods"), zero.periods)?;
        z.set_item(intern!(py, "stall_ms"), zero.stall_ms)?;
        z.set_item(intern!(py, "longest_ms"), zero.longest_ms)?;
        z.set_item(intern!(py, "probes"), zero.probes)?;
        zero_window.set_item(side, z)?;
    }
    d.set_item(intern!(py, "retransmissions"), retransmissions)?;
    d.set_item(intern!(py, "zero_window"), zero_window)?;
    Ok(())
}

/// `rtt` and `throughput` (writers/rtt.rs writes the same keys).
fn rtt_dicts<'py>(py: Python<'py>, d: &Bound<'py, PyDict>, r: &ConnectionRecord) -> PyResult<()> {
    let rtt = PyDict::new(py);
    let throughput = PyDict::new(py);
    for (side, times, rate) in [
        ("client", &r.rtt.client, &r.throughput.client),
        ("server", &r.rtt.server, &r.throughput.server),
    ] {
        let t = PyDict::new(py);
        t.set_item(intern!(py, "samples"), times.samples)?;
        let ms = |us: Option<u32>| us.map(|us| crate::model::us_to_ms(us.into()));
        t.set_item(intern!(py, "p50_ms"), ms(times.p50_us))?;
        t.set_item(intern!(py, "p90_ms"), ms(times.p90_us))?;
        t.set_item(intern!(py, "max_ms"), ms(times.max_us))?;
        rtt.set_item(side, t)?;
        let each = PyDict::new(py);
        let duration_ms = crate::model::us_to_ms(rate.duration_us);
        each.set_item(intern!(py, "duration_ms"), duration_ms)?;
        each.set_item(intern!(py, "bits_per_s"), rate.bits_per_s)?;
        throughput.set_item(side, each)?;
    }
    d.set_item(intern!(py, "rtt"), rtt)?;
    d.set_item(intern!(py, "throughput"), throughput)?;
    Ok(())
}

/// The trace as tcptrace/report/trace.py describes it.
fn trace_dict<'py>(py: Python<'py>, t: &SegmentTrace) -> PyResult<Bound<'py, PyDict>> {
    let segments = PyList::empty(py);
    for (s, entered_states) in t.with_entered() {
        let d = PyDict::new(py);
        d.set_item(intern!(py, "ts_ns"), s.ts_ns)?;
        d.set_item(intern!(py, "role"), s.role.name())?;
        d.set_item(intern!(py, "flags"), s.flags)?;
        d.set_item(intern!(py, "seq"), s.seq)?;
        d.set_item(intern!(py, "ack"), s.ack)?;
        d.set_item(intern!(py, "length"), s.length)?;
        d.set_item(intern!(py, "window"), s.window)?;
        d.set_item(
            intern!(py, "states"),
            [s.states[0].name(), s.states[1].name()],
        )?;
        let entered = PyList::empty(py);
        for side in entered_states {
            entered.append(PyList::new(py, side.iter().map(|state| state.name()))?)?;
        }
        d.set_item(intern!(py, "entered"), entered)?;
        d.set_item(
            intern!(py, "marks"),
            PyList::new(py, s.mark.map(|m| m.name()))?,
        )?;
        d.set_item(
            intern!(py, "verdicts"),
            PyList::new(py, crate::analyzers::health::verdict::names(s.verdict))?,
        )?;
        segments.append(d)?;
    }
    let d = PyDict::new(py);
    d.set_item(intern!(py, "segments"), segments)?;
    d.set_item(intern!(py, "total"), t.total)?;
    d.set_item(intern!(py, "first_ns"), t.first_ns)?;
    d.set_item(intern!(py, "truncated"), t.truncated())?;
    Ok(d)
}
