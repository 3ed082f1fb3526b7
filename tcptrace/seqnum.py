"""Sequence-number arithmetic modulo 2**32 (RFC 9293 section 3.4)."""

MOD = 1 << 32
HALF = 1 << 31


def seq_diff(a: int, b: int) -> int:
    """a - b as a signed distance in sequence space."""
    d = (a - b) & 0xFFFFFFFF
    return d - MOD if d >= HALF else d


def seq_add(a: int, n: int) -> int:
    return (a + n) & 0xFFFFFFFF
