"""Mosquitto's dynamic security plugin without I/O: the commands that give each account exactly siaga.acl's topics.

The plugin (Mosquitto 2.0, ``mosquitto_dynamic_security.so``) takes JSON
commands published to ``$CONTROL/dynamic-security/v1`` and answers each on
``.../response`` with the command's name, its ``correlationData`` and an
``error`` when it refused. Here are the commands as plain data and the reading
of the answers; ``brokeradmin.py`` carries them.

What each account may do mirrors ``deploy/mosquitto/siaga.acl`` line by line:
an ACL file's ``read`` is a subscription and the delivery of a message
(``subscribePattern`` and ``publishClientReceive``), ``write`` is
``publishClientSend``. Dynsec in Mosquitto 2.0 does not expand ``%u`` in a
role's topics, so each gateway has a role of its own that spells its id.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from firmware_bridge.errors import SiagaError
from firmware_bridge.topics import Topics, is_valid_id

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"

#: The shared accounts (siaga.acl's ``user`` lines) and their roles.
DASHBOARD_USER = "dashboard"
DASHBOARD_ROLE = "siaga-dashboard"
HA_USER = "ha@siaga"
HA_ROLE = "siaga-homeassistant"
#: A gateway's role: this prefix and its id (a gateway id never starts so: ids are the topics' pattern).
GATEWAY_ROLE_PREFIX = "siaga-gw:"
#: The administrator's role that ``mosquitto_ctrl dynsec init`` makes.
ADMIN_ROLE = "admin"

#: Everything a client may do that no ACL names is refused, reading included (siaga.acl's behaviour).
DEFAULT_ACCESS = {"publishClientSend": False, "publishClientReceive": False, "subscribe": False, "unsubscribe": True}

#: The replies that say a thing is already there: ``create...`` is then followed by ``modify...``.
_ALREADY = ("already exists",)


class DynsecError(SiagaError, RuntimeError):
    """The broker's dynamic security plugin refused a command, or did not answer in time."""


@dataclass(frozen=True)
class Acl:
    acltype: str
    topic: str
    allow: bool = True
    priority: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"acltype": self.acltype, "topic": self.topic, "priority": self.priority, "allow": self.allow}


def read(topic: str) -> list[Acl]:
    """siaga.acl's ``topic read``: subscribe to it, and be handed its messages."""
    return [Acl("subscribePattern", topic), Acl("publishClientReceive", topic)]


def write(topic: str) -> list[Acl]:
    """siaga.acl's ``topic write``."""
    return [Acl("publishClientSend", topic)]


def readwrite(topic: str) -> list[Acl]:
    return read(topic) + write(topic)


def gateway_role(gw_id: str) -> str:
    return GATEWAY_ROLE_PREFIX + gw_id


def gateway_acls(root: str, gw_id: str) -> list[Acl]:
    """siaga.acl's ``pattern`` lines with ``%u`` spelled as this gateway's id."""
    if not is_valid_id(gw_id):
        raise ValueError(f"not a gateway id: {gw_id!r}")
    topics = Topics(root)
    return [
        *readwrite(topics.status(gw_id)),
        *write(topics.inventory(gw_id)),
        *write(topics.event(gw_id)),
        *write(topics.health(gw_id)),
        *read(topics.indicate(gw_id)),
        *read(topics.receipt(gw_id)),
        *read(topics.dashboard_status()),
    ]


def dashboard_acls(root: str) -> list[Acl]:
    """siaga.acl's ``user dashboard``."""
    return [
        *read(f"{root}/gw/+/status"),
        *read(f"{root}/gw/+/inventory"),
        *read(f"{root}/gw/+/event"),
        *read(f"{root}/gw/+/health"),
        *write(f"{root}/gw/+/cmd/indicate"),
        *write(f"{root}/gw/+/cmd/receipt"),
        *readwrite(f"{root}/dashboard/status"),
        *readwrite("homeassistant/+/siaga/+/config"),
        *readwrite(f"{root}/ha/#"),
    ]


def ha_acls(root: str) -> list[Acl]:
    """siaga.acl's ``user ha@siaga``."""
    return [
        *read("homeassistant/#"),
        *write("homeassistant/status"),
        *read(f"{root}/ha/#"),
        *read(f"{root}/gw/+/status"),
    ]


