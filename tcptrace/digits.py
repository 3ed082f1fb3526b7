"""Whole numbers typed by a user (ports, counts, sizes), read within a bound.

Python's int() refuses digit strings over 4300 characters with a ValueError (a guard
against quadratic conversions) and takes other scripts' digits ("\u0663"); a command line
or a rules file may hold either. This reads only ASCII digits, and only as many as the
bound can have, so an absurd value is "out of range", never a traceback.
"""

from __future__ import annotations


def bounded_int(text: str, top: int) -> int | None:
    """`text` as an int if it is ASCII digits (leading zeros allowed) worth at most `top`;
    else None."""
    if not (text.isascii() and text.isdigit()):
        return None
    significant = text.lstrip("0") or "0"
    if len(significant) > len(str(top)):
        return None
    value = int(significant)
    return value if value <= top else None
