"""Open data for Satu Data Indonesia: the report's non-personal tables as CSV and JSON with their metadata.

Every :class:`~.model.Table` with ``open_data`` is a dataset, published a day after its period ends, for
the periods the index lists only (:func:`closed_periods`; anything else is 404, so no one makes this process,
which also ingests alarms, build the report of any year at will):

- ``/open-data/``: the datasets and the closed periods, with links (a page, in the reader's language);
- ``/open-data/<period>/datapackage.json``: a Frictionless Data Package (tabular) describing every dataset,
  with Satu Data Indonesia's metadata as custom properties (``judul``, ``definisi``, ``satuan``, ``periode``,
  ``kode_wilayah``, ``produsen_data``, ``lisensi``, ...);
- ``/open-data/<period>/<dataset>.csv`` (RFC 4180, UTF-8, header = column keys) and ``<dataset>.json``.

The files are written in one language-independent way: codes, not translated names; titles and definitions
in both languages (``title``/``description`` English, ``judul``/``definisi`` Indonesian). A hidden (suppressed)
cell and a cell with no figure are both empty (null in JSON); the JSON lists the suppressed ones.

A published period's files never change: every figure counts only what happened (and was recorded) before
the period's end, the day of waiting lets records of its last hours that reach the store late come in, and
the metadata holds no moment of generation (``tanggal_pembuatan`` is the day the files are first served), so
every dashboard process serves the same bytes under the same ETag.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import threading
import time
import tomllib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib import resources
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from ..accounts.auth import Role, login_required
from ..defaults import LOCAL_TIME
from ..i18n import LANGUAGES, MESSAGES, translate, translate_to
from .model import SUPPRESSED, Column, ColumnType, Report, Table, Value
from .period import FIRST_YEAR, BadPeriod, Granularity, Period
from .present import unit_name
from .sapa import NOTE_SUPPRESSED
from .settings import EvaluationSettings

bp = Blueprint("opendata", __name__, url_prefix="/open-data")

#: A period's files are served from a day after its end: a gateway that was offline at the end sends the
#: presses it kept when it is back, and those of the period's last hours must be in the files for good.
PUBLICATION_DELAY_S = 86400
#: How long a shared cache may keep a file: a closed period's files never change, but a late fix may.
MAX_AGE_S = 3600
#: The published periods the index lists (and the only ones served): the last 24 months, 8 quarters, 3 years.
LISTED = {Granularity.MONTH: 24, Granularity.QUARTER: 8, Granularity.YEAR: 3}
#: Built reports kept per process, by period: every period served, so each is built at most once per
#: process (its files never change once served), however a client cycles through them.
CACHE_SIZE = sum(LISTED.values())
#: Who reads the open data when it is not public.
READERS = (Role.ADMIN, Role.EVALUATOR)
#: A spreadsheet runs a cell starting with one of these as a formula (the same guard as the other CSVs).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PACKAGE_FILE = "datapackage.json"


# -- the files, from a report (no I/O) ----------------------------------------------------------------


def datasets(report: Report) -> list[Table]:
    """The report's tables that are published as open data, in the report's order."""
    return [table for table in report.tables() if table.open_data]


def csv_text(table: Table) -> str:
    """The table as RFC 4180 CSV: the column keys, then one line per row, ``\\r\\n`` after each line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([column.key for column in table.columns])
    for row in table.rows:
        writer.writerow([_csv_cell(table, column, value) for column, value in zip(table.columns, row, strict=True)])
    return out.getvalue()


def json_rows(table: Table) -> list[dict[str, int | float | str | None]]:
    """The rows as objects keyed by column key; an empty cell (no figure, or suppressed) is null."""
    return [
        {column.key: _json_cell(table, column, value) for column, value in zip(table.columns, row, strict=True)}
        for row in table.rows
    ]


def suppressed_positions(table: Table) -> list[list[int | str]]:
    """``[row, column key]`` of each suppressed cell, rows counted from 0 as in the JSON's ``data``."""
    return [
        [index, column.key]
        for index, row in enumerate(table.rows)
        for column, value in zip(table.columns, row, strict=True)
        if value is SUPPRESSED
    ]


def _checked(table: Table, column: Column, value: Value) -> Value:
    """``value`` if it is of the column's type (or empty): a builder's mistake is an error, not a bad file."""
    if value is None or value is SUPPRESSED:
        return value
    if column.type is ColumnType.STRING:
        ok = isinstance(value, str)
    elif column.type is ColumnType.INTEGER:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok:
        raise TypeError(f"dataset {table.id}, column {column.key} ({column.type}): {value!r} is not of its type")
    return value


def _json_cell(table: Table, column: Column, value: Value) -> int | float | str | None:
    value = _checked(table, column, value)
    return None if value is None or value is SUPPRESSED else value  # type: ignore[return-value]


