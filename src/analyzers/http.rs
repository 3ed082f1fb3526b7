//! Application keep-alive reuse: HTTP/1.x framing (RFC 9112) and request/response turns.
//! (Owned by the HTTP work.)
//!
//! A port of `tcptrace/analyzers/reuse.py`, which is the specification: a request is counted
//! when its header block is complete, however many segments it was split over; bodies are
//! skipped by Content-Length or chunked framing, a HEAD, 1xx, 204 or 304 response has none, and
//! a response without framing runs until close. Bodies are skipped by length, so a bulk
//! download costs no byte copies. Any other protocol is counted in turns: a run of client data
//! is a request, the server data after it the response.
//!
//! Python's quirks are kept on purpose (bytes whitespace, `int(x, 16)` chunk sizes with
//! surrounding whitespace, a "+", a "0x" prefix and underscores). A negative chunk size is
//! invalid framing (RFC 9112 section 7.1: chunk-size = 1*HEXDIG) and loses the direction, as
//! an unparsable one does.

use std::collections::VecDeque;

use head::{find_byte, head_fields, scan_head, BytePositions, HeadFields};

use crate::model::{div_round, ns_to_ms, round3, Reuse, NS_PER_MS};

/// A head, a chunk-size line or a trailer line longer than this without its end is not HTTP.
const MAX_HEAD: usize = 64 * 1024;

/// Chunk sizes are Python ints (unbounded); beyond this magnitude they behave alike (more than
/// any capture carries), so they saturate here.
const CHUNK_SIZE_LIMIT: i64 = 1 << 62;

/// Where a parser is in its direction's byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Start line and header fields.
    Head,
    /// `remaining` bytes of body.
    Body,
    ChunkSize,
    /// `remaining` bytes of chunk data plus its CRLF.
    ChunkData,
    Trailer,
    UntilClose,
    /// Bytes missing from the capture: wait for a segment that starts a message.
    Lost,
}

impl Phase {
    /// The Python enum member's name.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Head => "HEAD",
            Phase::Body => "BODY",
            Phase::ChunkSize => "CHUNK_SIZE",
            Phase::ChunkData => "CHUNK_DATA",
            Phase::Trailer => "TRAILER",
            Phase::UntilClose => "UNTIL_CLOSE",
            Phase::Lost => "LOST",
        }
    }

    /// Phases that skip bytes by length: the parser does not need to see them.
    fn skipping(self) -> bool {
        matches!(self, Phase::Body | Phase::ChunkData | Phase::UntilClose)
    }
}

/// How the body after a head is framed (Python's strings 'none', 'length', 'chunked',
/// 'close', 'interim', 'bad').
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body: the message ends with its head.
    NoBody,
    /// Content-Length bytes (RFC 9112 section 6.3 item 6).
    Length,
    /// Transfer-Encoding: chunked (RFC 9112 section 7.1).
    Chunked,
    /// The body runs until the connection closes (or it now carries another protocol).
    UntilClose,
    /// A 1xx response other than 101: the final response follows.
    Interim,
    /// Not a message this parser understands.
    Bad,
}

/// The last Content-Length and Transfer-Encoding values of a head: the only headers that
/// decide body framing (RFC 9112 section 6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FramingHeaders<'a> {
    pub content_length: Option<&'a [u8]>,
    pub transfer_encoding: Option<&'a [u8]>,
}

/// A parsed head, as the parser hands it to its owner.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// When the head's first bytes arrived.
    pub start_ns: i64,
    /// The start line, without its line end.
    pub line: &'a [u8],
    pub headers: FramingHeaders<'a>,
}

/// The owner of a parser, told about each message (passed to every call rather than stored,
/// as in Python).
pub trait MessageSink {
    /// A parsed head; returns its body framing.
    fn http_message(&mut self, request: bool, message: &Message<'_>) -> Framing;
    /// The end of a message's body.
    fn http_end(&mut self, request: bool, ts_ns: i64);
}

/// Python's bytes whitespace (`bytes.strip()`, `int()`): unlike `u8::is_ascii_whitespace`,
/// it includes the vertical tab.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Python's `bytes.strip()`.
fn strip(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_space(b)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| !is_space(b))
        .map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or_default()
}

fn is_method_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b == b'_' || b == b'-'
}

