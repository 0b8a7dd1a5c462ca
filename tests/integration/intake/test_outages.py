"""Nothing is lost when RabbitMQ or the database goes away."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from intake.app import create_app
from intake.settings import IntakeSettings
from tests.integration.intake.test_activities import make_activity
from tests.integration.intake.test_inbound import envelope
from tests.support.amqp import EventListener, publish_raw, purge_queues
from tests.support.http import eventually, login, metric, outbox_published, running
from tests.support.infra import DevMongo, RabbitVhost, free_port
from tests.support.tcpproxy import TcpProxy


@pytest.fixture
def own_mongo() -> Iterator[DevMongo]:
    """A database server of this test's own, to kill without disturbing the others."""
    data = Path(tempfile.mkdtemp(prefix="lhpn-devmongo-own-"))
    server = DevMongo(port=free_port(), data_dir=data)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


async def wait_ready(client: httpx.AsyncClient) -> dict[str, str]:
    async def ready() -> bool:
        return (await client.get("/readyz")).status_code == 200

    await eventually(ready, timeout=30)
    return await login(client, "admin", "admin")


async def test_activities_posted_while_the_broker_is_down_are_all_published_once_it_returns(
    rabbit: RabbitVhost, devmongo: DevMongo, db_name: str
) -> None:
    proxy = TcpProxy(5672)
    await proxy.start()
    settings = IntakeSettings(
        mongo_url=devmongo.url,
        rabbit_url=rabbit.url_for("intake", port=proxy.port),
        mongo_db=db_name,
        relay_idle_seconds=0.2,
    )
    async with running(create_app(settings)) as client, EventListener(rabbit.url) as events:
        admin = await wait_ready(client)
        await proxy.cut()
        bodies = [make_activity() for _ in range(50)]
        statuses = [
            (await client.post("/api/v1/activities", json=b, headers=admin)).status_code
            for b in bodies
        ]
        assert statuses == [201] * 50
        assert (await client.get("/readyz")).status_code == 503
        wanted = {b["activity_id"] for b in bodies}
        assert not wanted & {e["data"].get("activity_id") for e in events.bodies()}
        await proxy.restore()
        await events.wait_for(
            lambda got: wanted <= {e["data"].get("activity_id") for e in got}, timeout=60
        )
        await outbox_published(client)  # a second copy would be published by now…
        await events.flush()  # …and here
        ids = [
            e["data"]["activity_id"]
            for e in events.bodies("activity.recorded.v1")
            if e["data"]["activity_id"] in wanted
        ]
    await proxy.cut()
    assert sorted(ids) == sorted(wanted)  # all 50, none twice


async def test_every_acknowledged_activity_survives_a_kill_9_of_the_database(
    rabbit: RabbitVhost, own_mongo: DevMongo, db_name: str
) -> None:
    settings = IntakeSettings(
        mongo_url=own_mongo.url,
        rabbit_url=rabbit.url_for("intake"),
        mongo_db=db_name,
        relay_idle_seconds=0.2,
        mongo_timeout_ms=1000,
    )
    accepted: list[str] = []
    other: list[int] = []
    async with running(create_app(settings)) as client, EventListener(rabbit.url) as events:
        admin = await wait_ready(client)

        async def post_many(n: int) -> None:
            for _ in range(n):
                body = make_activity()
                try:
                    r = await client.post("/api/v1/activities", json=body, headers=admin)
                except httpx.HTTPError:
                    other.append(-1)
                    continue
                if r.status_code == 201:
                    accepted.append(str(body["activity_id"]))
                else:
                    other.append(r.status_code)

        writer = asyncio.create_task(post_many(150))
        while len(accepted) < 40:
            await asyncio.sleep(0.02)
        own_mongo.kill9()
        await asyncio.sleep(1.5)
        own_mongo.start()
        await writer
        assert len(accepted) >= 40
        assert set(other) <= {503}, other  # refused clearly while it was down, never a 500
        await events.wait_for(
            lambda got: set(accepted) <= {e["data"].get("activity_id") for e in got}, timeout=60
        )
        await outbox_published(client)
        await events.flush()
        for activity_id in accepted:
            r = await client.get(f"/api/v1/activities/{activity_id}", headers=admin)
            assert r.status_code == 200, (activity_id, r.text)
        published = [
            e["data"]["activity_id"]
            for e in events.bodies("activity.recorded.v1")
            if e["data"]["activity_id"] in set(accepted)
        ]
    assert sorted(published) == sorted(accepted)  # each published exactly once


async def test_with_the_database_down_writes_get_503_and_inbound_waits_unacked(
    rabbit: RabbitVhost, own_mongo: DevMongo, db_name: str
) -> None:
    settings = IntakeSettings(
        mongo_url=own_mongo.url,
        rabbit_url=rabbit.url_for("intake"),
        inbound_systems=rabbit.inbound_systems,
        mongo_db=db_name,
        relay_idle_seconds=0.2,
        mongo_timeout_ms=800,
    )
    await purge_queues(rabbit.url, "intake.inbound", "intake.inbound.dlq")
    async with running(create_app(settings)) as client, EventListener(rabbit.url) as events:
        admin = await wait_ready(client)
        own_mongo.kill9()
        r = await client.post("/api/v1/activities", json=make_activity(), headers=admin)
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "5"
        assert "thử lại" in r.json()["detail"]
        assert (await client.get("/readyz")).status_code == 503
        env = envelope(make_activity())
        await publish_raw(
            rabbit.system.url,
            "lhpn.inbound",
            "activity.recorded.v1",
            json.dumps(env).encode(),
            str(env["event_id"]),
        )

        async def retried() -> bool:  # the consumer nacked it back at least twice
            return await metric(client, "lhpn_consumer_redelivered_total") >= 2

        await eventually(retried, timeout=60, interval=0.2)
        assert not [e for e in events.bodies() if e["event_id"] == env["event_id"]]
        own_mongo.start()
        await events.wait_for(
            lambda got: any(e["event_id"] == env["event_id"] for e in got), timeout=60
        )
    assert str(uuid.UUID(str(env["event_id"])))
