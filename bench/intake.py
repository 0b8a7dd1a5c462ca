"""Intake throughput against a raw baseline measured in the same run (a script, not a test).

    uv run python bench/intake.py [--events 20000] [--http 20000] [--concurrency 16] [--json F]

Needs RabbitMQ running (deploy/rabbitmq.sh) and the DevMongo jars (deploy/devmongo.sh build);
starts its own DevMongo on a free port and a fresh RabbitMQ vhost, removes both at the end.
`bench/run.py` runs it with the other benchmarks (`measure`).

Rows:
- baseline: raw aio-pika, a pre-loaded durable queue → consume (prefetch 100) → one
  `insert_one` under a unique index → ack; events/s until the queue is drained. Measured
  before the paths and again after them (the machine is shared): the mean is the baseline.
- inbound: the same number of envelopes pre-loaded on `lhpn.inbound` → intake validates, stores
  (activity + outbox in one write), acks, the relay republishes on `lhpn.events` with confirms;
  events/s from the first to the last received by a listener on `lhpn.events` (the service's
  start-up is not counted: the baseline's connection is not either).
- http: `POST /api/v1/activities` to the intake process over loopback with N concurrent
  clients; activities/s until every 201, then until every event is republished. The clients
  are plain HTTP/1.1 keep-alive connections (`RawClient`): the load generator shares the two
  cores with the service, and a general-purpose client (httpx) spent as much CPU per request
  as intake itself. Preparing the requests (the bodies, the token) is not timed, as the
  baseline's and the inbound path's pre-loading is not.
- CPU per event of intake and of the database on each path, and intake's memory (RSS) idle
  and at the end of the HTTP load.
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

from bench.table import Row, at_least, cpu_seconds, rss_mib, table, write_json
from tests.support.infra import DevMongo, RabbitVhost, free_port
from tests.support.process import ServiceProcess

QUICK = {"events": 2000, "http": 2000}
FULL = {"events": 20_000, "http": 20_000}


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


class Published:
    """Counts what arrives on `lhpn.events` with the given keys (an exclusive queue, no acks:
    the cheapest listener, as it shares the cores with what it measures)."""

    def __init__(self, url: str, keys: tuple[str, ...]) -> None:
        self.url, self.keys, self.count = url, keys, 0
        self.first = 0.0  # when the first one arrived (perf_counter)
        self._conn: aio_pika.abc.AbstractRobustConnection | None = None

    async def __aenter__(self) -> Published:
        self._conn = await aio_pika.connect_robust(self.url)
        channel = await self._conn.channel()
        await channel.set_qos(prefetch_count=1000)
        exchange = await channel.get_exchange("lhpn.events", ensure=True)
        queue = await channel.declare_queue(exclusive=True)
        for key in self.keys:
            await queue.bind(exchange, routing_key=key)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            self.count += 1
            self.first = self.first or time.perf_counter()

        await queue.consume(on_message, no_ack=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def reach(self, n: int) -> None:
        while self.count < n:
            await asyncio.sleep(0.02)


async def inbound(rabbit: RabbitVhost, intake: ServiceProcess, n: int) -> float:
    bodies = [envelope(activity()) for _ in range(n)]
    intake.stop()  # the queue is declared with the users: pre-load it while nobody consumes
    system = rabbit.system  # another system, bound to the province
    await preload(system.url, "lhpn.inbound", "activity.recorded.v1", bodies, system.user)
    async with Published(rabbit.url, ("activity.recorded.v1",)) as events:
        intake.start()
        await events.reach(n)
        # from the first event republished to the last: the path, not the service's start
        return (n - 1) / (time.perf_counter() - events.first)


class RawClient:
    """One HTTP/1.1 keep-alive connection that POSTs JSON and reads the status and body."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.head}"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def http_path(
    rabbit: RabbitVhost, intake: ServiceProcess, n: int, conc: int
) -> tuple[float, float, float | None]:
    """Activities/s accepted, activities/s republished, intake's RSS at the end of the load."""
    async with httpx.AsyncClient(base_url=intake.url, timeout=30) as http:
        tok = await http.post("/api/v1/auth/token", data={"username": "admin", "password": "admin"})
    headers = {"Authorization": f"Bearer {tok.json()['access_token']}"}
    bodies = [json.dumps(activity()).encode() for _ in range(n)]
    clients = [RawClient("127.0.0.1", intake.port, headers) for _ in range(conc)]
    statuses: list[int] = []

    async def worker(client: RawClient) -> None:
        while bodies:
            statuses.append(await client.post("/api/v1/activities", bodies.pop()))

    async with Published(rabbit.url, ("activity.recorded.v1",)) as events:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in clients))
        accepted = time.perf_counter() - t0
        loaded = rss_mib(intake.proc.pid if intake.proc else None)
        await events.reach(n)
        published = time.perf_counter() - t0
    for c in clients:
        await c.close()
    assert statuses.count(201) == n, {s: statuses.count(s) for s in set(statuses)}
    return n / accepted, n / published, loaded


