"""An operator lists intake's dead letters with their reasons, looks at one, replays them once
what refused them is fixed, and purges the rest — admins only; a message that did not reach the
DLQ through intake itself can never be replayed (`lhpn_shared.dead_letters`)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika
import httpx

from intake.settings import IntakeSettings
from lhpn_shared.auth import Principal, Role, issue_token
from lhpn_shared.broker import ORIGINAL_EXCHANGE_HEADER, ORIGINAL_USER_HEADER, REJECTION_HEADER
from tests.integration.intake.test_activities import make_activity
from tests.integration.intake.test_inbound import envelope
from tests.support.amqp import publish_raw, purge_queues
from tests.support.http import eventually
from tests.support.infra import RabbitVhost

KEY = "activity.recorded.v1"
NEW_UNIT = "22998"


async def dead_letters(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, Any]:
    r = await client.get("/api/v1/dead-letters", headers=admin)
    assert r.status_code == 200, r.text
    (queue,) = [q for q in r.json()["queues"] if q["queue"] == "intake.inbound"]
    return dict(queue)


def reasons(queue: dict[str, Any]) -> dict[str, int]:
    return {r["reason"]: r["messages"] for r in queue["reasons"]}


async def forge_dead_letter(rabbit: RabbitVhost, body: bytes, message_id: str) -> None:
    """What another account could put in the DLQ: a 'dead letter' claiming the bound system
    sent it (the session's admin user may publish to lhpn.dead-letter)."""
    connection = await aio_pika.connect_robust(rabbit.url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange("lhpn.dead-letter", ensure=False)
        await exchange.publish(
            aio_pika.Message(
                body,
                message_id=message_id,
                headers={
                    REJECTION_HEADER: "forged",
                    ORIGINAL_EXCHANGE_HEADER: "lhpn.inbound",
                    ORIGINAL_USER_HEADER: rabbit.system.user,
                },
            ),
            routing_key="intake.inbound",
        )


async def test_an_operator_lists_shows_replays_once_fixed_and_purges_intake_dead_letters(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    rabbit: RabbitVhost,
    settings: IntakeSettings,
) -> None:
    await purge_queues(rabbit.url, "intake.inbound.dlq")
    system = rabbit.system.url  # bound to the province, every inbound key
    early = envelope(make_activity(unit_id=NEW_UNIT))  # its unit does not exist yet
    await publish_raw(system, "lhpn.inbound", KEY, json.dumps(early).encode(), early["event_id"])
    await publish_raw(system, "lhpn.inbound", KEY, b"{ not json", "broken-1")
    forged = envelope(make_activity())
    await forge_dead_letter(rabbit, json.dumps(forged).encode(), forged["event_id"])

    async def three() -> dict[str, Any] | None:
        queue = await dead_letters(client, admin)
        return queue if queue["messages"] == 3 else None

    listed = await eventually(three, timeout=30)
    by_reason = reasons(listed)
    assert by_reason.pop(f"unknown unit_id '{NEW_UNIT}'") == 1
    assert by_reason.pop("forged") == 1
    ((invalid, n),) = by_reason.items()
    assert invalid.startswith("invalid envelope") and n == 1
    assert listed["examined"] == 3

    # admins only
    staff, _ = issue_token(
        settings,
        Principal(subject="staff", role=Role.province_staff, unit_id="54"),
        datetime.now(UTC),
    )
    as_staff = {"Authorization": f"Bearer {staff}"}
    assert (await client.get("/api/v1/dead-letters", headers=as_staff)).status_code == 403
    refused = await client.post(
        "/api/v1/dead-letters/purge", json={"queue": "intake.inbound"}, headers=as_staff
    )
    assert refused.status_code == 403
    # another service's queue is not intake's to touch
    other = await client.post(
        "/api/v1/dead-letters/replay", json={"queue": "cases.inbound"}, headers=admin
    )
    assert other.status_code == 404 and "cases.inbound" in other.json()["detail"]

    shown = await client.get(
        f"/api/v1/dead-letters/intake.inbound/{early['event_id']}", headers=admin
    )
    assert shown.status_code == 200, (shown.status_code, shown.text)
    assert shown.json()["reason"] == f"unknown unit_id '{NEW_UNIT}'"
    assert shown.json()["replayable"] is True
    assert json.loads(shown.json()["body"])["event_id"] == early["event_id"]
    assert shown.json()["headers"][ORIGINAL_USER_HEADER] == rabbit.system.user
    fake = await client.get(
        f"/api/v1/dead-letters/intake.inbound/{forged['event_id']}", headers=admin
    )
    assert fake.status_code == 200, (fake.status_code, fake.text)
    assert fake.json()["replayable"] is False
    missing = await client.get(f"/api/v1/dead-letters/intake.inbound/{uuid.uuid4()}", headers=admin)
    assert missing.status_code == 404
    assert (await dead_letters(client, admin))["messages"] == 3  # looking took nothing away

    # the forged one is refused; the unit's letter, replayed before its unit exists, comes back
    r = await client.post(
        "/api/v1/dead-letters/replay", json={"queue": "intake.inbound"}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.json()["replayed"] == 2
    assert [x["message_id"] for x in r.json()["refused"]] == [forged["event_id"]]

    async def back_again() -> dict[str, Any] | None:
        queue = await dead_letters(client, admin)
        return queue if queue["messages"] == 3 else None

    again = await eventually(back_again, timeout=30)
    assert reasons(again).get(f"unknown unit_id '{NEW_UNIT}'") == 1

    # the unit is created: replayed by its reason, the activity is stored as the system sent it
    parent = (await client.get("/api/v1/units/22015/lineage", headers=admin)).json()["unit"]
    created = await client.post(
        "/api/v1/units",
        json={
            "unit_id": NEW_UNIT,
            "name": "Xã Thử Nghiệm",
            "kind": "xã",
            "level": "commune",
            "parent_id": parent["parent_id"],
            "effective_on": "2021-01-01",
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    r = await client.post(
        "/api/v1/dead-letters/replay",
        json={"queue": "intake.inbound", "reason": "unknown unit_id"},
        headers=admin,
    )
    assert r.json() == {"queue": "intake.inbound", "replayed": 1, "refused": []}

    async def stored() -> bool:
        got = await client.get(f"/api/v1/activities/{early['data']['activity_id']}", headers=admin)
        return got.status_code == 200

    await eventually(stored, timeout=30)
    activity = (
        await client.get(f"/api/v1/activities/{early['data']['activity_id']}", headers=admin)
    ).json()
    assert activity["unit_id"] == NEW_UNIT

    async def two() -> dict[str, Any] | None:
        queue = await dead_letters(client, admin)
        return queue if queue["messages"] == 2 else None

    left = await eventually(two, timeout=30)
    assert f"unknown unit_id '{NEW_UNIT}'" not in reasons(left)

    # purge by reason, then everything
    r = await client.post(
        "/api/v1/dead-letters/purge",
        json={"queue": "intake.inbound", "reason": "forged"},
        headers=admin,
    )
    assert r.json()["purged"] == 1
    assert (await dead_letters(client, admin))["messages"] == 1
    r = await client.post(
        "/api/v1/dead-letters/purge", json={"queue": "intake.inbound"}, headers=admin
    )
    assert r.json()["purged"] == 1
    assert (await dead_letters(client, admin))["messages"] == 0