/// The length of a method at the start of `data` followed by a space: the regular expression
/// `[A-Z][A-Z_-]{1,19} ` (the run cannot contain the space, so it is the maximal one).
fn method_before_space(data: &[u8]) -> Option<usize> {
    if !data.first()?.is_ascii_uppercase() {
        return None;
    }
    let run = data
        .get(1..)?
        .iter()
        .take_while(|&&b| is_method_byte(b))
        .count();
    ((1..=19).contains(&run) && data.get(1 + run) == Some(&b' ')).then_some(1 + run)
}

/// `REQUEST_LINE.match(line)` for a line without line ends: the method and the minor version
/// digit of `([A-Z][A-Z_-]{1,19}) [^ \r\n]+ HTTP/1\.([01])\r?$`.
fn request_line(line: &[u8]) -> Option<(&[u8], u8)> {
    let method_len = method_before_space(line)?;
    let rest = line.get(method_len + 1..)?;
    let (target, version) = rest.split_at_checked(rest.len().checked_sub(9)?)?;
    let minor = *version.get(8)?;
    let valid = !target.is_empty()
        && !target.iter().any(|&b| matches!(b, b' ' | b'\r' | b'\n'))
        && version.starts_with(b" HTTP/1.")
        && matches!(minor, b'0' | b'1');
    // `$` also matches before a final "\n" and `\r?` could take a final "\r": the line has
    // neither (it ends at the head's first "\n" and its "\r"s are stripped).
    valid.then(|| (line.get(..method_len).unwrap_or_default(), minor))
}

/// Which side sent `payload`, when its first line says: an HTTP/1.x request line is the
/// client's, a status line the server's (RFC 9112 section 3 and 4).
pub fn start_line_sender(payload: &[u8]) -> Option<crate::model::Role> {
    let end = payload.iter().position(|&b| b == b'\n')?;
    let line = payload.get(..end)?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if request_line(line).is_some() {
        Some(crate::model::Role::Client)
    } else if status_line(line).is_some() {
        Some(crate::model::Role::Server)
    } else {
        None
    }
}

/// `STATUS_LINE.match(line)`: the status code of `HTTP/1\.([01]) (\d{3})` (ASCII digits).
fn status_line(line: &[u8]) -> Option<u16> {
    let prefix: [u8; 12] = line.get(..12)?.try_into().ok()?;
    let [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor, b' ', d0, d1, d2] = prefix else {
        return None;
    };
    if !matches!(minor, b'0' | b'1') || ![d0, d1, d2].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        [d0, d1, d2]
            .iter()
            .fold(0, |n, &d| n * 10 + u16::from(d - b'0')),
    )
}

/// The first "\n" at or after `from` that is followed by `\r?\n`, and where that match ends.
fn blank_line(data: &[u8], from: usize) -> Option<(usize, usize)> {
    BytePositions::new(data, from, b'\n').find_map(|nl| {
        match (data.get(nl + 1), data.get(nl + 2)) {
            (Some(b'\n'), _) => Some((nl, nl + 2)),
            (Some(b'\r'), Some(b'\n')) => Some((nl, nl + 3)),
            _ => None,
        }
    })
}

/// Where the first empty line at or after `pos` starts and ends: the match of `\r?\n\r?\n` a
/// regular expression search would find.
pub fn head_end(data: &[u8], pos: usize) -> Option<(usize, usize)> {
    let (first, end) = blank_line(data, pos)?;
    let start = if first > pos && data.get(first - 1) == Some(&b'\r') {
        first - 1
    } else {
        first
    };
    Some((start, end))
}

/// The last Content-Length and Transfer-Encoding of a head, by exact name in any case (not
/// e.g. "Content-Length-Hint"); the start line is no header.
pub fn framing_headers(head: &[u8]) -> FramingHeaders<'_> {
    head_fields(head).headers
}

/// The framing its headers give a message body (RFC 9112 section 6.3): chunked wins over a
/// length; a length that is not all ASCII digits is bad.
pub fn body_framing(headers: &FramingHeaders<'_>) -> Framing {
    let chunked = headers
        .transfer_encoding
        .is_some_and(|te| te.windows(7).any(|w| w.eq_ignore_ascii_case(b"chunked")));
    if chunked {
        return Framing::Chunked;
    }
    match headers.content_length {
        Some(length) if !length.is_empty() && length.iter().all(u8::is_ascii_digit) => {
            Framing::Length
        }
        Some(_) => Framing::Bad,
        None => Framing::NoBody,
    }
}

