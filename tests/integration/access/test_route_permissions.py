"""Every route of every service, called by every role, for a unit inside and a unit outside the
caller's subtree: allowed or refused exactly as the route's declared permission says.

The table is generated from the apps' routes (`route_permissions`), so a new route is tested
the day it is added — and a route without a declaration fails here. What a permission means is
written out below from the declaration's plain fields and the known shape of the test tree, not
with the guard's own functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from lhpn_shared.access import BODY, ENTITY, HOLDER, PATH, QUERY, Permission, route_permissions
from lhpn_shared.auth import Role
from tests.integration.access.conftest import (
    COMMUNE_A,
    COMMUNE_B,
    DISTRICT_A,
    PLAN,
    PROVINCE,
    SERVICES,
    Stack,
)

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Caller:
    role: Role
    unit_id: str | None

    def __str__(self) -> str:
        return f"{self.role.value}@{self.unit_id or '-'}"


CALLERS = [
    Caller(Role.admin, None),
    Caller(Role.province_staff, PROVINCE),
    Caller(Role.district_staff, DISTRICT_A),
    Caller(Role.commune_staff, COMMUNE_A),
    Caller(Role.viewer, None),
    Caller(Role.viewer, DISTRICT_A),
    Caller(Role.system, DISTRICT_A),  # the API key of the settings
]
INSIDE, OUTSIDE = COMMUNE_A, COMMUNE_B
SUBTREES = {
    PROVINCE: {PROVINCE, DISTRICT_A, COMMUNE_A, COMMUNE_B},
    DISTRICT_A: {DISTRICT_A, COMMUNE_A},
}
SUBTREES[COMMUNE_A] = {COMMUNE_A}


def expected_allowed(p: Permission, caller: Caller, target: str) -> bool:
    if caller.role not in p.roles:
        return False
    if not ({BODY, QUERY, PATH, ENTITY} & set(p.scopes)):
        return True
    if caller.role is Role.admin or caller.unit_id is None:  # admins; a viewer of every unit
        return True
    if HOLDER in p.scopes:  # the test's cases are held by their own commune only
        return caller.unit_id == target
    return target in SUBTREES[caller.unit_id]


def request_for(stack: Stack, method: str, path: str, p: Permission, target: str) -> dict[str, Any]:
    """A request naming `target` wherever the permission looks for a unit."""
    entity_ids = {
        "activity_id": stack.activities[target],
        "report_id": stack.reports[target],
        "case_id": stack.cases[target],
        "unit_id": target,
        "plan_id": PLAN,
        "username": "no-such-user",
        "key_id": "no-such-key",
        "change_id": "no-such-change",
        "queue": "intake.inbound.dlq",  # the dead-letter routes' (another service's: its 404)
        "message_id": "no-such-message",
    }
    url = re.sub(r"\{(\w+)\}", lambda m: entity_ids[m.group(1)], path)
    params = {
        "plan_id": PLAN,
        "period": "2021-03",
        "report_type": "monthly",
        "periods": "monthly:2021-03",
    }
    if QUERY in p.scopes:
        params["unit_id"] = target
    request: dict[str, Any] = {"method": method, "url": url, "params": params}
    if method in ("POST", "PUT", "PATCH"):
        request["json"] = {
            "unit_id": target,
            "issuing_unit_id": target,
            "data": {"unit_id": target},
            "as_of": "2021-01-01T00:00:00+07:00",  # a sweep with nothing due yet
        }
    return request


def test_every_route_of_every_service_declares_its_permission(stack: Stack) -> None:
    undeclared = [
        f"{name}: {method} {path}"
        for name, app in stack.apps.items()
        for (method, path), p in route_permissions(app).items()
        if p is None
    ]
    assert undeclared == []
    assert sum(len(route_permissions(app)) for app in stack.apps.values()) >= 40


@pytest.mark.asyncio(loop_scope="module")
async def test_every_route_allows_and_refuses_exactly_as_declared(stack: Stack) -> None:
    mismatches: list[str] = []
    checked = 0
    for name in SERVICES:
        client = stack.clients[name]
        for (method, path), p in sorted(route_permissions(stack.apps[name]).items()):
            assert p is not None
            if p.public:
                continue
            for caller in CALLERS:
                for target in (INSIDE, OUTSIDE):
                    r = await client.request(
                        **request_for(stack, method, path, p, target),
                        headers=stack.headers(caller.role, caller.unit_id),
                    )
                    allowed = expected_allowed(p, caller, target)
                    refused = r.status_code == 403
                    checked += 1
                    if r.status_code == 401 or allowed == refused or r.status_code >= 500:
                        mismatches.append(
                            f"{name} {method} {path} as {caller} on {target}: "
                            f"{r.status_code} {r.text[:160]} (declared: "
                            f"{'allow' if allowed else 'deny'})"
                        )
    assert mismatches == []
    assert checked > 500
