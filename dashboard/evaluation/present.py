"""The report's texts in the reader's language: numbers, headings, cells, period names and times. No I/O.

Both renderers (the HTML page and the PDF) show a :class:`Document` made here, so they print the very
same words and figures. Indonesian numbers take a decimal comma and dot thousands (``1.234,5``), English
ones the reverse (``1,234.5``). A hidden (suppressed) cell is shown as ``<threshold``, never as a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from babel.dates import format_date, format_datetime
from markupsafe import Markup, escape

from ..defaults import LOCAL_TIME
from ..i18n import MESSAGES, translate_to
from .model import SUPPRESSED, Chart, Column, ColumnType, Report, Section, Table, Unit, Value
from .period import Granularity, Period

#: What a cell without a figure shows (a median of nothing): not zero, which would be a figure.
NO_FIGURE = "\u2013"

_QUARTER_KEYS = {
    1: "evaluation_ui_quarter_1",
    2: "evaluation_ui_quarter_2",
    3: "evaluation_ui_quarter_3",
    4: "evaluation_ui_quarter_4",
}
_UNIT_KEYS = {
    Unit.ALARMS: "evaluation_ui_unit_alarms",
    Unit.REPORTS: "evaluation_ui_unit_reports",
    Unit.TROUBLES: "evaluation_ui_unit_troubles",
    Unit.DEVICES: "evaluation_ui_unit_devices",
    Unit.BUTTONS: "evaluation_ui_unit_buttons",
    Unit.NOTICES: "evaluation_ui_unit_notices",
    Unit.SECONDS: "evaluation_ui_unit_seconds",
    Unit.MINUTES: "evaluation_ui_unit_minutes",
    Unit.HOURS: "evaluation_ui_unit_hours",
    Unit.DAYS: "evaluation_ui_unit_days",
    Unit.PERCENT: "evaluation_ui_unit_percent",
}
#: Units a heading names (a time could be in any of them); a count's unit is plain from its heading.
_TIME_UNITS = frozenset({Unit.SECONDS, Unit.MINUTES, Unit.HOURS, Unit.DAYS})
#: Codes the builders use in columns of names (a kecamatan, a gateway) that have no name of their own.
_GENERIC_CODES = {"total": "evaluation_ui_total", "unknown": "evaluation_ui_unknown"}


def text(language: str, key: str, **values: object) -> str:
    """The text of a key held in data (a table's title, a column's label), in ``language``."""
    return translate_to(language, key, **values)


class _Kept(dict[str, object]):
    """Placeholders a text may hold: the threshold is filled in, any other stays as it is written."""

    def __missing__(self, name: str) -> str:
        return "{" + name + "}"


def with_threshold(language: str, key: str, threshold: int) -> str:
    """A builder's note or intro, which may name the report's suppression threshold as ``{threshold}``."""
    written = text(language, key)
    try:
        return written.format_map(_Kept(threshold=threshold))
    except (ValueError, IndexError):  # a brace that is no placeholder: the text is shown as written
        return written


def has_text(language: str, key: str) -> bool:
    return key in MESSAGES[language]


# -- numbers and cells --------------------------------------------------------------------------------


def number(value: int | float, language: str, *, decimals: int | None = None) -> str:
    """``value`` with the reader's separators; ``decimals`` defaults to none for an int, one for a float."""
    if decimals is None:
        decimals = 0 if isinstance(value, int) else 1
    written = f"{value:,.{decimals}f}"
    if language == "id":  # swap the separators through a character no number holds
        written = written.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return written


def suppressed_mark(threshold: int) -> str:
    """What a hidden count shows: that it is below the threshold, and nothing more."""
    return f"<{threshold}"


@dataclass(frozen=True, slots=True)
class Cell:
    """One cell as shown: ``spoken`` is what a screen reader says instead of the mark (a dash, ``<5``)."""

    text: str
    spoken: str | None = None
    numeric: bool = False

    def html(self) -> Markup:
        if self.spoken is None:
            return escape(self.text)
        return Markup('<span aria-hidden="true">{}</span><span class="visually-hidden">{}</span>').format(
            self.text, self.spoken
        )


def show(value: Value, column: Column, language: str, *, threshold: int) -> Cell:
    """A table's value as the reader sees it (see :func:`cell` for the rules)."""
    if value is SUPPRESSED:
        hidden = translate_to(language, "evaluation_ui_hidden_below", threshold=threshold)
        return Cell(suppressed_mark(threshold), hidden, True)
    if value is None:
        spoken = translate_to(language, "evaluation_ui_no_figure")
        return Cell(NO_FIGURE, spoken, column.type is not ColumnType.STRING)
    if isinstance(value, bool):
        raise TypeError(f"column {column.key}: a yes/no is not a figure ({value!r})")
    if isinstance(value, int | float) and column.type is not ColumnType.STRING:
        decimals = 1 if column.type is ColumnType.NUMBER or not float(value).is_integer() else 0
        written = number(value, language, decimals=decimals)
        return Cell(f"{written}%" if column.unit is Unit.PERCENT else written, numeric=True)
    return Cell(code_name(str(value), column, language))


