"""Captures read from pipes (issue 18, item 2): `-` is standard input, and a FIFO,
/dev/stdin or any other stream reads as the file it carries, byte for byte the same report,
without seeking. Run through the installed command, as a shell pipeline would."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import CRAFTED, LINUX

TCPTRACE = str(Path(sys.executable).parent / "tcptrace")
DOWNLOAD = LINUX.parent / "transfer" / "download.pcap"


def tcptrace(*args: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([TCPTRACE, *map(str, args)], input=stdin, capture_output=True,
                          check=False)


def wall_clock_blanked(output: bytes) -> bytes:
    """conn.log's #open and #close lines carry the time of the run, not of the capture: two
    runs a second apart differ there and nowhere else."""
    return re.sub(rb"(?m)^#(open|close)\t.*$", rb"#\1\t(wall clock)", output)


def from_file(*args: str | Path) -> bytes:
    done = tcptrace(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "zeek", "table"])
def test_standard_input_gives_the_report_of_the_file(fmt: str) -> None:
    piped = tcptrace("analyze", "-f", fmt, "-", stdin=DOWNLOAD.read_bytes())
    assert (piped.returncode, piped.stderr) == (0, b"")
    assert wall_clock_blanked(piped.stdout) == wall_clock_blanked(
        from_file("analyze", "-f", fmt, DOWNLOAD))


def test_the_source_report_lists_standard_input_as_dash() -> None:
    import json

    piped = tcptrace("analyze", "-f", "json", "-", stdin=DOWNLOAD.read_bytes())
    source = json.loads(piped.stdout)["source"]
    assert (source["files"], source["packets"]) == (["-"], 264)


@pytest.mark.parametrize("name", ["ref_eth.pcap.gz", "ref_eth.pcapng", "ref_eth.pcapng.gz",
                                  "ref_multi_if.pcapng", "ref_eth_ns_be.pcap"])
def test_every_format_reads_from_a_pipe(name: str) -> None:
    path = CRAFTED / name
    piped = tcptrace("analyze", "-f", "jsonl", "-", stdin=path.read_bytes())
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == from_file("analyze", "-f", "jsonl", path)
    assert piped.stdout.count(b"\n") >= 1


def test_a_gzip_pipe_of_a_larger_capture() -> None:
    packed = gzip.compress(DOWNLOAD.read_bytes())
    piped = tcptrace("analyze", "-f", "jsonl", "-", stdin=packed)
    assert piped.stdout == from_file("analyze", "-f", "jsonl", DOWNLOAD)


def _through_fifo(tmp_path: Path, data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write(data)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        return tcptrace("analyze", *args, fifo)
    finally:
        writer.join(timeout=30)


def test_a_fifo_reads_as_the_file(tmp_path: Path) -> None:
    done = _through_fifo(tmp_path, DOWNLOAD.read_bytes(), "-f", "jsonl")
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout == from_file("analyze", "-f", "jsonl", DOWNLOAD)


def test_a_fifo_that_is_not_a_capture_is_named(tmp_path: Path) -> None:
    done = _through_fifo(tmp_path, b"hello", "-f", "jsonl")
    assert done.returncode == 2
    assert done.stderr.decode() == (f"tcptrace: error: {tmp_path / 'capture.fifo'}: not a pcap "
                                    "or pcapng capture (starts with 68656c6c)\n")


def test_dev_stdin_and_jobs_read_the_pipe() -> None:
    expected = from_file("analyze", "-f", "jsonl", DOWNLOAD)
    for args in (["/dev/stdin"], ["-", "--jobs", "2"]):
        piped = tcptrace("analyze", "-f", "jsonl", *args, stdin=DOWNLOAD.read_bytes())
        assert (piped.returncode, piped.stdout) == (0, expected), args


def test_standard_input_merges_with_a_file_by_time() -> None:
    a, b = CRAFTED / "ref_split_a.pcap", CRAFTED / "ref_split_b.pcap"
    merged = from_file("analyze", "-f", "jsonl", a, b)
    for args in ([a, "-"], ["-", a]):
        piped = tcptrace("analyze", "-f", "jsonl", *args, stdin=b.read_bytes())
        assert (piped.returncode, piped.stdout) == (0, merged), args


def test_a_pipe_cut_short_keeps_its_records_and_warns(tmp_path: Path) -> None:
    data = DOWNLOAD.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:len(data) - 100])  # inside the last record
    from_cut = tcptrace("analyze", "-f", "jsonl", cut)
    piped = tcptrace("analyze", "-f", "jsonl", "-", stdin=cut.read_bytes())
    assert piped.returncode == from_cut.returncode == 0
    assert piped.stdout == from_cut.stdout and piped.stdout.count(b"\n") == 1
    assert piped.stderr.decode() == from_cut.stderr.decode().replace(str(cut), "standard input")
    assert piped.stderr.decode().startswith(
        "tcptrace: warning: truncated_record: standard input: file ends inside a record at "
        "byte ")


def test_errors_name_standard_input() -> None:
    for data, message in ((b"", "standard input: empty file"),
                          (b"hello", "standard input: not a pcap or pcapng capture "
                                     "(starts with 68656c6c)")):
        done = tcptrace("analyze", "-", stdin=data)
        assert (done.returncode, done.stderr.decode()) == (2, f"tcptrace: error: {message}\n")
    done = tcptrace("analyze", "-", "-", stdin=b"")
    assert (done.returncode, done.stderr.decode()) == (
        2, "tcptrace: error: standard input (-) is given more than once; it can be read only "
           "once\n")


def test_check_ladder_and_report_read_standard_input(tmp_path: Path) -> None:
    data = DOWNLOAD.read_bytes()
    check = tcptrace("check", "--no-rst", "-", stdin=data)
    assert check.returncode == 0, check.stderr
    assert check.stdout == from_file("check", "--no-rst", DOWNLOAD).replace(
        str(DOWNLOAD).encode(), b"-")
    ladder = tcptrace("ladder", "--conn", "1", "-", stdin=data)
    assert ladder.returncode == 0 and ladder.stdout == from_file("ladder", "--conn", "1",
                                                                 DOWNLOAD)
    # one pass over the captures: a pipe makes the same page as the file (but its name)
    piped, filed = tmp_path / "piped.html", tmp_path / "filed.html"
    report = tcptrace("report", "-", "-o", piped, stdin=data)
    assert (report.returncode, report.stderr) == (0, b"")
    assert tcptrace("report", DOWNLOAD, "-o", filed).returncode == 0
    page = filed.read_text(encoding="utf-8")
    assert piped.read_text(encoding="utf-8") == page.replace(str(DOWNLOAD), "-")
    assert '"traces":{"1":' in page


def test_output_on_standard_input_is_refused(tmp_path: Path) -> None:
    """`analyze - -o x.pcap < x.pcap` would truncate the capture being read."""
    copy = tmp_path / "x.pcap"
    copy.write_bytes(DOWNLOAD.read_bytes())
    with open(copy, "rb") as f:
        done = subprocess.run([TCPTRACE, "analyze", "-", "-o", str(copy)], stdin=f,
                              capture_output=True, check=False)
    assert done.returncode == 2
    assert b"refusing to overwrite it" in done.stderr
    assert copy.read_bytes() == DOWNLOAD.read_bytes()


def test_live_save_to_stdout_needs_a_report_file() -> None:
    done = tcptrace("live", "-i", "lo", "-w", "-")
    assert done.returncode == 2
    assert done.stderr.decode().startswith(
        "tcptrace: error: -w - writes the capture to stdout: give the report -o FILE")


SAVE_TO_STDOUT = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from livefeed import read_pcap, records
from tcptrace import _native
from tcptrace.sources.live import LONG_BYTES

path = Path({path!r})
linktype, unit, frames = read_pcap(path)
session = _native.Session(["eth0"], "jsonl", None, 60.0, 1.0, 1000, 300.0, LONG_BYTES, None)
session.output(lambda data: None)
session.save("-", linktype)
for at in range(0, len(frames), 5):
    session.feed([(records(frames[at:at + 5], unit), linktype, unit)], False)
session.close()
"""


