"""The whole tool over every file of ../shared/corpus (tcpdump's fuzzed and malformed captures,
Zeek's and Suricata's traces), in-process for speed: no traceback, exit status 0 or 2, damage
counted under documented reasons and warned about once per kind, never for ordinary non-TCP
traffic. Skipped when ../shared is not beside the checkout.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcptrace.cli import main

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CORPUS = SHARED / "corpus"
TEXT = {".json", ".md", ".out", ".log", ".yaml", ".txt"}
# documented in docs/output.md, `source.skipped` reasons
REASONS = {
    "unsupported_linktype", "truncated_link_header", "not_ip", "truncated_ip_header",
    "bad_ip_header", "ip_fragment", "not_tcp", "truncated_tcp_header", "bad_tcp_header",
    "snaplen_cut", "truncated_record", "corrupt_record", "corrupt_block", "bad_block",
    "filtered_out", "encrypted", "truncated_tunnel_header", "bad_tunnel_header",
    "tunnel_too_deep", "tunnel_table_full", "short_frame",
}
SILENT = {"not_ip", "not_tcp", "ip_fragment", "filtered_out", "encrypted"}


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix not in TEXT)


# what the analysis found, beside the skipped frames: captured twice, clock set back, ...
ANALYSIS_WARNINGS = {"duplicates", "clock_jump", "time_backwards", "time_jump",
                     "evicted_for_capacity", "internal_error"}


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not beside this checkout")
def test_every_corpus_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    files = corpus_files()
    assert len(files) > 400
    out_file = tmp_path / "out.json"
    problems: list[str] = []
    captures = 0
    for path in files:
        try:
            main(["analyze", "--format", "json", "-o", str(out_file), str(path)])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        except BaseException as exc:  # the point: nothing may escape
            problems.append(f"{path}: {type(exc).__name__}: {exc}")
            continue
        _, err = capsys.readouterr()
        lines = err.splitlines()
        if code == 2:
            # only files that are not captures at all (the baselines beside the traces)
            if path.read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\x0a\x0d\x0d\x0a"):
                problems.append(f"{path}: exit 2 on a capture: {err!r}")
            if len(lines) != 1 or not lines[0].startswith(f"tcptrace: error: {path}: "):
                problems.append(f"{path}: not a one-line error: {err!r}")
            continue
        if code != 0:
            problems.append(f"{path}: exit {code}")
            continue
        captures += 1
        source = json.loads(out_file.read_text())["source"]
        kinds = [w.split(":")[0] for w in source["warnings"]]
        if not set(source["skipped"]) <= REASONS:
            problems.append(f"{path}: undocumented reasons {set(source['skipped']) - REASONS}")
        if len(kinds) != len(set(kinds)):
            problems.append(f"{path}: a kind warned twice: {kinds}")
        if set(kinds) & SILENT:
            problems.append(f"{path}: warned about ordinary traffic: {kinds}")
        # warnings about the analysis, not about skipped frames (engine.rs warn_evictions)
        if set(kinds) - ANALYSIS_WARNINGS != set(source["skipped"]) - SILENT:
            problems.append(f"{path}: warnings {kinds} vs skipped {source['skipped']}")
        if lines != [f"tcptrace: warning: {w}" for w in source["warnings"]]:
            problems.append(f"{path}: stderr {err!r}")
    assert not problems, "\n".join(problems)
    assert captures > 400


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not beside this checkout")
def test_fcs_flagged_linktype_is_decoded(tmp_path: Path) -> None:
    """beep-oobr.pcap has link type 0x0400_00e5 (IPV6 with the FCS flag): decoded, not skipped."""
    path = CORPUS / "tcpdump" / "pcaps" / "beep-oobr.pcap"
    out_file = tmp_path / "out.json"
    main(["analyze", "--format", "json", "-o", str(out_file), str(path)])
    source = json.loads(out_file.read_text())["source"]
    assert source["tcp_segments"] >= 1
    assert "unsupported_linktype" not in source["skipped"]

