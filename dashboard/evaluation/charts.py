"""Bar charts drawn on the server: one geometry for a chart, as inline SVG for the page and vector bars in the PDF.

No I/O and no script: the page's CSP allows neither inline style nor outside resources, so the SVG uses
presentation attributes only. A bar with no figure (none, or hidden by suppression: the builders never chart
a hidden count) is drawn as a dash where the bar would stand, and the chart's text alternative says so and
names the table that holds the figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from markupsafe import Markup, escape

from ..i18n import translate_to
from .model import Chart, Report, Unit
from .present import NO_FIGURE, ShownChart, number, show_chart

#: A text's width in drawing units at a font size (the PDF measures with its font; the page estimates).
Measure = Callable[[str, float], float]

WIDTH = 720.0
FONT = 12.0
SMALL = 11.0
LINE = 15.0
PLOT_HEIGHT = 200.0
BAR_THICKNESS = 16.0
GROUP_GAP = 10.0
LEGEND_SWATCH = 11.0
#: Where the unit's name stands, above the plot; a legend (two series or more) goes on the line below.
UNIT_BASELINE = 4.0 + SMALL
#: Values above bars are not drawn smaller than this: the table and the text alternative hold them anyway.
MIN_VALUE_SIZE = 7.0
#: A label column takes at most this share of a horizontal chart's width; longer names wrap, then shorten.
LABEL_SHARE = 0.4

#: Bar colours on the page's dark background (each with a contrast of 3:1 or more against it).
SCREEN_COLOURS = ("#f5a623", "#5ab0ff", "#3ecf6e", "#c58bff")
SCREEN_TEXT = "#e8eaf0"
SCREEN_GRID = "#3a444e"
SCREEN_AXIS = "#8a94a6"


#: Units of things counted: whole numbers, shown without decimals.
_COUNTS = frozenset({Unit.ALARMS, Unit.REPORTS, Unit.TROUBLES, Unit.DEVICES, Unit.BUTTONS, Unit.NOTICES})


def estimate(text: str, size: float) -> float:
    """A sans-serif text's width, generously: the page's font is the reader's, so only a guess is possible."""
    return len(text) * size * 0.58


@dataclass(frozen=True, slots=True)
class Text:
    x: float
    y: float  # the baseline
    text: str
    anchor: str = "start"  # "start", "middle" or "end", as SVG's text-anchor
    size: float = FONT


@dataclass(frozen=True, slots=True)
class Bar:
    series: int
    index: int
    x: float
    y: float
    width: float
    height: float
    label: str
    value: float | None
    value_text: str


@dataclass(frozen=True, slots=True)
class Tick:
    value: float
    text: str
    #: Where it is on the value axis: an x for a horizontal chart, a y for a vertical one.
    at: float


@dataclass(frozen=True, slots=True)
class Swatch:
    series: int
    x: float
    y: float
    size: float


@dataclass(frozen=True, slots=True)
class Geometry:
    """Everything drawn, in one coordinate system from (0, 0) at the top left, ``width`` by ``height``."""

    width: float
    height: float
    horizontal: bool
    #: The plot area: left, top, right, bottom.
    plot: tuple[float, float, float, float]
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    texts: tuple[Text, ...]
    swatches: tuple[Swatch, ...]
    #: Whether some bar has no figure (its dash needs the note under the chart).
    gaps: bool


def nice_scale(top: float, *, integers: bool, steps: int = 5) -> tuple[float, float]:
    """A round step (1, 2, 2.5 or 5 times a power of ten) and the axis's end, at or above ``top``."""
    top = top if top > 0 else 1.0
    raw = top / steps
    magnitude = 10 ** math.floor(math.log10(raw))
    multipliers = (1, 2, 5, 10) if integers else (1, 2, 2.5, 5, 10)
    step = next(m * magnitude for m in multipliers if m * magnitude >= raw * (1 - 1e-9))
    if integers:
        step = max(1.0, float(math.ceil(step)))
    end = math.ceil(top / step - 1e-9) * step
    return step, round(end, 10)


