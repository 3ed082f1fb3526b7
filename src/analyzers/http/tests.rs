//! Tests of the HTTP/1.x framing parser and the reuse tracker (values from the Python
//! engine, tcptrace/analyzers/reuse.py).

use super::*;

const MS: i64 = 1_000_000;

/// Feeds (client, ts in ms, bytes) the way reassembly does.
fn feed(exchanges: &[(bool, i64, &[u8])]) -> AppTracker {
    let mut tracker = AppTracker::default();
    for &(client, ts_ms, data) in exchanges {
        tracker.data(client, ts_ms * MS, data.len() as u32, Some(data));
    }
    tracker
}

fn counts(tracker: &AppTracker) -> (Option<&'static str>, u64, u64) {
    let r = tracker.result();
    (r.protocol, r.requests, r.responses)
}

#[test]
fn chunked_and_content_length_bodies() {
    let t = feed(&[
        (true, 0, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"),
        (
            false,
            1,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        ),
        (false, 2, b"0\r\n\r\n"),
        (
            true,
            10,
            b"POST /b HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody",
        ),
        (
            false,
            11,
            b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
        ),
    ]);
    assert_eq!(counts(&t), (Some("http/1.1"), 2, 2));
    assert_eq!(t.result().idle_gaps_ms, vec![8.0]);
}

#[test]
fn head_and_304_have_no_body_and_100_continue_is_interim() {
    let t = feed(&[
        (true, 0, b"HEAD / HTTP/1.1\r\n\r\n"),
        (false, 1, b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"),
        (true, 2, b"GET / HTTP/1.1\r\nIf-None-Match: x\r\n\r\n"),
        (
            false,
            3,
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
        ),
        (
            true,
            4,
            b"PUT /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        ),
        (false, 5, b"HTTP/1.1 100 Continue\r\n\r\n"),
        (true, 6, b"abc"),
        (false, 7, b"HTTP/1.1 204 No Content\r\n\r\n"),
    ]);
    assert_eq!(counts(&t), (Some("http/1.1"), 3, 3));
}

#[test]
fn pipelined_requests_in_one_segment() {
    let responses = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".repeat(3);
    let t = feed(&[
        (
            true,
            0,
            b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n",
        ),
        (false, 1, &responses),
    ]);
    assert_eq!(counts(&t), (Some("http/1.1"), 3, 3));
}

#[test]
fn request_split_byte_by_byte_counts_once() {
    let request = b"GET /split HTTP/1.0\r\nHost: x\r\n\r\n";
    let pieces: Vec<(bool, i64, &[u8])> = (0..request.len())
        .map(|i| (true, i as i64, &request[i..i + 1]))
        .collect();
    let t = feed(&pieces);
    assert_eq!(counts(&t), (Some("http/1.0"), 1, 0));
}

#[test]
fn response_without_length_runs_until_close() {
    let mut response = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
    response.extend_from_slice(&[b'x'; 5000]);
    let t = feed(&[
        (true, 0, b"GET / HTTP/1.0\r\n\r\n"),
        (false, 1, &response),
        (false, 2, b"GET / HTTP/1.1\r\n\r\n"), // body bytes, not a new message
    ]);
    assert_eq!(counts(&t), (Some("http/1.0"), 1, 1));
    assert!(!t.wants(false));
}

#[test]
fn body_skipped_without_bytes() {
    let mut t = AppTracker::default();
    t.data(true, 0, 18, Some(b"GET / HTTP/1.1\r\n\r\n"));
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
    t.data(false, MS, head.len() as u32, Some(head));
    assert!(!t.wants(false)); // the body is skipped by length: no bytes needed
    t.data(false, 2 * MS, 100_000, None);
    assert!(t.wants(false));
    t.data(true, 3 * MS, 18, Some(b"GET / HTTP/1.1\r\n\r\n"));
    assert_eq!(counts(&t), (Some("http/1.1"), 2, 1));
    assert_eq!(t.result().idle_gaps_ms, vec![1.0]);
}

#[test]
fn other_protocols_count_turns() {
    let t = feed(&[
        (true, 0, b"\x16\x03\x01 hello"),
        (false, 5, b"\x16\x03\x03 server"),
        (true, 10, b"a"),
        (true, 11, b"b"),
        (false, 20, b"c"),
        (true, 50, b"d"),
    ]);
    assert_eq!(counts(&t), (None, 3, 2));
    assert_eq!(t.result().idle_gaps_ms, vec![5.0, 30.0]);
    assert!(t.parser(true).is_none() && !t.wants(true)); // parsers dropped
}

#[test]
fn server_speaking_first_is_not_http() {
    let t = feed(&[
        (false, 0, b"220 smtp ready\r\n"),
        (true, 1, b"GET / HTTP/1.1\r\n\r\n"),
    ]);
    assert_eq!(t.result().protocol, None);
}

#[test]
fn missing_first_request_bytes_is_not_http() {
    let mut t = AppTracker::default();
    t.data(true, 0, 18, None);
    t.data(true, MS, 18, Some(b"GET / HTTP/1.1\r\n\r\n"));
    assert_eq!(counts(&t), (None, 1, 0));
}

#[test]
fn word_that_is_not_a_request_line_is_not_http() {
    let t = feed(&[(true, 0, b"PING\n"), (false, 1, b"PONG\n")]);
    assert_eq!(counts(&t), (None, 1, 1));
}

#[test]
fn turn_gaps_are_rounded_as_python_rounds() {
    let mut t = AppTracker::default();
    t.data(true, 0, 1, Some(b"\x00"));
    t.data(false, 10, 1, Some(b"\x00"));
    t.data(true, 1_500_510, 1, Some(b"\x00")); // 1.5005 ms: 1.50049999... as a double
    t.data(false, 2_000_000, 1, Some(b"\x00"));
    t.data(true, 1_999_999, 1, Some(b"\x00")); // a step back: -0.001 ms
    t.data(false, 3_000_000, 1, Some(b"\x00"));
    t.data(true, 5_500_500, 1, Some(b"\x00")); // 2.5005 ms: 2.50050000... as a double
    assert_eq!(t.result().idle_gaps_ms, vec![1.5, -0.0, 2.501]);
    assert!(t.result().idle_gaps_ms[1].is_sign_negative());
}

#[test]
fn connect_and_upgrade_carry_another_protocol() {
    let t = feed(&[
        (true, 0, b"CONNECT h:443 HTTP/1.1\r\n\r\n"),
        (
            false,
            1,
            b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03",
        ),
        (true, 2, b"\x16\x03\x01GET / HTTP/1.1\r\n\r\n"),
    ]);
    assert_eq!(counts(&t), (Some("http/1.1"), 1, 1));
    let t = feed(&[
        (true, 0, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"),
        (
            false,
            1,
            b"HTTP/1.1 101 Switching Protocols\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
        ),
    ]);
    assert_eq!(counts(&t), (Some("http/1.1"), 1, 1));
}

#[test]
fn gap_loses_the_head_but_not_a_body() {
    let mut t = feed(&[
        (true, 0, b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab"),
        (false, 1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]);
    t.gap(true); // inside the body: skipped by length
    t.data(true, 2 * MS, 8, None);
    t.data(true, 3 * MS, 18, Some(b"GET / HTTP/1.1\r\n\r\n"));
    assert_eq!(counts(&t), (Some("http/1.1"), 2, 1));
    t.gap(false); // between responses: lost until a segment starts a message
    assert_eq!(t.parser(false).map(|p| p.phase), Some(Phase::Lost));
    t.data(false, 4 * MS, 2, Some(b"xx"));
    t.data(false, 5 * MS, 19, Some(b"HTTP/1.1 204 OK\r\n\r\n"));
    assert_eq!(counts(&t), (Some("http/1.1"), 2, 2));
}

#[test]
fn framing_headers_take_the_last_exact_name_in_any_case() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Length-Hint: 9\r\ncontent-length: 5\r\n\
        X-Note: content-length: 7\r\nCONTENT-LENGTH : 6\r\nTransfer-Encoding: gzip, chunked";
    let h = framing_headers(head);
    assert_eq!(h.content_length, Some(&b"6"[..]));
    assert_eq!(h.transfer_encoding, Some(&b"gzip, chunked"[..]));
    assert_eq!(
        framing_headers(b"GET / HTTP/1.1"),
        FramingHeaders::default()
    );
    // the start line is no header
    assert_eq!(
        framing_headers(b"Content-Length: 3\r\nHost: x"),
        FramingHeaders::default()
    );
    let h = framing_headers(b"X\n\x0bcontent-length\x0b:\x0c 12 \x0b\r");
    assert_eq!(h.content_length, None); // the name must start the line
    let h = framing_headers(b"X\ncontent-length\x0b:\x0c 12 \x0b\r");
    assert_eq!(h.content_length, Some(&b"12"[..])); // Python strips \x0b and \x0c too
}

#[test]
fn body_framing_prefers_chunked_and_wants_ascii_digits() {
    let framing = |te: Option<&[u8]>, cl: Option<&[u8]>| {
        body_framing(&FramingHeaders {
            content_length: cl,
            transfer_encoding: te,
        })
    };
    assert_eq!(
        framing(Some(b"gzip, ChUnKeD"), Some(b"x")),
        Framing::Chunked
    );
    assert_eq!(framing(Some(b"gzip"), Some(b"007")), Framing::Length);
    assert_eq!(framing(None, Some(b"")), Framing::Bad);
    assert_eq!(framing(None, Some(b"+5")), Framing::Bad);
    assert_eq!(framing(None, Some("\u{661}".as_bytes())), Framing::Bad);
    assert_eq!(framing(None, None), Framing::NoBody);
    assert_eq!(content_length(b"00012"), 12);
    assert_eq!(content_length(&[b'9'; 5000]), u64::MAX);
}

/// `re.search(rb"\r?\n\r?\n", data, pos)`, the slow way.
fn regex_head_end(data: &[u8], pos: usize) -> Option<(usize, usize)> {
    (pos..data.len()).find_map(|start| {
        let mut i = start;
        for _ in 0..2 {
            if data.get(i) == Some(&b'\r') {
                i += 1;
            }
            if data.get(i) != Some(&b'\n') {
                return None;
            }
            i += 1;
        }
        Some((start, i))
    })
}

#[test]
fn head_end_finds_what_the_regular_expression_would() {
    // Every string of up to 7 bytes over "\r\nab " and every start position.
    let alphabet = b"\r\nab ";
    let mut data = Vec::new();
    for len in 0..=7u32 {
        for code in 0..5usize.pow(len) {
            data.clear();
            let mut c = code;
            for _ in 0..len {
                data.push(alphabet[c % 5]);
                c /= 5;
            }
            for pos in 0..=data.len() + 1 {
                assert_eq!(
                    head_end(&data, pos),
                    regex_head_end(&data, pos),
                    "{data:?} {pos}"
                );
            }
        }
    }
}

#[test]
fn chunk_sizes_are_read_as_python_int_base_16() {
    let cases: &[(&[u8], Option<i64>)] = &[
        (b" 1a ", Some(26)),
        (b"\x0b1a\x0c", Some(26)),
        (b"\x1c1a", None), // not bytes whitespace (str's isspace would say it is)
        (b"+1a", Some(26)),
        (b"-1a", Some(-26)),
        (b"- 1a", None),
        (b"+-1", None),
        (b"0x1f", Some(31)),
        (b"0X1F", Some(31)),
        (b"0x_1f", Some(31)),
        (b"0x__1f", None),
        (b"_1f", None),
        (b"1_f", Some(31)),
        (b"1__f", None),
        (b"1f_", None),
        (b"0x", None),
        (b"0x_", None),
        (b"0", Some(0)),
        (b"-0x1", Some(-1)),
        (b"0_x1", None),
        (b"1\x00", None),
        (b"\xa01", None),
        (b"00x1", None),
        (b"0b1", Some(0xb1)),
        (b"0x 1", None),
        (b"-", None),
        (b"", None),
        (b" ", None),
        (b"\t-0x_a_b \r", Some(-171)),
        (b"ffffffffffffffffffffffffffff", Some(CHUNK_SIZE_LIMIT)),
        (b"-ffffffffffffffffffffffffffff", Some(-CHUNK_SIZE_LIMIT)),
    ];
    for &(text, expected) in cases {
        assert_eq!(python_hex_int(text), expected, "{text:?}");
    }
}

#[test]
fn start_lines_follow_the_regular_expressions() {
    assert_eq!(request_line(b"GET / HTTP/1.1"), Some((&b"GET"[..], b'1')));
    assert_eq!(
        request_line(b"M-_ /a?b HTTP/1.0"),
        Some((&b"M-_"[..], b'0'))
    );
    assert_eq!(
        request_line(b"ABCDEFGHIJKLMNOPQRST / HTTP/1.0").map(|m| m.0.len()),
        Some(20)
    );
    assert_eq!(request_line(b"ABCDEFGHIJKLMNOPQRSTU / HTTP/1.0"), None);
    assert_eq!(request_line(b"A / HTTP/1.0"), None);
    assert_eq!(request_line(b"GET  / HTTP/1.1"), None);
    assert_eq!(request_line(b"GET / x HTTP/1.1"), None);
    assert_eq!(request_line(b"GET  HTTP/1.1"), None);
    assert_eq!(request_line(b"GET / HTTP/1.2"), None);
    assert_eq!(request_line(b"GET / HTTP/1.1 "), None);
    assert_eq!(request_line(b"GET /\r HTTP/1.1"), None);
    assert_eq!(request_line(b"get / HTTP/1.1"), None);
    assert_eq!(status_line(b"HTTP/1.1 200 OK"), Some(200));
    assert_eq!(status_line(b"HTTP/1.0 0999"), Some(99));
    assert_eq!(status_line(b"HTTP/1.1 20"), None);
    assert_eq!(status_line(b"HTTP/1.2 200"), None);
    assert_eq!(status_line(b"HTTP/1.1 2x0"), None);
    let request = HttpDirection::new(true);
    assert!(request.looks_like_start(b"GET /"));
    assert!(request.looks_like_start(b"G"));
    assert!(request.looks_like_start(b"ABCDEFGHIJKLMNOPQRST"));
    assert!(!request.looks_like_start(b"ABCDEFGHIJKLMNOPQRSTU"));
    assert!(request.looks_like_start(b"ABCDEFGHIJKLMNOPQRST "));
    assert!(!request.looks_like_start(b"A /"));
    assert!(!request.looks_like_start(b""));
    assert!(!request.looks_like_start(b"GET\r"));
    let response = HttpDirection::new(false);
    assert!(response.looks_like_start(b""));
    assert!(response.looks_like_start(b"HTT"));
    assert!(response.looks_like_start(b"HTTP/1.x"));
    assert!(!response.looks_like_start(b"HTTP/2"));
}

/// A GET answered by a chunked response whose segments are `segments`; the tracker, and
/// the response parser's phase and remaining.
fn chunked_tracker(segments: &[&[u8]]) -> (AppTracker, Phase, u64) {
    let mut t = feed(&[(true, 0, b"GET / HTTP/1.1\r\n\r\n")]);
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    t.data(false, MS, head.len() as u32, Some(head));
    for (i, segment) in segments.iter().enumerate() {
        t.data(
            false,
            (i as i64 + 2) * MS,
            segment.len() as u32,
            Some(segment),
        );
    }
    let parser = t.parser(false).expect("a response parser");
    let (phase, remaining) = (parser.phase, parser.remaining);
    (t, phase, remaining)
}

/// The response parser's phase and remaining after [`chunked_tracker`].
fn chunked(segments: &[&[u8]]) -> (Phase, u64) {
    let (_, phase, remaining) = chunked_tracker(segments);
    (phase, remaining)
}

#[test]
fn negative_chunk_sizes_lose_the_framing() {
    // RFC 9112 section 7.1: chunk-size = 1*HEXDIG; Python's int() takes the sign, and
    // the parser then treats the size as it treats one it cannot parse.
    let sizes: [&[u8]; 6] = [b"-2", b"-5", b"-6", b"-10", b"-0x5", b" -1 "];
    let afters: [&[u8]; 4] = [b"", b"x", b"0\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n"];
    for size in sizes {
        for line_end in [&b"\r\n"[..], b"\n"] {
            for after in afters {
                let segment = [size, line_end, after].concat();
                let (t, phase, remaining) = chunked_tracker(&[&segment]);
                assert_eq!((phase, remaining), (Phase::Lost, 0), "{segment:?}");
                assert_eq!(counts(&t), (Some("http/1.1"), 1, 1), "{segment:?}");
                assert_eq!(t.result().idle_gaps_ms, Vec::<f64>::new());
                assert_eq!((t.turns, t.answered_turns), (1, 1));
                // The following bytes arrive in the next segment instead.
                let line = [size, line_end].concat();
                let (t, phase, remaining) = chunked_tracker(&[&line, after]);
                let expected = if after.starts_with(b"HTTP/1.") {
                    (Phase::UntilClose, 0) // a segment that starts a message: found again
                } else {
                    (Phase::Lost, 0)
                };
                assert_eq!((phase, remaining), expected, "{line:?} {after:?}");
                let responses = if after.starts_with(b"HTTP/1.") { 2 } else { 1 };
                assert_eq!(counts(&t), (Some("http/1.1"), 1, responses));
            }
        }
    }
    // "-0" is zero, the last chunk, as in Python; positive sizes are unchanged.
    assert_eq!(chunked(&[b"-0\r\n\r\n"]), (Phase::Head, 0));
    assert_eq!(chunked(&[b"+5\r\nhel"]), (Phase::ChunkData, 4));
    assert_eq!(chunked(&[b"0x_5\r\nhello\r\n0\r\n\r\n"]), (Phase::Head, 0));
    // Missing bytes after a lost size are not skipped: the framing stays lost.
    let (mut t, _, _) = chunked_tracker(&[b"-10\r\n"]);
    t.data(false, 9 * MS, 100, None);
    assert_eq!(t.parser(false).map(|p| p.phase), Some(Phase::Lost));
    assert!(t.wants(false));
}

#[test]
fn heads_and_lines_longer_than_max_head_are_lost() {
    let mut head = b"GET / HTTP/1.1\r\nX: ".to_vec();
    head.resize(MAX_HEAD, b'x');
    let mut t = AppTracker::default();
    t.data(true, 0, head.len() as u32, Some(&head));
    assert_eq!(t.parser(true).map(|p| p.buffered()), Some(MAX_HEAD));
    t.data(true, 1, 1, Some(b"x")); // one byte over, still no end
    assert_eq!(t.result().protocol, None); // lost before any request: not HTTP
                                           // A line over the limit in one segment with its end is read whole.
    let mut line = b"1;".to_vec();
    line.resize(MAX_HEAD + 10, b'e');
    line.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
    assert_eq!(chunked(&[&line]), (Phase::Head, 0));
    assert_eq!(chunked(&[&line[..MAX_HEAD + 1]]), (Phase::Lost, 0));
}

#[test]
fn tracker_stays_small() {
    assert!(
        std::mem::size_of::<AppTracker>() <= 192,
        "{}",
        std::mem::size_of::<AppTracker>()
    );
}

/// Python's check of a candidate: the header line starting after the "\n" at `at`, if its
/// name (before the colon, stripped) is `name` in any case; its value, stripped.
fn header_value<'a>(head: &'a [u8], at: usize, name: &[u8]) -> Option<&'a [u8]> {
    let rest = &head[at + 1..];
    let line = &rest[..rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len())];
    let colon = line.iter().position(|&b| b == b':')?;
    strip(&line[..colon])
        .eq_ignore_ascii_case(name)
        .then(|| strip(&line[colon + 1..]))
}

/// Python's search, transcribed literally: `rfind` of "\n" + name, then the line's name
/// checked, then `rfind` again before it.
fn last_header_by_rfind<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut end = head.len();
    loop {
        let last_start = end.checked_sub(1 + name.len())?;
        let at = (0..=last_start).rev().find(|&i| {
            head[i] == b'\n' && head[i + 1..i + 1 + name.len()].eq_ignore_ascii_case(name)
        })?;
        if let Some(value) = header_value(head, at, name) {
            return Some(value);
        }
        end = at;
    }
}

#[test]
fn byte_positions_find_every_hit_in_order() {
    let plain = vec![b'a'; 70];
    assert_eq!(find_byte(&plain, b'\n'), None);
    for at in [0, 5, 7, 8, 9, 15, 16, 17, 31, 32, 47, 63, 64, 69] {
        for also in [None, Some(at / 2), Some((at + 70) / 2)] {
            let mut data = plain.clone();
            data[at] = b'\n';
            if let Some(other) = also {
                data[other.min(69)] = b'\n';
            }
            for k in 0..=data.len() {
                for from in [0, 1, 7, k] {
                    let part = &data[..k];
                    let expected: Vec<usize> =
                        (from..part.len()).filter(|&i| part[i] == b'\n').collect();
                    let found: Vec<usize> = BytePositions::new(part, from, b'\n').collect();
                    assert_eq!(found, expected, "{k} {from}");
                }
            }
        }
    }
    // the padding of a short last word never matches, whatever the byte
    for byte in [0u8, 0xff] {
        assert_eq!(BytePositions::new(&[1, 2, 3], 0, byte).next(), None);
        assert_eq!(BytePositions::new(&[1, byte, 3], 0, byte).next(), Some(1));
    }
    assert_eq!(BytePositions::new(b"\n", 5, b'\n').next(), None);
}

#[test]
fn framing_headers_are_the_last_of_each_name() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length-Hint: 9\r\n\
                 transfer-encoding : gzip, Chunked\r\nX: y\ncontent-length:7 ";
    let h = framing_headers(head);
    assert_eq!(h.content_length, Some(&b"7"[..]));
    assert_eq!(h.transfer_encoding, Some(&b"gzip, Chunked"[..]));
    let none = framing_headers(b"GET / HTTP/1.0\r\nHost: a");
    assert_eq!((none.content_length, none.transfer_encoding), (None, None));
    // the start line is no header, and a name alone on the last line has no colon
    let start = framing_headers(b"content-length: 3\ncontent-length");
    assert_eq!(start.content_length, None);
}

