"""The audit log writes the records of concurrent requests together, each request still
waiting for its own record (a fake collection: no database)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from lhpn_shared.audit import AuditLog
from lhpn_shared.clock import FixedClock
from lhpn_shared.principal import Principal, Role


class SlowCollection:
    """Takes its time per insert, as a database committing each write does."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.fail = fail

    async def insert_many(self, docs: list[dict[str, Any]], ordered: bool = True) -> None:
        await asyncio.sleep(0.02)
        if self.fail:
            raise AutoReconnect("database gone")
        self.batches.append(list(docs))


def principal(n: int) -> Principal:
    return Principal(subject=f"user{n}", role=Role.commune_staff, unit_id="22015")


async def test_records_written_at_the_same_time_share_inserts_and_every_one_is_stored() -> None:
    coll = SlowCollection()
    log = AuditLog(coll, FixedClock(datetime(2021, 3, 5, tzinfo=UTC)))  # type: ignore[arg-type]
    await asyncio.gather(
        *(log.record(principal(n), "activities.record", unit_id="22015") for n in range(20))
    )
    stored = [d["actor"] for batch in coll.batches for d in batch]
    assert sorted(stored) == sorted(f"user{n}" for n in range(20))
    assert len(coll.batches) < 20  # the first alone, then the ones that waited meanwhile


async def test_when_the_database_fails_every_request_of_the_batch_sees_the_error() -> None:
    coll = SlowCollection(fail=True)
    log = AuditLog(coll, FixedClock(datetime(2021, 3, 5, tzinfo=UTC)))  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(log.record(principal(n), "activities.record") for n in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(r, AutoReconnect) for r in results)
    coll.fail = False
    await log.record(principal(9), "activities.record")  # the log still works afterwards
    assert [d["actor"] for b in coll.batches for d in b] == ["user9"]


async def test_a_cancelled_writer_leaves_the_others_records_to_the_next_one() -> None:
    coll = SlowCollection()
    log = AuditLog(coll, FixedClock(datetime(2021, 3, 5, tzinfo=UTC)))  # type: ignore[arg-type]
    first = asyncio.create_task(log.record(principal(0), "activities.record"))
    await asyncio.sleep(0)  # it holds the lock and is inserting
    others = [asyncio.create_task(log.record(principal(n), "x")) for n in (1, 2)]
    await asyncio.sleep(0.005)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.gather(*others)
    assert sorted(d["actor"] for b in coll.batches for d in b) == ["user1", "user2"]
