//! conn.log's `conn_state`: the function `conn_state(c, trans)` of
//! scripts/base/protocols/conn/main.zeek, over the two endpoint states.

use super::endpoint::EndpointState;

/// A conn.log `conn_state` (the descriptions are main.zeek's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// Connection attempt seen, no reply.
    S0,
    /// Connection established, not terminated.
    S1,
    /// Normal establishment and termination.
    SF,
    /// Connection attempt rejected.
    REJ,
    /// Established, close attempt by originator seen (but no reply from responder).
    S2,
    /// Established, close attempt by responder seen (but no reply from originator).
    S3,
    /// Established, originator aborted (sent a RST).
    RSTO,
    /// Responder sent a RST.
    RSTR,
    /// Originator sent a SYN followed by a RST, never saw a SYN-ACK from the responder.
    RSTOS0,
    /// Responder sent a SYN ACK followed by a RST, never saw a SYN from the originator.
    RSTRH,
    /// Originator sent a SYN followed by a FIN, never saw a SYN ACK from the responder.
    SH,
    /// Responder sent a SYN ACK followed by a FIN, never saw a SYN from the originator.
    SHR,
    /// No SYN seen, just midstream traffic.
    OTH,
}

impl ConnState {
    pub fn name(self) -> &'static str {
        match self {
            ConnState::S0 => "S0",
            ConnState::S1 => "S1",
            ConnState::SF => "SF",
            ConnState::REJ => "REJ",
            ConnState::S2 => "S2",
            ConnState::S3 => "S3",
            ConnState::RSTO => "RSTO",
            ConnState::RSTR => "RSTR",
            ConnState::RSTOS0 => "RSTOS0",
            ConnState::RSTRH => "RSTRH",
            ConnState::SH => "SH",
            ConnState::SHR => "SHR",
            ConnState::OTH => "OTH",
        }
    }
}

/// `conn_state` of the originator's and the responder's endpoint states. Two cases look
/// past the states, as main.zeek does: a mutual reset is REJ only when neither side sent
/// data (`no_data`: both sizes 0), and an originator's reset against a silent responder
/// is RSTOS0 only when the history shows the SYN and then the RST (`syn_then_rst`, see
/// history.rs).
pub fn conn_state(
    orig: EndpointState,
    resp: EndpointState,
    no_data: bool,
    syn_then_rst: bool,
) -> ConnState {
    use EndpointState::*;
    if resp == Reset {
        if orig.is_attempt() || (orig == Reset && no_data) {
            return ConnState::REJ;
        }
        if orig.is_quiet() {
            return ConnState::RSTRH;
        }
        return ConnState::RSTR;
    }
    if orig == Reset {
        if resp.is_quiet() {
            return if syn_then_rst {
                ConnState::RSTOS0
            } else {
                ConnState::OTH
            };
        }
        return ConnState::RSTO;
    }
    match (orig, resp) {
        (Closed, Closed) => ConnState::SF,
        (Closed, r) if r.is_quiet() => ConnState::SH,
        (Closed, _) => ConnState::S2,
        (o, Closed) if o.is_quiet() => ConnState::SHR,
        (_, Closed) => ConnState::S3,
        (SynSent, Inactive) => ConnState::S0,
        (Established, Established) => ConnState::S1,
        _ => ConnState::OTH,
    }
}

#[cfg(test)]
mod tests {
    use super::EndpointState::*;
    use super::*;

    const ALL: [EndpointState; 7] = [
        Inactive,
        SynSent,
        SynAckSent,
        Partial,
        Established,
        Closed,
        Reset,
    ];

    /// The table, row by row: every pair of states (and both values of the two extra
    /// inputs where they matter).
    fn expected(o: EndpointState, r: EndpointState, no_data: bool, syn_rst: bool) -> &'static str {
        match (o, r) {
            (SynSent | SynAckSent, Reset) => "REJ",
            (Reset, Reset) if no_data => "REJ",
            (Reset, Reset) => "RSTR",
            (Inactive | Partial, Reset) => "RSTRH",
            (Established | Closed, Reset) => "RSTR",
            (Reset, Inactive | Partial) if syn_rst => "RSTOS0",
            (Reset, Inactive | Partial) => "OTH",
            (Reset, _) => "RSTO",
            (Closed, Closed) => "SF",
            (Closed, Inactive | Partial) => "SH",
            (Closed, _) => "S2",
            (Inactive | Partial, Closed) => "SHR",
            (_, Closed) => "S3",
            (SynSent, Inactive) => "S0",
            (Established, Established) => "S1",
            _ => "OTH",
        }
    }

    #[test]
    fn every_row_of_the_function() {
        let mut rows = 0;
        for o in ALL {
            for r in ALL {
                for no_data in [false, true] {
                    for syn_rst in [false, true] {
                        let got = conn_state(o, r, no_data, syn_rst).name();
                        assert_eq!(got, expected(o, r, no_data, syn_rst), "{o:?} {r:?}");
                        rows += 1;
                    }
                }
            }
        }
        assert_eq!(rows, 196);
    }

    #[test]
    fn named_examples() {
        assert_eq!(conn_state(SynSent, Inactive, true, false), ConnState::S0);
        assert_eq!(conn_state(Closed, Closed, false, false), ConnState::SF);
        assert_eq!(conn_state(SynSent, Reset, true, false), ConnState::REJ);
        assert_eq!(conn_state(Reset, Inactive, true, true), ConnState::RSTOS0);
        assert_eq!(
            conn_state(Partial, Established, false, false),
            ConnState::OTH
        );
        assert_eq!(
            conn_state(SynAckSent, Inactive, false, false),
            ConnState::OTH
        );
        assert_eq!(conn_state(Established, Closed, false, false), ConnState::S3);
    }
}
