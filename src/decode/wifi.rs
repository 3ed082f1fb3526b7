//! IEEE 802.11 data frames (IEEE 802.11-2020 section 9.2): the MAC header, then 802.2
//! LLC/SNAP. Protected (encrypted) frames are skipped as `encrypted`; management, control
//! and null-data frames carry no IP (`not_ip`).

use super::l2::llc;
use super::{fixed, Skip};

const TYPE_DATA: u8 = 2;
/// Frame control flags (second byte).
const TO_DS: u8 = 0x01;
const FROM_DS: u8 = 0x02;
const PROTECTED: u8 = 0x40;
const ORDER: u8 = 0x80;

/// The network header of the 802.11 frame at `pos`.
pub(super) fn data_frame(frame: &[u8], pos: usize) -> Result<(usize, u16), Skip> {
    let header: &[u8; 24] = fixed(frame, pos).ok_or(Skip::TruncatedLinkHeader)?;
    let (control, flags) = (header[0], header[1]);
    let subtype = control >> 4;
    // Null-data subtypes (bit 2 of the subtype) carry nothing
    if (control >> 2) & 3 != TYPE_DATA || subtype & 0x4 != 0 {
        return Ok((pos, 0));
    }
    if flags & PROTECTED != 0 {
        return Err(Skip::Encrypted);
    }
    let qos = subtype & 0x8 != 0;
    let mut len = 24;
    if flags & (TO_DS | FROM_DS) == TO_DS | FROM_DS {
        len += 6; // the fourth address (wireless distribution system)
    }
    if qos {
        let control: &[u8; 2] = fixed(frame, pos + len).ok_or(Skip::TruncatedLinkHeader)?;
        if control[0] & 0x80 != 0 {
            return Ok((pos, 0)); // an A-MSDU: subframes are not decoded
        }
        len += 2;
        if flags & ORDER != 0 {
            len += 4; // HT control
        }
    }
    llc(frame, pos + len)
}
