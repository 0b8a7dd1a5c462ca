# ruff: noqa: E402 - the imports below need the path fixed first
"""Reminders at national scale: how long a sweep takes, how fast deliveries go.

    uv run python bench/reminders.py [--communes 10600 --districts 700 --provinces 63]
                                     [--mongo-url mongodb://…] [--deliveries 1000]

Vietnam 2021: 63 provinces, 700 districts, 10,600 communes; the default plan's schedules
(monthly for communes and districts, three annual reports for districts): about 137,700
obligations, 10% of them never reported. Measured through the service's own use cases
against DevMongo (started here on a free port unless --mongo-url is given) and an aiosmtpd
sink on loopback, each beside a baseline measured in the same run:

- derive and store every obligation (plan.published) vs insert_many of the same documents;
- a catch-up sweep (the first ever: every step of every overdue obligation) and a daily sweep
  (the next morning) vs insert_many of the same send documents;
- deliveries/s through the dispatcher vs raw aiosmtplib sends/s to the same sink.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parents[1]
# run as a script, this file's folder comes first on the path and its name hides the package
sys.path[0] = str(ROOT)

from bench.table import Row, below
from lhpn_shared.clock import LOCAL_TZ, FixedClock
from lhpn_shared.contracts.plans import Plan
from lhpn_shared.contracts.units import Unit, UnitLevel, UnitTree
from lhpn_shared.mongo import database, make_client
from reminders.delivery.addresses import AddressGuard
from reminders.delivery.email import build_email
from reminders.delivery.render import build_environment
from reminders.dispatch import DeliveryOptions, Dispatcher
from reminders.domain.obligations import derive_obligations
from reminders.repository import RemindersStore, report_key, unit_fields
from reminders.service import Reminders
from reminders.settings import RemindersSettings
from reminders.sweep import Sweeper
from tests.support.infra import DevMongo, free_port

PLAN_FILE = ROOT / "services" / "intake" / "intake" / "data" / "plan-PY-2021-460.json"
CATCH_UP_AT = datetime(2021, 12, 16, 8, tzinfo=LOCAL_TZ)
DAILY_AT = datetime(2021, 12, 17, 8, tzinfo=LOCAL_TZ)


def national_units(provinces: int, districts: int, communes: int) -> list[Unit]:
    """The central union and its tree: a plan covers only the units under its issuer (issue
    10), so the national plan is issued by the root."""
    units: list[Unit] = [
        Unit(unit_id="VN", name="Trung ương Hội", kind="trung ương", level=UnitLevel.national)
    ]
    for p in range(provinces):
        units.append(
            Unit(
                unit_id=f"P{p:02d}",
                name=f"Tỉnh {p}",
                kind="tỉnh",
                level=UnitLevel.province,
                parent_id="VN",
            )
        )
    for d in range(districts):
        units.append(
            Unit(
                unit_id=f"D{d:03d}",
                name=f"Huyện {d}",
                kind="huyện",
                level=UnitLevel.district,
                parent_id=f"P{d % provinces:02d}",
            )
        )
    for c in range(communes):
        units.append(
            Unit(
                unit_id=f"C{c:05d}",
                name=f"Xã {c}",
                kind="xã",
                level=UnitLevel.commune,
                parent_id=f"D{c % districts:03d}",
            )
        )
    return units


def never_reported(obligation_id: str) -> bool:
    """10% of the obligations, spread evenly and the same in every run."""
    return zlib.crc32(obligation_id.encode()) % 10 == 0


class Sink:
    """An SMTP server that counts and drops."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 OK"


