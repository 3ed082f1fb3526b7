"""The least a Python run of `tcptrace analyze --format jsonl` spends on a capture, whatever
the per-segment engine does: reading and decoding it, and making, encoding and writing one
record per connection. Compare the total with the C tcptrace's whole run.

Each part is timed on its own with `time.process_time` (user + system), in one process with
the CLI's GC and malloc settings:

- read: the capture's frame batches (`read_captures`), nothing else;
- read + decode: the same, plus `decode` of every batch into segment columns;
- records: `Connection.record` for every connection, timed inside a full analysis;
- encode + write: `to_dict`, `orjson.dumps` and a write to /dev/null per record, as
  `JsonLinesWriter` does.

Usage: python benchmarks/floor.py [CAPTURE]   (default benchmarks/data/bench.pcap)
Numbers are in docs/performance.md. Nothing here runs in the unit tests.
"""

from __future__ import annotations

import gc
import sys
import time
from collections import Counter
from pathlib import Path

import orjson

from tcptrace.cli import _fixed_mmap_threshold
from tcptrace.connection import Connection
from tcptrace.decode import decode
from tcptrace.engine import Analysis, Options
from tcptrace.model import ConnectionRecord, to_dict
from tcptrace.sources import SourceStats, read_captures

DEFAULT = Path(__file__).resolve().parent / "data" / "bench.pcap"


def main() -> None:
    capture = sys.argv[1] if len(sys.argv) > 1 else str(DEFAULT)
    gc.freeze()  # the CLI's settings (tcptrace.cli.main)
    gc.set_threshold(100_000, 50, 100)
    _fixed_mmap_threshold()

    start = time.process_time()
    frames = sum(len(batch) for batch in read_captures([capture], SourceStats()))
    read_s = time.process_time() - start

    start = time.process_time()
    skipped: Counter[str] = Counter()
    segments = sum(len(decode(batch, skipped)) for batch in read_captures([capture],
                                                                         SourceStats()))
    decode_s = time.process_time() - start

    spent = [0.0]
    make = Connection.record

    def timed(self: Connection, msl_s: float) -> ConnectionRecord:
        begun = time.process_time()
        try:
            return make(self, msl_s)
        finally:
            spent[0] += time.process_time() - begun

    Connection.record = timed  # type: ignore[method-assign]
    records = list(Analysis([capture], Options()).records())
    Connection.record = make  # type: ignore[method-assign]

    start = time.process_time()
    with open("/dev/null", "w", encoding="utf-8") as out:
        for record in records:
            out.write(orjson.dumps(to_dict(record), option=orjson.OPT_APPEND_NEWLINE).decode())
    encode_s = time.process_time() - start

    floor = decode_s + spent[0] + encode_s
    print(f"{capture}: {frames:,} frames, {segments:,} TCP segments, {len(records):,} connections")
    print(f"  read                      {read_s:6.2f} s")
    print(f"  read + decode             {decode_s:6.2f} s")
    print(f"  records (Connection.record) {spent[0]:4.2f} s  "
          f"({spent[0] / max(len(records), 1) * 1e6:.1f} us each)")
    print(f"  encode + write (jsonl)    {encode_s:6.2f} s  "
          f"({encode_s / max(len(records), 1) * 1e6:.1f} us each)")
    print(f"  floor (sum of the three)  {floor:6.2f} s")


if __name__ == "__main__":
    main()
