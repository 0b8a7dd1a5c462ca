"""The consumer on the real broker and database: fresh answers, order and repetition tolerated,
refusals dead-lettered, a database outage survived without losing an event."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date, datetime
from functools import cache

import httpx
import pytest

from aggregation.batch import EVENTS_QUEUE
from aggregation.settings import AggregationSettings
from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.events import ActivityVoided, Envelope, make_event
from lhpn_shared.contracts.owners import owner_of
from tests.integration.aggregation.streams import (
    PLAN_ID,
    activity_event,
    consumed,
    get_json,
    publish_all,
    reference_data,
    wait_consumed,
)
from tests.support.amqp import drain_queue, publish_raw
from tests.support.http import eventually, metric
from tests.support.infra import DevMongo, RabbitVhost
from tests.unit.aggregation.generated import Generated, generate

pytestmark = pytest.mark.integration

YEAR_END = datetime(2021, 12, 31, 23, 0, tzinfo=LOCAL_TZ).isoformat()
COMMUNE = "22015"  # Phường 1, Thành phố Tuy Hoà


@cache
def province() -> Generated:
    return generate(1)


async def with_reference_data(client: httpx.AsyncClient, rabbit: RabbitVhost) -> None:
    setup = reference_data(province())
    await publish_all(rabbit, setup)
    await wait_consumed(client, len(setup))


async def publish(rabbit: RabbitVhost, event: Envelope) -> None:
    """As the event's owning service publishes it."""
    owner = owner_of(event.type)
    assert owner is not None, event.type
    await publish_raw(
        rabbit.url_for(owner),
        "lhpn.events",
        event.routing_key,
        event.model_dump_json().encode(),
        message_id=str(event.event_id),
    )


async def supervised(client: httpx.AsyncClient, headers: dict[str, str], unit_id: str) -> bool:
    """True when `unit_id` meets T2 (a supervision in the year), as of the end of 2021."""
    result = await get_json(
        client, "compliance", headers, plan_id=PLAN_ID, unit_id=unit_id, as_of=YEAR_END
    )
    t2 = next(t for t in result["targets"] if t["code"] == "T2")
    return t2["met"] == 1


async def test_an_accepted_event_shows_in_the_answers_within_two_seconds(
    client: httpx.AsyncClient, admin: dict[str, str], rabbit: RabbitVhost
) -> None:
    await with_reference_data(client, rabbit)
    assert not await supervised(client, admin, COMMUNE)

    await publish(rabbit, activity_event(COMMUNE, "supervision", date(2021, 3, 5)))
    started = time.monotonic()
    await eventually(lambda: supervised(client, admin, COMMUNE), timeout=2.0)
    print(f"visible after {time.monotonic() - started:.2f} s")

    indicators = await get_json(client, "indicators", admin, unit_id=COMMUNE, period="2021-03")
    rows = {r["code"]: r["recorded"] for r in indicators["rows"]}
    assert (rows["supervision.count"], rows["supervision.recommendations"]) == (1, 3)


async def test_a_void_that_arrives_before_its_record_still_ends_voided(
    client: httpx.AsyncClient, admin: dict[str, str], rabbit: RabbitVhost
) -> None:
    await with_reference_data(client, rabbit)
    record = activity_event(COMMUNE, "supervision", date(2021, 4, 2))
    void = make_event(
        "activity.voided",
        ActivityVoided(
            activity_id=record.data["activity_id"],
            unit_id=COMMUNE,
            revision=2,
            voided_at=datetime(2021, 4, 3, tzinfo=LOCAL_TZ),
            reason="nhập trùng",
        ),
        source="test",
        occurred_at=datetime(2021, 4, 3, tzinfo=LOCAL_TZ),
    )
    marker = activity_event("22018", "supervision", date(2021, 4, 2))  # another commune
    for event in (void, record, record, marker):
        await publish(rabbit, event)
    await eventually(lambda: supervised(client, admin, "22018"), timeout=5)
    await wait_consumed(client, len(reference_data(province())) + 4)  # counted once acked
    assert await consumed(client) == len(reference_data(province())) + 4
    assert not await supervised(client, admin, COMMUNE)


