"""What an evaluation report is made of: sections of tables and charts, each table with its definition. No I/O.

Builders (``fire``, ``sapa``, ``perda``) fill a :class:`Report`; the renderers (HTML, PDF) and the open
data (CSV, JSON and their metadata) only read it, so every output shows the very same numbers. A cell
hidden by small-cell suppression holds :data:`SUPPRESSED`, never its value: nothing downstream can leak it.
Texts are i18n keys (``dashboard/translations``), read in the reader's language when rendered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from .period import Period


class _Suppressed:
    """A count below the suppression threshold, or one that would let such a count be worked out."""

    _instance: _Suppressed | None = None

    def __new__(cls) -> _Suppressed:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "SUPPRESSED"

    def __reduce__(self) -> str:
        return "SUPPRESSED"


SUPPRESSED: Final = _Suppressed()

#: What a cell may hold: None is "no figure" (a median of no alarms), not zero.
Value = int | float | str | None | _Suppressed


class ColumnType(StrEnum):
    """Frictionless Table Schema field types, which the open data's metadata names."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"


class Unit(StrEnum):
    """Units a column's numbers are in (open-data metadata ``unit``, and the i18n key ``unit_<value>``)."""

    ALARMS = "alarms"
    REPORTS = "reports"
    TROUBLES = "troubles"
    DEVICES = "devices"
    BUTTONS = "buttons"
    NOTICES = "notices"
    SECONDS = "seconds"
    MINUTES = "minutes"
    HOURS = "hours"
    DAYS = "days"
    PERCENT = "percent"


@dataclass(frozen=True, slots=True)
class Column:
    """One column: ``key`` is its CSV header and JSON field; ``label_key`` its heading's i18n key.

    ``code_prefix``: the column holds codes (a trouble type, a report category) shown as
    ``_(code_prefix + value)``; the open data keeps the code.
    """

    key: str
    label_key: str
    type: ColumnType = ColumnType.INTEGER
    unit: Unit | None = None
    code_prefix: str | None = None
    #: ``label_key`` is the heading itself (a month such as "2026-07"), not an i18n key.
    literal: bool = False
    #: For a column of codes named by the data rather than by i18n keys (a report category):
    #: code -> {language -> name}. A code it lacks is shown as is.
    names: dict[str, dict[str, str]] | None = None


@dataclass(slots=True)
class Table:
    """A table of the report; with ``open_data`` it is also a dataset (``/open-data/<period>/<id>.csv``).

    ``id`` is stable (it names the dataset); ``definition_key`` says exactly what is counted and how.
    ``total`` marks the last row as the total of the rows above it (shown apart).
    """

    id: str
    title_key: str
    definition_key: str
    columns: tuple[Column, ...]
    rows: list[tuple[Value, ...]] = field(default_factory=list)
    open_data: bool = True
    total: bool = False
    #: i18n keys of notes shown under the table (for instance "cells below 5 are hidden").
    note_keys: tuple[str, ...] = ()
    #: What the table says when it has no rows.
    empty_key: str = "evaluation_no_rows"

    def __post_init__(self) -> None:
        for row in self.rows:
            self.check_row(row)

    def add(self, *values: Value) -> None:
        self.check_row(values)
        self.rows.append(tuple(values))

    def check_row(self, row: Sequence[Value]) -> None:
        if len(row) != len(self.columns):
            raise ValueError(f"table {self.id}: a row of {len(row)} values for {len(self.columns)} columns")

    def column(self, key: str) -> list[Value]:
        index = [column.key for column in self.columns].index(key)
        return [row[index] for row in self.rows]

    @property
    def suppressed_cells(self) -> int:
        return sum(1 for row in self.rows for value in row if value is SUPPRESSED)


@dataclass(frozen=True, slots=True)
class Series:
    label_key: str
    values: tuple[float | None, ...]


@dataclass(slots=True)
class Chart:
    """A bar chart drawn on the server (SVG in the page, vector drawing in the PDF).

    ``labels`` are the bars' names (translated as ``_(label_prefix + label)`` when a prefix is set);
    a suppressed value is never charted: the builder passes None, drawn as a gap with a mark.
    """

    id: str
    title_key: str
    labels: tuple[str, ...]
    series: tuple[Series, ...]
    unit: Unit
    label_prefix: str | None = None
    horizontal: bool = False
    #: The table it illustrates: the chart's text alternative points readers to it.
    table_id: str | None = None


@dataclass(slots=True)
class Section:
    id: str  # "fire", "sapa", "perda"
    title_key: str
    intro_key: str
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)


@dataclass(slots=True)
class Report:
    """One period's evaluation.

    Every figure counts only what was recorded before ``data_until`` (the period's end, or the
    moment of generation for a period not yet over), so a closed period's report gives the same
    numbers whenever it is made again.
    """

    period: Period
    generated_at: float
    data_until: float
    version: str
    suppression_threshold: int
    sections: list[Section] = field(default_factory=list)
    #: The open data's metadata (``[evaluation]``): producer, licence, region code.
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def data_from(self) -> float:
        return self.period.start

    @property
    def complete(self) -> bool:
        """Whether the period was over when the report was made (its numbers are final)."""
        return self.data_until >= self.period.end

    def tables(self) -> list[Table]:
        return [table for section in self.sections for table in section.tables]

    def table(self, table_id: str) -> Table:
        for table in self.tables():
            if table.id == table_id:
                return table
        raise KeyError(table_id)
