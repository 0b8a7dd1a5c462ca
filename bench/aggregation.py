"""Aggregation at national scale, measured against baselines taken in the same run.

    uv run python bench/aggregation.py            # about 10 minutes on 2 cores
    uv run python bench/aggregation.py --quick    # 3–4 minutes: smaller samples, same country

Everything runs on this machine's RabbitMQ (a fresh vhost, deleted afterwards) and a DevMongo
of its own (temporary directory); the service runs as `python -m aggregation` subprocesses.
The country is synthetic and of the 2021 shape (1 national root, 63 provinces, 700 districts,
10,600 communes: 11,364 units), the plan is the default one.

1. Ingestion. The country's units and the plan are consumed first (not measured). Then a
   sample of events (activities with corrections and voids, reports, cases, spread over the
   country) is published once on `lhpn.events`, which routes a copy to the service's queue and
   one to a baseline queue, while nobody consumes. The baseline consumes half of its events
   (aio-pika, prefetch 100, each event parsed and upserted as one document, then acked); the
   service is started and its consumption timed (from its first event to its last, read from
   /metrics, polled at 4 Hz); then the baseline consumes the other half. The baseline's rate
   is its events over the time of both halves: the machine's speed drifts within a run.
2. Answers. A read model of national size (`national.py`: the activity rollups of N activities,
   the plan's standings built by the service, two months of reports, cases) is served by a
   freshly started service: the first request of each kind after the restart is timed, then
   p50/p95 over many, for the whole country and for one province. Baseline: the naive way, one
   `$group` over one document per unit and target, for the country and for the province.
3. National exports: compliance.xlsx, indicators.xlsx and thematic-report.docx of the country,
   downloaded whole.

The table prints each measure with its baseline, the ratio, the target (issue 13) and whether
it is met; `--json FILE` writes the same rows (name, value, unit, baseline, ratio, target, met).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# run as a script, this file's folder would shadow the `aggregation` package: use the repo root
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]

import argparse  # noqa: E402
import asyncio  # noqa: E402
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

import aio_pika  # noqa: E402
import httpx  # noqa: E402
from pymongo import AsyncMongoClient  # noqa: E402

from aggregation.batch import CONSUMED_KEYS  # noqa: E402
from aggregation.settings import AggregationSettings  # noqa: E402
from bench.national import build  # noqa: E402
from bench.table import (  # noqa: E402
    Row,
    at_least,
    cpu_seconds,
    rss_mib,
    table,
    write_json,
)
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
from lhpn_shared.contracts.units import Unit, UnitTree  # noqa: E402
from tests.support.infra import DevMongo, RabbitVhost, free_port  # noqa: E402
from tests.unit.aggregation.generated import (  # noqa: E402
    NATIONAL_PLAN_ID,
    country,
    national_plan,
)

BASELINE_QUEUE = "bench.baseline"
PROVINCE = "P07"
_CONSUMED = re.compile(
    r'^lhpn_events_total\{[^}]*outcome="(?:applied|unchanged)"[^}]*\} (\S+)$', re.M
)


# --- the country ------------------------------------------------------------------------------


def reference_events(units: list[Unit]) -> list[Envelope]:
    at = datetime(2021, 1, 1, tzinfo=LOCAL_TZ)
    plan = national_plan()
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
    plan = national_plan()
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


async def time_consumption(service: Service, count: int, first: int) -> tuple[float, float | None]:
    """Events/s from the first consumed event to the last, and over the first `first` events
    (polled on /metrics; the service counts a batch once it is stored)."""
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        while (n0 := await consumed(client)) == 0:
            await asyncio.sleep(0.02)
        t0 = time.perf_counter()
        t_first = n_first = 0.0
        while (n := await consumed(client)) < count:
            if not t_first and n >= first:
                t_first, n_first = time.perf_counter(), n
            await asyncio.sleep(0.25)  # a scrape costs the service CPU: not too often
        took = time.perf_counter() - t0
        if not t_first:
            t_first, n_first = t0 + took, n
        # the first reading may already be past `first` (a slow scrape): not measured then
        part = (n_first - n0) / (t_first - t0) if n_first > n0 else None
        return (n - n0) / took, part


async def wait_consumed(service: Service, count: int) -> None:
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        while await consumed(client) < count:
            await asyncio.sleep(0.2)


# --- answers over HTTP ----------------------------------------------------------------------------

COUNTRY, AS_OF = "VN", datetime(2021, 10, 1, tzinfo=LOCAL_TZ).isoformat()
QUERIES: dict[str, tuple[str, dict[str, str]]] = {
    "compliance": ("compliance", {"plan_id": NATIONAL_PLAN_ID, "as_of": AS_OF}),
    "reporting rates": ("reporting-rates", {"report_type": "monthly", "period": "2021-03"}),
    "indicators": ("indicators", {"period": "2021-Q3"}),
    "case statistics": ("case-stats", {"period": "2021-H1"}),
}
EXPORTS: dict[str, tuple[str, dict[str, str]]] = {
    "compliance.xlsx": ("exports/compliance.xlsx", {"plan_id": NATIONAL_PLAN_ID, "as_of": AS_OF}),
    "indicators.xlsx": ("exports/indicators.xlsx", {"period": "2021"}),
    "thematic-report.docx": (
        "exports/thematic-report.docx",
        {"plan_id": NATIONAL_PLAN_ID, "as_of": AS_OF},
    ),
}


def bearer(settings: AggregationSettings) -> dict[str, str]:
    token, _ = issue_token(
        settings, Principal(subject="bench", role=Role.viewer), datetime.now(UTC)
    )
    return {"Authorization": f"Bearer {token}"}


async def timed_get(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> tuple[float, int]:
    started = time.perf_counter()
    response = await client.get(f"/api/v1/{path}", params=params)
    took = time.perf_counter() - started
    assert response.status_code == 200, (path, response.text[:500])
    return took, len(response.content)


async def answer_latencies(service: Service, n: int) -> dict[tuple[str, str], dict[str, float]]:
    """Per (answer, unit): the first request after the restart, p50 and p95 of `n` more, and
    the answer's size. The service has just started: nothing was asked of it before."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    async with httpx.AsyncClient(
        base_url=service.url, timeout=120, headers=bearer(service.settings)
    ) as client:
        for unit_id in (COUNTRY, PROVINCE):
            for name, (path, params) in QUERIES.items():
                first, _ = await timed_get(client, path, {**params, "unit_id": unit_id})
                out[(name, unit_id)] = {"first": first}
        for unit_id in (COUNTRY, PROVINCE):
            for name, (path, params) in QUERIES.items():
                times, size = [], 0
                for _ in range(n):
                    took, size = await timed_get(client, path, {**params, "unit_id": unit_id})
                    times.append(took)
                out[(name, unit_id)].update(p50=p(times, 50), p95=p(times, 95), kib=size / 1024)
    return out


