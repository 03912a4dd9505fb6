"""The live board in a real browser: Debian's Chromium driven by Playwright.

Everything behind the page is real too: a Mosquitto broker, the dashboard
(Flask behind uvicorn, MQTT ingest), and a gateway whose wall buttons are
gpiozero mock pins. A test presses a button and watches the open board.

What Chromium's autoplay policy does to the board's sound (observed with
Debian's Chromium 156, headless, the flags below):

- signing in through the form is a click, and the board page it leads to (same
  origin) inherits that user activation: its AudioContext runs, sound plays;
- a board loaded without a gesture (reloaded, reopened after a restart, opened
  from a bookmark with a kept session) gets a *suspended* AudioContext: the
  board says so (``data-sound="blocked"``) and shows its "enable sound" prompt;
- with ``--autoplay-policy=no-user-gesture-required`` (a kiosk set up for the
  fire post) it plays without any click.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright", reason="Playwright has no wheels for this machine (32-bit ARM)")

from gpiozero.pins.mock import MockFactory
from playwright.sync_api import Browser, Locator, Page, Playwright, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from dashboard.alarms.escalation import EscalationSettings
from dashboard.devices.supervision import SupervisionSettings
from firmware_bridge.broker import BrokerSettings
from gateway.app import Gateway
from gateway.config import GatewayConfig
from gateway.indicator import Pattern
from sim.servers import DashboardServer, dashboard_config

from .conftest import CHROMIUM, CHROMIUM_ARGS, OPERATOR, SAPA_DESK, SATPOL, press, signed_in
from .reports_helpers import jpeg

pytestmark = pytest.mark.browser

AUTOPLAY_ARGS = ["--autoplay-policy=no-user-gesture-required"]

#: Upper bound for anything the board should show; a press normally takes milliseconds.
WAIT_MS = 10_000
LED_WAIT_S = 5

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "artifacts" / "screenshots"

expect.set_options(timeout=WAIT_MS)


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def autoplay_browser(playwright: Playwright) -> Iterator[Browser]:
    """Chromium that lets a page play sound without a user gesture (a kiosk-configured fire post PC)."""
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + AUTOPLAY_ARGS)
    yield chromium
    chromium.close()


#: Counts the board's beeps from outside its script: each beep is one gain envelope
#: (its four tones share it), made only while the AudioContext runs.
COUNT_BEEPS = """
(() => {
  window.beepsHeard = 0;
  const createGain = BaseAudioContext.prototype.createGain;
  BaseAudioContext.prototype.createGain = function (...args) {
    window.beepsHeard += 1;
    return createGain.apply(this, args);
  };
})();
"""


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """Open a page in a fresh browser context (its own cookies: one signed-in user per context).

    Script errors and alert dialogs (the board alerts when an action fails) are
    collected, and a test that caused any fails at teardown.
    """
    contexts = []
    problems: list[str] = []

    def open_(on: Browser | None = None, **options: Any) -> Page:
        options = {"viewport": {"width": 1280, "height": 800}, "locale": "id-ID", **options}
        context = (on or browser).new_context(**options)
        context.set_default_timeout(WAIT_MS)
        context.add_init_script(COUNT_BEEPS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"script error: {error}"))

        def on_dialog(dialog) -> None:  # type: ignore[no-untyped-def]
            problems.append(f"dialog: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not problems, problems


@pytest.fixture
def page(open_page: Callable[..., Page]) -> Page:
    return open_page()


# -- helpers ------------------------------------------------------------------------


def sign_in(page: Page, dashboard: DashboardServer, account: tuple[str, str], *, lands_on: str = "/board") -> None:
    """Sign in through the real form (its hidden CSRF field included) and wait for the live stream."""
    page.goto(dashboard.url + "/login")
    form = page.locator("form.login")
    form.locator("input[name=username]").fill(account[0])
    form.locator("input[name=password]").fill(account[1])
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(re.escape(dashboard.url + lands_on) + r"(\?.*)?$"))
    expect(page.locator("#stream-state")).to_have_attribute("data-state", "live")


def screenshot(page: Page, name: str, **options: Any) -> Path:
    """Save what ``page`` shows as ``artifacts/screenshots/<name>`` (for the docs), animations stopped."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    path.unlink(missing_ok=True)
    page.screenshot(path=str(path), **{"animations": "disabled", **options})
    return path


def cards(page: Page) -> Locator:
    return page.locator("#alarm-list li.alarm")


def body_sound(page: Page) -> Locator:
    return page.locator("body")


@contextmanager
def own_dashboard(tmp_path: Path, broker_settings: BrokerSettings, **settings: Any) -> Iterator[DashboardServer]:
    """A dashboard of the test's own, with ``settings``, and the fire post's operator on it."""
    with DashboardServer(dashboard_config(tmp_path / "dashboard", broker_settings, **settings)) as dashboard:
        dashboard.create_user(*OPERATOR, "fire_operator")
        yield dashboard


