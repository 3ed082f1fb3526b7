//! The session: src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc replayed per segment
//! (its originator and role flips, partial status, UpdateStateMachine, UpdateHistory,
//! sequence tracking), with the connection timers of src/Conn.cc and
//! src/session/Manager.cc (attempt, close, reset and inactivity) that end one Zeek
//! connection and start the next on the same 4-tuple. A port of
//! tcptrace/analyzers/zeek.py `ZeekObserver`, statement for statement.

use crate::decode::{ACK, FIN, RST, SYN};
use crate::model::{ns_to_s, round6, Role};

use super::conn_state::conn_state;
use super::endpoint::{Endpoint, EndpointState, Scaled};
use super::gaps;
use super::history::{self, History};
use super::{ZeekConn, ZeekRecord};

use EndpointState::*;

const NS: i64 = 1_000_000_000;
const MOD: i64 = 1 << 32;
const HALF: i64 = 1 << 31;
/// init-bare.zeek: tcp_attempt_delay, tcp_reset_delay, tcp_close_delay.
const ATTEMPT_DELAY_NS: i64 = 5 * NS;
const RESET_DELAY_NS: i64 = 5 * NS;
const CLOSE_DELAY_NS: i64 = 5 * NS;
/// init-bare.zeek: tcp_inactivity_timeout.
const INACTIVITY_NS: i64 = 300 * NS;

/// What a connection timer does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// Removes an attempt that is still unanswered (TCPSessionAdapter::AttemptTimer).
    Attempt,
    /// Removes the connection (close and reset timers).
    Remove,
}

/// `x` unwrapped next to `near`: the i64 congruent to `x` mod 2^32 within 2^31 of it.
fn unwrap_near(near: i64, x: u32) -> i64 {
    near + (i64::from(x) - near + HALF).rem_euclid(MOD) - HALF
}

/// Zeek's view of one tcptrace connection: one Zeek connection at a time, the finished
/// ones kept in `earlier`.
#[derive(Clone, Debug)]
pub struct ZeekView {
    /// Client side then server side (by tcptrace's roles).
    ends: [Endpoint; 2],
    /// Which of `ends` is Zeek's originator.
    orig: usize,
    history: History,
    partial: bool,
    first_ns: i64,
    last_ns: i64,
    started: bool,
    /// Bit 1: the originator's first packet was seen; bit 2: the responder's.
    seen_first: u8,
    /// Client port, server port.
    ports: [u16; 2],
    /// Whether each is a likely server port (`server_port_flags`).
    server_ports: [bool; 2],
    timers: Vec<(i64, Timer)>,
    /// The earliest timer's deadline; 0 when none.
    deadline: i64,
    earlier: Vec<ZeekConn>,
}

impl ZeekView {
    /// The view of a connection between `ports` (client's, server's); `server_ports`: which
    /// of them Zeek takes for a server's (`super::server_port_flags`).
    pub fn new(ports: [u16; 2], server_ports: [bool; 2]) -> Self {
        ZeekView {
            ends: [Endpoint::new(true), Endpoint::new(false)],
            orig: 0,
            history: History::default(),
            partial: false,
            first_ns: 0,
            last_ns: 0,
            started: false,
            seen_first: 0,
            ports,
            server_ports,
            timers: Vec::new(),
            deadline: 0,
            earlier: Vec::new(),
        }
    }

    /// Zeek starts a new connection on this 4-tuple: keep the finished one's result.
    fn reset(&mut self) {
        let done = self.result_now();
        self.earlier.push(done);
        self.ends = [Endpoint::new(true), Endpoint::new(false)];
        self.orig = 0;
        self.history = History::default();
        self.partial = false;
        self.started = false;
        self.seen_first = 0;
        self.timers.clear();
        self.deadline = 0;
    }

    fn timer(&mut self, at_ns: i64, kind: Timer) {
        self.timers.push((at_ns, kind));
        self.deadline = self.timers.iter().map(|t| t.0).min().unwrap_or(0);
    }

