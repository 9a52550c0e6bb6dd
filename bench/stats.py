"""Small statistics and formatting helpers for the benchmark tables.

Owns medians, percentiles, number formatting and the rotated order of repetitions; it
must never measure anything.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def rotated(items: Sequence[T], turn: int) -> list[T]:
    """``items`` in the order of repetition ``turn``: each starts a repetition in turn, so
    a burst of other load does not always fall on the same one."""
    if not items:
        return []
    shift = turn % len(items)
    return [*items[shift:], *items[:shift]]


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0.0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(1, min(len(ordered), math.ceil(pct / 100.0 * len(ordered))))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def spread_percent(values: Sequence[float]) -> float | None:
    """(max - min) / median in %: how far apart the repetitions were."""
    mid = median(values)
    if not values or not mid:
        return None
    return (max(values) - min(values)) / mid * 100.0


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 1000 and digits <= 1:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"
