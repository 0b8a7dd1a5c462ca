"""The service keeps its own copy of the unit tree from `unit.upserted` events."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from cases.service import Cases
from lhpn_shared.clock import FixedClock
from lhpn_shared.contracts.units import Unit
from tests.integration.cases.builders import COMMUNE, DISTRICT, Caller, make_case, unit_event
from tests.support.amqp import publish_raw
from tests.support.http import eventually
from tests.support.infra import RabbitVhost


async def test_a_new_commune_is_usable_once_its_event_arrived_and_an_older_revision_is_ignored(
    client: httpx.AsyncClient,
    app: FastAPI,
    rabbit: RabbitVhost,
    clock: FixedClock,
    district: Caller,
) -> None:
    svc: Cases = app.state.cases
    newer = Unit(
        unit_id="22999", name="Xã Mới", kind="xã", level="commune", parent_id=DISTRICT, revision=2
    )
    older = newer.model_copy(update={"name": "Xã Cũ", "parent_id": COMMUNE, "revision": 1})
    for unit in (newer, older):
        event_id, body = unit_event(unit, clock)
        intake = rabbit.url_for("intake")  # the owner of unit.upserted
        await publish_raw(intake, "lhpn.events", "unit.upserted.v1", body, event_id)

    async def older_one_seen() -> bool:
        metrics = (await client.get("/metrics")).text
        return 'type="unit.upserted"' in metrics and 'outcome="unchanged"' in metrics

    await eventually(older_one_seen)
    assert (await svc.tree()).get("22999") == newer
    r = await client.post(
        "/api/v1/cases", json=make_case(unit_id="22999"), headers=district.headers
    )
    assert r.status_code == 201, r.text
