"""``[commissioning]``: whether every button must be commissioned, how often tested, and the radio margins."""

from __future__ import annotations

from dataclasses import dataclass

from firmware_bridge.settings import Section

DAY_S = 86400.0


@dataclass(frozen=True)
class CommissioningSettings:
    #: A button never commissioned, or not tested for ``test_period_days``, is a trouble. A real site
    #: wants it; the demo and the tests' default dashboards turn it off.
    required: bool = True
    #: Fire codes ask for monthly periodic tests of manual call points.
    test_period_days: float = 30.0
    #: A LoRa button's test press must arrive at least this strong (dBm): about 14 dB above an SX127x's
    #: sensitivity at SF9 / 125 kHz (-129 dBm), room for a door closed, a crowd, rain.
    min_rssi_dbm: float = -115.0
    #: The SNR below which the modem cannot demodulate at the project's default SF9 (docs/lora.md)...
    snr_floor_db: float = -12.5
    #: ...and the margin above it a test press's SNR must keep (dB).
    snr_margin_db: float = 10.0
    #: A session ends by itself this long after it started: its buttons' test mode with it.
    session_minutes: int = 120

    @property
    def test_period_s(self) -> float:
        return self.test_period_days * DAY_S

    @property
    def min_snr_db(self) -> float:
        return self.snr_floor_db + self.snr_margin_db


def read_commissioning(section: Section) -> CommissioningSettings:
    """``[commissioning]`` of ``dashboard.toml``, each key checked once at start."""
    settings = CommissioningSettings(
        required=section.bool("required", True),
        test_period_days=section.float("test_period_days", 30.0, min=1.0, max=366.0),
        min_rssi_dbm=section.float("min_rssi_dbm", -115.0, min=-150.0, max=0.0),
        snr_floor_db=section.float("snr_floor_db", -12.5, min=-30.0, max=10.0),
        snr_margin_db=section.float("snr_margin_db", 10.0, min=0.0, max=40.0),
        session_minutes=section.int("session_minutes", 120, min=10, max=24 * 60),
    )
    section.done()
    return settings
