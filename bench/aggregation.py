"""Aggregation at national scale: consume throughput against a baseline, and compliance latency.

    uv run python bench/aggregation.py            # about 10 minutes on 2 cores
    uv run python bench/aggregation.py --events 50000 --baseline-events 20000   # quicker

Everything runs on this machine's RabbitMQ (a fresh vhost, deleted afterwards) and a DevMongo
of its own (temporary directory); the service runs as `python -m aggregation` subprocesses.

1. Throughput. The country's units (63 provinces, 700 districts, 10,600 communes under one
   national root) and the default plan are consumed first (not measured). Then a sample of
   events (activities with corrections and voids, reports, cases, spread over the country) is
   published once on `lhpn.events`, which routes a copy to the service's queue and one to a
   baseline queue, while nobody consumes. The service is started and its consumption timed
   (from its first event to its last, read from /metrics); then the baseline consumes its copy:
   aio-pika, prefetch 100, each event parsed and upserted as one document, then acked.
2. Latency. A read model of national size is written directly: the units, the plan, and the
   activity counters of 2,000,000 activities spread over the units. A fresh service answers
   `GET /api/v1/compliance` for the whole country and for one province, p50/p95 over HTTP.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# run as a script, this file's folder would shadow the `aggregation` package: use the repo root
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, date, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

import aio_pika  # noqa: E402
import httpx  # noqa: E402
from pymongo import AsyncMongoClient, InsertOne  # noqa: E402

from aggregation.batch import CONSUMED_KEYS  # noqa: E402
from aggregation.repository import counters_doc, state_doc  # noqa: E402
from aggregation.settings import AggregationSettings  # noqa: E402
from lhpn_shared.auth import Principal, Role, issue_token  # noqa: E402
from lhpn_shared.clock import LOCAL_TZ  # noqa: E402
from lhpn_shared.contracts.activities import METRICS, Activity, ActivityKind  # noqa: E402
from lhpn_shared.contracts.cases import (  # noqa: E402
    CaseChannel,
    CaseFacts,
    CaseKind,
    CaseStatus,
    CaseStatusChange,
    CaseTopic,
)
from lhpn_shared.contracts.events import ActivityVoided, Envelope, make_event  # noqa: E402
from lhpn_shared.contracts.owners import owner_of  # noqa: E402
from lhpn_shared.contracts.reports import Report  # noqa: E402
from lhpn_shared.contracts.units import Unit  # noqa: E402
from tests.support.infra import DevMongo, RabbitVhost, free_port  # noqa: E402
from tests.unit.aggregation.generated import country, load_plan  # noqa: E402

BASELINE_QUEUE = "bench.baseline"
PROVINCE = "P07"
_CONSUMED = re.compile(
    r'^lhpn_events_total\{[^}]*outcome="(?:applied|unchanged)"[^}]*\} (\S+)$', re.M
)


# --- the country ------------------------------------------------------------------------------


def reference_events(units: list[Unit]) -> list[Envelope]:
    at = datetime(2021, 1, 1, tzinfo=LOCAL_TZ)
    plan = load_plan()
    out = [make_event("unit.upserted", u, source="bench", occurred_at=at) for u in units]
    out.append(make_event("plan.published", plan, source="bench", occurred_at=at))
    return out


def _metrics(rng: random.Random, kind: ActivityKind) -> dict[str, int]:
    values = {name: rng.randint(0, 20) for name in METRICS[kind]}
    for part, whole in (
        ("recommendations_accepted", "recommendations"),
        ("comments_accepted", "comments"),
        ("issues_answered", "issues_raised"),
        ("female_participants", "participants"),
    ):
        if part in values:
            values[part] = rng.randint(0, values[whole])
    return values


def sample(units: list[Unit], n: int, seed: int = 2021) -> list[Envelope]:
    """About 80% activity events (a fifth of them corrections or voids), 12% reports, 8% cases,
    over random units of the country; each entity's events in revision order."""
    rng = random.Random(seed)
    plan = load_plan()
    kinds = list(ActivityKind)
    monthly = next(s for s in plan.report_schedules if s.report_type == "monthly")
    reporters = [u for u in units if u.level in monthly.levels]
    out: list[Envelope] = []
    now = datetime(2021, 12, 1, tzinfo=UTC)

    def event(kind: str, data: object, unit_id: str) -> None:
        out.append(make_event(kind, data, source="bench", occurred_at=now, unit_id=unit_id))  # type: ignore[arg-type]

    while len(out) < n:
        roll = rng.random()
        if roll < 0.66:
            unit = rng.choice(units)
            kind = rng.choice(kinds)
            activity = Activity(
                activity_id=uuid.UUID(int=rng.getrandbits(128)),
                unit_id=unit.unit_id,
                kind=kind,
                occurred_on=date(2021, 1, 1) + timedelta(days=rng.randrange(365)),
                title=f"Hoạt động {kind.value}",
                metrics=_metrics(rng, kind),
            )
            event("activity.recorded", activity, unit.unit_id)
            if rng.random() < 0.15:
                fixed = activity.model_copy(update={"revision": 2, "metrics": _metrics(rng, kind)})
                event("activity.recorded", fixed, unit.unit_id)
            if rng.random() < 0.07:
                void = ActivityVoided(
                    activity_id=activity.activity_id,
                    unit_id=unit.unit_id,
                    revision=3,
                    voided_at=now,
                    reason="nhập trùng",
                )
                event("activity.voided", void, unit.unit_id)
        elif roll < 0.92:
            unit = rng.choice(reporters)
            period = rng.choice(monthly.periods)
            due = period.due_at[unit.level]
            received = due + timedelta(hours=rng.randint(-200, 100))
            report = Report(
                report_id=uuid.UUID(int=rng.getrandbits(128)),
                unit_id=unit.unit_id,
                report_type="monthly",
                period=period.period,
                indicators={c: rng.randint(0, 30) for c in monthly.indicators[:8]},
                received_at=received,
                due_at=due,
                on_time=received < due,
            )
            event("report.submitted", report, unit.unit_id)
        else:
            unit = rng.choice(units)
            facts = CaseFacts(
                case_id=uuid.UUID(int=rng.getrandbits(128)),
                unit_id=unit.unit_id,
                kind=rng.choice(list(CaseKind)),
                topic=rng.choice(list(CaseTopic)),
                channel=rng.choice(list(CaseChannel)),
                status=CaseStatus.received,
                received_on=date(2021, 1, 1) + timedelta(days=rng.randrange(365)),
            )
            event("case.opened", facts, unit.unit_id)
            change = CaseStatusChange(
                **facts.model_dump(exclude={"status", "revision"}),
                status=CaseStatus.accepted,
                revision=2,
                from_status=CaseStatus.received,
                changed_at=now,
            )
            event("case.status_changed", change, unit.unit_id)
    return out[:n]