#[test]
fn one_walk_finds_what_separate_searches_find() {
    let pieces: [&[u8]; 9] = [
        b"\n",
        b"\r\n",
        b"content-length",
        b"Transfer-Encoding",
        b": 12",
        b":chunked",
        b"-hint",
        b" ",
        b"x",
    ];
    let mut state: u64 = 1;
    for _ in 0..20000 {
        let mut head = Vec::new();
        for _ in 0..12 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            head.extend_from_slice(pieces[(state >> 33) as usize % pieces.len()]);
        }
        let h = framing_headers(&head);
        assert_eq!(
            h.content_length,
            last_header_by_rfind(&head, b"content-length")
        );
        assert_eq!(
            h.transfer_encoding,
            last_header_by_rfind(&head, b"transfer-encoding")
        );
    }
}

#[test]
fn byte_searches_match_a_plain_search() {
    let mut n: u64 = 3;
    for len in 0..80 {
        for _ in 0..40 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    b"ab\n:"[(n >> 60) as usize % 4]
                })
                .collect();
            for byte in [b'\n', b':', b'z'] {
                assert_eq!(find_byte(&data, byte), data.iter().position(|&b| b == byte));
                let all: Vec<usize> = BytePositions::new(&data, 0, byte).collect();
                let plain: Vec<usize> = (0..data.len()).filter(|&i| data[i] == byte).collect();
                assert_eq!(all, plain);
            }
        }
    }
}

