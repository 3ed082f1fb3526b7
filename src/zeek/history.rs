//! The `history` string: src/Conn.cc `Connection::CheckHistory`, `AddHistory` and
//! `ScaledHistoryEntry`. The originator's letters are upper case, the responder's lower
//! case; `^` marks a role flip (Connection::FlipRoles).

use super::endpoint::{Endpoint, Scaled};

/// Conn.h `hist_seen` bits; the responder's are these shifted left by 16.
pub const HIST_SYN: u32 = 0x1;
pub const HIST_FIN: u32 = 0x2;
pub const HIST_RST: u32 = 0x4;
pub const HIST_FIN_RST: u32 = 0x8;
pub const HIST_DATA: u32 = 0x10;
pub const HIST_ACK: u32 = 0x20;
pub const HIST_MULTI: u32 = 0x40;

/// The history letters so far and which once-only letters were written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    pub text: String,
    seen: u32,
}

fn letter_of(is_orig: bool, code: u8) -> char {
    char::from(if is_orig {
        code
    } else {
        code.to_ascii_lowercase()
    })
}

impl History {
    /// CheckHistory: writes `code` the first time this side shows `mask`; true when it was
    /// seen before (the caller may then write a repeat).
    pub fn check(&mut self, is_orig: bool, mask: u32, code: u8) -> bool {
        let mask = if is_orig { mask } else { mask << 16 };
        if self.seen & mask != 0 {
            return true;
        }
        self.seen |= mask;
        self.text.push(letter_of(is_orig, code));
        false
    }

    /// AddHistory: the letter, unconditionally.
    pub fn add(&mut self, is_orig: bool, code: u8) {
        self.text.push(letter_of(is_orig, code));
    }

    /// ScaledHistoryEntry: the letter at the 1st, 10th, 100th, ... event of its kind.
    pub fn scaled(&mut self, end: &mut Endpoint, which: Scaled) {
        let at = which as usize;
        end.counts[at] += 1;
        if end.counts[at] == end.thresholds[at] {
            self.add(end.is_orig, which.letter());
            end.thresholds[at] = end.thresholds[at].saturating_mul(10);
        }
    }

    /// A role flip.
    pub fn flip(&mut self) {
        self.text.push('^');
    }
}

/// conn_state's RSTOS0 test on the history: `^\^?S[^HAFGIQ]*R` (main.zeek): the
/// originator's SYN first, then its RST before any SYN-ACK, ACK, FIN, gap or odd flags.
pub fn syn_then_rst(history: &str) -> bool {
    let text = history.strip_prefix('^').unwrap_or(history);
    let Some(rest) = text.strip_prefix('S') else {
        return false;
    };
    for c in rest.bytes() {
        match c {
            b'R' => return true,
            b'H' | b'A' | b'F' | b'G' | b'I' | b'Q' => return false,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_only_letters_and_case_by_side() {
        let mut h = History::default();
        assert!(!h.check(true, HIST_SYN, b'S'));
        assert!(h.check(true, HIST_SYN, b'S'));
        assert!(!h.check(false, HIST_SYN, b'H'));
        assert!(!h.check(true, HIST_ACK, b'A'));
        assert!(!h.check(false, HIST_DATA, b'D'));
        assert!(h.check(false, HIST_DATA, b'D'));
        h.add(true, b'F');
        h.add(false, b'F');
        h.flip();
        assert_eq!(h.text, "ShAdFf^");
    }

    #[test]
    fn scaled_letters_at_powers_of_ten() {
        let mut h = History::default();
        let mut end = Endpoint::new(false);
        for _ in 0..100 {
            h.scaled(&mut end, Scaled::Retransmit);
        }
        h.scaled(&mut end, Scaled::Checksum);
        end.is_orig = true;
        h.scaled(&mut end, Scaled::ZeroWindow);
        h.scaled(&mut end, Scaled::Gap);
        assert_eq!(h.text, "tttcWG");
        assert_eq!(end.counts, [1, 1, 100, 1]);
        assert_eq!(end.thresholds, [10, 10, 1000, 10]);
    }

    #[test]
    fn rstos0_history_pattern() {
        for yes in ["SR", "^SR", "ShR", "SdR", "STR", "SRA", "^SsrR"] {
            assert!(syn_then_rst(yes), "{yes}");
        }
        for no in [
            "", "R", "S", "SAR", "SHR", "SFR", "SGR", "SIR", "SQR", "^^SR", "DSR", "^R",
        ] {
            assert!(!syn_then_rst(no), "{no}");
        }
    }
}
