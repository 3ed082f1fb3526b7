//! The session against `Engine::run`: the same frames pushed in batches of any size, with
//! clock ticks between them, give the same records.

use std::sync::Arc;

use super::Session;
use crate::engine::{Engine, Options};
use crate::model::ConnectionRecord;
use crate::sources::{Captures, Frame, FrameBatch, SourceStats};
use crate::writers::json::write_jsonl;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/pcaps");

fn path(name: &str) -> String {
    format!("{DIR}/{name}")
}

/// Every frame of a capture in one batch.
fn frames_of(path: &str) -> FrameBatch {
    let mut captures = Captures::open(&[path.to_string()], None).unwrap();
    let mut stats = SourceStats::default();
    let mut data = Vec::new();
    let mut frames = Vec::new();
    while let Some((piece, _)) = captures.next_piece(&mut stats, 1 << 20).unwrap() {
        for (i, f) in piece.frames.iter().enumerate() {
            frames.push(Frame {
                offset: data.len(),
                ..*f
            });
            data.extend_from_slice(piece.bytes(i));
        }
    }
    FrameBatch {
        data: Arc::new(data),
        frames,
        ..FrameBatch::default()
    }
}

/// Frames `range` of `all`, as their own batch.
fn cut(all: &FrameBatch, range: std::ops::Range<usize>) -> FrameBatch {
    let mut data = Vec::new();
    let mut frames = Vec::new();
    for i in range {
        frames.push(Frame {
            offset: data.len(),
            ..all.frames[i]
        });
        data.extend_from_slice(all.bytes(i));
    }
    FrameBatch {
        data: Arc::new(data),
        frames,
        ..FrameBatch::default()
    }
}

fn jsonl(records: &mut [ConnectionRecord]) -> Vec<String> {
    records.sort_by_key(|r| r.id);
    records
        .iter()
        .map(|r| {
            let mut out = Vec::new();
            write_jsonl(&mut out, r);
            String::from_utf8(out).unwrap()
        })
        .collect()
}

fn engine_records(path: &str, options: Options) -> (Vec<String>, String) {
    let mut engine = Engine::new(vec![path.to_string()], options);
    let mut records = Vec::new();
    engine
        .run(|r| {
            records.push(r);
            Ok(())
        })
        .unwrap();
    (jsonl(&mut records), format!("{:?}", engine.source_report()))
}

/// The session over `all` in batches of `size` frames, a tick after each at the latest
/// timestamp fed (a tick never moves the clock past a frame still to come).
fn session_records(
    path: &str,
    all: &FrameBatch,
    size: usize,
    options: Options,
) -> (Vec<String>, String) {
    let mut session = Session::new(vec![path.to_string()], options);
    let mut records = Vec::new();
    let mut latest = i64::MIN;
    for start in (0..all.len()).step_by(size) {
        let batch = cut(all, start..(start + size).min(all.len()));
        latest = batch.frames.iter().map(|f| f.ts_ns).fold(latest, i64::max);
        session
            .feed(&batch, |r| {
                records.push(r);
                Ok(())
            })
            .unwrap();
        session
            .tick(latest, |r| {
                records.push(r);
                Ok(())
            })
            .unwrap();
    }
    session
        .close(|r| {
            records.push(r);
            Ok(())
        })
        .unwrap();
    assert_eq!(session.finished() as usize, records.len());
    assert_eq!(session.open_connections(), 0);
    (
        jsonl(&mut records),
        format!("{:?}", session.source_report()),
    )
}

#[test]
fn batches_of_any_size_give_the_engines_records() {
    let captures = [
        "linux/client_close.pcap",
        "linux/keepalive.pcap",
        "linux/http_reuse.pcap",
        "linux/abort_linger0.pcap",
        "linux/any_sll2.pcap",
        "linux/ipv6.pcap",
        "linux/midstream.pcap",
        "linux/simultaneous_close.pcap",
        "linux/syn_retransmit.pcap",
        "transfer/download.pcap",
        "crafted/port_reuse.pcap",
        "crafted/fin_out_of_order.pcap",
        "crafted/ref_eth.pcapng",
    ];
    for name in captures {
        let path = path(name);
        if !std::path::Path::new(&path).exists() {
            panic!("missing {path}");
        }
        let all = frames_of(&path);
        let expected = engine_records(&path, Options::default());
        assert!(!expected.0.is_empty(), "{name}");
        for size in [1, 2, 7, 64, 1000, all.len().max(1)] {
            let got = session_records(&path, &all, size, Options::default());
            assert_eq!(got.0, expected.0, "{name} in batches of {size}");
            assert_eq!(got.1, expected.1, "{name} in batches of {size}");
        }
    }
}

