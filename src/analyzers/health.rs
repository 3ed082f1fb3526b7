//! Connection health: each side's retransmissions by cause, its probes, the sequence space
//! lost before and after the capture point, and the zero windows it advertised
//! (docs/health.md says how each is told, and where we follow Wireshark's tcp.analysis).
//! Every segment also gets a verdict (`verdict` bits) that the segment trace keeps.
//!
//! Memory: a clean connection pays 24 bytes (each side's last ACK, a few bits and one
//! pointer). The state that classifies retransmissions and times zero windows lives in a
//! box that only a connection with a retransmission, a hole, a duplicate ACK, a probe or a
//! zero window gets (`HealthState`).

use super::{Analyzer, ConnEvent, Finish};
use crate::decode::{ACK, FIN, SYN};
use crate::model::{ns_to_ms, ConnectionRecord, Outcome, PerSide, Retransmissions, Tally};
use crate::seqnum::{seq_after, seq_diff};

/// The verdict bits of one segment, named as Wireshark's `tcp.analysis` flags where one
/// exists (`NAMES`).
pub mod verdict {
    /// Sequence space sent before, or filling a hole the receiver reported lost.
    pub const RETRANSMISSION: u16 = 1;
    /// A retransmission on the retransmission timer.
    pub const RTO: u16 = 1 << 1;
    /// A retransmission on the receiver's duplicate or partial ACKs.
    pub const FAST: u16 = 1 << 2;
    /// A retransmission of the last segment sent, as a tail-loss probe.
    pub const TLP: u16 = 1 << 3;
    /// A retransmission of data the receiver had already acknowledged.
    pub const SPURIOUS: u16 = 1 << 4;
    /// Fills a hole at the capture point without the receiver having reported it lost.
    pub const OUT_OF_ORDER: u16 = 1 << 5;
    pub const DUPLICATE_ACK: u16 = 1 << 6;
    /// Advertises a zero window.
    pub const ZERO_WINDOW: u16 = 1 << 7;
    pub const ZERO_WINDOW_PROBE: u16 = 1 << 8;
    pub const KEEP_ALIVE: u16 = 1 << 9;
    /// Starts beyond what its sender had sent: the capture missed what lies between.
    pub const LOST_SEGMENT: u16 = 1 << 10;
    /// Acknowledges sequence space the capture never saw.
    pub const ACK_LOST_SEGMENT: u16 = 1 << 11;

    /// Each bit's name, in bit order.
    pub const NAMES: [(u16, &str); 12] = [
        (RETRANSMISSION, "retransmission"),
        (RTO, "rto"),
        (FAST, "fast_retransmission"),
        (TLP, "tail_loss_probe"),
        (SPURIOUS, "spurious_retransmission"),
        (OUT_OF_ORDER, "out_of_order"),
        (DUPLICATE_ACK, "duplicate_ack"),
        (ZERO_WINDOW, "zero_window"),
        (ZERO_WINDOW_PROBE, "zero_window_probe"),
        (KEEP_ALIVE, "keep_alive"),
        (LOST_SEGMENT, "lost_segment"),
        (ACK_LOST_SEGMENT, "ack_lost_segment"),
    ];

    /// The names of the bits set in `bits`.
    pub fn names(bits: u16) -> impl Iterator<Item = &'static str> {
        NAMES
            .iter()
            .filter(move |(bit, _)| bits & bit != 0)
            .map(|&(_, name)| name)
    }
}

/// How long after the receiver's duplicate (or partial) ACK a retransmission still counts
/// as fast: Linux's minimum retransmission timeout (TCP_RTO_MIN, 200 ms). A sender answers
/// duplicate ACKs at once (RFC 5681 section 3.2) and its timer never fires sooner.
const FAST_WINDOW_NS: i64 = 200_000_000;

/// Duplicate ACKs after which a segment filling a hole counts as the retransmission of one
/// lost before the capture point rather than as one overtaken on the way (reordering by a
/// segment gives one duplicate ACK).
const LOSS_DUP_ACKS: u32 = 2;

