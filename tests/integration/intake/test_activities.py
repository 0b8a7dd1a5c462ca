from __future__ import annotations

import uuid

import httpx

from tests.support.amqp import EventListener
from tests.support.infra import RabbitVhost


def make_activity(**over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "activity_id": str(uuid.uuid4()),
        "unit_id": "22015",
        "kind": "legal_outreach",
        "occurred_on": "2021-03-05",
        "title": "Tuyên truyền Luật Bình đẳng giới tại khu phố 1",
        "metrics": {"sessions": 2, "participants": 80, "female_participants": 65},
        "topic": "bình đẳng giới",
        "format": "hội nghị",
    }
    body.update(over)
    return body


async def test_the_same_post_twice_records_one_activity_and_publishes_one_event(
    client: httpx.AsyncClient, admin: dict[str, str], rabbit: RabbitVhost
) -> None:
    body = make_activity()
    async with EventListener(rabbit.url, keys=("activity.recorded.v1",)) as events:
        first = await client.post("/api/v1/activities", json=body, headers=admin)
        second = await client.post("/api/v1/activities", json=body, headers=admin)
        assert first.status_code == 201, first.text
        assert second.status_code == 200, second.text
        assert first.json() == second.json()
        # a marker written after both: its event comes after any event the second made
        marker = make_activity()
        assert (await client.post("/api/v1/activities", json=marker, headers=admin)).is_success
        bodies = await events.wait_for(
            lambda b: any(e["data"]["activity_id"] == marker["activity_id"] for e in b)
        )
        mine = [e for e in events.bodies() if e["data"]["activity_id"] == body["activity_id"]]
    assert len(mine) == 1, bodies
    listed = await client.get("/api/v1/activities", params={"unit_id": "22015"}, headers=admin)
    ids = [a["activity_id"] for a in listed.json()["items"]]
    assert ids.count(body["activity_id"]) == 1


async def test_vietnamese_text_round_trips_with_its_diacritics(
    client: httpx.AsyncClient, admin: dict[str, str], rabbit: RabbitVhost
) -> None:
    title = "Đối thoại với Chủ tịch UBND phường về bạo lực gia đình — ưu tiên hộ nghèo"
    body = make_activity(
        kind="dialogue",
        title=title,
        notes="Ghi chú: Hội LHPN tỉnh Phú Yên",
        metrics={"participants": 40, "issues_raised": 5, "issues_answered": 4},
    )
    async with EventListener(rabbit.url) as events:
        r = await client.post("/api/v1/activities", json=body, headers=admin)
        assert r.status_code == 201, r.text
        got = await client.get(f"/api/v1/activities/{body['activity_id']}", headers=admin)
        assert got.json()["title"] == title
        assert got.json()["notes"] == "Ghi chú: Hội LHPN tỉnh Phú Yên"
        published = await events.wait_for(
            lambda b: any(e["data"].get("activity_id") == body["activity_id"] for e in b)
        )
    event = next(e for e in published if e["data"].get("activity_id") == body["activity_id"])
    assert event["data"]["title"] == title
    msg = next(m for m in events.messages if m.routing_key == "activity.recorded.v1")
    assert msg.content_type == "application/json"
    assert msg.delivery_mode == 2
    assert msg.user_id == rabbit.user_for("intake")  # the relay publishes as intake
