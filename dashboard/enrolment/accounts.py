"""The broker accounts Siaga keeps through the dynamic security plugin: one per gateway, and the shared ones.

A gateway's account is made (or its password replaced) when its enrolment
code is redeemed: a client named by the gateway id, a random password of
256 bits handed to the gateway once and never stored by the dashboard, and a
role of its own granting exactly its topics. ``siaga-dashboard broker-setup``
makes the dashboard's and Home Assistant's accounts and the default access.
Every step is idempotent: running it again brings the broker to the same state.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from . import dynsec
from .brokeradmin import BrokerAdmin
from .dynsec import DynsecError

#: 32 random bytes as URL-safe text (43 characters): far beyond the 128 bits asked of it.
PASSWORD_BYTES = 32


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def ensure_role(admin: BrokerAdmin, name: str, acls: list[dynsec.Acl], textname: str) -> None:
    """The role exists with exactly these ACLs."""
    create = dynsec.create_role(name, acls, textname)
    answer = admin.run([create])[create["correlationData"]]
    if answer.ok:
        return
    if not answer.already_there:
        dynsec.refused([create], {create["correlationData"]: answer})
    modify = dynsec.modify_role(name, acls, textname)
    dynsec.refused([modify], admin.run([modify]))


def ensure_client(admin: BrokerAdmin, username: str, password: str, roles: list[str], textname: str) -> bool:
    """The client exists with this password and exactly these roles; True if it was there before.

    A client that was there is disabled and enabled again after its password changed: that ends the
    sessions logged in with the old password (a replaced or stolen gateway stays connected otherwise).
    """
    create = dynsec.create_client(username, password, roles, textname)
    answer = admin.run([create])[create["correlationData"]]
    if answer.ok:
        return False
    if not answer.already_there:
        dynsec.refused([create], {create["correlationData"]: answer})
    steps = [
        dynsec.set_client_password(username, password),
        dynsec.modify_client(username, roles, textname),
        dynsec.disable_client(username),
        dynsec.enable_client(username),
    ]
    dynsec.refused(steps, admin.run(steps))
    return True


@dataclass(frozen=True)
class GatewayAccount:
    username: str
    password: str
    #: The account was there already (re-enrolment): its old password no longer works.
    replaced: bool


def gateway_account(admin: BrokerAdmin, root: str, gw_id: str) -> GatewayAccount:
    """The gateway's role and client, with a new password; refused if an account of that name is another's."""
    role = dynsec.gateway_role(gw_id)
    _refuse_foreign_client(admin, gw_id, role)
    ensure_role(admin, role, dynsec.gateway_acls(root, gw_id), f"Siaga gateway {gw_id}")
    password = new_password()
    replaced = ensure_client(admin, gw_id, password, [role], f"Siaga gateway {gw_id}")
    return GatewayAccount(gw_id, password, replaced)


def remove_gateway_account(admin: BrokerAdmin, gw_id: str) -> None:
    """The gateway's client and role deleted (a plan withdrawn); missing ones are no error."""
    steps = [dynsec.delete_client(gw_id), dynsec.delete_role(dynsec.gateway_role(gw_id))]
    dynsec.refused(steps, admin.run(steps), tolerated=("not found",))


def shared_accounts(
    admin: BrokerAdmin,
    root: str,
    *,
    dashboard_password: str,
    ha_password: str | None = None,
    dashboard_user: str = dynsec.DASHBOARD_USER,
) -> list[str]:
    """siaga.acl's shared accounts and the default access (deny); what was done, one line each."""
    done = []
    defaults = dynsec.set_default_acl_access()
    dynsec.refused([defaults], admin.run([defaults]))
    done.append("default access: publish, receive and subscribe denied unless a role allows")
    ensure_role(admin, dynsec.DASHBOARD_ROLE, dynsec.dashboard_acls(root), "Siaga dashboard")
    there = ensure_client(admin, dashboard_user, dashboard_password, [dynsec.DASHBOARD_ROLE], "Siaga dashboard")
    done.append(f"client {dashboard_user!r} in role {dynsec.DASHBOARD_ROLE!r} ({'updated' if there else 'created'})")
    if ha_password is not None:
        ensure_role(admin, dynsec.HA_ROLE, dynsec.ha_acls(root), "Home Assistant")
        there = ensure_client(admin, dynsec.HA_USER, ha_password, [dynsec.HA_ROLE], "Home Assistant")
        done.append(f"client {dynsec.HA_USER!r} in role {dynsec.HA_ROLE!r} ({'updated' if there else 'created'})")
    narrow = [dynsec.remove_role_acl(dynsec.ADMIN_ROLE, acl) for acl in dynsec.ADMIN_READ_ALL]
    dynsec.refused(narrow, admin.run(narrow), tolerated=("not found", "Role not found"))
    done.append(f"role {dynsec.ADMIN_ROLE!r} no longer reads every topic (only the plugin's own)")
    return done


def _refuse_foreign_client(admin: BrokerAdmin, username: str, role: str) -> None:
    """A client of this name that holds any role but the gateway's own is not this gateway's account (the
    dashboard's, Home Assistant's, a person's): replacing its password would lock it out of the broker."""
    ask = dynsec.get_client(username)
    answer = admin.run([ask])[ask["correlationData"]]
    if not answer.ok:
        return  # no such client yet (the plugin answers an error): it will be made
    client = (answer.data or {}).get("client") or {}
    held = {item.get("rolename") for item in client.get("roles") or [] if isinstance(item, dict)}
    if held - {role}:
        raise DynsecError(
            f"the broker already has an account {username!r} with role(s) {', '.join(sorted(map(str, held)))}: "
            "it is not this gateway's, so it is left alone; give the gateway another id"
        )
