"""Command-line value types shared by the commands."""

from __future__ import annotations

import math
from typing import Any

import click

from tcptrace.defaults import MAX_COUNT, MAX_SECONDS


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


class Count(click.IntRange):
    """An IntRange whose top, unless told otherwise, is MAX_COUNT (what the engine's 64-bit
    integers hold): a larger value is a one-line usage error, exit 2."""

    def __init__(self, min: int = 1, max: int = MAX_COUNT) -> None:
        super().__init__(min=min, max=max)