    /// Timers due before this packet: a removed connection ends here (Zeek logs it, and
    /// the packet starts a new one). docs/zeek.md, "Timers".
    fn expire(&mut self, now_ns: i64) {
        let mut due: Vec<(i64, Timer)> = self
            .timers
            .iter()
            .copied()
            .filter(|t| t.0 < now_ns)
            .collect();
        due.sort_unstable();
        self.timers.retain(|t| t.0 >= now_ns);
        self.deadline = self.timers.iter().map(|t| t.0).min().unwrap_or(0);
        let (orig, resp) = (self.ends[self.orig].state, self.ends[1 - self.orig].state);
        for (_, kind) in due {
            if kind == Timer::Attempt && !(orig.is_attempt() && resp == Inactive) {
                continue;
            }
            self.reset();
            return;
        }
        if now_ns - self.last_ns > INACTIVITY_NS && self.started {
            self.reset();
        }
    }

    /// TCPSessionAdapter::IsReuse: an initial SYN (or a SYN-ACK to a silent originator)
    /// that does not belong to this connection starts a new one.
    fn is_reuse(&self, seq: u32, flags: u16) -> bool {
        let orig = &self.ends[self.orig];
        let resp = &self.ends[1 - self.orig];
        let mut first = orig;
        if flags & ACK != 0 {
            if orig.state != Inactive {
                return false;
            }
            first = resp;
        }
        if orig.state.is_done() && (resp.state.is_done() || resp.state == Inactive) {
            return true;
        }
        let seq = i64::from(seq);
        if seq == first.start.rem_euclid(MOD) {
            return false;
        }
        !(flags & ACK == 0
            && first.state == SynAckSent
            && resp.state == Inactive
            && seq == resp.start.rem_euclid(MOD))
    }

    // ---- history helpers

    fn check(&mut self, at: usize, mask: u32, code: u8) -> bool {
        self.history.check(self.ends[at].is_orig, mask, code)
    }

    fn add(&mut self, at: usize, code: u8) {
        self.history.add(self.ends[at].is_orig, code);
    }

    fn scaled(&mut self, at: usize, which: Scaled) {
        self.history.scaled(&mut self.ends[at], which);
    }

    /// Connection::FlipRoles: the responder becomes the originator.
    fn flip(&mut self) {
        for end in &mut self.ends {
            end.is_orig = !end.is_orig;
        }
        self.orig = if self.ends[0].is_orig { 0 } else { 1 };
        self.history.flip();
    }

    /// The connection's first packet: Zeek's originator, flipped per WantConnection.
    fn first(&mut self, role: Role, flags: u16) {
        self.started = true;
        let me = role.index();
        self.ends[me].is_orig = true;
        self.ends[1 - me].is_orig = false;
        self.orig = me;
        if flags & SYN != 0 && flags & ACK != 0 {
            // a connection whose first packet is a SYN-ACK: the corpus shows Zeek flips it
            // whatever the ports (docs/zeek.md, "Originator")
            self.flip();
        } else if flags & SYN == 0 {
            let (src, dst) = (self.ports[me], self.ports[1 - me]);
            if self.server_ports[me] {
                let flip = if self.server_ports[1 - me] {
                    src < dst
                } else {
                    true
                };
                if flip {
                    self.flip();
                }
            }
        }
    }

    /// TCPSessionAdapter::SetPartialStatus.
    fn partial_status(&mut self, at: usize, flags: u16) {
        let (syn, ack) = (flags & SYN != 0, flags & ACK != 0);
        if self.ends[at].is_orig {
            if self.seen_first & 1 == 0 {
                self.partial = !syn || ack;
                self.seen_first |= 1;
            }
        } else if self.seen_first & 2 == 0 {
            if !self.partial {
                self.partial = !syn;
            }
            self.seen_first |= 2;
        }
    }

    // ---- what the connection hands over

    /// A segment Zeek would drop for its checksum: only a `C`/`c` letter remains.
    pub fn bad_checksum(&mut self, role: Role, ts_ns: i64, flags: u16) {
        if !self.started {
            self.first(role, flags);
            self.first_ns = ts_ns;
            self.last_ns = ts_ns;
        }
        self.scaled(role.index(), Scaled::Checksum);
    }