async def export_times(service: Service) -> dict[str, tuple[float, int]]:
    out = {}
    async with httpx.AsyncClient(
        base_url=service.url, timeout=300, headers=bearer(service.settings)
    ) as client:
        for name, (path, params) in EXPORTS.items():
            out[name] = await timed_get(client, path, {**params, "unit_id": COUNTRY})
    return out


async def naive_group(mongo_url: str, units: list[Unit], runs: int) -> dict[str, list[float]]:
    """The naive way, as the baseline: one document per unit and target (met or not, and its
    province), and a `$group` per request — for the country, and `$match`ed to one province."""
    rng = random.Random(63)
    mongo: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    coll = mongo["bench_naive"]["unit_targets"]
    tree = UnitTree(units)
    docs = []
    for unit in units:
        province = next(
            (a for a in [unit.unit_id, *tree.ancestors(unit.unit_id)] if a.startswith("P")), None
        )
        for target in ("T1", "T2", "T3", "T4", "T5", "T6"):
            docs.append(
                {
                    "unit_id": unit.unit_id,
                    "province": province,
                    "target": target,
                    "met": int(rng.random() < 0.8),
                }
            )
    for start in range(0, len(docs), 5000):
        await coll.insert_many(docs[start : start + 5000], ordered=False)
    group = {"$group": {"_id": "$target", "in_scope": {"$sum": 1}, "met": {"$sum": "$met"}}}
    out: dict[str, list[float]] = {COUNTRY: [], PROVINCE: []}
    for _ in range(runs):
        for unit_id, pipeline in (
            (COUNTRY, [group]),
            (PROVINCE, [{"$match": {"province": PROVINCE}}, group]),
        ):
            started = time.perf_counter()
            await (await coll.aggregate(pipeline)).to_list(None)
            out[unit_id].append(time.perf_counter() - started)
    await mongo.close()
    return out