# --- broker ---------------------------------------------------------------------------------


async def declare_baseline(url: str) -> None:
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            "lhpn.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(BASELINE_QUEUE, durable=True)
        for key in CONSUMED_KEYS:
            await queue.bind(exchange, routing_key=key)


async def publish(vhost: RabbitVhost, events: list[Envelope], window: int = 1000) -> float:
    """Each event as its owning service publishes it (its broker user and `user_id`)."""
    bodies = [
        (owner_of(e.type) or "?", e.routing_key, str(e.event_id), e.model_dump_json().encode())
        for e in events
    ]
    owners = sorted({owner for owner, *_ in bodies})
    connections = {o: await aio_pika.connect_robust(vhost.url_for(o)) for o in owners}
    started = time.perf_counter()
    try:
        exchanges = {}
        for owner, connection in connections.items():
            channel = await connection.channel(publisher_confirms=True)
            exchanges[owner] = await channel.get_exchange("lhpn.events", ensure=True)
        for at in range(0, len(bodies), window):
            await asyncio.gather(
                *(
                    exchanges[owner].publish(
                        aio_pika.Message(
                            body,
                            content_type="application/json",
                            message_id=mid,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            user_id=vhost.user_for(owner),
                        ),
                        routing_key=key,
                    )
                    for owner, key, mid, body in bodies[at : at + window]
                )
            )
    finally:
        for connection in connections.values():
            await connection.close()
    return len(bodies) / (time.perf_counter() - started)


async def baseline(url: str, mongo_url: str, count: int) -> float:
    """aio-pika, prefetch 100, one event at a time: parse the envelope, upsert the entity's
    document (its latest event as one JSON string, the cheapest document for this server),
    ack."""
    mongo: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    coll = mongo["bench_baseline"]["states"]
    connection = await aio_pika.connect_robust(url)
    done, first = 0, 0.0
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        queue = await channel.get_queue(BASELINE_QUEUE)
        async with queue.iterator() as messages:
            async for message in messages:
                if not first:
                    first = time.perf_counter()
                envelope = Envelope.model_validate_json(message.body)
                key = next(
                    str(envelope.data[k])
                    for k in ("activity_id", "report_id", "case_id", "plan_id", "unit_id")
                    if k in envelope.data
                )
                await coll.update_one(
                    {"_id": key}, {"$set": {"json": message.body.decode()}}, upsert=True
                )
                await message.ack()
                done += 1
                if done >= count:
                    break
    took = time.perf_counter() - first
    await mongo.close()
    return count / took