/// Advancing ACKs after the one that covered a retransmission during which a D-SACK may
/// still report it (the receiver's ACK for the duplicate comes at once, RFC 2883, but
/// ACKs for newer data may be on the way before it).
const KEEP_CHECKED_ACKS: u8 = 3;

/// Holes and retransmissions awaiting a spurious verdict kept per side: the oldest go.
const MAX_KEPT: usize = 16;

/// A retransmission whose necessity a later ACK may still disprove.
#[derive(Clone, Copy, Debug)]
struct Pending {
    seq: u32,
    end: u32,
    /// Its TSval (RFC 7323), for the Eifel test (RFC 3522).
    tsval: Option<u32>,
    bytes: u32,
    /// Advancing ACKs it is still kept for, once an ACK covered it (and the Eifel test
    /// was made): a D-SACK may follow; None before.
    checked: Option<u8>,
}

/// What one side did, in the box.
#[derive(Debug, Default)]
struct SideHealth {
    tally: Retransmissions,
    /// Retransmissions of sequence space seen before (`lost_after_capture` is those not
    /// spurious).
    seen_twice: Tally,
    /// Spurious retransmissions among `seen_twice`.
    spurious_seen: Tally,
    /// Sequence ranges [start, end) this side skipped: not seen at the capture point.
    holes: Vec<(u32, u32)>,
    pending: Vec<Pending>,
    /// As a sender: the SND.NXT when a fast retransmit began recovery (RFC 6582): ACKs
    /// below it are partial ACKs, still reporting loss.
    recovery: Option<u32>,
    /// As a receiver: consecutive duplicate ACKs, and the time and kind of its last ACK.
    dup_acks: u32,
    ack_ns: i64,
    ack_reports_loss: bool,
    /// Its previous segment was a keep-alive or zero-window probe (the peer's answer is no
    /// duplicate ACK).
    probed: bool,
    /// As a receiver: its zero-window periods, persist probes it was sent, and the time
    /// its window stayed shut (all periods, the longest).
    zero: crate::model::ZeroWindow,
    stall_ns: i64,
    longest_ns: i64,
    /// Since when its window is shut, if it is.
    zero_since: Option<i64>,
}

/// The state of a connection that showed some trouble.
#[derive(Debug, Default)]
struct HealthState {
    sides: [SideHealth; 2],
}

impl HealthState {
    /// Whether an in-order segment from side `me` that is no duplicate ACK, with both
    /// windows open, leaves the box as it is: `me` reports no loss, has no shut window
    /// and sent no probe before; the peer is in no recovery and awaits no verdict.
    #[inline]
    fn quiet(&self, me: usize) -> bool {
        let (mine, peer) = (&self.sides[me], &self.sides[1 - me]);
        mine.dup_acks == 0
            && !mine.ack_reports_loss
            && mine.zero_since.is_none()
            && !mine.probed
            && peer.recovery.is_none()
            && peer.pending.is_empty()
    }
}

/// Health of both sides (index: `Role::index`).
#[derive(Debug, Default)]
pub struct HealthAnalyzer {
    /// Each side's last acknowledgment number (valid once its bit in `seen` is set).
    last_ack: [u32; 2],
    /// Bits 0 and 1: the side has sent an ACK; 2 and 3: a SYN; 4 and 5: a SYN/ACK.
    seen: u8,
    state: Option<Box<HealthState>>,
}

/// A segment's captured TCP option bytes, found only when asked for: most segments never
/// need them.
#[derive(Clone, Copy, Debug)]
pub struct OptionBytes<'a> {
    /// The buffer the segment's offsets point into.
    pub data: &'a [u8],
    /// Offset of the TCP header in `data`.
    pub tcp_off: usize,
    /// Option bytes captured (the snap length may cut them).
    pub len: u32,
}

impl<'a> OptionBytes<'a> {
    /// The option bytes (empty when the offsets lie outside the buffer).
    pub fn bytes(self) -> &'a [u8] {
        let start = self.tcp_off.saturating_add(20);
        (self.data)
            .get(start..start.saturating_add(self.len as usize))
            .unwrap_or(&[])
    }
}

