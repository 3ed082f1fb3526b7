//! Hand-built frames for each link type and each skip reason, with exact values.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::*;
use crate::sources::{Frame, FrameBatch, FramePlace, SourceStats};

const V4_SRC: [u8; 4] = [10, 0, 0, 1];
const V4_DST: [u8; 4] = [192, 168, 1, 2];
const MAPPED_SRC: u128 = 0xFFFF_0A00_0001;
const MAPPED_DST: u128 = 0xFFFF_C0A8_0102;
const V6_SRC: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0001;
const V6_DST: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0002;

/// A TCP header with `options` (a multiple of 4 bytes) and data offset byte `offset_byte`
/// (None: the true length, NS clear).
fn tcp_with(options: &[u8], offset_byte: Option<u8>, flags: u8) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&1234u16.to_be_bytes());
    h.extend_from_slice(&80u16.to_be_bytes());
    h.extend_from_slice(&0x0102_0304u32.to_be_bytes());
    h.extend_from_slice(&0xA0B0_C0D0u32.to_be_bytes());
    h.push(offset_byte.unwrap_or((((20 + options.len()) / 4) as u8) << 4));
    h.push(flags);
    h.extend_from_slice(&65535u16.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    h.extend_from_slice(options);
    h
}

fn tcp(payload: &[u8]) -> Vec<u8> {
    let mut t = tcp_with(&[], None, (SYN | ACK) as u8);
    t.extend_from_slice(payload);
    t
}

/// An IPv4 header (20 bytes + `options`) before `payload`; `total` None: the true length.
fn ipv4_with(proto: u8, options: &[u8], total: Option<u16>, frag: u16, payload: &[u8]) -> Vec<u8> {
    let hlen = 20 + options.len();
    let total = total.unwrap_or((hlen + payload.len()) as u16);
    let mut p = vec![0x40 | (hlen / 4) as u8, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 1]);
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&V4_SRC);
    p.extend_from_slice(&V4_DST);
    p.extend_from_slice(options);
    p.extend_from_slice(payload);
    p
}

fn ipv4(payload: &[u8]) -> Vec<u8> {
    ipv4_with(6, &[], None, 0x4000, payload)
}

/// An IPv6 header before `rest` (extension headers and payload); `plen` None: the true one.
fn ipv6_with(next: u8, plen: Option<u16>, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&plen.unwrap_or(rest.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&V6_SRC.to_be_bytes());
    p.extend_from_slice(&V6_DST.to_be_bytes());
    p.extend_from_slice(rest);
    p
}

fn ipv6(payload: &[u8]) -> Vec<u8> {
    ipv6_with(6, None, payload)
}

fn ethernet(tags: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0xAA; 12];
    for tpid in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&[0x00, 0x05]); // the TCI of VLAN 5
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn prefixed(prefix: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut f = prefix.to_vec();
    f.extend_from_slice(payload);
    f
}

struct Decoded {
    segments: Vec<Segment>,
    skipped: BTreeMap<String, u64>,
    unsupported: BTreeSet<u32>,
}

/// Decode frames laid out back to back after `lead` bytes, followed by `slack` bytes of 0xEE;
/// each frame is (linktype, bytes, wirelen).
fn decode_with(frames: &[(u32, Vec<u8>, u32)], lead: usize, slack: usize) -> Decoded {
    let mut data = vec![0xEE; lead];
    let mut list = Vec::new();
    for (i, (linktype, bytes, wirelen)) in frames.iter().enumerate() {
        list.push(Frame {
            ts_ns: 1_000 + i as i64,
            offset: data.len(),
            caplen: bytes.len() as u32,
            wirelen: *wirelen,
            linktype: *linktype,
        });
        data.extend_from_slice(bytes);
    }
    data.extend_from_slice(&vec![0xEE; slack]);
    let batch = FrameBatch {
        data: Arc::new(data),
        frames: list,
        ..FrameBatch::default()
    };
    let mut stats = SourceStats::default();
    let mut unsupported = BTreeSet::new();
    let mut segments = Vec::new();
    decode(&batch, &mut stats, &mut unsupported, &mut segments);
    Decoded {
        segments,
        skipped: stats.skipped,
        unsupported,
    }
}

fn decode_frames(frames: &[(u32, Vec<u8>)]) -> Decoded {
    let frames: Vec<_> = frames
        .iter()
        .map(|(l, b)| (*l, b.clone(), b.len() as u32))
        .collect();
    decode_with(&frames, 0, 0)
}

