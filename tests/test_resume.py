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
               tmp: Path, *options: str) -> tuple[list[Path], list[str]]:
    """One run per part with --resume STATE (and `options`), the last with --resume-final:
    the outputs and each run's stderr."""
    outputs, errors = [], []
    for k, part in enumerate(parts):
        out = tmp / f"run{k}.jsonl"
        final = ["--resume-final"] if k == len(parts) - 1 else []
        code, _, err = run_cli(capsys, "analyze", "-f", "jsonl", "-o", str(out),
                               "--resume", str(state), *final, *options, str(part))
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
    b"", b"TTRESUM", b"\xd4\xc3\xb2\xa1" + bytes(20), b"TTRESUME\x02\x00" + bytes(4),
    b"TTRESUME\x02\x00" + (1).to_bytes(8, "little") + (1 << 60).to_bytes(8, "little"),
    # well formed, no connection, no frame, but a next id no run reaches (2^64 - 1 would
    # overflow at the next connection)
    b"TTRESUME\x02\x00" + (2**64 - 1).to_bytes(8, "little") + bytes(16)
    + (24).to_bytes(8, "little") + bytes.fromhex("4d3cb2a1") + bytes(20),
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
                              "expected 2\n")


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


@needs_editcap
@pytest.mark.parametrize(("capture", "carried"), [
    # the first 7 frames: 16 bytes of record header and frame.cap_len each (tshark)
    ("ref_vxlan8472.pcap", "7 frames, 1030 bytes"),
    # frame 6 (116 bytes), a damaged VXLAN header, belongs to no connection
    ("ref_vxlan.pcap", "6 frames, 898 bytes"),
    ("ref_geneve_in_vxlan.pcap", "7 frames, 1380 bytes"),
])
def test_connections_inside_tunnels_are_handed_on(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path, capture: str,
                                                  carried: str) -> None:
    """STATE's frames are found through the tunnels the run decodes, --tunnel-port's
    included (VXLAN on Linux's 8472, the first; the IANA port; Geneve inside VXLAN)."""
    parts = cut(CRAFTED / capture, 7, tmp_path / "parts")
    assert len(parts) == 2
    tunnels = ("--tunnel-port", "vxlan=8472")
    single = tmp_path / "single.jsonl"
    code, _, err = run_cli(capsys, "analyze", "-q", "-f", "jsonl", "-o", str(single),
                           *tunnels, *map(str, parts))
    assert code == 0, err
    state = tmp_path / "state"
    outputs, errors = run_series(capsys, parts, state, tmp_path, *tunnels)
    assert [len(o.read_text().splitlines()) for o in outputs] == [0, 1]
    assert by_id(*outputs) == by_id(single)
    assert json.loads(single.read_text())["encapsulation"][0]["type"] == "vxlan"
    assert errors[0].startswith(
        f"tcptrace: resume: 1 open connections held in {state}: {carried}\n")


def test_resume_final_needs_resume(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "analyze", "--resume-final", str(CRAFTED / "port_reuse.pcap"))
    assert code == 2
    assert err == ("tcptrace: error: --resume-final goes with --resume STATE (try 'tcptrace "
                   "analyze --help')\n")


# --resume-max-bytes: a connection kept alive across runs (keepalive.pcap, opened first),
# a transfer (half_close.pcap, 1.5 s later) and a short connection in the second run
# (client_close.pcap, 2.5 s later), merged; run 1 takes the first 23 frames (the keepalive
# connection's first 9, the transfer's first 14: both open at the cut).
KEPT_BYTES = 6374     # the transfer's 14 frames in STATE: 16 bytes each and its 6,150 bytes
CAPPED_BYTES = 764    # the keepalive connection's 9 frames: 16 bytes each and 620 bytes
WARNING = ("tcptrace: warning: resume: 1 open connections closed early and written as they "
           "stand: with them {state} would carry more than --resume-max-bytes ({cap} bytes) "
           "of frames\n")


def three_connections(tmp: Path) -> tuple[Path, Path]:
    """The two files of a rotation cut inside the first two of three connections."""
    shifted = []
    for name, seconds in [("half_close", "4.059916"), ("client_close", "10.8325")]:
        shifted.append(tmp / f"{name}.pcap")
        subprocess.run(["editcap", "-F", "pcap", "-t", seconds, str(LINUX / f"{name}.pcap"),
                        str(shifted[-1])], check=True, capture_output=True)
    merged = tmp / "merged.pcap"
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(merged), str(LINUX / "keepalive.pcap"),
                    *map(str, shifted)], check=True, capture_output=True)
    parts = tmp / "p1.pcap", tmp / "p2.pcap"
    for part, frames in zip(parts, ["1-23", "24-69"], strict=True):
        subprocess.run(["editcap", "-F", "pcap", "-r", str(merged), str(part), frames],
                       check=True, capture_output=True)
    return parts