def tiles_from(tile_server: str) -> dict[str, str]:
    """The settings of a dashboard whose maps are drawn on ``tile_server``'s tiles."""
    return {
        "SIAGA_MAP_TILES": tile_server + "/{z}/{x}/{y}.png",
        "SIAGA_MAP_TILE_ORIGIN": tile_server,
        "SIAGA_MAP_ATTRIBUTION": "Peta uji",
    }


def beeps(page: Page) -> int:
    return page.evaluate("window.beepsHeard")


def main_frame_navigations(page: Page) -> list[str]:
    seen: list[str] = []
    page.on("framenavigated", lambda frame: seen.append(frame.url) if frame == page.main_frame else None)
    return seen


# -- tests ------------------------------------------------------------------------------


def test_a_press_appears_on_the_open_board_and_the_sound_waits_for_a_click(
    dashboard: DashboardServer, gateway: Gateway, pin_factory: MockFactory, page: Page
) -> None:
    sign_in(page, dashboard, OPERATOR)
    page.reload()  # the board reopened without a click (F5, a restart): Chromium will not let it play yet
    expect(page.locator("#stream-state")).to_have_attribute("data-state", "live")
    navigations = main_frame_navigations(page)
    expect(page.locator("h1")).to_have_text("Papan Alarm Pos Pemadam Kebakaran")
    expect(page.locator("#gateway-list li[data-gw=gw-test]")).to_have_attribute("data-state", "online")
    expect(cards(page)).to_have_count(0)
    expect(page.locator("#no-alarms")).to_be_visible()
    # The prompt asks for the click before any alarm comes.
    expect(page.locator("#sound-prompt")).to_be_visible()
    expect(body_sound(page)).to_have_attribute("data-sound", "idle")

    press(pin_factory, 17)

    card = cards(page).filter(has_text="Pasar Andoolo")
    expect(card).to_have_count(1)
    expect(card).to_have_attribute("data-state", "unacknowledged")
    expect(card).to_have_attribute("data-kind", "fire")
    expect(card.locator(".state")).to_have_text("⚠ BELUM DITANGGAPI")
    expect(card.locator(".place")).to_have_text("Pasar Andoolo — Blok A")
    expect(card.locator(".presses")).to_have_text("1")
    expect(card.locator("button.ack")).to_have_text("Tanggapi")
    expect(page.locator("#alarm-count")).to_have_text("1")
    expect(page.locator("#no-alarms")).to_be_hidden()
    assert navigations == [], "the board reloaded instead of updating live"
    assert gateway.wait_for_pattern("fire-1", Pattern.RECEIVED, LED_WAIT_S)

    # Sound is wanted but blocked: the board says so, and has not pretended to beep.
    expect(body_sound(page)).to_have_attribute("data-sound", "blocked")
    expect(page.locator("body")).to_have_class(re.compile(r"\balarming\b"))
    prompt = page.locator("#sound-prompt")
    expect(prompt).to_be_visible()
    expect(prompt).to_contain_text("klik di sini untuk mengaktifkan")
    assert beeps(page) == 0

    prompt.click()  # a real user gesture: the AudioContext may now run
    expect(body_sound(page)).to_have_attribute("data-sound", "playing")
    expect(prompt).to_be_hidden()
    page.wait_for_function("() => window.beepsHeard >= 1")
    assert navigations == []


def test_after_signing_in_the_alarm_sounds_at_once_and_repeats_until_acknowledged(
    dashboard: DashboardServer, gateway: Gateway, pin_factory: MockFactory, page: Page
) -> None:
    sign_in(page, dashboard, OPERATOR)  # the sign-in click also unlocks sound on the board it leads to
    expect(page.locator("#sound-prompt")).to_be_hidden()
    expect(body_sound(page)).to_have_attribute("data-sound", "idle")
    assert beeps(page) == 0

    press(pin_factory, 17)
    card = cards(page)
    expect(card).to_have_attribute("data-state", "unacknowledged")
    expect(body_sound(page)).to_have_attribute("data-sound", "playing")
    expect(page.locator("#sound-prompt")).to_be_hidden()
    page.wait_for_function("() => window.beepsHeard >= 2")  # the first beep, then the 2 s repeat

    card.locator("button.ack").click()
    expect(card).to_have_attribute("data-state", "acknowledged")
    expect(body_sound(page)).to_have_attribute("data-sound", "idle")
    silent_from = beeps(page)
    with pytest.raises(PlaywrightTimeout):  # longer than the 2 s repeat: no further beep comes
        page.wait_for_function("n => window.beepsHeard > n", arg=silent_from, timeout=2_500)


