"""Capture sources: the only stage that does I/O. Each yields FrameBatch objects."""

from tcptrace.sources.batch import FrameBatch, SourceStats
from tcptrace.sources.files import open_capture, read_captures

__all__ = ["FrameBatch", "SourceStats", "open_capture", "read_captures"]
