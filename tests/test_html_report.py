"""The HTML report: self-contained, and it renders in a headless browser without errors.

The browser test needs Chromium (Debian: `apt-get install -y chromium`); without it, it is
skipped. The page writes a self-check (connection count, the selected connection's
ladder, script errors) into #selfcheck, which `--dump-dom` returns.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CRAFTED, LINUX

from tcptrace.cli import cli

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser",
                                                         "google-chrome")) if p), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    captures = sorted(str(p) for p in LINUX.glob("*.pcap"))
    result = CliRunner().invoke(cli, ["report", *captures, str(CRAFTED / "port_reuse.pcap"),
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def embedded(page: str) -> dict[str, object]:
    match = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert match
    data: dict[str, object] = json.loads(match.group(1))
    return data


def test_report_is_self_contained(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "{{" not in page
    data = embedded(page)
    connections = data["connections"]
    assert isinstance(connections, list) and len(connections) == 15
    tw = data["time_wait"]
    assert isinstance(tw, list) and tw[0]["key"] == "all" and tw[0]["peak"] == 11  # linux captures


def test_segment_cap(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["report", str(LINUX / "half_close.pcap"), "-o", str(out),
                                      "--max-segments", "10"])
    assert result.exit_code == 0
    (conn,) = embedded(out.read_text(encoding="utf-8"))["connections"]  # type: ignore[misc]
    assert conn["trace"]["total"] == 40 and len(conn["trace"]["segs"]) == 10
    assert conn["trace"]["truncated"]


def browse(page: Path, fragment: str, *extra: str) -> str:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
             *extra, f"{page.as_uri()}#{fragment}"],
            capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_report_renders_in_chromium(report: Path) -> None:
    connections = embedded(report.read_text(encoding="utf-8"))["connections"]
    assert isinstance(connections, list)
    (abort,) = [c["id"] for c in connections if c["client"] == "10.77.0.1:39740"]
    dom = browse(report, f"conn={abort}", "--dump-dom")
    match = re.search(r'<pre id="selfcheck">(.*?)</pre>', dom, re.S)
    assert match, dom[-2000:]
    check = json.loads(html.unescape(match.group(1)))
    assert check["errors"] == []
    assert check["connections"] == check["table_rows"] == 15
    assert 'data-ready="ok"' in dom
    selected = check["selected"]
    assert selected["id"] == abort and selected["arrows"] == 8  # abort_linger0: 8 segments
    text = check["ladder_text"]
    assert "10.77.0.1:39740" in text and "RST/ACK seq=6 ack=6" in text
    assert text[-2:] == ["CLOSED", "CLOSED"]


def test_report_screenshot(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    browse(report, "conn=4", f"--screenshot={shot}", "--window-size=1400,2400")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