/// The body of the first option of `kind` in a segment's options, if captured whole.
fn option(options: &[u8], kind: u8) -> Option<&[u8]> {
    let mut pos = 0usize;
    while let Some(&here) = options.get(pos) {
        match here {
            0 => return None,
            1 => pos += 1,
            _ => {
                let size = usize::from(*options.get(pos + 1)?);
                if size < 2 {
                    return None;
                }
                if here == kind {
                    return options.get(pos + 2..pos + size);
                }
                pos += size;
            }
        }
    }
    None
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The selective acknowledgment blocks of a segment's options (RFC 2018), at most four.
fn sack_blocks(options: &[u8]) -> impl Iterator<Item = (u32, u32)> + '_ {
    let blocks = option(options, 5).unwrap_or(&[]);
    blocks
        .chunks_exact(8)
        .map(|b| (be32(&b[..4]), be32(&b[4..])))
}

/// The D-SACK block of an ACK (RFC 2883 section 4): a first block below the cumulative
/// ACK, or inside the second block, reports a segment received twice.
fn dsack(options: &[u8], ack: u32) -> Option<(u32, u32)> {
    let mut blocks = sack_blocks(options);
    let first = blocks.next()?;
    if seq_diff(first.1, ack) <= 0 {
        return Some(first);
    }
    let second = blocks.next()?;
    (seq_diff(first.0, second.0) >= 0 && seq_diff(first.1, second.1) <= 0).then_some(first)
}

/// (TSval, TSecr) of a segment's options (RFC 7323 section 3).
fn stamps(options: &[u8]) -> Option<(u32, u32)> {
    let body = option(options, 8).filter(|b| b.len() == 8)?;
    Some((be32(&body[..4]), be32(&body[4..])))
}

impl HealthAnalyzer {
    fn state(&mut self) -> &mut HealthState {
        self.state.get_or_insert_with(Box::default)
    }

    /// A retransmission from side `me` of [seq, end) (`bytes` of payload).
    #[allow(clippy::too_many_arguments)]
    #[cold]
    fn retransmission(
        &mut self,
        me: usize,
        ts_ns: i64,
        seq: u32,
        end: u32,
        bytes: u32,
        snd_nxt: u32,
        options: &[u8],
    ) -> u16 {
        let peer = 1 - me;
        let acked = (self.seen & (1 << peer) != 0).then_some(self.last_ack[peer]);
        let st = self.state();
        let (sender, receiver) = pair(&mut st.sides, me);
        let filled = fill_holes(&mut sender.holes, seq, end);
        if filled > 0 && receiver.dup_acks < LOSS_DUP_ACKS {
            return verdict::OUT_OF_ORDER; // overtaken on the way: its first copy
        }
        let feedback = receiver.ack_reports_loss && ts_ns - receiver.ack_ns <= FAST_WINDOW_NS;
        let cause = if feedback {
            sender.recovery.get_or_insert(snd_nxt);
            sender.tally.fast.add(bytes);
            verdict::FAST
        } else if end == snd_nxt && acked.is_some_and(|una| seq_after(seq, una)) {
            sender.tally.tlp.add(bytes);
            verdict::TLP
        } else {
            sender.recovery = None;
            sender.tally.rto.add(bytes);
            verdict::RTO
        };
        if filled > 0 {
            sender.tally.lost_before_capture.add(filled);
            return verdict::RETRANSMISSION | cause;
        }
        sender.seen_twice.add(bytes);
        if acked.is_some_and(|una| seq_diff(end, una) <= 0) {
            // already acknowledged when sent (Wireshark's spurious retransmission)
            sender.tally.spurious.add(bytes);
            sender.spurious_seen.add(bytes);
            return verdict::RETRANSMISSION | cause | verdict::SPURIOUS;
        }
        if sender.pending.len() >= MAX_KEPT {
            sender.pending.remove(0);
        }
        let tsval = stamps(options).map(|(val, _)| val);
        sender.pending.push(Pending {
            seq,
            end,
            tsval,
            bytes,
            checked: None,
        });
        verdict::RETRANSMISSION | cause
    }

