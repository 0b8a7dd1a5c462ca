"""A batch interrupted at any point of its writes, then delivered again (alone or mixed with the
next events), leaves the read models exactly as an uninterrupted run does."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest

from aggregation.batch import Event, parse_event
from aggregation.repository import AggregationStore, Writes
from aggregation.service import Aggregation
from lhpn_shared.clock import LOCAL_TZ, FixedClock
from lhpn_shared.mongo import database, make_client
from tests.integration.aggregation.streams import AS_OF, PERIODS, PLAN_ID, roots, stream
from tests.support.infra import DevMongo
from tests.unit.aggregation.generated import Generated, generate

pytestmark = pytest.mark.integration
BATCH = 300
CLOCK = FixedClock(datetime(2021, 8, 1, 9, 0, tzinfo=LOCAL_TZ))
"""cases are counted overdue as of this instant, in both runs"""
CRASHING = (2, 8, 16)
"""the batches interrupted: activities; activities and reports; cases"""


class Crash(Exception):
    """The process dies here."""


def events_of(generated: Generated) -> list[Event]:
    return [
        parse_event(e.model_dump_json().encode(), publisher=None, owners=None)  # admitted
        for e in stream(generated)
    ]


async def read_all(svc: Aggregation, generated: Generated) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for root in roots(generated):
        for as_of in AS_OF:
            result = await svc.compliance(PLAN_ID, root, as_of, with_units=True)
            out[f"compliance {root} {as_of}"] = result.model_dump(mode="json")
        for period in PERIODS:
            out[f"indicators {root} {period}"] = (await svc.indicators(root, period)).model_dump()
            out[f"cases {root} {period}"] = (await svc.case_stats(root, period)).model_dump()
        for schedule in generated.plan.report_schedules:
            for p in schedule.periods[:3]:
                rates = await svc.reporting_rates(schedule.report_type, p.period, root)
                out[f"rates {root} {schedule.report_type} {p.period}"] = rates.model_dump()
    return out


def crash_after_the_journal(store: AggregationStore) -> None:
    async def write(writes: Writes) -> None:
        raise Crash

    store.write = write  # type: ignore[method-assign]


def crash_halfway_through_the_writes(store: AggregationStore) -> None:
    real = store.write

    async def write(writes: Writes) -> None:
        half = Writes(token=writes.token)
        for name, docs in writes.docs.items():  # every other collection, half of each
            if name in ("activities", "cases", "unit_years"):
                keep = dict(list(docs.items())[: len(docs) // 2])
                half.docs[name] = keep
        await real(half)
        raise Crash

    store.write = write  # type: ignore[method-assign]


def crash_between_the_journal_s_chunks(store: AggregationStore) -> None:
    """The journal is written in chunks (made small here), the header never."""
    real = store.journal.insert_many

    async def insert_many(docs: list[Any], **kw: Any) -> Any:
        await real(docs[: max(1, len(docs) // 2)], **kw)
        raise Crash

    store.journal.insert_many = insert_many  # type: ignore[method-assign]


def crash_before_the_journal_is_deleted(store: AggregationStore) -> None:
    async def journal_done(token: str) -> None:
        raise Crash

    store.journal_done = journal_done  # type: ignore[method-assign]


@pytest.mark.parametrize(
    "crash",
    [
        crash_after_the_journal,
        crash_halfway_through_the_writes,
        crash_between_the_journal_s_chunks,
        crash_before_the_journal_is_deleted,
    ],
    ids=lambda f: f.__name__,
)
async def test_a_crash_mid_batch_then_redelivery_gives_the_same_read_models(
    devmongo: DevMongo, crash: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("aggregation.repository.JOURNAL_LIMIT_BYTES", 20_000)  # several chunks
    generated = generate(3, activities=1200, cases=150)
    events = events_of(generated)
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    assert len(batches) > max(CRASHING)
    client = make_client_for(devmongo)
    try:
        clean = Aggregation(AggregationStore(database(client, new_db())), CLOCK)
        for batch in batches:
            await clean.apply(batch)
        expected = await read_all(clean, generated)

        db = new_db()
        svc = Aggregation(AggregationStore(database(client, db)), CLOCK)
        redelivered: list[Event] = []
        for index, batch in enumerate(batches):
            batch = redelivered + batch  # requeued messages come back among the next ones
            redelivered = []
            if index in CRASHING:
                crash(svc.store)
                with pytest.raises(Crash):
                    await svc.apply(batch)
                svc = Aggregation(AggregationStore(database(client, db)), CLOCK)  # restart
                redelivered = batch
                continue
            await svc.apply(batch)
        if redelivered:
            await svc.apply(redelivered)
        assert await svc.store.journal_pending() == []
        assert await svc.store.journal.count_documents({}) == 0
        got = await read_all(svc, generated)
    finally:
        await client.close()
    assert got.keys() == expected.keys()
    for key, answer in expected.items():
        assert got[key] == answer, key


def new_db() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def make_client_for(devmongo: DevMongo) -> Any:
    from aggregation.settings import AggregationSettings

    return make_client(AggregationSettings(mongo_url=devmongo.url))


async def test_a_batch_whose_journal_takes_many_chunks_is_written_whole(
    devmongo: DevMongo, monkeypatch: pytest.MonkeyPatch
) -> None:
    generated = generate(5, activities=300, cases=40)
    events = events_of(generated)
    client = make_client_for(devmongo)
    try:
        clean = Aggregation(AggregationStore(database(client, new_db())), CLOCK)
        await clean.apply(events)
        expected = await read_all(clean, generated)
        monkeypatch.setattr("aggregation.repository.JOURNAL_LIMIT_BYTES", 3_000)
        chunked = Aggregation(AggregationStore(database(client, new_db())), CLOCK)
        puts: list[int] = []
        real = chunked.store.journal_put

        async def journal_put(journal: list[Any]) -> None:
            puts.append(len(journal))
            await real(journal)

        chunked.store.journal_put = journal_put  # type: ignore[method-assign]
        changed = await chunked.apply(events)
        assert len(changed) == len(events)
        assert puts and puts[0] > 10  # one batch, its journal in many chunks and a header
        got = await read_all(chunked, generated)
    finally:
        await client.close()
    assert got == expected
