"""CAP 1.2 alerts and their Atom index for fire alarms, built from plain data without I/O.

One fire alarm is a short series of CAP messages, one per state it reached:
``Alert`` when it opened, ``Update`` when the fire post acknowledged it and
when it dispatched a unit, ``Cancel`` when it was resolved. Each message has
its own identifier (``siaga-fire-<number>-<opened, local>-<stage>``), the same
every time it is built, and a later one names every earlier one in
``references`` as ``sender,identifier,sent``. Only fire alarms can be built:
their numbers are the fire post's own (alarm numbers run per kind), so an
identifier says nothing about SAPA activity, and a SAPA alarm is refused here
even if a caller handed one in (:class:`NotAFireAlarm`).

What a CAP field says, per stage (docs/integrations.md, "CAP 1.2 feed"):

========================  =========  ==========  ========  ====================================
stage                     msgType    urgency     severity  certainty
========================  =========  ==========  ========  ====================================
opened (a press)          Alert      Immediate   Severe    Likely
acknowledged, dispatched  Update     Immediate   Severe    Likely
resolved                  Cancel     Past        Severe    Observed (real), Unlikely (false
                                                           alarm, test)
========================  =========  ==========  ========  ====================================

Nobody at the fire post confirms a fire on the board: acknowledging says the
alarm was seen, dispatching that a crew was sent, so an open alarm stays
*Likely*; only the resolution says what it was. A test alarm (its button was
in test mode) is ``status`` Exercise throughout, and its texts say so.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Any

from firmware_bridge.errors import SiagaError
from firmware_bridge.payloads import Kind

from ..defaults import LOCAL_TIME
from ..i18n import translate_to
from ..reports.text import xml_safe

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
CAP_TYPE = "application/cap+xml"
ATOM_TYPE = "application/atom+xml"

#: Each ``info`` block: the catalogue's language and the CAP (RFC 3066) language it is sent as.
INFO_LANGUAGES = (("id", "id-ID"), ("en", "en-US"))

ACCESS = ("public", "token")


class NotAFireAlarm(SiagaError, ValueError):
    """Only fire alarms are published: a SAPA alarm never becomes a CAP message."""


@dataclass(frozen=True)
class CapSettings:
    """``[cap]`` of dashboard.toml (docs/configuration.md)."""

    enabled: bool = False
    #: ``public``: anyone may read (``scope`` Public); ``token``: a bearer token is needed (``scope`` Restricted).
    access: str = "public"
    token: str | None = field(default=None, repr=False)
    #: CAP ``sender``: globally unique, no spaces, commas, ``<`` or ``&`` (e.g. an address of the fire post).
    sender: str = "siaga@localhost"
    #: CAP ``senderName``; None: the catalogue's (``cap_sender_name``).
    sender_name: str | None = None
    #: How long a resolved alarm (its Cancel) stays in the index.
    keep_resolved_s: float = 86400.0
    #: The radius of the ``circle`` around a site's point.
    radius_km: float = 0.5
    #: Kecamatan -> region code, sent as a ``geocode`` named ``geocode_name`` where known.
    region_codes: Mapping[str, str] = field(default_factory=dict)
    geocode_name: str = "KEMENDAGRI"

    @property
    def restricted(self) -> bool:
        return self.access == "token"


class Stage(StrEnum):
    """A state a fire alarm reached, each one CAP message."""

    OPENED = "opened"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    RESOLVED = "resolved"


_MSG_TYPE = {
    Stage.OPENED: "Alert",
    Stage.ACKNOWLEDGED: "Update",
    Stage.DISPATCHED: "Update",
    Stage.RESOLVED: "Cancel",
}
_HEADLINES = {
    Stage.OPENED: "cap_headline_opened",
    Stage.ACKNOWLEDGED: "cap_headline_acknowledged",
    Stage.DISPATCHED: "cap_headline_dispatched",
    Stage.RESOLVED: "cap_headline_resolved",
}
_RESOLVED_SAYS = {
    "real": "cap_said_resolved_real",
    "false_alarm": "cap_said_resolved_false_alarm",
    "test": "cap_said_resolved_test",
}

_STAGES = "|".join(Stage)
#: ``siaga-fire-<number>-<YYYYMMDD-hhmmss>-<stage>``: a fire number (the fire post's own) and nothing else.
_IDENTIFIER = re.compile(rf"siaga-fire-([1-9][0-9]{{0,17}})-[0-9]{{8}}-[0-9]{{6}}-(?:{_STAGES})")


@dataclass(frozen=True)
class FireAlarm:
    """What a fire alarm's CAP messages say: its times, what was done, and where (no person, no button id)."""

    number: int
    opened_at: float
    acknowledged_at: float | None = None
    dispatched_at: float | None = None
    dispatch_unit: str | None = None
    resolved_at: float | None = None
    resolution: str | None = None
    test: bool = False
    site: str | None = None
    label: str | None = None
    kecamatan: str | None = None
    lat: float | None = None
    lon: float | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> FireAlarm:
        """From a store row (``kind``, ``number``, the times, ``site_name``, ``label``, ``kecamatan``, ``lat``, ...)."""
        if row["kind"] != Kind.FIRE:
            raise NotAFireAlarm(f"a {row['kind']} alarm is never published")
        return cls(
            number=int(row["number"]),
            opened_at=float(row["opened_at"]),
            acknowledged_at=row["acknowledged_at"],
            dispatched_at=row["dispatched_at"],
            dispatch_unit=row["dispatch_unit"],
            resolved_at=row["resolved_at"],
            resolution=row["resolution"],
            test=bool(row["test"]),
            site=row["site_name"],
            label=row["label"],
            kecamatan=row["kecamatan"],
            lat=row["lat"],
            lon=row["lon"],
        )

    def reached(self) -> list[tuple[Stage, float]]:
        """The stages this alarm reached, in order, with when."""
        stages = [(Stage.OPENED, self.opened_at)]
        for stage, at in (
            (Stage.ACKNOWLEDGED, self.acknowledged_at),
            (Stage.DISPATCHED, self.dispatched_at),
            (Stage.RESOLVED, self.resolved_at),
        ):
            if at is not None:
                stages.append((stage, at))
        return stages


