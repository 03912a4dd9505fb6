"""Webhook notifications: a durable queue in the store and one delivery thread per receiver.

An escalation step queues one row per receiver in ``notifications`` in the
same transaction that records the step, so a notification is never lost to a
crash between the two. Each receiver has its own thread: a receiver that is
down (every POST waits for its timeout) never delays another. A row is
retried with capped exponential backoff until the receiver answers 2xx, a
permanent refusal (4xx) or the attempts run out; either of the last two is
a trouble on the board (see :func:`failing_webhooks`).

Each POST carries ``X-Siaga-Delivery`` (the row id: the same on every retry,
so a receiver can drop a copy it already handled) and, when the receiver has
a secret, ``X-Siaga-Signature: sha256=HMAC(secret, "<timestamp>.<body>")``
with the ``X-Siaga-Timestamp`` it used, so an old request cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import sqlite3
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from firmware_bridge.counters import Counters
from firmware_bridge.periodic import Guard
from firmware_bridge.timeutil import format_epoch

from ..db import Error as StoreError
from ..db import connect, transaction
from . import notices
from .lifecycle import AlarmState

log = logging.getLogger(__name__)


class NotificationEvent(StrEnum):
    ESCALATED = "alarm.escalated"
    ACKNOWLEDGED = "alarm.acknowledged"
    RESOLVED = "alarm.resolved"


class Delivery(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Webhook:
    """A receiver of escalation notifications (``[[escalation.webhook]]``)."""

    name: str
    url: str
    #: The alarm kinds it receives. SAPA alarms go only to receivers that name
    #: "sapa": they are the SAPA desk's, no one else's.
    kinds: frozenset[str]
    #: The escalation steps it receives; None: every step.
    steps: frozenset[int] | None = None
    secret: bytes | None = None
    token: str | None = None
    ca_file: str | None = None
    timeout_s: float = 5.0
    max_attempts: int = 20

    def receives(self, kind: str, step: int) -> bool:
        return kind in self.kinds and (self.steps is None or step in self.steps)


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 5.0
    max_s: float = 300.0

    def delay(self, attempts: int) -> float:
        """The wait before the next try, after ``attempts`` failed ones."""
        return min(self.base_s * 2 ** max(attempts - 1, 0), self.max_s)


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` over ``"<timestamp>.<body>"``: what a receiver recomputes to trust a POST."""
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


# -- the queue (inside the caller's transaction) ---------------------------------------


def _alarm_brief(conn: sqlite3.Connection, alarm_id: int) -> dict[str, Any] | None:
    """The alarm as a notification tells it, from its owner, the alarm store."""
    # Imported here: the store imports this module (an answered alarm's notices are
    # settled in the answer's own transaction), so neither may need the other while loading.
    from . import store

    return store.alarm_brief(conn, alarm_id)


def payload(
    event: NotificationEvent, alarm: dict[str, Any], step: int, now: float, texts: dict[str, str], board_url: str | None
) -> dict[str, Any]:
    alarm = {key: value for key, value in alarm.items() if key != "opened_epoch"}
    return {
        "version": 1,
        "event": str(event),
        "step": step,
        "at": format_epoch(now),
        "alarm": alarm,
        "text": texts,
        "board_url": board_url,
    }


