//! What each side offered in its SYN or SYN/ACK: MSS (RFC 9293 section 3.7.1), window
//! scale and timestamps (RFC 7323), SACK permitted (RFC 2018), TCP Fast Open (RFC 7413:
//! a cookie request or a cookie, data on the SYN) and ECN (RFC 3168 section 6.1.1: ECE and
//! CWR on the SYN, ECE alone on the SYN/ACK).
//!
//! Whether a middlebox changed them can be told only where the same SYN was captured twice
//! (src/duplicates.rs: the same IPv4 ID, sequence number and flags, moments apart; the
//! checksum and window are left out of a SYN's fingerprint for this): on both sides of a
//! firewall clamping the MSS, or the two copies of a SPAN port. The options of the copy
//! that differ from the first are listed in `rewritten`. The two sides' SYNs are no such
//! evidence: each offers its own values, and they differ on most connections.

use super::{Analyzer, ConnEvent, Finish};
use crate::decode::{ACK, CWR, ECE};
use crate::model::{ConnectionRecord, PerSide, Role, SynOptions, Tfo};

const END: u8 = 0;
const NOP: u8 = 1;
const MSS: u8 = 2;
const WSCALE: u8 = 3;
const SACK_PERMITTED: u8 = 4;
const TIMESTAMPS: u8 = 8;
/// RFC 7413 section 4.1.1.
const FAST_OPEN: u8 = 34;
/// The experimental option before kind 34 was assigned (RFC 6994): magic 0xF989.
const EXPERIMENT: u8 = 254;
const FAST_OPEN_MAGIC: [u8; 2] = [0xF9, 0x89];

/// The options of a SYN or SYN/ACK from its TCP header at `tcp_off` (`opt_cap` option
/// bytes captured), its flags and its payload length. The first well-formed instance of
/// each option counts; a walk stops at END, at a malformed length or at the capture's end.
pub fn syn_options(
    data: &[u8],
    tcp_off: usize,
    opt_cap: u32,
    flags: u16,
    payload_len: u32,
) -> SynOptions {
    syn_offer(data, tcp_off, opt_cap, flags, payload_len).0
}

/// [`syn_options`] and the first well-formed timestamps option's (TSval, TSecr) (RFC 7323
/// section 3), in the one walk: the connection needs both of every SYN, and walked its
/// options twice for them (`connection::options` finds the same (TSval, TSecr): the same
/// walk, the same first instance).
pub fn syn_offer(
    data: &[u8],
    tcp_off: usize,
    opt_cap: u32,
    flags: u16,
    payload_len: u32,
) -> (SynOptions, Option<(u32, u32)>) {
    let ecn = if flags & ACK == 0 {
        flags & (ECE | CWR) == ECE | CWR
    } else {
        flags & (ECE | CWR) == ECE
    };
    let mut found = SynOptions {
        ecn,
        data_bytes: payload_len,
        ..SynOptions::default()
    };
    let mut stamp = None;
    let Some(mut pos) = tcp_off.checked_add(20) else {
        return (found, stamp);
    };
    let stop = pos.saturating_add(opt_cap as usize).min(data.len());
    if let Some((mss, shift, first_stamp)) = data.get(pos..stop).and_then(linux_layout) {
        // what the walk below finds in these bytes
        found.mss = Some(mss);
        found.sack_permitted = true;
        found.timestamps = true;
        found.wscale = Some(shift);
        return (found, Some(first_stamp));
    }
    while pos < stop {
        let kind = data[pos];
        if kind == END {
            break;
        }
        if kind == NOP {
            pos += 1;
            continue;
        }
        let size = match data.get(pos + 1) {
            Some(&size) if pos + 1 < stop && size >= 2 => usize::from(size),
            _ => break,
        };
        let Some(body) = data.get(pos + 2..pos + size).filter(|_| pos + size <= stop) else {
            break;
        };
        match (kind, body) {
            (MSS, &[a, b]) if found.mss.is_none() => found.mss = Some(u16::from_be_bytes([a, b])),
            (WSCALE, &[shift]) if found.wscale.is_none() => found.wscale = Some(shift),
            (SACK_PERMITTED, []) => found.sack_permitted = true,
            (TIMESTAMPS, &[v0, v1, v2, v3, e0, e1, e2, e3]) => {
                found.timestamps = true;
                let val = u32::from_be_bytes([v0, v1, v2, v3]);
                stamp.get_or_insert((val, u32::from_be_bytes([e0, e1, e2, e3])));
            }
            (FAST_OPEN, cookie) => found.tfo = Some(fast_open(cookie)),
            (EXPERIMENT, [m0, m1, cookie @ ..]) if [*m0, *m1] == FAST_OPEN_MAGIC => {
                found.tfo = Some(fast_open(cookie));
            }
            _ => {}
        }
        pos += size;
    }
    (found, stamp)
}

