"""Defaults of the settings ``dashboard.toml`` may change, in one place for the config reader and ``create_app``."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

#: The dashboard's MQTT client id (``[mqtt] client_id``); the broker's ACL names it.
MQTT_CLIENT_ID = "siaga-dashboard"

#: The prefix of citizens' report tickets (``[reports] ticket_prefix``): LAP-2026-000123.
TICKET_PREFIX = "LAP"

#: Posts of the public report form per client per 10 minutes (``[reports] form_posts_per_10_min``).
FORM_POSTS_PER_10_MIN = 10

#: Open311 posts per API key per minute (``[reports] api_posts_per_min``).
API_POSTS_PER_MIN = 120

#: Live boards one account may keep open (``[board] streams_per_account``): a fire post's wall
#: displays and desks. One more replaces the account's oldest, which says so and stays closed.
STREAMS_PER_ACCOUNT = 20

#: Live boards one dashboard process serves at most (``[dashboard] max_streams``); beyond, a 503.
MAX_STREAMS = 2000

#: The regency's local time: months of statistics, report years and Open311 datetimes (WITA, UTC+8, no DST).
LOCAL_TIME = ZoneInfo("Asia/Makassar")


def photos_folder(data_dir: Path) -> Path:
    """Where report photos are kept unless ``[reports] photos_dir`` says otherwise."""
    return data_dir / "photos"


def form_rate(posts: int = FORM_POSTS_PER_10_MIN) -> tuple[int, float]:
    """(posts, window in seconds) for the public form's rate limiter."""
    return (posts, 600.0)


def api_rate(posts: int = API_POSTS_PER_MIN) -> tuple[int, float]:
    """(posts, window in seconds) for Open311 submissions per API key."""
    return (posts, 60.0)