fn only(frame: Vec<u8>, linktype: u32) -> Segment {
    let d = decode_frames(&[(linktype, frame)]);
    assert!(d.skipped.is_empty(), "{:?}", d.skipped);
    assert_eq!(d.segments.len(), 1);
    d.segments[0]
}

fn skips(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// The reason a single frame is skipped for.
fn reason(linktype: u32, frame: Vec<u8>) -> String {
    let d = decode_frames(&[(linktype, frame)]);
    assert!(d.segments.is_empty());
    assert_eq!(d.skipped.len(), 1, "{:?}", d.skipped);
    let (k, v) = d.skipped.into_iter().next().unwrap();
    assert_eq!(v, 1);
    k
}

#[test]
fn ethernet_ipv4_every_field() {
    let d = decode_with(
        &[(ETHERNET, ethernet(&[], 0x0800, &ipv4(&tcp(b"hello"))), 59)],
        7,
        0,
    );
    assert!(d.skipped.is_empty());
    assert_eq!(
        d.segments,
        vec![Segment {
            ts_ns: 1_000,
            src: MAPPED_SRC,
            dst: MAPPED_DST,
            sport: 1234,
            dport: 80,
            seq: 0x0102_0304,
            ack: 0xA0B0_C0D0,
            flags: SYN | ACK,
            window: 65535,
            tcp_off: 7 + 14 + 20,
            tcp_hlen: 20,
            opt_cap: 0,
            payload_off: 7 + 14 + 40,
            payload_len: 5,
            payload_cap: 5,
            frame_index: 0,
            ip_len: 45,
            tunnel: 0,
            ip_id: Some(1),
            short_frame: false,
        }]
    );
}

#[test]
fn ipv4_options_and_tcp_options() {
    let mut t = tcp_with(&[2, 4, 5, 0xB4, 1, 1, 1, 0], None, SYN as u8);
    t.extend_from_slice(b"xyz");
    let s = only(ipv4_with(6, &[1, 1, 1, 1], None, 0, &t), RAW);
    assert_eq!((s.tcp_off, s.tcp_hlen, s.opt_cap), (24, 28, 8));
    assert_eq!(
        (s.payload_off, s.payload_len, s.payload_cap, s.ip_len),
        (52, 3, 3, 55)
    );
    assert_eq!(s.flags, SYN);
}

#[test]
fn ns_flag_is_bit_8() {
    let t = tcp_with(&[], Some(0x51), (FIN | PSH | URG) as u8);
    let s = only(ipv4(&t), IPV4);
    assert_eq!(s.flags, NS | FIN | PSH | URG);
    assert_eq!(s.tcp_hlen, 20);
}

#[test]
fn ipv6_every_field() {
    let s = only(ethernet(&[], 0x86DD, &ipv6(&tcp(b"abcdef"))), ETHERNET);
    assert_eq!((s.src, s.dst), (V6_SRC, V6_DST));
    assert_eq!(
        (s.sport, s.dport, s.seq, s.ack),
        (1234, 80, 0x0102_0304, 0xA0B0_C0D0)
    );
    assert_eq!((s.tcp_off, s.tcp_hlen, s.opt_cap), (54, 20, 0));
    assert_eq!(
        (s.payload_off, s.payload_len, s.payload_cap, s.ip_len),
        (74, 6, 6, 66)
    );
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let mut rest = Vec::new();
    rest.extend_from_slice(&[43, 0, 0, 0, 0, 0, 0, 0]); // hop-by-hop: 8 bytes
    rest.extend_from_slice(&[60, 1, 0, 0, 0, 0, 0, 0]); // routing: 16 bytes
    rest.extend_from_slice(&[0; 8]);
    rest.extend_from_slice(&[51, 0, 0, 0, 0, 0, 0, 0]); // destination options: 8 bytes
    rest.extend_from_slice(&[44, 1, 0, 0, 0, 0, 0, 0]); // AH: (1 + 2) * 4 = 12 bytes
    rest.extend_from_slice(&[0; 4]);
    rest.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 7]); // atomic fragment: 8 bytes
    rest.extend_from_slice(&tcp(b"zz"));
    let s = only(ipv6_with(0, None, &rest), IPV6);
    assert_eq!(s.tcp_off, 40 + 52);
    assert_eq!(
        (s.payload_len, s.payload_cap, s.ip_len),
        (2, 2, 40 + 52 + 22)
    );
}

