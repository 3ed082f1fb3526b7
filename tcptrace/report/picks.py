"""Which connections' segment traces the HTML report embeds: the engine picks them as the
records come (src/page/picks.rs: bounded heaps of RSTs, the slowest handshakes, stalls, the
longest and the largest connections, taking turns within a budget of segments)."""

TRACE_BUDGET = 100_000
"""Segments embedded in all, by default (about 1.2 MB of compressed, base64 page text)."""