def test_a_kiosk_with_autoplay_allowed_sounds_without_any_click(
    dashboard: DashboardServer,
    gateway: Gateway,
    pin_factory: MockFactory,
    open_page: Callable[..., Page],
    autoplay_browser: Browser,
) -> None:
    page = open_page(autoplay_browser)
    sign_in(page, dashboard, OPERATOR)
    page.reload()  # no user activation on this document
    expect(page.locator("#stream-state")).to_have_attribute("data-state", "live")
    expect(page.locator("#sound-prompt")).to_be_hidden()
    press(pin_factory, 17)
    expect(cards(page)).to_have_attribute("data-state", "unacknowledged")
    expect(body_sound(page)).to_have_attribute("data-sound", "playing")
    expect(page.locator("#sound-prompt")).to_be_hidden()
    page.wait_for_function("() => window.beepsHeard >= 1")


def test_acknowledge_dispatch_and_resolve_from_the_board_drive_the_button_led(
    dashboard: DashboardServer, gateway: Gateway, pin_factory: MockFactory, page: Page
) -> None:
    led = pin_factory.pin(27)
    sign_in(page, dashboard, OPERATOR)
    press(pin_factory, 17)
    card = cards(page)
    expect(card).to_have_attribute("data-state", "unacknowledged")
    alarm_id = card.get_attribute("data-alarm-id")
    assert gateway.wait_for_pattern("fire-1", Pattern.RECEIVED, LED_WAIT_S)
    expect(body_sound(page)).to_have_attribute("data-sound", "playing")

    card.get_by_role("button", name="Tanggapi").click()
    expect(card).to_have_attribute("data-state", "acknowledged")
    expect(card.locator(".state")).to_have_text("✔ DITANGGAPI")
    expect(card.locator(".ackby")).to_have_text("Ditanggapi oleh operator")
    expect(card.locator("button.ack")).to_have_count(0)
    expect(body_sound(page)).to_have_attribute("data-sound", "idle")
    expect(page.locator("body")).not_to_have_class(re.compile(r"\balarming\b"))
    assert gateway.wait_for_pattern("fire-1", Pattern.HELP_COMING, LED_WAIT_S)
    assert gateway.buttons["fire-1"].led_blink is None
    assert led.state is True  # solid: help is coming

    dispatch = card.locator("form.dispatch")
    dispatch.locator("input[name=unit]").fill("Damkar Pos Andoolo")
    dispatch.locator("input[name=note]").fill("1 mobil tangki")
    dispatch.locator("input[name=unit]").press("Enter")  # the keyboard submits it as well as a click would
    expect(card).to_have_attribute("data-state", "dispatched")
    expect(card.locator(".state")).to_have_text("➜ UNIT DIKIRIM")
    expect(card.locator(".dispatched")).to_have_text("Dikirim: Damkar Pos Andoolo (oleh operator)")
    expect(card.locator("form.dispatch")).to_have_count(0)
    assert gateway.wait_for_indication("fire-1", "dispatched", LED_WAIT_S)
    assert led.state is True  # still solid: help is on its way

    card.locator("select[name=resolution]").select_option("false_alarm")
    card.locator("form.resolve input[name=note]").fill("Tersenggol gerobak pedagang")
    card.locator("button.resolve").click()
    expect(cards(page)).to_have_count(0)
    expect(page.locator("#no-alarms")).to_be_visible()
    expect(page.locator("#alarm-count")).to_have_text("0")
    assert gateway.wait_for_pattern("fire-1", Pattern.OFF, LED_WAIT_S)
    assert led.state is False

    # What the board sent is what was stored, under the signed-in operator's name.
    stored = signed_in(dashboard, OPERATOR).get_json(f"/api/alarms/{alarm_id}")
    alarm = stored["alarm"]
    assert (alarm["state"], alarm["resolution"], alarm["resolved_by"], alarm["acknowledged_by"]) == (
        "resolved",
        "false_alarm",
        "operator",
        "operator",
    )
    assert (alarm["dispatch_unit"], alarm["dispatched_by"]) == ("Damkar Pos Andoolo", "operator")
    assert [(a["action"], a["actor"], a["note"]) for a in stored["actions"]][1:] == [
        ("acknowledged", "operator", None),
        ("dispatched", "operator", "Damkar Pos Andoolo: 1 mobil tangki"),
        ("resolved", "operator", "Tersenggol gerobak pedagang"),
    ]