#[test]
fn ipv6_fragments_and_long_chains() {
    let fragment = |field: u16| {
        let mut rest = vec![6, 0];
        rest.extend_from_slice(&field.to_be_bytes());
        rest.extend_from_slice(&[0, 0, 0, 9]);
        rest.extend_from_slice(&tcp(b""));
        ipv6_with(44, None, &rest)
    };
    assert_eq!(reason(RAW, fragment(0x0001)), "ip_fragment"); // M flag
    assert_eq!(reason(RAW, fragment(0x0008)), "ip_fragment"); // offset 1
                                                              // Reserved bits only: an atomic fragment (a whole datagram), decoded
    assert_eq!(only(fragment(0x0006), RAW).tcp_off, 48);
}

#[test]
fn ipv6_chain_limits() {
    // Nine hop-by-hop headers: the walk stops after eight, on a header that is not TCP
    let mut rest = Vec::new();
    for _ in 0..8 {
        rest.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    }
    rest.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]);
    rest.extend_from_slice(&tcp(b""));
    assert_eq!(reason(RAW, ipv6_with(0, None, &rest)), "not_tcp");
    // Eight are followed
    let s = only(ipv6_with(0, None, &rest[8..]), RAW);
    assert_eq!(s.tcp_off, 40 + 64);
    // An extension header cut by the frame's end is not followed: not TCP
    assert_eq!(
        reason(RAW, ipv6_with(0, None, &[6, 0, 0, 0, 0, 0, 0])),
        "not_tcp"
    );
    // A fragment header cut by the frame's end is not looked at either
    assert_eq!(reason(RAW, ipv6_with(44, None, &[6, 0, 0, 1])), "not_tcp");
    // A header length pointing past the frame: the TCP header is missing
    let mut long = vec![6, 200, 0, 0, 0, 0, 0, 0];
    long.extend_from_slice(&tcp(b""));
    assert_eq!(
        reason(RAW, ipv6_with(60, None, &long)),
        "truncated_tcp_header"
    );
    // Fragment before fragment: still a fragment whatever follows
    let mut two = vec![44, 0, 0, 1, 0, 0, 0, 0];
    two.extend_from_slice(&[17, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(reason(RAW, ipv6_with(44, None, &two)), "ip_fragment");
    assert_eq!(reason(RAW, ipv6_with(17, None, &[0; 8])), "not_tcp");
}

#[test]
fn length_zero_trusts_the_capture() {
    // IPv4 total length 0 (TSO on the sending host)
    let s = only(
        ethernet(
            &[],
            0x0800,
            &ipv4_with(6, &[], Some(0), 0, &tcp(&[7; 3000])),
        ),
        1,
    );
    assert_eq!(
        (s.payload_len, s.payload_cap, s.ip_len),
        (3000, 3000, 3020 + 20)
    );
    // IPv6 payload length 0 (jumbogram or TSO)
    let s = only(ipv6_with(6, Some(0), &tcp(&[7; 100])), RAW);
    assert_eq!((s.payload_len, s.payload_cap, s.ip_len), (100, 100, 160));
}

#[test]
fn snaplen_cut_clips_options_and_payload() {
    let mut t = tcp_with(&[1; 12], None, ACK as u8);
    t.extend_from_slice(&[9; 100]);
    let frame = ethernet(&[], 0x0800, &ipv4(&t));
    let wire = frame.len() as u32;
    // Cut inside the payload, inside the options, and right after the fixed TCP header
    let cuts = [14 + 20 + 32 + 10, 14 + 20 + 25, 14 + 20 + 20];
    let frames: Vec<_> = cuts
        .iter()
        .map(|&cut| (ETHERNET, frame[..cut].to_vec(), wire))
        .collect();
    let d = decode_with(&frames, 0, 0);
    assert_eq!(d.skipped, skips(&[("snaplen_cut", 3)]));
    let got: Vec<_> = d
        .segments
        .iter()
        .map(|s| (s.opt_cap, s.payload_len, s.payload_cap, s.ip_len))
        .collect();
    assert_eq!(
        got,
        vec![(12, 100, 10, 152), (5, 100, 0, 152), (0, 100, 0, 152)]
    );
    // A cut at the link-layer slack (Ethernet padding) is not a cut of the segment, but it
    // is still counted: the frame was cut
    let d = decode_with(&[(ETHERNET, frame.clone(), wire + 4)], 0, 0);
    assert_eq!(d.skipped, skips(&[("snaplen_cut", 1)]));
    assert_eq!(d.segments[0].payload_cap, 100);
}

#[test]
fn a_frame_shorter_than_its_ip_length_counts_the_payload_it_holds() {
    let mut t = tcp_with(&[], None, ACK as u8);
    t.extend_from_slice(&[9; 100]);
    let frame = ethernet(&[], 0x0800, &ipv4(&t));
    // the last 50 bytes missing, and the frame says it was whole on the wire
    let short = frame[..frame.len() - 50].to_vec();
    let held = short.len() as u32;
    // the same frame cut by a snap length: the 50 bytes were on the wire
    let d = decode_with(
        &[
            (ETHERNET, short.clone(), held),
            (ETHERNET, short.clone(), held + 50),
        ],
        0,
        0,
    );
    assert_eq!(d.skipped, skips(&[("short_frame", 1), ("snaplen_cut", 1)]));
    let got: Vec<_> = d
        .segments
        .iter()
        .map(|s| (s.payload_len, s.payload_cap, s.ip_len, s.short_frame))
        .collect();
    assert_eq!(got, vec![(50, 50, 140, true), (100, 50, 140, false)]);
    // cut by a snap length and shorter on the wire too: what the wire held, 30 bytes
    let d = decode_with(
        &[(ETHERNET, short[..short.len() - 20].to_vec(), held)],
        0,
        0,
    );
    assert_eq!(d.skipped, skips(&[("short_frame", 1), ("snaplen_cut", 1)]));
    let s = d.segments[0];
    assert_eq!(
        (s.payload_len, s.payload_cap, s.short_frame),
        (50, 30, true)
    );
    // shorter than even its TCP header: skipped as before, not a short frame
    let d = decode_with(&[(ETHERNET, frame[..14 + 20 + 10].to_vec(), 44)], 0, 0);
    assert_eq!(d.skipped, skips(&[("truncated_tcp_header", 1)]));
}

#[test]
fn ethernet_padding_is_not_payload() {
    let mut frame = ethernet(&[], 0x0800, &ipv4(&tcp(b"")));
    frame.extend_from_slice(&[0; 6]); // padded to the 60-byte minimum
    let s = only(frame, ETHERNET);
    assert_eq!((s.payload_len, s.payload_cap, s.ip_len), (0, 0, 40));
}

#[test]
fn vlan_tags() {
    let packet = ipv4(&tcp(b"v"));
    for tags in [&[0x8100][..], &[0x88A8, 0x8100], &[0x9100, 0x88A8, 0x8100]] {
        let s = only(ethernet(tags, 0x0800, &packet), ETHERNET);
        assert_eq!(s.tcp_off, 14 + 4 * tags.len() + 20);
    }
    // Tags stack to any depth the layer-2.5 walk allows
    let four = ethernet(&[0x8100; 4], 0x0800, &packet);
    assert_eq!(only(four, ETHERNET).tcp_off, 14 + 16 + 20);
    // A tag cut by the frame's end is not read either
    let mut cut = vec![0xAA; 12];
    cut.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x08]);
    assert_eq!(reason(ETHERNET, cut), "not_ip");
    // A tag right at the end: IPv4 with no header
    assert_eq!(
        reason(ETHERNET, ethernet(&[0x8100], 0x0800, &[])),
        "truncated_ip_header"
    );
}