def analyze_jsonl(capsys: pytest.CaptureFixture[str], out: Path, *args: str) -> str:
    code, _, err = run_cli(capsys, "analyze", "-f", "jsonl", "-o", str(out), *args)
    assert code == 0, err
    return err


def state_frames(state: Path) -> bytes:
    """The pcap inside STATE (version 2: after the held and the capped connections)."""
    data = state.read_bytes()
    assert (data[:8], data[8:10]) == (b"TTRESUME", (2).to_bytes(2, "little"))
    held = int.from_bytes(data[18:26], "little")
    at = 26 + 53 * held
    capped = int.from_bytes(data[at:at + 8], "little")
    at += 8 + 53 * capped
    length = int.from_bytes(data[at:at + 8], "little")
    assert len(data) == at + 8 + length
    return data[at + 8:]


@needs_editcap
def test_a_cap_closes_the_oldest_connection_and_its_continuation_keeps_its_id(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    p1, p2 = three_connections(tmp_path)
    single, plain1, plain2 = (tmp_path / f"{n}.jsonl" for n in ("single", "plain1", "plain2"))
    analyze_jsonl(capsys, single, "-q", str(p1), str(p2))
    analyze_jsonl(capsys, plain1, "-q", str(p1))  # a rotation without --resume
    analyze_jsonl(capsys, plain2, "-q", str(p2))
    state, run1, run2 = tmp_path / "state", tmp_path / "run1.jsonl", tmp_path / "run2.jsonl"
    cap = KEPT_BYTES + CAPPED_BYTES - 1  # one byte short of both
    err = analyze_jsonl(capsys, run1, "--resume", str(state), "--resume-max-bytes", str(cap),
                        str(p1))
    assert err == (f"tcptrace: resume: 1 open connections held in {state}: 14 frames, "
                   f"{KEPT_BYTES} bytes\n" + WARNING.format(state=state, cap=cap))
    frames = state_frames(state)
    assert len(frames) == 24 + KEPT_BYTES <= 24 + cap  # the pcap's header, then its frames
    # run 1 wrote the keepalive connection as it stood, as a run without --resume does
    written = [json.loads(line) for line in run1.read_text().splitlines()]
    assert run1.read_text() == plain1.read_text().splitlines(keepends=True)[0]
    (first,) = written
    assert (first["id"], first["client"]["port"], first["outcome"], first["role_rule"],
            first["duration_ms"]) == (1, 39750, "OPEN", "syn", 1000.468)
    err = analyze_jsonl(capsys, run2, "--resume", str(state), "--resume-final", str(p2))
    assert err == f"tcptrace: resume: 1 connections resumed from {state} and closed; " \
                  f"{state} removed\n"
    ran = {r["id"]: r for r in map(json.loads, run2.read_text().splitlines())}
    whole = {r["id"]: r for r in map(json.loads, single.read_text().splitlines())}
    # its continuation: a connection picked up midstream, as the rotation's second run
    # reports it, under the id the single run gave the whole
    plain = {r["client"]["port"]: r for r in map(json.loads, plain2.read_text().splitlines())}
    continued = ran[1]
    assert (continued["role_rule"], continued["outcome"], continued["previous_id"]) == (
        "port", "CLOSED", None)
    assert {**plain[39750], "id": 1} == continued
    assert whole[1]["role_rule"] == "syn"
    # the others: the single run's, by id (the short connection opened after the
    # continuation keeps its number)
    assert sorted(ran) == [1, 2, 3]
    assert (ran[2], ran[3]) == (whole[2], whole[3])


@needs_editcap
@pytest.mark.parametrize(("cap", "held"), [
    ("0", "0 open connections held in {state}: 0 frames, 0 bytes"),
    (str(KEPT_BYTES - 1), "0 open connections held in {state}: 0 frames, 0 bytes"),
    (str(KEPT_BYTES + CAPPED_BYTES - 1), f"1 open connections held in {{state}}: 14 frames, "
                                         f"{KEPT_BYTES} bytes"),
])
def test_a_cap_closes_the_oldest_until_the_rest_fit(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, cap: str, held: str) -> None:
    p1, _ = three_connections(tmp_path)
    state = tmp_path / "state"
    err = analyze_jsonl(capsys, tmp_path / "run1.jsonl", "--resume", str(state),
                        "--resume-max-bytes", cap, str(p1))
    closed = 1 if "14 frames" in held else 2
    warning = WARNING.format(state=state, cap=cap).replace(" 1 open", f" {closed} open")
    assert err == f"tcptrace: resume: {held.format(state=state)}\n{warning}"
    assert len(state_frames(state)) <= 24 + int(cap)
    # quiet: neither line
    state.unlink()
    code, _, err = run_cli(capsys, "analyze", "-q", "-f", "jsonl", "-o",
                           str(tmp_path / "q.jsonl"), "--resume", str(state),
                           "--resume-max-bytes", cap, str(p1))
    assert (code, err) == (0, "")


@needs_editcap
@pytest.mark.parametrize("cap", [None, str(KEPT_BYTES + CAPPED_BYTES), "7K", "1g"])
def test_a_cap_the_frames_fit_in_changes_nothing(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, cap: str | None) -> None:
    p1, p2 = three_connections(tmp_path)
    single = tmp_path / "single.jsonl"
    analyze_jsonl(capsys, single, "-q", str(p1), str(p2))
    state = tmp_path / "state"
    option = [] if cap is None else ["--resume-max-bytes", cap]
    err = analyze_jsonl(capsys, tmp_path / "run1.jsonl", "--resume", str(state), *option,
                        str(p1))
    assert err == (f"tcptrace: resume: 2 open connections held in {state}: 23 frames, "
                   f"{KEPT_BYTES + CAPPED_BYTES} bytes\n")
    analyze_jsonl(capsys, tmp_path / "run2.jsonl", "--resume", str(state), "--resume-final",
                  str(p2))
    assert by_id(tmp_path / "run1.jsonl", tmp_path / "run2.jsonl") == by_id(single)


@pytest.mark.parametrize(("value", "why"), [
    ("", "'' is not a size"), ("-1", "'-1' is not a size"), ("1.5G", "'1.5G' is not a size"),
    ("10KB", "'10KB' is not a size"), ("1X", "'1X' is not a size"),
    ("١٢", "'١٢' is not a size"),
    ("9223372036854775808", "'9223372036854775808' is larger than 9223372036854775807 bytes"),
    ("8388608T", "'8388608T' is larger than 9223372036854775807 bytes"),
])
def test_a_bad_size_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     value: str, why: str) -> None:
    code, _, err = run_cli(capsys, "analyze", "--resume", str(tmp_path / "state"),
                           "--resume-max-bytes", value, str(CRAFTED / "port_reuse.pcap"))
    assert code == 2
    assert err == (f"tcptrace: error: Invalid value for '--resume-max-bytes': {why} (bytes, "
                   "or with K, M, G or T: powers of 1024). (try 'tcptrace analyze --help')\n"
                   if "not a size" in why else
                   f"tcptrace: error: Invalid value for '--resume-max-bytes': {why}. (try "
                   "'tcptrace analyze --help')\n")
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(("text", "size"), [
    ("0", 0), ("1000", 1000), ("1K", 1024), ("1k", 1024), ("2KiB", 2048), ("3M", 3 << 20),
    ("1G", 1 << 30), ("1GiB", 1 << 30), ("2T", 2 << 40), ("007", 7),
])
def test_sizes_are_bytes_or_powers_of_1024(text: str, size: int) -> None:
    from tcptrace.clitypes import ByteSize

    assert ByteSize().convert(text, None, None) == size