def enqueue(
    conn: sqlite3.Connection,
    *,
    alarm_id: int,
    kind: str,
    event: NotificationEvent,
    step: int,
    body: dict[str, Any],
    webhooks: Iterable[str],
    now: float,
) -> list[str]:
    """Queue ``body`` for each named receiver; returns the names."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    names = list(webhooks)
    conn.executemany(
        "INSERT INTO notifications (alarm_id, kind, event, step, webhook, payload, created_at, next_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(alarm_id, kind, str(event), step, name, text, now, now) for name in names],
    )
    return names


def cancel_pending(conn: sqlite3.Connection, alarm_id: int, now: float, why: str) -> int:
    """Escalation notices of ``alarm_id`` not yet delivered are no longer news: drop them."""
    cursor = conn.execute(
        "UPDATE notifications SET status = ?, finished_at = ?, last_error = ? "
        "WHERE alarm_id = ? AND status = ? AND event = ?",
        (Delivery.CANCELLED, now, why, alarm_id, Delivery.PENDING, NotificationEvent.ESCALATED),
    )
    return cursor.rowcount


def notified_receivers(conn: sqlite3.Connection, alarm_id: int) -> list[tuple[str, int]]:
    """(receiver, highest step) of every escalation notice of ``alarm_id`` that was delivered."""
    rows = conn.execute(
        "SELECT webhook, MAX(step) AS step FROM notifications WHERE alarm_id = ? AND event = ? AND status = ? "
        "GROUP BY webhook ORDER BY webhook",
        (alarm_id, NotificationEvent.ESCALATED, Delivery.SENT),
    ).fetchall()
    return [(row["webhook"], row["step"]) for row in rows]


def settle(conn: sqlite3.Connection, alarm_id: int, now: float) -> list[str]:
    """The alarm is no longer unacknowledged: escalation stops. Notices not yet delivered
    are cancelled; each receiver that had one hears that it was acknowledged (or resolved).
    Runs inside the transaction that acknowledges; returns the receivers told."""
    cancel_pending(conn, alarm_id, now, "the alarm was acknowledged before delivery")
    receivers = notified_receivers(conn, alarm_id)
    alarm = _alarm_brief(conn, alarm_id) if receivers else None
    if alarm is None:
        return []
    for name, step in receivers:
        _queue_follow_up(conn, alarm, name, step, now)
    return [name for name, _step in receivers]


def _queue_follow_up(conn: sqlite3.Connection, alarm: dict[str, Any], webhook: str, step: int, now: float) -> None:
    acknowledged = alarm["state"] == AlarmState.ACKNOWLEDGED
    event = NotificationEvent.ACKNOWLEDGED if acknowledged else NotificationEvent.RESOLVED
    previous = conn.execute(
        "SELECT payload FROM notifications WHERE alarm_id = ? AND webhook = ? ORDER BY id DESC LIMIT 1",
        (alarm["id"], webhook),
    ).fetchone()
    board_url = json.loads(previous["payload"]).get("board_url") if previous else None
    body = payload(event, alarm, step, now, notices.settled_texts(alarm), board_url)
    enqueue(
        conn, alarm_id=alarm["id"], kind=alarm["kind"], event=event, step=step, body=body, webhooks=[webhook], now=now
    )


def retire_unknown(conn: sqlite3.Connection, names: set[str], now: float) -> int:
    """Pending notices for receivers removed from the configuration fail (and show as a
    trouble) instead of waiting for ever for a thread that will never come."""
    pending = conn.execute("SELECT DISTINCT webhook FROM notifications WHERE status = ?", (Delivery.PENDING,))
    gone = [row[0] for row in pending if row[0] not in names]
    if not gone:
        return 0
    marks = ",".join("?" * len(gone))
    with transaction(conn):
        cursor = conn.execute(
            f"UPDATE notifications SET status = ?, finished_at = ?, last_error = ? "  # noqa: S608 - marks only
            f"WHERE status = ? AND webhook IN ({marks})",
            (Delivery.FAILED, now, "the receiver is no longer configured", Delivery.PENDING, *gone),
        )
    return cursor.rowcount


#: A notice being posted is not due again for its receiver's timeout and this much more: no other
#: dashboard process posts it meanwhile. If its poster died, it is posted again after that, with the
#: same ``X-Siaga-Delivery`` id, by which its receiver can tell it already has it.
CLAIM_MARGIN_S = 5.0


def claim(conn: sqlite3.Connection, row: sqlite3.Row, webhook: Webhook) -> bool:
    """Take a due row for posting, unless another process took it since it was read."""
    cursor = conn.execute(
        "UPDATE notifications SET next_at = ? WHERE id = ? AND status = ? AND next_at = ?",
        (time.time() + webhook.timeout_s + CLAIM_MARGIN_S, row["id"], Delivery.PENDING, row["next_at"]),
    )
    return cursor.rowcount == 1


def due(conn: sqlite3.Connection, webhook: str, now: float, limit: int = 50) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT * FROM notifications WHERE status = ? AND webhook = ? AND next_at <= ? ORDER BY id LIMIT ?",
        (Delivery.PENDING, webhook, now, limit),
    ).fetchall()


def next_due_at(conn: sqlite3.Connection, webhook: str) -> float | None:
    row = conn.execute(
        "SELECT MIN(next_at) FROM notifications WHERE status = ? AND webhook = ?", (Delivery.PENDING, webhook)
    ).fetchone()
    return row[0]


def queued_by_kind(conn: sqlite3.Connection) -> dict[str, int]:
    """Notices waiting to be delivered, per alarm kind (``/metrics``: each kind's count, never one over both)."""
    rows = conn.execute("SELECT kind, COUNT(*) FROM notifications WHERE status = ? GROUP BY kind", (Delivery.PENDING,))
    return {kind: int(count) for kind, count in rows}


def failing_webhooks(conn: sqlite3.Connection, since: float, min_attempts: int = 3) -> list[dict[str, Any]]:
    """Per receiver and alarm kind: notices failed since ``since`` or pending after ``min_attempts`` tries.

    Per kind, because each count goes only to the desk of its kind: one
    number over both would tell the fire post how many SAPA notices failed.
    """
    rows = conn.execute(
        "SELECT webhook, kind, COUNT(*) AS count, MIN(created_at) AS began, "
        "MAX(last_error) AS error FROM notifications "
        "WHERE (status = ? AND finished_at >= ?) OR (status = ? AND attempts >= ?) GROUP BY webhook, kind",
        (Delivery.FAILED, since, Delivery.PENDING, min_attempts),
    ).fetchall()
    return [dict(row) for row in rows]


def list_for_alarm(conn: sqlite3.Connection, alarm_id: int) -> list[dict[str, Any]]:
    """The notices of one alarm, oldest first. Row ids stay inside: they run across every kind,
    so their gaps would count another desk's notices."""
    rows = conn.execute(
        "SELECT event, step, webhook, status, attempts, created_at, finished_at, last_error "
        "FROM notifications WHERE alarm_id = ? ORDER BY id",
        (alarm_id,),
    ).fetchall()
    return [
        {
            **dict(row),
            "created_at": format_epoch(row["created_at"]),
            "finished_at": format_epoch(row["finished_at"]) if row["finished_at"] else None,
        }
        for row in rows
    ]


# -- delivery ---------------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirected POST would silently become a GET somewhere else: count it as a failure."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    permanent: bool  # retrying cannot help (the receiver refused the request itself)
    detail: str


def post(webhook: Webhook, delivery_id: int, body: bytes, now: float | None = None) -> Outcome:
    """One POST of ``body`` to ``webhook``; never raises for network or HTTP trouble."""
    timestamp = str(int(time.time() if now is None else now))
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "siaga-dashboard",
        "X-Siaga-Delivery": str(delivery_id),
        "X-Siaga-Timestamp": timestamp,
    }
    if webhook.secret is not None:
        headers["X-Siaga-Signature"] = signature(webhook.secret, timestamp, body)
    if webhook.token is not None:
        headers["Authorization"] = f"Bearer {webhook.token}"
    request = urllib.request.Request(webhook.url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only, checked in config
    handlers: list[Any] = [_NoRedirects()]
    if webhook.url.startswith("https:"):
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=webhook.ca_file)))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=webhook.timeout_s) as response:
            response.read(65536)
            return Outcome(True, False, f"HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        # 408 and 429 say "later"; other 4xx say this request will never be taken.
        permanent = 400 <= exc.code < 500 and exc.code not in (408, 425, 429)
        return Outcome(False, permanent, f"HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        # HTTPException: a receiver that answers what is not HTTP (a bad status line, a cut body).
        reason = getattr(exc, "reason", exc)
        return Outcome(False, False, f"{type(exc).__name__}: {reason}")


class Notifier:
    """One delivery thread per receiver, each draining its own rows of the queue."""

    def __init__(
        self,
        database: str,
        webhooks: Iterable[Webhook],
        retry: RetryPolicy,
        counters: Counters | None = None,
    ) -> None:
        self._database = database
        self.webhooks = {webhook.name: webhook for webhook in webhooks}
        self.retry = retry
        self.counters = counters if counters is not None else Counters()
        self._stop = threading.Event()
        self._wake = {name: threading.Event() for name in self.webhooks}
        self._threads = [
            threading.Thread(target=self._run, args=(webhook,), name=f"siaga-webhook-{webhook.name}", daemon=True)
            for webhook in self.webhooks.values()
        ]
        #: One error policy per delivery thread: a failing round is logged and the next comes as usual.
        self._guards = {name: Guard(f"webhook {name}") for name in self.webhooks}
        #: Whether this process may send now (:class:`dashboard.peers.Leadership`); None: always.
        self.gate: Callable[[], bool] | None = None

    @property
    def failure(self) -> BaseException | None:
        """What ended a delivery thread, if one ended."""
        return next((guard.failure for guard in self._guards.values() if guard.failure is not None), None)

    def start(self) -> Notifier:
        conn = connect(self._database)
        try:
            retired = retire_unknown(conn, set(self.webhooks), time.time())
        finally:
            conn.close()
        if retired:
            log.error("%d queued notification(s) for receivers no longer configured were given up", retired)
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for event in self._wake.values():
            event.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(10)

    def wake(self) -> None:
        """New rows were queued: look now instead of at the next timer."""
        for event in self._wake.values():
            event.set()

    def is_alive(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    def deliver_due(self, conn: sqlite3.Connection, webhook: Webhook, now: float | None = None) -> int:
        """Try every row due for ``webhook``; returns how many were delivered."""
        delivered = 0
        for row in due(conn, webhook.name, time.time() if now is None else now):
            if self._stop.is_set():
                break
            if not claim(conn, row, webhook):
                continue  # another dashboard process took it (a leader's last round)
            outcome = post(webhook, row["id"], row["payload"].encode("utf-8"))
            self._record(conn, row, webhook, outcome)
            delivered += outcome.delivered
            if not outcome.delivered:
                break  # the receiver is failing: its later rows wait for their own retry time
        return delivered

    def _record(self, conn: sqlite3.Connection, row: sqlite3.Row, webhook: Webhook, outcome: Outcome) -> None:
        now = time.time()
        attempts = row["attempts"] + 1
        with transaction(conn):
            if outcome.delivered:
                # Delivered even if the alarm was acknowledged meanwhile (the row was
                # cancelled in flight): the receiver has it, so it must hear the follow-up.
                conn.execute(
                    "UPDATE notifications SET status = ?, attempts = ?, finished_at = ?, last_error = NULL "
                    "WHERE id = ?",
                    (Delivery.SENT, attempts, now, row["id"]),
                )
                if row["event"] == NotificationEvent.ESCALATED:
                    self._follow_up_if_settled(conn, row, now)
            elif outcome.permanent or attempts >= webhook.max_attempts:
                conn.execute(
                    "UPDATE notifications SET status = ?, attempts = ?, finished_at = ?, last_error = ? "
                    "WHERE id = ? AND status = ?",
                    (Delivery.FAILED, attempts, now, outcome.detail, row["id"], Delivery.PENDING),
                )
            else:
                conn.execute(
                    "UPDATE notifications SET attempts = ?, next_at = ?, last_error = ? WHERE id = ? AND status = ?",
                    (attempts, now + self.retry.delay(attempts), outcome.detail, row["id"], Delivery.PENDING),
                )
        # Per kind: diagnostics show each role only its own kinds' work.
        kind = row["kind"]
        if outcome.delivered:
            self.counters.add(f"notifications_sent.{kind}")
            log.info("webhook %s: notification %s delivered (%s)", webhook.name, row["id"], outcome.detail)
        elif outcome.permanent or attempts >= webhook.max_attempts:
            self.counters.add(f"notifications_failed.{kind}")
            log.error(
                "webhook %s: notification %s given up after %d attempt(s): %s",
                webhook.name,
                row["id"],
                attempts,
                outcome.detail,
            )
        else:
            self.counters.add(f"notification_retries.{kind}")
            log.warning("webhook %s: notification %s failed (%s); will retry", webhook.name, row["id"], outcome.detail)

    def _follow_up_if_settled(self, conn: sqlite3.Connection, row: sqlite3.Row, now: float) -> None:
        """The alarm was acknowledged while this notice was on its way: tell this receiver too."""
        alarm = _alarm_brief(conn, row["alarm_id"])
        if alarm is None or alarm["state"] == AlarmState.UNACKNOWLEDGED:
            return
        already = conn.execute(
            "SELECT 1 FROM notifications WHERE alarm_id = ? AND webhook = ? AND event != ?",
            (row["alarm_id"], row["webhook"], NotificationEvent.ESCALATED),
        ).fetchone()
        if not already:
            _queue_follow_up(conn, alarm, row["webhook"], row["step"], now)
            self._wake[row["webhook"]].set()

    def _run(self, webhook: Webhook) -> None:
        conn = connect(self._database)
        wake = self._wake[webhook.name]
        guard = self._guards[webhook.name]
        try:
            with guard.lifetime():
                while not self._stop.is_set():
                    wake.clear()
                    if self.gate is not None and not self.gate():
                        wake.wait(1.0)  # another process sends; this one takes over if it becomes the leader
                        continue
                    next_at = None
                    # Only the store being busy or failing is retried. A bug may strike after a
                    # notice was posted: going on would post it again and again, unseen; ending
                    # this receiver's thread makes /healthz say 503 instead.
                    with guard.round("delivery round failed", absorb=StoreError):
                        self.deliver_due(conn, webhook)
                        next_at = next_due_at(conn, webhook.name)
                    wait = 5.0 if next_at is None else min(max(next_at - time.time(), 0.0), 5.0)
                    wake.wait(wait)
        finally:
            conn.close()
