"""`--max-flows` evicting connections changes the results: one warning with the count, and
a line in the table's summary (single thread and --jobs)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from conftest import run_cli

SERVER = bytes([10, 0, 0, 80])


@pytest.fixture
def refused(tmp_path: Path) -> Path:
    """20 refused connections a millisecond apart: all inside the 0.5 s linger at once."""
    path = tmp_path / "refused.pcap"
    head = bytes.fromhex("020000000002" "020000000001" "0800")
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(20):
            src = bytes([10, 1, 0, 1])
            for k, (a, b, ports, ack, flags) in enumerate((
                    (src, SERVER, (1024 + i, 80), 0, 0x02),
                    (SERVER, src, (80, 1024 + i), 1001, 0x14))):
                ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0, a, b)
                tcp = struct.pack("!HHIIBBHHH", *ports, 1000 * (1 - k), ack, 0x50, flags, 512,
                                  0, 0)
                frame = head + ip + tcp
                us = i * 1000 + k * 10
                out.write(struct.pack("<IIII", 1_700_000_000, us, len(frame), len(frame)) + frame)
    return path


def test_evictions_warn_once_with_the_count(capsys: pytest.CaptureFixture[str],
                                            refused: Path) -> None:
    code, out, err = run_cli(capsys, "analyze", "--max-flows", "5", str(refused))
    assert code == 0
    assert err == ("tcptrace: warning: evicted_for_capacity: 15 connections evicted by the "
                   "--max-flows cap before their end (reported as they stood; raise "
                   "--max-flows for whole connections)\n")
    assert ("Evicted by the --max-flows cap before their end: 15 connections (reported as "
            "they stood)\n") in out


@pytest.mark.parametrize("command", [["analyze", "-f", "jsonl", "--jobs", "2"],
                                     ["check", "--no-rst"]])
def test_every_command_warns(capsys: pytest.CaptureFixture[str], refused: Path,
                             command: list[str]) -> None:
    _, _, err = run_cli(capsys, *command, "--max-flows", "5", str(refused))
    assert "tcptrace: warning: evicted_for_capacity: " in err


def test_no_eviction_no_warning(capsys: pytest.CaptureFixture[str], refused: Path) -> None:
    code, out, err = run_cli(capsys, "analyze", str(refused))
    assert code == 0 and err == "" and "Evicted" not in out
