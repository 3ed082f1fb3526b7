//! The Zeek view in the reports: the record's `zeek` key (json, jsonl; csv columns are in
//! csv.rs) and `-f zeek`, a Zeek-style tab-separated conn.log, as
//! tcptrace/report/zeek.py writes it: header lines (#separator ... #types), one row per
//! Zeek connection (a record can hold several: `zeek.earlier`, then the current one), then
//! #close. Unset values are `-`. The uid is deterministic: "C" and the base62 form of a
//! BLAKE2b hash of the 5-tuple and the start time.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::ConnectionRecord;
use crate::zeek::{ZeekConn, ZeekRecord};

use super::blake2b::blake2b;
use super::json::Encoder;

/// One Zeek connection's keys, in the Python dict's order.
fn conn_fields(e: &mut Encoder, z: &ZeekConn) {
    e.key("orig");
    e.name(z.orig_name());
    e.key("ts");
    e.float(z.ts);
    e.key("conn_state");
    e.name(z.conn_state.name());
    e.key("history");
    e.str(&z.history);
    e.key("duration");
    match z.duration {
        Some(d) => e.float(d),
        None => e.null(),
    }
    for (key, value) in [
        ("orig_bytes", z.orig_bytes),
        ("resp_bytes", z.resp_bytes),
        ("missed_bytes", z.missed_bytes),
        ("orig_pkts", z.orig_pkts),
        ("orig_ip_bytes", z.orig_ip_bytes),
        ("resp_pkts", z.resp_pkts),
        ("resp_ip_bytes", z.resp_ip_bytes),
    ] {
        e.key(key);
        e.int(value);
    }
    e.key("orig_state");
    e.name(z.orig_state.name());
    e.key("resp_state");
    e.name(z.resp_state.name());
}

/// The record's `zeek` value: the current connection's keys, then `earlier`.
pub(crate) fn encode_json(e: &mut Encoder, z: &ZeekRecord) {
    e.begin_object();
    conn_fields(e, &z.current);
    e.key("earlier");
    e.begin_array();
    for earlier in &z.earlier {
        e.element();
        e.begin_object();
        conn_fields(e, earlier);
        e.end_object();
    }
    e.end_array();
    e.end_object();
}

/// Zeek's conn.log columns in Zeek's order (`Conn::Info`, scripts/base/protocols/conn/
/// main.zeek; the #fields line of Zeek's own logs), so zeek-cut and Zeek-log readers need no
/// special case.
const FIELDS: &str = "ts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\t\
duration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\t\
orig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\tip_proto";
const TYPES: &str = "time\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\t\
count\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\tcount";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The conn.log uid of a Zeek connection (report/zeek.py `uid`).
pub fn uid(orig_h: &str, orig_p: u16, resp_h: &str, resp_p: u16, ts: f64) -> String {
    let text = format!("{orig_h}|{orig_p}|{resp_h}|{resp_p}|tcp|{ts:.6}");
    let digest = blake2b::<12>(text.as_bytes());
    let mut value = digest
        .iter()
        .fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
    let mut out = String::with_capacity(18);
    out.push('C');
    let mut digits = 0;
    while value != 0 && digits < 17 {
        out.push(char::from(BASE62[(value % 62) as usize]));
        value /= 62;
        digits += 1;
    }
    out
}

/// UTC time as `time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())`.
fn stamp_of(seconds: u64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // days since 1970-01-01 to a civil date (H. Hinnant's `civil_from_days`)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}-{:02}-{:02}-{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn stamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    stamp_of(now)
}

/// `-f zeek`: rows streamed as connections end, like Zeek writes conn.log on removal.
#[derive(Debug, Default)]
pub struct ZeekLogWriter {
    started: bool,
}

impl ZeekLogWriter {
    pub fn new() -> Self {
        Self::default()
    }

