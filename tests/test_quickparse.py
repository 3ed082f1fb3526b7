"""Short options parse without click's spelling suggestions (tcptrace/quickparse.py);
the messages a user sees are click's own."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import modules_loaded, run_cli

CAPTURE = Path(__file__).parent.parent / "pcaps" / "linux" / "abort_linger0.pcap"


def test_short_options_do_not_load_difflib(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"  # (--tunnel-port: a line click reads, not tcptrace.quickargs)
    args = ["analyze", "-q", "-f", "jsonl", "-o", str(out), "--tunnel-port", "vxlan=8472",
            str(CAPTURE)]
    assert modules_loaded(args, ["click", "difflib"]) == ["click"]
    assert out.read_text().count("\n") == 1


def test_a_misspelt_long_option_is_still_suggested(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "analyze", "--fromat", "jsonl", str(CAPTURE))
    assert code == 2
    assert err == ("tcptrace: error: No such option '--fromat'. Did you mean '--format'? "
                   "(try 'tcptrace analyze --help')\n")


def test_an_unknown_short_option_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "analyze", "-Z", str(CAPTURE))
    assert code == 2
    assert err == "tcptrace: error: No such option '-Z'. (try 'tcptrace analyze --help')\n"


def test_bundled_short_options_still_parse(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "analyze", "-qf", "jsonl", str(CAPTURE))
    assert code == 0
    assert out.startswith('{"id":1,"client":{"ip":"10.77.0.1","port":39740}')
