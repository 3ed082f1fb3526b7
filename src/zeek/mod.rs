//! Zeek's view of a connection (`--zeek`, `-f zeek`): `conn_state`, `history` and the
//! conn.log counters, as Zeek would log the connection. A port of the Python engine's
//! tcptrace/analyzers/zeek.py, split the way Zeek's sources are (docs/zeek.md has the map):
//!
//! - `endpoint`: TCP_Endpoint.{h,cc} (endpoint states, sequence bookkeeping, `Size()`)
//! - `session`: TCPSessionAdapter.cc (originator, state machine, history updates) and the
//!   connection timers (Conn.cc, session/Manager.cc)
//! - `gaps`: TCP_Reassembler.cc's content-gap accounting (`missed_bytes`, `G`)
//! - `history`: Conn.cc's history letters
//! - `conn_state`: scripts/base/protocols/conn/main.zeek's `conn_state`
//!
//! The view is optional per connection (`Connection::enable_zeek`): without `--zeek` the
//! segment path pays one branch for it.

pub mod conn_state;
pub mod endpoint;
pub mod gaps;
pub mod history;
pub mod session;

pub use conn_state::ConnState;
pub use endpoint::EndpointState;
pub use session::ZeekView;

/// `likely_server_ports` after `zeek` loads its base scripts: every TCP port a base
/// protocol analyzer registers (`redef likely_server_ports += { ports }` in each
/// main.zeek: dce-rpc, dnp3, dns, ftp, http, imap, irc, krb, ldap, modbus, mysql, pop3,
/// postgresql, rdp, redis, smb, smtp, socks, ssh, ssl, xmpp). Sorted.
pub const LIKELY_SERVER_PORTS: [u16; 52] = [
    21, 22, 25, 53, 80, 81, 88, 110, 135, 137, 138, 139, 143, 389, 443, 445, 502, 563, 585, 587,
    593, 614, 631, 636, 989, 990, 992, 993, 995, 1080, 1434, 2811, 3128, 3268, 3306, 3389, 5222,
    5223, 5269, 5353, 5355, 5432, 6379, 6666, 6667, 6668, 6669, 8000, 8080, 8888, 20000, 49152,
];

/// Whether Zeek takes `port` for a server's (WantConnection's role flip).
pub fn is_likely_server_port(port: u16) -> bool {
    LIKELY_SERVER_PORTS.binary_search(&port).is_ok()
}

/// Whether each of `ports` is a likely server port: of `custom` when given (sorted; `zeek
/// -b` loads only some analyzers' scripts, so fewer ports), else of LIKELY_SERVER_PORTS.
pub fn server_port_flags(ports: [u16; 2], custom: Option<&[u16]>) -> [bool; 2] {
    ports.map(|port| match custom {
        Some(set) => set.binary_search(&port).is_ok(),
        None => is_likely_server_port(port),
    })
}

/// One Zeek connection's conn.log values (the Python engine's `zeek` dict).
#[derive(Clone, Debug, PartialEq)]
pub struct ZeekConn {
    /// Zeek's originator is tcptrace's client (else its server).
    pub orig_is_client: bool,
    pub ts: f64,
    pub conn_state: ConnState,
    pub history: String,
    /// Seconds, rounded to 6 decimals; None when 0.
    pub duration: Option<f64>,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    pub missed_bytes: u64,
    pub orig_pkts: u64,
    pub orig_ip_bytes: u64,
    pub resp_pkts: u64,
    pub resp_ip_bytes: u64,
    pub orig_state: EndpointState,
    pub resp_state: EndpointState,
}

impl ZeekConn {
    /// "client" or "server": which tcptrace endpoint is Zeek's originator.
    pub fn orig_name(&self) -> &'static str {
        if self.orig_is_client {
            "client"
        } else {
            "server"
        }
    }
}

/// A record's `zeek` part: the Zeek connection current at the end, and those Zeek saw end
/// earlier on the same 4-tuple (timers, reuse) within this tcptrace connection.
#[derive(Clone, Debug, PartialEq)]
pub struct ZeekRecord {
    pub current: ZeekConn,
    pub earlier: Vec<ZeekConn>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ports_are_sorted_and_complete() {
        assert!(LIKELY_SERVER_PORTS.windows(2).all(|w| w[0] < w[1]));
        for port in [21, 80, 443, 445, 5432, 8080, 49152] {
            assert!(is_likely_server_port(port), "{port}");
        }
        for port in [0, 23, 8443, 40000, 65535] {
            assert!(!is_likely_server_port(port), "{port}");
        }
    }
}