def _csv_cell(table: Table, column: Column, value: Value) -> str:
    value = _json_cell(table, column, value)
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_STARTS) else value
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")  # a dot decimal, never an exponent
    return str(value)


def _both(key: str, **values: object) -> dict[str, str]:
    return {language: translate_to(language, key, **values) for language in LANGUAGES}


def _heading(column: Column) -> dict[str, str]:
    return {language: column.label_key for language in LANGUAGES} if column.literal else _both(column.label_key)


def _local_date(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, LOCAL_TIME).date().isoformat()


def published_from(period: Period) -> float:
    """The moment ``period``'s files are first served: local midnight a day after its end (its
    ``tanggal_pembuatan``)."""
    return period.end + PUBLICATION_DELAY_S


def _period(report: Report) -> dict[str, str]:
    period = report.period
    return {
        "kode": period.key,
        "granularitas": str(period.granularity),
        "mulai": _local_date(period.start),
        "selesai": _local_date(period.end - 1),  # the last day, inclusive
        "zona_waktu": str(LOCAL_TIME),
    }


def _unit_names(table: Table, language: str) -> str:
    """The units of the table's figures, named in ``language`` (``alarm, menit``)."""
    units = dict.fromkeys(column.unit for column in table.columns if column.unit is not None)
    return ", ".join(unit_name(unit, language) for unit in units)


def _codes(table: Table, column: Column) -> dict[str, dict[str, str]] | None:
    """For a column of codes: each code in the table that has a name -> its name in each language (a code
    without one, such as a kecamatan's own name, is its own name)."""
    if column.names is None and column.code_prefix is None:
        return None
    found = sorted({value for value in table.column(column.key) if isinstance(value, str)})
    if column.names is not None:
        return {code: dict(column.names[code]) for code in found if code in column.names}
    return {
        code: _both(f"{column.code_prefix}{code}") for code in found if f"{column.code_prefix}{code}" in MESSAGES["id"]
    }


@functools.cache
def kecamatan_codes() -> tuple[str, dict[str, str]]:
    """The shipped register of kecamatan codes (``dashboard/data/wilayah.toml``): its regency's code, and
    each kecamatan's name -> its Kemendagri code."""
    text = resources.files("dashboard").joinpath("data", "wilayah.toml").read_text("utf-8")
    data = tomllib.loads(text)
    return str(data["regency_code"]), {str(name): str(code) for name, code in data["kecamatan"].items()}


def _region_codes(table: Table, column: Column, region_code: str | None) -> dict[str, str] | None:
    """For a column of kecamatan names: each name in the table -> its Kemendagri code, when the shipped
    register is the configured region's (another regency's names would be given wrong codes)."""
    if column.key != "kecamatan":
        return None
    regency, codes = kecamatan_codes()
    if regency != region_code:
        return None
    return {
        name: codes[name]
        for name in sorted({v for v in table.column(column.key) if isinstance(v, str)})
        if name in codes
    }


def _field(table: Table, column: Column, empty: dict[str, str], region_code: str | None = None) -> dict[str, Any]:
    heading = _heading(column)
    field: dict[str, Any] = {
        "name": column.key,
        "type": str(column.type),
        "title": heading["en"],
        "description": f"{heading['en']}. {empty['en']}",
        "judul": heading["id"],
        "deskripsi": f"{heading['id']}. {empty['id']}",
    }
    if column.unit is not None:
        field["unit"] = str(column.unit)
    if codes := _codes(table, column):
        field["codes"] = codes
    if region_codes := _region_codes(table, column, region_code):
        field["kode_wilayah"] = region_codes
    return field


def _empty_cell(table: Table, threshold: int) -> dict[str, str]:
    """What an empty cell of ``table`` means: no figure, or (where the table hides small counts) hidden."""
    if table.suppressed_cells or NOTE_SUPPRESSED in table.note_keys:
        return _both("evaluation_open_data_empty_or_suppressed", smallest=1, largest=threshold - 1)
    return _both("evaluation_open_data_empty_cell")


