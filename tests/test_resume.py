"""`analyze --resume STATE` (issue 20, docs/scale-out.md "--resume STATE"): an hourly job
over new files hands the connections still open at the end of a run on to the next as
their frames. Guarantee: the records of the runs together are the single run's over all
the files, by id (same ids, same content, `previous_id` included), when each run's files
follow the previous run's in time. Captures are cut inside connections by editcap.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import CRAFTED, LINUX, PCAPS, run_cli

needs_editcap = pytest.mark.skipif(shutil.which("editcap") is None,
                                   reason="editcap (Wireshark) is not installed")


def cut(capture: Path, packets: int, into: Path) -> list[Path]:
    """`capture` cut by editcap into files of `packets` frames each, in time order."""
    into.mkdir(exist_ok=True)
    subprocess.run(["editcap", "-c", str(packets), str(capture), str(into / "part.pcapng")],
                   check=True, capture_output=True)
    return sorted(into.iterdir())


def by_id(*paths: Path) -> dict[int, str]:
    lines = [line for path in paths for line in path.read_text().splitlines()]
    records = {json.loads(line)["id"]: line for line in lines}
    assert len(records) == len(lines), "an id written twice"
    return records


def run_series(capsys: pytest.CaptureFixture[str], parts: list[Path], state: Path,
               tmp: Path) -> tuple[list[Path], list[str]]:
    """One run per part with --resume STATE, the last with --resume-final: the outputs
    and each run's stderr."""
    outputs, errors = [], []
    for k, part in enumerate(parts):
        out = tmp / f"run{k}.jsonl"
        final = ["--resume-final"] if k == len(parts) - 1 else []
        code, _, err = run_cli(capsys, "analyze", "-f", "jsonl", "-o", str(out),
                               "--resume", str(state), *final, str(part))
        assert code == 0, err
        outputs.append(out)
        errors.append(err)
    return outputs, errors


@needs_editcap
@pytest.mark.parametrize(("capture", "packets"), [
    (PCAPS / "transfer/download.pcap", 100),   # one long transfer across three runs
    (CRAFTED / "port_reuse.pcap", 9),          # a 4-tuple reused: previous_id across runs
    (LINUX / "half_close.pcap", 20),
    (LINUX / "http_reuse.pcap", 12),
    (LINUX / "keepalive.pcap", 3),
])
def test_runs_resumed_write_the_single_runs_records(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, capture: Path,
        packets: int) -> None:
    parts = cut(capture, packets, tmp_path / "parts")
    assert len(parts) >= 2
    single = tmp_path / "single.jsonl"
    code, _, err = run_cli(capsys, "analyze", "-q", "-f", "jsonl", "-o", str(single),
                           *map(str, parts))
    assert code == 0, err
    state = tmp_path / "state"
    outputs, _ = run_series(capsys, parts, state, tmp_path)
    assert by_id(*outputs) == by_id(single)
    assert not state.exists()  # the last run removed it
    assert not Path(f"{state}.frames.pcap").exists()


@needs_editcap
def test_a_connection_open_at_the_cut_is_written_by_the_run_that_ends_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    parts = cut(PCAPS / "transfer/download.pcap", 100, tmp_path / "parts")
    state = tmp_path / "state"
    outputs, errors = run_series(capsys, parts, state, tmp_path)
    assert [len(o.read_text().splitlines()) for o in outputs] == [0, 0, 1]
    # the frames carried: 16 bytes of record header and the captured bytes of each (tshark
    # -T fields -e frame.cap_len over the first 100 and 200 frames)
    assert errors == [
        f"tcptrace: resume: 1 open connections held in {state}: 100 frames, 92372 bytes\n",
        f"tcptrace: resume: 1 open connections held in {state} (1 resumed from it): "
        "200 frames, 177316 bytes\n",
        f"tcptrace: resume: 1 connections resumed from {state} and closed; {state} "
        "removed\n",
    ]
    record = json.loads(outputs[2].read_text())
    assert (record["id"], record["outcome"]) == (1, "CLOSED")


@pytest.mark.parametrize("content", [
    b"", b"TTRESUM", b"\xd4\xc3\xb2\xa1" + bytes(20), b"TTRESUME\x01\x00" + bytes(4),
    b"TTRESUME\x01\x00" + (1).to_bytes(8, "little") + (1 << 60).to_bytes(8, "little"),
])
def test_a_damaged_or_foreign_state_is_one_line_and_exit_2(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes) -> None:
    state = tmp_path / "state"
    state.write_bytes(content)
    out = tmp_path / "out.jsonl"
    code, _, err = run_cli(capsys, "analyze", "-f", "jsonl", "-o", str(out),
                           "--resume", str(state), str(CRAFTED / "port_reuse.pcap"))
    assert (code, err) == (
        2, f"tcptrace: error: {state}: not a tcptrace resume file (or a damaged one)\n")
    assert state.read_bytes() == content  # left as it was
    assert not out.exists()


def test_a_state_of_another_version_is_refused(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_bytes(b"TTRESUME\x07\x00" + bytes(40))
    code, _, err = run_cli(capsys, "analyze", "-f", "jsonl", "-o", str(tmp_path / "o"),
                           "--resume", str(state), str(CRAFTED / "port_reuse.pcap"))
    assert (code, err) == (2, f"tcptrace: error: {state}: resume file version 7, "
                              "expected 1\n")


@pytest.mark.parametrize("extra", [["--jobs", "2"], ["--per-file"], ["--executor", "dask"]])
def test_resume_is_refused_where_it_is_not_built(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path, extra: list[str]) -> None:
    code, _, err = run_cli(capsys, "analyze", "--resume", str(tmp_path / "state"), *extra,
                           str(CRAFTED / "port_reuse.pcap"))
    assert code == 2
    assert err == (
        "tcptrace: error: --resume reads files in one process: not with --executor dask, "
        "--per-file, --jobs or standard input (yet) (try 'tcptrace analyze --help')\n")
    assert not (tmp_path / "state").exists()


def test_resume_with_tunnel_ports_is_refused(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "analyze", "--resume", str(tmp_path / "state"),
                           "--tunnel-port", "vxlan=4790", str(CRAFTED / "port_reuse.pcap"))
    assert (code, err) == (2, "tcptrace: error: --resume does not take --tunnel-port (yet) "
                              "(try 'tcptrace analyze --help')\n")


def test_resume_final_needs_resume(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "analyze", "--resume-final", str(CRAFTED / "port_reuse.pcap"))
    assert code == 2
    assert err == ("tcptrace: error: --resume-final goes with --resume STATE (try 'tcptrace "
                   "analyze --help')\n")
