"""The report categories (the Open311 service list), read from a data file.

The file ships as ``dashboard/data/perda-categories.toml``; a regency points
``[reports] categories_file`` at its own copy to change categories, their
questions, the responsible unit and the service-level targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from firmware_bridge.settings import Section, parse_toml, read_toml

from .text import NOT_XML

CODE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
ATTRIBUTE_PATTERN = r"^[a-z0-9_]{1,64}$"
DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")


@dataclass(frozen=True)
class Attribute:
    code: str
    datatype: str
    required: bool
    order: int
    description: str
    description_en: str
    #: key -> name, for the list datatypes
    values: dict[str, str] = field(default_factory=dict)

    @property
    def is_list(self) -> bool:
        return self.datatype in ("singlevaluelist", "multivaluelist")


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    name_en: str
    description: str
    group: str
    keywords: str
    agency: str
    target_days: float
    attributes: tuple[Attribute, ...] = ()

    def title(self, language: str) -> str:
        return self.name_en if language == "en" else self.name


@dataclass(frozen=True)
class Catalogue:
    jurisdiction: str
    jurisdiction_name: str
    default_agency: str
    areas: tuple[str, ...]
    categories: tuple[Category, ...]

    def get(self, code: str) -> Category | None:
        for category in self.categories:
            if category.code == code:
                return category
        return None


def default_file() -> str:
    return str(resources.files("dashboard").joinpath("data", "perda-categories.toml"))


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Read and validate a categories file; a ConfigError names the file and key."""
    if path is None:
        text = resources.files("dashboard").joinpath("data", "perda-categories.toml").read_text("utf-8")
        return parse_catalogue(parse_toml(text, "perda-categories.toml"))
    return parse_catalogue(read_toml(path))


def _text(section: Section, key: str, *texts: str) -> None:
    """Every name and description is served as Open311 XML: refuse what XML 1.0 cannot carry."""
    for text in texts:
        if NOT_XML.search(text):
            raise section.error(key, f"{text!r} contains a control character (or another one XML cannot carry)")


def parse_catalogue(root: Section) -> Catalogue:
    areas = root.raw("areas", [])
    if not isinstance(areas, list) or not all(isinstance(a, str) and a.strip() for a in areas):
        raise root.error("areas", "must be a list of district names")
    _text(root, "areas", *areas)
    categories = tuple(_category(section) for section in root.sections("category", required=True))
    codes = [c.code for c in categories]
    for code in codes:
        if codes.count(code) > 1:
            raise root.error("category", f"duplicate code {code!r}")
    catalogue = Catalogue(
        jurisdiction=root.str("jurisdiction"),
        jurisdiction_name=root.str("jurisdiction_name"),
        default_agency=root.str("default_agency"),
        areas=tuple(areas),
        categories=categories,
    )
    for key in ("jurisdiction", "jurisdiction_name", "default_agency"):
        _text(root, key, getattr(catalogue, key))
    root.done()
    return catalogue


def _category(section: Section) -> Category:
    attributes = tuple(_attribute(item) for item in section.sections("attribute"))
    codes = [a.code for a in attributes]
    if len(set(codes)) != len(codes):
        raise section.error("attribute", "attribute codes must be unique within a category")
    category = Category(
        code=section.str("code", pattern=CODE_PATTERN),
        name=section.str("name"),
        name_en=section.str("name_en"),
        description=section.str("description"),
        group=section.str("group"),
        keywords=section.str("keywords", ""),
        agency=section.str("agency"),
        target_days=section.float("target_days", min=0.01, max=3650),
        attributes=tuple(sorted(attributes, key=lambda a: a.order)),
    )
    for key in ("name", "name_en", "description", "group", "keywords", "agency"):
        _text(section, key, getattr(category, key))
    section.done()
    return category


def _attribute(section: Section) -> Attribute:
    datatype = section.str("datatype", choices=DATATYPES)
    values = section.raw("values", {})
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise section.error("values", "must be a table of key = name")
    if datatype in ("singlevaluelist", "multivaluelist") and not values:
        raise section.error("values", f"a {datatype} needs values")
    attribute = Attribute(
        code=section.str("code", pattern=ATTRIBUTE_PATTERN),
        datatype=datatype,
        required=section.bool("required", False),
        order=section.int("order", 1, min=1, max=1000),
        description=section.str("description"),
        description_en=section.str("description_en", ""),
        values=dict(values),
    )
    _text(section, "description", attribute.description)
    _text(section, "description_en", attribute.description_en)
    _text(section, "values", *values, *values.values())
    section.done()
    return attribute
