"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe).

No selenium, chromedriver or websocket library: Chromium reads commands on fd 3 and writes
replies on fd 4, each a JSON message ended by a NUL byte. Enough for the HTML report's
benchmark (benchmarks/report_bench.py) and its browser test: open a page, evaluate
expressions (awaiting promises), read the results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import suppress
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1400,1000"]


def chromium() -> str | None:
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser",
                                                         "google-chrome")) if p), None)


def _as_fds_3_and_4(commands: int, replies: int) -> None:
    os.dup2(commands, 3)
    os.dup2(replies, 4)


class Browser:
    """One headless Chromium with one page attached."""

    def __init__(self, binary: str) -> None:
        self._profile = tempfile.TemporaryDirectory()
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()
        # the child finds our pipes as its fds 3 (commands) and 4 (replies)
        self._proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe",
             "about:blank"],
            pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: _as_fds_3_and_4(to_child, from_child))
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next = 0
        self._session: str | None = None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target,
                                  flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if self._session is not None:
            message["sessionId"] = self._session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._message()
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result

    def _message(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def evaluate(self, expression: str) -> Any:
        """The value of `expression` (a promise is awaited); a thrown error raises."""
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(json.dumps(result["exceptionDetails"])[:2000])
        return result["result"].get("value")

    def open(self, url: str, ready: str, timeout_s: float = 120.0) -> float:
        """Navigate to `url`, wait until `ready` (an expression) is true; the wall time."""
        started = time.perf_counter()
        self.call("Page.navigate", url=url)
        while time.perf_counter() - started < timeout_s:
            try:
                if self.evaluate(ready):
                    return time.perf_counter() - started
            except RuntimeError:
                pass
            time.sleep(0.02)
        raise TimeoutError(url)

    def close(self) -> None:
        with suppress(RuntimeError):
            self.call("Browser.close")
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._write)
        os.close(self._read)
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
