"""Obligations derived from the plan and the units as their events arrive, in any order."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from lhpn_shared.auth import Role
from lhpn_shared.contracts.units import UnitLevel
from tests.support.amqp import EventListener
from tests.support.http import eventually

from .conftest import (
    PLAN_ID,
    PROVINCE,
    THEMATIC,
    Service,
    default_plan,
    default_units,
    plan_event,
    report_event,
    thematic_plan,
    unit_event,
    vn,
)


async def test_the_default_plan_gives_1428_monthly_obligations_due_on_the_16th_and_18th(
    service: Service,
) -> None:
    units = {u.unit_id: u for u in default_units()}
    await service.publish(plan_event(default_plan()), *(unit_event(u) for u in units.values()))

    monthly = await service.wait_obligations(1428, report_type="monthly", unit_id=PROVINCE)

    assert Counter(o["period"] for o in monthly) == {f"2021-{m:02d}": 119 for m in range(1, 13)}
    for o in monthly:
        unit = units[o["unit_id"]]
        month = int(o["period"][-2:])
        day = 16 if unit.level is UnitLevel.commune else 18
        assert datetime.fromisoformat(o["due_at"]) == vn(2021, month, day), o
        assert o["obligation_id"] == f"{PLAN_ID}:monthly:{o['period']}:{unit.unit_id}"
        assert (o["recipient_unit_id"], o["unit_level"]) == (unit.parent_id, unit.level.value)
    assert {o["status"] for o in monthly} == {"open", "overdue"}  # as of 20/10/2021
    commune_page = await service.obligations(report_type="monthly", unit_id="22015")
    assert len(commune_page) == 12


async def test_a_report_that_arrives_before_its_plan_and_units_fulfils_its_obligation(
    service: Service,
) -> None:
    units = [u for u in default_units() if u.unit_id in (PROVINCE, "562")]
    async with EventListener(service.rabbit.url, keys=("obligation.fulfilled.v1",)) as events:
        await service.publish(report_event("562", vn(2021, 10, 29, 15)))
        await service.publish(plan_event(thematic_plan()), *(unit_event(u) for u in units))

        (obligation,) = await service.wait_obligations(1, report_type=THEMATIC, unit_id="562")
        (event,) = await events.wait_for(lambda bodies: len(bodies) >= 1)

    assert obligation["status"] == "fulfilled_on_time"
    assert datetime.fromisoformat(obligation["received_at"]) == vn(2021, 10, 29, 15)
    assert event["data"]["obligation_id"] == f"{PLAN_ID}:{THEMATIC}:2021:562"
    assert event["data"]["status"] == "fulfilled_on_time"


async def test_a_unit_event_with_a_lower_revision_never_overwrites_a_newer_one(
    service: Service,
) -> None:
    units = {u.unit_id: u for u in default_units()}
    moved = units["562"].model_copy(update={"parent_id": "555", "revision": 2})
    await service.publish(
        plan_event(thematic_plan()),
        unit_event(units[PROVINCE]),
        unit_event(units["555"]),
        unit_event(moved),
        unit_event(units["562"]),  # revision 1, under the province: older, ignored
    )

    async def recipient() -> str | None:
        try:
            items = await service.obligations(report_type=THEMATIC, unit_id="562")
        except AssertionError:
            return None
        return items[0]["recipient_unit_id"] if items else None

    assert await eventually(recipient, timeout=20) == "555"


async def test_contacts_are_set_by_staff_of_the_unit_or_above_and_by_admins_only(
    province: Service,
) -> None:
    async def put(unit_id: str, headers: dict[str, str], **body: object) -> int:
        body.setdefault("emails", ["hoi-phu-nu@lhpn.example.vn"])
        r = await province.client.put(f"/api/v1/contacts/{unit_id}", json=body, headers=headers)
        return r.status_code

    district = province.token(Role.district_staff, "555")
    assert await put("555", district) == 200
    assert await put("557", district) == 403
    assert await put(PROVINCE, district) == 403
    assert await put("555", province.token(Role.province_staff, PROVINCE)) == 200
    assert await put("555", province.token(Role.viewer)) == 403
    assert await put("555", province.headers, emails=["không-phải-email"]) == 422
    assert await put("555", province.headers, webhook_url="https://hook.example.vn") == 422
    assert await put("999", province.headers) == 404


async def test_the_same_report_event_twice_fulfils_once_and_publishes_one_event(
    province: Service,
) -> None:
    event = report_event("557", vn(2021, 10, 28, 10))
    async with EventListener(province.rabbit.url, keys=("obligation.fulfilled.v1",)) as events:
        await province.publish(event, event)
        # a marker after the duplicate on the same queue; once it is fulfilled and the outbox
        # is empty, whatever the duplicate made has been published, and `flush` has it here
        await province.publish(report_event("555", vn(2021, 10, 28, 11)))
        await province.wait_fulfilled("557", "555")
        await province.outbox_published()
        await events.flush()

    assert [e["data"]["unit_id"] for e in events.bodies()].count("557") == 1, [
        (e["event_id"], e["occurred_at"], e["data"]) for e in events.bodies()
    ]
    (obligation,) = await province.obligations(report_type=THEMATIC, unit_id="557")
    assert obligation["status"] == "fulfilled_on_time"