#: What ``mosquitto_ctrl dynsec init`` lets its administrator read beyond the plugin's own topics: every
#: topic (SAPA presses included). The administrator needs none of it to manage accounts.
ADMIN_READ_ALL = (Acl("subscribePattern", "#"), Acl("publishClientReceive", "#"))


# -- commands ---------------------------------------------------------------------------------------


def command(name: str, **fields: Any) -> dict[str, Any]:
    """One command; its ``correlationData`` tells its answer from the others'."""
    return {"command": name, **fields, "correlationData": secrets.token_hex(8)}


def create_role(name: str, acls: Iterable[Acl], textname: str = "") -> dict[str, Any]:
    return command("createRole", rolename=name, textname=textname, acls=[acl.as_json() for acl in acls])


def modify_role(name: str, acls: Iterable[Acl], textname: str = "") -> dict[str, Any]:
    """The role's ACLs replaced by exactly these."""
    return command("modifyRole", rolename=name, textname=textname, acls=[acl.as_json() for acl in acls])


def remove_role_acl(name: str, acl: Acl) -> dict[str, Any]:
    return command("removeRoleACL", rolename=name, acltype=acl.acltype, topic=acl.topic)


def create_client(username: str, password: str, roles: Sequence[str], textname: str = "") -> dict[str, Any]:
    return command(
        "createClient",
        username=username,
        password=password,
        textname=textname,
        roles=[{"rolename": role, "priority": 0} for role in roles],
    )


def modify_client(username: str, roles: Sequence[str], textname: str = "") -> dict[str, Any]:
    """The client's roles replaced by exactly these (its password is :func:`set_client_password`'s)."""
    return command(
        "modifyClient", username=username, textname=textname, roles=[{"rolename": r, "priority": 0} for r in roles]
    )


def set_client_password(username: str, password: str) -> dict[str, Any]:
    return command("setClientPassword", username=username, password=password)


def disable_client(username: str) -> dict[str, Any]:
    """No more logins, and the connected sessions of this username are ended (kicked)."""
    return command("disableClient", username=username)


def enable_client(username: str) -> dict[str, Any]:
    return command("enableClient", username=username)


def delete_client(username: str) -> dict[str, Any]:
    return command("deleteClient", username=username)


def delete_role(name: str) -> dict[str, Any]:
    return command("deleteRole", rolename=name)


def get_client(username: str) -> dict[str, Any]:
    return command("getClient", username=username)


def set_default_acl_access(access: dict[str, bool] | None = None) -> dict[str, Any]:
    access = DEFAULT_ACCESS if access is None else access
    return command("setDefaultACLAccess", acls=[{"acltype": k, "allow": v} for k, v in access.items()])


def payload(commands: Sequence[dict[str, Any]]) -> bytes:
    return json.dumps({"commands": list(commands)}).encode()


# -- answers ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    command: str
    correlation: str | None
    error: str | None = None
    data: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def already_there(self) -> bool:
        return self.error is not None and any(word in self.error.lower() for word in _ALREADY)


def parse_answers(raw: bytes) -> list[Answer]:
    """The plugin's ``{"responses": [...]}``; raises DynsecError for anything else."""
    try:
        document = json.loads(raw)
        responses = document["responses"]
        return [
            Answer(
                command=str(item.get("command", "")),
                correlation=item.get("correlationData"),
                error=item.get("error"),
                data=item.get("data"),
            )
            for item in responses
        ]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DynsecError(f"the broker's dynamic security answer is not understood: {exc}") from None


def refused(commands: Sequence[dict[str, Any]], answers: dict[str, Answer], *, tolerated: Iterable[str] = ()) -> None:
    """Raise DynsecError naming the first command the broker refused (an error in ``tolerated`` is not one)."""
    tolerated = tuple(tolerated)
    for sent in commands:
        answer = answers[sent["correlationData"]]
        if answer.ok or any(part in (answer.error or "") for part in tolerated):
            continue
        who = sent.get("username") or sent.get("rolename") or ""
        raise DynsecError(f"the broker refused {sent['command']} {who}: {answer.error}".replace("  ", " "))
