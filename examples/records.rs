//! Reads a classic pcap, runs its TCP segments through the flow table and prints every
//! connection record as one JSON line (field names as the Python record's), for comparison
//! with the Python engine. The pcap reader and the decoder here are minimal and private:
//! the real ones live in `sources` and `decode`.
//!
//! `cargo run --example records -- FILE.pcap`

use std::fmt::Write as _;

use tcptrace_native::decode::Segment;
use tcptrace_native::flows::{FlowOptions, FlowTable, FEED_SLICE};
use tcptrace_native::model::{ConnectionRecord, PerSide};

const MSL_S: f64 = 30.0;

fn u16_at(d: &[u8], at: usize, le: bool) -> Option<u16> {
    let b = d.get(at..at + 2)?;
    Some(if le {
        u16::from_le_bytes([b[0], b[1]])
    } else {
        u16::from_be_bytes([b[0], b[1]])
    })
}

fn u32_at(d: &[u8], at: usize, le: bool) -> Option<u32> {
    let b: [u8; 4] = d.get(at..at + 4)?.try_into().ok()?;
    Some(if le {
        u32::from_le_bytes(b)
    } else {
        u32::from_be_bytes(b)
    })
}

/// One frame: timestamp, link type, where its bytes are in the file, its wire length.
struct Frame {
    ts_ns: i64,
    start: usize,
    caplen: usize,
}

fn read_pcap(file: &[u8]) -> Option<(u32, Vec<Frame>)> {
    let magic = u32_at(file, 0, true)?;
    let (le, nano) = match magic {
        0xa1b2_c3d4 => (true, false),
        0xa1b2_3c4d => (true, true),
        0xd4c3_b2a1 => (false, false),
        0x4d3c_b2a1 => (false, true),
        _ => return None,
    };
    let linktype = u32_at(file, 20, le)? & 0x0FFF_FFFF;
    let mut frames = Vec::new();
    let mut pos = 24;
    while let (Some(sec), Some(frac), Some(caplen)) = (
        u32_at(file, pos, le),
        u32_at(file, pos + 4, le),
        u32_at(file, pos + 8, le),
    ) {
        let caplen = caplen as usize;
        if pos + 16 + caplen > file.len() {
            break;
        }
        let frac_ns = if nano {
            i64::from(frac)
        } else {
            i64::from(frac) * 1000
        };
        frames.push(Frame {
            ts_ns: i64::from(sec) * 1_000_000_000 + frac_ns,
            start: pos + 16,
            caplen,
        });
        pos += 16 + caplen;
    }
    Some((linktype, frames))
}

/// Where the IP header starts and the ethertype, per link type.
fn link(d: &[u8], linktype: u32, start: usize, end: usize) -> Option<(usize, u16)> {
    match linktype {
        1 => {
            if end < start + 14 {
                return None;
            }
            let mut et = u16_at(d, start + 12, false)?;
            let mut pos = start + 14;
            for _ in 0..3 {
                if matches!(et, 0x8100 | 0x88a8 | 0x9100) && pos + 4 <= end {
                    et = u16_at(d, pos + 2, false)?;
                    pos += 4;
                } else {
                    break;
                }
            }
            Some((pos, et))
        }
        113 if end >= start + 16 => Some((start + 16, u16_at(d, start + 14, false)?)),
        276 if end >= start + 20 => Some((start + 20, u16_at(d, start, false)?)),
        0 | 108 if end >= start + 4 => {
            let le = u32_at(d, start, true)?;
            let be = u32_at(d, start, false)?;
            let af = if linktype == 108 { be } else { le.min(be) };
            let et = match af {
                2 => 0x0800,
                10 | 24 | 28 | 30 => 0x86dd,
                _ => 0,
            };
            Some((start + 4, et))
        }
        12 | 14 | 101 | 228 | 229 if end > start => {
            let et = match d[start] >> 4 {
                4 => 0x0800,
                6 => 0x86dd,
                _ => 0,
            };
            Some((start, et))
        }
        _ => None,
    }
}