async def test_a_message_that_is_not_an_event_is_dead_lettered_with_its_reason_and_the_rest_applied(
    client: httpx.AsyncClient, admin: dict[str, str], rabbit: RabbitVhost
) -> None:
    await with_reference_data(client, rabbit)
    intake = rabbit.url_for("intake")
    await publish_raw(intake, "lhpn.events", "activity.recorded.v1", b"{not json")
    bad_data = activity_event(COMMUNE, "supervision", date(2021, 3, 5)).model_copy(
        update={"data": {"unit_id": COMMUNE, "kind": "gossip"}}
    )
    await publish(rabbit, bad_data)
    await publish(rabbit, activity_event(COMMUNE, "supervision", date(2021, 3, 5)))

    await eventually(lambda: supervised(client, admin, COMMUNE), timeout=5)
    dead = await drain_queue(rabbit.url, f"{EVENTS_QUEUE}.dlq")
    reasons = sorted(m.headers["x-rejection-reason"] for m in dead)
    assert len(reasons) == 2, reasons
    assert reasons[0].startswith("invalid data: ") and "kind" in reasons[0]
    assert reasons[1].startswith("invalid envelope: ")
    assert {m.headers["x-original-routing-key"] for m in dead} == {"activity.recorded.v1"}


async def test_a_database_outage_requeues_the_batches_and_loses_no_event(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    rabbit: RabbitVhost,
    devmongo: DevMongo,
) -> None:
    await with_reference_data(client, rabbit)
    communes = ["22015", "22018", "22021", "22024", "22027"]
    events = [activity_event(c, "supervision", date(2021, 2, 1)) for c in communes]
    before = await consumed(client)
    devmongo.kill9()
    try:
        await publish_all(rabbit, events)

        async def requeued() -> bool:  # the batch failed against the dead database, came back
            return await metric(client, "lhpn_consumer_redelivered_total") >= len(events)

        await eventually(requeued, timeout=60, interval=0.2)
        assert await consumed(client) == before  # nothing acked unwritten
    finally:
        await asyncio.to_thread(devmongo.start)

    async def all_supervised() -> bool:
        return all([await supervised(client, admin, c) for c in communes])

    await eventually(all_supervised, timeout=30, interval=0.3)
    dead = await drain_queue(rabbit.url, f"{EVENTS_QUEUE}.dlq", timeout=1)
    assert dead == []


async def test_answers_need_a_token_and_staff_read_only_their_subtree(
    client: httpx.AsyncClient, settings: AggregationSettings, rabbit: RabbitVhost
) -> None:
    from lhpn_shared.auth import Role
    from tests.integration.aggregation.conftest import bearer

    await with_reference_data(client, rabbit)
    params = {"plan_id": PLAN_ID, "unit_id": "555", "as_of": YEAR_END}
    assert (await client.get("/api/v1/compliance", params=params)).status_code == 401

    viewer = bearer(settings, Role.viewer)
    own = bearer(settings, Role.district_staff, "555")
    other = bearer(settings, Role.district_staff, "557")
    assert (await client.get("/api/v1/compliance", params=params, headers=viewer)).is_success
    assert (await client.get("/api/v1/compliance", params=params, headers=own)).is_success
    refused = await client.get("/api/v1/compliance", params=params, headers=other)
    assert refused.status_code == 403
    assert "555" in refused.json()["detail"]
    mine = await get_json(client, "compliance", own, plan_id=PLAN_ID, as_of=YEAR_END)
    assert mine["unit"]["unit_id"] == "555"  # staff default to their own unit


REFUSALS = [
    ("compliance", {"plan_id": "KH-KHONG-CO", "unit_id": "54"}, 404, "Không có kế hoạch"),
    ("compliance", {"plan_id": PLAN_ID, "unit_id": "99999"}, 404, "Không có đơn vị"),
    ("compliance", {"plan_id": PLAN_ID, "as_of": "2021-07-01T00:00:00"}, 422, "múi giờ"),
    ("compliance", {"plan_id": PLAN_ID, "as_of": "0"}, 422, "2021-07-01T00:00:00+07:00"),
    ("indicators", {"unit_id": "54", "period": "2021-13"}, 422, "không hợp lệ"),
    ("case-stats", {"unit_id": "54", "period": "năm ngoái"}, 422, "không hợp lệ"),
    (
        "reporting-rates",
        {"unit_id": "54", "report_type": "monthly", "period": "2021-H1"},
        404,
        "Không có kỳ báo cáo",
    ),
    ("exports/thematic-report.docx", {"plan_id": "KH-KHONG-CO"}, 404, "Không có kế hoạch"),
    ("exports/indicators.xlsx", {"unit_id": "54", "period": "2021-Q5"}, 422, "không hợp lệ"),
]


async def test_an_unknown_plan_unit_or_period_gets_a_clear_answer_in_vietnamese(
    client: httpx.AsyncClient, admin: dict[str, str], rabbit: RabbitVhost
) -> None:
    await with_reference_data(client, rabbit)
    for path, params, status, words in REFUSALS:
        response = await client.get(f"/api/v1/{path}", params=params, headers=admin)
        assert response.status_code == status, (path, params, response.text)
        assert words in json.dumps(response.json(), ensure_ascii=False), (path, response.text)