    /// An ACK from side `me` while the box exists: duplicate or partial (reporting loss),
    /// and the evidence it carries against the peer's pending retransmissions.
    #[cold]
    fn boxed_ack(
        &mut self,
        me: usize,
        ts_ns: i64,
        ack: u32,
        advanced: bool,
        duplicate: bool,
        options: &[u8],
    ) {
        let st = self.state.as_deref_mut().expect("boxed");
        let (receiver, sender) = pair(&mut st.sides, me);
        receiver.dup_acks = if duplicate {
            receiver.dup_acks.saturating_add(1)
        } else {
            0
        };
        let partial = match sender.recovery {
            Some(point) if seq_after(point, ack) => true,
            Some(_) => {
                sender.recovery = None;
                false
            }
            None => false,
        };
        receiver.ack_ns = ts_ns;
        receiver.ack_reports_loss = duplicate || partial;
        if sender.pending.is_empty() {
            return;
        }
        let dup_block = dsack(options, ack);
        let echo = stamps(options).map(|(_, ecr)| ecr);
        sender.pending.retain_mut(|p| {
            let reported = dup_block.is_some_and(|(left, right)| {
                seq_diff(p.seq, left) >= 0 && seq_diff(p.end, right) <= 0
            });
            // RFC 3522: the first ACK of the retransmission echoes an older TSval: the
            // original arrived
            let first_cover = p.checked.is_none() && seq_diff(ack, p.end) >= 0;
            let eifel = first_cover
                && matches!((p.tsval, echo), (Some(val), Some(ecr)) if seq_diff(ecr, val) < 0);
            if reported || eifel {
                sender.tally.spurious.add(p.bytes);
                sender.spurious_seen.add(p.bytes);
                return false;
            }
            match &mut p.checked {
                None if first_cover => p.checked = Some(KEEP_CHECKED_ACKS),
                Some(0) => return false,
                Some(left) if advanced => *left -= 1,
                _ => {}
            }
            true
        });
    }
}

/// (side `me`, the other side) of a pair, both mutable.
fn pair(sides: &mut [SideHealth; 2], me: usize) -> (&mut SideHealth, &mut SideHealth) {
    let [a, b] = sides;
    if me == 0 {
        (a, b)
    } else {
        (b, a)
    }
}

/// Remove [seq, end) from the holes, in place; the bytes of it that lay in one.
fn fill_holes(holes: &mut Vec<(u32, u32)>, seq: u32, end: u32) -> u32 {
    let mut filled = 0u32;
    let mut rest = None; // the far part of a hole the segment lies strictly inside
    holes.retain_mut(|(lo, hi)| {
        // the overlap of [lo, hi) and [seq, end), in distances from lo
        let (left, width) = (*lo, seq_diff(*hi, *lo));
        let start = seq_diff(seq, left).max(0);
        let stop = seq_diff(end, left).min(width);
        if start >= stop {
            return true;
        }
        filled = filled.saturating_add((stop - start) as u32);
        if stop < width {
            if start > 0 {
                rest = Some((left.wrapping_add(stop as u32), *hi));
            } else {
                *lo = left.wrapping_add(stop as u32);
                return true;
            }
        }
        *hi = left.wrapping_add(start as u32);
        start > 0
    });
    if let Some(far) = rest {
        holes.push(far);
    }
    filled
}

impl Analyzer for HealthAnalyzer {
    #[inline(always)] // see Analyzers::on
    fn on_event(&mut self, event: &ConnEvent<'_>) {
        if let ConnEvent::StreamGap { role, length, .. } = *event {
            // acknowledged, never seen: lost before the capture point (or by it)
            let side = &mut self.state().sides[role.index()];
            side.tally.lost_before_capture.add(length);
        }
    }

