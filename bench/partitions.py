"""Aggregation ingestion by one writer against two partitions, in the same run: what the
service's partitions (`AGGREGATION_PARTITIONS`, docs/aggregation.md "Partitions") give on this
machine.

    uv run python bench/partitions.py            # 40,000 events
    uv run python bench/partitions.py --quick    # 10,000 events

1. One aggregation process, `AGGREGATION_PARTITIONS=1` (today's single active consumer),
   consumes the sample of `bench/aggregation.py` (national tree, default plan).
2. Two processes, `AGGREGATION_PARTITIONS=2`, partitions 0 and 1 (one of them also the active
   router), consume the same sample through the router: `aggregation.events` → router →
   `aggregation.events.p0` / `.p1` → each partition's writer.
Each setup has its own vhost and database on the same DevMongo server and RabbitMQ node; the
tree and the plan are consumed first, untimed. The rate is the sample's events over the time
from the first one published (processes ready and idle) to the last one stored by its
partition (read from each process's /metrics; a partition's expected count comes from the same
routing run offline, central units and plans counting once per partition).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import httpx  # noqa: E402

from aggregation.settings import AggregationSettings  # noqa: E402
from bench.aggregation import (  # noqa: E402
    Service,
    consumed,
    publish,
    reference_events,
    sample,
)
from bench.table import Row, table, write_json  # noqa: E402
from lhpn_shared.contracts.events import Envelope  # noqa: E402
from lhpn_shared.contracts.units import Unit  # noqa: E402
from tests.support.infra import DevMongo, RabbitVhost, free_port  # noqa: E402
from tests.unit.aggregation.generated import country  # noqa: E402

PARTITIONS = 2


@dataclass
class Setup:
    """Aggregation processes of one vhost (broker users of its own) and one database."""

    vhost: RabbitVhost
    services: list[Service]
    partitions: int

    async def start(self) -> None:
        # the process checks publishers against the users of its vhost's prefix
        os.environ["BROKER_USER_PREFIX"] = self.vhost.prefix
        os.environ["AGGREGATION_PARTITIONS"] = str(self.partitions)
        try:
            for k, service in enumerate(self.services):
                os.environ["AGGREGATION_PARTITION"] = str(k)
                await service.start()
        finally:
            os.environ.pop("AGGREGATION_PARTITION", None)
            os.environ.pop("AGGREGATION_PARTITIONS", None)

    def stop(self) -> None:
        for service in self.services:
            service.stop()


async def routed(
    units: list[Unit], events: list[Envelope], partitions: int
) -> tuple[list[int], list[int]]:
    """The deliveries each partition gets for the tree and the plan, then for `events` (the
    router's own routing, run offline)."""
    from aggregation.batch import Event, parse_event
    from aggregation.router import Router
    from tests.unit.aggregation.test_partitions import MemoryRouterStore

    counts = [0] * partitions

    async def send(event: Event, partition: int, key: str) -> None:
        counts[partition] += 1

    def parsed(chunk: list[Envelope]) -> list[Event]:
        bodies = [e.model_dump_json().encode() for e in chunk]
        return [parse_event(b, publisher=None, owners=None) for b in bodies]

    router = Router(MemoryRouterStore(), partitions, send)  # type: ignore[arg-type]
    await router.apply(parsed(reference_events(units)))
    setup, counts[:] = list(counts), [0] * partitions
    for at in range(0, len(events), 2000):
        await router.apply(parsed(events[at : at + 2000]))
    return setup, counts


async def consumed_all(setup: Setup, clients: list[httpx.AsyncClient]) -> list[int]:
    return [await consumed(c) for c in clients]


async def ingest(setup: Setup, events: list[Envelope], expected: list[int]) -> float:
    """Events/s from the first event published to the last one stored by its partition."""
    clients = [httpx.AsyncClient(base_url=s.url, timeout=120) for s in setup.services]
    try:
        base = await consumed_all(setup, clients)
        started = time.perf_counter()
        await publish(setup.vhost, events)
        while True:
            now = await consumed_all(setup, clients)
            if all(n - b >= e for n, b, e in zip(now, base, expected, strict=True)):
                break
            await asyncio.sleep(0.1)
        return len(events) / (time.perf_counter() - started)
    finally:
        for c in clients:
            await c.aclose()


async def prepared(
    mongo: DevMongo, units: list[Unit], name: str, partitions: int, setups: list[Setup]
) -> Setup:
    """A setup whose processes have consumed the whole tree and the plan (not timed), added
    to `setups` as soon as it exists (so that it is stopped whatever happens)."""
    prefix = f"lhpn-p{uuid.uuid4().hex[:8]}-"
    vhost = await asyncio.to_thread(RabbitVhost.create, prefix)
    settings = AggregationSettings(
        mongo_url=mongo.url, rabbit_url=vhost.url_for("aggregation"), mongo_db=name
    )
    setup = Setup(
        vhost, [Service(settings, port=free_port()) for _ in range(partitions)], partitions
    )
    setups.append(setup)
    await setup.start()
    events = reference_events(units)
    await publish(vhost, events)
    # the tree and the plan, as the router places them
    expected = [len(events)] if partitions == 1 else (await routed(units, [], partitions))[0]
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=s.url, timeout=120))
            for s in setup.services
        ]
        while any(n < e for n, e in zip(await consumed_all(setup, clients), expected, strict=True)):
            await asyncio.sleep(0.5)
    return setup


