"""Streams of events for the aggregation tests: the generated province as envelopes, published
through the real broker, and the answers the HTTP API gives about it."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

import aio_pika
import httpx

from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.contracts.activities import Activity, ActivityKind
from lhpn_shared.contracts.events import Envelope, make_event
from lhpn_shared.contracts.owners import owner_of
from lhpn_shared.contracts.units import UnitLevel
from tests.support.http import eventually
from tests.support.infra import RabbitVhost
from tests.unit.aggregation.generated import Generated, setup_events, stream

__all__ = ["stream"]

PLAN_ID = "PY-2021-460"
AS_OF = [
    datetime(2021, 5, 20, 10, 0, tzinfo=LOCAL_TZ),  # no half-year over yet
    datetime(2021, 6, 30, 17, 0, tzinfo=UTC),  # 1 July 00:00 local: the first half just over
    datetime(2021, 12, 31, 17, 30, tzinfo=UTC),  # 1 January 00:30 local: the year over
]
PERIODS = ["2021", "2021-H1", "2021-Q3", "2021-03", "2021-12"]
_SAMPLE = re.compile(r'^lhpn_events_total\{[^}]*outcome="(applied|unchanged)"[^}]*\} (\S+)$', re.M)


def reference_data(generated: Generated) -> list[Envelope]:
    """`unit.upserted` for every unit and `plan.published` for the plan."""
    return setup_events(generated)


def activity_event(
    unit_id: str,
    kind: str,
    occurred_on: date,
    *,
    revision: int = 1,
    activity_id: UUID | None = None,
) -> Envelope:
    activity = Activity(
        activity_id=activity_id or uuid4(),
        unit_id=unit_id,
        kind=ActivityKind(kind),
        occurred_on=occurred_on,
        title="Giám sát thực hiện chính sách hỗ trợ phụ nữ khởi nghiệp",
        metrics={"recommendations": 3, "recommendations_accepted": 2}
        if kind == "supervision"
        else {},
        revision=revision,
    )
    return make_event(
        "activity.recorded", activity, source="test", occurred_at=datetime.now(UTC), unit_id=unit_id
    )


def entity(event: Envelope) -> str:
    data = event.data
    for key in ("activity_id", "case_id", "report_id", "plan_id"):
        if key in data:
            return f"{key}:{data[key]}"
    return f"unit:{data['unit_id']}"


def twice_shuffled_per_entity(events: list[Envelope], seed: int) -> list[Envelope]:
    """Every event twice; each entity's events in a random order, entities interleaved at random."""
    rng = random.Random(seed)
    by_entity: dict[str, list[Envelope]] = defaultdict(list)
    for event in events * 2:
        by_entity[entity(event)].append(event)
    slots: list[str] = []
    for key, mine in by_entity.items():
        rng.shuffle(mine)
        slots += [key] * len(mine)
    rng.shuffle(slots)
    return [by_entity[key].pop() for key in slots]


async def publish_all(rabbit: RabbitVhost, events: list[Envelope], window: int = 500) -> None:
    """Publish persistent envelopes on `lhpn.events`, each as its owning service (one channel
    with confirms per owner), in order: a run of one owner's events at a time."""
    connections: dict[str, aio_pika.abc.AbstractRobustConnection] = {}
    exchanges: dict[str, aio_pika.abc.AbstractExchange] = {}
    try:
        for _, run in itertools.groupby(events, key=lambda e: owner_of(e.type)):
            chunk = list(run)
            owner = owner_of(chunk[0].type)
            assert owner is not None, chunk[0].type
            if owner not in exchanges:
                connections[owner] = await aio_pika.connect_robust(rabbit.url_for(owner))
                channel = await connections[owner].channel(publisher_confirms=True)
                exchanges[owner] = await channel.get_exchange("lhpn.events", ensure=True)
            exchange = exchanges[owner]
            for start in range(0, len(chunk), window):
                await asyncio.gather(
                    *(
                        exchange.publish(
                            aio_pika.Message(
                                e.model_dump_json().encode(),
                                content_type="application/json",
                                message_id=str(e.event_id),
                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                user_id=rabbit.user_for(owner),
                            ),
                            routing_key=e.routing_key,
                        )
                        for e in chunk[start : start + window]
                    )
                )
    finally:
        for connection in connections.values():
            await connection.close()


async def consumed(client: httpx.AsyncClient) -> int:
    """Events the service applied or found unchanged, from its /metrics."""
    text = (await client.get("/metrics")).text
    return int(sum(float(value) for _, value in _SAMPLE.findall(text)))


async def wait_consumed(client: httpx.AsyncClient, count: int, timeout: float = 120) -> None:
    async def done() -> bool:
        return await consumed(client) >= count

    await eventually(done, timeout=timeout, interval=0.2)


def roots(generated: Generated) -> list[str]:
    return [
        u.unit_id for u in generated.units if u.level in (UnitLevel.province, UnitLevel.district)
    ]


async def get_json(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any
) -> Any:
    response = await client.get(f"/api/v1/{path}", params=params, headers=headers)
    assert response.status_code == 200, (path, params, response.text)
    return response.json()


async def answers(
    client: httpx.AsyncClient, headers: dict[str, str], generated: Generated
) -> dict[str, Any]:
    """Every answer the tests compare, by a readable key."""
    out: dict[str, Any] = {}
    for root in roots(generated):
        for as_of in AS_OF:
            out[f"compliance {root} {as_of}"] = await get_json(
                client,
                "compliance",
                headers,
                plan_id=PLAN_ID,
                unit_id=root,
                as_of=as_of.isoformat(),
            )
        for schedule in generated.plan.report_schedules:
            for p in schedule.periods:
                out[f"rates {root} {schedule.report_type} {p.period}"] = await get_json(
                    client,
                    "reporting-rates",
                    headers,
                    report_type=schedule.report_type,
                    period=p.period,
                    unit_id=root,
                )
        for period in PERIODS:
            out[f"indicators {root} {period}"] = await get_json(
                client, "indicators", headers, unit_id=root, period=period
            )
            cases = await get_json(client, "case-stats", headers, unit_id=root, period=period)
            del cases["counted_at"]  # the instant of the query, different each time
            out[f"cases {root} {period}"] = cases
    return out