def test_the_fire_board_never_shows_a_sapa_alarm_and_the_sapa_desk_never_a_fire_alarm(
    dashboard: DashboardServer, gateway: Gateway, pin_factory: MockFactory, open_page: Callable[..., Page]
) -> None:
    fire = open_page()
    sapa = open_page()
    sign_in(fire, dashboard, OPERATOR)
    sign_in(sapa, dashboard, SAPA_DESK, lands_on="/sapa")
    expect(sapa.locator("h1")).to_have_text("Meja SAPA — Perlindungan Perempuan dan Anak")

    press(pin_factory, 23)
    sapa_card = sapa.locator("#alarm-list li.alarm[data-kind=sapa]")
    expect(sapa_card).to_have_count(1)
    expect(cards(sapa)).to_have_count(1)
    expect(sapa_card).to_contain_text("Pasar Andoolo")
    expect(sapa_card.locator(".kind")).to_have_text("SAPA")

    press(pin_factory, 17)
    # Each stream keeps order: had the SAPA alarm reached the fire board, it would be there already.
    expect(fire.locator("#alarm-list li.alarm[data-kind=fire]")).to_have_count(1)
    expect(cards(fire)).to_have_count(1)
    expect(fire.locator("#alarm-count")).to_have_text("1")
    expect(fire.locator("#alarm-list")).not_to_contain_text("SAPA")

    # A second SAPA press updates the SAPA alarm after the fire alarm went out: once the desk
    # shows it, a leaked fire alarm would have arrived before it.
    press(pin_factory, 23)
    expect(sapa_card.locator(".presses")).to_have_text("2")
    expect(cards(sapa)).to_have_count(1)
    expect(sapa.locator("#alarm-count")).to_have_text("1")
    expect(sapa.locator("#alarm-list")).not_to_contain_text("KEBAKARAN")
    expect(cards(fire)).to_have_count(1)
    # The SAPA button's LED shows that the desk has the call.
    assert gateway.wait_for_pattern("sapa-1", Pattern.RECEIVED, LED_WAIT_S)


def test_the_board_catches_up_after_its_stream_was_cut(
    dashboard: DashboardServer, gateway: Gateway, pin_factory: MockFactory, page: Page
) -> None:
    sign_in(page, dashboard, OPERATOR)
    press(pin_factory, 17)
    expect(cards(page)).to_have_attribute("data-state", "unacknowledged")
    first_id = cards(page).get_attribute("data-alarm-id")
    assert gateway.wait_for_pattern("fire-1", Pattern.RECEIVED, LED_WAIT_S)

    # Cut the live stream (the server ends it, as at a restart) and keep the board from reconnecting.
    page.route("**/api/stream", lambda route: route.abort())
    dashboard.app.extensions["siaga"].hub.close()
    expect(page.locator("#stream-state")).to_have_attribute("data-state", "connecting")

    # Meanwhile: the alarm on screen is resolved elsewhere and a new press opens another one.
    desk = signed_in(dashboard, OPERATOR)
    rev = desk.get_json(f"/api/alarms/{first_id}")["alarm"]["rev"]
    desk.post_json(f"/api/alarms/{first_id}/resolve", {"resolution": "test", "rev": rev})
    assert gateway.wait_for_pattern("fire-1", Pattern.OFF, LED_WAIT_S)
    press(pin_factory, 17)
    assert gateway.wait_for_pattern("fire-1", Pattern.RECEIVED, LED_WAIT_S)
    (second,) = desk.get_json("/api/alarms")["alarms"]
    assert str(second["id"]) != first_id

    # The disconnected board still shows the old picture, and says it is not live.
    expect(cards(page)).to_have_attribute("data-alarm-id", first_id)
    expect(page.locator("#stream-state")).to_have_attribute("data-state", "connecting")
    expect(page.locator("#stream-state")).to_contain_text("Menyambung ulang")

    page.unroute("**/api/stream")
    expect(page.locator("#stream-state")).to_have_attribute("data-state", "live")
    expect(cards(page)).to_have_count(1)
    expect(cards(page)).to_have_attribute("data-alarm-id", str(second["id"]))
    expect(cards(page)).to_have_attribute("data-state", "unacknowledged")


def test_the_board_resyncs_by_itself_after_the_dashboard_restarts(
    dashboard: DashboardServer, gateway: Gateway, pin_factory: MockFactory, page: Page
) -> None:
    sign_in(page, dashboard, OPERATOR)
    press(pin_factory, 17)
    card = cards(page)
    expect(card.locator(".presses")).to_have_text("1")
    navigations = main_frame_navigations(page)

    dashboard.stop()  # a redeploy: the process goes away
    expect(page.locator("#stream-state")).to_have_attribute("data-state", "connecting")
    press(pin_factory, 17)  # a second press while no dashboard runs: it waits at the gateway and the broker
    dashboard.start()

    expect(page.locator("#stream-state")).to_have_attribute("data-state", "live")
    expect(card.locator(".presses")).to_have_text("2")  # caught up, without anyone touching the board
    expect(cards(page)).to_have_count(1)
    assert navigations == [], "the board reloaded instead of re-syncing"