fn decode(d: &[u8], linktype: u32, frame: &Frame, index: u32) -> Option<Segment> {
    let end = frame.start + frame.caplen;
    let (p, et) = link(d, linktype, frame.start, end)?;
    let (l4, l4len, ip_len, src, dst) = match et {
        0x0800 => {
            if p + 20 > end {
                return None;
            }
            let ihl = usize::from(d[p] & 0x0f) * 4;
            let total = usize::from(u16_at(d, p + 2, false)?);
            let frag = u16_at(d, p + 6, false)?;
            if d[p] >> 4 != 4 || ihl < 20 || (total < ihl && total != 0) {
                return None;
            }
            if frag & 0x3fff != 0 || d[p + 9] != 6 {
                return None;
            }
            let total = if total == 0 { end - p } else { total };
            let v4 = |at| u32_at(d, at, false).map(|a| 0xffff_0000_0000u128 | u128::from(a));
            (
                p + ihl,
                total as i64 - ihl as i64,
                total,
                v4(p + 12)?,
                v4(p + 16)?,
            )
        }
        0x86dd => {
            if p + 40 > end || d[p] >> 4 != 6 {
                return None;
            }
            let mut nh = d[p + 6];
            let mut plen = usize::from(u16_at(d, p + 4, false)?);
            if plen == 0 {
                plen = end - p - 40;
            }
            let mut pos = p + 40;
            for _ in 0..8 {
                if !matches!(nh, 0 | 43 | 60 | 51 | 44) || pos + 8 > end {
                    break;
                }
                if nh == 44 {
                    let f = u16_at(d, pos + 2, false)?;
                    if f & 0xfff8 != 0 || f & 1 != 0 {
                        return None;
                    }
                }
                let l = usize::from(d[pos + 1]);
                let ext = match nh {
                    44 => 8,
                    51 => (l + 2) * 4,
                    _ => (l + 1) * 8,
                };
                nh = d[pos];
                pos += ext;
            }
            if nh != 6 {
                return None;
            }
            let a = |at: usize| {
                d.get(at..at + 16)
                    .map(|b| u128::from_be_bytes(b.try_into().unwrap_or([0; 16])))
            };
            (
                pos,
                (p + 40 + plen) as i64 - pos as i64,
                40 + plen,
                a(p + 8)?,
                a(p + 24)?,
            )
        }
        _ => return None,
    };
    if l4 + 20 > end {
        return None;
    }
    let hlen = usize::from(d[l4 + 12] >> 4) * 4;
    let payload_len = l4len - hlen as i64;
    if hlen < 20 || payload_len < 0 {
        return None;
    }
    let payload_off = l4 + hlen;
    let payload_len = u32::try_from(payload_len).ok()?;
    let opt_cap = payload_off.min(end).saturating_sub(l4 + 20);
    let payload_cap = (payload_off + payload_len as usize)
        .min(end)
        .saturating_sub(payload_off);
    Some(Segment {
        ts_ns: frame.ts_ns,
        src,
        dst,
        sport: u16_at(d, l4, false)?,
        dport: u16_at(d, l4 + 2, false)?,
        seq: u32_at(d, l4 + 4, false)?,
        ack: u32_at(d, l4 + 8, false)?,
        flags: u16::from(d[l4 + 13]) | (u16::from(d[l4 + 12] & 1) << 8),
        window: u16_at(d, l4 + 14, false)?,
        tcp_off: l4,
        tcp_hlen: hlen as u32,
        opt_cap: opt_cap as u32,
        payload_off,
        payload_len,
        payload_cap: payload_cap as u32,
        frame_index: index,
        ip_len: ip_len as u32,
    })
}

fn f(x: f64) -> String {
    format!("{x:?}")
}

fn opt<T>(x: Option<T>, show: impl Fn(T) -> String) -> String {
    x.map_or_else(|| "null".to_string(), show)
}

fn s(x: &str) -> String {
    format!("\"{x}\"")
}

fn per<T>(p: &PerSide<T>, show: impl Fn(&T) -> String) -> String {
    format!(
        "{{\"client\": {}, \"server\": {}}}",
        show(&p.client),
        show(&p.server)
    )
}

fn list<T>(items: &[T], show: impl Fn(&T) -> String) -> String {
    format!(
        "[{}]",
        items.iter().map(show).collect::<Vec<_>>().join(", ")
    )
}

