"""atheris (libFuzzer) target: arbitrary bytes as a capture file, through the whole pipeline.

The bytes are opened exactly as `tcptrace analyze FILE` opens a file (by content: gzip,
pcap, pcapng), decoded, and fed through the flow table to connection records. The only
exception allowed to escape is `TcptraceError` (the CLI's one-line "exit 2" errors);
anything else is a crash. See docs/robustness.md for how to run it.
"""

from __future__ import annotations

import io
import sys

import atheris

with atheris.instrument_imports(include=["tcptrace"]):
    from tcptrace.engine import Analysis
    from tcptrace.errors import TcptraceError
    from tcptrace.model import to_dict
    from tcptrace.sources.batch import SourceStats
    from tcptrace.sources.files import _frames


def test_one_input(data: bytes) -> None:
    stats = SourceStats()
    analysis = Analysis([], source=stats, frames=_frames(io.BytesIO(data), "fuzz", stats))
    try:
        for record in analysis.records():
            to_dict(record)
        analysis.source_report()
    except TcptraceError:
        pass


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