def p(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
        if len(values) > 1
        else values[0]
    )


# --- the run ------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    load = os.getloadavg()[0]
    units = country()
    plan = national_plan()
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
        # 1. ingestion
        print(f"units: {len(units):,}; generating {args.events:,} events …", flush=True)
        events = sample(units, args.events)
        service = Service(settings)
        services.append(service)
        await service.start()
        setup = reference_events(units)
        started = time.perf_counter()
        await publish(vhost, setup)
        await wait_consumed(service, len(setup))
        print(f"units and plan consumed in {time.perf_counter() - started:.0f} s", flush=True)
        service.stop()
        await declare_baseline(vhost.url)
        rate = await publish(vhost, events)
        print(f"published {len(events):,} events twice (two queues), {rate:.0f}/s", flush=True)
        # the baseline runs before the service and again after it, on half of its events each
        # time (the machine's speed drifts within a run): its rate is the mean of the two
        halves = (args.baseline_events // 2, args.baseline_events - args.baseline_events // 2)
        base_rates: list[float] = []
        base_cpu = [0.0, 0.0]

        async def run_baseline(count: int) -> None:
            cpu = (cpu_seconds(), cpu_seconds(mongo.pid()))
            base_rates.append(await baseline(vhost.url, mongo.url, count))
            base_cpu[0] += (cpu_seconds() - cpu[0]) / args.baseline_events
            base_cpu[1] += (cpu_seconds(mongo.pid()) - cpu[1]) / args.baseline_events

        await run_baseline(halves[0])
        print(f"baseline, before: {base_rates[0]:.0f} events/s", flush=True)
        started = time.perf_counter()
        await service.start()
        startup = time.perf_counter() - started
        assert service.process is not None
        rss_idle = rss_mib(service.process.pid)  # before its first batch: the prefetch fills
        peak = [rss_idle or 0.0]

        async def watch(pid: int) -> None:
            while True:
                peak[0] = max(peak[0], rss_mib(pid) or 0.0)
                await asyncio.sleep(0.5)

        watcher = asyncio.create_task(watch(service.process.pid))
        cpu = (cpu_seconds(service.process.pid), cpu_seconds(mongo.pid()))
        ours, ours_first = await time_consumption(service, args.events, args.baseline_events)
        watcher.cancel()
        ours_cpu = [
            (cpu_seconds(service.process.pid) - cpu[0]) / args.events,
            (cpu_seconds(mongo.pid()) - cpu[1]) / args.events,
        ]
        service.stop()
        print(f"service: {ours:.0f} events/s ({ours_first} on the first part)", flush=True)
        await run_baseline(halves[1])
        # the rate of the whole: its events over the time of both halves
        base = args.baseline_events / sum(h / r for h, r in zip(halves, base_rates, strict=True))
        print(f"baseline, after: {base_rates[1]:.0f}/s; both halves {base:.0f}/s", flush=True)
        rows += [
            Row(
                f"ingestion, all {args.events:,} events (batches of {settings.batch_size})",
                ours,
                "events/s",
                base,
                "≥ 2× baseline",
                ours >= 2 * base,
            ),
            Row(
                f"ingestion, the first {args.baseline_events:,} events (the baseline's number)",
                ours_first,
                "events/s",
                base,
                "≥ 2× baseline",
                at_least(2, ours_first, base),
            ),
            Row(
                "ingestion: consumer process CPU per event",
                1e6 * ours_cpu[0],
                "µs",
                1e6 * base_cpu[0],
            ),
            Row("ingestion: database CPU per event", 1e6 * ours_cpu[1], "µs", 1e6 * base_cpu[1]),
            Row("ingestion: service start to ready (tree, writer's documents)", startup, "s"),
            Row("RSS aggregation: idle (country and plan loaded)", rss_idle, "MiB"),
            Row(f"RSS aggregation: consuming {args.events:,} events, peak", peak[0], "MiB"),
        ]

        if args.ingestion_only:
            return _printed(args, rows, load, len(units), None)
        # 2. answers of a national read model, from a fresh start
        print(f"building a national read model ({args.activities:,} activities) …", flush=True)
        national = settings.model_copy(update={"mongo_db": "bench_national"})
        built = await build(national, units, plan, args.activities, args.cases)
        print("  " + ", ".join(f"{k} {v:.0f} s" for k, v in built.seconds.items()), flush=True)
        naive = await naive_group(mongo.url, units, args.baseline_runs)
        server = Service(national)
        services.append(server)
        await server.start()
        answers = await answer_latencies(server, args.requests)
        exports = await export_times(server)
        server.stop()
        for unit_id, target_ms, label in (
            (COUNTRY, 100, "whole country"),
            (PROVINCE, 20, f"province {PROVINCE}"),
        ):
            anchor = 1000 * p(naive[unit_id], 95)
            for name in QUERIES:
                got = answers[(name, unit_id)]
                rows.append(
                    Row(
                        f"{name}, {label}: p95 ({got['kib']:,.0f} KiB)",
                        1000 * got["p95"],
                        "ms",
                        anchor,
                        f"p95 < {target_ms} ms",
                        1000 * got["p95"] < target_ms,
                    )
                )
                rows.append(
                    Row(
                        f"{name}, {label}: first request after a restart",
                        1000 * got["first"],
                        "ms",
                        anchor,
                        f"< {target_ms} ms",
                        1000 * got["first"] < target_ms,
                    )
                )
        for name, (took, size) in exports.items():
            rows.append(
                Row(
                    f"export {name}, whole country ({size / 1024:,.0f} KiB)",
                    took,
                    "s",
                    None,
                    "< 5 s",
                    took < 5,
                )
            )
        rows.append(Row("baseline: naive $group, country, p95", 1000 * p(naive[COUNTRY], 95), "ms"))
        rows.append(
            Row(
                f"baseline: naive $group, province {PROVINCE}, p95",
                1000 * p(naive[PROVINCE], 95),
                "ms",
            )
        )
    finally:
        for s in services:
            s.stop()
        mongo.stop()
        vhost.delete()
        shutil.rmtree(data, ignore_errors=True)

    return _printed(args, rows, load, len(units), built.reports, built.cases)


def _printed(
    args: argparse.Namespace,
    rows: list[Row],
    load: float,
    units: int,
    reports: int | None,
    cases: int = 0,
) -> list[Row]:
    print()
    print(f"machine: {os.cpu_count()} cores, load average at start {load:.1f} (shared)")
    model = (
        "no read model (--ingestion-only)"
        if reports is None
        else f"read model of {args.activities:,} activities, {reports:,} reports, {cases:,} cases"
        f"; {args.requests} requests per answer"
    )
    print(
        f"national scale: {units:,} units; ingestion sample {args.events:,} events "
        f"(baseline on {args.baseline_events:,}); {model}"
    )
    print(table(rows))
    return rows


QUICK = {
    "events": 20_000,
    "baseline_events": 5_000,
    "activities": 300_000,
    "cases": 5_000,
    "requests": 40,
}
FULL = {
    "events": 100_000,
    "baseline_events": 20_000,
    "activities": 2_000_000,
    "cases": 20_000,
    "requests": 200,
}
# bench/run.py --quick: everything in five minutes, so smaller again (same country)
QUICKEST = {
    "events": 6_000,
    "baseline_events": 2_000,
    "activities": 150_000,
    "cases": 2_000,
    "requests": 30,
}


async def measure(quick: bool = False) -> list[Row]:
    """The rows, for bench/run.py (`quick`: its five-minute budget)."""
    args = argparse.Namespace(
        **(QUICKEST if quick else FULL), baseline_runs=5 if not quick else 3, ingestion_only=False
    )
    return await run(args)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller samples (3–4 minutes)")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument(
        "--baseline-events",
        type=int,
        default=None,
        help="the baseline consumes the first N events of the sample, half before the service "
        "and half after it (it is the slow one)",
    )
    parser.add_argument("--activities", type=int, default=None)
    parser.add_argument("--cases", type=int, default=None)
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--baseline-runs", type=int, default=5)
    parser.add_argument(
        "--ingestion-only", action="store_true", help="measure ingestion, not the answers"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the rows to this file")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.baseline_events > args.events:
        parser.error("--baseline-events cannot exceed --events")
    if args.baseline_events < 2:
        parser.error("--baseline-events must be at least 2 (half before, half after)")
    rows = asyncio.run(run(args))
    if args.json is not None:
        write_json(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
