//! `--filter`: libpcap's filter language (pcap-filter(7)), compiled by libpcap for each link
//! type a capture holds and run per frame, before decode, by libpcap's filter machine.
//!
//! The engine only knows the interface below: the compiler and the machine live in libpcap,
//! which Python loads at run time; src/binding/bpf.rs implements `FilterMachine` with it
//! (the one place that calls across). So `vlan`, `tcp port 8080` or `tcp[13] & 2 != 0` mean
//! here what they mean to tcpdump and to `live --bpf`.

use std::fmt;
use std::sync::Arc;

use crate::decode::SUPPORTED_LINKTYPES;
use crate::sources::SourceStats;

/// A compiled filter program for one link type.
pub trait FrameProgram: Send + Sync {
    /// Does the frame pass? `frame`: its captured bytes; `wirelen`: its length on the wire
    /// (what BPF's `len` loads).
    fn matches(&self, frame: &[u8], wirelen: u32) -> bool;
}

/// One filter expression, compiled on demand for each link type met.
pub trait FilterMachine: Send + Sync {
    /// The expression as the user wrote it (for messages).
    fn expression(&self) -> &str;
    /// The program for frames of `linktype` (a LINKTYPE_* number), compiled on first use
    /// and kept; `Err` is libpcap's message when the expression cannot apply to this link
    /// type (`vlan` on Linux cooked captures, ...).
    fn program(&self, linktype: u32) -> Result<Arc<dyn FrameProgram>, String>;
}

/// The `--filter` of a run: cheap to clone (threads share the compiled programs).
#[derive(Clone)]
pub struct Filter {
    machine: Arc<dyn FilterMachine>,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Filter")
            .field(&self.machine.expression())
            .finish()
    }
}

/// What a frame of one link type goes through.
enum Verdict {
    Run(Arc<dyn FrameProgram>),
    /// A link type decode does not support either: kept, so decode counts it and warns
    /// about it as without --filter.
    Keep,
    /// The expression cannot apply to this link type: every frame is filtered out (warned).
    Drop,
}

impl Filter {
    pub fn new(machine: Arc<dyn FilterMachine>) -> Filter {
        Filter { machine }
    }

    pub fn expression(&self) -> &str {
        self.machine.expression()
    }

    fn verdict(&self, linktype: u32, stats: &mut SourceStats) -> Verdict {
        match self.machine.program(linktype) {
            Ok(program) => Verdict::Run(program),
            Err(_) if !SUPPORTED_LINKTYPES.contains(&linktype) => Verdict::Keep,
            Err(message) => {
                stats.warn_once(
                    "filter_linktype",
                    &format!(
                        "--filter {:?} does not apply to link type {linktype} ({message}): \
                         its frames are filtered out",
                        self.expression()
                    ),
                );
                Verdict::Drop
            }
        }
    }

    /// A per-batch view that asks the machine once per change of link type (a batch
    /// nearly always has one), not once per frame.
    pub fn cursor(&self) -> FilterCursor<'_> {
        FilterCursor {
            filter: self,
            linktype: None,
            verdict: Verdict::Keep,
        }
    }
}

/// Runs frames of one batch through a `Filter`.
pub struct FilterCursor<'a> {
    filter: &'a Filter,
    linktype: Option<u32>,
    verdict: Verdict,
}

impl FilterCursor<'_> {
    /// Does the frame pass? (`stats` receives the warning of a link type the expression
    /// cannot apply to.)
    #[inline]
    pub fn keep(
        &mut self,
        linktype: u32,
        frame: &[u8],
        wirelen: u32,
        stats: &mut SourceStats,
    ) -> bool {
        if self.linktype != Some(linktype) {
            self.verdict = self.filter.verdict(linktype, stats);
            self.linktype = Some(linktype);
        }
        match &self.verdict {
            Verdict::Run(program) => program.matches(frame, wirelen),
            Verdict::Keep => true,
            Verdict::Drop => false,
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A stand-in machine: frames pass when their first byte is odd; link type 113 cannot
    /// be compiled for. Counts compilations.
    pub struct OddFirstByte {
        pub compiled: AtomicUsize,
    }

    struct Odd;

    impl FrameProgram for Odd {
        fn matches(&self, frame: &[u8], _wirelen: u32) -> bool {
            frame.first().is_some_and(|b| b % 2 == 1)
        }
    }

    impl FilterMachine for OddFirstByte {
        fn expression(&self) -> &str {
            "odd"
        }
        fn program(&self, linktype: u32) -> Result<Arc<dyn FrameProgram>, String> {
            self.compiled.fetch_add(1, Ordering::Relaxed);
            match linktype {
                113 | 4242 => Err("no odd support".into()),
                _ => Ok(Arc::new(Odd)),
            }
        }
    }

    #[test]
    fn programs_per_link_type_and_their_failures() {
        let machine = Arc::new(OddFirstByte {
            compiled: AtomicUsize::new(0),
        });
        let filter = Filter::new(machine.clone());
        let mut stats = SourceStats::default();
        let mut cursor = filter.cursor();
        assert!(cursor.keep(1, &[3], 1, &mut stats));
        assert!(!cursor.keep(1, &[2], 1, &mut stats));
        assert!(!cursor.keep(1, &[], 0, &mut stats));
        assert_eq!(machine.compiled.load(Ordering::Relaxed), 1);
        // a supported link type the expression cannot apply to: dropped, warned once
        assert!(!cursor.keep(113, &[3], 1, &mut stats));
        assert!(!cursor.keep(113, &[3], 1, &mut stats));
        // an unsupported one: kept for decode to count
        assert!(cursor.keep(4242, &[2], 1, &mut stats));
        assert_eq!(machine.compiled.load(Ordering::Relaxed), 3);
        assert_eq!(
            stats.warnings,
            vec![
                "filter_linktype: --filter \"odd\" does not apply to link type 113 \
                  (no odd support): its frames are filtered out"
            ]
        );
        assert_eq!(format!("{filter:?}"), "Filter(\"odd\")");
    }
}