@dataclass(frozen=True)
class Message:
    """One CAP message of an alarm: the alarm as it stood at ``stage``."""

    alarm: FireAlarm
    stage: Stage
    at: float
    identifier: str
    sent: str

    def reference(self, sender: str) -> str:
        return f"{sender},{self.identifier},{self.sent}"


def cap_time(epoch: float, zone: tzinfo = LOCAL_TIME) -> str:
    """A CAP dateTime: whole seconds with the offset (``2026-03-02T10:15:00+08:00``), never ``Z``."""
    return _local(epoch, zone).isoformat()


def _local(epoch: float, zone: tzinfo) -> datetime:
    return datetime.fromtimestamp(math.floor(epoch), zone)


def incident(alarm: FireAlarm, zone: tzinfo = LOCAL_TIME) -> str:
    """The alarm's name shared by its messages (CAP ``incidents``): its fire number and local opening second."""
    return f"siaga-fire-{alarm.number}-{_local(alarm.opened_at, zone):%Y%m%d-%H%M%S}"


def messages(alarm: FireAlarm, zone: tzinfo = LOCAL_TIME) -> list[Message]:
    """Every message the alarm has had so far, oldest first."""
    name = incident(alarm, zone)
    return [Message(alarm, stage, at, f"{name}-{stage}", cap_time(at, zone)) for stage, at in alarm.reached()]


def is_identifier(text: str) -> bool:
    """Whether ``text`` has the shape of a fire message's identifier (anything else is not found)."""
    return _IDENTIFIER.fullmatch(text) is not None


def find_message(
    alarms: Iterable[FireAlarm], identifier: str, zone: tzinfo = LOCAL_TIME
) -> tuple[Message, list[Message]] | None:
    """The message named ``identifier`` among ``alarms`` and the ones before it; None if there is none."""
    match = _IDENTIFIER.fullmatch(identifier)
    if match is None:
        return None
    number = int(match[1])
    for alarm in alarms:
        if alarm.number != number:
            continue
        series = messages(alarm, zone)
        for index, message in enumerate(series):
            if message.identifier == identifier:
                return message, series[:index]
    return None