def resource_metadata(report: Report, table: Table, csv_body: bytes) -> dict[str, Any]:
    """One dataset's Data Package resource: the CSV's schema, and Satu Data's metadata of the dataset."""
    meta = report.meta
    title, definition = _both(table.title_key), _both(table.definition_key)
    empty = _empty_cell(table, report.suppression_threshold)
    notes = [empty]
    if table.total:
        notes.append(_both("evaluation_open_data_total_row"))
    resource: dict[str, Any] = {
        "profile": "tabular-data-resource",
        "name": table.id,
        "path": f"{table.id}.csv",
        "format": "csv",
        "mediatype": "text/csv",
        "encoding": "utf-8",
        "bytes": len(csv_body),
        "hash": "sha256:" + hashlib.sha256(csv_body).hexdigest(),
        "dialect": {"delimiter": ",", "lineTerminator": "\r\n", "quoteChar": '"', "doubleQuote": True, "header": True},
        "title": title["en"],
        "description": definition["en"],
        "judul": title["id"],
        "definisi": definition["id"],
        "satuan": _unit_names(table, "id"),
        "unit": _unit_names(table, "en"),
        "periode": _period(report),
        "kode_wilayah": meta.get("region_code"),
        "nama_wilayah": meta.get("region_name"),
        "produsen_data": meta.get("producer"),
        "lisensi": meta.get("licence"),
        "tanggal_pembuatan": _local_date(published_from(report.period)),
        "total_row": table.total,
        "suppressed_cells": table.suppressed_cells,
        "note": " ".join(note["en"] for note in notes),
        "catatan": " ".join(note["id"] for note in notes),
        "schema": {
            "fields": [_field(table, column, empty, meta.get("region_code")) for column in table.columns],
            "missingValues": [""],
        },
    }
    return resource


def data_package(report: Report, resources: list[dict[str, Any]]) -> dict[str, Any]:
    """The period's Data Package: who made the data, under which licence, and one resource per dataset."""
    meta = report.meta
    key = report.period.key
    title = _both("evaluation_open_data_package_title", period=key, region=meta.get("region_name", ""))
    description = _both("evaluation_open_data_package_description")
    producer = meta.get("producer", "")
    final = datetime.fromtimestamp(published_from(report.period), LOCAL_TIME)
    return {
        "profile": "tabular-data-package",
        "name": f"siaga-evaluation-{key.lower()}",
        "title": title["en"],
        "description": description["en"],
        "judul": title["id"],
        "deskripsi": description["id"],
        "created": final.isoformat(),
        "licenses": [{"name": meta.get("licence"), "path": meta.get("licence_url")}],
        "sources": [{"title": producer}],
        "contributors": [{"title": producer, "role": "publisher"}],
        "keywords": ["smart city", "fire button", "SAPA", "Perda", "Satu Data Indonesia"],
        "periode": _period(report),
        "kode_wilayah": meta.get("region_code"),
        "nama_wilayah": meta.get("region_name"),
        "produsen_data": producer,
        "lisensi": meta.get("licence"),
        "tanggal_pembuatan": final.date().isoformat(),
        "software_version": report.version,
        "suppression_threshold": report.suppression_threshold,
        "resources": resources,
    }