def test_the_board_speaks_english_when_asked(
    dashboard: DashboardServer, gateway: Gateway, pin_factory: MockFactory, page: Page
) -> None:
    sign_in(page, dashboard, OPERATOR)
    page.goto(dashboard.url + "/board?lang=en")
    expect(page.locator("#stream-state")).to_have_attribute("data-state", "live")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Fire Post Alarm Board")
    expect(page.locator("#no-alarms")).to_have_text("No open alarms.")
    expect(page.locator("#sound-prompt")).to_contain_text("Alarm sound is off")

    press(pin_factory, 17)
    card = cards(page)
    expect(card.locator(".state")).to_have_text("⚠ UNACKNOWLEDGED")
    expect(card.locator(".kind")).to_have_text("FIRE")
    card.get_by_role("button", name="Acknowledge").click()
    expect(card.locator(".state")).to_have_text("✔ ACKNOWLEDGED")
    expect(card.locator("button.resolve")).to_have_text("Resolve")
    expect(card.locator("select[name=resolution] option")).to_have_text(["Real incident", "False alarm", "Test"])

    # The choice is kept for the session: the next page load is English without ?lang.
    page.goto(dashboard.url + "/board")
    expect(page.locator("h1")).to_have_text("Fire Post Alarm Board")


def test_screenshots_of_both_desks_with_an_open_alarm(
    dashboard: DashboardServer,
    gateway: Gateway,
    pin_factory: MockFactory,
    open_page: Callable[..., Page],
) -> None:
    fire = open_page()
    sapa = open_page()
    sign_in(fire, dashboard, OPERATOR)
    sign_in(sapa, dashboard, SAPA_DESK, lands_on="/sapa")
    press(pin_factory, 17)
    press(pin_factory, 23)
    expect(cards(fire)).to_have_attribute("data-state", "unacknowledged")
    expect(cards(sapa)).to_have_attribute("data-state", "unacknowledged")
    for board in (fire, sapa):
        expect(body_sound(board)).to_have_attribute("data-sound", "playing")
        expect(board.locator("#gateway-list li[data-gw=gw-test]")).to_have_attribute("data-state", "online")

    for name, board in (("board-fire.png", fire), ("board-sapa.png", sapa)):
        path = screenshot(board, name)
        assert path.stat().st_size > 10_000


def test_an_escalated_alarm_stands_out_and_the_trouble_list_shows_a_lost_gateway(
    tmp_path: Path,
    broker_settings: BrokerSettings,
    make_gateway_config: Callable[..., GatewayConfig],
    start_gateway: Callable[..., Gateway],
    pin_factory: MockFactory,
    page: Page,
) -> None:
    with own_dashboard(
        tmp_path,
        broker_settings,
        SIAGA_ESCALATION=EscalationSettings(after_s={"fire": (1.0,), "sapa": (1.0,)}, check_interval_s=0.1),
        SIAGA_SUPERVISION=SupervisionSettings(check_interval_s=0.2),
    ) as dashboard:
        gateway = start_gateway(make_gateway_config())
        sign_in(page, dashboard, OPERATOR)
        press(pin_factory, 17)
        card = cards(page)
        expect(card).to_have_attribute("data-escalation", "1")  # one second unacknowledged
        expect(card).to_have_class(re.compile(r"\bescalated\b"))
        banner = card.locator(".escalation")
        expect(banner).to_contain_text("ESKALASI tahap 1")
        expect(banner).to_have_attribute("role", "alert")  # screen readers announce it too
        screenshot(page, "board-escalated.png")

        card.locator("button.ack").click()
        expect(card).to_have_attribute("data-state", "acknowledged")
        expect(banner).to_have_count(0)  # answered: no longer shouted

        expect(page.locator("#no-troubles")).to_be_visible()
        gateway.close()  # its retained "offline" reaches the dashboard
        trouble = page.locator("#trouble-list li[data-type=gateway_offline]")
        expect(trouble).to_contain_text("Gateway mati")
        expect(trouble).to_contain_text("gw-test")
        expect(page.locator("#trouble-count")).to_have_text("1")