async def measure(events: int) -> list[Row]:
    """The rows: one writer, two partitions, their ratio against the 1.5× target."""
    units = country()
    data = Path(tempfile.mkdtemp(prefix="lhpn-partitions-"))
    os.environ.setdefault("DEVMONGO_JAVA_OPTS", "-Xmx1g")
    os.environ["ENV"] = "development"
    saved_prefix = os.environ.get("BROKER_USER_PREFIX")
    mongo = DevMongo(port=free_port(), data_dir=data)
    setups: list[Setup] = []
    try:
        mongo.start()
        print(f"units: {len(units):,}; generating {events:,} events …", flush=True)
        stream = sample(units, events)
        expected = (await routed(units, stream, PARTITIONS))[1]
        print(f"deliveries per partition: {expected}", flush=True)
        started = time.perf_counter()
        one_setup = await prepared(mongo, units, "bench_one", 1, setups)
        print(f"one writer: tree and plan in {time.perf_counter() - started:.0f} s", flush=True)
        one = await ingest(one_setup, stream, [len(stream)])
        one_setup.stop()
        print(f"one writer: {one:.0f} events/s", flush=True)
        started = time.perf_counter()
        two_setup = await prepared(mongo, units, "bench_two", PARTITIONS, setups)
        print(f"partitions: tree and plan in {time.perf_counter() - started:.0f} s", flush=True)
        two = await ingest(two_setup, stream, expected)
        print(f"{PARTITIONS} partitions: {two:.0f} events/s", flush=True)
    finally:
        for setup in setups:
            setup.stop()
        mongo.stop()
        for setup in setups:
            await asyncio.to_thread(setup.vhost.delete)
        shutil.rmtree(data, ignore_errors=True)
        if saved_prefix is None:
            os.environ.pop("BROKER_USER_PREFIX", None)
        else:
            os.environ["BROKER_USER_PREFIX"] = saved_prefix
    return [
        Row(f"ingestion, one writer ({events:,} events)", one, "events/s"),
        Row(
            f"ingestion, {PARTITIONS} partitions (router + {PARTITIONS} writers)",
            two,
            "events/s",
            one,
            "≥ 1.5× one",
            two >= 1.5 * one,
        ),
    ]


QUICK_EVENTS, FULL_EVENTS = 10_000, 40_000


def rows(quick: bool = False) -> list[Row]:
    """For `bench/run.py`: the rows of a run (`quick`: the smaller sample)."""
    return asyncio.run(measure(QUICK_EVENTS if quick else FULL_EVENTS))


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10,000 events instead of 40,000")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the rows to this file")
    args = parser.parse_args(argv)
    events = args.events or (QUICK_EVENTS if args.quick else FULL_EVENTS)
    load = os.getloadavg()[0]
    result = asyncio.run(measure(events))
    print()
    print(f"machine: {os.cpu_count()} cores, load average at start {load:.1f} (shared)")
    print(table(result))
    if args.json is not None:
        write_json(result, args.json)
    return result


if __name__ == "__main__":
    main()