/// The 20 option bytes Linux writes on a SYN and on a SYN/ACK when both ends offer SACK
/// and timestamps (`tcp_options_write`: MSS, SACK permitted, timestamps, NOP, window
/// scale), read at their fixed offsets: (MSS, shift, (TSval, TSecr)), what `syn_offer`'s
/// walk finds in them. None for any other bytes: nearly every SYN of a capture walked
/// through ~5 options at ~45 instructions each.
fn linux_layout(options: &[u8]) -> Option<(u16, u8, (u32, u32))> {
    let &[MSS, 4, m0, m1, SACK_PERMITTED, 2, TIMESTAMPS, 10, v0, v1, v2, v3, e0, e1, e2, e3, NOP, WSCALE, 3, shift] =
        <&[u8; 20]>::try_from(options).ok()?
    else {
        return None;
    };
    let stamp = (
        u32::from_be_bytes([v0, v1, v2, v3]),
        u32::from_be_bytes([e0, e1, e2, e3]),
    );
    Some((u16::from_be_bytes([m0, m1]), shift, stamp))
}

/// An empty Fast Open option asks for a cookie; a longer one carries it.
fn fast_open(cookie: &[u8]) -> Tfo {
    if cookie.is_empty() {
        Tfo::Request
    } else {
        Tfo::Cookie
    }
}

/// The options each side's first SYN offered, and those a second capture of it changed.
/// Boxed: a connection has one pointer of room left (see connection.rs).
#[derive(Debug, Default)]
pub struct OptionsAnalyzer {
    sides: Option<Box<[Option<SynOptions>; 2]>>,
}

impl OptionsAnalyzer {
    /// Take the box of `old` (a connection that ended, its record made), emptied, if this
    /// one has none yet: every connection with a SYN made one. An empty box records as no
    /// box does (`finish` writes the two sides' `None`s, the record's default).
    pub fn reuse_box(&mut self, old: &mut OptionsAnalyzer) {
        if self.sides.is_none() {
            self.sides = old.sides.take().map(|mut sides| {
                *sides = [None, None];
                sides
            });
        }
    }

    /// A word of the boxed options, read ahead of the record (see `Connection::warm`).
    pub fn warm(&self) -> bool {
        self.sides.as_deref().is_some_and(|s| s[0].is_some())
    }
}

