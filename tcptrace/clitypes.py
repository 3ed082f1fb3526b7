"""Command-line value types shared by the commands."""

from __future__ import annotations

import math
from typing import Any

import click

from tcptrace.defaults import MAX_COUNT, MAX_SECONDS
from tcptrace.digits import bounded_int


class FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses inf and nan (which compare as inside any range) and,
    unless told otherwise, values beyond MAX_SECONDS: a one-line usage error, exit 2."""

    def __init__(self, min: float | None = 0, max: float | None = MAX_SECONDS,
                 min_open: bool = False) -> None:
        super().__init__(min=min, max=max, min_open=min_open)

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)  # inf fails the range, nan passes it
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
"""Size suffixes: powers of 1024, as `--resume-max-bytes` documents (`KiB` and so on are
taken too); `KB` (1000 for some tools, 1024 for others) is refused rather than guessed."""


class ByteSize(click.types.IntParamType):
    """A size in bytes: digits with an optional suffix K, M, G or T (KiB, MiB, GiB, TiB:
    powers of 1024), at most MAX_COUNT; anything else a one-line usage error, exit 2."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        unit = text.lstrip("0123456789")
        digits = text[:len(text) - len(unit)]
        unit = unit.upper().removesuffix("IB")
        if not digits or not digits.isascii() or unit not in SIZE_UNITS:
            self.fail(f"{value!r} is not a size (bytes, or with K, M, G or T: powers of "
                      "1024).", param, ctx)
        number = bounded_int(digits, MAX_COUNT // SIZE_UNITS[unit])
        if number is None:
            self.fail(f"{value!r} is larger than {MAX_COUNT} bytes.", param, ctx)
        return number * SIZE_UNITS[unit]


class Count(click.IntRange):
    """An IntRange whose top, unless told otherwise, is MAX_COUNT (what the engine's 64-bit
    integers hold): a larger value is a one-line usage error, exit 2."""

    def __init__(self, min: int = 1, max: int = MAX_COUNT) -> None:
        super().__init__(min=min, max=max)
