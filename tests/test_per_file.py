"""--per-file (issue 18, item 6): each file its own capture, read in the order given, ids
continuing across files, every record naming its file; without it the files merge by time
and the records do not change."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CRAFTED, LINUX

TCPTRACE = str(Path(sys.executable).parent / "tcptrace")
A, B = CRAFTED / "ref_split_a.pcap", CRAFTED / "ref_split_b.pcap"  # one connection, split
REUSE = CRAFTED / "port_reuse.pcap"
DOWNLOAD = LINUX.parent / "transfer" / "download.pcap"


def tcptrace(*args: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([TCPTRACE, *map(str, args)], input=stdin, capture_output=True,
                          check=False)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(),
                                       done.stderr.decode())


def jsonl(*args: str | Path) -> list[dict[str, object]]:
    done = tcptrace("analyze", "-f", "jsonl", *args)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def without_file(record: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in record.items() if k != "file"}


def test_each_file_is_its_own_capture() -> None:
    # merged, the two halves are one connection; apart, each half is one of its own
    assert len(jsonl(A, B)) == 1
    apart = jsonl(A, B, "--per-file")
    assert [(r["id"], r["file"]) for r in apart] == [(1, str(A)), (2, str(B))]
    assert apart[0]["client"] == apart[1]["client"]
    assert (apart[0]["packets"], apart[1]["packets"]) == ({"client": 3, "server": 2},
                                                          {"client": 3, "server": 2})


def test_a_file_reads_as_it_reads_alone_ids_continuing() -> None:
    apart = jsonl(REUSE, DOWNLOAD, A, "--per-file")
    alone = [*jsonl(REUSE), *jsonl(DOWNLOAD), *jsonl(A)]
    assert [r["id"] for r in apart] == [1, 2, 3, 4]
    assert [r["file"] for r in apart] == [str(REUSE)] * 2 + [str(DOWNLOAD), str(A)]
    # the same records, renumbered (previous_id too: port reuse within the first file)
    assert [without_file(r) | {"id": 0} for r in apart] == [r | {"id": 0} for r in alone]
    assert apart[1]["previous_id"] == 1


def test_the_key_is_the_second_and_only_there_with_per_file() -> None:
    line = tcptrace("analyze", "-f", "jsonl", "--per-file", A).stdout
    assert line.startswith(f'{{"id":1,"file":"{A}","client":')
    assert '"file"' not in tcptrace("analyze", "-f", "jsonl", A, B).stdout
    document = json.loads(tcptrace("analyze", "-f", "json", "--per-file", A, B).stdout)
    assert [list(c)[:3] for c in document["connections"]] == [["id", "file", "client"]] * 2
    assert document["source"]["files"] == [str(A), str(B)]
    assert document["source"]["connections"] == 2


def test_csv_has_a_last_file_column() -> None:
    merged = tcptrace("analyze", "-f", "csv", REUSE).stdout
    rows = list(csv.reader(io.StringIO(tcptrace("analyze", "-f", "csv", "--per-file", REUSE,
                                                A).stdout)))
    assert rows[0][-1] == "file" and rows[0][:-1] == merged.splitlines()[0].split(",")
    assert [(row[0], row[-1]) for row in rows[1:]] == [("1", str(REUSE)), ("2", str(REUSE)),
                                                       ("3", str(A))]


def test_the_table_has_a_part_per_file() -> None:
    out = tcptrace("analyze", "--per-file", A, REUSE).stdout
    lines = out.splitlines()
    assert lines[0] == f"{A}: 1 connection"
    at = lines.index(f"{REUSE}: 2 connections")
    assert lines[at + 3].split()[0] == "2" and lines[at + 4].split()[0] == "3"
    assert out.count("TW: side holding TIME_WAIT") == 1
    assert "Connections: 3 (" in out


def test_standard_input_among_the_files() -> None:
    done = tcptrace("analyze", "-f", "jsonl", "--per-file", A, "-", stdin=B.read_bytes())
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["id"], r["file"]) for r in records] == [(1, str(A)), (2, "-")]
    table = tcptrace("analyze", "--per-file", A, "-", stdin=B.read_bytes()).stdout
    assert "standard input: 1 connection" in table.splitlines()


def test_per_file_with_jobs_gives_the_same_report() -> None:
    one = tcptrace("analyze", "-f", "jsonl", "--per-file", REUSE, DOWNLOAD).stdout
    assert tcptrace("analyze", "-f", "jsonl", "--per-file", "-j", "2", REUSE,
                    DOWNLOAD).stdout == one


def test_an_unreadable_file_fails_before_any_output(tmp_path: Path) -> None:
    done = tcptrace("analyze", "-f", "jsonl", "--per-file", A, tmp_path / "missing.pcap")
    assert (done.returncode, done.stdout) == (2, "")
    assert "missing.pcap: cannot open: No such file or directory" in done.stderr


def test_help_says_which_is_the_default() -> None:
    text = " ".join(tcptrace("analyze", "--help").stdout.split())
    assert "--per-file Each file its own capture" in text
    assert "Default: the files are merged by time into one capture." in text


def test_many_files_pass_the_soft_limit_of_open_files(tmp_path: Path) -> None:
    # a merge (and --per-file) holds every file open: a day of `tcpdump -G 60` is 1,440
    # files, past the usual soft limit of 1,024, which stopped the run ("Too many open
    # files") while the hard limit allowed more; the soft limit is raised towards it now
    import resource

    soft_limit = 128
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4 * soft_limit:
        pytest.skip(f"the hard limit of open files ({hard}) leaves no room to test with")
    files = []
    for i in range(3 * soft_limit):
        link = tmp_path / f"part{i:03}.pcap"
        link.symlink_to(REUSE)
        files.append(link)

    def lower_the_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft_limit, hard))

    for extra in ((), ("--per-file",)):
        done = subprocess.run([TCPTRACE, "analyze", "-q", "-f", "jsonl", *extra,
                               *map(str, files)], capture_output=True, text=True,
                              check=False, preexec_fn=lower_the_soft_limit)
        assert done.returncode == 0, done.stderr
        records = [json.loads(line) for line in done.stdout.splitlines()]
        # merged: the same two connections, every segment a duplicate after the first
        # file; apart: each file's own two
        assert len(records) == (2 if not extra else 2 * len(files))