def test_a_press_from_an_unregistered_button_shows_its_doubt_on_the_board(
    tmp_path: Path, broker_settings: BrokerSettings, page: Page
) -> None:
    """Fail open, visibly: the alarm is on the board at once, saying why it needs a second look."""
    import time

    from firmware_bridge.payloads import Event, EventType, Kind, Source
    from firmware_bridge.timeutil import format_epoch
    from firmware_bridge.topics import Topics

    from .mqttprobe import Probe

    supervision = SupervisionSettings(check_interval_s=0.2)
    with (
        own_dashboard(tmp_path, broker_settings, SIAGA_SUPERVISION=supervision) as dashboard,
        Probe(broker_settings) as probe,
    ):
        sign_in(page, dashboard, OPERATOR)
        event = Event(
            id="01M8N8WQMRR53SX1BWDFSSDFWZ",
            gw="gw-lost",
            button="pasar-baru-fire-9",
            kind=Kind.FIRE,
            type=EventType.PRESS,
            ts=format_epoch(time.time()),
            src=Source.GPIO,
        )
        probe.publish(Topics().event("gw-lost"), event.encode())
        card = cards(page)
        expect(card).to_have_attribute("data-state", "unacknowledged")
        mark = card.locator(".anomaly")
        expect(mark).to_have_attribute("data-anomaly", "unregistered")
        expect(mark).to_contain_text("Tombol tidak terdaftar")
        trouble = page.locator("#trouble-list li[data-type=button_unregistered]")
        expect(trouble).to_contain_text("pasar-baru-fire-9")
        screenshot(page, "board-unregistered.png")


def test_the_map_and_site_list_show_each_site_by_shape_and_text_and_lead_to_its_alarm(
    dashboard: DashboardServer, gateway: Gateway, pin_factory: MockFactory, page: Page
) -> None:
    sign_in(page, dashboard, OPERATOR)
    page.get_by_role("button", name="Peta").click()
    site = page.locator("#site-map g.site[data-site='Pasar Andoolo']")
    expect(site).to_have_attribute("data-state", "ok")
    expect(site.locator(".shape")).to_have_text("●")
    expect(page.locator("#alarms-view")).to_be_hidden()

    press(pin_factory, 17)
    expect(site).to_have_attribute("data-state", "unacknowledged")  # without a reload
    expect(site.locator(".shape")).to_have_text("▲")  # shape as well as colour
    expect(site).to_have_attribute("aria-label", "Pasar Andoolo: BELUM DITANGGAPI")
    screenshot(page, "board-map.png")

    page.get_by_role("button", name="Daftar lokasi").click()
    row = page.locator("#site-table tr[data-site='Pasar Andoolo']")
    expect(row).to_have_attribute("data-state", "unacknowledged")
    expect(row.locator("[data-button='fire-1']")).to_contain_text("BELUM DITANGGAPI")
    expect(row.locator("[data-button='sapa-1']")).to_have_count(0)  # the fire post's list has no SAPA buttons

    # Keyboard only: back to the map, focus the site, Enter opens its alarm card.
    page.get_by_role("button", name="Peta").click()
    # Focus and Enter in one step on the element found then: the map is redrawn on stream updates, and a
    # site focused before a redraw is no longer the one Enter reaches (this failed once under load).
    site.press("Enter")
    card = cards(page)
    expect(page.locator("#alarms-view")).to_be_visible()
    expect(card).to_be_focused()
    page.keyboard.press("Tab")
    expect(card.locator("button.ack")).to_be_focused()
    page.keyboard.press("Enter")
    expect(card).to_have_attribute("data-state", "acknowledged")


def test_the_wall_display_is_large_and_keeps_the_live_state(
    dashboard: DashboardServer, gateway: Gateway, pin_factory: MockFactory, open_page: Callable[..., Page]
) -> None:
    page = open_page(viewport={"width": 1920, "height": 1080})
    sign_in(page, dashboard, OPERATOR)
    page.locator("#wall-toggle").click()
    expect(page.locator("body")).to_have_class(re.compile(r"\bwall\b"))
    expect(page.locator("#stream-state")).to_have_attribute("data-state", "live")
    press(pin_factory, 17)
    card = cards(page)
    expect(card).to_have_attribute("data-state", "unacknowledged")
    size = card.locator(".place").evaluate("node => parseFloat(getComputedStyle(node).fontSize)")
    assert size >= 40, f"the place is {size}px: not readable across a room"
    expect(page.locator("#map-view")).to_be_visible()  # the map beside the alarms, no clicking around
    expect(page.locator("#site-map g.site[data-site='Pasar Andoolo']")).to_have_attribute(
        "data-state", "unacknowledged"
    )
    screenshot(page, "board-wall.png")


def acknowledged_and_called_false(page: Page, dashboard: DashboardServer, pin_factory: MockFactory) -> Locator:
    """The fire operator's board with one pressed alarm, acknowledged, "false alarm" chosen (not yet resolved)."""
    sign_in(page, dashboard, OPERATOR)
    press(pin_factory, 17)
    card = cards(page)
    card.locator("button.ack").click()
    expect(card).to_have_attribute("data-state", "acknowledged")
    card.locator("select[name=resolution]").select_option("false_alarm")
    return card