# -- the alert ------------------------------------------------------------------------------------


def alert_xml(
    message: Message,
    earlier: Sequence[Message],
    settings: CapSettings,
    *,
    web: str,
    language: str = "id",
    zone: tzinfo = LOCAL_TIME,
) -> bytes:
    """The CAP 1.2 ``alert`` of ``message`` (``earlier``: the alarm's messages before it), as UTF-8 XML.

    ``language`` is the dashboard's: the alert-level texts (``note``, ``restriction``) are written in it.
    """
    alarm = message.alarm
    root = ET.Element(_cap("alert"))
    _add(root, "identifier", message.identifier)
    _add(root, "sender", settings.sender)
    _add(root, "sent", message.sent)
    _add(root, "status", "Exercise" if alarm.test else "Actual")
    _add(root, "msgType", _MSG_TYPE[message.stage])
    _add(root, "scope", "Restricted" if settings.restricted else "Public")
    if settings.restricted:
        _add(root, "restriction", translate_to(language, "cap_restriction"))
    if message.stage is Stage.RESOLVED:
        _add(root, "note", translate_to(language, "cap_note_cancel", resolution=_resolution(language, alarm)))
    if earlier:
        _add(root, "references", " ".join(item.reference(settings.sender) for item in earlier))
    _add(root, "incidents", incident(alarm, zone))
    for catalogue_language, cap_language in INFO_LANGUAGES:
        _info(root, message, settings, catalogue_language, cap_language, web, zone)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True, default_namespace=CAP_NS)


def _info(
    root: ET.Element,
    message: Message,
    settings: CapSettings,
    lang: str,
    cap_language: str,
    web: str,
    zone: tzinfo,
) -> None:
    alarm, stage = message.alarm, message.stage
    over = stage is Stage.RESOLVED
    info = ET.SubElement(root, _cap("info"))
    _add(info, "language", cap_language)
    _add(info, "category", "Fire")
    _add(info, "event", translate_to(lang, "cap_event"))
    _add(info, "responseType", "AllClear" if over else "Avoid")
    _add(info, "urgency", "Past" if over else "Immediate")
    _add(info, "severity", "Severe")
    _add(info, "certainty", _certainty(alarm, stage))
    _add(info, "senderName", settings.sender_name or translate_to(lang, "cap_sender_name"))
    _add(info, "headline", headline(message, lang))
    _add(info, "description", description(message, lang, zone))
    _add(info, "instruction", translate_to(lang, "cap_instruction_over" if over else "cap_instruction_open"))
    _add(info, "web", web)
    area = ET.SubElement(info, _cap("area"))
    _add(area, "areaDesc", area_description(alarm, lang))
    if alarm.lat is not None and alarm.lon is not None:
        _add(area, "circle", f"{alarm.lat:.6f},{alarm.lon:.6f} {settings.radius_km:g}")
    code = settings.region_codes.get(alarm.kecamatan) if alarm.kecamatan else None
    if code:
        geocode = ET.SubElement(area, _cap("geocode"))
        _add(geocode, "valueName", settings.geocode_name)
        _add(geocode, "value", code)


def _certainty(alarm: FireAlarm, stage: Stage) -> str:
    if stage is not Stage.RESOLVED:
        return "Likely"
    return "Observed" if alarm.resolution == "real" else "Unlikely"


def headline(message: Message, lang: str) -> str:
    text = translate_to(lang, _HEADLINES.get(message.stage, "cap_headline_opened"), site=_site(message.alarm, lang))
    return translate_to(lang, "cap_exercise", text=text) if message.alarm.test else text