async def measure(
    quick: bool = False, events: int | None = None, http: int | None = None, concurrency: int = 16
) -> list[Row]:
    sizes = QUICK if quick else FULL
    n_events = events or sizes["events"]
    n_http = http or sizes["http"]
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

    def pid() -> int | None:
        return intake.proc.pid if intake.proc else None

    def cpu() -> tuple[float, float]:
        return cpu_seconds(pid()), cpu_seconds(mongo.pid())

    try:
        intake.start()
        await asyncio.sleep(2)  # settled after its start
        idle = rss_mib(pid())
        c0 = cpu_seconds(mongo.pid())
        before = await baseline(rabbit, mongo.url, n_events)
        base_db = (cpu_seconds(mongo.pid()) - c0) / n_events
        inb = await inbound(rabbit, intake, n_events)
        await asyncio.sleep(1)
        c0 = cpu()
        acc, pub, loaded = await http_path(rabbit, intake, n_http, concurrency)
        c1 = cpu()
        http_cpu = [(b - a) / n_http for a, b in zip(c0, c1, strict=True)]
        # the machine is shared: the baseline again after the paths, and their mean
        after = await baseline(rabbit, mongo.url, n_events)
        base = (before + after) / 2
    finally:
        intake.stop()
        rabbit.delete()
        mongo.stop()
        shutil.rmtree(data, ignore_errors=True)
    return [
        Row(
            f"intake baseline: raw aio-pika consume → insert_one → ack ({n_events:,}), "
            f"mean of before ({before:,.0f}) and after ({after:,.0f})",
            base,
            "events/s",
        ),
        Row(
            f"intake inbound: lhpn.inbound → stored → republished ({n_events:,})",
            inb,
            "events/s",
            base,
            "≥ 0.60× baseline",
            at_least(0.60, inb, base),
        ),
        Row(
            f"intake HTTP: POST /activities accepted, {concurrency} clients ({n_http:,})",
            acc,
            "events/s",
            base,
            "≥ 0.40× baseline",
            at_least(0.40, acc, base),
        ),
        Row(
            "intake HTTP: the same until every event is republished",
            pub,
            "events/s",
            base,
            "≥ 0.40× baseline",
            at_least(0.40, pub, base),
        ),
        Row("intake HTTP: intake CPU per request", 1e6 * http_cpu[0], "µs"),
        Row("intake HTTP: database CPU per request", 1e6 * http_cpu[1], "µs", 1e6 * base_db),
        Row("RSS intake: idle", idle, "MiB"),
        Row(f"RSS intake: after {n_http:,} HTTP requests", loaded, "MiB"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--http", type=int, default=None)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rows = asyncio.run(measure(args.quick, args.events, args.http, args.concurrency))
    print(table(rows))
    if args.json:
        write_json(rows, args.json)


if __name__ == "__main__":
    main()