def cell(value: Value, column: Column, language: str, *, threshold: int) -> str:
    """A table's value as text in ``language``.

    A hidden count is ``<threshold``; no figure is a dash; numbers take the language's separators (one
    decimal in a ``number`` column), a percentage its ``%``; a code is named through ``code_prefix`` or
    ``names``; any other text is shown as it is.
    """
    return show(value, column, language, threshold=threshold).text


def code_name(code: str, column: Column, language: str) -> str:
    """A code's name: from the column's ``names`` or its ``code_prefix`` key; "total" and "unknown" by the
    report's own words; anything else (a kecamatan, a month) as it is."""
    if column.names and code in column.names:
        names = column.names[code]
        return names.get(language) or next(iter(names.values()), code)
    if column.code_prefix and has_text(language, column.code_prefix + code):
        return text(language, column.code_prefix + code)
    if code in _GENERIC_CODES:
        return translate_to(language, _GENERIC_CODES.get(code, "evaluation_ui_unknown"))
    return code


def unit_name(unit: Unit | None, language: str) -> str:
    return "" if unit is None else translate_to(language, _UNIT_KEYS.get(unit, "evaluation_ui_unit_alarms"))


def heading(column: Column, language: str) -> str:
    """A column's heading: a literal one (a month) as it is, else its label, with a time's unit named."""
    if column.literal:
        return column.label_key
    label = text(language, column.label_key)
    if column.unit in _TIME_UNITS:
        unit = unit_name(column.unit, language)
        if unit.lower() not in label.lower():
            label = f"{label} ({unit})"
    return label


# -- periods and times --------------------------------------------------------------------------------


def period_name(period: Period, language: str) -> str:
    """``Triwulan III 2026`` / ``Q3 2026``, ``Juli 2026`` / ``July 2026``, ``Tahun 2026`` / ``Year 2026``."""
    if period.granularity is Granularity.MONTH:
        return format_date(date(period.year, period.first_month, 1), "LLLL y", locale=language)
    if period.granularity is Granularity.QUARTER:
        quarter = (period.first_month - 1) // 3 + 1
        return translate_to(language, _QUARTER_KEYS.get(quarter, "evaluation_ui_quarter_1"), year=period.year)
    return translate_to(language, "evaluation_ui_period_year", year=period.year)


def moment(epoch: float, language: str, *, seconds: bool = False) -> str:
    """An instant in the regency's local time (WITA), written the reader's way, without the zone's name."""
    pattern = "d MMMM y, HH:mm:ss" if seconds else "d MMMM y, HH:mm"
    return format_datetime(datetime.fromtimestamp(epoch, LOCAL_TIME), pattern, tzinfo=LOCAL_TIME, locale=language)


def data_range(report: Report, language: str) -> str:
    """What the figures cover: from the period's start up to (not including) the cut-off, in WITA."""
    return translate_to(
        language,
        "evaluation_ui_data_range",
        start=moment(report.data_from, language),
        until=moment(report.data_until, language),
    )


def generated(report: Report, language: str) -> str:
    return translate_to(language, "evaluation_ui_generated_at", at=moment(report.generated_at, language, seconds=True))


def software(report: Report, language: str) -> str:
    return translate_to(language, "evaluation_ui_software", version=report.version)


# -- the whole report -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShownTable:
    id: str
    title: str
    definition: str
    notes: tuple[str, ...]
    headings: tuple[str, ...]
    numeric: tuple[bool, ...]
    rows: tuple[tuple[Cell, ...], ...]
    #: The total row (shown apart, at the foot), or None.
    total: tuple[Cell, ...] | None
    empty: str


@dataclass(frozen=True, slots=True)
class ShownChart:
    id: str
    title: str
    labels: tuple[str, ...]
    series: tuple[str, ...]
    values: tuple[tuple[float | None, ...], ...]
    unit: Unit
    unit_text: str
    horizontal: bool
    #: The title of the table holding the figures, which the chart's text alternative points to.
    table_id: str | None
    table_title: str | None


@dataclass(frozen=True, slots=True)
class ShownSection:
    id: str
    title: str
    intro: str
    tables: tuple[ShownTable, ...]
    charts: tuple[ShownChart, ...]

    def charts_of(self, table_id: str) -> tuple[ShownChart, ...]:
        return tuple(chart for chart in self.charts if chart.table_id == table_id)

    @property
    def loose_charts(self) -> tuple[ShownChart, ...]:
        """Charts of no table of this section: shown after its tables."""
        ids = {table.id for table in self.tables}
        return tuple(chart for chart in self.charts if chart.table_id not in ids)