def description(message: Message, lang: str, zone: tzinfo = LOCAL_TIME) -> str:
    """What happened up to this message, one sentence per stage reached."""
    alarm = message.alarm
    place = f"{alarm.label}, {area_description(alarm, lang)}" if alarm.label else area_description(alarm, lang)
    said = []
    for stage, at in alarm.reached():
        when = _clock(at, zone)
        if stage is Stage.OPENED:
            said.append(translate_to(lang, "cap_said_opened", place=place, time=when))
        elif stage is Stage.ACKNOWLEDGED:
            said.append(translate_to(lang, "cap_said_acknowledged", time=when))
        elif stage is Stage.DISPATCHED:
            unit = alarm.dispatch_unit or translate_to(lang, "cap_a_unit")
            said.append(translate_to(lang, "cap_said_dispatched", unit=unit, time=when))
        else:
            key = _RESOLVED_SAYS.get(alarm.resolution or "", "cap_said_resolved")
            said.append(translate_to(lang, key, time=when))
        if stage is message.stage:
            break
    if alarm.test:
        said.append(translate_to(lang, "cap_said_exercise"))
    return " ".join(said)


def area_description(alarm: FireAlarm, lang: str) -> str:
    """The site and its kecamatan (``Pasar Andoolo, Kecamatan Andoolo``)."""
    site = _site(alarm, lang)
    if alarm.kecamatan:
        return translate_to(lang, "cap_area", site=site, kecamatan=alarm.kecamatan)
    return site


def _site(alarm: FireAlarm, lang: str) -> str:
    return alarm.site or translate_to(lang, "cap_site_unknown")


def _resolution(lang: str, alarm: FireAlarm) -> str:
    return translate_to(lang, f"resolution_{alarm.resolution}") if alarm.resolution else "-"


def _clock(epoch: float, zone: tzinfo) -> str:
    """``2026-03-02 10:15 WITA``: the regency's own clock, as people there read it."""
    moment = _local(epoch, zone)
    return f"{moment:%Y-%m-%d %H:%M} {moment.tzname()}"


# -- the Atom index ------------------------------------------------------------------------------


def atom_xml(
    alarms: Sequence[FireAlarm],
    settings: CapSettings,
    *,
    feed_url: str,
    alert_url: Callable[[str], str],
    now: float,
    language: str = "id",
    zone: tzinfo = LOCAL_TIME,
) -> bytes:
    """The Atom index: one entry per alarm, its latest message (an Update or Cancel names the earlier ones),
    newest first. ``alert_url`` gives a message's address from its identifier."""
    latest = sorted((messages(alarm, zone)[-1] for alarm in alarms), key=lambda m: (m.at, m.identifier), reverse=True)
    sender_name = settings.sender_name or translate_to(language, "cap_sender_name")
    # Unqualified names under a literal default namespace: ElementTree's default_namespace refuses
    # the unqualified attributes (rel, href) that Atom uses.
    feed = ET.Element("feed", {"xmlns": ATOM_NS, _XML_LANG: language})
    _atom_add(feed, "id", feed_url)
    _atom_add(feed, "title", translate_to(language, "cap_feed_title", sender=sender_name))
    _atom_add(feed, "updated", latest[0].sent if latest else cap_time(now, zone))
    author = ET.SubElement(feed, "author")
    _atom_add(author, "name", sender_name)
    ET.SubElement(feed, "link", {"rel": "self", "type": ATOM_TYPE, "href": feed_url})
    for message in latest:
        url = alert_url(message.identifier)
        entry = ET.SubElement(feed, "entry")
        _atom_add(entry, "id", url)
        _atom_add(entry, "title", headline(message, language))
        _atom_add(entry, "updated", message.sent)
        _atom_add(entry, "summary", description(message, language, zone))
        ET.SubElement(entry, "category", {"term": "Fire"})
        ET.SubElement(entry, "link", {"rel": "alternate", "type": CAP_TYPE, "href": url})
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


# -- building ---------------------------------------------------------------------------------------


def _cap(tag: str) -> str:
    return f"{{{CAP_NS}}}{tag}"


def _add(parent: ET.Element, tag: str, text: str) -> None:
    # A site name or unit could hold a character XML 1.0 cannot carry: one would make the whole alert unreadable.
    ET.SubElement(parent, _cap(tag)).text = xml_safe(text)


def _atom_add(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = xml_safe(text)
