"""The evaluation report as an A4 PDF (fpdf2): tables with their definitions, vector bar charts, a footer on every page.

It shows the very :class:`~dashboard.evaluation.present.Document` the HTML page shows. A table too wide for
a portrait page at a readable size goes on a landscape page, and smaller type is the last resort; no cell
is ever cut. The same report gives the same text (only the generation time differs between two runs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from ..commissioning.report import _font, _latin1
from ..defaults import LOCAL_TIME
from ..i18n import translate_to
from . import charts
from .model import Report
from .present import Cell, Document, ShownChart, ShownSection, ShownTable, present

MARGIN = 15.0
FOOTER_SPACE = 18.0
#: Type sizes (pt) a table may take, tried in order on a portrait page, then on a landscape one.
PORTRAIT_SIZES = (8.0, 7.5, 7.0)
LANDSCAPE_SIZES = (8.0, 7.5, 7.0, 6.5, 6.0, 5.5, 5.0)
CELL_PADDING = 1.2
PT = 0.3528  # millimetres in a point

PRINT_COLOURS = ("#c9731c", "#2f6fb0", "#2e8a4e", "#7b4fc0")
PRINT_TEXT = "#1a1a1a"
PRINT_GRID = "#d0d4d9"
PRINT_AXIS = "#555b61"
HEAD_FILL = "#e6e9ee"
RULE = "#b9c0c8"
BANNER_FILL = "#fff3c4"


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def render_pdf(report: Report, language: str) -> bytes:
    """``report`` as an A4 PDF in ``language``."""
    return _Renderer(present(report, language), report).render()


class _Renderer:
    def __init__(self, document: Document, report: Report) -> None:
        from fpdf import FPDF  # imported when a report is made: the dashboard starts without it loaded

        self.doc = document
        self.report = report
        self.language = document.language
        renderer = self

        class Page(FPDF):  # type: ignore[misc]
            def footer(self) -> None:
                renderer.footer()

        self.pdf: Any = Page(orientation="P", unit="mm", format="A4")
        self.family, unicode = _font(self.pdf)
        self.clean: Callable[[str], str] = (lambda text: text) if unicode else _latin1
        self.pdf.set_margins(MARGIN, MARGIN, MARGIN)
        self.pdf.set_auto_page_break(auto=True, margin=FOOTER_SPACE)
        self.pdf.set_text_color(*_rgb(PRINT_TEXT))

    # -- the document --------------------------------------------------------------------------------

    def render(self) -> bytes:
        pdf, doc = self.pdf, self.doc
        pdf.set_title(self.clean(doc.title))
        pdf.set_author(self.clean(doc.producer))
        pdf.set_subject(self.clean(doc.period))
        pdf.set_creator(self.clean(doc.software))
        pdf.set_lang(self.language)
        pdf.set_creation_date(datetime.fromtimestamp(self.report.generated_at, LOCAL_TIME))
        self.title_page()
        for section in doc.sections:
            self.section(section)
        return bytes(pdf.output())

    def font(self, size: float, bold: bool = False) -> None:
        self.pdf.set_font(self.family, "B" if bold else "", size)

    def paragraph(self, text: str, size: float = 9.0, *, bold: bool = False, height: float | None = None) -> None:
        self.font(size, bold)
        self.pdf.multi_cell(0, height or size * PT * 1.45, self.clean(text), new_x="LMARGIN", new_y="NEXT")

    def footer(self) -> None:
        pdf = self.pdf
        pdf.set_y(-14)
        self.font(7)
        pdf.set_text_color(*_rgb(PRINT_TEXT))
        pdf.cell(0, 3.6, self.clean(self.doc.data_range), new_x="LMARGIN", new_y="NEXT")
        page = translate_to(self.language, "evaluation_ui_page", page=pdf.page_no(), pages=pdf.str_alias_nb_pages)
        line = f"{self.doc.generated} · {self.doc.software} · {page}"
        pdf.cell(0, 3.6, self.clean(line), new_x="LMARGIN", new_y="NEXT")

    def title_page(self) -> None:
        pdf, doc = self.pdf, self.doc
        pdf.add_page()
        self.paragraph(translate_to(self.language, "evaluation_ui_report_title"), 12, bold=True)
        pdf.ln(1)
        self.paragraph(doc.title, 18, bold=True)
        pdf.ln(4)
        for label, value in doc.facts:
            self.font(9.5, bold=True)
            pdf.cell(45, 5.5, self.clean(label))
            self.font(9.5)
            pdf.multi_cell(0, 5.5, self.clean(value), new_x="LMARGIN", new_y="NEXT")
        if doc.provisional:
            pdf.ln(4)
            self.font(10, bold=True)
            pdf.set_fill_color(*_rgb(BANNER_FILL))
            pdf.multi_cell(0, 6, self.clean(doc.provisional), border=1, fill=True, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(6)
        self.paragraph(translate_to(self.language, "evaluation_ui_contents"), 12, bold=True)
        pdf.ln(1)
        for section in doc.sections:
            self.paragraph(section.title, 10, bold=True)
            for table in section.tables:
                pdf.set_x(MARGIN + 5)
                self.font(9)
                pdf.multi_cell(0, 4.6, self.clean(table.title), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1.5)

    def section(self, section: ShownSection) -> None:
        pdf = self.pdf
        # A section whose first table needs a landscape page starts on one, not on a page of its intro alone.
        orientation = self.fit(section.tables[0], "P")[0] if section.tables else "P"
        pdf.add_page(orientation=orientation)
        pdf.start_section(self.clean(section.title), level=0)
        self.paragraph(section.title, 15, bold=True)
        pdf.ln(1)
        self.paragraph(section.intro, 9.5)
        for table in section.tables:
            self.table(table)
            for chart in section.charts_of(table.id):
                self.chart(chart)
        for chart in section.loose_charts:
            self.chart(chart)

    # -- tables ---------------------------------------------------------------------------------------

    def table(self, table: ShownTable) -> None:
        pdf = self.pdf
        pdf.ln(5)
        orientation, size, widths, wrap = self.fit(table)
        line = size * PT * 1.3
        title_height = 6.0
        head = self.row_height(table.headings, widths, size, line, bold=True)
        first = self.row_height(self.texts(table.rows[0]), widths, size, line) if table.rows else line
        if self.orientation() != orientation:
            pdf.add_page(orientation=orientation)
        elif pdf.get_y() + title_height + head + first > pdf.page_break_trigger:
            pdf.add_page(same=True)
        pdf.start_section(self.clean(table.title), level=1)
        self.paragraph(table.title, 10.5, bold=True, height=title_height)
        self.head(table, widths, size, line)
        if not table.rows and table.total is None:
            self.font(size)
            pdf.multi_cell(sum(widths), line + 1, self.clean(table.empty), border="B", new_x="LMARGIN", new_y="NEXT")
        for cells in table.rows:
            self.row(table, cells, widths, size, line, wrap=wrap)
        if table.total is not None:
            self.row(table, table.total, widths, size, line, wrap=wrap, total=True)
        pdf.ln(1.5)
        self.font(8, bold=True)
        pdf.write(3.8, self.clean(translate_to(self.language, "evaluation_ui_definition") + ": "))
        self.font(8)
        pdf.write(3.8, self.clean(table.definition))
        pdf.ln(4.5)
        for note in table.notes:
            self.paragraph(note, 8)

    @staticmethod
    def texts(cells: Sequence[Cell]) -> list[str]:
        return [cell.text for cell in cells]

    def fit(self, table: ShownTable, current: str | None = None) -> tuple[str, float, list[float], bool]:
        """The page orientation, type size and column widths that show every cell whole: on a portrait
        page (``current``, by default the page's) at a readable size if it can, else on a landscape one."""
        current = current or self.orientation()
        tries = [(current, size) for size in (PORTRAIT_SIZES if current == "P" else LANDSCAPE_SIZES)]
        if current == "P":
            tries += [("L", size) for size in LANDSCAPE_SIZES]
        for orientation, size in tries:
            widths = self.widths(table, size, self.available(orientation), wrap=False)
            if widths is not None:
                return orientation, size, widths, False
        orientation, size = tries[-1]
        widths = self.widths(table, size, self.available(orientation), wrap=True)
        return orientation, size, widths or self.even(table, self.available(orientation)), True

    def orientation(self) -> str:
        """The current page's orientation, "P" or "L" (fpdf2 holds it as an enum)."""
        current = self.pdf.cur_orientation
        return str(getattr(current, "value", current))[:1].upper()

    def available(self, orientation: str) -> float:
        width = 297.0 if orientation == "L" else 210.0
        return width - 2 * MARGIN

    def even(self, table: ShownTable, room: float) -> list[float]:
        return [room / len(table.headings)] * len(table.headings)

    def widths(self, table: ShownTable, size: float, room: float, *, wrap: bool) -> list[float] | None:
        """Each column's width at ``size``: at least its widest figure and longest heading word (text columns
        may wrap between words), widened towards its whole heading while there is room; None if it cannot fit."""
        needed, wanted = [], []
        for index, title in enumerate(table.headings):
            natural, words = self.measure_column(table, index, size)
            self.font(size, bold=True)
            head_word = max((self.pdf.get_string_width(w) for w in self.clean(title).split()), default=0.0)
            head_whole = self.pdf.get_string_width(self.clean(title))
            text_column = not table.numeric[index] or wrap
            body_need = min(natural, max(words, 40.0)) if text_column else natural
            needed.append(max(body_need, head_word) + 2 * CELL_PADDING + 0.5)
            wanted.append(max(natural, head_whole) + 2 * CELL_PADDING + 0.5)
        if sum(needed) > room:
            return None
        widths = list(needed)
        spare = room - sum(widths)
        short = [max(w - n, 0.0) for n, w in zip(needed, wanted, strict=True)]
        if sum(short) > 0:
            share = min(1.0, spare / sum(short))
            widths = [n + s * share for n, s in zip(needed, short, strict=True)]
        return widths

    def measure_column(self, table: ShownTable, index: int, size: float) -> tuple[float, float]:
        """The widest cell of a column and its longest word, the total row in its bold type."""
        rows = [(cells, False) for cells in table.rows] + ([(table.total, True)] if table.total else [])
        natural = words = 0.0
        for cells, bold in rows:
            self.font(size, bold)
            text = self.clean(cells[index].text)
            natural = max(natural, self.pdf.get_string_width(text))
            words = max([words, *(self.pdf.get_string_width(word) for word in text.split())])
        return natural, words

    def lines(self, text: str, width: float, line: float) -> int:
        return len(self.pdf.multi_cell(width, line, self.clean(text), dry_run=True, output="LINES")) or 1

    def row_height(
        self, texts: Sequence[str], widths: Sequence[float], size: float, line: float, *, bold: bool = False
    ) -> float:
        self.font(size, bold)
        self.pdf.c_margin = CELL_PADDING
        return max(self.lines(text, width, line) for text, width in zip(texts, widths, strict=True)) * line + 1.2

    def head(self, table: ShownTable, widths: Sequence[float], size: float, line: float) -> None:
        height = self.row_height(table.headings, widths, size, line, bold=True)
        self.cells(table.headings, widths, height, line, table.numeric, fill=HEAD_FILL, rule="B")

    def row(
        self,
        table: ShownTable,
        cells: Sequence[Cell],
        widths: Sequence[float],
        size: float,
        line: float,
        *,
        wrap: bool,
        total: bool = False,
    ) -> None:
        pdf = self.pdf
        height = self.row_height(self.texts(cells), widths, size, line, bold=total)
        if pdf.get_y() + height > pdf.page_break_trigger:
            pdf.add_page(same=True)
            title = translate_to(self.language, "evaluation_ui_continued", title=table.title)
            self.paragraph(title, 9, bold=True, height=5.0)
            self.head(table, widths, size, line)
            self.font(size, total)
        self.cells(self.texts(cells), widths, height, line, table.numeric, rule="T" if total else "B", bold=total)

    def cells(
        self,
        texts: Sequence[str],
        widths: Sequence[float],
        height: float,
        line: float,
        numeric: Sequence[bool],
        *,
        fill: str | None = None,
        rule: str = "B",
        bold: bool = False,
    ) -> None:
        pdf = self.pdf
        x, y = pdf.l_margin, pdf.get_y()
        size = pdf.font_size_pt
        self.font(size, bold or fill is not None)
        pdf.set_draw_color(*_rgb(RULE))
        pdf.set_line_width(0.2)
        if fill:
            pdf.set_fill_color(*_rgb(fill))
            pdf.rect(x, y, sum(widths), height, style="F")
        for index, (text, width) in enumerate(zip(texts, widths, strict=True)):
            pdf.set_xy(x, y + 0.6)
            align = "R" if numeric[index] and index > 0 else "L"
            pdf.multi_cell(width, line, self.clean(text), align=align, new_x="RIGHT", new_y="TOP")
            x += width
        edge = y + height if rule == "B" else y
        pdf.line(pdf.l_margin, edge, pdf.l_margin + sum(widths), edge)
        if rule == "T":
            pdf.line(pdf.l_margin, y + height, pdf.l_margin + sum(widths), y + height)
        pdf.set_xy(pdf.l_margin, y + height)

    # -- charts ---------------------------------------------------------------------------------------

    def chart(self, shown: ShownChart) -> None:
        pdf = self.pdf
        room = pdf.w - pdf.l_margin - pdf.r_margin
        width = min(room, 170.0)
        scale = width / charts.WIDTH

        def measure(text: str, size: float) -> float:
            self.font(size * scale / PT)
            return pdf.get_string_width(self.clean(text)) / scale

        geometry = charts.layout(shown, self.language, measure)
        height = geometry.height * scale
        note = charts.gap_note(self.language, self.report.suppression_threshold) if geometry.gaps else None
        needed = 6.0 + height + (5.0 if note else 0.0) + 2.0
        pdf.ln(4)
        if pdf.get_y() + needed > pdf.page_break_trigger:
            pdf.add_page(same=True)
        self.paragraph(shown.title, 9.5, bold=True, height=5.5)
        top, left = pdf.get_y(), pdf.l_margin
        self.draw(geometry, left, top, scale)
        pdf.set_xy(left, top + height + 1)
        if note:
            self.paragraph(note, 7.5)
        pdf.set_draw_color(*_rgb(RULE))

    def draw(self, geometry: charts.Geometry, left: float, top: float, scale: float) -> None:
        pdf = self.pdf

        def at(x: float, y: float) -> tuple[float, float]:
            return left + x * scale, top + y * scale

        plot_left, plot_top, plot_right, plot_bottom = geometry.plot
        pdf.set_line_width(0.15)
        pdf.set_draw_color(*_rgb(PRINT_GRID))
        for tick in geometry.ticks:
            if geometry.horizontal:
                pdf.line(*at(tick.at, plot_top), *at(tick.at, plot_bottom))
            else:
                pdf.line(*at(plot_left, tick.at), *at(plot_right, tick.at))
        pdf.set_line_width(0.3)
        pdf.set_draw_color(*_rgb(PRINT_AXIS))
        if geometry.horizontal:
            pdf.line(*at(plot_left, plot_top), *at(plot_left, plot_bottom))
        else:
            pdf.line(*at(plot_left, plot_bottom), *at(plot_right, plot_bottom))
        for bar in geometry.bars:
            if bar.value is None or bar.width <= 0 or bar.height <= 0:
                continue
            pdf.set_fill_color(*_rgb(PRINT_COLOURS[bar.series % len(PRINT_COLOURS)]))
            x, y = at(bar.x, bar.y)
            pdf.rect(x, y, bar.width * scale, bar.height * scale, style="F")
        for swatch in geometry.swatches:
            pdf.set_fill_color(*_rgb(PRINT_COLOURS[swatch.series % len(PRINT_COLOURS)]))
            x, y = at(swatch.x, swatch.y)
            pdf.rect(x, y, swatch.size * scale, swatch.size * scale, style="F")
        pdf.set_text_color(*_rgb(PRINT_TEXT))
        for text in geometry.texts:
            self.font(text.size * scale / PT)
            written = self.clean(text.text)
            width = pdf.get_string_width(written)
            x, y = at(text.x, text.y)
            if text.anchor == "middle":
                x -= width / 2
            elif text.anchor == "end":
                x -= width
            pdf.text(x, y, written)