# --- the service as a process -------------------------------------------------------------------


@dataclass
class Service:
    settings: AggregationSettings
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        env = {
            **os.environ,
            "MONGO_URL": self.settings.mongo_url,
            "MONGO_DB": self.settings.mongo_db,
            "RABBIT_URL": self.settings.rabbit_url,
            "AGGREGATION_PORT": str(self.port),
            "LOG_LEVEL": "WARNING",
        }
        self.process = subprocess.Popen([sys.executable, "-m", "aggregation"], env=env)
        async with httpx.AsyncClient(base_url=self.url) as client:
            for _ in range(600):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("the service did not become ready")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=60)
            self.process = None


async def consumed(client: httpx.AsyncClient) -> int:
    text = (await client.get("/metrics")).text
    return int(sum(float(v) for v in _CONSUMED.findall(text)))


async def time_consumption(service: Service, count: int, first: int) -> tuple[float, float]:
    """Events/s from the first consumed event to the last, and over the first `first` events
    (polled on /metrics)."""
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        while (n0 := await consumed(client)) == 0:
            await asyncio.sleep(0.02)
        t0 = time.perf_counter()
        t_first = 0.0
        while (n := await consumed(client)) < count:
            if not t_first and n >= first:
                t_first = time.perf_counter()
            await asyncio.sleep(0.1)
        took = time.perf_counter() - t0
        return (n - n0) / took, (first - n0) / ((t_first or t0 + took) - t0)


async def wait_consumed(service: Service, count: int) -> None:
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        while await consumed(client) < count:
            await asyncio.sleep(0.2)


# --- a read model of national size, written directly --------------------------------------------


async def national_read_model(mongo_url: str, db: str, units: list[Unit], activities: int) -> None:
    """Units, plan and the activity counters of `activities` activities (as the service would
    have written them), spread unevenly: a tenth of the units are nearly idle."""
    rng = random.Random(10_600)
    weights = [0.05 if rng.random() < 0.1 else rng.uniform(0.5, 1.5) for _ in units]
    per_unit = [0] * len(units)
    for i in rng.choices(range(len(units)), weights, k=activities):
        per_unit[i] += 1
    kinds = list(ActivityKind)
    docs = []
    for unit, n in zip(units, per_unit, strict=True):
        counters: dict[str, dict] = {}
        for _ in range(n):
            kind = kinds[int(rng.random() * len(kinds))]
            day = date(2021, 1, 1) + timedelta(days=int(rng.random() * 365))
            k = counters.setdefault(kind.value, {"activities": 0, "metrics": {}, "months": {}})
            month = k["months"].setdefault(
                f"{day.month:02d}", {"activities": 0, "metrics": {}, "days": {}}
            )
            k["activities"] += 1
            month["activities"] += 1
            month["days"][f"{day.day:02d}"] = month["days"].get(f"{day.day:02d}", 0) + 1
            for name in METRICS[kind]:
                value = int(rng.random() * 20)
                k["metrics"][name] = k["metrics"].get(name, 0) + value
                month["metrics"][name] = month["metrics"].get(name, 0) + value
        docs.append(InsertOne(counters_doc(unit.unit_id, 2021, {"kinds": counters})))
    mongo: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    database = mongo[db]
    plan = load_plan()
    await database["plans"].insert_one(state_doc(plan.plan_id, plan.model_dump_json()))
    await database["units"].bulk_write(
        [InsertOne(state_doc(u.unit_id, u.model_dump_json())) for u in units], ordered=False
    )
    for at in range(0, len(docs), 500):
        await database["activity_counters"].bulk_write(docs[at : at + 500], ordered=False)
    await mongo.close()


