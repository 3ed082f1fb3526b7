//! One side of a connection as Zeek sees it: src/packet_analysis/protocol/tcp/TCP_Endpoint.h
//! and TCP_Endpoint.cc (state, sequence bookkeeping, `Size()`), plus the per-side counters
//! the session and conn.log need.

use super::gaps::Blocks;

/// TCP_Endpoint.h `EndpointState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EndpointState {
    /// Nothing seen yet.
    #[default]
    Inactive,
    /// A SYN (no ACK) sent.
    SynSent,
    /// A SYN-ACK sent.
    SynAckSent,
    /// Data seen without the handshake (the capture began mid-connection).
    Partial,
    Established,
    /// A FIN sent.
    Closed,
    /// A RST sent.
    Reset,
}

impl EndpointState {
    /// The name conn.log's `orig_state`/`resp_state` use (Python's STATE_NAMES).
    pub fn name(self) -> &'static str {
        match self {
            EndpointState::Inactive => "INACTIVE",
            EndpointState::SynSent => "SYN_SENT",
            EndpointState::SynAckSent => "SYN_ACK_SENT",
            EndpointState::Partial => "PARTIAL",
            EndpointState::Established => "ESTABLISHED",
            EndpointState::Closed => "CLOSED",
            EndpointState::Reset => "RESET",
        }
    }

    /// SYN_SENT or SYN_ACK_SENT: an attempt not yet answered.
    pub fn is_attempt(self) -> bool {
        matches!(self, EndpointState::SynSent | EndpointState::SynAckSent)
    }

    /// INACTIVE or PARTIAL: no handshake seen from this side.
    pub fn is_quiet(self) -> bool {
        matches!(self, EndpointState::Inactive | EndpointState::Partial)
    }

    /// CLOSED or RESET.
    pub fn is_done(self) -> bool {
        matches!(self, EndpointState::Closed | EndpointState::Reset)
    }
}

/// The scaled history events counted per side (Connection::ScaledHistoryEntry): bad
/// checksum, content gap, retransmission, zero window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scaled {
    Checksum = 0,
    Gap = 1,
    Retransmit = 2,
    ZeroWindow = 3,
}

impl Scaled {
    /// The history letter (the originator's; the responder's is lower case).
    pub fn letter(self) -> u8 {
        b"CGTW"[self as usize]
    }
}

/// One Zeek TCP_Endpoint. Sequence numbers are unwrapped to i64 (Zeek's 64-bit relative
/// sequence space).
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub is_orig: bool,
    pub state: EndpointState,
    pub prev_state: EndpointState,
    /// Initial sequence number (or a faked one just before a partial connection's first
    /// segment).
    pub start: i64,
    /// One past the highest sequence number sent.
    pub last: i64,
    /// Highest acknowledgement received from the peer.
    pub ack: i64,
    pub fin_cnt: u32,
    pub rst_cnt: u32,
    /// Sequence number just past the FIN.
    pub fin_seq: i64,
    pub did_close: bool,
    /// Relative sequence numbers of the last SYN, FIN (end of its data) and RST: a repeat
    /// at another place writes the letter again (TCPSessionAdapter::UpdateHistory).
    pub last_syn: i64,
    pub last_fin: i64,
    pub last_rst: i64,
    /// Scaled events so far and the count at which the next letter is written (1, 10,
    /// 100, ...), by `Scaled`.
    pub counts: [u64; 4],
    pub thresholds: [u64; 4],
    pub pkts: u64,
    pub ip_bytes: u64,
    /// Sequence number up to which this side's data was seen (or given up as a gap), and
    /// the out-of-order blocks beyond it (gaps.rs).
    pub contig: i64,
    pub blocks: Blocks,
    /// Bytes acknowledged but never seen (conn.log `missed_bytes`).
    pub missed: u64,
}

impl Endpoint {
    pub fn new(is_orig: bool) -> Self {
        Endpoint {
            is_orig,
            state: EndpointState::Inactive,
            prev_state: EndpointState::Inactive,
            start: 0,
            last: 0,
            ack: 0,
            fin_cnt: 0,
            rst_cnt: 0,
            fin_seq: 0,
            did_close: false,
            last_syn: 0,
            last_fin: 0,
            last_rst: 0,
            counts: [0; 4],
            thresholds: [1; 4],
            pkts: 0,
            ip_bytes: 0,
            contig: -1,
            blocks: Blocks::default(),
            missed: 0,
        }
    }

    pub fn set_state(&mut self, state: EndpointState) {
        self.prev_state = self.state;
        self.state = state;
    }

    /// TCP_Endpoint::InitStartSeq / InitLastSeq / InitAckSeq.
    pub fn init_seq(&mut self, start: i64, last: i64) {
        self.start = start;
        self.ack = start;
        self.last = last;
        self.contig = start + 1;
        self.blocks.clear();
    }

    /// TCP_Endpoint::Size(): payload bytes from sequence numbers (SYN and FIN removed).
    pub fn size(&self, peer: &Endpoint) -> u64 {
        if self.prev_state == EndpointState::SynSent
            && self.state == EndpointState::Reset
            && peer.state == EndpointState::Inactive
            && !matches!(self.ack - self.start, 0 | 1)
        {
            // a RST answering a SYN with a bogus ack: Zeek does not trust the numbers
            return 0;
        }
        let mut size = self.last.max(self.ack) - self.start;
        if size > 0 {
            size -= 1;
        }
        if self.fin_cnt > 0 && size != 0 {
            size -= 1;
        }
        size.max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_leaves_out_syn_and_fin() {
        let mut end = Endpoint::new(true);
        let peer = Endpoint::new(false);
        end.init_seq(1000, 1001);
        assert_eq!(end.size(&peer), 0);
        end.last = 1101; // SYN + 100 bytes
        assert_eq!(end.size(&peer), 100);
        end.fin_cnt = 1;
        end.last = 1102; // and a FIN
        assert_eq!(end.size(&peer), 100);
        end.ack = 2000; // acked beyond what was seen counts too
        assert_eq!(end.size(&peer), 998);
    }

    #[test]
    fn size_of_a_reset_attempt_with_a_bogus_ack_is_zero() {
        let mut end = Endpoint::new(true);
        let peer = Endpoint::new(false);
        end.init_seq(0, 500);
        end.ack = 7;
        end.set_state(EndpointState::SynSent);
        end.set_state(EndpointState::Reset);
        assert_eq!(end.size(&peer), 0);
        end.ack = 1;
        assert_eq!(end.size(&peer), 499);
    }
}
