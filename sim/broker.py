"""An embedded MQTT broker (amqtt, pure Python) for the one-command demo.

It lets ``make demo`` run on a machine without Mosquitto. It is not the
production broker: amqtt keeps what it queues for a persistent client
while it is away in memory only, lost when the demo stops, so the delivery
guarantees in docs/reliability.md assume Mosquitto (``siaga-sim demo
--broker mosquitto`` uses it when installed).

Access is the production broker's: every client logs in with an account it
is given (a gateway's username is its gateway id, the dashboard's is
``dashboard``), anonymous clients and wrong passwords are refused, and
the topic ACL is ``deploy/mosquitto/siaga.acl`` itself, translated by
:func:`translate_acl` into amqtt's per-user topic lists (amqtt has no
``%u`` patterns, so each pattern is written out for every account).

amqtt 0.12 needs four repairs for that to hold; :class:`_Broker` and
:class:`AclPlugin` make them:

- it finds, takes over or deletes the session of a CONNECT's client id
  *before* it checks the credentials, so a client without an account could
  drop a gateway's connection, wipe its subscriptions or overwrite its
  stored session's last will and username: here the credentials are
  checked first, and a stored session goes back only to its own account;
- it never checks a last will against the ACL: here, as in Mosquitto, a
  CONNECT whose will the account may not publish is refused;
- on every connect it replays the retained messages matching *any*
  client's subscriptions, unchecked: here only those of the client's own
  subscriptions that it may read;
- ``TopicAccessControlListPlugin``'s configuration has no subscribe or
  receive lists (only the deprecated ``acl``), though its check reads them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.plugins.topic_checking import TopicAccessControlListPlugin
from amqtt.utils import gen_client_id
from pwdlib.hashers.argon2 import Argon2Hasher

from .mosquitto import ACL_FILE

#: Access words of a Mosquitto ACL line, and what each allows: (read, write).
_ACCESS = {"read": (True, False), "write": (False, True), "readwrite": (True, True)}


#: What a reconnect brings anew into a stored session.
_RENEWED_AT_CONNECT = ("will_flag", "will_retain", "will_message", "will_topic", "will_qos", "keep_alive", "password")


class EmbeddedBrokerError(RuntimeError):
    pass


@dataclass(frozen=True)
class TopicAcl:
    """Per-username topic lists: what each account may publish, and subscribe to and receive."""

    publish: dict[str, list[str]]
    read: dict[str, list[str]]


def translate_acl(text: str, usernames: Iterable[str]) -> TopicAcl:
    """Translate a Mosquitto ``acl_file`` into explicit topic lists for the given accounts.

    ``user NAME`` starts that account's ``topic`` lines; a ``pattern`` line
    applies to every account, with ``%u`` replaced by its username. Lines
    for no account (anonymous ``topic`` lines, users without an account) are
    left out: anonymous clients are refused anyway. What amqtt cannot express
    (``deny``, ``%c``) is an error, never silently dropped.
    """
    users = list(usernames)
    for user in users:
        if not user or any(c in user for c in "/+#"):
            raise ValueError(f"username {user!r} cannot stand in a topic (%u)")
    acl = TopicAcl({user: [] for user in users}, {user: [] for user in users})
    current: str | None = None

    def grant(user: str, access: str, topic: str) -> None:
        read, write = _ACCESS[access]
        for allowed, wanted in ((acl.read, read), (acl.publish, write)):
            if wanted and topic not in allowed[user]:
                allowed[user].append(topic)

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        rest = rest.strip()
        if keyword == "user":
            current = rest
            continue
        if keyword not in ("topic", "pattern") or not rest:
            raise ValueError(f"ACL line {number}: cannot translate {line!r}")
        first, _, topic = rest.partition(" ")
        access, topic = (first, topic.strip()) if first in _ACCESS or first == "deny" else ("readwrite", rest)
        if access == "deny" or "%c" in topic:
            raise ValueError(f"ACL line {number}: amqtt's ACL cannot express {line!r}")
        if keyword == "pattern":
            for user in users:
                grant(user, access, topic.replace("%u", user))
        elif current in acl.read:
            grant(current, access, topic)
    return acl


def write_password_hashes(path: Path, accounts: Mapping[str, str]) -> None:
    """amqtt's password file (``user:argon2 hash``), mode 0600.

    The hashes are cheap to compute (one pass, 1 MiB): the demo's passwords
    are long random strings, which no work factor needs to protect.
    """
    hasher = Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1)
    text = "".join(f"{user}:{hasher.hash(password)}\n" for user, password in accounts.items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


class AclPlugin(TopicAccessControlListPlugin):
    """amqtt's topic ACL, with all three lists its check reads (its own Config lacks two)."""

    @dataclass
    class Config:
        publish_acl: dict[str, list[str]] = field(default_factory=dict)
        subscribe_acl: dict[str, list[str]] = field(default_factory=dict)
        receive_acl: dict[str, list[str]] = field(default_factory=dict)