#[test]
fn every_link_type() {
    let v4 = ipv4(&tcp(b"p"));
    let v6 = ipv6(&tcp(b"p"));
    let mut sll = vec![0; 14];
    sll.extend_from_slice(&[0x08, 0x00]);
    let mut sll2 = vec![0x86, 0xDD];
    sll2.extend_from_slice(&[0; 18]);
    let cases = [
        (ETHERNET, ethernet(&[], 0x0800, &v4), 14),
        (SLL, prefixed(&sll, &v4), 16),
        (SLL2, prefixed(&sll2, &v6), 20),
        (NULL, prefixed(&[2, 0, 0, 0], &v4), 4),
        (NULL, prefixed(&[0, 0, 0, 2], &v4), 4),
        (NULL, prefixed(&[24, 0, 0, 0], &v6), 4),
        (NULL, prefixed(&[0, 0, 0, 28], &v6), 4),
        (NULL, prefixed(&[30, 0, 0, 0], &v6), 4),
        (LOOP, prefixed(&[0, 0, 0, 2], &v4), 4),
        (LOOP, prefixed(&[0, 0, 0, 10], &v6), 4),
        (RAW, v4.clone(), 0),
        (RAW_OPENBSD, v6.clone(), 0),
        (RAW_BSD, v4.clone(), 0),
        // 228 and 229 also go by the version nibble
        (IPV4, v6.clone(), 0),
        (IPV6, v4.clone(), 0),
    ];
    for (linktype, frame, l3) in cases {
        let v6 = frame.get(l3).is_some_and(|b| b >> 4 == 6);
        let s = only(frame, linktype);
        assert_eq!(s.tcp_off, l3 + if v6 { 40 } else { 20 }, "{linktype}");
        assert_eq!((s.payload_len, s.payload_cap), (1, 1), "{linktype}");
        let src = if v6 { V6_SRC } else { MAPPED_SRC };
        assert_eq!(s.src, src, "{linktype}");
    }
}