@dataclass(frozen=True, slots=True)
class Document:
    language: str
    period_key: str
    title: str
    period: str
    complete: bool
    provisional: str | None
    facts: tuple[tuple[str, str], ...]
    data_range: str
    generated: str
    software: str
    producer: str
    sections: tuple[ShownSection, ...]


def show_table(table: Table, language: str, threshold: int) -> ShownTable:
    def row_of(values: tuple[Value, ...]) -> tuple[Cell, ...]:
        pairs = zip(values, table.columns, strict=True)
        return tuple(show(value, column, language, threshold=threshold) for value, column in pairs)

    rows = [row_of(values) for values in table.rows]
    total = rows.pop() if table.total and rows else None
    if total is not None and total[0].text in ("", NO_FIGURE):
        total = (Cell(translate_to(language, "evaluation_ui_total")), *total[1:])
    return ShownTable(
        id=table.id,
        title=text(language, table.title_key),
        definition=text(language, table.definition_key),
        notes=tuple(with_threshold(language, key, threshold) for key in table.note_keys),
        headings=tuple(heading(column, language) for column in table.columns),
        numeric=tuple(column.type is not ColumnType.STRING for column in table.columns),
        rows=tuple(rows),
        total=total,
        empty=text(language, table.empty_key),
    )


def chart_labels(chart: Chart, language: str, report: Report | None = None) -> tuple[str, ...]:
    """The bars' names: through ``label_prefix``, else the named codes of the chart's table's first column."""
    if chart.label_prefix:
        prefix = chart.label_prefix
        return tuple(text(language, prefix + label) if has_text(language, prefix + label) else label
                     for label in chart.labels)  # fmt: skip
    column = _first_column(chart, report)
    if column is None:
        return chart.labels
    return tuple(code_name(label, column, language) for label in chart.labels)


def _first_column(chart: Chart, report: Report | None) -> Column | None:
    if report is None or chart.table_id is None:
        return None
    try:
        return report.table(chart.table_id).columns[0]
    except KeyError:
        return None


def show_chart(chart: Chart, language: str, report: Report | None = None) -> ShownChart:
    table_title = None
    if report is not None and chart.table_id is not None:
        try:
            table_title = text(language, report.table(chart.table_id).title_key)
        except KeyError:
            table_title = None
    for series in chart.series:
        if len(series.values) != len(chart.labels):
            raise ValueError(f"chart {chart.id}: {len(series.values)} values for {len(chart.labels)} labels")
    return ShownChart(
        id=chart.id,
        title=text(language, chart.title_key),
        labels=chart_labels(chart, language, report),
        series=tuple(text(language, series.label_key) for series in chart.series),
        values=tuple(series.values for series in chart.series),
        unit=chart.unit,
        unit_text=unit_name(chart.unit, language),
        horizontal=chart.horizontal,
        table_id=chart.table_id,
        table_title=table_title,
    )


def show_section(section: Section, language: str, report: Report) -> ShownSection:
    threshold = report.suppression_threshold
    return ShownSection(
        id=section.id,
        title=text(language, section.title_key),
        intro=with_threshold(language, section.intro_key, threshold),
        tables=tuple(show_table(table, language, threshold) for table in section.tables),
        charts=tuple(show_chart(chart, language, report) for chart in section.charts),
    )


def present(report: Report, language: str) -> Document:
    """Everything the reader is shown of ``report``, in ``language``."""
    meta = report.meta
    name = period_name(report.period, language)
    region = meta.get("region_name") or ""
    if meta.get("region_code"):
        region = f"{region} ({meta['region_code']})".strip()
    facts = [
        (translate_to(language, "evaluation_ui_period"), name),
        (translate_to(language, "evaluation_ui_region"), region),
        (translate_to(language, "evaluation_ui_producer"), str(meta.get("producer") or "")),
        (translate_to(language, "evaluation_ui_data"), data_range(report, language)),
        (translate_to(language, "evaluation_ui_generated"), moment(report.generated_at, language, seconds=True)),
        (translate_to(language, "evaluation_ui_version"), report.version),
    ]
    if meta.get("licence"):
        facts.append((translate_to(language, "evaluation_ui_licence"), str(meta["licence"])))
    provisional = None
    if not report.complete:
        provisional = translate_to(language, "evaluation_ui_provisional", until=moment(report.data_until, language))
    return Document(
        language=language,
        period_key=report.period.key,
        title=translate_to(language, "evaluation_ui_report_heading", period=name),
        period=name,
        complete=report.complete,
        provisional=provisional,
        facts=tuple((label, value) for label, value in facts if value),
        data_range=data_range(report, language),
        generated=generated(report, language),
        software=software(report, language),
        producer=str(meta.get("producer") or ""),
        sections=tuple(show_section(section, language, report) for section in report.sections),
    )
