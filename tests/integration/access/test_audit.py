"""Every service's audit log (`GET /api/v1/audit`, admins): writes, reads of case personal data
and refused attempts, each with who, when, what and from which address; paged and filtered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lhpn_shared.auth import Role
from tests.integration.access.conftest import (
    COMMUNE_A,
    COMMUNE_B,
    DISTRICT_A,
    Stack,
    activity_body,
)
from tests.support.http import eventually

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ADDRESS = "127.0.0.9"  # the stack's clients


async def audit(stack: Stack, service: str, **params: Any) -> list[dict[str, Any]]:
    r = await stack.clients[service].get(
        "/api/v1/audit", params=params, headers=stack.admin_headers
    )
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def audit_of_writes(
    stack: Stack, service: str, n: int, **params: Any
) -> list[dict[str, Any]]:
    """The log once it holds `n` records: a write's record reaches it when the outbox relay
    moves it from the written document, a moment after the answer."""

    async def enough() -> list[dict[str, Any]] | None:
        items = await audit(stack, service, **params)
        return items if len(items) >= n else None

    found: list[dict[str, Any]] = await eventually(enough)
    return found


async def audit_record_of(
    stack: Stack, service: str, entity_id: str, **params: Any
) -> dict[str, Any]:
    """The record of a write of `entity_id`, once the relay has moved it to the log (the
    seeded writes of the same actor may already be there: a count is not enough)."""

    async def moved() -> dict[str, Any] | None:
        items = await audit(stack, service, **params)
        return next((i for i in items if i["entity_id"] == entity_id), None)

    found: dict[str, Any] = await eventually(moved)
    return found


async def test_writes_and_personal_data_reads_show_who_when_what_and_from_where(
    stack: Stack,
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    a = stack.headers(Role.commune_staff, COMMUNE_A)
    writer = f"t-commune_staff-{COMMUNE_A}"
    body = activity_body(COMMUNE_A)
    assert (
        await stack.clients["intake"].post("/api/v1/activities", json=body, headers=a)
    ).is_success
    case_id = stack.cases[COMMUNE_A]
    assert (await stack.clients["cases"].get(f"/api/v1/cases/{case_id}", headers=a)).is_success
    contacts = {"emails": ["hoi.phunu@example.vn"]}
    r = await stack.clients["reminders"].put(
        f"/api/v1/contacts/{COMMUNE_A}", json=contacts, headers=a
    )
    assert r.is_success, r.text
    outsider = stack.headers(Role.viewer, DISTRICT_A)
    r = await stack.clients["aggregation"].get(
        "/api/v1/case-stats", params={"unit_id": COMMUNE_B, "period": "2021"}, headers=outsider
    )
    assert r.status_code == 403

    recorded = await audit_record_of(stack, "intake", body["activity_id"], actor=writer)
    assert recorded | {"audit_id": "-", "at": "-"} == {
        "audit_id": "-",
        "at": "-",
        "actor": writer,
        "role": "commune_staff",
        "actor_unit_id": COMMUNE_A,
        "action": "activities.record",
        "entity_type": "activity",
        "entity_id": body["activity_id"],
        "unit_id": COMMUNE_A,
        "address": ADDRESS,
        "outcome": "ok",
        "personal_data": False,
    }
    assert started <= datetime.fromisoformat(recorded["at"]) <= datetime.now(UTC)

    read = (await audit(stack, "cases", actor=writer))[0]
    assert (read["action"], read["entity_id"], read["personal_data"], read["address"]) == (
        "cases.read",
        case_id,
        True,
        ADDRESS,
    )
    written = await audit_record_of(stack, "reminders", COMMUNE_A, actor=writer)
    assert (written["action"], written["unit_id"], written["address"]) == (
        "contacts.write",
        COMMUNE_A,
        ADDRESS,
    )
    refused = (await audit(stack, "aggregation"))[0]
    assert (refused["actor"], refused["action"], refused["unit_id"], refused["outcome"]) == (
        f"t-viewer-{DISTRICT_A}",
        "aggregates.read",
        COMMUNE_B,
        "refused",
    )


async def test_the_audit_log_pages_newest_first_and_filters_by_actor_unit_and_time(
    stack: Stack,
) -> None:
    everything = await audit_of_writes(stack, "intake", 5, limit=1000)
    assert len(everything) == 5  # 2 activities and 2 reports seeded, 1 activity above
    ids = [e["audit_id"] for e in everything]
    assert ids == sorted(ids, reverse=True)

    first = await stack.clients["intake"].get(
        "/api/v1/audit", params={"limit": 2}, headers=stack.admin_headers
    )
    page = first.json()
    assert [e["audit_id"] for e in page["items"]] == ids[:2]
    second = await audit(stack, "intake", limit=2, cursor=page["next_cursor"])
    assert [e["audit_id"] for e in second] == ids[2:4]

    in_b = await audit(stack, "intake", unit_id="557")  # district B's subtree
    assert in_b and {e["unit_id"] for e in in_b} == {COMMUNE_B}
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert await audit(stack, "intake", **{"from": later.isoformat()}) == []
    earlier = datetime(2020, 1, 1, tzinfo=UTC).isoformat()
    assert await audit(stack, "intake", to=earlier) == []


async def test_only_admins_read_the_audit_log(stack: Stack) -> None:
    for service in ("intake", "cases", "reminders", "aggregation"):
        for role, unit in ((Role.province_staff, "54"), (Role.viewer, None)):
            r = await stack.clients[service].get("/api/v1/audit", headers=stack.headers(role, unit))
            assert r.status_code == 403, (service, role)
