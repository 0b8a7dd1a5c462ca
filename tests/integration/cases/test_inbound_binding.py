"""A system opening cases on `lhpn.inbound` acts only within its unit subtree: inside it the case
is opened, outside it the message is dead-lettered with the reason and nothing is stored."""

from __future__ import annotations

import uuid

import httpx
import pytest

from cases.settings import CasesSettings
from lhpn_shared.broker import REJECTION_HEADER
from tests.integration.cases.builders import (
    COMMUNE,
    DISTRICT,
    OTHER_COMMUNE,
    Caller,
    as_json,
    make_case_facts,
    make_envelope,
)
from tests.support.amqp import drain_queue, publish_raw
from tests.support.http import eventually
from tests.support.infra import InboundSystem, RabbitVhost

KEY = "case.opened.v1"


@pytest.fixture
def hotline(rabbit: RabbitVhost) -> InboundSystem:
    """A district hotline: bound to DISTRICT's subtree, opening cases only."""
    return rabbit.add_system(f"hotline-{uuid.uuid4().hex[:6]}", DISTRICT, frozenset({KEY}))


@pytest.fixture
def settings(settings: CasesSettings, hotline: InboundSystem) -> CasesSettings:
    return settings.model_copy(update={"inbound_systems": rabbit_binding(hotline)})


def rabbit_binding(system: InboundSystem) -> str:
    return f"{system.user}:{system.binding.unit_id}:{KEY}"


async def test_a_system_opens_cases_in_its_subtree_and_is_dead_lettered_outside_it(
    client: httpx.AsyncClient, rabbit: RabbitVhost, hotline: InboundSystem, district: Caller
) -> None:
    inside = make_envelope(make_case_facts(unit_id=COMMUNE))
    outside = make_envelope(make_case_facts(unit_id=OTHER_COMMUNE))
    for env in (outside, inside):
        await publish_raw(hotline.url, "lhpn.inbound", KEY, as_json(env), env["event_id"])

    dead = await drain_queue(rabbit.url, "cases.inbound.dlq", timeout=15)
    assert [m.message_id for m in dead] == [outside["event_id"]]
    assert str(dead[0].headers[REJECTION_HEADER]) == (
        f"unit {OTHER_COMMUNE} is outside the subtree of {DISTRICT} "
        f"that '{hotline.user}' is bound to"
    )

    async def opened() -> httpx.Response | None:
        r = await client.get(f"/api/v1/cases/{inside['data']['case_id']}", headers=district.headers)
        return r if r.status_code == 200 else None

    case = (await eventually(opened, timeout=15)).json()
    assert case["timeline"][0]["actor"] == f"broker:{hotline.user}"
    r = await client.get(f"/api/v1/cases/{outside['data']['case_id']}", headers=district.headers)
    assert r.status_code == 404
