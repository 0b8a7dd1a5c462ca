"""Aggregation ingestion by one writer against two, in the same run: what partitioning the
stream by unit can give on this machine.

    uv run python bench/partitions.py            # 40,000 events, about 6 minutes on 2 cores
    uv run python bench/partitions.py --quick    # 16,000 events, about 3 minutes

Partitioning is not in the service yet (docs/aggregation.md, "For the replicas"). What this
measures is its write side as designed there: each partition is a whole aggregation process
with the whole unit tree and the plans, the events of its own units, and rollup documents of
its own (here: its own database and vhost). So:

1. one process consumes the whole sample (the events of `bench/aggregation.py`, national
   tree, default plan) — the single active consumer of today;
2. two processes each consume the half of the same sample whose units lie in its provinces
   (split by a hash of the province code: one province, one partition).
The rate is every event over the time from the first one published (the processes ready and
idle) to the last one stored; the two shares are published at once.

Both runs share one DevMongo server and the machine's RabbitMQ, as partitions would. The rate is
read from each process's /metrics. The answers are not summed and the credit a unit gets for
its predecessors' activities is not carried across partitions (both are the design's open
parts), so the figure is an upper bound for the design, not a result of the service.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
import zlib  # noqa: E402
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
from lhpn_shared.contracts.units import Unit, UnitTree  # noqa: E402
from tests.support.infra import DevMongo, RabbitVhost, free_port  # noqa: E402
from tests.unit.aggregation.generated import country  # noqa: E402

PARTITIONS = 2


@dataclass
class Partition:
    """One aggregation process with its own vhost (broker users of its own) and database."""

    vhost: RabbitVhost
    service: Service

    async def start(self) -> None:
        # the process checks publishers against the users of its vhost's prefix
        os.environ["BROKER_USER_PREFIX"] = self.vhost.prefix
        await self.service.start()


def partition_of(event: Envelope, tree: UnitTree, n: int) -> int:
    """The partition of an event: a hash of its unit's province (stable across processes)."""
    unit_id = event.unit_id or ""
    chain = [unit_id, *tree.ancestors(unit_id)]
    province = chain[-2] if len(chain) >= 2 else unit_id
    return zlib.crc32(province.encode()) % n


async def ingest(partitions: list[Partition], shares: list[list[Envelope]]) -> float:
    """Events/s from the first event published to the last one stored: each share published
    to its partition's queue (all at once) while the processes, ready and idle, consume."""
    total = sum(len(s) for s in shares)
    clients = [httpx.AsyncClient(base_url=p.service.url, timeout=120) for p in partitions]
    try:
        base = sum([await consumed(c) for c in clients])
        started = time.perf_counter()
        await asyncio.gather(
            *(publish(p.vhost, share) for p, share in zip(partitions, shares, strict=True))
        )
        while sum([await consumed(c) for c in clients]) - base < total:
            await asyncio.sleep(0.1)
        return total / (time.perf_counter() - started)
    finally:
        for c in clients:
            await c.aclose()


async def prepared(mongo: DevMongo, units: list[Unit], name: str, parts: list[Partition]) -> None:
    """A partition whose process has consumed the whole tree and the plan (not timed), added
    to `parts` as soon as it exists (so that it is stopped whatever happens)."""
    prefix = f"lhpn-p{uuid.uuid4().hex[:8]}-"
    vhost = await asyncio.to_thread(RabbitVhost.create, prefix)
    settings = AggregationSettings(
        mongo_url=mongo.url, rabbit_url=vhost.url_for("aggregation"), mongo_db=name
    )
    part = Partition(vhost, Service(settings, port=free_port()))
    parts.append(part)
    await part.start()
    setup = reference_events(units)
    await publish(vhost, setup)
    await settled(part.service, len(setup))


async def settled(service: Service, count: int) -> None:
    """Until the process has consumed `count` events (a busy process may answer late)."""
    async with httpx.AsyncClient(base_url=service.url, timeout=120) as client:
        while await consumed(client) < count:
            await asyncio.sleep(0.5)


async def measure(events: int) -> list[Row]:
    """The rows: one writer, two partitions, their ratio against the 1.5× target."""
    units = country()
    tree = UnitTree(units)
    data = Path(tempfile.mkdtemp(prefix="lhpn-partitions-"))
    os.environ.setdefault("DEVMONGO_JAVA_OPTS", "-Xmx1g")
    os.environ["ENV"] = "development"
    saved_prefix = os.environ.get("BROKER_USER_PREFIX")
    mongo = DevMongo(port=free_port(), data_dir=data)
    parts: list[Partition] = []
    try:
        mongo.start()
        print(f"units: {len(units):,}; generating {events:,} events …", flush=True)
        stream = sample(units, events)
        shares: list[list[Envelope]] = [[] for _ in range(PARTITIONS)]
        for event in stream:
            shares[partition_of(event, tree, PARTITIONS)].append(event)
        print(f"shares: {[len(s) for s in shares]}", flush=True)
        started = time.perf_counter()
        for i in range(PARTITIONS + 1):  # one after the other: the machine has 2 cores
            await prepared(mongo, units, f"bench_part{i}", parts)
        print(f"tree and plan consumed in {time.perf_counter() - started:.0f} s", flush=True)
        one = await ingest(parts[:1], [stream])
        parts[0].service.stop()
        print(f"one writer: {one:.0f} events/s", flush=True)
        two = await ingest(parts[1:], shares)
        print(f"{PARTITIONS} partitions: {two:.0f} events/s", flush=True)
    finally:
        for part in parts:
            part.service.stop()
        mongo.stop()
        for part in parts:
            await asyncio.to_thread(part.vhost.delete)
        shutil.rmtree(data, ignore_errors=True)
        if saved_prefix is None:
            os.environ.pop("BROKER_USER_PREFIX", None)
        else:
            os.environ["BROKER_USER_PREFIX"] = saved_prefix
    return [
        Row(f"ingestion, one writer ({events:,} events)", one, "events/s"),
        Row(
            f"ingestion, {PARTITIONS} partitions by province (upper bound, not in the service)",
            two,
            "events/s",
            one,
            "≥ 1.5× one",
            two >= 1.5 * one,
        ),
    ]


def rows(quick: bool = False) -> list[Row]:
    """For `bench/run.py`: the rows of a run (`quick`: the smaller sample)."""
    return asyncio.run(measure(16_000 if quick else 40_000))


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="16,000 events instead of 40,000")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the rows to this file")
    args = parser.parse_args(argv)
    events = args.events or (16_000 if args.quick else 40_000)
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