impl Analyzer for OptionsAnalyzer {
    #[inline(always)] // see Analyzers::on
    fn on_event(&mut self, event: &ConnEvent<'_>) {
        match *event {
            ConnEvent::Syn { role, options, .. } => {
                let sides = self.sides.get_or_insert_with(Box::default);
                sides[role.index()].get_or_insert(options);
            }
            ConnEvent::SynCopy { role, options, .. } => {
                let first = self.sides.as_mut().and_then(|s| s[role.index()].as_mut());
                if let Some(first) = first {
                    first.rewritten |= first.differences(&options);
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, record: &mut ConnectionRecord, _how: &Finish) {
        if let Some(sides) = self.sides.as_deref() {
            record.options = PerSide::new(sides[Role::Client.index()], sides[Role::Server.index()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::SYN;

    fn parse(options: &[u8], flags: u16) -> SynOptions {
        let mut data = vec![0u8; 20];
        data.extend_from_slice(options);
        syn_options(&data, 0, options.len() as u32, flags, 0)
    }

    /// The walk alone: `syn_offer` without its fixed-layout shortcut.
    fn walked(options: &[u8], flags: u16) -> (SynOptions, Option<(u32, u32)>) {
        let mut data = vec![0u8; 20];
        data.extend_from_slice(options);
        // a 21st option byte keeps the shortcut out; the walk stops at it (END)
        data.push(END);
        syn_offer(&data, 0, options.len() as u32 + 1, flags, 3)
    }

    #[test]
    fn the_linux_layout_reads_as_the_walk_does() {
        let linux = [
            2, 4, 5, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 3, 3, 7,
        ];
        let mut data = vec![0u8; 20];
        data.extend_from_slice(&linux);
        let fast = syn_offer(&data, 0, 20, SYN | ACK | ECE, 3);
        assert_eq!(fast, walked(&linux, SYN | ACK | ECE));
        assert_eq!(
            (fast.0.mss, fast.0.wscale, fast.1),
            (Some(1460), Some(7), Some((0x0102_0304, 0x0506_0708)))
        );
        assert!(fast.0.sack_permitted && fast.0.timestamps && fast.0.ecn);
        // every byte of the layout changed in turn, through every value: the same as the walk
        for at in 0..linux.len() {
            for value in 0..=255u8 {
                let mut options = linux;
                options[at] = value;
                let mut data = vec![0u8; 20];
                data.extend_from_slice(&options);
                let got = syn_offer(&data, 0, 20, SYN, 0);
                let mut want = walked(&options, SYN);
                want.0.data_bytes = 0;
                assert_eq!(got, want, "byte {at} = {value}");
            }
        }
        // cut by the capture (19 bytes): walked, the window scale lost
        let cut = syn_offer(&data[..39], 0, 20, SYN, 0).0;
        assert_eq!((cut.mss, cut.wscale), (Some(1460), None));
    }

    #[test]
    fn linux_syn_options() {
        // MSS 1460, SACK permitted, TS, NOP, WS 7
        let o = parse(
            &[
                2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 7, 0, 0, 0, 0, 1, 3, 3, 7,
            ],
            SYN | ECE | CWR,
        );
        assert_eq!(
            (o.mss, o.wscale, o.sack_permitted, o.timestamps),
            (Some(1460), Some(7), true, true)
        );
        assert_eq!((o.tfo, o.ecn, o.data_bytes), (None, true, 0));
        // ECE and CWR on a SYN/ACK: not ECN's answer (RFC 3168 section 6.1.1)
        assert!(!parse(&[], SYN | ACK | ECE | CWR).ecn);
        assert!(parse(&[], SYN | ACK | ECE).ecn);
    }

    #[test]
    fn fast_open_both_kinds_and_cut_options() {
        assert_eq!(parse(&[34, 2], SYN).tfo, Some(Tfo::Request));
        assert_eq!(
            parse(&[34, 10, 1, 2, 3, 4, 5, 6, 7, 8], SYN).tfo,
            Some(Tfo::Cookie)
        );
        assert_eq!(parse(&[254, 4, 0xF9, 0x89], SYN).tfo, Some(Tfo::Request));
        assert_eq!(parse(&[254, 4, 0xF9, 0x88], SYN).tfo, None);
        // cut inside the MSS option, or a zero length: nothing, no panic
        assert_eq!(parse(&[2, 4, 5], SYN).mss, None);
        assert_eq!(parse(&[3, 0, 7], SYN).wscale, None);
        let mut data = vec![0u8; 22];
        data[20] = 2;
        assert_eq!(syn_options(&data, 0, 40, SYN, 0).mss, None);
        assert_eq!(
            syn_options(&data, usize::MAX, 40, SYN, 0),
            SynOptions::default()
        );
    }

    #[test]
    fn one_walk_finds_what_the_connection_walk_finds() {
        // random option bytes, with the kinds and sizes that matter over-represented, cut
        // at every captured length: the same shift (clamped as the connection keeps it)
        // and the same first timestamps
        let mut state: u64 = 11;
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        let choices = [0u8, 1, 1, 2, 3, 3, 4, 8, 8, 10, 14, 15, 34, 254, 7];
        for _ in 0..20000 {
            let mut data = vec![0u8; 20];
            for _ in 0..next(24) {
                data.push(choices[next(choices.len() as u64) as usize]);
            }
            for cap in 0..=data.len() as u32 - 20 + 2 {
                let (offered, stamp) = syn_offer(&data, 0, cap, 0, 0);
                let (wscale, expected_stamp) = crate::connection::options(&data, 0, cap);
                assert_eq!(offered.wscale.map(|s| s.min(14)), wscale, "{data:?} {cap}");
                assert_eq!(stamp, expected_stamp, "{data:?} {cap}");
                assert_eq!(offered, syn_options(&data, 0, cap, 0, 0));
            }
        }
        let linux = [
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9, 1, 3, 3, 15,
        ];
        let mut data = vec![0u8; 20];
        data.extend_from_slice(&linux);
        let (offered, stamp) = syn_offer(&data, 0, 20, SYN, 0);
        assert_eq!((offered.wscale, stamp), (Some(15), Some((7, 9))));
    }

    #[test]
    fn a_second_capture_with_another_mss_is_rewritten() {
        let mut a = OptionsAnalyzer::default();
        let first = parse(&[2, 4, 5, 0xb4], SYN);
        let clamped = parse(&[2, 4, 5, 0x78], SYN);
        let role = Role::Client;
        a.on_event(&ConnEvent::Syn {
            role,
            ts_ns: 0,
            with_ack: false,
            stamp: None,
            options: first,
        });
        a.on_event(&ConnEvent::SynCopy {
            role,
            ts_ns: 1,
            with_ack: false,
            options: clamped,
        });
        let o = a.sides.as_deref().and_then(|s| s[0]).unwrap();
        assert_eq!((o.mss, o.rewritten_names()), (Some(1460), vec!["mss"]));
    }
}