def _ticks(top: float, unit: Unit, language: str, start: float, length: float, *, downwards: bool) -> list[Tick]:
    step, end = nice_scale(top, integers=unit in _COUNTS)
    decimals = 0 if float(step).is_integer() else 1
    ticks = []
    for n in range(round(end / step) + 1):
        value = round(n * step, 10)
        offset = length * value / end
        written = number(value, language, decimals=decimals) + ("%" if unit is Unit.PERCENT else "")
        ticks.append(Tick(value, written, start - offset if downwards else start + offset))
    return ticks


def _value_text(value: float | None, unit: Unit, language: str) -> str:
    if value is None:
        return NO_FIGURE
    decimals = 0 if unit in _COUNTS and float(value).is_integer() else 1
    written = number(value, language, decimals=decimals)
    return f"{written}%" if unit is Unit.PERCENT else written


def _fit(text: str, width: float, size: float, measure: Measure, lines: int = 2) -> list[str]:
    """``text`` wrapped at spaces into at most ``lines`` lines of ``width``; the last shortened with "…"."""
    words = text.split()
    out: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}".strip()
        if current and measure(candidate, size) > width:
            out.append(current)
            current = word
        else:
            current = candidate
    out.append(current)
    if len(out) > lines:
        out = [*out[: lines - 1], " ".join(out[lines - 1 :])]
    last = out[-1]
    if measure(last, size) > width:
        while last and measure(last + "…", size) > width:
            last = last[:-1]
        out[-1] = last.rstrip() + "…"
    return out


def _legend(shown: ShownChart, y: float, left: float, measure: Measure) -> tuple[list[Swatch], list[Text]]:
    if len(shown.series) < 2:
        return [], []
    swatches, texts = [], []
    x = left
    for index, name in enumerate(shown.series):
        swatches.append(Swatch(index, x, y - LEGEND_SWATCH + 2, LEGEND_SWATCH))
        texts.append(Text(x + LEGEND_SWATCH + 5, y, name, size=SMALL))
        x += LEGEND_SWATCH + 5 + measure(name, SMALL) + 18
    return swatches, texts


def layout(shown: ShownChart, language: str, measure: Measure = estimate, width: float = WIDTH) -> Geometry:
    """Where every bar, tick, label and value of ``shown`` goes."""
    if shown.horizontal:
        return _horizontal(shown, language, measure, width)
    return _vertical(shown, language, measure, width)


def _top_value(shown: ShownChart) -> float:
    """The axis must reach this: the highest value, and for shares the whole (100 %), so that 2 % looks small."""
    top = max((v for series in shown.values for v in series if v is not None), default=0.0)
    return max(top, 100.0) if shown.unit is Unit.PERCENT else top


def _value_size(shown: ShownChart, language: str, measure: Measure, room: float) -> float:
    """The type size at which every value fits above its bar; 0 when only an unreadably small one would (the
    figures are in the table and the text alternative then)."""
    widest = max((measure(_value_text(v, shown.unit, language), SMALL) for s in shown.values for v in s), default=0)
    if widest <= room * 0.95:
        return SMALL
    size = SMALL * room * 0.95 / widest
    return round(size, 1) if size >= MIN_VALUE_SIZE else 0.0


