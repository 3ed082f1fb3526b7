"""Nearest-rank percentiles, as the capture-wide summary computes them (the engine's,
src/writers/summary.rs: `analyze -f json`, the table and the HTML report carry it)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile: a value that was actually observed."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]
