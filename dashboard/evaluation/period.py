"""The period an evaluation covers: a month, a quarter or a year of the regency's local time (WITA). No I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from firmware_bridge.errors import SiagaError

from ..defaults import LOCAL_TIME

_PATTERN = re.compile(r"^(?P<year>\d{4})(?:-(?:(?P<month>0[1-9]|1[0-2])|Q(?P<quarter>[1-4])))?$")
#: The first year a period may name: nothing older was ever stored, and it keeps years four digits.
FIRST_YEAR = 2000
LAST_YEAR = 9998


class BadPeriod(SiagaError, ValueError):
    """A period that is not ``YYYY``, ``YYYY-Qn`` or ``YYYY-MM``."""


class Granularity(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """``[start, end)`` in epoch seconds, from local midnight of the first day to that of the day after the last."""

    year: int
    first_month: int
    months: int  # 1, 3 or 12

    @classmethod
    def parse(cls, text: str) -> Period:
        """``2026`` (a year), ``2026-Q3`` (a quarter) or ``2026-07`` (a month)."""
        match = _PATTERN.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise BadPeriod(f"a period is YYYY, YYYY-Qn or YYYY-MM, not {text!r}")
        year = int(match["year"])
        if not FIRST_YEAR <= year <= LAST_YEAR:
            raise BadPeriod(f"the year must be within {FIRST_YEAR}..{LAST_YEAR}, not {year}")
        if match["month"]:
            return cls(year, int(match["month"]), 1)
        if match["quarter"]:
            return cls(year, 3 * (int(match["quarter"]) - 1) + 1, 3)
        return cls(year, 1, 12)

    @classmethod
    def containing(cls, epoch: float, granularity: Granularity) -> Period:
        """The month, quarter or year (local time) that holds the instant ``epoch``."""
        local = datetime.fromtimestamp(epoch, LOCAL_TIME)
        if granularity is Granularity.MONTH:
            return cls(local.year, local.month, 1)
        if granularity is Granularity.QUARTER:
            return cls(local.year, 3 * ((local.month - 1) // 3) + 1, 3)
        return cls(local.year, 1, 12)

    @property
    def granularity(self) -> Granularity:
        return {1: Granularity.MONTH, 3: Granularity.QUARTER, 12: Granularity.YEAR}[self.months]

    @property
    def key(self) -> str:
        """The period as it is written in URLs and file names: ``2026``, ``2026-Q3``, ``2026-07``."""
        if self.months == 1:
            return f"{self.year}-{self.first_month:02d}"
        if self.months == 3:
            return f"{self.year}-Q{(self.first_month - 1) // 3 + 1}"
        return f"{self.year}"

    def __str__(self) -> str:
        return self.key

    @property
    def start(self) -> float:
        return _local_midnight(self.year, self.first_month)

    @property
    def end(self) -> float:
        """The first instant after the period."""
        month = self.first_month + self.months
        return _local_midnight(self.year + (month - 1) // 12, (month - 1) % 12 + 1)

    def month_keys(self) -> list[str]:
        """The local months it covers, ``YYYY-MM``, in order."""
        return [f"{self.year}-{month:02d}" for month in range(self.first_month, self.first_month + self.months)]

    def month_starts(self) -> list[float]:
        """Each of its months' first instant, then the period's end: ``bisect`` finds an instant's month."""
        months = range(self.first_month, self.first_month + self.months)
        starts = [_local_midnight(self.year, month) for month in months]
        return [*starts, self.end]

    def closed(self, now: float) -> bool:
        """Whether the period is over: its figures can no longer change."""
        return now >= self.end

    def previous(self) -> Period:
        month = self.first_month - self.months
        return Period(self.year + (month - 1) // 12, (month - 1) % 12 + 1, self.months)

    def following(self) -> Period:
        month = self.first_month + self.months
        return Period(self.year + (month - 1) // 12, (month - 1) % 12 + 1, self.months)


def _local_midnight(year: int, month: int) -> float:
    return datetime(year, month, 1, tzinfo=LOCAL_TIME).timestamp()
