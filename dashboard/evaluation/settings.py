"""``[evaluation]``: the small-cell threshold, and what the open data's metadata says of its producer and region."""

from __future__ import annotations

import re
from dataclasses import dataclass

from firmware_bridge.settings import Section

_REGION_CODE = re.compile(r"^\d{2}(\.\d{2}(\.\d{2}(\.\d{4})?)?)?$")


@dataclass(frozen=True)
class EvaluationSettings:
    #: SAPA counts from 1 to this minus one are never shown (nor anything that would give them away).
    suppression_threshold: int = 5
    #: The regency's code in Kemendagri's register of regions (Kepmendagri 100.1.1-6117/2022): Konawe Selatan.
    region_code: str = "74.05"
    region_name: str = "Kabupaten Konawe Selatan"
    producer: str = "Pemerintah Kabupaten Konawe Selatan"
    #: An SPDX licence id, and where its text is.
    licence: str = "CC-BY-4.0"
    licence_url: str = "https://creativecommons.org/licenses/by/4.0/"
    #: Whether ``/open-data/`` is served to anyone (Satu Data Indonesia harvests it), or only to signed-in
    #: administrators and evaluators.
    open_data_public: bool = True


def read_evaluation(section: Section) -> EvaluationSettings:
    """``[evaluation]`` of ``dashboard.toml``, each key checked once at start."""
    settings = EvaluationSettings(
        suppression_threshold=section.int("suppression_threshold", 5, min=2, max=100),
        region_code=section.str("region_code", "74.05", pattern=_REGION_CODE.pattern),
        region_name=section.str("region_name", "Kabupaten Konawe Selatan"),
        producer=section.str("producer", "Pemerintah Kabupaten Konawe Selatan"),
        licence=section.str("licence", "CC-BY-4.0"),
        licence_url=section.str("licence_url", "https://creativecommons.org/licenses/by/4.0/", pattern=r"^https?://"),
        open_data_public=section.bool("open_data_public", True),
    )
    section.done()
    return settings
