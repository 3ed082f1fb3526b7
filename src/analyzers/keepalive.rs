//! TCP keep-alive probes and their answers (RFC 1122 section 4.2.3.6).
//!
//! A probe is a segment with no SYN/FIN/RST, 0 or 1 byte of payload, and a sequence number
//! one below what the sender has already used (SEG.SEQ = SND.NXT - 1), so the receiver must
//! answer with an ACK. Zero-window probes look the same; they are told apart by the peer's
//! advertised window of 0. The answer is the peer's next pure ACK acknowledging SND.NXT.

use super::{Analyzer, ConnEvent, Finish};
use crate::decode::{FIN, SYN};
use crate::model::{ns_to_ms, ConnectionRecord, Keepalive, PerSide};

#[derive(Debug, Default)]
struct KeepaliveSide {
    probes: u64,
    /// ACKs this side sent in answer to the peer's probes.
    acks_sent: u64,
    intervals_ms: Vec<f64>,
    /// Time of the latest probe of the current run; ordinary data ends the run.
    last_probe_ns: Option<i64>,
    /// SND.NXT of this side's outstanding probe: the ack value that answers it.
    awaiting_ack_at: Option<u32>,
}

/// Probes and answers of both sides (index: `Role::index`), in a box that only a
/// connection with a probe gets: 8 bytes of every flow-table slot instead of 128.
#[derive(Debug, Default)]
pub struct KeepaliveAnalyzer {
    sides: Option<Box<[KeepaliveSide; 2]>>,
}

impl Analyzer for KeepaliveAnalyzer {
    #[inline(always)] // see Analyzers::on
    fn on_event(&mut self, event: &ConnEvent<'_>) {
        let ConnEvent::Segment {
            role,
            ts_ns,
            previous_ns,
            flags,
            seq,
            ack,
            payload_len,
            snd_nxt,
            peer_window,
        } = *event
        else {
            return;
        };
        let (me, peer) = (role.index(), role.peer().index());
        let mut probe = false;
        if let Some(nxt) = snd_nxt {
            if payload_len <= 1 && flags & (SYN | FIN) == 0 {
                if seq == nxt.wrapping_sub(1) && peer_window != 0 {
                    probe = true;
                    let side = &mut self.sides.get_or_insert_with(Box::default)[me];
                    let since = side.last_probe_ns.unwrap_or(previous_ns);
                    side.intervals_ms.push(ns_to_ms(ts_ns - since));
                    side.probes += 1;
                    side.last_probe_ns = Some(ts_ns);
                    side.awaiting_ack_at = Some(nxt);
                } else if let Some(sides) = self.sides.as_deref_mut() {
                    if payload_len == 0 && sides[peer].awaiting_ack_at == Some(ack) {
                        sides[me].acks_sent += 1;
                        sides[peer].awaiting_ack_at = None;
                    }
                }
            }
        }
        if payload_len != 0 && !probe {
            if let Some(sides) = self.sides.as_deref_mut() {
                sides[me].last_probe_ns = None; // ordinary traffic ends a run of probes
            }
        }
    }

    fn finish(&mut self, record: &mut ConnectionRecord, _how: &Finish) {
        let Some(sides) = self.sides.as_deref_mut() else {
            record.keepalive = Keepalive::default();
            return;
        };
        let [client, server] = sides;
        record.keepalive = Keepalive {
            probes: PerSide::new(client.probes, server.probes),
            acks: PerSide::new(client.acks_sent, server.acks_sent),
            intervals_ms: PerSide::new(
                std::mem::take(&mut client.intervals_ms),
                std::mem::take(&mut server.intervals_ms),
            ),
        };
    }
}