#[test]
fn link_layer_skips() {
    let v4 = ipv4(&tcp(b""));
    // LOOP is big-endian only
    assert_eq!(reason(LOOP, prefixed(&[2, 0, 0, 0], &v4)), "not_ip");
    // Unknown address families and ethertypes
    assert_eq!(reason(NULL, prefixed(&[7, 0, 0, 0], &v4)), "not_ip");
    assert_eq!(reason(ETHERNET, ethernet(&[], 0x0806, &v4)), "not_ip");
    assert_eq!(reason(RAW, prefixed(&[0x50], &v4)), "not_ip");
    // Too short for the link header: checked before anything else
    for (linktype, need) in [(ETHERNET, 14), (SLL, 16), (SLL2, 20), (NULL, 4), (LOOP, 4)] {
        assert_eq!(reason(linktype, vec![0; need - 1]), "truncated_link_header");
        assert_eq!(reason(linktype, vec![0; need]), "not_ip");
    }
    assert_eq!(reason(RAW, vec![]), "truncated_link_header");
    assert_eq!(reason(IPV6, vec![]), "truncated_link_header");
    // Exactly the link header: an IP header of no bytes
    assert_eq!(reason(NULL, vec![2, 0, 0, 0]), "truncated_ip_header");
}

#[test]
fn unsupported_link_types_are_collected() {
    let frame = ipv4(&tcp(b""));
    let d = decode_frames(&[
        (147, frame.clone()),
        (RAW, frame.clone()),
        (106, vec![]),
        (147, frame),
    ]);
    assert_eq!(d.segments.len(), 1);
    assert_eq!(d.segments[0].frame_index, 1);
    assert_eq!(d.skipped, skips(&[("unsupported_linktype", 3)]));
    assert_eq!(d.unsupported, BTreeSet::from([106, 147]));
}

#[test]
fn ipv4_skips() {
    let t = tcp(b"");
    assert_eq!(reason(RAW, ipv4(&t)[..19].to_vec()), "truncated_ip_header");
    let mut v5 = ipv4(&t);
    v5[0] = 0x55;
    // IPv4 by the link layer, another version in the header
    assert_eq!(
        reason(ETHERNET, ethernet(&[], 0x0800, &v5)),
        "bad_ip_header"
    );
    let mut ihl4 = ipv4(&t);
    ihl4[0] = 0x44;
    assert_eq!(reason(RAW, ihl4), "bad_ip_header");
    assert_eq!(
        reason(RAW, ipv4_with(6, &[], Some(19), 0, &t)),
        "bad_ip_header"
    );
    // The total below the header is checked before the fragment bits
    assert_eq!(
        reason(RAW, ipv4_with(6, &[0; 4], Some(20), 0x2000, &t)),
        "bad_ip_header"
    );
    assert_eq!(
        reason(RAW, ipv4_with(6, &[], None, 0x2000, &t)),
        "ip_fragment"
    );
    assert_eq!(
        reason(RAW, ipv4_with(6, &[], None, 0x0001, &t)),
        "ip_fragment"
    );
    // Fragments before the protocol
    assert_eq!(
        reason(RAW, ipv4_with(17, &[], None, 0x00B9, &t)),
        "ip_fragment"
    );
    assert_eq!(reason(RAW, ipv4_with(17, &[], None, 0x4000, &t)), "not_tcp");
    assert_eq!(reason(RAW, ipv4_with(1, &[], None, 0x8000, &t)), "not_tcp");
    // The header length may point past the frame: no TCP header there
    let mut ihl15 = ipv4_with(6, &[], Some(0), 0, &t);
    ihl15[0] = 0x4F;
    assert_eq!(reason(RAW, ihl15), "truncated_tcp_header");
}

