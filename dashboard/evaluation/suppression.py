"""Small-cell suppression of SAPA counts: what may be published so that no case can be singled out. No I/O.

A SAPA count from 1 to ``threshold - 1`` (default 1 to 4) is never published: with so few alarms, a
reader who knows of one incident (a neighbour, a relative, a colleague) could tell that the count is
about it. Zero and counts at or above the threshold are shown.

Months are the atoms. Every SAPA figure the report publishes is a month cell, or a total that is the sum
of month cells: a quarter's total is the sum of its three months, a year's the sum of its twelve, and
the month, quarter and year reports are all made from the same month cells. A total is published only
when every month cell it adds up is published (:func:`suppressed_total`), so subtracting published
figures from one another, within a report or across the month, quarter and year reports of the same
time, never isolates a hidden month: any difference of published totals is a sum of published months.
For that, a month cell must be the same in every report that shows it: each month is counted as of its
own end (an alarm acknowledged, or resolved as a test, after the month it was opened in is not so in that
month's cells), and a month not over at a report's cut-off is not shown at all (its cells would move as
cases happen, and reloading the report would follow them one by one).

There is no breakdown by kecamatan (nor by site, button or gateway) for SAPA: a kecamatan's month
would almost always be a small cell, and a place is what most narrows a case down. With one dimension
only (the month) and totals only over it, the rule above is the whole protection: complementary
suppression, hiding a second cell so that a hidden one cannot be worked out from a row and a column
total, is needed only when a cell belongs to two totals at once (a kecamatan-by-month grid), which never
happens here.

One count is also derived from two published ones within a month: the alarms not acknowledged, the
month's alarms less those acknowledged. :func:`suppress_part` hides the part when that difference is a
small count too, so that it cannot be worked out by subtraction either.
"""

from __future__ import annotations

from collections.abc import Iterable

from .model import SUPPRESSED, Value, _Suppressed

Published = int | _Suppressed


def suppress(count: int, threshold: int) -> Published:
    """``count`` as it may be published: SUPPRESSED from 1 to ``threshold - 1``, else the count itself."""
    _check(count, threshold)
    return SUPPRESSED if 0 < count < threshold else count


def suppress_part(part: int, whole: int, threshold: int) -> Published:
    """``part`` of ``whole`` (the acknowledged of the alarms): hidden when it, or ``whole - part``, is small.

    The whole is published on its own (through :func:`suppress`); were the part shown while the rest is
    1 to ``threshold - 1``, the rest would be a small count given away by subtraction.
    """
    _check(whole, threshold)
    if not 0 <= part <= whole:
        raise ValueError(f"a part must be within 0..{whole}, not {part}")
    rest = whole - part
    return SUPPRESSED if 0 < part < threshold or 0 < rest < threshold else part


def suppressed_total(cells: Iterable[Value], total: int, threshold: int) -> Published:
    """``total`` of ``cells`` as it may be published: SUPPRESSED if any cell is (it would give that cell away
    by subtraction), else the total passed through :func:`suppress`."""
    if any(cell is SUPPRESSED for cell in cells):
        return SUPPRESSED
    return suppress(total, threshold)


def _check(count: int, threshold: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"a count is an integer of 0 or more, not {count!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 2:
        raise ValueError(f"the suppression threshold is an integer of 2 or more, not {threshold!r}")
