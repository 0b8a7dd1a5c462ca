"""Another system on `lhpn.inbound` acts only within its binding: its unit subtree and its event
types. Everything else is dead-lettered with the reason and stores nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from aiormq.exceptions import ChannelAccessRefused

from intake.settings import IntakeSettings
from lhpn_shared.broker import REJECTION_HEADER
from lhpn_shared.inbound import InboundBinding, format_inbound_systems
from tests.integration.intake.test_activities import make_activity
from tests.integration.intake.test_inbound import envelope
from tests.support.amqp import EventListener, drain_queue, publish_raw, purge_queues
from tests.support.http import eventually
from tests.support.infra import InboundSystem, RabbitVhost

TUY_HOA, PHUONG_1, XUAN_PHU = "555", "22015", "22051"  # Xuân Phú is in Sông Cầu (557)
RECORDED, VOIDED = "activity.recorded.v1", "activity.voided.v1"


@pytest.fixture
def tuy_hoa(rabbit: RabbitVhost) -> InboundSystem:
    """A system whose broker account may send activities recorded and voided, bound by
    intake to Tuy Hoà's subtree and to recorded activities only (a narrower binding than the
    account: the consumer's own check is what stops the voids)."""
    return rabbit.add_system(
        f"tuyhoa-{uuid.uuid4().hex[:6]}", TUY_HOA, frozenset({RECORDED, VOIDED})
    )


@pytest.fixture
def settings(settings: IntakeSettings, tuy_hoa: InboundSystem) -> IntakeSettings:
    binding = InboundBinding(tuy_hoa.user, TUY_HOA, frozenset({RECORDED}))
    return settings.model_copy(update={"inbound_systems": format_inbound_systems([binding])})


def body(env: dict[str, Any]) -> bytes:
    return json.dumps(env).encode()


async def test_a_system_is_accepted_inside_its_binding_and_dead_lettered_outside_it(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    rabbit: RabbitVhost,
    tuy_hoa: InboundSystem,
) -> None:
    await purge_queues(rabbit.url, "intake.inbound.dlq")
    inside = envelope(make_activity(unit_id=PHUONG_1))
    other_district = envelope(make_activity(unit_id=XUAN_PHU))
    data_elsewhere = envelope(make_activity(unit_id=XUAN_PHU), unit_id=PHUONG_1)
    void = envelope(
        {
            "activity_id": inside["data"]["activity_id"],  # type: ignore[index]
            "unit_id": PHUONG_1,
            "revision": 2,
            "voided_at": "2021-03-06T09:00:00+07:00",
        },
        type="activity.voided",
    )
    unbound = envelope(make_activity(unit_id=PHUONG_1))
    anonymous = envelope(make_activity(unit_id=PHUONG_1))

    async with EventListener(rabbit.url, keys=(RECORDED, VOIDED)) as events:
        for env in (inside, other_district, data_elsewhere):
            await publish_raw(tuy_hoa.url, "lhpn.inbound", RECORDED, body(env), env["event_id"])
        # allowed by its broker account, not by its binding
        await publish_raw(tuy_hoa.url, "lhpn.inbound", VOIDED, body(void), void["event_id"])
        # not a bound system at all, and a message naming no publisher
        await publish_raw(rabbit.url, "lhpn.inbound", RECORDED, body(unbound), unbound["event_id"])
        await publish_raw(
            tuy_hoa.url,
            "lhpn.inbound",
            RECORDED,
            body(anonymous),
            anonymous["event_id"],
            user_id=None,
        )
        # outside its broker account: the broker itself refuses it
        with pytest.raises(ChannelAccessRefused):
            await publish_raw(tuy_hoa.url, "lhpn.inbound", "report.submitted.v1", b"{}")

        dead: list[Any] = []

        async def five_dead() -> bool:
            dead.extend(await drain_queue(rabbit.url, "intake.inbound.dlq", timeout=0.5))
            return len(dead) >= 5

        await eventually(five_dead, timeout=20, interval=0.2)
        await events.wait_for(lambda got: any(e["event_id"] == inside["event_id"] for e in got))

    reasons = {m.message_id: str(m.headers[REJECTION_HEADER]) for m in dead}
    user = tuy_hoa.user
    assert reasons == {
        other_district["event_id"]: (
            f"unit {XUAN_PHU} is outside the subtree of {TUY_HOA} that '{user}' is bound to"
        ),
        data_elsewhere["event_id"]: (
            f"unit {XUAN_PHU} is outside the subtree of {TUY_HOA} that '{user}' is bound to"
        ),
        void["event_id"]: f"'{user}' may not send {VOIDED} (allowed: {RECORDED})",
        unbound["event_id"]: f"'{rabbit.operator}' is not a bound inbound system",
        anonymous["event_id"]: (
            "inbound message without a user_id: publish as your own broker user"
        ),
    }
    assert [e["event_id"] for e in events.bodies()] == [inside["event_id"]]
    for env in (inside, other_district, data_elsewhere, unbound, anonymous):
        r = await client.get(f"/api/v1/activities/{env['data']['activity_id']}", headers=admin)  # type: ignore[index]
        if env is inside:
            assert r.status_code == 200, r.text
            assert r.json()["voided"] is False
            assert r.json()["recorded_by"] == f"broker:{user}"  # who sent it, not `source`
        else:
            assert r.status_code == 404, r.text