def _vertical(shown: ShownChart, language: str, measure: Measure, width: float) -> Geometry:
    count = max(len(shown.labels), 1)
    series = max(len(shown.values), 1)
    swatches, legend = _legend(shown, UNIT_BASELINE + LINE, 8.0, measure)
    top = UNIT_BASELINE + (LINE if swatches else 0.0) + 6.0 + LINE  # the values above the highest bars
    probe = _ticks(_top_value(shown), shown.unit, language, 0, 1, downwards=True)
    left = 8.0 + max(measure(tick.text, SMALL) for tick in probe) + 8.0
    right = width - 8.0
    slot = (right - left) / count
    label_lines = [_fit(label, slot - 4, SMALL, measure) for label in shown.labels]
    bottom = top + PLOT_HEIGHT
    height = bottom + 6 + LINE * max((len(lines) for lines in label_lines), default=1) + 4
    ticks = _ticks(_top_value(shown), shown.unit, language, bottom, PLOT_HEIGHT, downwards=True)
    end = ticks[-1].value
    texts = [Text(8.0, UNIT_BASELINE, shown.unit_text, size=SMALL), *legend]
    texts += [Text(left - 6, tick.at + 4, tick.text, "end", SMALL) for tick in ticks]
    bar_width = min(slot * 0.8 / series, 60.0)
    value_size = _value_size(shown, language, measure, slot / series)
    bars = []
    gaps = False
    for index, label in enumerate(shown.labels):
        group_left = left + index * slot + (slot - bar_width * series) / 2
        for s, values in enumerate(shown.values):
            value = values[index]
            height_of = 0.0 if value is None else PLOT_HEIGHT * value / end
            x = group_left + s * bar_width
            written = _value_text(value, shown.unit, language)
            bars.append(Bar(s, index, x, bottom - height_of, bar_width * 0.9, height_of, label, value, written))
            gaps = gaps or value is None
            if value_size:
                texts.append(Text(x + bar_width * 0.45, bottom - height_of - 4, written, "middle", value_size))
        centre = left + index * slot + slot / 2
        for n, line in enumerate(label_lines[index]):
            texts.append(Text(centre, bottom + 6 + LINE * (n + 1) - 3, line, "middle", SMALL))
    return Geometry(width, height, False, (left, top, right, bottom), tuple(bars), tuple(ticks), tuple(texts),
                    tuple(swatches), gaps)  # fmt: skip


def _horizontal(shown: ShownChart, language: str, measure: Measure, width: float) -> Geometry:
    series = max(len(shown.values), 1)
    band = series * BAR_THICKNESS + GROUP_GAP
    swatches, legend = _legend(shown, UNIT_BASELINE + LINE, 8.0, measure)
    top = UNIT_BASELINE + (LINE if swatches else 0.0) + 10.0
    widest = max((measure(label, SMALL) for label in shown.labels), default=0.0)
    label_width = min(widest, width * LABEL_SHARE)
    left = 8.0 + label_width + 8.0
    values_width = max((measure(_value_text(v, shown.unit, language), SMALL) for s in shown.values for v in s),
                       default=0.0)  # fmt: skip
    right = width - 8.0 - values_width - 6.0
    bottom = top + band * max(len(shown.labels), 1)
    ticks = _ticks(_top_value(shown), shown.unit, language, left, right - left, downwards=False)
    end = ticks[-1].value
    height = bottom + 6 + LINE + 4
    texts = [Text(8.0, UNIT_BASELINE, shown.unit_text, size=SMALL), *legend]
    texts += [Text(tick.at, bottom + 6 + LINE - 3, tick.text, "middle", SMALL) for tick in ticks]
    bars = []
    gaps = False
    for index, label in enumerate(shown.labels):
        band_top = top + index * band + GROUP_GAP / 2
        lines = _fit(label, label_width, SMALL, measure)
        middle = band_top + series * BAR_THICKNESS / 2
        first = middle + 4 - (len(lines) - 1) * LINE / 2
        for n, line in enumerate(lines):
            texts.append(Text(left - 8, first + n * LINE, line, "end", SMALL))
        for s, values in enumerate(shown.values):
            value = values[index]
            length = 0.0 if value is None else (right - left) * value / end
            y = band_top + s * BAR_THICKNESS
            written = _value_text(value, shown.unit, language)
            bars.append(Bar(s, index, left, y, length, BAR_THICKNESS * 0.85, label, value, written))
            gaps = gaps or value is None
            texts.append(Text(left + length + 5, y + BAR_THICKNESS * 0.85 - 3, written, "start", SMALL))
    return Geometry(width, height, True, (left, top, right, bottom), tuple(bars), tuple(ticks), tuple(texts),
                    tuple(swatches), gaps)  # fmt: skip