def _json_bytes(document: Any) -> bytes:
    return (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


@dataclass(frozen=True)
class Published:
    """One closed period's files, made once: name (``datapackage.json``, ``<id>.csv``, ``<id>.json``) -> bytes."""

    period: Period
    files: dict[str, bytes]
    #: Dataset id -> its table, in the report's order (the index page shows their titles and definitions).
    datasets: dict[str, Table]


def publish(report: Report) -> Published:
    """Every file of ``report``'s open data; the CSVs first, as the metadata carries their size and hash."""
    files: dict[str, bytes] = {}
    resources = []
    for table in datasets(report):
        body = csv_text(table).encode("utf-8")
        metadata = resource_metadata(report, table, body)
        files[f"{table.id}.csv"] = body
        document = {"metadata": metadata, "data": json_rows(table), "suppressed": suppressed_positions(table)}
        files[f"{table.id}.json"] = _json_bytes(document)
        resources.append(metadata)
    files[_PACKAGE_FILE] = _json_bytes(data_package(report, resources))
    return Published(report.period, files, {table.id: table for table in datasets(report)})


# -- a few closed periods' files, per process ----------------------------------------------------------


class PublishedCache:
    """The files of the last :data:`CACHE_SIZE` periods asked for, built ONE at a time per process: a build
    reads a whole period in the process that also ingests alarms. A request for a period not cached waits
    for any build under way, then takes the cached files if that build was of its period; a request for a
    cached period never waits for a build."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        #: Guards the entries and counters; held only for a look-up, never during a build.
        self._lock = threading.Lock()
        #: Held during a build: one at a time.
        self._build_lock = threading.Lock()
        self._entries: OrderedDict[str, Published] = OrderedDict()
        self.builds = 0
        #: Requests waiting for the build under way (to watch a crowd of harvesters, and for tests).
        self.waiting = 0

    def get(self, period: Period, build: Callable[[Period], Published]) -> Published:
        with self._lock:
            if (found := self._take(period.key)) is not None:
                return found
            self.waiting += 1
        with self._build_lock:
            with self._lock:
                self.waiting -= 1
                if (found := self._take(period.key)) is not None:
                    return found  # built while this request waited
            published = build(period)
            with self._lock:
                self.builds += 1
                self._entries[period.key] = published
                while len(self._entries) > self._size:
                    self._entries.popitem(last=False)
            return published

    def _take(self, key: str) -> Published | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found


@bp.record_once
def _set_up(state: Any) -> None:
    state.app.extensions.setdefault("siaga.opendata", PublishedCache())


def _cache() -> PublishedCache:
    return current_app.extensions["siaga.opendata"]


def _settings() -> EvaluationSettings:
    return current_app.config["SIAGA_EVALUATION"]


def _published(period: Period) -> Published:
    from .build import report_for  # the builders import the store: only when a file is asked for

    return _cache().get(period, lambda wanted: publish(report_for(wanted)))


# -- the routes --------------------------------------------------------------------------------------


class _NotFound(HTTPException):
    code = 404


@bp.before_request
def _check_access() -> Any:
    """Anyone reads the open data when ``open_data_public``; otherwise administrators and evaluators only."""
    if _settings().open_data_public:
        return None
    return login_required(*READERS)(lambda: None)()  # None to go on; else the sign-in form, or 403


@bp.errorhandler(_NotFound)
def _not_found(error: _NotFound) -> Response:
    """A data file that is not there says why in JSON (a harvester is a program); not kept by caches."""
    response = jsonify(error="not_found", message=error.description)
    response.status_code = 404
    response.headers["Cache-Control"] = "no-store"
    return response


def _served_period(text: str, now: float) -> Period:
    """The period ``text`` names if its files are served at ``now`` (one the index lists); else a 404 that
    says why: not a period, not published yet (and from when), or too old to be listed."""
    try:
        period = Period.parse(text)
    except BadPeriod:
        raise _NotFound(translate("evaluation_open_data_bad_period", period=text[:40])) from None
    if now < published_from(period):
        date = _local_date(published_from(period))
        raise _NotFound(translate("evaluation_open_data_not_closed", period=period.key, date=date))
    if period not in closed_periods(now)[period.granularity]:
        listed = {f"{granularity}s": count for granularity, count in LISTED.items()}
        raise _NotFound(translate("evaluation_open_data_not_listed", period=period.key, **listed))
    return period


def _file(period_text: str, name: str, mimetype: str, disposition: str) -> Response:
    period = _served_period(period_text, time.time())
    body = _published(period).files.get(name)
    if body is None:
        raise _NotFound(translate("evaluation_open_data_unknown_dataset", dataset=name.rsplit(".", 1)[0][:60]))
    stem = name.rsplit(".", 1)
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'{disposition}; filename="siaga-{stem[0]}-{period.key}.{stem[1]}"'
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE_S}"
    if _settings().open_data_public:
        response.headers["Access-Control-Allow-Origin"] = "*"  # a portal's page may fetch it
    else:
        response.headers["Cache-Control"] = f"private, max-age={MAX_AGE_S}"
    response.set_etag(hashlib.sha256(body).hexdigest())
    return response.make_conditional(request)


@bp.get("/<period>/datapackage.json")
def package(period: str) -> Response:
    return _file(period, _PACKAGE_FILE, "application/json", "inline")


@bp.get("/<period>/<dataset>.csv")
def dataset_csv(period: str, dataset: str) -> Response:
    return _file(period, f"{dataset}.csv", "text/csv", "attachment")


@bp.get("/<period>/<dataset>.json")
def dataset_json(period: str, dataset: str) -> Response:
    return _file(period, f"{dataset}.json", "application/json", "inline")


def closed_periods(now: float) -> dict[Granularity, list[Period]]:
    """The periods the index lists and the only ones served, newest first: the last months, quarters and
    years published at ``now`` (ended at least :data:`PUBLICATION_DELAY_S` before it)."""
    listed: dict[Granularity, list[Period]] = {}
    for granularity, count in LISTED.items():
        # The period holding (now - delay) is not published yet; the one before it ended by then.
        period = Period.containing(now - PUBLICATION_DELAY_S, granularity).previous()
        listed[granularity] = []
        while len(listed[granularity]) < count and period.year >= FIRST_YEAR:
            listed[granularity].append(period)
            period = period.previous()
    return listed


@bp.get("/")
def index() -> Any:
    """The datasets with their files for one published period (``?period=``, by default the last quarter)."""
    now = time.time()
    periods = closed_periods(now)
    chosen = request.args.get("period", "").strip()
    try:
        period = _served_period(chosen, now) if chosen else periods[Granularity.QUARTER][0]
    except _NotFound as error:
        return render_template("open_data_index.html", periods=periods, error=error.description), 404
    published = _published(period)
    return render_template(
        "open_data_index.html",
        periods=periods,
        period=period,
        datasets=[
            {"id": table.id, "title": translate(table.title_key), "definition": translate(table.definition_key)}
            for table in published.datasets.values()
        ],
        settings=_settings(),
        error=None,
    )