/// Python's `int(digits)` for all-ASCII-digit bytes, saturating at `u64::MAX` (a length
/// beyond any capture; Python itself raises beyond 4300 digits).
fn content_length(digits: &[u8]) -> u64 {
    digits.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10)
            .saturating_add(u64::from(d.wrapping_sub(b'0')))
    })
}

/// Python's `int(text, 16)` on bytes: surrounding whitespace, a sign, a "0x" prefix (with
/// one underscore after it), single underscores between digits. The magnitude saturates at
/// [`CHUNK_SIZE_LIMIT`]. None where Python raises ValueError.
fn python_hex_int(text: &[u8]) -> Option<i64> {
    let mut i = text.iter().take_while(|&&b| is_space(b)).count();
    let negative = match text.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    if text.get(i) == Some(&b'0') && matches!(text.get(i + 1), Some(b'x' | b'X')) {
        i += 2;
        if text.get(i) == Some(&b'_') {
            i += 1;
        }
    }
    let digit = |b: Option<&u8>| b.and_then(|&b| char::from(b).to_digit(16));
    let mut value = i64::from(digit(text.get(i))?);
    i += 1;
    loop {
        let next = match text.get(i) {
            Some(b'_') => {
                i += 1;
                digit(text.get(i))? // one underscore, then a digit
            }
            b => match digit(b) {
                Some(d) => d,
                None => break,
            },
        };
        value = value
            .saturating_mul(16)
            .saturating_add(i64::from(next))
            .min(CHUNK_SIZE_LIMIT);
        i += 1;
    }
    let rest = text.get(i..).unwrap_or_default();
    if !rest.iter().all(|&b| is_space(b)) {
        return None;
    }
    Some(if negative { -value } else { value })
}

/// Frames HTTP/1.x messages in one direction of a connection.
#[derive(Debug)]
pub struct HttpDirection {
    is_request: bool,
    phase: Phase,
    /// A partial head or chunk line, waiting for the rest (empty otherwise).
    buf: Vec<u8>,
    start_ns: i64,
    /// Bytes of body or chunk (with its CRLF) left.
    remaining: u64,
}