def description(shown: ShownChart, language: str, threshold: int) -> str:
    """The chart in words, for whoever cannot see it: its figures, what a dash means, where the table is."""
    parts = []
    for index, label in enumerate(shown.labels):
        figures = [_value_text(values[index], shown.unit, language) for values in shown.values]
        if len(shown.series) > 1:
            figures = [f"{name} {figure}" for name, figure in zip(shown.series, figures, strict=True)]
        parts.append(f"{label}: {', '.join(figures)}")
    said = [translate_to(language, "evaluation_ui_chart_desc", unit=shown.unit_text, values="; ".join(parts))]
    if any(v is None for values in shown.values for v in values):
        said.append(translate_to(language, "evaluation_ui_chart_gap", threshold=threshold))
    if shown.table_title:
        said.append(translate_to(language, "evaluation_ui_chart_table", table=shown.table_title))
    return " ".join(said)


def gap_note(language: str, threshold: int) -> str:
    return translate_to(language, "evaluation_ui_chart_gap", threshold=threshold)


def svg(chart: Chart, language: str, threshold: int, report: Report | None = None) -> Markup:
    """``chart`` as inline SVG (``role="img"``, a ``<title>`` and a ``<desc>``); ``report`` names its table."""
    return svg_of(show_chart(chart, language, report), language, threshold)


def svg_of(shown: ShownChart, language: str, threshold: int) -> Markup:
    geometry = layout(shown, language)
    height = geometry.height + (LINE + 4 if geometry.gaps else 0)
    ident = f"chart-{shown.id}"
    parts = [
        Markup(
            '<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{0}" role="img" '
            'aria-labelledby="{0}-title {0}-desc" viewBox="0 0 {1:g} {2:g}" width="100%" '
            'preserveAspectRatio="xMinYMin meet">'
        ).format(ident, geometry.width, round(height, 1)),
        Markup('<title id="{}-title">{}</title>').format(ident, shown.title),
        Markup('<desc id="{}-desc">{}</desc>').format(ident, description(shown, language, threshold)),
        _grid_svg(geometry),
    ]
    for bar in geometry.bars:
        colour = SCREEN_COLOURS[bar.series % len(SCREEN_COLOURS)]
        if bar.value is None:
            continue
        parts.append(
            Markup('<rect class="bar series-{}" x="{}" y="{}" width="{}" height="{}" fill="{}"/>').format(
                bar.series, _n(bar.x), _n(bar.y), _n(bar.width), _n(max(bar.height, 0.0)), colour
            )
        )
    for swatch in geometry.swatches:
        colour = SCREEN_COLOURS[swatch.series % len(SCREEN_COLOURS)]
        parts.append(
            Markup('<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>').format(
                _n(swatch.x), _n(swatch.y), _n(swatch.size), _n(swatch.size), colour
            )
        )
    texts = list(geometry.texts)
    if geometry.gaps:
        texts.append(Text(8.0, geometry.height + LINE, gap_note(language, threshold), size=SMALL))
    parts += [_text_svg(text) for text in texts]
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def _grid_svg(geometry: Geometry) -> Markup:
    left, top, right, bottom = geometry.plot
    lines = []
    for tick in geometry.ticks:
        if geometry.horizontal:
            x1 = x2 = tick.at
            y1, y2 = top, bottom
        else:
            y1 = y2 = tick.at
            x1, x2 = left, right
        lines.append(
            Markup('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="1"/>').format(
                _n(x1), _n(y1), _n(x2), _n(y2), SCREEN_GRID
            )
        )
    x1, y1, x2, y2 = (left, top, left, bottom) if geometry.horizontal else (left, bottom, right, bottom)
    lines.append(
        Markup('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="1.5"/>').format(
            _n(x1), _n(y1), _n(x2), _n(y2), SCREEN_AXIS
        )
    )
    return Markup('<g class="grid">{}</g>').format(Markup("").join(lines))


def _text_svg(text: Text) -> Markup:
    return Markup('<text x="{}" y="{}" font-size="{:g}" text-anchor="{}" fill="{}">{}</text>').format(
        _n(text.x), _n(text.y), text.size, text.anchor, SCREEN_TEXT, escape(text.text)
    )


def _n(value: float) -> str:
    """A coordinate with one decimal at most: the same chart is the same text."""
    return f"{round(value, 1):g}"
