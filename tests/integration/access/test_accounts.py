"""Users and API keys managed through intake's API, and refused everywhere once disabled or
revoked: by intake on the very next request, by the other services as soon as the access event
reaches them (the time it took is printed: `pytest -s` shows the measured bound)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.integration.access.conftest import (
    COMMUNE_A,
    COMMUNE_B,
    DISTRICT_A,
    PROVINCE,
    Stack,
    activity_body,
    running_stack,
)
from tests.support.http import eventually
from tests.support.infra import DevMongo, RabbitVhost

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

PER_USER, PER_ADDRESS = 10, 40


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(devmongo: DevMongo, rabbit: RabbitVhost) -> AsyncIterator[Stack]:
    limits = {"sign_in_failures_per_user": PER_USER, "sign_in_failures_per_address": PER_ADDRESS}
    async with running_stack(devmongo, rabbit, limits) as s:
        yield s


# one read per service that a commune user and a system key may call
PROBES = {
    "intake": ("/api/v1/activities", {}),
    "cases": ("/api/v1/cases", {}),
    "reminders": ("/api/v1/obligations", {}),
    "aggregation": ("/api/v1/case-stats", {"period": "2021"}),
}


async def status_everywhere(stack: Stack, headers: dict[str, str]) -> dict[str, int]:
    out = {}
    for name, (path, params) in PROBES.items():
        r = await stack.clients[name].get(path, params=params, headers=headers)
        out[name] = r.status_code
    return out


async def sign_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/token", data={"username": username, "password": password}
    )


async def new_user(stack: Stack, username: str, **over: Any) -> dict[str, str]:
    body = {"username": username, "password": "mat-khau-1", "role": "commune_staff"}
    body |= {"unit_id": COMMUNE_A} | over
    r = await stack.clients["intake"].post("/api/v1/users", json=body, headers=stack.admin_headers)
    assert r.status_code == 201, r.text
    r = await sign_in(stack.clients["intake"], username, body["password"])
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def refused_everywhere(stack: Stack, headers: dict[str, str]) -> dict[str, float]:
    """Intake refuses at once; returns how long each other service took to refuse."""
    started = time.monotonic()
    assert (await status_everywhere(stack, headers))["intake"] == 401
    took = {}
    for name in ("cases", "reminders", "aggregation"):
        path, params = PROBES[name]

        async def refused(name: str = name, path: str = path, params: Any = params) -> bool:
            r = await stack.clients[name].get(path, params=params, headers=headers)
            return r.status_code == 401

        await eventually(refused, timeout=10, interval=0.02)
        took[name] = round(time.monotonic() - started, 3)
    print(f"refused after (s): {took}")
    return took


async def test_a_disabled_users_token_is_refused_at_once_by_intake_and_by_others_after_the_event(
    stack: Stack,
) -> None:
    lan = await new_user(stack, "lan.nguyen")
    assert await status_everywhere(stack, lan) == dict.fromkeys(PROBES, 200)
    r = await stack.clients["intake"].get("/api/v1/me", headers=lan)
    assert r.json() == {
        "subject": "lan.nguyen",
        "username": "lan.nguyen",
        "kind": "user",
        "role": "commune_staff",
        "unit_id": COMMUNE_A,
        "unit_name": "Phường 1",
        "allowed_routes": None,
        "allowed_events": None,
    }

    r = await stack.clients["intake"].put(
        "/api/v1/users/lan.nguyen/enabled", json={"enabled": False}, headers=stack.admin_headers
    )
    assert r.status_code == 200 and r.json()["enabled"] is False
    took = await refused_everywhere(stack, lan)
    assert set(took) == {"cases", "reminders", "aggregation"}
    assert (await sign_in(stack.clients["intake"], "lan.nguyen", "mat-khau-1")).status_code == 401

    # enabled again: the old token stays refused, a new sign-in works everywhere
    r = await stack.clients["intake"].put(
        "/api/v1/users/lan.nguyen/enabled", json={"enabled": True}, headers=stack.admin_headers
    )
    assert r.status_code == 200
    assert (await status_everywhere(stack, lan))["intake"] == 401
    fresh = await sign_in(stack.clients["intake"], "lan.nguyen", "mat-khau-1")
    assert fresh.status_code == 200
    again = {"Authorization": f"Bearer {fresh.json()['access_token']}"}

    async def everywhere() -> bool:
        return await status_everywhere(stack, again) == dict.fromkeys(PROBES, 200)

    await eventually(everywhere, timeout=10)


async def test_a_role_change_or_a_password_reset_ends_the_users_sessions(stack: Stack) -> None:
    intake, admin = stack.clients["intake"], stack.admin_headers
    hoa = await new_user(stack, "hoa.tran")
    r = await intake.put(
        "/api/v1/users/hoa.tran/role",
        json={"role": "district_staff", "unit_id": DISTRICT_A},
        headers=admin,
    )
    assert r.status_code == 200 and r.json()["role"] == "district_staff"
    await refused_everywhere(stack, hoa)

    token = (await sign_in(intake, "hoa.tran", "mat-khau-1")).json()["access_token"]
    hoa = {"Authorization": f"Bearer {token}"}
    assert (await intake.get("/api/v1/me", headers=hoa)).json()["unit_id"] == DISTRICT_A
    r = await intake.put(
        "/api/v1/users/hoa.tran/password", json={"password": "mat-khau-moi-2"}, headers=admin
    )
    assert r.status_code == 200
    await refused_everywhere(stack, hoa)
    assert (await sign_in(intake, "hoa.tran", "mat-khau-1")).status_code == 401
    assert (await sign_in(intake, "hoa.tran", "mat-khau-moi-2")).status_code == 200


async def test_a_user_changes_their_own_password_and_their_other_sessions_end(
    stack: Stack,
) -> None:
    intake = stack.clients["intake"]
    mai = await new_user(stack, "mai.le")
    wrong = await intake.put(
        "/api/v1/me/password",
        json={"current_password": "not-it", "new_password": "mat-khau-3"},
        headers=mai,
    )
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"][-1] == "current_password"
    r = await intake.put(
        "/api/v1/me/password",
        json={"current_password": "mat-khau-1", "new_password": "mat-khau-3"},
        headers=mai,
    )
    assert r.status_code == 200
    assert (await intake.get("/api/v1/me", headers=mai)).status_code == 401
    new_token = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert (await intake.get("/api/v1/me", headers=new_token)).status_code == 200
    assert (await sign_in(intake, "mai.le", "mat-khau-3")).status_code == 200


async def test_admins_list_users_and_only_admins_manage_them(stack: Stack) -> None:
    intake = stack.clients["intake"]
    await new_user(stack, "binh.pham", unit_id=COMMUNE_B)
    r = await intake.get("/api/v1/users", params={"unit_id": "557"}, headers=stack.admin_headers)
    assert r.status_code == 200
    assert [u["username"] for u in r.json()["items"]] == ["binh.pham"]
    assert "password" not in r.text and "hash" not in r.text
    staff = stack.headers(*_province())
    assert (await intake.get("/api/v1/users", headers=staff)).status_code == 403
    r = await intake.post(
        "/api/v1/users",
        json={"username": "x.y", "password": "mat-khau-1", "role": "admin"},
        headers=staff,
    )
    assert r.status_code == 403
    # the last admin cannot be disabled
    r = await intake.put(
        "/api/v1/users/admin/enabled", json={"enabled": False}, headers=stack.admin_headers
    )
    assert r.status_code == 409


def _province() -> tuple[Any, str]:
    from lhpn_shared.auth import Role

    return Role.province_staff, PROVINCE


async def test_an_api_key_is_shown_once_scoped_to_its_routes_and_refused_everywhere_once_revoked(
    stack: Stack,
) -> None:
    intake, admin = stack.clients["intake"], stack.admin_headers
    r = await intake.post(
        "/api/v1/api-keys",
        json={
            "name": "hotline",
            "unit_id": DISTRICT_A,
            "allowed_routes": [
                *("activities.list", "cases.list", "obligations.list", "aggregates.read")
            ],
            "allowed_events": ["activity.recorded.v1"],
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    key = created["key"]
    assert key.startswith(created["prefix"]) and len(key) > 40
    listed = (await intake.get("/api/v1/api-keys", headers=admin)).json()
    assert created["key_id"] in [k["key_id"] for k in listed]
    assert key not in str(listed)
    headers = {"X-API-Key": key}

    async def allowed_everywhere() -> bool:
        return await status_everywhere(stack, headers) == dict.fromkeys(PROBES, 200)

    await eventually(allowed_everywhere, timeout=10)
    # only its routes, only its subtree, only its event types
    r = await intake.post("/api/v1/activities", json=activity_body(COMMUNE_A), headers=headers)
    assert r.status_code == 403 and "activities.record" in r.json()["detail"]
    r = await intake.get("/api/v1/activities", params={"unit_id": COMMUNE_B}, headers=headers)
    assert r.status_code == 403
    me = (await intake.get("/api/v1/activities", headers=headers)).status_code
    assert me == 200

    r = await intake.post(f"/api/v1/api-keys/{created['key_id']}/revoke", headers=admin)
    assert r.status_code == 200 and r.json()["revoked"] is True
    await refused_everywhere(stack, headers)


async def test_an_api_key_from_the_environment_can_be_revoked_like_the_others(
    stack: Stack,
) -> None:
    from tests.integration.access.conftest import SYSTEM_KEY

    headers = {"X-API-Key": SYSTEM_KEY}
    assert await status_everywhere(stack, headers) == dict.fromkeys(PROBES, 200)
    listed = await stack.clients["intake"].get("/api/v1/api-keys", headers=stack.admin_headers)
    assert "env-table" in [k["key_id"] for k in listed.json()]
    r = await stack.clients["intake"].post(
        "/api/v1/api-keys/env-table/revoke", headers=stack.admin_headers
    )
    assert r.status_code == 200
    await refused_everywhere(stack, headers)


# ---- sign-in throttling ------------------------------------------------------------------------


async def test_thirty_wrong_passwords_get_429_before_the_thirtieth_and_another_user_still_signs_in(
    stack: Stack,
) -> None:
    await new_user(stack, "victim.user")
    await new_user(stack, "other.user")
    office = httpx.AsyncClient(  # both users behind one address, as in an office
        transport=httpx.ASGITransport(app=stack.apps["intake"], client=("127.0.0.55", 40000)),
        base_url="http://intake",
    )
    statuses = []
    async with office as intake:
        for _ in range(30):
            statuses.append((await sign_in(intake, "victim.user", "wrong-password")).status_code)
            ok = await sign_in(intake, "other.user", "mat-khau-1")
            assert ok.status_code == 200, ok.text
        r = await sign_in(intake, "victim.user", "mat-khau-1")  # even the right password waits
    first_429 = statuses.index(429)
    assert first_429 < 29 and set(statuses[:first_429]) == {401}
    assert set(statuses[first_429:]) == {429}
    assert r.status_code == 429
    assert 0 < int(r.headers["Retry-After"]) <= 900
    assert "thử lại sau" in r.json()["detail"]


async def test_many_failures_from_one_address_get_429_while_another_address_signs_in(
    stack: Stack,
) -> None:
    app = stack.apps["intake"]
    crowd = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.66", 40000)), base_url="http://x"
    )
    elsewhere = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.77", 40000)), base_url="http://x"
    )
    await new_user(stack, "someone.else")
    async with crowd, elsewhere:
        statuses = [
            (await sign_in(crowd, f"guess{i}", "wrong-password")).status_code
            for i in range(PER_ADDRESS + 3)
        ]
        assert statuses[:PER_ADDRESS] == [401] * PER_ADDRESS
        assert statuses[PER_ADDRESS:] == [429] * 3
        assert (await sign_in(elsewhere, "someone.else", "mat-khau-1")).status_code == 200
