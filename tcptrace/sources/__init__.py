"""Capture sources that Python drives: live capture through libpcap (`sources.live`).

Capture files are read by the native engine itself (src/sources/ in the crate).
"""
