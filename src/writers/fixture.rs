//! Test records built from the Python reference (testdata/records.rs; expected.* are the
//! Python writers' output for them, frozen when the Python engine left): the bundled
//! captures' records plus edge cases (null sub-records, empty lists, non-ASCII and control
//! characters, IPv6, huge, tiny, negative-zero and non-finite floats, duplicate ids).

use crate::model::{
    Close, ConnectionRecord, Endpoint, HalfClose, Handshake, Keepalive, Outcome, PerSide, Reuse,
    Role, RoleRule, Rst, RstKind, Sides, StateChange,
};
use crate::states::TcpState;

fn f(bits: u64) -> f64 {
    f64::from_bits(bits)
}

/// The fixture's records, in the order the Python writers were fed them.
pub(crate) fn records() -> Vec<ConnectionRecord> {
    include!("testdata/records.rs")
}