def test_what_an_operator_is_typing_on_a_card_survives_a_live_update(
    dashboard: DashboardServer, gateway: Gateway, pin_factory: MockFactory, page: Page
) -> None:
    """Another press redraws the board; the chosen resolution, the note and the cursor stay."""
    card = acknowledged_and_called_false(page, dashboard, pin_factory)
    resolve = card.locator("form.resolve")
    resolve.locator("input[name=note]").fill("anak-anak bermain")
    press(pin_factory, 17)  # a second press: the alarm's revision moves and the list is redrawn
    expect(card.locator(".presses")).to_contain_text("2")
    expect(resolve.locator("select[name=resolution]")).to_have_value("false_alarm")
    expect(resolve.locator("input[name=note]")).to_have_value("anak-anak bermain")
    expect(resolve.locator("input[name=note]")).to_be_focused()


def test_the_statistics_page_shows_response_times_from_stored_alarms(
    dashboard: DashboardServer, gateway: Gateway, pin_factory: MockFactory, page: Page
) -> None:
    card = acknowledged_and_called_false(page, dashboard, pin_factory)
    card.locator("button.resolve").click()
    expect(cards(page)).to_have_count(0)
    page.get_by_role("link", name="Statistik respons").click()
    expect(page.locator("h1")).to_have_text("Statistik respons")
    row = page.locator("#by-site tr[data-key='Pasar Andoolo']")
    expect(row).to_contain_text("100 %")  # one false alarm of one
    expect(row.locator(".ack-median")).not_to_have_attribute("data-seconds", "")
    expect(page.locator("#ack-chart g.bar")).to_have_count(1)
    screenshot(page, "statistics.png", full_page=True)
    with page.expect_download() as download:
        page.locator("a.csv[data-group='site']").click()
    assert "Pasar Andoolo" in Path(download.value.path()).read_text()


# -- citizens' reports ------------------------------------------------------------------------

PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "geolocation": {"latitude": -4.3497, "longitude": 122.3786},
    "permissions": ["geolocation"],
}


def test_a_citizen_reports_from_a_phone_and_satpol_pp_works_the_report(
    dashboard: DashboardServer, open_page: Callable[..., Page], tmp_path: Path
) -> None:
    phone = open_page(**PHONE)
    phone.goto(dashboard.url + "/lapor")
    # Only the chosen category's questions are shown (and sent).
    questions = phone.locator("fieldset.attributes:visible")
    expect(questions).to_have_count(0)
    phone.select_option("#service_code", "ternak-berkeliaran")
    expect(questions).to_have_count(1)
    expect(questions).to_have_attribute("data-category", "ternak-berkeliaran")
    questions.get_by_label("Sapi").check()
    phone.fill("#description", "Sapi berkeliaran di jalan poros depan pasar, pagi hari.")
    phone.click("#locate")  # the device's position
    expect(phone.locator("#lat")).to_have_value("-4.349700")
    expect(phone.locator("#long")).to_have_value("122.378600")
    photo = tmp_path / "sapi.jpg"
    photo.write_bytes(jpeg(1200, 900))
    phone.set_input_files("#photos", str(photo))
    # Made for a phone: nothing wider than the screen.
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(phone, "report-form.png", full_page=True)

    phone.click("button[type=submit]")
    phone.wait_for_url(re.compile(r".*/lapor/LAP-\d{4}-\d{6}\?new=1$"))
    ticket = phone.locator("#ticket").inner_text()
    expect(phone.locator("#status")).to_have_text("Diterima")

    officer = open_page()
    officer.goto(dashboard.url + "/login")
    officer.fill("input[name=username]", SATPOL[0])
    officer.fill("input[name=password]", SATPOL[1])
    officer.click("form.login button[type=submit]")
    officer.wait_for_url(dashboard.url + "/satpol/")
    officer.click(f"#queue a:text-is('{ticket}')")
    expect(officer.locator("#answers")).to_contain_text("Sapi")
    image = officer.locator(".photos img")
    expect(image).to_have_count(1)
    officer.wait_for_function("img => img.complete && img.naturalWidth === 1200", arg=image.element_handle())
    move = officer.locator("#move")
    move.locator("select[name=to_status]").select_option("verified")
    move.locator("textarea[name=note]").fill("Sudah dicek di lokasi.")
    move.locator("input[name=public]").check()
    move.locator("button[type=submit]").click()
    expect(officer.locator("#status")).to_have_text("Terverifikasi")

    phone.goto(dashboard.url + f"/lapor/{ticket}")
    expect(phone.locator("#status")).to_have_text("Terverifikasi")
    expect(phone.locator("#history")).to_contain_text("Sudah dicek di lokasi.")


