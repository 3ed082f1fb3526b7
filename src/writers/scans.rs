//! The summary's scan sources: the addresses whose probes (analyzers/probe.rs) reached many
//! targets (docs/health.md, "Scans and probes"). Bounded memory: a 1M-SYN flood is a test
//! capture (docs/robustness.md), so at most `MAX_SOURCES` sources and `MAX_TARGETS`
//! (source, target) pairs are kept; past either cap the rest is not counted and `warning`
//! says so.

use std::collections::{HashMap, HashSet};

use crate::model::{Probe, ProbeAnswer, ProbeKind};

use super::Value;

/// A source is a scan source from this many distinct targets (address and port) probed.
pub const MIN_TARGETS: u64 = 10;
/// Sources tracked at most.
pub const MAX_SOURCES: usize = 10_000;
/// Distinct (source, target) pairs tracked at most, all sources together.
pub const MAX_TARGETS: usize = 100_000;

/// One probing address.
#[derive(Clone, Debug)]
struct Source {
    ip: String,
    targets: u64,
    kinds: [u64; ProbeKind::ALL.len()],
    answers: [u64; ProbeAnswer::ALL.len()],
}

/// A probe record's part of the summary: who probed what, how, and what answered.
#[derive(Clone, Copy, Debug)]
pub struct ProbeEntry<'a> {
    pub probe: Probe,
    pub prober_ip: &'a str,
    pub target_ip: &'a str,
    pub target_port: u16,
}

/// Probes by kind, and by source.
#[derive(Clone, Debug, Default)]
pub struct ScanSources {
    kinds: [u64; ProbeKind::ALL.len()],
    slots: HashMap<String, u32>,
    sources: Vec<Source>,
    /// (source slot, target address, target port) pairs seen.
    targets: HashSet<(u32, String, u16)>,
    /// Probes not counted for their source: a cap was reached.
    uncounted: u64,
}

fn index<T: PartialEq>(all: &[T], value: &T) -> usize {
    all.iter().position(|v| v == value).unwrap_or(0)
}

impl ScanSources {
    pub fn add(&mut self, e: &ProbeEntry) {
        let kind = index(&ProbeKind::ALL, &e.probe.kind);
        self.kinds[kind] += 1;
        let slot = match self.slots.get(e.prober_ip) {
            Some(&slot) => slot,
            None if self.sources.len() < MAX_SOURCES => {
                let slot = self.sources.len() as u32;
                self.slots.insert(e.prober_ip.to_owned(), slot);
                self.sources.push(Source {
                    ip: e.prober_ip.to_owned(),
                    targets: 0,
                    kinds: Default::default(),
                    answers: Default::default(),
                });
                slot
            }
            None => {
                self.uncounted += 1;
                return;
            }
        };
        let Some(source) = self.sources.get_mut(slot as usize) else {
            return;
        };
        source.kinds[kind] += 1;
        source.answers[index(&ProbeAnswer::ALL, &e.probe.answer)] += 1;
        let target = (slot, e.target_ip.to_owned(), e.target_port);
        if self.targets.contains(&target) {
            return;
        }
        if self.targets.len() < MAX_TARGETS {
            self.targets.insert(target);
            source.targets += 1;
        } else {
            self.uncounted += 1;
        }
    }

    /// The warning when a cap left probes uncounted.
    pub fn warning(&self) -> Option<String> {
        (self.uncounted > 0).then(|| {
            format!(
                "scan_sources: {} probes not counted (at most {MAX_SOURCES} sources and \
                 {MAX_TARGETS} targets are tracked)",
                self.uncounted
            )
        })
    }