class _Broker(Broker):
    async def _initialize_client_session(self, reader: Any, writer: Any, remote_address: str, remote_port: int):
        # amqtt's own version of this method touches the stored session of the
        # CONNECT's client id before anyone checked who sent it.
        try:
            handler, session = await BrokerProtocolHandler.init_from_connect(reader, writer, self.plugins_manager)
        except MQTTError:
            await writer.close()
            raise
        except NoDataError as exc:
            raise AMQTTError(exc) from exc
        refused = not await self._authenticate(session, None)
        if not refused and session.will_flag:
            refused = not await self._topic_filtering(session, session.will_topic, Action.PUBLISH)
        if refused:
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            await writer.close()
            raise MQTTError(f"refused {session.client_id!r} from {remote_address}:{remote_port}")
        # From here on as amqtt 0.12.1 does it, but for another account's stored session.
        if session.clean_session:
            if session.client_id:
                await self._delete_session(session.client_id)
            else:
                session.client_id = gen_client_id()
            session.parent = 0
        elif session.client_id in self._sessions and self._sessions[session.client_id][0].username == session.username:
            stored, _ = self._sessions[session.client_id]
            for name in _RENEWED_AT_CONNECT:
                setattr(stored, name, getattr(session, name))
            session = stored
            session.parent = 1
        else:
            # A stored session is only handed back to the account that made it
            # (its subscriptions and queued messages were checked for that one).
            await self._delete_session(session.client_id)
            session.parent = 0
        delay = self.config.get("timeout-disconnect-delay", 0)
        if session.keep_alive > 0 and isinstance(delay, int):
            session.keep_alive += delay
        return handler, session

    async def _publish_retained_messages_for_subscription(self, subscription: tuple[str, int], session: Any) -> None:
        topic_filter, qos = subscription
        if not any(s.client_id == session.client_id for s, _ in self._subscriptions.get(topic_filter, ())):
            return  # another client's subscription, which amqtt replays on every connect
        handler = self._get_handler(session)
        if handler is None:
            return
        tasks = [
            asyncio.ensure_future(
                handler.mqtt_publish(retained.topic, retained.data, min(qos, retained.qos or qos), retain=True)
            )
            for topic, retained in list(self._retained_messages.items())
            if self._matches(topic, topic_filter) and await self._topic_filtering(session, topic, Action.RECEIVE)
        ]
        if tasks:
            await asyncio.wait(tasks)


class EmbeddedBroker:
    """amqtt on its own thread and event loop, for the demo and its tests.

    ``accounts`` maps each username to its password; ``state_dir`` receives
    the broker's password file (hashes only, mode 0600).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        accounts: Mapping[str, str],
        state_dir: Path,
        acl_file: Path = ACL_FILE,
    ) -> None:
        if not accounts:
            raise EmbeddedBrokerError("the embedded broker needs at least one account (anonymous clients are refused)")
        self.host = host
        self.port = port
        self.accounts = dict(accounts)
        self.password_file = state_dir / "amqtt-passwd"
        self.acl = translate_acl(acl_file.read_text("utf-8"), self.accounts)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._broker: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="amqtt-broker", daemon=True)

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                # No AnonymousAuthPlugin: it lets in anyone who names any username.
                "amqtt.plugins.authentication.FileAuthPlugin": {"password_file": str(self.password_file)},
                f"{__name__}.AclPlugin": {
                    "publish_acl": self.acl.publish,
                    "subscribe_acl": self.acl.read,
                    "receive_acl": self.acl.read,
                },
            },
        }

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - handed to start(), which raises it
            self.error = exc
            self._ready.set()
        finally:
            self._stopped.set()

    async def _serve(self) -> None:
        self._broker = _Broker(self._config())
        await self._broker.start()
        self._stop_event = asyncio.Event()
        self._ready.set()
        await self._stop_event.wait()
        await self._broker.shutdown()

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        write_password_hashes(self.password_file, self.accounts)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise EmbeddedBrokerError("the embedded broker did not start")
        if self.error is not None:
            raise EmbeddedBrokerError(f"the embedded broker failed: {self.error}") from self.error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive() and self._broker is not None:
            self._loop.call_soon_threadsafe(self._stop_event.set)
            self._stopped.wait(timeout)