impl HttpDirection {
    pub fn new(is_request: bool) -> Self {
        HttpDirection {
            is_request,
            phase: Phase::Head,
            buf: Vec::new(),
            start_ns: 0,
            remaining: 0,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Bytes of body or chunk (with its CRLF) still to skip.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Bytes held of a head or line not yet complete.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether `data` could begin a message of this direction: a method and its space (or
    /// the start of one, if `data` is short), or the start of "HTTP/1.".
    pub fn looks_like_start(&self, data: &[u8]) -> bool {
        if self.is_request {
            let head = data.get(..21).unwrap_or(data);
            return method_before_space(head).is_some()
                || (head.len() < 21
                    && head.first().is_some_and(u8::is_ascii_uppercase)
                    && head.iter().skip(1).all(|&b| is_method_byte(b)));
        }
        let head = data.get(..7).unwrap_or(data);
        b"HTTP/1.".starts_with(head)
    }

    /// Bytes of this direction are missing from the capture.
    pub fn gap(&mut self) {
        match self.phase {
            Phase::Body | Phase::ChunkData => {} // the caller skips the missing body bytes by length
            Phase::UntilClose => {}
            _ => self.lose(),
        }
    }

    /// In-order data of this direction: `length` bytes, `data` None when not captured (or not
    /// wanted while a body is skipped).
    pub fn feed<S: MessageSink>(
        &mut self,
        owner: &mut S,
        ts_ns: i64,
        length: u32,
        data: Option<&[u8]>,
    ) {
        let Some(data) = data else {
            self.skip(owner, ts_ns, length);
            return;
        };
        let n = data.len();
        let mut pos = 0;
        while pos < n {
            let rest = data.get(pos..).unwrap_or_default();
            match self.phase {
                Phase::Lost => {
                    if pos == 0 && self.looks_like_start(data) {
                        self.phase = Phase::Head;
                        continue;
                    }
                    return;
                }
                Phase::Head if self.buf.is_empty() => {
                    if !self.looks_like_start(rest) {
                        self.phase = Phase::Lost;
                        return;
                    }
                    self.start_ns = ts_ns;
                    if let Some((end, fields)) = scan_head(data, pos) {
                        // The whole head is in this segment: no copy.
                        pos = end;
                        self.head(owner, ts_ns, &fields);
                        continue;
                    }
                    // Python buffers the rest and searches it again: the same bytes, no end.
                    if rest.len() > MAX_HEAD {
                        self.lose();
                    } else {
                        self.buf.extend_from_slice(rest);
                    }
                    return;
                }
                Phase::Head => {
                    let held = self.buf.len();
                    self.buf.extend_from_slice(rest);
                    // The buffer held no empty line: one ends in the new bytes, so its "\n"
                    // is at most two bytes before them.
                    let Some((first, end)) = blank_line(&self.buf, held.saturating_sub(2)) else {
                        if self.buf.len() > MAX_HEAD {
                            self.lose();
                        }
                        return;
                    };
                    let head_stop = if first > 0 && self.buf.get(first - 1) == Some(&b'\r') {
                        first - 1
                    } else {
                        first
                    };
                    // The bytes after the head are the last ones of this segment.
                    pos = n.saturating_sub(self.buf.len().saturating_sub(end));
                    let buf = std::mem::take(&mut self.buf);
                    let fields = head_fields(buf.get(..head_stop).unwrap_or_default());
                    self.head(owner, ts_ns, &fields);
                    self.buf = buf;
                    self.clear_buf();
                }
                Phase::Body | Phase::ChunkData => {
                    let take = rest
                        .len()
                        .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                    pos += take;
                    self.consumed(owner, ts_ns, take as u64);
                }
                Phase::ChunkSize | Phase::Trailer => {
                    let Some(eol) = find_byte(rest, b'\n') else {
                        if self.buf.len() + rest.len() > MAX_HEAD {
                            self.lose();
                        } else {
                            self.buf.extend_from_slice(rest);
                        }
                        return;
                    };
                    pos += eol + 1;
                    let line = rest.get(..eol).unwrap_or_default();
                    if self.buf.is_empty() {
                        self.line(owner, ts_ns, strip(line));
                    } else {
                        let mut buf = std::mem::take(&mut self.buf);
                        buf.extend_from_slice(line);
                        self.line(owner, ts_ns, strip(&buf));
                        self.buf = buf;
                        self.clear_buf();
                    }
                }
                Phase::UntilClose => return,
            }
        }
    }

    /// Data not seen: a body is skipped by length, anything else loses the framing.
    fn skip<S: MessageSink>(&mut self, owner: &mut S, ts_ns: i64, length: u32) {
        match self.phase {
            Phase::Body | Phase::ChunkData => {
                let take = u64::from(length).min(self.remaining);
                self.consumed(owner, ts_ns, take);
            }
            Phase::UntilClose => {}
            _ => self.lose(),
        }
    }

    fn consumed<S: MessageSink>(&mut self, owner: &mut S, ts_ns: i64, n: u64) {
        self.remaining = self.remaining.saturating_sub(n);
        if self.remaining == 0 {
            if self.phase == Phase::Body {
                self.phase = Phase::Head;
                owner.http_end(self.is_request, ts_ns);
            } else {
                self.phase = Phase::ChunkSize;
            }
        }
    }

    fn head<S: MessageSink>(&mut self, owner: &mut S, ts_ns: i64, fields: &HeadFields<'_>) {
        let headers = fields.headers;
        let message = Message {
            start_ns: self.start_ns,
            line: fields.line,
            headers,
        };
        match owner.http_message(self.is_request, &message) {
            Framing::Length => {
                self.remaining = headers.content_length.map_or(0, content_length);
                if self.remaining != 0 {
                    self.phase = Phase::Body;
                } else {
                    self.phase = Phase::Head;
                    owner.http_end(self.is_request, ts_ns);
                }
            }
            Framing::NoBody => {
                self.phase = Phase::Head;
                owner.http_end(self.is_request, ts_ns);
            }
            Framing::Chunked => self.phase = Phase::ChunkSize,
            Framing::UntilClose => self.phase = Phase::UntilClose,
            Framing::Interim => self.phase = Phase::Head,
            Framing::Bad => self.phase = Phase::Lost,
        }
    }

    /// A chunk-size line (RFC 9112 section 7.1) or a trailer line, stripped.
    fn line<S: MessageSink>(&mut self, owner: &mut S, ts_ns: i64, line: &[u8]) {
        if self.phase == Phase::Trailer {
            if line.is_empty() {
                self.phase = Phase::Head;
                owner.http_end(self.is_request, ts_ns);
            }
            return;
        }
        let size_field = line.get(..find_byte(line, b';').unwrap_or(line.len()));
        // RFC 9112 section 7.1: chunk-size = 1*HEXDIG. Python's int() also takes a sign: a
        // negative size is invalid framing, as an unparsable one is.
        let size =
            python_hex_int(size_field.unwrap_or_default()).and_then(|s| u64::try_from(s).ok());
        match size {
            None => self.phase = Phase::Lost,
            Some(0) => self.phase = Phase::Trailer,
            Some(size) => {
                self.remaining = size + 2; // chunk data and its CRLF
                self.phase = Phase::ChunkData;
            }
        }
    }

    fn lose(&mut self) {
        self.phase = Phase::Lost;
        self.clear_buf();
    }

    /// Empties the buffer, giving back a large one: memory is bounded by connections held.
    fn clear_buf(&mut self) {
        if self.buf.capacity() > 4096 {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }
}

/// The methods whose responses frame differently; the rest need not be kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Connect,
    Head,
    Other,
}

/// The methods of the requests not yet answered, oldest first: those listed, then
/// `then_others` of [`Method::Other`]. Most connections send GETs and POSTs only, so the
/// queue allocates nothing until a HEAD or CONNECT is queued behind them.
#[derive(Debug, Default)]
struct MethodQueue {
    listed: VecDeque<Method>,
    then_others: u64,
}

impl MethodQueue {
    fn push_back(&mut self, method: Method) {
        if method == Method::Other {
            self.then_others += 1;
            return;
        }
        let others = std::mem::take(&mut self.then_others);
        (self.listed).extend((0..others).map(|_| Method::Other));
        self.listed.push_back(method);
    }

    fn pop_front(&mut self) -> Option<Method> {
        if let Some(method) = self.listed.pop_front() {
            return Some(method);
        }
        (self.then_others > 0).then(|| {
            self.then_others -= 1;
            Method::Other
        })
    }

    fn iter(&self) -> impl Iterator<Item = Method> + '_ {
        let others = (0..self.then_others).map(|_| Method::Other);
        self.listed.iter().copied().chain(others)
    }
}

/// The HTTP side of an [`AppTracker`]: the owner its parsers report to.
#[derive(Debug, Default)]
struct HttpCounts {
    /// None until the client's first bytes were seen; true once a request line parsed.
    http: Option<bool>,
    requests: u64,
    responses: u64,
    http11: bool,
    /// Requests not yet answered, oldest first.
    methods: MethodQueue,
    response_end_ns: Option<i64>,
    gaps_ms: Vec<f64>,
}

impl HttpCounts {
    fn request(&mut self, message: &Message<'_>) -> Framing {
        let Some((method, minor)) = request_line(message.line) else {
            if self.http.is_none() {
                self.http = Some(false);
            }
            return Framing::Bad;
        };
        self.http = Some(true);
        self.requests += 1;
        if minor == b'1' {
            self.http11 = true;
        }
        if let Some(end) = self.response_end_ns.take() {
            self.gaps_ms.push(gap_ms(message.start_ns, end));
        }
        let method = match method {
            b"CONNECT" => Method::Connect,
            b"HEAD" => Method::Head,
            _ => Method::Other,
        };
        self.methods.push_back(method);
        if method == Method::Connect {
            return Framing::UntilClose;
        }
        body_framing(&message.headers)
    }

    fn response(&mut self, message: &Message<'_>) -> Framing {
        let Some(status) = status_line(message.line) else {
            return Framing::Bad;
        };
        if (100..200).contains(&status) && status != 101 {
            return Framing::Interim;
        }
        self.responses += 1;
        let method = self.methods.pop_front();
        if status == 101 || (method == Some(Method::Connect) && (200..300).contains(&status)) {
            return Framing::UntilClose; // the connection now carries another protocol
        }
        if method == Some(Method::Head) || status == 204 || status == 304 {
            return Framing::NoBody;
        }
        match body_framing(&message.headers) {
            Framing::NoBody => Framing::UntilClose,
            framing => framing,
        }
    }
}

impl MessageSink for HttpCounts {
    fn http_message(&mut self, request: bool, message: &Message<'_>) -> Framing {
        if request {
            self.request(message)
        } else {
            self.response(message)
        }
    }

    fn http_end(&mut self, request: bool, ts_ns: i64) {
        if !request {
            self.response_end_ns = Some(ts_ns);
        }
    }
}

/// Python's `round(ns / 1e6, 3)` of a difference of two timestamps.
fn gap_ms(later_ns: i64, earlier_ns: i64) -> f64 {
    match later_ns.checked_sub(earlier_ns) {
        Some(ns) => ns_to_ms(ns),
        None => round3(div_round(
            i128::from(later_ns) - i128::from(earlier_ns),
            i128::from(NS_PER_MS),
        )),
    }
}

/// A remaining count as the differential tests compare it: counts past 2^61 are saturated
/// here and unbounded in Python, and behave alike.
fn shown_remaining(remaining: u64) -> String {
    match remaining {
        r if r > 1 << 61 => "HUGE".to_string(),
        r => r.to_string(),
    }
}

/// Which side sent the last data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

/// Counts requests, responses and the idle time between them for one connection.
#[derive(Debug, Default)]
pub struct AppTracker {
    turns: u64,
    answered_turns: u64,
    last_role: Option<Role>,
    last_server_ns: Option<i64>,
    /// Kept only while the connection may not be HTTP (the result then uses them).
    turn_gaps_ms: Vec<f64>,
    http: HttpCounts,
    /// Made on first use: most connections never carry HTTP. One allocation holds both
    /// directions' parsers.
    parsers: Option<Box<Parsers>>,
}

/// The parsers of the two directions, each made when its direction first needs it.
#[derive(Debug, Default)]
struct Parsers {
    request: Option<HttpDirection>,
    response: Option<HttpDirection>,
}

impl Parsers {
    fn side(&mut self, client: bool) -> &mut Option<HttpDirection> {
        if client {
            &mut self.request
        } else {
            &mut self.response
        }
    }

    /// The parser of a direction, made if it has none yet.
    fn made(&mut self, client: bool) -> &mut HttpDirection {
        self.side(client)
            .get_or_insert_with(|| HttpDirection::new(client))
    }
}

impl AppTracker {
    /// Whether the next in-order data of this direction should come with its bytes.
    pub fn wants(&self, client: bool) -> bool {
        if self.http.http == Some(false) {
            return false;
        }
        let parser = self.parser(client);
        parser.is_none_or(|p| !p.phase.skipping()) // a new parser reads a head
    }

    /// In-order stream data of one direction (`payload` None: not captured or not wanted).
    pub fn data(&mut self, client: bool, ts_ns: i64, length: u32, payload: Option<&[u8]>) {
        // Turns: a run of client data is a request, the server data after it the response.
        if client {
            if self.last_role != Some(Role::Client) {
                self.turns += 1;
                if let Some(last) = self.last_server_ns {
                    if self.http.http != Some(true) {
                        self.turn_gaps_ms.push(gap_ms(ts_ns, last));
                    }
                }
            }
            self.last_role = Some(Role::Client);
        } else {
            if self.last_role == Some(Role::Client) {
                self.answered_turns += 1;
            }
            self.last_server_ns = Some(ts_ns);
            self.last_role = Some(Role::Server);
        }
        match self.http.http {
            Some(false) => return,
            // The server spoke first, or the request bytes were not captured.
            None if !client || payload.is_none() => {
                self.not_http();
                return;
            }
            _ => {}
        }
        let parsers = self.parsers.get_or_insert_with(Box::default);
        parsers
            .made(client)
            .feed(&mut self.http, ts_ns, length, payload);
        let request_lost = (parsers.request.as_ref()).is_some_and(|p| p.phase == Phase::Lost);
        match self.http.http {
            None if request_lost => self.not_http(),
            Some(false) => self.not_http(),
            Some(true) if !self.turn_gaps_ms.is_empty() => self.turn_gaps_ms = Vec::new(),
            _ => {}
        }
    }

    /// Bytes of one direction missing from the capture.
    pub fn gap(&mut self, client: bool) {
        if self.http.http == Some(true) {
            let parsers = self.parsers.get_or_insert_with(Box::default);
            parsers.made(client).gap();
        }
    }

    /// The requests and responses (or turns) and their idle gaps.
    pub fn result(&self) -> Reuse {
        let mut result = self.counts();
        result.idle_gaps_ms = self.gaps().clone();
        result
    }

    /// `result` at the connection's end, the idle gaps moved out rather than copied: a long
    /// keep-alive connection has hundreds, and glibc serves a request of 1 KiB or more only
    /// after consolidating all its fast bins (`malloc_consolidate`, a walk over cold
    /// memory; ~100 times in a 1M capture from this copy alone).
    pub fn take_result(&mut self) -> Reuse {
        let mut result = self.counts();
        result.idle_gaps_ms = std::mem::take(self.gaps_mut());
        result
    }

    /// The result without its gaps.
    fn counts(&self) -> Reuse {
        if self.http.http == Some(true) {
            let protocol = if self.http.http11 {
                "http/1.1"
            } else {
                "http/1.0"
            };
            return Reuse {
                protocol: Some(protocol),
                requests: self.http.requests,
                responses: self.http.responses,
                idle_gaps_ms: Vec::new(),
            };
        }
        Reuse {
            protocol: None,
            requests: self.turns,
            responses: self.answered_turns,
            idle_gaps_ms: Vec::new(),
        }
    }

    /// The idle gaps the result reports: between HTTP messages once the connection spoke
    /// HTTP, else between turns.
    fn gaps(&self) -> &Vec<f64> {
        if self.http.http == Some(true) {
            &self.http.gaps_ms
        } else {
            &self.turn_gaps_ms
        }
    }

    fn gaps_mut(&mut self) -> &mut Vec<f64> {
        if self.http.http == Some(true) {
            &mut self.http.gaps_ms
        } else {
            &mut self.turn_gaps_ms
        }
    }

    /// The internal counters in one line, for differential tests against the Python
    /// reference (the parsers only while the connection may be HTTP, the turn gaps only
    /// while it may not be).
    pub fn describe_state(&self) -> String {
        let http = match self.http.http {
            None => "None",
            Some(true) => "True",
            Some(false) => "False",
        };
        let methods: String = (self.http.methods.iter())
            .map(|m| match m {
                Method::Connect => 'C',
                Method::Head => 'H',
                Method::Other => 'O',
            })
            .collect();
        let parser = |p: Option<&HttpDirection>| match p {
            _ if self.http.http == Some(false) => "-".to_string(),
            None => "none".to_string(),
            Some(p) => format!(
                "{}/{}/{}",
                p.phase.name(),
                shown_remaining(p.remaining),
                p.buf.len()
            ),
        };
        let gaps = |g: &[f64]| {
            g.iter()
                .map(|x| (x.to_bits() as i64).to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "http={http} turns={} answered={} hreq={} hresp={} http11={} methods={methods} \
             end={:?} tgaps={} hgaps={} req={} resp={}",
            self.turns,
            self.answered_turns,
            self.http.requests,
            self.http.responses,
            self.http.http11,
            self.http.response_end_ns,
            if self.http.http == Some(true) {
                "-".to_string()
            } else {
                gaps(&self.turn_gaps_ms)
            },
            gaps(&self.http.gaps_ms),
            parser(self.parser(true)),
            parser(self.parser(false)),
        )
    }

    /// Take the parsers' box of `old` (a connection that ended, its record made), emptied,
    /// if this one has none yet: an empty box reads as no box (`parser`, `get_or_insert`).
    pub fn reuse_box(&mut self, old: &mut AppTracker) {
        if self.parsers.is_none() {
            self.parsers = old.parsers.take().map(|mut parsers| {
                *parsers = Parsers::default();
                parsers
            });
        }
    }

    /// Not HTTP: the parsers are not needed any more.
    fn not_http(&mut self) {
        self.http.http = Some(false);
        self.parsers = None;
    }

    /// The parser of a direction, if it was made.
    fn parser(&self, client: bool) -> Option<&HttpDirection> {
        let parsers = self.parsers.as_deref()?;
        if client {
            parsers.request.as_ref()
        } else {
            parsers.response.as_ref()
        }
    }
}

mod head;

#[cfg(test)]
mod tests;