async def timed(coro: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = await coro
    return result, time.perf_counter() - start


async def raw_insert(store: RemindersStore, name: str, docs: list[dict[str, Any]]) -> float:
    """Baseline: insert_many of the same documents (fresh copies) into a scratch collection
    with the same unique key, 1,000 a batch."""
    coll = store.db[name]
    await coll.drop()
    if name.startswith("raw_send"):
        await coll.create_index(
            [("subject_ref", 1), ("step", 1), ("recipient_unit_id", 1)], unique=True
        )
    copies = [dict(d) for d in docs]
    start = time.perf_counter()
    for i in range(0, len(copies), 1000):
        await coll.insert_many(copies[i : i + 1000], ordered=False)
    elapsed = time.perf_counter() - start
    await coll.drop()
    return elapsed


async def relay_published(store: RemindersStore) -> None:
    """What the outbox relay leaves behind once it has published: empty outboxes. (Rewritten
    wholesale: clearing 100,000 documents one by one takes DevMongo minutes.)"""
    for coll in store.outbox_collections:
        docs = [d async for d in coll.find({}, batch_size=2000)]
        for d in docs:
            d.update(outbox=[], outbox_pending=False, audit=[])
        await coll.drop()
        for i in range(0, len(docs), 5000):
            await coll.insert_many(docs[i : i + 5000])
    await store.ensure_indexes()


async def raw_read(store: RemindersStore, as_of: datetime) -> float:
    """Baseline: one find of the open obligations whose next step has come, nothing else."""
    query = {"next_step_at": {"$lte": as_of}, "received_at": None}
    start = time.perf_counter()
    await store.obligations.find(query, {"outbox": 0}, batch_size=2000).to_list(None)
    return time.perf_counter() - start


async def raw_smtp(port: int, n: int, concurrency: int) -> float:
    """Baseline: aiosmtplib.send of n similar messages, same concurrency, same sink."""
    gate = asyncio.Semaphore(concurrency)
    body = "Kính gửi: Hội LHPN xã 1,\n\nĐơn vị chưa gửi Báo cáo tháng 12/2021.\n" * 4

    async def one(i: int) -> None:
        message = build_email(
            from_address="nhac-viec@lhpn.local",
            to=[f"c{i}@lhpn.example.vn"],
            subject="[Hội LHPN] Quá hạn 1 ngày: Báo cáo kết quả thực hiện hàng tháng",
            body=body,
            sent_at=datetime.now(UTC),
        )
        async with gate:
            await aiosmtplib.send(message, hostname="127.0.0.1", port=port, start_tls=False)

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - start


async def run(
    args: argparse.Namespace, mongo_url: str
) -> tuple[list[tuple[str, int, float, float]], list[str]]:
    sink, smtp_port = Sink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    settings = RemindersSettings(
        env="development",  # asked for: unset counts as production
        mongo_url=mongo_url,
        mongo_db=f"bench_reminders_{int(time.time())}",
        mongo_timeout_ms=30_000,
        smtp_port=smtp_port,
        smtp_starttls=False,
        delivery_concurrency=args.concurrency,
    )
    clock = FixedClock(CATCH_UP_AT)
    client = make_client(settings)
    store = RemindersStore(database(client, settings.database))
    reminders = Reminders(
        store,
        clock,
        settings.reminder_policy,
        settings.case_reminder_policy,
        lambda: None,
        secrets=settings.webhook_keyring(),
        guard=AddressGuard(settings.allowed_networks()),
    )
    http = httpx.AsyncClient()
    options = DeliveryOptions(
        smtp=settings.smtp_config(),
        portal_url=settings.portal_url,
        retry=settings.retry_policy(),
        lease=timedelta(minutes=5),
        concurrency=args.concurrency,
    )
    dispatcher = Dispatcher(reminders, options, http, build_environment())
    sweeper = Sweeper(reminders, dispatcher, timedelta(minutes=5))
    rows: list[tuple[str, int, float, float]] = []
    notes: list[str] = []
    try:
        await store.ensure_indexes()
        units = national_units(args.provinces, args.districts, args.communes)
        await store.units.insert_many(
            [{"_id": u.unit_id, **unit_fields(u), "revision": 1} for u in units]
        )
        await store.contacts.insert_many(
            [{"_id": u.unit_id, "emails": [f"{u.unit_id.lower()}@lhpn.example.vn"]} for u in units]
        )
        plan = Plan.model_validate(json.loads(PLAN_FILE.read_text("utf-8")))
        plan = plan.model_copy(update={"plan_id": "VN-2021", "issuing_unit_id": "VN"})
        # 90% of the reports arrived on time, before the plan reached this service
        expected = derive_obligations(plan, UnitTree(units))
        reports = [
            {
                "_id": report_key(o.unit_id, o.report_type, o.period),
                "unit_id": o.unit_id,
                "report_type": o.report_type,
                "period": o.period,
                "received_at": o.due_at - timedelta(days=2),
                "on_time": True,
                "due_at": o.due_at,
            }
            for o in expected
            if not never_reported(o.obligation_id)
        ]
        for i in range(0, len(reports), 5000):
            await store.reports.insert_many(reports[i : i + 5000])
        print(
            f"{len(units):,} units, {len(expected):,} obligations, "
            f"{len(expected) - len(reports):,} never reported",
            file=sys.stderr,
        )

        _, derive_s = await timed(reminders.on_plan(plan))
        stored = [d async for d in store.obligations.find({}, batch_size=2000)]
        rows.append(
            (
                "derive + store obligations (plan.published)",
                len(stored),
                derive_s,
                await raw_insert(store, "raw_obligations", stored),
            )
        )

        for label, as_of in (("catch-up sweep", CATCH_UP_AT), ("daily sweep", DAILY_AT)):
            await relay_published(store)
            clock.set(as_of)
            read_s = await raw_read(store, as_of)
            result, sweep_s = await timed(sweeper.sweep(as_of))
            write_s = await raw_insert(store, "raw_send_log", result.claimed)
            rows.append(
                (
                    f"{label}: {result.obligations_examined:,} loaded, "
                    f"{result.newly_overdue:,} newly overdue",
                    len(result.claimed),
                    sweep_s,
                    read_s + write_s,
                )
            )
            notes.append(f"{label} phases (s): {phases(result)}")
            again, again_s = await timed(sweeper.sweep(as_of))
            rows.append((f"{label} again at the same instant", len(again.claimed), again_s, 0.0))
            notes.append(f"{label} again phases (s): {phases(again)}, looked: {again.looked}")
            # the same, but an agenda that tells nothing (e.g. a case written since): it reads
            # every subject with a step left, finds none due, records the first step left
            async with reminders.agenda.scheduling([as_of + timedelta(days=400)]):
                pass
            looking, looking_s = await timed(sweeper.sweep(as_of))
            rows.append(
                (f"{label} again, the agenda unknown", len(looking.claimed), looking_s, 0.0)
            )
            notes.append(f"{label} again, agenda unknown, phases (s): {phases(looking)}")
        daily = result

        sends = daily.claimed[: args.deliveries]
        before = sink.count
        _, deliver_s = await timed(dispatcher.deliver(sends, daily.sweep_id))
        assert sink.count - before == len(sends), (sink.count - before, len(sends))
        rows.append(
            (
                "deliveries (render, SMTP, status + event write)",
                len(sends),
                deliver_s,
                await raw_smtp(smtp_port, len(sends), args.concurrency),
            )
        )
    finally:
        await http.aclose()
        if not args.keep:
            await client.drop_database(settings.database)
        await client.close()
        controller.stop()
    return rows, notes


def phases(result: Any) -> str:
    return ", ".join(f"{name} {seconds:.2f}" for name, seconds in result.seconds.items())


def print_table(rows: list[tuple[str, int, float, float]], notes: list[str]) -> None:
    print()
    print(
        f"| {'measure':<62} | {'n':>7} | {'s':>7} | {'per s':>8} | {'baseline s':>10} | "
        f"{'x baseline':>10} |"
    )
    print(f"|{'-' * 64}|{'-' * 9}|{'-' * 9}|{'-' * 10}|{'-' * 12}|{'-' * 12}|")
    for name, n, seconds, baseline in rows:
        rate = f"{n / seconds:,.0f}" if seconds and n else "-"
        base = f"{baseline:.2f}" if baseline else "-"
        ratio = f"{seconds / baseline:.2f}" if baseline else "-"
        print(f"| {name:<62} | {n:>7,} | {seconds:>7.2f} | {rate:>8} | {base:>10} | {ratio:>10} |")
    print(
        "\nbaselines: insert_many of the same documents (1,000 a batch, same unique key); "
        "for a sweep, plus one raw find of the obligations whose next step has come; "
        "raw aiosmtplib.send of as many messages to the same sink at the same concurrency"
    )
    for note in notes:
        print(note)


def to_rows(
    rows: list[tuple[str, int, float, float]], scale: str, n_units: int, national: bool
) -> list[Row]:
    """The table's rows in bench/run.py's form (seconds; the baseline in seconds too)."""
    derive, catch_up, catch_up_again, _, daily, daily_again, daily_looking, deliveries = rows
    out = [
        Row(
            f"reminders: derive + store {derive[1]:,} obligations ({scale})",
            derive[2],
            "s",
            derive[3],
        ),
        Row(
            f"reminders: catch-up sweep, {catch_up[1]:,} sends ({scale})",
            catch_up[2],
            "s",
            catch_up[3],
        ),
        Row(
            f"reminders: daily sweep, {daily[1]:,} sends ({scale}, {n_units:,} units)",
            daily[2],
            "s",
            daily[3],
            "< 5 s (national)",
            below(5, daily[2]) if national else None,
        ),
        Row(
            "reminders: the daily sweep again, nothing to send",
            daily_again[2],
            "s",
            None,
            "< 1 s (national)",
            below(1, daily_again[2]) if national else None,
        ),
        Row("reminders: the catch-up sweep again, nothing to send", catch_up_again[2], "s"),
        Row(
            "reminders: the daily sweep again, nothing to send, agenda unknown (reads all)",
            daily_looking[2],
            "s",
        ),
    ]
    n, took, raw = deliveries[1], deliveries[2], deliveries[3]
    out.append(
        Row(
            f"reminders: deliveries (render, SMTP, status + event), {n:,}",
            n / took,
            "sends/s",
            n / raw if raw else None,
        )
    )
    return out


QUICK = {"provinces": 8, "districts": 88, "communes": 1325, "deliveries": 300}
FULL = {"provinces": 63, "districts": 700, "communes": 10_600, "deliveries": 1000}


async def measure(quick: bool = False) -> list[Row]:
    """For bench/run.py: the whole country, or an eighth of it with `quick` (the targets are the
    country's: a quick run's sweeps are not judged against them)."""
    args = argparse.Namespace(**(QUICK if quick else FULL), concurrency=10, keep=False)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-reminders-"))
    devmongo = DevMongo(port=free_port(), data_dir=data_dir)
    devmongo.start()
    try:
        rows, _ = await run(args, devmongo.url)
    finally:
        devmongo.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    scale = "an eighth of the country" if quick else "the country"
    return to_rows(rows, scale, 1 + args.provinces + args.districts + args.communes, not quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--provinces", type=int, default=63)
    parser.add_argument("--districts", type=int, default=700)
    parser.add_argument("--communes", type=int, default=10_600)
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--mongo-url", default=None, help="default: a DevMongo started here")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()
    devmongo: DevMongo | None = None
    data_dir = Path(tempfile.mkdtemp(prefix="bench-reminders-"))
    if args.mongo_url is None:
        devmongo = DevMongo(port=free_port(), data_dir=data_dir)
        devmongo.start()
    try:
        rows, notes = asyncio.run(run(args, args.mongo_url or devmongo.url))  # type: ignore[union-attr]
    finally:
        if devmongo is not None:
            devmongo.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    print_table(rows, notes)


if __name__ == "__main__":
    main()