#[test]
fn ipv6_skips() {
    let t = tcp(b"");
    assert_eq!(reason(RAW, ipv6(&t)[..39].to_vec()), "truncated_ip_header");
    assert_eq!(
        reason(ETHERNET, ethernet(&[], 0x86DD, &ipv4(&t))),
        "bad_ip_header"
    );
    assert_eq!(reason(RAW, ipv6_with(17, None, &t)), "not_tcp");
}

#[test]
fn tcp_skips() {
    let header = tcp(b"");
    assert_eq!(reason(RAW, ipv4(&header[..19])), "truncated_tcp_header");
    assert_eq!(reason(RAW, ipv6(&header[..19])), "truncated_tcp_header");
    // Data offset below 5 words
    let low = tcp_with(&[], Some(0x40), 0);
    assert_eq!(reason(RAW, ipv4(&low)), "bad_tcp_header");
    // Data offset beyond the IP payload: the payload length would be negative
    let high = tcp_with(&[], Some(0x60), 0);
    assert_eq!(reason(RAW, ipv4(&high)), "bad_tcp_header");
    assert_eq!(reason(RAW, ipv6(&high)), "bad_tcp_header");
    // ... while an IP length beyond the frame is a short frame, its options cut
    let d = decode_frames(&[(RAW, ipv4_with(6, &[], Some(44), 0, &high))]);
    assert_eq!(d.skipped, skips(&[("short_frame", 1)]));
    let s = d.segments[0];
    assert_eq!(
        (
            s.tcp_hlen,
            s.opt_cap,
            s.payload_len,
            s.payload_cap,
            s.short_frame
        ),
        (24, 0, 0, 0, true)
    );
    // An IPv6 payload length shorter than the extension headers
    let mut rest = vec![6, 1, 0, 0, 0, 0, 0, 0];
    rest.extend_from_slice(&[0; 8]);
    rest.extend_from_slice(&header);
    assert_eq!(reason(RAW, ipv6_with(0, Some(30), &rest)), "bad_tcp_header");
}

#[test]
fn counts_add_up_over_a_batch() {
    let t = tcp(b"data");
    let frames = vec![
        (ETHERNET, ethernet(&[], 0x0800, &ipv4(&t)), 58),
        (ETHERNET, ethernet(&[], 0x0806, &[0; 28]), 42),
        (ETHERNET, vec![0; 10], 10),
        (RAW, ipv4_with(17, &[], None, 0, &[0; 8]), 28),
        (RAW, ipv6(&t), 100),
        (999, vec![1, 2, 3], 3),
        (RAW, ipv4_with(6, &[], None, 0x2000, &t), 44),
    ];
    let d = decode_with(&frames, 0, 3);
    let expected = skips(&[
        ("ip_fragment", 1),
        ("not_ip", 1),
        ("not_tcp", 1),
        ("snaplen_cut", 1),
        ("truncated_link_header", 1),
        ("unsupported_linktype", 1),
    ]);
    assert_eq!(d.skipped, expected);
    let indexes: Vec<_> = d.segments.iter().map(|s| s.frame_index).collect();
    assert_eq!(indexes, vec![0, 4]);
    assert_eq!(d.segments[1].ts_ns, 1_004);
}

#[test]
fn slack_after_a_frame_never_matters() {
    let mut t = tcp_with(&[1; 8], None, ACK as u8);
    t.extend_from_slice(&[5; 40]);
    let full = ethernet(
        &[0x8100],
        0x86DD,
        &ipv6_with(0, Some(0), &{
            let mut r = vec![6, 0, 0, 0, 0, 0, 0, 0];
            r.extend_from_slice(&t);
            r
        }),
    );
    // Every cut of the frame, at the end of the buffer and followed by slack
    for cut in 0..=full.len() {
        let frame = vec![(ETHERNET, full[..cut].to_vec(), full.len() as u32)];
        let bare = decode_with(&frame, 0, 0);
        let padded = decode_with(&frame, 0, 64);
        assert_eq!(bare.segments, padded.segments, "cut {cut}");
        assert_eq!(bare.skipped, padded.skipped, "cut {cut}");
    }
}