def test_live_save_to_dash_writes_the_capture_to_stdout() -> None:
    """What `live -w - -o FILE` does with the frames: a pcap on stdout, which reads back as
    the capture it came from (the session fed as tests/livefeed.py feeds it)."""
    script = SAVE_TO_STDOUT.format(tests=str(Path(__file__).parent),
                                   path=str(LINUX / "keepalive.pcap"))
    saver = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True)
    assert saver.stdout[:4] == b"\x4d\x3c\xb2\xa1"  # pcap, nanoseconds
    piped = tcptrace("analyze", "-f", "jsonl", "-", stdin=saver.stdout)
    assert piped.stdout == from_file("analyze", "-f", "jsonl", LINUX / "keepalive.pcap")


def test_a_stream_has_no_size_and_its_bar_no_percentage(tmp_path: Path) -> None:
    import io

    from tcptrace.progress import ProgressBar, total_size

    fifo = tmp_path / "f.fifo"
    os.mkfifo(fifo)
    assert total_size([str(DOWNLOAD), str(fifo)]) is None
    assert total_size([str(DOWNLOAD)]) == DOWNLOAD.stat().st_size
    stream = io.StringIO()
    bar = ProgressBar(None, stream, force=True, delay_s=0, refresh_s=0)
    bar.update(208_500_000, 5000)
    bar.close()
    text = stream.getvalue()
    assert "reading: 208MB [" in text and "pkt/s" in text and "%" not in text