/// The head as the old searches cut it and read it: `head_end`, the first line up to its
/// first "\n" without its "\r"s, and Python's reverse searches.
fn head_by_searches(data: &[u8], pos: usize) -> Option<(usize, HeadFields<'_>)> {
    let (stop, end) = head_end(data, pos)?;
    let head = &data[pos..stop];
    let first = &head[..head.iter().position(|&b| b == b'\n').unwrap_or(head.len())];
    let line = &first[..first.iter().rposition(|&b| b != b'\r').map_or(0, |i| i + 1)];
    let headers = FramingHeaders {
        content_length: last_header_by_rfind(head, b"content-length"),
        transfer_encoding: last_header_by_rfind(head, b"transfer-encoding"),
    };
    Some((end, HeadFields { line, headers }))
}

#[test]
fn one_walk_over_a_head_finds_what_the_searches_find() {
    let pieces: [&[u8]; 15] = [
        b"\n",
        b"\r\n",
        b"\r",
        b"content-length",
        b"Transfer-Encoding",
        b"CONTENT-lengtH",
        b"content\rlength", // "\r" | 0x20 is "-"
        b"Content",
        b": 12",
        b":chunked",
        b"-hint",
        b" ",
        b"\x0b",
        b"x",
        b"GET / HTTP/1.1",
    ];
    let mut state: u64 = 7;
    for round in 0..40000 {
        let mut data = Vec::new();
        for _ in 0..(round % 16) {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            data.extend_from_slice(pieces[(state >> 33) as usize % pieces.len()]);
        }
        for pos in [0, 1, 3] {
            let expected = head_by_searches(&data, pos.min(data.len()));
            assert_eq!(
                scan_head(&data, pos.min(data.len())),
                expected,
                "{data:?} {pos}"
            );
            if let Some((stop, _)) = head_end(&data, pos.min(data.len())) {
                let head = &data[pos.min(data.len())..stop];
                assert_eq!(Some(head_fields(head)), expected.map(|e| e.1));
            }
        }
    }
}