#[test]
fn a_frame_beyond_the_buffer_is_read_as_cut() {
    let frame = ipv4(&tcp(b"abc"));
    let batch = FrameBatch {
        data: Arc::new(frame[..30].to_vec()),
        frames: vec![Frame {
            ts_ns: 0,
            offset: 0,
            caplen: frame.len() as u32,
            wirelen: frame.len() as u32,
            linktype: RAW,
        }],
        ..FrameBatch::default()
    };
    let mut out = Vec::new();
    let mut stats = SourceStats::default();
    decode(&batch, &mut stats, &mut BTreeSet::new(), &mut out);
    assert!(out.is_empty());
    assert_eq!(stats.skipped("truncated_tcp_header"), 1);
}

#[test]
fn damage_warnings_as_in_python() {
    let kinds: Vec<_> = DAMAGE_WARNINGS.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        [
            "unsupported_linktype",
            "truncated_link_header",
            "truncated_ip_header",
            "bad_ip_header",
            "truncated_tcp_header",
            "bad_tcp_header",
            "truncated_tunnel_header",
            "bad_tunnel_header",
            "tunnel_too_deep",
            "tunnel_table_full",
            "snaplen_cut",
            "short_frame",
        ]
    );
    assert_eq!(
        DAMAGE_WARNINGS[0].1,
        "frame(s) of unsupported link type {linktypes} not decoded"
    );
}

#[test]
fn the_reasons_warned_about_are_the_damage_ones() {
    let damage: Vec<&str> = (Skip::ALL.iter())
        .filter(|s| s.is_damage())
        .map(|s| s.name())
        .collect();
    let warned: Vec<&str> = (DAMAGE_WARNINGS.iter())
        .map(|(k, _)| *k)
        .filter(|k| !matches!(*k, "snaplen_cut" | "short_frame"))
        .collect();
    assert_eq!(damage, warned);
}

/// A batch of raw IPv4 frames (`cut`: wire length beyond the bytes) as the file's frames
/// `before + 1 ...`, decoded into `stats`.
fn decode_as_file(frames: &[(Vec<u8>, bool)], before: u64, stats: &mut SourceStats) {
    let mut data = Vec::new();
    let mut list = Vec::new();
    for (bytes, cut) in frames {
        list.push(Frame {
            ts_ns: 0,
            offset: data.len(),
            caplen: bytes.len() as u32,
            wirelen: bytes.len() as u32 + if *cut { 10 } else { 0 },
            linktype: RAW,
        });
        data.extend_from_slice(bytes);
    }
    let batch = FrameBatch {
        data: Arc::new(data),
        frames: list,
        origin: crate::sources::Origin::File { file: 0, before },
    };
    decode(&batch, stats, &mut BTreeSet::new(), &mut Vec::new());
}

#[test]
fn the_first_frame_of_each_kind_of_damage_is_kept() {
    let good = ipv4(&tcp(b"abc"));
    let short_tcp = ipv4(&tcp(b""))[..30].to_vec();
    let short_ip = good[..12].to_vec();
    let place = |frame| FramePlace { file: 0, frame };
    let mut stats = SourceStats::default();
    decode_as_file(
        &[
            (good.clone(), false),
            (short_tcp.clone(), false),
            (good.clone(), true),
            (short_tcp.clone(), false),
            (good.clone(), true),
        ],
        0,
        &mut stats,
    );
    // a later batch of the file: its frames come after, and its first short IP header
    // is the run's first
    decode_as_file(
        &[(short_tcp, false), (good.clone(), true), (short_ip, false)],
        5,
        &mut stats,
    );
    let first: Vec<(&str, FramePlace)> =
        stats.first.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        first,
        [
            ("snaplen_cut", place(3)),
            ("truncated_ip_header", place(8)),
            ("truncated_tcp_header", place(2)),
        ]
    );
    assert_eq!(stats.skipped("truncated_tcp_header"), 3);
    assert_eq!(stats.skipped("snaplen_cut"), 3);
}