#[test]
fn a_tick_past_the_linger_emits_without_traffic() {
    let path = path("linux/client_close.pcap");
    let all = frames_of(&path);
    let last = all.frames.iter().map(|f| f.ts_ns).max().unwrap();
    let options = Options {
        linger_s: 1.0,
        ..Options::default()
    };
    let mut session = Session::new(vec!["live:eth0".into()], options);
    let mut ids = Vec::new();
    session
        .feed(&all, |r| {
            ids.push(r.id);
            Ok(())
        })
        .unwrap();
    assert!(ids.is_empty());
    assert_eq!(session.open_connections(), 1);
    session
        .tick(last + 999_000_000, |r| {
            ids.push(r.id);
            Ok(())
        })
        .unwrap();
    assert!(ids.is_empty(), "still lingering");
    session
        .tick(last + 2_000_000_000, |r| {
            ids.push(r.id);
            Ok(())
        })
        .unwrap();
    assert_eq!(ids, [1]);
    assert_eq!((session.open_connections(), session.finished()), (0, 1));
}

#[test]
fn an_idle_connection_is_emitted_open_on_a_tick() {
    let path = path("linux/midstream.pcap");
    let all = frames_of(&path);
    let first = cut(&all, 0..3);
    let last = first.frames.iter().map(|f| f.ts_ns).max().unwrap();
    let options = Options {
        idle_timeout_s: Some(5.0),
        ..Options::default()
    };
    let mut session = Session::new(vec!["live:eth0".into()], options);
    let mut got = Vec::new();
    session
        .feed(&first, |r| {
            got.push(r);
            Ok(())
        })
        .unwrap();
    session
        .tick(last + 10_000_000_000, |r| {
            got.push(r);
            Ok(())
        })
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].outcome.name(), "OPEN");
    let report = format!("{:?}", session.source_report());
    assert!(report.contains("(\"idle_evicted\", Int(1))"), "{report}");
}

#[test]
fn a_panic_writes_what_is_held_and_names_the_frame() {
    let path = path("linux/http_reuse.pcap");
    let all = frames_of(&path);
    let options = Options {
        panic_at_frame: Some(5),
        ..Options::default()
    };
    let mut session = Session::new(vec!["live:eth0".into()], options);
    let mut got = Vec::new();
    session
        .feed(&cut(&all, 0..3), |r| {
            got.push(r.id);
            Ok(())
        })
        .unwrap();
    let err = session.feed(&cut(&all, 3..all.len()), |r| {
        got.push(r.id);
        Ok(())
    });
    match err {
        Err(crate::engine::RunError::Panic { at, message }) => {
            assert_eq!(at, "live:eth0, frame 5");
            assert!(message.contains("forced panic at frame 5"), "{message}");
        }
        _ => panic!("no panic reported"),
    }
    assert_eq!(got, [1]);
    // the session is done: nothing more comes out
    session
        .close(|r| {
            got.push(r.id);
            Ok(())
        })
        .unwrap();
    assert_eq!(got, [1]);
}

#[test]
fn a_damage_warning_names_the_frame_in_the_capture() {
    let all = frames_of(&path("linux/http_reuse.pcap"));
    // frames 6 and 9 of the capture cut inside their Ethernet header
    let mut second = cut(&all, 3..all.len());
    for i in [2, 5] {
        second.frames[i].caplen = 10;
    }
    for interfaces in [
        vec!["live:eth0".to_string()],
        vec!["live:a".into(), "live:b".into()],
    ] {
        let place = if interfaces.len() == 1 {
            "live:eth0: "
        } else {
            ""
        };
        let mut session = Session::new(interfaces, Options::default());
        for batch in [cut(&all, 0..3), second.clone()] {
            let mut batch = batch;
            session.number(&mut batch);
            session.feed(&batch, |_| Ok(())).unwrap();
        }
        session.close(|_| Ok(())).unwrap();
        assert_eq!(
            session.source.warnings,
            [format!(
                "truncated_link_header: {place}2 frame(s) too short for their link-layer \
                 header skipped (first: frame 6)"
            )]
        );
    }
}
