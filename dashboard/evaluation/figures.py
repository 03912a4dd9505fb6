"""The arithmetic of the evaluation: medians and 90th percentiles, shares, time covered by intervals. No I/O.

Definitions, the same in every table and stated in the report:

- median: the middle value of the sorted times, or the mean of the two middle ones;
- 90th percentile (p90): nearest rank, the value at position ⌈0.9 n⌉ of the sorted times;
- a share is a percentage with one decimal, None when there is nothing to share out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest rank: the smallest value with at least ``p`` % of the values at or below it."""
    if not values:
        return None
    if not 0 < p <= 100:
        raise ValueError(f"a percentile is within (0, 100], not {p}")
    ordered = sorted(values)
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def p90(values: Sequence[float]) -> float | None:
    return percentile(values, 90)


def share(part: int | float, whole: int | float) -> float | None:
    """``part`` as a percentage of ``whole``, one decimal; None for an empty whole."""
    if not whole:
        return None
    return round(100.0 * part / whole, 1)


def in_minutes(seconds: float | None) -> float | None:
    """Seconds as minutes with one decimal (None stays None)."""
    return None if seconds is None else round(seconds / 60.0, 1)


def in_hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600.0, 1)


def covered(intervals: Iterable[tuple[float, float | None]], start: float, end: float) -> float:
    """Seconds of ``[start, end)`` inside at least one interval; an interval with no end runs to ``end``.

    Overlapping intervals count once: two troubles of one device at the same time are one outage.
    """
    clipped = sorted(
        (max(begin, start), min(end if until is None else until, end))
        for begin, until in intervals
        if begin < end and (until is None or until > start)
    )
    total = 0.0
    current_start: float | None = None
    current_end = start
    for begin, until in clipped:
        if until <= begin:
            continue
        if current_start is None or begin > current_end:
            if current_start is not None:
                total += current_end - current_start
            current_start, current_end = begin, until
        else:
            current_end = max(current_end, until)
    if current_start is not None:
        total += current_end - current_start
    return total
