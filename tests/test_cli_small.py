"""Small command-line items of issue 18: link types by name, --version."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from conftest import run_cli


def test_unsupported_link_type_is_named(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    path = tmp_path / "token-ring.pcap"
    frame = bytes(40)
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 6)
                     + struct.pack("<IIII", 1, 0, len(frame), len(frame)) + frame)
    code, _, err = run_cli(capsys, "analyze", "-f", "jsonl", str(path))
    assert code == 0
    assert err == (f"tcptrace: warning: unsupported_linktype: {path}: 1 frame(s) of "
                   "unsupported link type 6 (Token Ring) not decoded (first: frame 1)\n")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from tcptrace import __version__

    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out == f"tcptrace, version {__version__}\n"
