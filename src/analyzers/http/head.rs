//! One walk over a message head: where it ends, its start line and its framing headers.
//!
//! A head used to be searched three times, each "\n" found by a search of its own: forward
//! for the empty line that ends it, forward for the end of the start line, backward for the
//! last Content-Length and Transfer-Encoding (Python's `rfind`). The walk here finds every
//! "\n" once, eight bytes at a time, and looks at each line as it passes: the last header
//! of a name found walking forward is the one Python's reverse search finds first.

use super::{is_space, strip, FramingHeaders};

/// The bytes of `word` equal to `byte`, as their high bits (0x80), exactly (no false hits
/// above a true one, unlike the shorter borrow trick), so every hit can be taken in turn.
pub(super) fn equal_bytes(word: u64, byte: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let v = word ^ (u64::from(byte) * 0x0101_0101_0101_0101);
    !(((v & LOW7) + LOW7) | v | LOW7)
}

/// Bytes tested per step: two words, without a branch between them.
const STEP: usize = 16;

/// The positions of one byte in `data`, in order, from a start: sixteen bytes tested per
/// step (a dozen instructions), each hit taken from the step's bit mask.
pub(super) struct BytePositions<'a> {
    data: &'a [u8],
    byte: u8,
    /// Where the next step starts.
    next_step: usize,
    /// Where the current step started, and its hits not yet taken (bit 8i + 7: byte i).
    base: usize,
    hits: u128,
}

impl<'a> BytePositions<'a> {
    pub(super) fn new(data: &'a [u8], from: usize, byte: u8) -> Self {
        BytePositions {
            data,
            byte,
            next_step: from,
            base: from,
            hits: 0,
        }
    }
}

impl Iterator for BytePositions<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.hits == 0 {
            let start = self.next_step;
            let rest = self.data.get(start..).filter(|r| !r.is_empty())?;
            let block = match rest.first_chunk::<STEP>() {
                Some(&block) => block,
                None => {
                    // the short last step, padded with a byte that cannot match
                    let mut block = [!self.byte; STEP];
                    block.get_mut(..rest.len())?.copy_from_slice(rest);
                    block
                }
            };
            let [lo, hi] = [&block[..8], &block[8..]]
                .map(|w| <[u8; 8]>::try_from(w).map_or(0, u64::from_le_bytes));
            self.base = start;
            self.next_step = start + STEP;
            let hits_hi = u128::from(equal_bytes(hi, self.byte)) << 64;
            self.hits = u128::from(equal_bytes(lo, self.byte)) | hits_hi;
        }
        let at = self.base + (self.hits.trailing_zeros() / 8) as usize;
        self.hits &= self.hits - 1;
        Some(at)
    }
}

/// The first `byte` in `data`.
pub(super) fn find_byte(data: &[u8], byte: u8) -> Option<usize> {
    BytePositions::new(data, 0, byte).next()
}

/// What a head says about its message: the start line and the framing headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadFields<'a> {
    /// The start line, without its line end.
    pub line: &'a [u8],
    pub headers: FramingHeaders<'a>,
}

/// The value of a header line whose name is `name` (lower case) in any case, stripped: the
/// line starts with the name, and the first byte after it that is not whitespace is the
/// colon (Python splits at the first colon and strips the name; a name has no colon).
fn named_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let (start, rest) = line.split_at_checked(name.len())?;
    // the name's last eight bytes in lower case before the exact comparison: every
    // "Content-Type" passes the first eight (the names' bytes all have 0x20 set)
    let tail = u64::from_le_bytes(*start.last_chunk::<8>()?);
    if tail | LOWER != u64::from_le_bytes(*name.last_chunk::<8>()?) {
        return None;
    }
    if !start.eq_ignore_ascii_case(name) {
        return None;
    }
    let colon = rest.iter().position(|&b| !is_space(b))?;
    (rest.get(colon) == Some(&b':')).then(|| strip(rest.get(colon + 1..).unwrap_or_default()))
}

/// Lowers the ASCII letters of a word (and maps a few other bytes onto others).
const LOWER: u64 = 0x2020_2020_2020_2020;

/// The lines of a head, one at a time.
#[derive(Default)]
struct Lines<'a> {
    fields: HeadFields<'a>,
    past_start_line: bool,
}

impl<'a> Lines<'a> {
    /// The next line, without its "\n". A later header of a name replaces an earlier one.
    #[inline(always)]
    fn line(&mut self, line: &'a [u8]) {
        if !self.past_start_line {
            self.past_start_line = true;
            self.fields.line = start_line(line);
            return;
        }
        header(&mut self.fields.headers, line);
    }
}

/// The start line without the "\r"s before its "\n".
#[inline(always)]
fn start_line(line: &[u8]) -> &[u8] {
    let end = line.iter().rposition(|&b| b != b'\r').map_or(0, |i| i + 1);
    line.get(..end).unwrap_or_default()
}

/// A header line, without its "\n": kept if it is a framing header.
#[inline(always)]
fn header<'a>(headers: &mut FramingHeaders<'a>, line: &'a [u8]) {
    // Most lines are told apart by their first eight bytes in lower case ("| 0x20"
    // lowers a letter and keeps "-"; a byte it maps wrongly onto a name's, such as
    // "\r" onto "-", is caught by the exact comparison after).
    let Some(first) = line.first_chunk::<8>() else {
        return; // shorter than either name
    };
    let lowered = u64::from_le_bytes(*first) | LOWER;
    if lowered == u64::from_le_bytes(*b"content-") {
        if let Some(value) = named_value(line, b"content-length") {
            headers.content_length = Some(value);
        }
    } else if lowered == u64::from_le_bytes(*b"transfer") {
        if let Some(value) = named_value(line, b"transfer-encoding") {
            headers.transfer_encoding = Some(value);
        }
    }
}

/// The head starting at `pos`, when its empty line is in `data`: where the match of
/// `\r?\n\r?\n` ends (as [`super::head_end`]) and what the head says. The start line is
/// taken before the loop over the header lines: the loop has no first-line test, and a
/// line is the bytes between two "\n"s, which are in `data`.
pub fn scan_head(data: &[u8], pos: usize) -> Option<(usize, HeadFields<'_>)> {
    let mut fields = HeadFields::default();
    let mut newlines = BytePositions::new(data, pos, b'\n');
    let mut nl = newlines.next()?;
    // the line's "\r" before an empty line is no part of the head: the start line and
    // header values are stripped of it alike
    fields.line = start_line(data.get(pos..nl).unwrap_or_default());
    loop {
        // the byte after the "\n" first: a header line's name follows, rarely "\r" or "\n"
        match data.get(nl + 1) {
            Some(b'\n') => return Some((nl + 2, fields)),
            Some(b'\r') if data.get(nl + 2) == Some(&b'\n') => {
                return Some((nl + 3, fields));
            }
            _ => {}
        }
        let line_start = nl + 1;
        nl = newlines.next()?;
        if let Some(line) = data.get(line_start..nl) {
            header(&mut fields.headers, line);
        }
    }
}

/// What a head already cut at its empty line says.
pub fn head_fields(head: &[u8]) -> HeadFields<'_> {
    let mut lines = Lines::default();
    let mut line_start = 0;
    for nl in BytePositions::new(head, 0, b'\n') {
        lines.line(head.get(line_start..nl).unwrap_or_default());
        line_start = nl + 1;
    }
    lines.line(head.get(line_start..).unwrap_or_default());
    lines.fields
}
