"""The batch flusher under the shared supervisor (issue 15): made to fail or to hang, it turns
`/readyz` to 503 within `CONSUMER_STALL_SECONDS`, is started again, and the service recovers
with every event applied — on the real broker and database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from typing import Any

import httpx
import pytest

from aggregation.app import create_app
from aggregation.batch import EVENTS_QUEUE, Event
from aggregation.consumer import Batcher
from aggregation.settings import AggregationSettings
from lhpn_shared.clock import LOCAL_TZ
from tests.integration.aggregation.streams import (
    PLAN_ID,
    activity_event,
    get_json,
    publish_all,
    reference_data,
    wait_consumed,
)
from tests.support.amqp import purge_queues
from tests.support.http import eventually, running
from tests.support.infra import RabbitVhost
from tests.unit.aggregation.generated import generate

pytestmark = pytest.mark.integration

STALL_SECONDS = 2.0
POLL = 0.1
YEAR_END = datetime(2021, 12, 31, 23, 0, tzinfo=LOCAL_TZ).isoformat()


@contextlib.asynccontextmanager
async def service(
    settings: AggregationSettings, rabbit: RabbitVhost
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The service with a short stall limit, its reference data applied."""
    settings = settings.model_copy(update={"consumer_stall_seconds": STALL_SECONDS})
    await purge_queues(rabbit.url, EVENTS_QUEUE, f"{EVENTS_QUEUE}.dlq")
    app = create_app(settings)
    async with running(app) as client:

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await eventually(ready, timeout=30)
        setup = reference_data(generate(1))
        await publish_all(rabbit, setup)
        await wait_consumed(client, len(setup))
        yield client, app


async def readyz(client: httpx.AsyncClient) -> tuple[int, dict[str, bool]]:
    r = await client.get("/readyz")
    return r.status_code, r.json()["checks"]


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float | None:
    text = (await client.get("/metrics")).text
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and all(f'{k}="{v}"' in match[1] for k, v in labels.items()):
            return float(match[2])
    return None


async def supervised(client: httpx.AsyncClient, headers: dict[str, str], unit_id: str) -> bool:
    result = await get_json(
        client, "compliance", headers, plan_id=PLAN_ID, unit_id=unit_id, as_of=YEAR_END
    )
    return next(t for t in result["targets"] if t["code"] == "T2")["met"] == 1


async def test_a_flusher_that_fails_makes_the_service_not_ready_within_the_stall_time_and_is_started_again(  # noqa: E501
    settings: AggregationSettings,
    rabbit: RabbitVhost,
    admin: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with service(settings, rabbit) as (client, app):
        batcher: Batcher = app.state.batcher
        failing = True
        flush = batcher._flush

        async def injected(messages: list[Any]) -> None:
            if failing:
                raise RuntimeError("injected flusher failure")
            await flush(messages)

        monkeypatch.setattr(batcher, "_flush", injected)
        started = time.time()
        with caplog.at_level(logging.ERROR, logger="lhpn.runtime"):
            await publish_all(rabbit, [activity_event("22015", "supervision", date(2021, 3, 5))])

            async def not_ready() -> tuple[int, dict[str, bool]] | None:
                answer = await readyz(client)
                return answer if answer[0] == 503 else None

            _, checks = await eventually(not_ready, timeout=STALL_SECONDS + 1, interval=POLL)
            assert checks["tasks"] is False or checks["consumers"] is False, checks

            async def restarted() -> bool:
                n = await metric(
                    client, "lhpn_background_task_restarts_total", task="aggregation-flusher"
                )
                return n is not None and n >= 1

            await eventually(restarted, timeout=10, interval=POLL)
        failures = [
            r for r in caplog.records if r.getMessage().startswith("background task failed")
        ]
        assert failures and failures[0].exc_info is not None
        assert "injected flusher failure" in str(failures[0].exc_info[1])
        assert failures[0].__dict__["task"] == "aggregation-flusher"
        age = await metric(client, "lhpn_consumer_oldest_unacked_age_seconds", queue=EVENTS_QUEUE)
        assert age is not None and age > 0  # the event waits, unacked, and /metrics says so

        failing = False  # the fault goes away: the next restart flushes

        async def recovered() -> bool:
            return (await readyz(client))[0] == 200 and await supervised(client, admin, "22015")

        await eventually(recovered, timeout=30, interval=POLL)

        async def settled() -> bool:
            # the batch's write is what `supervised` sees; its acknowledgement follows it
            name = "lhpn_consumer_oldest_unacked_age_seconds"
            return await metric(client, name, queue=EVENTS_QUEUE) == 0

        await eventually(settled, timeout=10, interval=POLL)
        applied_at = await metric(
            client, "lhpn_consumer_last_batch_applied_timestamp_seconds", queue=EVENTS_QUEUE
        )
        assert applied_at is not None and applied_at >= started


async def test_a_flusher_that_hangs_makes_the_service_not_ready_within_the_stall_time_and_is_started_again(  # noqa: E501
    settings: AggregationSettings,
    rabbit: RabbitVhost,
    admin: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with service(settings, rabbit) as (client, app):
        batcher: Batcher = app.state.batcher
        released = asyncio.Event()
        apply = batcher._apply

        async def hangs(events: Sequence[Event]) -> list[bool]:
            await released.wait()  # e.g. a write that never returns
            return await apply(events)

        monkeypatch.setattr(batcher, "_apply", hangs)
        with caplog.at_level(logging.ERROR, logger="lhpn.runtime"):
            await publish_all(rabbit, [activity_event("22018", "supervision", date(2021, 4, 2))])

            async def stalled() -> dict[str, bool] | None:
                code, checks = await readyz(client)
                return checks if code == 503 and checks["consumers"] is False else None

            await eventually(stalled, timeout=STALL_SECONDS + 2, interval=POLL)

            async def restarted() -> bool:
                n = await metric(
                    client, "lhpn_background_task_restarts_total", task="aggregation-flusher"
                )
                return n is not None and n >= 1

            await eventually(restarted, timeout=STALL_SECONDS + 5, interval=POLL)
        assert any("made no progress" in r.getMessage() for r in caplog.records)

        released.set()

        async def recovered() -> bool:
            return (await readyz(client))[0] == 200 and await supervised(client, admin, "22018")

        await eventually(recovered, timeout=30, interval=POLL)
