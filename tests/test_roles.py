"""Each role reaches exactly its pages and APIs: the whole matrix, one request each."""

from __future__ import annotations

import pytest

from sim.servers import DashboardServer
from sim.webclient import DashboardClient

from .conftest import ADMIN, OPERATOR, SAPA_DESK, SATPOL, signed_in

TECHNICIAN = ("teknisi", "teknisi-password-1")
EVALUATOR = ("penilai", "penilai-password-1")
ROLES = ("anonymous", "fire_operator", "sapa_desk", "satpol", "technician", "admin", "evaluator")
ACCOUNTS = {
    "fire_operator": OPERATOR,
    "sapa_desk": SAPA_DESK,
    "satpol": SATPOL,
    "technician": TECHNICIAN,
    "admin": ADMIN,
    "evaluator": EVALUATOR,
}

# Expected status per role, in ROLES order. 200: allowed; 403: refused; "login": the sign-in form
# (a page) or 401 (an API) for the anonymous.
MATRIX = {
    "/board": ("login", 200, 403, 403, 403, 200, 403),
    "/sapa": ("login", 403, 200, 403, 403, 403, 403),
    "/devices": ("login", 200, 200, 403, 200, 200, 403),
    "/stats": ("login", 200, 200, 403, 403, 200, 403),
    "/stats.csv": ("login", 200, 200, 403, 403, 200, 403),
    "/admin/users": ("login", 403, 403, 403, 403, 200, 403),
    "/admin/audit": ("login", 403, 403, 403, 403, 200, 403),
    "/admin/audit.csv": ("login", 403, 403, 403, 403, 200, 403),
    "/admin/api-keys/": ("login", 403, 403, 403, 403, 200, 403),
    "/satpol/": ("login", 403, 403, 200, 403, 403, 403),
    "/api/alarms": (401, 200, 200, 403, 403, 200, 403),
    "/api/sites": (401, 200, 200, 403, 200, 200, 403),
    "/api/troubles": (401, 200, 200, 403, 200, 200, 403),
    "/api/devices": (401, 200, 200, 403, 200, 200, 403),
    "/evaluation": ("login", 403, 403, 403, 403, 200, 200),  # aggregates: administrators and evaluators
    "/open-data/": (200, 200, 200, 200, 200, 200, 200),  # public by default, for Satu Data Indonesia
    "/api/diagnostics": (401, 403, 403, 403, 200, 200, 403),  # for those who keep the system running
}


@pytest.fixture
def clients(dashboard: DashboardServer) -> dict[str, DashboardClient]:
    dashboard.create_user(*TECHNICIAN, "technician")
    dashboard.create_user(*EVALUATOR, "evaluator")
    result = {"anonymous": DashboardClient(dashboard.url)}
    result.update({role: signed_in(dashboard, account) for role, account in ACCOUNTS.items()})
    return result


def test_each_role_reaches_exactly_its_pages_and_apis(clients: dict[str, DashboardClient]) -> None:
    wrong = []
    for path, expected in MATRIX.items():
        for role, want in zip(ROLES, expected, strict=True):
            status, text = clients[role].get_text(path)
            got = "login" if want == "login" and status == 200 and 'name="password"' in text else status
            if got != want:
                wrong.append(f"{role} {path}: {got} (expected {want})")
    assert wrong == []
