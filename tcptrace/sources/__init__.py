"""Capture sources: the only stage that does I/O. Each yields FrameBatch objects.

The names are loaded on first use: `tcptrace.sources.live` (the live capture, which the
native engine analyzes) must not pull in numpy through the file readers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tcptrace.sources.batch import FrameBatch, SourceStats
    from tcptrace.sources.files import open_capture, read_captures

__all__ = ["FrameBatch", "SourceStats", "open_capture", "read_captures"]
_HOMES = {"FrameBatch": "batch", "SourceStats": "batch", "open_capture": "files",
          "read_captures": "files"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"tcptrace.sources.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