#[test]
fn the_first_line_names_its_sender() {
    use crate::model::Role as R;
    assert_eq!(
        start_line_sender(b"GET /x HTTP/1.1\r\nHost: a\r\n"),
        Some(R::Client)
    );
    assert_eq!(
        start_line_sender(b"HTTP/1.0 404 Not Found\n"),
        Some(R::Server)
    );
    // no line end yet, lower case, a status without digits: no evidence
    assert_eq!(start_line_sender(b"GET / HTTP/1.1"), None);
    assert_eq!(start_line_sender(b"get / HTTP/1.1\r\n"), None);
    assert_eq!(start_line_sender(b"HTTP/1.1 2xx\r\n"), None);
}

#[test]
fn the_method_queue_is_a_queue() {
    // random pushes and pops against a plain VecDeque
    let mut queue = MethodQueue::default();
    let mut plain = VecDeque::new();
    let mut state: u64 = 5;
    for _ in 0..20000 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        match (state >> 33) % 7 {
            0..=2 => assert_eq!(queue.pop_front(), plain.pop_front()),
            3 => {
                queue.push_back(Method::Head);
                plain.push_back(Method::Head);
            }
            4 => {
                queue.push_back(Method::Connect);
                plain.push_back(Method::Connect);
            }
            _ => {
                queue.push_back(Method::Other);
                plain.push_back(Method::Other);
            }
        }
        assert!(queue.iter().eq(plain.iter().copied()));
    }
    // GETs alone allocate nothing
    let mut gets = MethodQueue::default();
    for _ in 0..100 {
        gets.push_back(Method::Other);
    }
    assert_eq!((gets.listed.capacity(), gets.then_others), (0, 100));
}