fn json(r: &ConnectionRecord) -> String {
    let mut o = String::new();
    let h = &r.handshake;
    let c = &r.close;
    let _ = write!(
        o,
        "{{\"id\": {}, \"client\": {{\"ip\": {}, \"port\": {}}}, \"server\": {{\"ip\": {}, \"port\": {}}}, \
         \"role_rule\": {}, \"previous_id\": {}, \"first_ts\": {}, \"last_ts\": {}, \"duration_ms\": {}, \
         \"outcome\": {}, ",
        r.id,
        s(&r.client.ip),
        r.client.port,
        s(&r.server.ip),
        r.server.port,
        s(r.role_rule.name()),
        opt(r.previous_id, |v| v.to_string()),
        f(r.first_ts),
        f(r.last_ts),
        f(r.duration_ms),
        s(r.outcome.name()),
    );
    let _ = write!(
        o,
        "\"handshake\": {{\"complete\": {}, \"syn_to_synack_ms\": {}, \"synack_to_ack_ms\": {}, \"rtt_ms\": {}, \
         \"setup_ms\": {}, \"syn_retransmits\": {}, \"synack_retransmits\": {}, \"matched_by\": {}, \
         \"ambiguity\": {}, \"simultaneous_open\": {}}}, ",
        h.complete,
        opt(h.syn_to_synack_ms, f),
        opt(h.synack_to_ack_ms, f),
        opt(h.rtt_ms, f),
        opt(h.setup_ms, f),
        h.syn_retransmits,
        h.synack_retransmits,
        opt(h.matched_by, s),
        opt(h.ambiguity, s),
        h.simultaneous_open,
    );
    let _ = write!(
        o,
        "\"close\": {{\"initiator\": {}, \"time_wait\": {}, \"time_wait_ts\": {}, \"time_wait_until\": {}, \
         \"fin_ts\": {}}}, \"half_close\": {}, \"rst\": {}, ",
        opt(c.initiator, |v| s(v.name())),
        opt(c.time_wait, |v| s(v.name())),
        opt(c.time_wait_ts, f),
        opt(c.time_wait_until, f),
        per(&c.fin_ts, |v| opt(*v, f)),
        opt(r.half_close.as_ref(), |hc| format!(
            "{{\"side\": {}, \"bytes_after_fin\": {}, \"duration_ms\": {}}}",
            s(hc.side.name()),
            hc.bytes_after_fin,
            f(hc.duration_ms)
        )),
        opt(r.rst.as_ref(), |rst| format!(
            "{{\"sender\": {}, \"state\": {}, \"receiver_state\": {}, \"kind\": {}, \"ts\": {}, \"count\": {}}}",
            s(rst.sender.name()),
            s(rst.state.name()),
            s(rst.receiver_state.name()),
            s(rst.kind.name()),
            f(rst.ts),
            rst.count
        )),
    );
    let k = &r.keepalive;
    let _ = write!(
        o,
        "\"keepalive\": {{\"probes\": {}, \"acks\": {}, \"intervals_ms\": {}}}, ",
        per(&k.probes, |v| v.to_string()),
        per(&k.acks, |v| v.to_string()),
        per(&k.intervals_ms, |v| list(v, |x| f(*x))),
    );
    let u = &r.reuse;
    let _ = write!(
        o,
        "\"reuse\": {{\"protocol\": {}, \"requests\": {}, \"responses\": {}, \"idle_gaps_ms\": {}}}, ",
        opt(u.protocol, s),
        u.requests,
        u.responses,
        list(&u.idle_gaps_ms, |x| f(*x)),
    );
    let int = |v: &u64| v.to_string();
    let _ = write!(
        o,
        "\"states\": {}, \"final_state\": {}, \"packets\": {}, \"bytes\": {}, \"unique_bytes\": {}, \
         \"retransmitted_bytes\": {}, \"gap_bytes\": {}, \"anomalies\": {}}}",
        per(&r.states, |v| list(v, |c| format!(
            "{{\"ts\": {}, \"state\": {}}}",
            f(c.ts),
            s(c.state.name())
        ))),
        per(&r.final_state, |v| s(v.name())),
        per(&r.packets, int),
        per(&r.bytes, int),
        per(&r.unique_bytes, int),
        per(&r.retransmitted_bytes, int),
        per(&r.gap_bytes, int),
        per(&r.anomalies, int),
    );
    o
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: records FILE.pcap");
        std::process::exit(2);
    };
    let file = std::fs::read(&path).unwrap_or_default();
    let Some((linktype, frames)) = read_pcap(&file) else {
        eprintln!("{path}: not a classic pcap");
        std::process::exit(1);
    };
    let segments: Vec<Segment> = frames
        .iter()
        .enumerate()
        .filter_map(|(i, fr)| decode(&file, linktype, fr, i as u32))
        .collect();
    let mut table = FlowTable::new(FlowOptions {
        linger_s: 0.5,
        max_flows: 1_000_000,
        tombstone_s: 2.0 * MSL_S,
        idle_timeout_s: None,
        zeek: false,
    });
    let mut out = String::new();
    for slice in segments.chunks(FEED_SLICE) {
        table.feed(slice, &file);
        for mut conn in table.drain() {
            out.push_str(&json(&conn.record(MSL_S)));
            out.push('\n');
        }
    }
    for mut conn in table.close() {
        out.push_str(&json(&conn.record(MSL_S)));
        out.push('\n');
    }
    let st = table.stats;
    eprintln!(
        "connections={} port_reuse={} evicted={} idle={} after_close={}",
        st.connections, st.port_reuse, st.evicted_for_capacity, st.idle_evicted, st.after_close
    );
    print!("{out}");
}