    fn header(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            b"#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n\
#path\tconn\n",
        );
        out.extend_from_slice(format!("#open\t{}\n", stamp()).as_bytes());
        out.extend_from_slice(format!("#fields\t{FIELDS}\n#types\t{TYPES}\n").as_bytes());
        self.started = true;
    }

    /// The record's rows (the header before the first record).
    pub fn write(&mut self, record: &ConnectionRecord, out: &mut Vec<u8>) {
        self.begin(out);
        write_rows(record, out);
    }

    /// The header, unless written already (`--jobs`: the shards write the rows).
    pub fn begin(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.header(out);
        }
    }

    /// The end of the log (the header first when no record came).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.begin(out);
        out.extend_from_slice(format!("#close\t{}\n", stamp()).as_bytes());
    }
}

/// A record's conn.log rows: one per Zeek connection it holds (none without the Zeek view).
pub fn write_rows(record: &ConnectionRecord, out: &mut Vec<u8>) {
    let Some(zeek) = &record.zeek else {
        return;
    };
    for conn in zeek.earlier.iter().chain(std::iter::once(&zeek.current)) {
        let (orig, resp) = if conn.orig_is_client {
            (&record.client, &record.server)
        } else {
            (&record.server, &record.client)
        };
        let duration = conn
            .duration
            .map_or_else(|| "-".to_string(), |d| format!("{d:.6}"));
        let history = if conn.history.is_empty() {
            "-"
        } else {
            &conn.history
        };
        // Zeek names a service once its analyzer confirmed the protocol, which takes
        // payload: tcptrace recognises HTTP/1.x (reuse.protocol).
        let carried_payload = conn.orig_bytes + conn.resp_bytes > 0;
        let service = match record.reuse.protocol {
            Some(p) if p.starts_with("http") && carried_payload => "http",
            _ => "-",
        };
        // local_orig, local_resp: unset, as Zeek leaves them without Site::local_nets;
        // tunnel_parents: unset (tcptrace decodes no tunnels); ip_proto: TCP's 6.
        let row = format!(
            "{:.6}\t{}\t{}\t{}\t{}\t{}\ttcp\t{}\t{}\t{}\t{}\t{}\t-\t-\t{}\t{}\t{}\t{}\t{}\t{}\t-\t6\n",
            conn.ts,
            uid(&orig.ip, orig.port, &resp.ip, resp.port, conn.ts),
            orig.ip,
            orig.port,
            resp.ip,
            resp.port,
            service,
            duration,
            conn.orig_bytes,
            conn.resp_bytes,
            conn.conn_state.name(),
            conn.missed_bytes,
            history,
            conn.orig_pkts,
            conn.orig_ip_bytes,
            conn.resp_pkts,
            conn.resp_ip_bytes,
        );
        out.extend_from_slice(row.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_match_python() {
        // tcptrace.report.zeek.uid(...)
        assert_eq!(
            uid("10.0.0.1", 40000, "10.0.0.2", 80, 1.5),
            "CyC66oG8i1JvRL7zY"
        );
        assert_eq!(
            uid("2001:db8::1", 40000, "2001:db8::2", 443, 1234567890.123456),
            "CT2x8PytkFIPjiXDP1"
        );
    }

    #[test]
    fn utc_stamps() {
        assert_eq!(stamp_of(0), "1970-01-01-00-00-00");
        assert_eq!(stamp_of(951_782_400), "2000-02-29-00-00-00");
        assert_eq!(stamp_of(1_700_000_000), "2023-11-14-22-13-20");
    }

    #[test]
    fn an_empty_log_has_its_header_and_close() {
        let mut out = Vec::new();
        let mut writer = ZeekLogWriter::new();
        writer.finish(&mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 9);
        assert_eq!(lines[0], "#separator \\x09");
        assert!(lines[5].starts_with("#open\t") && lines[8].starts_with("#close\t"));
        assert_eq!(lines[6].split('\t').count(), 23);
        assert_eq!(lines[7].split('\t').count(), 23);
    }
}
