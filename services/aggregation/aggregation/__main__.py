"""`python -m aggregation` runs the service; `python -m aggregation rebuild` drops the read
models and rebuilds them by replaying the event archive; `python -m aggregation reroute` (with
partitions, every aggregation process stopped) rebuilds every partition from every partition's
events routed again (`reroute`); `python -m aggregation asyncapi` prints the AsyncAPI
document."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from lhpn_shared.clock import SystemClock
from lhpn_shared.http import serve
from lhpn_shared.logs import configure_logging
from lhpn_shared.mongo import database, make_client
from lhpn_shared.settings import load_settings

from .app import create_app
from .partitions import RerouteRefused, held_partition_queues
from .repository import AggregationStore
from .reroute import reroute
from .router import RouterStore
from .service import Aggregation
from .settings import AggregationSettings

log = logging.getLogger("aggregation")


PROGRESS_EVERY_SECONDS = 1.0


async def rebuild(settings: AggregationSettings) -> int:
    """With partitions, the partition of `AGGREGATION_PARTITION` replays its own archive.

    Logs `rebuild progress` (archive documents read of all, events replayed) about once a
    second: an operator's command (`lhpn aggregation rebuild`) draws its bar from these lines."""
    client = make_client(settings)
    last = 0.0

    def progress(read: int, total: int, replayed: int) -> None:
        nonlocal last
        if read < total and time.monotonic() - last < PROGRESS_EVERY_SECONDS:
            return
        last = time.monotonic()
        log.info(
            "rebuild progress",
            extra={"archive_read": read, "archive_total": total, "events": replayed},
        )

    try:
        prefix = f"p{settings.aggregation_partition}." if settings.partitioned else ""
        aggregation = Aggregation(
            AggregationStore(database(client, settings.database), prefix), SystemClock()
        )
        return await aggregation.rebuild(batch_size=settings.batch_size, progress=progress)
    finally:
        await client.close()


async def reroute_partitions(settings: AggregationSettings) -> list[int]:
    """`reroute.reroute` over this deployment's partitions and the events waiting in their
    queues."""
    client = make_client(settings)
    try:
        db = database(client, settings.database)
        stores = [AggregationStore(db, f"p{k}.") for k in range(settings.aggregation_partitions)]
        async with held_partition_queues(
            settings.rabbit_url, settings.aggregation_partitions
        ) as held:
            return await reroute(
                stores,
                RouterStore(db),
                SystemClock(),
                batch_size=settings.batch_size,
                in_flight=held.bodies,
                taken=held.ack,
            )
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    settings = load_settings(AggregationSettings)
    configure_logging(settings.log_level)
    if args[:1] == ["rebuild"]:
        started = time.monotonic()
        replayed = asyncio.run(rebuild(settings))
        log.info(
            "read models rebuilt",
            extra={"events": replayed, "seconds": round(time.monotonic() - started, 1)},
        )
        return
    if args[:1] == ["reroute"]:
        if not settings.partitioned:
            sys.exit("reroute: AGGREGATION_PARTITIONS is 1, there is nothing to route again")
        started = time.monotonic()
        try:
            given = asyncio.run(reroute_partitions(settings))
        except RerouteRefused as exc:
            sys.exit(f"reroute: {exc}")
        log.info(
            "partitions rebuilt from their events routed again",
            extra={"events": given, "seconds": round(time.monotonic() - started, 1)},
        )
        return
    if args[:1] == ["asyncapi"]:
        from faststream.specification import AsyncAPI

        from .app import build_broker

        spec = AsyncAPI(build_broker(settings, {}), title="LHPN aggregation", version="1.0.0")
        print(spec.to_specification().to_json())
        return
    if args:
        sys.exit("usage: python -m aggregation [rebuild | reroute | asyncapi]")
    serve(create_app(settings), settings, settings.aggregation_port)


if __name__ == "__main__":
    main()
