//! Debug aid: every batch of the captures given, as text, for comparison with the Python
//! readers (`benchmarks/compare_sources.py`). One line per batch ("B frames buffer_len"), one
//! per frame ("ts_ns offset caplen wirelen linktype crc32"), then the stats (or the error).

use std::io::{BufWriter, Write};

use tcptrace_native::sources::{Captures, SourceStats};

fn main() -> std::io::Result<()> {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    let out = std::io::stdout();
    let mut out = BufWriter::new(out.lock());
    let mut stats = SourceStats::default();
    let mut error = None;
    match Captures::open(&paths, None) {
        Err(e) => error = Some(e),
        Ok(mut captures) => loop {
            match captures.next_batch(&mut stats) {
                Ok(Some(batch)) => {
                    writeln!(out, "B {} {}", batch.len(), batch.data.len())?;
                    for (i, f) in batch.frames.iter().enumerate() {
                        let mut crc = flate2::Crc::new();
                        crc.update(batch.bytes(i));
                        writeln!(
                            out,
                            "{} {} {} {} {} {:08x}",
                            f.ts_ns,
                            f.offset,
                            f.caplen,
                            f.wirelen,
                            f.linktype,
                            crc.sum()
                        )?;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        },
    }
    writeln!(out, "files {:?}", stats.files)?;
    writeln!(out, "frames {}", stats.frames)?;
    for (k, v) in &stats.skipped {
        writeln!(out, "skipped {k} {v}")?;
    }
    for w in &stats.warnings {
        writeln!(out, "warning {w}")?;
    }
    if let Some(e) = error {
        writeln!(out, "error {e}")?;
    }
    Ok(())
}
