"""Intake throughput against a raw baseline measured in the same run (a script, not a test).

    uv run python bench/intake.py [--events 20000] [--http 20000] [--concurrency 16]

Needs RabbitMQ running (deploy/rabbitmq.sh) and the DevMongo jars (deploy/devmongo.sh build);
starts its own DevMongo on a free port and a fresh RabbitMQ vhost, removes both at the end.

Rows:
- baseline: raw aio-pika, a pre-loaded durable queue → consume (prefetch 100) → one
  `insert_one` under a unique index → ack; events/s until the queue is drained.
- inbound: the same number of envelopes pre-loaded on `lhpn.inbound` → intake validates, stores
  (activity + outbox in one write), acks, the relay republishes on `lhpn.events` with confirms;
  events/s until the last one is received by a listener on `lhpn.events`.
- http: `POST /api/v1/activities` to the intake process over loopback with N concurrent
  clients; activities/s until every 201, then until every event is republished.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika
import httpx
from pymongo import AsyncMongoClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.amqp import EventListener
from tests.support.infra import DevMongo, RabbitVhost, free_port
from tests.support.process import ServiceProcess


def activity(unit_id: str = "22015") -> dict[str, object]:
    return {
        "activity_id": str(uuid.uuid4()),
        "unit_id": unit_id,
        "kind": "legal_outreach",
        "occurred_on": "2021-03-05",
        "title": "Tuyên truyền pháp luật về bình đẳng giới",
        "metrics": {"sessions": 1, "participants": 40, "female_participants": 30},
    }


def envelope(data: dict[str, object]) -> bytes:
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "type": "activity.recorded",
            "version": 1,
            "occurred_at": "2021-03-05T09:00:00+07:00",
            "source": "bench",
            "unit_id": data["unit_id"],
            "correlation_id": None,
            "data": data,
        }
    ).encode()


async def preload(
    url: str, exchange: str, routing_key: str, bodies: list[bytes], user_id: str | None = None
) -> None:
    conn = await aio_pika.connect_robust(url)
    async with conn:
        channel = await conn.channel(publisher_confirms=True)
        exch = (
            channel.default_exchange
            if exchange == ""
            else await channel.get_exchange(exchange, ensure=True)
        )
        for i in range(0, len(bodies), 500):
            await asyncio.gather(
                *(
                    exch.publish(
                        aio_pika.Message(
                            b,
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            user_id=user_id,
                        ),
                        routing_key=routing_key,
                    )
                    for b in bodies[i : i + 500]
                )
            )


async def baseline(rabbit: RabbitVhost, mongo_url: str, n: int) -> float:
    queue_name = "bench.baseline"
    conn = await aio_pika.connect_robust(rabbit.url)
    async with conn:
        channel = await conn.channel()
        await channel.declare_queue(queue_name, durable=True)
    await preload(rabbit.url, "", queue_name, [envelope(activity()) for _ in range(n)])
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
    coll = client["bench_baseline"]["events"]
    await coll.create_index("event_id", unique=True)
    done = asyncio.Event()
    count = 0
    conn = await aio_pika.connect_robust(rabbit.url)
    async with conn:
        channel = await conn.channel()
        await channel.set_qos(prefetch_count=100)
        queue = await channel.get_queue(queue_name)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal count
            body = json.loads(message.body)
            await coll.insert_one({"event_id": body["event_id"], "body": body})
            await message.ack()
            count += 1
            if count == n:
                done.set()

        t0 = time.perf_counter()
        await queue.consume(on_message)
        await done.wait()
        elapsed = time.perf_counter() - t0
    await client.close()
    return n / elapsed


async def inbound(rabbit: RabbitVhost, intake: ServiceProcess, n: int) -> float:
    bodies = [envelope(activity()) for _ in range(n)]
    intake.stop()  # the queue is declared with the users: pre-load it while nobody consumes
    system = rabbit.system  # another system, bound to the province
    await preload(system.url, "lhpn.inbound", "activity.recorded.v1", bodies, system.user)
    async with EventListener(rabbit.url, keys=("activity.recorded.v1",)) as events:
        t0 = time.perf_counter()
        intake.start()
        while len(events.messages) < n:
            await asyncio.sleep(0.05)
        return n / (time.perf_counter() - t0)


async def http_path(
    rabbit: RabbitVhost, intake: ServiceProcess, n: int, conc: int
) -> tuple[float, float]:
    async with httpx.AsyncClient(base_url=intake.url, timeout=30) as http:
        tok = await http.post("/api/v1/auth/token", data={"username": "admin", "password": "admin"})
        headers = {"Authorization": f"Bearer {tok.json()['access_token']}"}
        queue: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        for _ in range(n):
            queue.put_nowait(activity())
        statuses: list[int] = []

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                r = await http.post("/api/v1/activities", json=body, headers=headers)
                statuses.append(r.status_code)

        async with EventListener(rabbit.url, keys=("activity.recorded.v1",)) as events:
            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(conc)))
            accepted = time.perf_counter() - t0
            while len(events.messages) < n:
                await asyncio.sleep(0.05)
            published = time.perf_counter() - t0
    assert statuses.count(201) == n, {s: statuses.count(s) for s in set(statuses)}
    return n / accepted, n / published


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--http", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="lhpn-bench-"))
    mongo = DevMongo(port=free_port(), data_dir=data / "mongo")
    mongo.start()
    prefix = f"lhpn-b{uuid.uuid4().hex[:8]}-"  # broker users are global: this run's own
    rabbit = RabbitVhost.create(prefix)
    intake = ServiceProcess(
        "intake",
        {
            "ENV": "development",
            "BROKER_USER_PREFIX": prefix,
            "MONGO_URL": mongo.url,
            "MONGO_DB": "bench_intake",
            "RABBIT_URL": rabbit.url_for("intake"),
            "INBOUND_SYSTEMS": rabbit.inbound_systems,
            "LOG_LEVEL": "WARNING",
        },
        data,
    )
    try:
        intake.start()
        base = await baseline(rabbit, mongo.url, args.events)
        inb = await inbound(rabbit, intake, args.events)
        acc, pub = await http_path(rabbit, intake, args.http, args.concurrency)
    finally:
        intake.stop()
        rabbit.delete()
        mongo.stop()
        shutil.rmtree(data, ignore_errors=True)
    print(f"\n{'path':<58} {'events/s':>9} {'vs baseline':>12}")
    rows = [
        (f"baseline: raw aio-pika consume → insert_one → ack ({args.events})", base),
        (f"inbound: lhpn.inbound → intake → republished ({args.events})", inb),
        (f"http: POST /activities accepted, {args.concurrency} clients ({args.http})", acc),
        (f"http: POST /activities until republished ({args.http})", pub),
    ]
    for name, rate in rows:
        print(f"{name:<58} {rate:>9.0f} {rate / base:>11.2f}×")


if __name__ == "__main__":
    asyncio.run(main())
