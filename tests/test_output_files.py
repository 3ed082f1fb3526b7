"""Output files (-o, --junit, -w) never destroy an input and never leave half a report:
refused when they name an input, whole documents renamed into place on success, streams
opened only once the captures were read (tcptrace/outputs.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CRAFTED, LINUX

CAPTURE = LINUX / "client_close.pcap"


def tcptrace(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tcptrace.cli", *map(str, args)],
                          capture_output=True, text=True, check=False, cwd=cwd)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    copy = tmp_path / "victim.pcap"
    shutil.copy(CAPTURE, copy)
    return copy


@pytest.mark.parametrize("args", [
    ["analyze", "{v}", "-o", "{v}"],
    ["analyze", "-f", "jsonl", "{v}", "-o", "{v}"],
    ["analyze", "-f", "csv", "{v}", "-o", "{link}"],  # another name, the same inode
    ["analyze", "{dir}", "{v}", "-o", "{v}"],
    ["report", "{v}", "-o", "{v}"],
    ["check", "{v}", "--no-rst", "--junit", "{v}"],
])
def test_an_output_that_is_an_input_is_refused(victim: Path, args: list[str]) -> None:
    link = victim.with_name("link.pcap")
    os.link(victim, link)
    before = victim.read_bytes()
    argv = [a.format(v=victim, link=link, dir=victim.parent / "nothing") for a in args]
    done = tcptrace(*argv)
    assert done.returncode == 2 and done.stdout == ""
    option = "--junit" if "--junit" in argv else "-o"
    assert done.stderr.startswith(f"tcptrace: error: {option} ")
    assert done.stderr.count("\n") == 1 and "is the input" in done.stderr
    assert victim.read_bytes() == before


def test_live_refuses_one_file_for_packets_and_report(tmp_path: Path) -> None:
    done = tcptrace("live", "-i", "lo", "-w", tmp_path / "x", "-o", tmp_path / "x")
    assert done.returncode == 2
    assert done.stderr == (f"tcptrace: error: -w and -o: {tmp_path / 'x'} and "
                           f"{tmp_path / 'x'} are the same file\n")


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl", "csv", "zeek"])
def test_a_failed_run_leaves_no_file(tmp_path: Path, fmt: str) -> None:
    done = tcptrace("analyze", "-f", fmt, tmp_path / "missing.pcap", "-o", tmp_path / "out")
    assert done.returncode == 2 and "cannot open" in done.stderr
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl", "csv", "zeek"])
def test_a_failed_run_keeps_the_old_report(tmp_path: Path, fmt: str) -> None:
    old = tmp_path / "report.out"
    old.write_text("yesterday's report\n")
    done = tcptrace("analyze", "-f", fmt, CAPTURE, tmp_path / "missing.pcap", "-o", old)
    assert done.returncode == 2
    assert old.read_text() == "yesterday's report\n"
    assert sorted(os.listdir(tmp_path)) == ["report.out"]


def test_a_whole_document_is_renamed_into_place(tmp_path: Path) -> None:
    old = tmp_path / "report.json"
    old.write_text("old")
    old.chmod(0o640)
    inode = old.stat().st_ino
    done = tcptrace("analyze", "-f", "json", CAPTURE, "-o", old)
    assert done.returncode == 0 and done.stdout == ""
    assert old.read_text().startswith('{\n  "source"')
    assert old.stat().st_ino != inode  # a new file, renamed over the old one
    assert old.stat().st_mode & 0o777 == 0o640  # with the old one's permissions
    assert sorted(os.listdir(tmp_path)) == ["report.json"]  # no temporary file left


def test_a_stream_is_written_in_place(tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    out.write_text("old\n" * 1000)
    inode = out.stat().st_ino
    assert tcptrace("analyze", "-f", "jsonl", CAPTURE, "-o", out).returncode == 0
    assert out.stat().st_ino == inode and out.read_text().count("\n") == 1


def test_an_empty_stream_still_makes_its_file(tmp_path: Path) -> None:
    out = tmp_path / "records.csv"
    done = tcptrace("analyze", "-f", "jsonl", "--filter", "port 1", CAPTURE, "-o", out)
    assert done.returncode == 0 and out.read_text() == ""


def test_report_and_junit_are_written_whole(tmp_path: Path) -> None:
    page, junit = tmp_path / "r.html", tmp_path / "j.xml"
    assert tcptrace("report", CAPTURE, "-o", page).returncode == 0
    assert page.read_text().startswith("<!DOCTYPE html>")
    done = tcptrace("check", CAPTURE, "--no-rst", "--junit", junit)
    assert done.returncode == 0 and junit.read_text().startswith("<?xml")
    assert sorted(os.listdir(tmp_path)) == ["j.xml", "r.html"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("command", [("analyze", "-f", "table"), ("analyze", "-f", "json"),
                                     ("analyze", "-f", "jsonl"), ("report",),
                                     ("check", "--no-rst", "--junit")])
def test_a_full_device_is_named(command: tuple[str, ...]) -> None:
    # the HTML report said ": No space left on device" (a write's error names no file)
    done = tcptrace(*command[:1], CRAFTED / "port_reuse.pcap", *command[1:],
                    *(() if command[-1] == "--junit" else ("-o",)), "/dev/full")
    assert done.returncode == 2
    assert done.stderr == "tcptrace: error: /dev/full: No space left on device\n"


def test_an_unwritable_directory_fails_before_reading(tmp_path: Path) -> None:
    done = tcptrace("analyze", CAPTURE, "-o", tmp_path / "no" / "such" / "dir.json")
    assert done.returncode == 2
    assert done.stderr == (f"tcptrace: error: {tmp_path / 'no' / 'such' / 'dir.json'}: "
                           "No such file or directory\n")
