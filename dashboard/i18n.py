"""User-facing text in Bahasa Indonesia (default) and English, read from gettext catalogues.

The texts live in ``dashboard/translations/<language>/LC_MESSAGES/messages.po``
(``messages.pot`` lists every message); ``docs/translations.md`` says how to add
or change one, and ``tests/test_i18n.py`` fails on any text missing in either
language. The msgids are symbolic keys (``state_unacknowledged``), not the
Indonesian sentence: templates and ``board.js`` build keys from enum values
(``'status_' ~ report.status``, ``t(`kind_${kind}`)``), and board.js looks texts
up by key in the JSON catalogue, so a key must not change when a wording does.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from types import MappingProxyType

from babel.messages.pofile import read_po
from flask import Flask, current_app, request, session

log = logging.getLogger(__name__)

LANGUAGES = ("id", "en")
DOMAIN = "messages"


def catalogue_path(language: str) -> Traversable:
    """The ``.po`` file of one language, inside the installed package (a wheel carries it as package data)."""
    return resources.files("dashboard").joinpath("translations", language, "LC_MESSAGES", f"{DOMAIN}.po")


def read_catalogue(language: str) -> dict[str, str]:
    """Every translated message of a language; an empty or fuzzy entry counts as untranslated.

    Read straight from the ``.po`` file: no compiled ``.mo`` to build or to fall out of date.
    """
    with catalogue_path(language).open("rb") as po:
        catalogue = read_po(po, locale=language, domain=DOMAIN)
    return {
        message.id: message.string
        for message in catalogue
        if isinstance(message.id, str) and message.id and message.string and not message.fuzzy
    }


def _load() -> Mapping[str, Mapping[str, str]]:
    texts = {language: read_catalogue(language) for language in LANGUAGES}
    every = set().union(*texts.values())
    for language, own in texts.items():
        if gaps := sorted(every - own.keys()):
            log.warning("%d message(s) have no %s text, the other language is shown: %s", len(gaps), language, gaps)
    return MappingProxyType({language: MappingProxyType(own) for language, own in texts.items()})


#: ``MESSAGES[language][key]``: the translated texts, read-only.
MESSAGES: Mapping[str, Mapping[str, str]] = _load()

#: What board.js reads as JSON: each language filled up with the other's texts where it has none.
_FILLED: dict[str, dict[str, str]] = {
    language: {**MESSAGES[other], **MESSAGES[language]}
    for language in LANGUAGES
    for other in LANGUAGES
    if other != language
}

_missing: Counter[tuple[str, str]] = Counter()
_missing_lock = threading.Lock()


def missing_texts() -> dict[tuple[str, str], int]:
    """How often each ``(language, key)`` without a text was asked for since start-up."""
    with _missing_lock:
        return dict(_missing)


def _fallback(language: str, key: str) -> str:
    """The other language's text, else the key itself; logged on the first miss of each key."""
    with _missing_lock:
        _missing[(language, key)] += 1
        first = _missing[(language, key)] == 1
    other = next(other for other in LANGUAGES if other != language)
    text = MESSAGES[other].get(key)
    if first:
        log.warning("no %s text for message %r: showing %s", language, key, "the " + other if text else "the key")
    return text or key


def translate_to(language: str, key: str, **values: object) -> str:
    """The text of ``key`` in ``language``, with ``{placeholders}`` filled from ``values``; needs no request."""
    text = MESSAGES[language].get(key) or _fallback(language, key)
    return text.format(**values) if values else text


def get_language() -> str:
    """The language of this request: ``?lang=``, then the session, then the site default."""
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        session["lang"] = asked
        return asked
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return chosen
    return current_app.config.get("SIAGA_LANGUAGE", "id")


def translate(key: str, **values: object) -> str:
    """The text of ``key`` in this request's language."""
    return translate_to(get_language(), key, **values)


def init_app(app: Flask) -> None:
    @app.context_processor
    def _inject() -> dict[str, object]:
        language = get_language()
        return {"_": translate, "lang": language, "messages": _FILLED[language], "languages": LANGUAGES}