async def latencies(service: Service, unit_id: str, n: int) -> tuple[list[float], int]:
    settings = service.settings
    token, _ = issue_token(
        settings, Principal(subject="bench", role=Role.viewer), datetime.now(UTC)
    )
    params = {
        "plan_id": "PY-2021-460",
        "unit_id": unit_id,
        "as_of": datetime(2021, 10, 1, tzinfo=LOCAL_TZ).isoformat(),
    }
    out, size = [], 0
    async with httpx.AsyncClient(
        base_url=service.url, timeout=60, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for _ in range(n):
            started = time.perf_counter()
            response = await client.get("/api/v1/compliance", params=params)
            out.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text[:500]
            size = len(response.content)
    return out, size


def p(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
        if len(values) > 1
        else values[0]
    )


# --- the run ------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    rows: list[tuple[str, Any, str]] = []
    load = os.getloadavg()[0]
    units = country()
    data = Path(tempfile.mkdtemp(prefix="lhpn-bench-"))
    os.environ.setdefault("DEVMONGO_JAVA_OPTS", "-Xmx1g")
    # development, asked for; the broker users of this run (global in RabbitMQ) get a prefix
    # of their own, which the service process inherits
    os.environ["ENV"] = "development"
    os.environ["BROKER_USER_PREFIX"] = f"lhpn-b{uuid.uuid4().hex[:8]}-"
    mongo = DevMongo(port=free_port(), data_dir=data)
    vhost = RabbitVhost.create()
    services: list[Service] = []
    try:
        mongo.start()
        settings = AggregationSettings(
            mongo_url=mongo.url, rabbit_url=vhost.url_for("aggregation"), mongo_db="bench_service"
        )
        print(f"units: {len(units)}; generating {args.events} events …", flush=True)
        events = sample(units, args.events)

        service = Service(settings)
        services.append(service)
        await service.start()
        setup = reference_events(units)
        await publish(vhost, setup)
        await wait_consumed(service, len(setup))
        service.stop()
        await declare_baseline(vhost.url)
        rate = await publish(vhost, events)
        print(f"published {len(events)} events twice (two queues), {rate:.0f}/s", flush=True)

        await service.start()
        ours, ours_first = await time_consumption(service, args.events, args.baseline_events)
        service.stop()
        print(f"service: {ours:.0f} events/s ({ours_first:.0f} on the first part)", flush=True)
        base = await baseline(vhost.url, mongo.url, args.baseline_events)
        print(f"baseline: {base:.0f} events/s", flush=True)
        part = f"first {args.baseline_events:,} events"
        rows += [
            (f"service: consume → read models (batch {settings.batch_size}), all", ours, ""),
            (f"service: the same, {part}", ours_first, ""),
            (f"baseline: raw aio-pika, one upsert per event, {part}", base, ""),
        ]
        rows = [(n, f"{v:,.0f} events/s" if isinstance(v, float) else v, t) for n, v, t in rows]
        rows.append(
            (
                "ratio service / baseline: all; same events",
                f"{ours / base:.2f}× ; {ours_first / base:.2f}×",
                "≥ 1.0×",
            )
        )

        print(f"writing a national read model of {args.activities:,} activities …", flush=True)
        started = time.perf_counter()
        await national_read_model(mongo.url, "bench_national", units, args.activities)
        print(f"  written in {time.perf_counter() - started:.0f} s", flush=True)
        national = Service(settings.model_copy(update={"mongo_db": "bench_national"}))
        services.append(national)
        await national.start()
        started = time.perf_counter()
        await latencies(national, PROVINCE, 1)
        cold = time.perf_counter() - started
        await latencies(national, "VN", 2)  # warm
        province, province_bytes = await latencies(national, PROVINCE, args.requests)
        whole, country_bytes = await latencies(national, "VN", max(args.requests // 5, 20))
        national.stop()
        rows += [
            ("first compliance request (loads the compliance cache)", f"{cold:.2f} s", ""),
            (
                f"compliance, one province ({PROVINCE}, {province_bytes // 1024} KiB) p50 / p95",
                f"{1000 * p(province, 50):.0f} / {1000 * p(province, 95):.0f} ms",
                "p95 < 100 ms",
            ),
            (
                f"compliance, whole country ({country_bytes // 1024} KiB) p50 / p95",
                f"{1000 * p(whole, 50):.0f} / {1000 * p(whole, 95):.0f} ms",
                "p95 < 1,000 ms",
            ),
        ]
    finally:
        for s in services:
            s.stop()
        mongo.stop()
        vhost.delete()
        shutil.rmtree(data, ignore_errors=True)

    print()
    print(f"machine: {os.cpu_count()} cores, load average at start {load:.1f} (shared)")
    print(
        f"national scale: {len(units):,} units; {args.events:,}-event sample "
        f"(baseline on {args.baseline_events:,}); {args.activities:,} activities of counters"
    )
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure':<{width}} | {'result':>16} | {'target':<14} |")
    print(f"|{'-' * (width + 2)}|{'-' * 18}|{'-' * 16}|")
    for name, value, target in rows:
        print(f"| {name:<{width}} | {value:>16} | {target:<14} |")
    print(json.dumps({"rows": rows}, ensure_ascii=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument(
        "--baseline-events",
        type=int,
        default=50_000,
        help="the baseline consumes the first N events of the sample (it is the slow one)",
    )
    parser.add_argument("--activities", type=int, default=2_000_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    if args.baseline_events > args.events:
        parser.error("--baseline-events cannot exceed --events")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