    /// `{"probes": {kind: n}, "sources": [...]}`: the kinds seen (most first), and the
    /// sources with at least `MIN_TARGETS` targets, most targets first (ties in order of
    /// their first probe).
    pub fn as_value(&self) -> Value {
        let kinds = counts(&ProbeKind::ALL.map(ProbeKind::name), &self.kinds);
        let mut scanners: Vec<&Source> = (self.sources.iter())
            .filter(|s| s.targets >= MIN_TARGETS)
            .collect();
        scanners.sort_by_key(|s| std::cmp::Reverse(s.targets)); // stable
        let sources = scanners
            .into_iter()
            .map(|s| {
                Value::Map(vec![
                    ("ip".into(), Value::Str(s.ip.clone())),
                    ("targets".into(), int(s.targets)),
                    (
                        "probes".into(),
                        counts(&ProbeKind::ALL.map(ProbeKind::name), &s.kinds),
                    ),
                    (
                        "answers".into(),
                        counts(&ProbeAnswer::ALL.map(ProbeAnswer::name), &s.answers),
                    ),
                ])
            })
            .collect();
        Value::Map(vec![
            ("probes".into(), kinds),
            ("sources".into(), Value::List(sources)),
        ])
    }
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// The non-zero counts, most first (ties in `names` order).
fn counts(names: &[&str], values: &[u64]) -> Value {
    let mut pairs: Vec<(&str, u64)> = (names.iter().zip(values))
        .filter(|(_, &n)| n > 0)
        .map(|(&name, &n)| (name, n))
        .collect();
    pairs.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
    Value::Map(pairs.into_iter().map(|(k, n)| (k.into(), int(n))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;

    fn probe(kind: ProbeKind, answer: ProbeAnswer) -> Probe {
        Probe {
            kind,
            answer,
            sender: Role::Client,
        }
    }

    #[test]
    fn a_source_with_ten_targets_is_a_scan_source() {
        let mut scans = ScanSources::default();
        for port in 1..=10 {
            let answer = if port <= 7 {
                ProbeAnswer::Rst
            } else {
                ProbeAnswer::None
            };
            let probe = probe(ProbeKind::Fin, answer);
            let e = ProbeEntry {
                probe,
                prober_ip: "10.0.0.1",
                target_ip: "10.0.0.2",
                target_port: port,
            };
            scans.add(&e);
            scans.add(&e); // the same target again: one target
        }
        // nine targets only: not a scan source
        let other = ProbeEntry {
            probe: probe(ProbeKind::Syn, ProbeAnswer::Rst),
            prober_ip: "10.0.0.9",
            target_ip: "10.0.0.2",
            target_port: 1,
        };
        (1..10).for_each(|port| {
            scans.add(&ProbeEntry {
                target_port: port,
                ..other
            })
        });
        let source = Value::Map(vec![
            ("ip".into(), Value::Str("10.0.0.1".into())),
            ("targets".into(), Value::Int(10)),
            (
                "probes".into(),
                Value::Map(vec![("fin".into(), Value::Int(20))]),
            ),
            (
                "answers".into(),
                Value::Map(vec![
                    ("rst".into(), Value::Int(14)),
                    ("none".into(), Value::Int(6)),
                ]),
            ),
        ]);
        let expected = Value::Map(vec![
            (
                "probes".into(),
                Value::Map(vec![
                    ("fin".into(), Value::Int(20)),
                    ("syn".into(), Value::Int(9)),
                ]),
            ),
            ("sources".into(), Value::List(vec![source])),
        ]);
        assert_eq!(scans.as_value(), expected);
        assert_eq!(scans.warning(), None);
    }

    #[test]
    fn memory_is_bounded_and_the_cap_is_told() {
        let mut scans = ScanSources::default();
        let ips: Vec<String> = (0..MAX_SOURCES + 5).map(|i| format!("{i}")).collect();
        for ip in &ips {
            scans.add(&ProbeEntry {
                probe: probe(ProbeKind::Syn, ProbeAnswer::None),
                prober_ip: ip,
                target_ip: "t",
                target_port: 1,
            });
        }
        assert_eq!(scans.sources.len(), MAX_SOURCES);
        assert_eq!(scans.uncounted, 5);
        let warning = scans.warning().unwrap();
        assert!(warning.starts_with("scan_sources: 5 probes not counted"));
        for port in 0..=u16::MAX {
            scans.add(&ProbeEntry {
                probe: probe(ProbeKind::Syn, ProbeAnswer::None),
                prober_ip: "0",
                target_ip: "t",
                target_port: port,
            });
            scans.add(&ProbeEntry {
                probe: probe(ProbeKind::Syn, ProbeAnswer::None),
                prober_ip: "1",
                target_ip: "u",
                target_port: port,
            });
        }
        assert_eq!(scans.targets.len(), MAX_TARGETS);
        // the first source's port 1 was a target already
        let tried = 2 * 65536 - 1;
        assert_eq!(
            scans.uncounted,
            5 + tried - (MAX_TARGETS - MAX_SOURCES) as u64
        );
    }
}