def test_the_cap_goes_with_resume(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "analyze", "--resume-max-bytes", "1M",
                           str(CRAFTED / "port_reuse.pcap"))
    assert (code, err) == (2, "tcptrace: error: --resume-max-bytes goes with --resume STATE "
                              "(try 'tcptrace analyze --help')\n")


def test_help_shows_the_cap_and_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    from tcptrace.clitypes import ByteSize
    from tcptrace.commands import RESUME_MAX_BYTES_SHOWN
    from tcptrace.defaults import DEFAULT_RESUME_MAX_BYTES

    assert ByteSize().convert(RESUME_MAX_BYTES_SHOWN, None, None) == DEFAULT_RESUME_MAX_BYTES
    code, out, _ = run_cli(capsys, "analyze", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert ("--resume-max-bytes SIZE With --resume: a bound on the frames STATE carries (its "
            "pcap's records); past it the oldest open connections are written as they stand, "
            "OPEN (K, M, G, T: powers of 1024; 0: carry no frames). [default: 1G]") in text


@needs_editcap
def test_a_cap_of_exactly_the_held_frames_writes_the_same_state(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    p1, _ = three_connections(tmp_path)
    states = []
    for k, option in enumerate([[], ["--resume-max-bytes", str(KEPT_BYTES + CAPPED_BYTES)]]):
        state = tmp_path / f"state{k}"
        analyze_jsonl(capsys, tmp_path / f"run{k}.jsonl", "--resume", str(state), *option,
                      str(p1))
        states.append(state.read_bytes())
    assert states[0] == states[1]
    assert len(state_frames(tmp_path / "state0")) == 24 + KEPT_BYTES + CAPPED_BYTES
    assert (tmp_path / "run0.jsonl").read_bytes() == (tmp_path / "run1.jsonl").read_bytes() == b""