    fn finish(&mut self, record: &mut ConnectionRecord, how: &Finish) {
        let Some(st) = self.state.as_deref_mut() else {
            return;
        };
        let end_ns = how.last_ns;
        let mut stalled = false;
        let sides = st.sides.each_mut().map(|side| {
            if let Some(since) = side.zero_since.take() {
                close_zero_window(side, since, end_ns);
                stalled = true;
            }
            let mut tally = side.tally;
            tally.lost_after_capture = Tally {
                segments: side.seen_twice.segments - side.spurious_seen.segments,
                bytes: side.seen_twice.bytes - side.spurious_seen.bytes,
            };
            side.zero.stall_ms = ns_to_ms(side.stall_ns);
            side.zero.longest_ms = ns_to_ms(side.longest_ns);
            (tally, side.zero)
        });
        let [(c, cz), (s, sz)] = sides;
        record.retransmissions = PerSide::new(c, s);
        record.zero_window = PerSide::new(cz, sz);
        if stalled && record.outcome == Outcome::Open {
            record.outcome = Outcome::Stalled;
        }
    }
}

/// A non-RST segment as the uncommon path reads it: `HealthAnalyzer::segment`'s arguments
/// (the core calls it directly, after processing the segment's ACK field and before its
/// payload: the verdict goes to the segment trace, and the other analyzers' `Segment`
/// event stays small).
#[derive(Clone, Copy, Debug)]
struct Seg<'a> {
    /// The sender (`Role::index`).
    me: usize,
    ts_ns: i64,
    flags: u16,
    seq: u32,
    ack: u32,
    payload_len: u32,
    /// The sender's SND.NXT before the segment.
    snd_nxt: Option<u32>,
    /// Its ACK covers payload of the peer's that the capture never saw.
    ack_unseen: bool,
    /// The segment's (unscaled) window, and the one the sender advertised before it.
    window: u16,
    window_before: i32,
    /// The window the peer last advertised (-1: none yet).
    peer_window: i32,
    options: OptionBytes<'a>,
}

/// A zero-window period of `side` ends at `end_ns`.
fn close_zero_window(side: &mut SideHealth, since: i64, end_ns: i64) {
    let stall = (end_ns - since).max(0);
    side.stall_ns = side.stall_ns.saturating_add(stall);
    side.longest_ns = side.longest_ns.max(stall);
}