    /// One segment from `role` (fields as decoded: raw sequence numbers, unscaled window).
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        role: Role,
        ts_ns: i64,
        flags: u16,
        seq: u32,
        ack: u32,
        window: u16,
        plen: u32,
        ip_len: u32,
    ) {
        if self.started
            && (ts_ns - self.last_ns > INACTIVITY_NS
                || (self.deadline != 0 && ts_ns > self.deadline))
        {
            self.expire(ts_ns);
        }
        if flags & SYN != 0 && self.started && flags & RST == 0 && self.is_reuse(seq, flags) {
            self.reset();
        }
        if !self.started {
            self.first(role, flags);
            self.first_ns = ts_ns;
        }
        let (mi, pi) = (role.index(), role.peer().index());
        {
            let me = &mut self.ends[mi];
            me.pkts += 1;
            me.ip_bytes += u64::from(ip_len);
        }
        self.partial_status(mi, flags);
        let (syn, fin, rst, has_ack) = (
            flags & SYN != 0,
            flags & FIN != 0,
            flags & RST != 0,
            flags & ACK != 0,
        );
        let seg_len = i64::from(plen) + i64::from(syn) + i64::from(fin);

        // unwrap the 32-bit sequence number next to what this side sent last, then
        // TCPSessionAdapter::Init(Endpoint)
        let base;
        {
            let me = &mut self.ends[mi];
            let state = me.state;
            base = if state == Inactive && me.pkts == 1 && me.last == 0 {
                i64::from(seq)
            } else {
                unwrap_near(me.last, seq)
            };
            if state == Inactive {
                if syn {
                    me.init_seq(base, base + seg_len);
                } else {
                    // a partial connection: fake a SYN just before the first segment
                    me.init_seq(base - 1, base);
                }
            } else if syn
                && ((state.is_attempt() && base != me.start)
                    || matches!(state, Established | Partial)
                    || (state == Reset && me.prev_state == Inactive))
            {
                me.init_seq(base, base + seg_len);
            }
        }

        if !(self.ends[0].did_close && self.ends[1].did_close) {
            self.last_ns = ts_ns;
        }
        {
            let me = &mut self.ends[mi];
            if fin {
                me.fin_cnt += 1;
                me.fin_seq = base + seg_len;
            }
            if rst {
                me.rst_cnt += 1;
            }
        }
        let rel_seq = base - self.ends[mi].start;
        let mut peer_ack = -1i64;
        {
            let peer = &mut self.ends[pi];
            if has_ack && peer.state != Inactive {
                peer_ack = unwrap_near(peer.last, ack);
                if !rst && peer_ack > peer.ack && !(ack == 0 && peer_ack - peer.ack > 1 << 24) {
                    peer.ack = peer_ack;
                }
            }
        }

        self.update_history(mi, flags, rel_seq, plen);

        // update_window: a zero window outside SYN/FIN/RST and before any reset
        if window == 0
            && !syn
            && !fin
            && !rst
            && self.ends[mi].rst_cnt == 0
            && self.ends[pi].rst_cnt == 0
        {
            self.scaled(mi, Scaled::ZeroWindow);
        }

        // update_last_seq: sequence progress, or a retransmission
        let end = base + seg_len;
        let delta = end - self.ends[mi].last;
        if (syn || rst) && !(-(1 << 30)..=(1 << 30)).contains(&delta) {
            // a far jump on a SYN or RST is not taken as progress
        } else if delta > 0 {
            self.ends[mi].last = end;
        } else if plen > 0 {
            self.scaled(mi, Scaled::Retransmit);
        }

        if plen > 0 {
            gaps::data(&mut self.ends[mi], base + i64::from(syn), plen);
        }
        self.state_machine(mi, pi, base, plen, flags);

        if peer_ack >= 0 && !rst {
            let partial = self.partial;
            let revealed = gaps::ack_received(&mut self.ends[pi], peer_ack, partial);
            if gaps::flags_gap(&revealed, !fin, self.ends[mi].state) {
                for _ in 0..revealed.holes {
                    self.scaled(pi, Scaled::Gap);
                }
            }
        }
    }

    /// TCPSessionAdapter::UpdateHistory.
    fn update_history(&mut self, mi: usize, flags: u16, rel_seq: i64, plen: u32) {
        let (syn, fin, rst) = (flags & SYN != 0, flags & FIN != 0, flags & RST != 0);
        let bits = u8::from(syn) + u8::from(fin) + u8::from(rst);
        if bits > 1 {
            if fin && rst {
                self.check(mi, history::HIST_FIN_RST, b'I');
            } else {
                self.check(mi, history::HIST_MULTI, b'Q');
            }
        } else if bits == 1 {
            if syn {
                let code = if flags & ACK != 0 { b'H' } else { b'S' };
                if self.check(mi, history::HIST_SYN, code) && rel_seq != self.ends[mi].last_syn {
                    self.add(mi, code);
                }
                self.ends[mi].last_syn = rel_seq;
            } else if fin {
                let at = rel_seq + i64::from(plen);
                if self.check(mi, history::HIST_FIN, b'F') && at != self.ends[mi].last_fin {
                    self.add(mi, b'F');
                }
                self.ends[mi].last_fin = at;
            } else {
                if self.check(mi, history::HIST_RST, b'R') && rel_seq != self.ends[mi].last_rst {
                    self.add(mi, b'R');
                }
                self.ends[mi].last_rst = rel_seq;
            }
        } else if plen > 0 {
            self.check(mi, history::HIST_DATA, b'D');
        } else if flags & ACK != 0 {
            self.check(mi, history::HIST_ACK, b'A');
        }
    }

    /// TCPSessionAdapter::UpdateStateMachine.
    fn state_machine(&mut self, mi: usize, pi: usize, base: i64, plen: u32, flags: u16) {
        let (syn, fin, rst, has_ack) = (
            flags & SYN != 0,
            flags & FIN != 0,
            flags & RST != 0,
            flags & ACK != 0,
        );
        let before = self.ends[mi].state;
        let mut close = false;
        match before {
            Inactive => {
                if syn {
                    if self.ends[mi].is_orig {
                        self.ends[mi].set_state(if has_ack { SynAckSent } else { SynSent });
                    } else {
                        if !has_ack
                            && self.ends[pi].state == SynAckSent
                            && base == self.ends[mi].start
                        {
                            // SYN/SYN-ACK reversal: flip, and the connection is established
                            self.partial = false;
                            self.flip();
                            self.ends[pi].set_state(Established);
                        }
                        if self.ends[pi].state == SynSent {
                            self.ends[pi].set_state(Established);
                        }
                        self.ends[mi].set_state(Established);
                    }
                }
                if fin {
                    self.ends[mi].set_state(Closed);
                    close = true;
                }
                if rst {
                    self.ends[mi].set_state(Reset);
                    close = true;
                }
                let me = &self.ends[mi];
                if me.state == Inactive
                    && !(!me.is_orig && plen == 0 && self.ends[pi].state == SynSent)
                {
                    self.ends[mi].set_state(Partial);
                }
            }
            SynSent | SynAckSent => {
                if fin {
                    self.ends[mi].set_state(Closed);
                    close = true;
                }
                if rst {
                    self.ends[mi].set_state(Reset);
                    close = true;
                }
            }
            Partial | Established => {
                if syn && before == Partial && self.ends[pi].state == Inactive && !has_ack {
                    self.ends[mi].set_state(SynSent);
                }
                if fin && !rst {
                    self.ends[mi].set_state(Closed);
                    close = true;
                }
                if rst {
                    self.ends[mi].set_state(Reset);
                    close = true;
                }
            }
            Closed => {
                if rst && self.ends[pi].state != Closed {
                    self.ends[mi].set_state(Reset);
                    if !self.ends[mi].did_close {
                        close = true;
                    }
                }
            }
            Reset => {}
        }
        if close {
            self.ends[mi].did_close = true;
        }
        if self.ends[mi].state != before {
            self.timers_for(mi, pi, before);
        }
    }

    fn timers_for(&mut self, mi: usize, pi: usize, before: EndpointState) {
        let now = self.last_ns;
        let (me, peer) = (&self.ends[mi], &self.ends[pi]);
        if me.state.is_attempt() && before == Inactive && me.is_orig {
            self.timer(now + ATTEMPT_DELAY_NS, Timer::Attempt);
        } else if me.state == Reset {
            self.timer(now + RESET_DELAY_NS, Timer::Remove);
        } else if me.state == Closed && (peer.state.is_done() || peer.state == Inactive) {
            // TCPSessionAdapter::ConnectionClosed: a close is complete when the peer has
            // closed too or has sent nothing at all (a FIN seen mid-stream before the other
            // side spoke); the connection is removed tcp_close_delay later, whatever comes
            self.timer(now + CLOSE_DELAY_NS, Timer::Remove);
        }
    }

    // ---- results

    /// The current Zeek connection's conn.log values.
    fn result_now(&self) -> ZeekConn {
        let orig = &self.ends[self.orig];
        let resp = &self.ends[1 - self.orig];
        let (orig_bytes, resp_bytes) = (orig.size(resp), resp.size(orig));
        let state = conn_state(
            orig.state,
            resp.state,
            orig_bytes == 0 && resp_bytes == 0,
            history::syn_then_rst(&self.history.text),
        );
        let duration = ns_to_s(self.last_ns - self.first_ns);
        ZeekConn {
            orig_is_client: self.orig == 0,
            ts: ns_to_s(self.first_ns),
            conn_state: state,
            history: self.history.text.clone(),
            duration: (duration > 0.0).then(|| round6(duration)),
            orig_bytes,
            resp_bytes,
            missed_bytes: orig.missed + resp.missed,
            orig_pkts: orig.pkts,
            orig_ip_bytes: orig.ip_bytes,
            resp_pkts: resp.pkts,
            resp_ip_bytes: resp.ip_bytes,
            orig_state: orig.state,
            resp_state: resp.state,
        }
    }

    /// The record's `zeek` part: the current Zeek connection and the earlier ones.
    /// The roles changed on evidence (connection.rs `swap_roles`): the same view with
    /// client and server exchanged.
    pub fn swap_roles(&mut self) {
        self.ends.swap(0, 1);
        self.orig = 1 - self.orig;
        self.ports.swap(0, 1);
        self.server_ports.swap(0, 1);
        for conn in &mut self.earlier {
            conn.orig_is_client = !conn.orig_is_client;
        }
    }

    pub fn result(&mut self) -> ZeekRecord {
        ZeekRecord {
            current: self.result_now(),
            earlier: std::mem::take(&mut self.earlier),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u16 = SYN;
    const SA: u16 = SYN | ACK;
    const A: u16 = ACK;
    const FA: u16 = FIN | ACK;
    const PA: u16 = ACK | 0x08;
    const R: u16 = RST;
    const RA: u16 = RST | ACK;

    fn feed(view: &mut ZeekView, packets: &[(Role, i64, u16, u32, u32, u32)]) {
        for &(role, ts, flags, seq, ack, plen) in packets {
            view.segment(role, ts, flags, seq, ack, 1000, plen, 40 + plen);
        }
    }

    #[test]
    fn a_whole_connection_is_sf() {
        use Role::{Client as C, Server as Sv};
        let mut view = ZeekView::new([40000, 80], [false, true]);
        feed(
            &mut view,
            &[
                (C, 0, S, 100, 0, 0),
                (Sv, 1_000, SA, 500, 101, 0),
                (C, 2_000, A, 101, 501, 0),
                (C, 3_000, PA, 101, 501, 10),
                (Sv, 4_000, PA, 501, 111, 20),
                (C, 5_000, FA, 111, 521, 0),
                (Sv, 6_000, FA, 521, 112, 0),
                (C, 7_000, A, 112, 522, 0),
            ],
        );
        let r = view.result();
        let c = &r.current;
        assert_eq!(c.conn_state.name(), "SF");
        assert_eq!(c.history, "ShADdFf");
        assert_eq!((c.orig_bytes, c.resp_bytes, c.missed_bytes), (10, 20, 0));
        assert_eq!((c.orig_pkts, c.resp_pkts), (5, 3));
        // the last ACK comes after both FINs: Zeek's last time stays at the second FIN
        assert_eq!(c.duration, Some(6e-6));
        assert!(c.orig_is_client && r.earlier.is_empty());
    }

    #[test]
    fn midstream_traffic_from_a_server_port_flips_and_a_gap_is_missed() {
        use Role::{Client as C, Server as Sv};
        let mut view = ZeekView::new([40000, 80], [false, true]);
        feed(
            &mut view,
            &[
                (Sv, 0, PA, 1000, 5000, 100),
                (C, 1_000, A, 5000, 1300, 0), // acks 200 bytes never seen
            ],
        );
        let c = view.result().current;
        assert_eq!(c.history, "^dAg");
        assert_eq!(c.conn_state.name(), "OTH");
        assert!(c.orig_is_client);
        assert_eq!(c.missed_bytes, 200);
    }

    #[test]
    fn an_unanswered_attempt_times_out_into_a_new_connection() {
        use Role::Client as C;
        let mut view = ZeekView::new([40000, 80], [false, true]);
        feed(
            &mut view,
            &[(C, 0, S, 100, 0, 0), (C, 6 * NS, S, 100, 0, 0)],
        );
        let r = view.result();
        assert_eq!(r.earlier.len(), 1);
        assert_eq!(r.earlier[0].conn_state.name(), "S0");
        assert_eq!(r.earlier[0].history, "S");
        assert_eq!(r.current.ts, 6.0);
        assert_eq!(r.current.duration, None);
    }

    #[test]
    fn a_fin_before_the_peer_spoke_completes_the_close() {
        // Zeek's Teredo.pcap, 192.168.2.16:1576 <-> 75.126.130.163:80 (no SYN captured):
        // the server's FIN while the client is INACTIVE is a complete close, removed 5 s
        // later; the client's RST 10 s on and the server's RST 16 s after that are two
        // more Zeek connections (conn.log: SHR ^fA, OTH R, RSTRH ^r)
        use Role::{Client as C, Server as Sv};
        let mut view = ZeekView::new([1576, 80], [false, true]);
        feed(
            &mut view,
            &[
                (Sv, 0, FA, 500, 100, 0),
                (C, 357_000, A, 100, 501, 0),
                (C, 10 * NS, RA, 100, 501, 0),
                (Sv, 26 * NS, R, 501, 0, 0),
            ],
        );
        let r = view.result();
        let rows: Vec<(&str, &str)> = r
            .earlier
            .iter()
            .chain([&r.current])
            .map(|c| (c.conn_state.name(), c.history.as_str()))
            .collect();
        assert_eq!(rows, [("SHR", "^fA"), ("OTH", "R"), ("RSTRH", "^r")]);
        assert_eq!(r.earlier[0].duration, Some(0.000357));
    }

    #[test]
    fn bad_checksums_write_c_letters() {
        use Role::{Client as C, Server as Sv};
        let mut view = ZeekView::new([40000, 80], [false, true]);
        view.bad_checksum(C, 0, S);
        feed(&mut view, &[(C, 10, S, 100, 0, 0)]);
        view.bad_checksum(Sv, 20, SA);
        // the dropped SYN started a Zeek connection whose start the good SYN does not
        // match (IsReuse): a new one
        let r = view.result();
        assert_eq!(r.earlier.len(), 1);
        assert_eq!(r.earlier[0].history, "C");
        assert_eq!(r.current.history, "Sc");
    }

    #[test]
    fn unwrapping_sequence_numbers() {
        assert_eq!(unwrap_near(0, 5), 5);
        assert_eq!(unwrap_near(0, u32::MAX), -1);
        assert_eq!(unwrap_near(u32::MAX as i64, 3), (1 << 32) + 3);
        assert_eq!(unwrap_near(-1, 0), 0);
    }
}
