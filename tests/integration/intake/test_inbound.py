"""Other systems publish on `lhpn.inbound`; intake validates, stores and republishes."""

from __future__ import annotations

import json
import uuid

import httpx

from lhpn_shared.broker import REJECTION_HEADER
from tests.integration.intake.test_activities import make_activity
from tests.support.amqp import EventListener, drain_queue, publish_raw, purge_queues
from tests.support.infra import RabbitVhost


def envelope(data: dict[str, object], **over: object) -> dict[str, object]:
    env: dict[str, object] = {
        "event_id": str(uuid.uuid4()),
        "type": "activity.recorded",
        "version": 1,
        "occurred_at": "2021-03-05T09:00:00+07:00",
        "source": "e-office",
        "unit_id": data.get("unit_id"),
        "correlation_id": None,
        "data": data,
    }
    env.update(over)
    return env


async def test_inbound_accepts_one_valid_event_once_and_dead_letters_the_bad_ones(
    client: httpx.AsyncClient, admin: dict[str, str], rabbit: RabbitVhost
) -> None:
    url, system = rabbit.url, rabbit.system.url  # system: bound to the province, every key
    await purge_queues(url, "intake.inbound.dlq")
    good = envelope(make_activity())
    unknown_unit = envelope(make_activity(unit_id="00000"))
    negative = envelope(make_activity(metrics={"sessions": -5}))
    key = "activity.recorded.v1"
    async with EventListener(url, keys=(key,)) as events:
        good_body = json.dumps(good).encode()
        await publish_raw(system, "lhpn.inbound", key, good_body, good["event_id"])
        await publish_raw(system, "lhpn.inbound", key, good_body, good["event_id"])
        await publish_raw(system, "lhpn.inbound", key, b'{"event_id": "not json', "broken-1")
        for bad in (unknown_unit, negative):
            bad_body = json.dumps(bad).encode()
            await publish_raw(system, "lhpn.inbound", key, bad_body, bad["event_id"])
        dead = await drain_queue(url, "intake.inbound.dlq", timeout=15)
        for _ in range(5):
            if len(dead) >= 3:
                break
            dead += await drain_queue(url, "intake.inbound.dlq", timeout=3)
        # a marker published after the duplicate: the queue hands it over after it
        marker = envelope(make_activity())
        await publish_raw(
            system, "lhpn.inbound", key, json.dumps(marker).encode(), marker["event_id"]
        )
        await events.wait_for(lambda b: any(e["event_id"] == marker["event_id"] for e in b))
        republished = [e for e in events.bodies(key) if e["event_id"] != marker["event_id"]]

    assert [e["event_id"] for e in republished] == [good["event_id"]]
    assert republished[0]["source"] == "e-office"
    reasons = {m.message_id: str(m.headers[REJECTION_HEADER]) for m in dead}
    assert set(reasons) == {"broken-1", unknown_unit["event_id"], negative["event_id"]}
    assert "invalid envelope" in reasons["broken-1"]
    assert "unit_id" in reasons[unknown_unit["event_id"]]
    assert "metrics.sessions" in reasons[negative["event_id"]]
    assert dead[0].body  # the original message is kept whole
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200
    stored = await client.get(
        f"/api/v1/activities/{good['data']['activity_id']}",
        headers=admin,  # type: ignore[index]
    )
    assert stored.status_code == 200


async def test_posting_an_envelope_over_http_is_accepted_once(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    good = envelope(make_activity())
    first = await client.post("/api/v1/events", json=good, headers=admin)
    again = await client.post("/api/v1/events", json=good, headers=admin)
    assert first.status_code == 202 and first.json()["status"] == "accepted"
    assert again.status_code == 202 and again.json()["status"] == "duplicate"
    bad = await client.post(
        "/api/v1/events", json=envelope(make_activity(unit_id="00000")), headers=admin
    )
    assert bad.status_code == 422
    void = envelope(
        {
            "activity_id": good["data"]["activity_id"],  # type: ignore[index]
            "unit_id": "22015",
            "revision": 2,
            "voided_at": "2021-03-06T09:00:00+07:00",
        },
        type="activity.voided",
    )
    voided = await client.post("/api/v1/events", json=void, headers=admin)
    assert voided.status_code == 202, voided.text
    got = await client.get(
        f"/api/v1/activities/{good['data']['activity_id']}",
        headers=admin,  # type: ignore[index]
    )
    assert got.json()["voided"] is True
