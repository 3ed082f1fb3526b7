//! `--filter`: the expression tree the Python parser builds (tcptrace/filter.py
//! `parse_filter`), evaluated per segment. One grammar, one parser: the native engine
//! never parses filter text itself.

use crate::decode::Segment;

/// Which end of a segment a primitive looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Src,
    Dst,
    /// Either: a connection selected by host, net or port keeps both of its directions.
    Either,
}

/// A parsed filter expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `tcp`: every segment.
    All,
    /// `ip` (true) or `ip6` (false), judged by the source address.
    Ipv4(bool),
    /// `host`/`net`: addresses (IPv4-mapped for IPv4) under `mask` equal `value`.
    Addr {
        value: u128,
        mask: u128,
        direction: Direction,
    },
    /// `port`/`portrange`: low..=high.
    Ports {
        low: u16,
        high: u16,
        direction: Direction,
    },
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

const MAPPED_V4_PREFIX: u128 = 0xFFFF << 32;

impl Filter {
    pub fn matches(&self, s: &Segment) -> bool {
        match self {
            Filter::All => true,
            Filter::Ipv4(want) => ((s.src >> 32) == MAPPED_V4_PREFIX >> 32) == *want,
            Filter::Addr {
                value,
                mask,
                direction,
            } => {
                let hit = |a: u128| a & mask == *value;
                match direction {
                    Direction::Src => hit(s.src),
                    Direction::Dst => hit(s.dst),
                    Direction::Either => hit(s.src) || hit(s.dst),
                }
            }
            Filter::Ports {
                low,
                high,
                direction,
            } => {
                let hit = |p: u16| (*low..=*high).contains(&p);
                match direction {
                    Direction::Src => hit(s.sport),
                    Direction::Dst => hit(s.dport),
                    Direction::Either => hit(s.sport) || hit(s.dport),
                }
            }
            Filter::Not(inner) => !inner.matches(s),
            Filter::And(a, b) => a.matches(s) && b.matches(s),
            Filter::Or(a, b) => a.matches(s) || b.matches(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(src: u128, dst: u128, sport: u16, dport: u16) -> Segment {
        Segment {
            src,
            dst,
            sport,
            dport,
            ..Segment::default()
        }
    }

    const A: u128 = MAPPED_V4_PREFIX | 0x0a00_0001; // 10.0.0.1
    const B: u128 = MAPPED_V4_PREFIX | 0x0a00_0002; // 10.0.0.2
    const V6: u128 = 0xfd77 << 112 | 1;

    #[test]
    fn primitives() {
        let s = seg(A, B, 40000, 80);
        let port80 = Filter::Ports {
            low: 80,
            high: 80,
            direction: Direction::Either,
        };
        assert!(port80.matches(&s));
        let src80 = Filter::Ports {
            low: 80,
            high: 80,
            direction: Direction::Src,
        };
        assert!(!src80.matches(&s));
        let net = Filter::Addr {
            value: A & !0xff,
            mask: !0xffu128,
            direction: Direction::Dst,
        };
        assert!(net.matches(&s));
        assert!(Filter::Ipv4(true).matches(&s));
        assert!(!Filter::Ipv4(false).matches(&s));
        assert!(Filter::Ipv4(false).matches(&seg(V6, V6, 1, 2)));
        let both = Filter::And(Box::new(port80), Box::new(Filter::Not(Box::new(src80))));
        assert!(both.matches(&s));
        assert!(Filter::Or(Box::new(Filter::All), Box::new(net)).matches(&s));
    }
}
