"""The progress bar: off unless stderr is a terminal; bytes read counted by the sources."""

from __future__ import annotations

import gzip
import io
import sys
import time
from pathlib import Path

import pytest
from conftest import CRAFTED, LINUX
from tqdm import tqdm

from tcptrace.progress import REFRESH_S, ProgressBar, total_size, watch_for


def test_off_when_the_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()
    bar = ProgressBar(1000, stream, delay_s=0)
    assert not bar.enabled
    bar.update(500, 10)
    with bar.watch(lambda: (1000, 20)):
        pass
    assert stream.getvalue() == ""


def test_an_off_bar_starts_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # even a disabled tqdm starts tqdm's monitor thread: an off bar must not create one
    monkeypatch.setattr(tqdm, "monitor", None)
    bar = ProgressBar(1000, io.StringIO(), delay_s=0)
    bar.update(500, 10)
    bar.close()
    started = tqdm.monitor
    if started is not None:
        started.exit()
    assert started is None


def test_off_with_quiet_even_on_a_terminal() -> None:
    stream = io.StringIO()
    bar = ProgressBar(1000, stream, enabled=False, force=True, delay_s=0)
    bar.update(500, 10)
    bar.close()
    assert not bar.enabled and stream.getvalue() == ""


def test_renders_bytes_and_packet_rate_on_a_forced_terminal() -> None:
    """Sizes in SI megabytes with their unit: a 417 MB file reads "417MB", not "398M"."""
    stream = io.StringIO()
    bar = ProgressBar(417_000_000, stream, force=True, delay_s=0, refresh_s=0)
    bar.update(208_500_000, 5000)
    bar.close()
    text = stream.getvalue()
    assert "reading" in text and "50%" in text and "208MB/417MB" in text and "pkt/s" in text


def test_no_bar_is_wanted_without_a_terminal_or_when_asked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [str(LINUX / "http_reuse.pcap")]
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert watch_for(paths) is None  # not a terminal

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert watch_for(paths) is not None
    assert watch_for(paths, enabled=False) is None  # -q or --no-progress


@pytest.mark.parametrize("command", [
    ["analyze", "-f", "jsonl"], ["check", "--no-rst"], ["ladder", "--conn", "1"]])
def test_every_reading_command_takes_no_progress(capsys: pytest.CaptureFixture[str],
                                                 command: list[str]) -> None:
    from tcptrace.cli import main
    with pytest.raises(SystemExit) as exit_info:
        main([*command, str(LINUX / "client_close.pcap"), "--no-progress"])
        raise SystemExit(0)
    assert exit_info.value.code in (0, None)
    assert capsys.readouterr().err == ""


def test_watch_polls_in_the_background() -> None:
    stream = io.StringIO()
    bar = ProgressBar(100, stream, force=True, delay_s=0)
    with bar.watch(lambda: (100, 1)):
        time.sleep(REFRESH_S * 1.5)
    assert "100%" in stream.getvalue()


def test_cli_writes_no_bar_when_stderr_is_captured(capsys: pytest.CaptureFixture[str]) -> None:
    from tcptrace.cli import main
    with pytest.raises(SystemExit):
        main(["analyze", str(CRAFTED / "port_reuse.pcap")])
        raise SystemExit(0)
    assert capsys.readouterr().err == ""


def test_total_size_counts_file_bytes(tmp_path: Path) -> None:
    """The bar's total: file sizes (compressed bytes for gzip, what the engine counts)."""
    pcap = LINUX / "http_reuse.pcap"
    packed = tmp_path / "http_reuse.pcap.gz"
    packed.write_bytes(gzip.compress(pcap.read_bytes()))
    assert total_size([str(pcap), str(packed)]) == (pcap.stat().st_size
                                                     + packed.stat().st_size)


@pytest.mark.parametrize("name", ["ref_eth_us_le.pcap", "ref_eth.pcapng.gz"])
def test_native_engine_counts_bytes_and_frames(name: str) -> None:
    """The native run's counters, which the bar polls from another thread while the engine
    runs without the GIL: file bytes (compressed ones for gzip) and frames."""
    from tcptrace import _native

    path = CRAFTED / name
    run = _native.Run([str(path)], "jsonl")
    progress = run.progress()
    assert (progress.bytes, progress.frames) == (0, 0)
    stream = io.StringIO()
    bar = ProgressBar(total_size([str(path)]), stream, delay_s=0, force=True, refresh_s=0.001)
    with bar.watch(lambda: (progress.bytes, progress.frames)):  # polled from another thread
        run.execute(lambda data: time.sleep(0.05))  # the run lasts a few polls
    assert progress.bytes == path.stat().st_size
    assert progress.frames == run.source_report()["packets"] == 10
    assert "reading" in stream.getvalue()
