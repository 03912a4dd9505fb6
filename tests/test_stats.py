"""Response statistics: computed from stored alarms, per month, site and kind, SAPA only for the SAPA desk."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from dashboard.alarms.stats import AlarmTimes, summarise
from firmware_bridge.timeutil import parse_ts
from sim.servers import DashboardServer
from sim.webclient import DashboardClient

from .conftest import ADMIN, SAPA_DESK, signed_in
from .mqttprobe import Probe
from .test_ingest import make_event, send, wait_alarm

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC).timestamp()


def times(opened: float, ack: float | None, resolved: float | None, resolution: str | None, site: str = "Pasar"):
    return AlarmTimes(
        "fire", site, T0 + opened, None if ack is None else T0 + ack, resolved and T0 + resolved, resolution
    )


def test_response_times_rates_and_months_are_computed_from_the_stored_times() -> None:
    alarms = [
        times(0, 30, 600, "real"),
        times(100, 160, 400, "false_alarm"),
        times(200, 290, 900, "false_alarm"),
        times(300, 302, 310, "test"),  # a test: counted apart, not in the times or the rate
        times(400, None, None, None),  # still open, never acknowledged
        times(-3600, 10, 20, "real", site="Sekolah"),  # 2026-02-28 23:00 UTC is March 1st in WITA
    ]
    [march] = summarise(alarms, "month")
    assert march["month"] == "2026-03" and march["alarms"] == 6 and march["open"] == 1
    assert (march["real"], march["false_alarm"], march["test"]) == (2, 2, 1)
    assert march["false_alarm_rate"] == 0.5
    assert march["ack"] == {"median_s": 75.0, "p90_s": 3610.0, "mean_s": 947.5, "count": 4}  # 30, 60, 90, 3610 s
    assert march["resolve"]["count"] == 4 and march["resolve"]["median_s"] == 405.0  # 10, 240, 570, 610 s
    sites = {row["site"]: row for row in summarise(alarms, "site")}
    assert set(sites) == {"Pasar", "Sekolah"} and sites["Sekolah"]["ack"]["median_s"] == 3610.0
    assert summarise([], "month") == []


def seconds(iso: str | None) -> float:
    assert iso is not None
    return parse_ts(iso).timestamp()


def rows_of(client: DashboardClient, path: str) -> list[dict[str, str]]:
    status, text = client.get_text(path)
    assert status == 200, text
    return list(csv.DictReader(io.StringIO(text)))


def test_the_statistics_come_from_stored_alarms_and_keep_sapa_to_the_sapa_desk(
    dashboard: DashboardServer, operator: DashboardClient, probe: Probe
) -> None:
    outcomes = [("real", True), ("false_alarm", True), ("test", False)]
    stored = []
    for number, (resolution, acknowledge) in enumerate(outcomes):
        event = send(probe, make_event(button=f"fire-{number}"))
        alarm = wait_alarm(operator, lambda a, e=event: a["last_event_id"] == e.id)
        rev = alarm["rev"]
        if acknowledge:
            rev = operator.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {})["alarm"]["rev"]
        stored.append(
            operator.post_json(f"/api/alarms/{alarm['id']}/resolve", {"resolution": resolution, "rev": rev})["alarm"]
        )
    desk = signed_in(dashboard, SAPA_DESK)
    sapa_event = send(probe, make_event(button="sapa-1", kind="sapa"))
    wait_alarm(desk, lambda a: a["last_event_id"] == sapa_event.id)

    [fire] = rows_of(operator, "/stats.csv?group=kind")
    assert fire["kind"] == "fire" and fire["alarms"] == "3"
    assert (fire["real"], fire["false_alarm"], fire["test"], fire["false_alarm_rate"]) == ("1", "1", "1", "0.5")
    waits = sorted(seconds(a["acknowledged_at"]) - seconds(a["opened_at"]) for a in stored[:2])
    assert fire["ack_count"] == "2"
    assert abs(float(fire["ack_median_s"]) - round(sum(waits) / 2, 1)) <= 0.1  # the median of two is their mean
    [sapa] = rows_of(desk, "/stats.csv?group=kind")
    assert sapa["kind"] == "sapa" and sapa["alarms"] == "1" and sapa["open"] == "1"
    assert [row["kind"] for row in rows_of(signed_in(dashboard, ADMIN), "/stats.csv?group=kind")] == ["fire"]
    assert rows_of(operator, "/stats.csv?group=kind&kind=sapa")[0]["kind"] == "fire"  # asking is not enough

    month = datetime.now(UTC).astimezone().strftime("%Y-%m")
    status, page = operator.get_page("/stats")
    assert status == 200 and "Statistik respons" in page and 'id="ack-chart"' in page
    assert page.count('<g class="bar"') >= 1 and "Per lokasi" in page
    assert rows_of(operator, "/stats.csv?group=month&from=2000-01&to=2000-12") == []
    assert month[:4] in rows_of(operator, "/stats.csv?group=month")[0]["month"]
    admin = signed_in(dashboard, ADMIN)
    audit_rows = rows_of(admin, "/admin/audit.csv?action=sapa.read")
    assert any(row["subject"] == "stats" and row["actor"] == SAPA_DESK[0] for row in audit_rows)


def test_statistics_are_refused_to_roles_without_alarms(dashboard: DashboardServer) -> None:
    dashboard.create_user("teknisi", "teknisi-password-1", "technician")
    technician = signed_in(dashboard, ("teknisi", "teknisi-password-1"))
    assert technician.get_text("/stats")[0] == 403
    assert technician.get_text("/stats.csv")[0] == 403


def test_the_statistics_follow_an_alarm_of_a_month_already_summarised(operator: DashboardClient, probe: Probe) -> None:
    event = send(probe, make_event(button="fire-7"))
    alarm = wait_alarm(operator, lambda a: a["last_event_id"] == event.id)
    [opened] = rows_of(operator, "/stats.csv?group=kind")  # this month summarised, and the summary stored
    assert (opened["alarms"], opened["open"], opened["ack_count"]) == ("1", "1", "0")
    rev = operator.post_json(f"/api/alarms/{alarm['id']}/acknowledge", {})["alarm"]["rev"]
    [acknowledged] = rows_of(operator, "/stats.csv?group=kind")
    assert (acknowledged["open"], acknowledged["ack_count"]) == ("1", "1")
    operator.post_json(f"/api/alarms/{alarm['id']}/resolve", {"resolution": "false_alarm", "rev": rev})
    [resolved] = rows_of(operator, "/stats.csv?group=kind")
    assert (resolved["open"], resolved["false_alarm"], resolved["resolve_count"]) == ("0", "1", "1")
    assert rows_of(operator, "/stats.csv?group=month")[0]["false_alarm_rate"] == "1.0"