@pytest.fixture
def tile_server() -> Iterator[str]:
    """A map tile server on loopback: every tile is the same small PNG."""
    import http.server
    import io
    import threading

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 220, 200)).save(buffer, "PNG")
    tile = buffer.getvalue()

    class Tiles(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(tile)))
            self.end_headers()
            self.wfile.write(tile)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_citizen_marks_the_place_on_the_map_and_the_officer_sees_it(
    tmp_path: Path, broker_settings: Any, tile_server: str, open_page: Callable[..., Page]
) -> None:
    config = dashboard_config(tmp_path / "dashboard", broker_settings, **tiles_from(tile_server))
    server = DashboardServer(config).start()
    try:
        server.create_user(*SATPOL, "satpol")
        phone = open_page(**PHONE)
        phone.goto(server.url + "/lapor")
        phone.select_option("#service_code", "reklame-tanpa-izin")
        expect(phone.locator("#map img.leaflet-tile-loaded").first).to_be_visible()  # tiles allowed by the CSP
        expect(phone.locator("#map")).to_contain_text("Peta uji")
        phone.locator("#map").click()  # the middle of the map: the regency's centre
        latitude = float(phone.locator("#lat").input_value())
        longitude = float(phone.locator("#long").input_value())
        assert abs(latitude - -4.2) < 0.05 and abs(longitude - 122.4) < 0.05
        phone.click("button[type=submit]")
        phone.wait_for_url(re.compile(r".*/lapor/LAP-\d{4}-\d{6}\?new=1$"))
        ticket = phone.locator("#ticket").inner_text()

        officer = open_page()
        officer.goto(server.url + "/login")
        officer.fill("input[name=username]", SATPOL[0])
        officer.fill("input[name=password]", SATPOL[1])
        officer.click("form.login button[type=submit]")
        officer.wait_for_url(server.url + "/satpol/")
        officer.goto(server.url + f"/satpol/laporan/{ticket}")
        expect(officer.locator("#map .leaflet-marker-icon")).to_have_count(1)
        expect(officer.locator("#map img.leaflet-tile-loaded").first).to_be_visible()
        assert f"{latitude:.6f}, {longitude:.6f}" in officer.content()
    finally:
        server.stop()


def test_with_a_tile_server_configured_the_board_puts_its_sites_on_tiles(
    tmp_path: Path,
    broker_settings: Any,
    tile_server: str,
    make_gateway_config: Callable[..., Any],
    start_gateway: Callable[..., Gateway],
    pin_factory: MockFactory,
    page: Page,
) -> None:
    with own_dashboard(tmp_path, broker_settings, **tiles_from(tile_server)) as dashboard:
        start_gateway(make_gateway_config())
        sign_in(page, dashboard, OPERATOR)
        page.get_by_role("button", name="Peta").click()
        expect(page.locator("#tile-map img.leaflet-tile-loaded").first).to_be_visible()  # allowed by the CSP
        expect(page.locator("#site-map")).to_be_hidden()
        marker = page.locator("#tile-map .tile-site[data-site='Pasar Andoolo']")
        expect(marker).to_have_attribute("data-state", "ok")
        press(pin_factory, 17)
        expect(marker).to_have_attribute("data-state", "unacknowledged")
        expect(marker.locator(".shape")).to_have_text("▲")
        expect(page.locator("#tile-map")).to_contain_text("Peta uji")
        page.locator("#tile-map .leaflet-marker-icon").first.click()
        expect(cards(page)).to_be_focused()


def test_a_replaced_board_offers_a_real_button_that_reconnects_it(
    tmp_path: Path, broker_settings: Any, open_page: Callable[..., Page]
) -> None:
    """Over the account's screen limit the oldest board gives way, and says so on a button: reachable by
    keyboard, named by its text for a screen reader, and it takes the screen back."""
    with own_dashboard(tmp_path, broker_settings, SIAGA_STREAMS_PER_ACCOUNT=1) as dashboard:
        first = open_page()
        sign_in(first, dashboard, OPERATOR)
        second = open_page()
        sign_in(second, dashboard, OPERATOR)
        state = first.locator("#stream-state")
        expect(state).to_have_attribute("data-state", "replaced")
        reconnect = first.get_by_role("button", name=re.compile("Layar ini digantikan layar lain"))
        expect(reconnect).to_contain_text("paling banyak 1 layar per akun")
        for _ in range(20):  # Tab to it, as someone without a mouse would
            first.keyboard.press("Tab")
            if reconnect.evaluate("node => node === document.activeElement"):
                break
        expect(reconnect).to_be_focused()
        first.keyboard.press("Enter")
        expect(state).to_have_attribute("data-state", "live")
        expect(second.locator("#stream-state")).to_have_attribute("data-state", "replaced")