impl HealthAnalyzer {
    /// One segment (the fields of `Seg`, apart: the common case reads few of them); its
    /// verdict (`verdict` bits).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        me: usize,
        ts_ns: i64,
        flags: u16,
        seq: u32,
        ack: u32,
        payload_len: u32,
        snd_nxt: Option<u32>,
        ack_unseen: bool,
        window: u16,
        window_before: i32,
        peer_window: i32,
        options: OptionBytes<'_>,
    ) -> u16 {
        // the common case: in order, not a duplicate ACK, both windows open, and nothing
        // in the box this segment could change (`HealthState::quiet`)
        if snd_nxt == Some(seq)
            && flags & (ACK | SYN) == ACK
            && self.seen & (1 << me) != 0
            && (payload_len != 0 || ack != self.last_ack[me])
            && window != 0
            && peer_window != 0
            && !ack_unseen
            && self.state.as_deref().is_none_or(|st| st.quiet(me))
        {
            self.last_ack[me] = ack;
            return 0;
        }
        self.uncommon(&Seg {
            me,
            ts_ns,
            flags,
            seq,
            ack,
            payload_len,
            snd_nxt,
            ack_unseen,
            window,
            window_before,
            peer_window,
            options,
        })
    }

    /// The verdict on a segment off the common path (kept out of the segment path's body).
    #[inline(never)]
    fn uncommon(&mut self, s: &Seg<'_>) -> u16 {
        let (me, peer) = (s.me, 1 - s.me);
        let syn = s.flags & SYN != 0;
        let fin = s.flags & FIN != 0;
        let mut v = 0;

        // probes: one below SND.NXT with at most one byte (RFC 1122 4.2.3.6 keep-alive, or
        // Linux's zero-window probe), or one new byte into a shut window (BSD, Windows)
        let mut probe = 0;
        if let Some(nxt) = s.snd_nxt {
            if !syn && !fin && s.payload_len <= 1 {
                let below = s.seq == nxt.wrapping_sub(1);
                if s.peer_window == 0 && (below || (s.payload_len == 1 && s.seq == nxt)) {
                    probe = verdict::ZERO_WINDOW_PROBE;
                } else if below {
                    probe = verdict::KEEP_ALIVE;
                }
            }
        }
        if probe != 0 || self.state.is_some() {
            let st = self.state();
            let (sender, receiver) = pair(&mut st.sides, me);
            sender.probed = probe != 0;
            if probe == verdict::ZERO_WINDOW_PROBE {
                sender.tally.window_probe.add(s.payload_len);
                receiver.zero.probes += 1;
            } else if probe == verdict::KEEP_ALIVE {
                sender.tally.keepalive.add(s.payload_len);
            }
        }
        v |= probe;

        // the ACK: duplicate (Wireshark's rule: nothing but the same ACK, window and SND.NXT
        // again, not answering a probe), beyond what was seen, evidence on retransmissions
        if s.flags & ACK != 0 {
            let seen_ack = self.seen & (1 << me) != 0;
            let peer_probed = self.state.as_ref().is_some_and(|st| st.sides[peer].probed);
            let duplicate = seen_ack
                && s.ack == self.last_ack[me]
                && s.payload_len == 0
                && !syn
                && !fin
                && s.window != 0
                && i32::from(s.window) == s.window_before
                && s.snd_nxt == Some(s.seq)
                && !peer_probed;
            if duplicate {
                v |= verdict::DUPLICATE_ACK;
            }
            if s.ack_unseen {
                v |= verdict::ACK_LOST_SEGMENT;
            }
            if duplicate || self.state.is_some() {
                self.state();
                let advanced = !seen_ack || seq_after(s.ack, self.last_ack[me]);
                self.boxed_ack(me, s.ts_ns, s.ack, advanced, duplicate, s.options.bytes());
            }
            self.last_ack[me] = s.ack;
            self.seen |= 1 << me;
        }

        // zero windows this side advertises (a SYN's window opens nothing yet)
        if !syn {
            if s.window == 0 {
                if !fin {
                    v |= verdict::ZERO_WINDOW;
                }
                let side = &mut self.state().sides[me];
                if side.zero_since.is_none() {
                    side.zero_since = Some(s.ts_ns);
                    side.zero.periods += 1;
                }
            } else if let Some(st) = self.state.as_deref_mut() {
                let side = &mut st.sides[me];
                if let Some(since) = side.zero_since.take() {
                    close_zero_window(side, since, s.ts_ns);
                }
            }
        }

        let Some(nxt) = s.snd_nxt else {
            return v;
        };
        // a hole: the capture missed what the sender sent before this segment
        if seq_after(s.seq, nxt) {
            v |= verdict::LOST_SEGMENT;
            let holes = &mut self.state().sides[me].holes;
            if holes.len() >= MAX_KEPT {
                holes.remove(0);
            }
            holes.push((nxt, s.seq));
            return v;
        }
        // sequence space sent before (a SYN/ACK after our own SYN opens simultaneously);
        // one byte below SND.NXT and more is a probe's byte sent with new data
        if syn {
            let bit = if s.flags & ACK != 0 { 16 } else { 4 } << me;
            let again = self.seen & bit != 0;
            self.seen |= bit;
            if again && seq_diff(s.seq, nxt) < 0 {
                let side = &mut self.state().sides[me];
                side.tally.rto.add(s.payload_len);
                return v | verdict::RETRANSMISSION | verdict::RTO;
            }
            return v;
        }
        let space = s.payload_len + u32::from(fin);
        if space == 0 || probe != 0 || seq_diff(s.seq, nxt) >= 0 {
            return v;
        }
        if s.payload_len > 1 && s.seq == nxt.wrapping_sub(1) {
            return v;
        }
        let end = s.seq.wrapping_add(space);
        v | self.retransmission(
            me,
            s.ts_ns,
            s.seq,
            end,
            s.payload_len,
            nxt,
            s.options.bytes(),
        )
    }
}

#[cfg(test)]
mod tests;
